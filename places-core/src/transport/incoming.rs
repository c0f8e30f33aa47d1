//! A message as it arrived, and the scopes in which messages are encoded for a link and decoded
//! from one (so that the channel ends and routes inside them can find their link).

use std::cell::RefCell;
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::{Endpoint, LinkRef};
use crate::codec::{self, Body};
use crate::message::Message;

/// One message that arrived on a link, not decoded yet: the consumer that takes it decodes it.
pub struct Incoming {
    /// The endpoint it arrived on (for a named place, the client's route): where its credit
    /// goes back, where an error about it goes, and where a reply to it goes.
    pub(crate) from: Arc<Endpoint>,
    pub(crate) encoding: u8,
    /// The ids of the channel ends inside it, registered as pending on `from`'s link.
    pub(crate) carried: Vec<u64>,
    pub(crate) body: Body,
    /// The credit it took (its body and the channels it carries).
    pub(crate) charge: u64,
}

impl Incoming {
    /// A message of `encoding` with `body`, that arrived on `from` carrying the channel ids
    /// `carried`.
    pub(crate) fn new(
        from: Arc<Endpoint>,
        encoding: u8,
        carried: Vec<u64>,
        body: Body,
        charge: u64,
    ) -> Self {
        Self {
            from,
            encoding,
            carried,
            body,
            charge,
        }
    }

    /// Its body, for the network layer to fill as fragments arrive.
    pub fn body_mut(&mut self) -> &mut Body {
        &mut self.body
    }

    /// The size of its body.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether its body is empty.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // The channel ends inside that were not decoded will never be used: close them, so that
        // their other ends see the close.
        for id in std::mem::take(&mut self.carried) {
            self.from.link().table().abandon(id);
        }
    }
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("channel", &self.from.id())
            .field("encoding", &self.encoding)
            .field("carried", &self.carried)
            .field("bytes", &self.body.len())
            .finish()
    }
}

/// What is being encoded, on this thread, for which link.
pub(crate) struct EncodeScope {
    pub(crate) link: LinkRef,
    /// The ids of the channel ends bridged so far.
    pub(crate) carried: Vec<u64>,
    /// The relays of those ends wait for these: `true` once the message is out.
    pub(crate) gates: Vec<Sender<bool>>,
    /// Run once the message went out (`true`) or will not (`false`).
    pub(crate) on_sent: Vec<Box<dyn FnOnce(bool) + Send>>,
    /// The put may wait (a `try_put` must not: no channel end is handed off in it).
    pub(crate) may_wait: bool,
    /// The put waits for nothing, and its value can be sent later by a thread that may wait:
    /// the first channel end inside it stops the encoding (before anything is bridged or
    /// handed off, which may wait) and sets `deferred`.
    pub(crate) defer_ends: bool,
    pub(crate) deferred: bool,
}

/// A message whose encoding did not finish (a `Serialize` that panicked) never goes out: what
/// waits for it to go out is told so.
impl Drop for EncodeScope {
    fn drop(&mut self) {
        for f in std::mem::take(&mut self.on_sent) {
            f(false);
        }
    }
}

/// What is being decoded on this thread, from which endpoint.
pub(crate) struct DecodeScope {
    pub(crate) from: Arc<Endpoint>,
    /// The carried ids not claimed yet.
    pub(crate) carried: Vec<u64>,
}

thread_local! {
    static ENCODING: RefCell<Option<EncodeScope>> = const { RefCell::new(None) };
    static DECODING: RefCell<Option<DecodeScope>> = const { RefCell::new(None) };
}

/// Runs `f` with `scope` as this thread's encoding scope; returns `f`'s result and the scope
/// (with the channels bridged meanwhile).
pub(crate) fn encoding_for<T>(scope: EncodeScope, f: impl FnOnce() -> T) -> (T, EncodeScope) {
    /// Puts the outer scope back if `f` unwinds (a `Serialize` that panics): the thread may
    /// run another place next, which must not encode into a dead message's scope.
    struct Restore(Option<Option<EncodeScope>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(outer) = self.0.take() {
                let _ = ENCODING.try_with(|e| *e.borrow_mut() = outer);
            }
        }
    }
    let mut restore = Restore(Some(ENCODING.with(|e| e.borrow_mut().replace(scope))));
    let out = f();
    let outer = restore.0.take().unwrap_or_default();
    let scope = ENCODING.with(|e| std::mem::replace(&mut *e.borrow_mut(), outer));
    match scope {
        Some(scope) => (out, scope),
        None => unreachable!("the encoding scope was installed above"),
    }
}

/// Runs `f` on the current encoding scope, if there is one.
pub(crate) fn with_encoding<T>(f: impl FnOnce(&mut EncodeScope) -> T) -> Option<T> {
    ENCODING.with(|e| e.borrow_mut().as_mut().map(f))
}

/// Runs `f` on the current decoding scope, if there is one.
pub(crate) fn with_decoding<T>(f: impl FnOnce(&mut DecodeScope) -> T) -> Option<T> {
    DECODING.with(|d| d.borrow_mut().as_mut().map(f))
}

/// Decodes a message that arrived, as a `T`. A decode that fails (or panics: a `Deserialize` is
/// user code) gives back the endpoint to blame and the reason; either way the channel ends
/// inside that were not claimed are closed when `msg` is dropped.
pub(crate) fn decode_incoming<T: Message>(msg: Incoming) -> Result<T, (Arc<Endpoint>, String)> {
    let mut msg = msg;
    let from = msg.from.clone();
    let scope = DecodeScope {
        from: from.clone(),
        carried: std::mem::take(&mut msg.carried),
    };
    let body = std::mem::take(&mut msg.body);
    let encoding = msg.encoding;
    let outer = DECODING.with(|d| d.borrow_mut().replace(scope));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        codec::decode_body::<T>(encoding, body)
    }));
    let scope = DECODING.with(|d| std::mem::replace(&mut *d.borrow_mut(), outer));
    // Hand the unclaimed ids back to the message, whose drop closes them.
    if let Some(scope) = scope {
        msg.carried = scope.carried;
    }
    drop(msg);
    let ty = std::any::type_name::<T>();
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((from, format!("could not decode a `{ty}`: {e}"))),
        Err(_) => Err((from, format!("the `Deserialize` of `{ty}` panicked"))),
    }
}
