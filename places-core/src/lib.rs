//! **The local runtime of `places`: entries registered by name, places on OS threads, typed place
//! channels, select, and shared vectors.**
//!
//! Users depend on the `places` facade crate, which re-exports everything here together with the
//! macros; see its documentation for the guided tour.
//!
//! ```
//! use places::{place, Place, PlaceChannel};
//!
//! #[place]
//! fn square(ch: PlaceChannel<u64>) {
//!     let n = ch.get().unwrap();
//!     ch.put(n * n).unwrap();
//! }
//!
//! let p: Place<u64> = Place::spawn(square).unwrap();
//! assert_eq!(p.put_get(12).unwrap(), 144);
//! assert_eq!(p.wait(), 0);
//! ```

mod channel;
pub mod codec;
mod comm;
mod context;
mod error;
mod fork_join;
mod message;
mod place;
mod pool;
mod procedure;
mod registry;
mod rpc;
mod select;
mod shared;
mod stash;
pub mod transport;
mod typed;

pub use channel::{
    bounded_place_channel, place_channel, remote_channel, Channel, PlaceChannel, Recv, ReplyTo,
    Routed, TryPutError,
};
pub use comm::{
    CgIndex, CgRange, Comm, CommError, EncodedLink, Envelope, Invitation, Link, Partition, Payload,
    RawView, Tag, WireEnvelope,
};
pub use context::{check_break, exit};
pub use error::{BreakKind, ChannelError, CodecError, SpawnError};
pub use fork_join::{fork_join, ForkJoinError};
pub use message::{Completion, Message};
pub use place::{DeadEvt, Place, PlaceHandle};
pub use procedure::{
    lookup_procedure, procedure_entries, EncodedCall, EncodedMerge, KvOps, ProcAddr, ProcError,
    ProcedureEntry, ProcedureKind,
};
pub use registry::{check_registry, dynamic_place, entries, lookup, Entry, EntryKey, TypeInfo};
pub use rpc::{
    log_message, log_record, log_to_parent, LogRecord, RpcError, RpcRequest, RpcResponse, Severity,
};
pub use select::{Select, SelectedEvent};
pub use shared::{SharedBytes, SharedF64s, SharedI32s, SharedI64s};
pub use typed::{async_bi_channel, TypedChannel};

/// The number of parallel computation units (cores or hardware threads) available to this
/// process (Racket's `processor-count`); at least 1.
///
/// # Examples
///
/// ```
/// assert!(places::processor_count() >= 1);
/// ```
pub fn processor_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The environment variable that starts an executable in node mode (used by the network layer).
pub const NODE_MODE_ENV: &str = "PLACES_NODE";

/// The line a node prints on stdout when it cannot start, followed by the reason.
pub const NODE_FAILED_LINE: &str = "places-node failed ";

/// The reason a process started as a node gives when its `main` never entered node mode.
pub const NOT_A_NODE_PROGRAM: &str = "the node program does not call `places::init()` or use `#[places::main]` before it uses places";

/// Node mode, as far as the local runtime needs to know it.
pub mod node_mode {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::OnceLock;

    static SERVING: AtomicBool = AtomicBool::new(false);

    /// Records that this process serves as a node (the network layer calls it when it starts).
    pub fn enter() {
        SERVING.store(true, Ordering::Release);
    }

    /// Whether this process serves as a node.
    pub fn is_serving() -> bool {
        SERVING.load(Ordering::Acquire)
    }

    /// Ends a process that was started as a node but whose `main` went on as a program instead
    /// (it never called `places::init()`): it would otherwise start nodes of its own, each of
    /// which would do the same. Prints the reason where its creator looks for it, and exits.
    pub fn refuse_stray() {
        static STARTED_AS_NODE: OnceLock<bool> = OnceLock::new();
        let started =
            *STARTED_AS_NODE.get_or_init(|| std::env::var_os(crate::NODE_MODE_ENV).is_some());
        if started && !is_serving() {
            use std::io::Write;
            println!("{}{}", crate::NODE_FAILED_LINE, crate::NOT_A_NODE_PROGRAM);
            let _ = std::io::stdout().flush();
            eprintln!("places: {}", crate::NOT_A_NODE_PROGRAM);
            std::process::exit(3);
        }
    }
}

/// Prepares the runtime; `#[places::main]` calls it first thing in `main`.
///
/// It checks the entry registry, so that two definitions of one entry are reported at start-up
/// rather than at the first spawn. (When the network layer starts an executable as a node, the
/// node-mode hook runs here too.)
///
/// # Errors
///
/// [`SpawnError::Duplicate`] naming both definitions of a key registered twice.
pub fn init() -> Result<(), SpawnError> {
    check_registry()
}

/// What the macros' expansions use. Not public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::fork_join::panic_message;
    pub use crate::message::Completion;
    pub use crate::procedure::support as procedure;
    pub use crate::procedure::{KvOps, ProcedureEntry};
    pub use crate::registry::{Entry, EntryKey, EntryThunk, EntryTypes, ErasedChannel, ThunkTypes};
    pub use crate::rpc::set_log_forwarder;
    pub use crate::rpc::support as rpc;
    pub use crate::rpc::Reply;
    pub use inventory;
    pub use serde;

    use crate::channel::PlaceChannel;
    use crate::comm::Comm;
    use crate::message::Message;

    /// Turns the erased first channel back into the entry's typed one and wraps the call.
    pub fn prepare_entry<A: Send + 'static, B: Send + 'static, C: Completion + 'static>(
        ch: ErasedChannel,
        entry: fn(PlaceChannel<A, B>) -> C,
    ) -> Result<EntryThunk, ErasedChannel> {
        let ch = ch.downcast::<PlaceChannel<A, B>>()?;
        Ok(Box::new(move || entry(*ch).into_completion()))
    }

    /// Ties two values to one type without holding either (for `cg_pipeline!`'s check that the
    /// value passed on has the type of the value received).
    pub struct SameType<T>(::core::marker::PhantomData<fn() -> T>);

    impl<T> SameType<T> {
        /// Remembers the type of `value`.
        pub fn of(_value: &T) -> Self {
            SameType(::core::marker::PhantomData)
        }

        /// Compiles only if `value` has the remembered type.
        pub fn check(&self, _value: &T) {}
    }

    /// `cg_pipeline!`'s receive from the previous member.
    pub fn pipeline_recv<T: Message>(cg: &Comm) -> T {
        let prev = cg.id() - 1;
        match cg.recv(prev) {
            Ok(v) => v,
            Err(e) => panic!(
                "cg_pipeline!: member {} could not get the value of member {prev}: {e}",
                cg.id()
            ),
        }
    }

    /// `cg_pipeline!`'s send to the next member (none from the last).
    pub fn pipeline_send<T: Message + Clone>(cg: &Comm, value: &T) {
        let next = cg.id() + 1;
        if next < cg.cnt() {
            if let Err(e) = cg.send(next, value.clone()) {
                panic!(
                    "cg_pipeline!: member {} could not pass its value to member {next}: {e}",
                    cg.id()
                );
            }
        }
    }

    /// The `main` wrapper of `#[places::main]`.
    pub fn run_main<T>(body: impl FnOnce() -> T) -> T {
        if let Err(e) = crate::init() {
            eprintln!("places: {e}");
            std::process::exit(2);
        }
        body()
    }
}
