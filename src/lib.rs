//! **Racket's places for Rust: start a function on another core, talk to it over typed channels.**
//!
//! A *place* is an isolated parallel task: an OS thread that runs an *entry* function and talks to
//! its creator through a *place channel*. Entries are registered by `#[place]` under their module
//! path and name, so a place can be started by name ([`dynamic_place`]) as well as by value
//! ([`Place::spawn`]).
//!
//! ```
//! use places::prelude::*;
//!
//! #[place]
//! fn hello_world(ch: PlaceChannel<String>) {
//!     println!("hello-world received: {}", ch.get().unwrap());
//!     ch.put("Hello World".to_string()).unwrap();
//!     println!("hello-world sent: Hello World");
//! }
//!
//! let p: Place<String> = dynamic_place(module_path!(), "hello_world").unwrap();
//! p.put("Hello".to_string()).unwrap();
//! println!("main received: {}", p.get().unwrap());
//! assert_eq!(p.wait(), 0);
//! ```
//!
//! | Racket | places |
//! | --- | --- |
//! | `dynamic-place`, `place` | [`dynamic_place`], [`Place::spawn`] with a [`#[place]`](place) fn, [`spawn!`] |
//! | `place-channel-put/get/put-get` | [`PlaceChannel::put`], [`get`](PlaceChannel::get), [`put_get`](PlaceChannel::put_get) |
//! | `place-channel` | [`place_channel`] |
//! | `sync`, `handle-evt`, `place-dead-evt` | [`sync!`], [`Select`], [`Place::dead_evt`] |
//! | `place-wait`, `place-kill`, `place-break` | [`Place::wait`], [`Place::kill`], [`Place::break_place`] |
//! | `make-shared-bytes/fxvector/flvector` | [`SharedBytes`], [`SharedI64s`], [`SharedF64s`] |
//! | `processor-count` | [`processor_count`] |
//! | `(exit v)` in a place | [`exit`] |
//! | `fork-join`, `CGfor`, `CGpipeline`, `CGBarrier` | [`fork_join!`], [`cg_for!`], [`cg_pipeline!`], [`Comm::barrier`] |
//! | `create-place-node`, `spawn-node-with-place-at`, ... | [`create_place_node`], [`spawn_node_with_place_at`], [`spawn_node_supervise_place_at`], [`spawn_node_at`], [`spawn_nodes_join`] |
//! | `supervise-place-at` (`#:named`, `#:restart-on-exit`), `restart-every` | [`supervise_place_at`], [`PlaceOptions`], [`restart_every`] |
//! | `connect-to-named-place`, `*channel-put/get` | [`connect_to_named_place`], [`Channel`] |
//! | `message-router`, `after-seconds`, `every-seconds` | [`message_router!`], [`after_seconds`], [`every_seconds`], [`on_channel`] |
//! | `define-remote-server`, `define-named-remote-server` | [`define_remote_server!`], [`define_named_remote_server!`] |
//! | `log-message`, `log-to-parent` | [`log_message`], [`log_to_parent`] |
//!
//! A node is this same executable started in node mode: `#[places::main]` (or [`init`]) runs it
//! when the process was started as one, so `create_place_node("localhost", ..)` needs no setup.

// Lets the macros' `::places::...` paths resolve inside this crate too.
extern crate self as places;

// An explicit list: the transport contract between `places-core` and `places-net` stays out of
// the public API.
pub use places_core::{
    async_bi_channel, bounded_place_channel, check_break, check_registry, codec, dynamic_place,
    entries, exit, fork_join, log_message, log_record, log_to_parent, lookup, place_channel,
    processor_count, sync, BreakKind, CgIndex, CgRange, Channel, ChannelError, CodecError, Comm,
    CommError, Completion, DeadEvt, EncodedLink, Entry, EntryKey, Envelope, ForkJoinError,
    Invitation, Link, LogRecord, Message, Partition, Payload, Place, PlaceChannel, PlaceHandle,
    ProcAddr, ProcError, ProcedureEntry, ProcedureKind, Recv, ReplyTo, Routed, RpcError,
    RpcRequest, RpcResponse, Select, SelectedEvent, Severity, SharedBytes, SharedF64s, SharedI32s,
    SharedI64s, SpawnError, Tag, TryPutError, TypeInfo, TypedChannel, WireEnvelope,
};
pub use places_macros::{
    cg_for, cg_pipeline, define_named_remote_server, define_remote_server, fork_join, main,
    message, place, procedure, spawn,
};

/// The [`ProcAddr`] of the `#[procedure]` function `name` of the current module, typed by the
/// function (the dissertation's `(list (quote-module-path) 'name)`); a misspelt name is a
/// compile error. For a procedure of another module write
/// `ProcAddr::new("crate_name::module", "name")`.
///
/// # Examples
///
/// ```
/// #[places::procedure]
/// fn shout(s: String) -> String {
///     s.to_uppercase()
/// }
///
/// let addr = places::proc_addr!(shout);
/// assert_eq!(addr.call("hi".into()).unwrap(), "HI");
/// ```
#[macro_export]
macro_rules! proc_addr {
    ($name:ident) => {
        $crate::ProcAddr::of(::core::module_path!(), ::core::stringify!($name), $name)
    };
}
pub use places_net::{
    after_seconds, connect_to_named_place, create_place_node, every_seconds, fork_join_on,
    message_router, mr_connect_to, mr_spawn_remote_node, mr_supervise_named_dynamic_place_at,
    on_channel, restart_every, spawn_node_at, spawn_node_supervise_place_at,
    spawn_node_with_place_at, spawn_nodes_join, spawn_remote_node, ssh_bin_path,
    start_message_router_thread, supervise_place_at, supervise_process_at, supervise_thread_at,
    AfterSeconds, Cookie, EventContainer, EverySeconds, IntoEventContainer, MeshInvitation,
    MessageRouter, NetError, NodeAddr, NodeDest, NodeOptions, NodeStatus, OnChannel, PendingNode,
    PlaceOptions, PlaceState, PlaceStatus, RemoteNode, RemotePlace, RemoteProcess, RestartEvery,
    RestartOnExit, RouterThread, StopToken, Stopper, Tls, DEFAULT_ROUTER_PORT, MISSED_HEARTBEATS,
};

/// RMPI: MPI-style collectives on [`Comm`] and its sub-groups (broadcast, reduce, allreduce,
/// gather, scatter, all-to-all, scans, reduce-scatter, split), reduction operators, and the
/// launch. See [`places_rmpi`].
pub mod rmpi {
    pub use places_rmpi::map_reduce;
    pub use places_rmpi::ndp;
    pub use places_rmpi::{
        op, partition, rmpi_build_default_config, rmpi_finish, rmpi_init, rmpi_launch,
        rmpi_launch_all, wait_all, wait_any, Collectives, Group, RecvRequest, RmpiChannel,
        RmpiConfig, RmpiError, RmpiNodeConfig, RmpiTypedChannel, SendRequest, SubComm,
        LARGE_VECTOR,
    };
}

/// The network layer: the wire format, the handshake and node mode, for tools and tests that
/// talk to nodes directly.
pub mod net {
    pub use places_net::{
        cluster_cookie, cluster_tls, handshake, mesh, tls, use_cluster_tls, wire, COOKIE_FILE_ENV,
        LISTEN_ENV, NODE_ENV, READY_LINE, SETTINGS_ENV, STANDALONE, TLS_DIR_ENV, TLS_ENV,
        TLS_ON_STDIN,
    };
}

/// Prepares the runtime; `#[places::main]` calls it first thing in `main`.
///
/// When this process was started as a node (by [`create_place_node`]), it serves as that node
/// here and exits when its creator is gone; otherwise it checks the entry registry and returns.
/// A test binary serves as a node through a test that calls `init` (see
/// [`NodeOptions::for_test_binary`]).
///
/// # Errors
///
/// [`SpawnError::Duplicate`] naming both definitions of a key registered twice.
pub fn init() -> Result<(), SpawnError> {
    places_net::run_if_requested();
    places_core::init()
}

/// What the macros' expansions use. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use places_core::__private::*;
    pub use places_net::{fork_join_member_on, MemberFailure};

    /// The `main` wrapper of `#[places::main]`: node mode first, then the registry check.
    pub fn run_main<T>(body: impl FnOnce() -> T) -> T {
        if let Err(e) = crate::init() {
            eprintln!("places: {e}");
            std::process::exit(2);
        }
        body()
    }
}

/// The names most programs need: `use places::prelude::*;`.
pub mod prelude {
    pub use crate::{
        cg_for, cg_pipeline, dynamic_place, fork_join, place, place_channel, processor_count, sync,
        ChannelError, Comm, DeadEvt, ForkJoinError, Place, PlaceChannel, Select, SharedBytes,
        SharedF64s, SharedI32s, SharedI64s, SpawnError,
    };
}

/// Lets an integration-test binary serve as a node: defines the test `places_node`, which runs
/// the node when the launcher starts the binary as one and does nothing in a normal test run.
/// Start such nodes with [`NodeOptions::for_this_test_binary`].
///
/// ```text
/// places::node_test_entry!();
///
/// #[test]
/// fn a_remote_place_answers() {
///     let node = places::create_place_node("localhost", places::NodeOptions::for_this_test_binary()).unwrap();
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! node_test_entry {
    () => {
        /// Serves as a node when the launcher starts this test binary as one.
        #[test]
        fn places_node() {
            $crate::init().expect("the places registry is consistent");
        }
    };
}

/// The README's code, compiled and run as a doc test so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
