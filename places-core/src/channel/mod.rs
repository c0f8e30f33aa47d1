//! Place channels: typed, two-way endpoints, local or across nodes.

mod recv;
mod routed;

use std::any::Any;
use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use crossbeam_utils::Backoff;

use crate::context::{self, PlaceContext};
use crate::error::ChannelError;
use crate::message::Message;
use crate::transport::progress::Polling;
use crate::transport::splice::{Forward, Pull};
use crate::transport::{decode_incoming, Control, Endpoint, Incoming, Item, PairHook};

pub use recv::Recv;
pub use routed::{ReplyTo, Routed};

/// One end of a two-way place channel: sends `S`, receives `R`.
///
/// The other end, a `PlaceChannel<R, S>`, is held by another place (or thread, or task), in this
/// process or on another node. `put` sends; `get` waits for a message and fails with
/// [`ChannelError::Closed`] once the other end is gone and no message is left, so a `get` never
/// hangs on a dead peer. Messages between two ends arrive in the order they were sent.
///
/// Local delivery moves the value: nothing is copied or encoded, and a `put` never waits (unless
/// the channel is [bounded](bounded_place_channel)). Across nodes a value is encoded once; a
/// `put` waits while the receiver holds a window's worth of messages it has not taken (flow
/// control: see [`try_put`](Self::try_put)). A place channel is itself a
/// [`Message`](crate::Message), so it can be sent to another place to set up a direct line.
///
/// Waiting is cheap in both directions: a `get` spins briefly before it parks its thread, so a
/// ping-pong between two busy places does not pay an operating-system wake-up per message.
///
/// Where a value is encoded: on the thread that puts it, for an end whose peer is on another
/// node, and (to save relay threads) also for a local end whose peer was sent to another node;
/// decoding is done by the thread that takes the message. Do not hold a lock that a message's
/// `Serialize` or `Deserialize` takes (serde's impl for `Mutex` does) while putting or getting
/// on such an end: it would wait for itself. A `put` never encodes a value another thread put.
///
/// # Examples
///
/// ```
/// let (a, b) = places::place_channel::<String, usize>();
/// std::thread::spawn(move || {
///     let s = b.get().unwrap();
///     b.put(s.len()).unwrap();
/// });
/// assert_eq!(a.put_get("hello".to_string()).unwrap(), 5);
/// ```
pub struct PlaceChannel<S, R = S> {
    // Dropped by hand in `Drop`, before the peer is woken, so a woken async receiver sees the
    // disconnection.
    tx: ManuallyDrop<Tx<S>>,
    rx: Rx<R>,
    /// Set when this end was passed on to another node: its relays then own closing it.
    forwarded: AtomicBool,
    /// For an end of a bounded pair: the hooks the pair shares, and which end this is.
    bound: Option<(Arc<PairHook>, usize)>,
    /// State kept per end by the runtime (the RPC client's reply demultiplexer).
    extension: OnceLock<Box<dyn Any + Send + Sync>>,
}

/// What the two ends of a local pair share about one direction: the receiver's waker, and a
/// message the sender put that could not be passed on to where the receiving end went (it was
/// sent to another node, and the message cannot cross to it: too large for that node, say).
/// The sender's next `put` or `get` reports it, once, as [`ChannelError::Dropped`]; a `get`
/// waiting meanwhile is woken for it.
#[derive(Default)]
pub(crate) struct Direction {
    waker: AtomicWaker,
    faulted: AtomicBool,
    fault: Mutex<Option<String>>,
    /// The receiving end was sent to another node: a relay takes this direction's messages,
    /// and may record a fault. Until then a `get` of the sending end waits as on any channel.
    relayed: AtomicBool,
    /// Wakes a blocked `get` (or select) of the sending end when a fault is recorded (made by
    /// the first such wait, which may begin before the direction is relayed).
    notice: OnceLock<(Sender<()>, Receiver<()>)>,
    /// The other direction of the pair, whose waker a pending `recv().await` of the sending
    /// end registered.
    reverse: OnceLock<std::sync::Weak<Direction>>,
    /// The receiving end was relayed to another node and the connection to that node was
    /// lost: the error a `get` or `put` that finds the channel closed reports instead.
    lost: OnceLock<ChannelError>,
    /// The relay of the receiving end, which a sender runs itself after its `put` (see
    /// [`splice`](crate::transport::splice)).
    forward: Hook<dyn Forward>,
    /// The relay that feeds this direction from another node, which the receiving end runs
    /// itself while its `get` polls.
    pull: Hook<dyn Pull>,
    /// The endpoint a bridge of the receiving end passes this direction's values on to, from
    /// the moment it is made (its relay may start later).
    bridge: Mutex<Option<Arc<crate::transport::Endpoint>>>,
    /// Senders of this direction kept apart from the sending end ([`PlaceChannel::sender`]).
    kept_senders: std::sync::atomic::AtomicUsize,
}

/// A relay that passes a sender's own value on, on the sender's thread (see
/// [`splice`](crate::transport::splice)).
pub(crate) trait PassOwn<S>: Send + Sync {
    /// With nothing queued or in front, passes `value` on without waiting; gives it back
    /// otherwise (it is then queued for the relay thread).
    fn pass_own(&self, value: S) -> Result<(), S>;
}

/// The typed way from the senders of one direction to its relay, set while the relay runs:
/// a sender passes only its own value on, never another thread's (whose encoding is that
/// thread's code, and may take locks this thread holds).
pub(crate) struct OwnPass<S> {
    slot: Mutex<Option<Arc<dyn PassOwn<S>>>>,
    set: AtomicBool,
}

impl<S> Default for OwnPass<S> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(None),
            set: AtomicBool::new(false),
        }
    }
}

impl<S> OwnPass<S> {
    pub(crate) fn put(&self, relay: Option<Arc<dyn PassOwn<S>>>) {
        let on = relay.is_some();
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = relay;
        self.set.store(on, Ordering::SeqCst);
    }

    /// Passes `value` on through the relay, if there is one and nothing waits before it.
    #[inline]
    fn pass(&self, value: S) -> Result<(), S> {
        if !self.set.load(Ordering::Acquire) {
            return Err(value);
        }
        let relay = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match relay {
            Some(r) => r.pass_own(value),
            None => Err(value),
        }
    }
}

/// A relay a [`Direction`] may have, set while the relay runs.
struct Hook<T: ?Sized> {
    slot: Mutex<Option<Arc<T>>>,
    set: AtomicBool,
}

impl<T: ?Sized> Default for Hook<T> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(None),
            set: AtomicBool::new(false),
        }
    }
}

impl<T: ?Sized> Hook<T> {
    fn put(&self, relay: Arc<T>) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(relay);
        self.set.store(true, Ordering::SeqCst);
    }

    fn clear(&self) {
        self.set.store(false, Ordering::SeqCst);
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    #[inline]
    fn get(&self) -> Option<Arc<T>> {
        if !self.set.load(Ordering::Acquire) {
            return None;
        }
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Direction {
    pub(crate) fn wake(&self) {
        self.waker.wake();
    }

    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// From now on every value queued in this direction is passed on by `forward`, until
    /// [`clear_forward`](Self::clear_forward).
    pub(crate) fn set_forward(&self, forward: Arc<dyn Forward>) {
        self.forward.put(forward);
    }

    pub(crate) fn clear_forward(&self) {
        self.forward.clear();
    }

    /// The endpoint this direction's relay passes values on to, if it has one (or will have:
    /// a bridge's relay starts once the message carrying the end is out).
    pub(crate) fn forward_endpoint(&self) -> Option<Arc<crate::transport::Endpoint>> {
        self.forward.get().map(|f| f.endpoint()).or_else(|| {
            self.bridge
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }

    /// A sender of this direction is kept apart from its end (or no longer is).
    pub(crate) fn count_kept_sender(&self, kept: bool) {
        if kept {
            self.kept_senders.fetch_add(1, Ordering::AcqRel);
        } else {
            self.kept_senders.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Whether senders of this direction are kept apart from its sending end.
    pub(crate) fn has_kept_senders(&self) -> bool {
        self.kept_senders.load(Ordering::Acquire) > 0
    }

    /// A bridge of the receiving end passes this direction's values on to `endpoint` (until
    /// `None`).
    pub(crate) fn set_bridge(&self, endpoint: Option<Arc<crate::transport::Endpoint>>) {
        *self.bridge.lock().unwrap_or_else(PoisonError::into_inner) = endpoint;
    }

    /// From now on a `get` of this direction pulls from `pull` while it polls, until
    /// [`clear_pull`](Self::clear_pull).
    pub(crate) fn set_pull(&self, pull: Arc<dyn Pull>) {
        self.pull.put(pull);
    }

    pub(crate) fn clear_pull(&self) {
        self.pull.clear();
    }

    /// A value was queued in this direction: its relay (if any) passes it on now.
    #[inline]
    pub(crate) fn kick(&self) {
        if let Some(f) = self.forward.get() {
            f.kick();
        }
    }

    /// A sender of this direction went away: its relay (if any) looks at the queue.
    pub(crate) fn ring(&self) {
        if let Some(f) = self.forward.get() {
            f.ring();
        }
    }

    /// The relay of this direction ended because its link was lost (`error` names the node).
    pub(crate) fn set_lost(&self, error: ChannelError) {
        let _ = self.lost.set(error);
    }

    /// The error for this direction found closed: the loss that closed it, or `Closed`.
    pub(crate) fn closed_error(&self) -> ChannelError {
        self.lost.get().cloned().unwrap_or(ChannelError::Closed)
    }

    /// A relay takes this direction's messages from now on.
    pub(crate) fn set_relayed(&self) {
        self.relayed.store(true, Ordering::SeqCst);
    }

    /// Records that a message of this direction was dropped, and why.
    pub(crate) fn set_fault(&self, reason: String) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        self.faulted.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if let Some((tx, _)) = self.notice.get() {
            let _ = tx.try_send(());
        }
        if let Some(other) = self.reverse.get().and_then(std::sync::Weak::upgrade) {
            other.wake();
        }
    }

    /// The recorded fault, once.
    fn take_fault(&self) -> Option<String> {
        if !self.faulted.load(Ordering::SeqCst) {
            return None;
        }
        self.faulted.store(false, Ordering::SeqCst);
        if let Some((_, rx)) = self.notice.get() {
            while rx.try_recv().is_ok() {}
        }
        self.fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The receiver that a recorded fault wakes (checked again after it exists, so a fault
    /// recorded meanwhile is not missed).
    pub(crate) fn notice(&self) -> &Receiver<()> {
        &self.notice.get_or_init(|| crossbeam_channel::bounded(1)).1
    }
}

/// Where a channel end's `put` goes.
pub(crate) enum Tx<S> {
    /// Another end in this process: the value is moved.
    Local {
        sender: Sender<S>,
        /// Wakes the peer's `recv().await`; records what could not be passed on.
        peer_waker: Arc<Direction>,
        /// The relay of the direction, once the peer went to another node.
        own: Arc<OwnPass<S>>,
    },
    /// An end on another node: the value is encoded and written by the caller.
    Remote {
        endpoint: Arc<Endpoint>,
        put: RemotePut<S>,
    },
}

/// A remote `put`, monomorphized where `S` is known to be a message.
pub(crate) type RemotePut<S> = fn(&Arc<Endpoint>, S, bool) -> Result<(), (Option<S>, ChannelError)>;

/// Where a channel end's `get` takes from.
pub(crate) enum Rx<R> {
    /// Values moved by a peer in this process.
    Local {
        rx: Receiver<R>,
        /// Woken by the peer's `put` and drop.
        waker: Arc<Direction>,
        /// See [`Tx::Local`]'s.
        own: Arc<OwnPass<R>>,
    },
    /// Messages that arrived from another node, decoded by the taker.
    Remote {
        endpoint: Arc<Endpoint>,
        decode: RemoteDecode<R>,
        /// A message a [`Select`](crate::Select) took and decoded for this end, until got.
        stash: Mutex<Option<Result<R, ChannelError>>>,
        stashed: AtomicBool,
    },
}

/// A remote decode, monomorphized where `R` is known to be a message.
pub(crate) type RemoteDecode<R> = fn(Incoming) -> Result<R, (Arc<Endpoint>, String)>;

impl<S> Tx<S> {
    pub(crate) fn duplicate(&self) -> Tx<S> {
        match self {
            Tx::Local {
                sender,
                peer_waker,
                own,
            } => Tx::Local {
                sender: sender.clone(),
                peer_waker: peer_waker.clone(),
                own: own.clone(),
            },
            Tx::Remote { endpoint, put } => Tx::Remote {
                endpoint: endpoint.clone(),
                put: *put,
            },
        }
    }

    /// Sends `value`; with `block` false, gives it back instead of waiting for room.
    pub(crate) fn send(&self, value: S, block: bool) -> Result<(), (Option<S>, ChannelError)> {
        match self {
            Tx::Local {
                sender,
                peer_waker,
                own,
            } => {
                // Taken first, so that a fault the relay records for this very value is left
                // for the next call (which is told of an earlier message).
                let earlier = peer_waker.take_fault();
                // The receiving end went to another node: with nothing queued before it, this
                // value goes straight on (see `splice`).
                let sent = match own.pass(value) {
                    Ok(()) => Ok(()),
                    Err(value) => Self::queue(sender, peer_waker, value, block),
                };
                if sent.is_ok() {
                    // An earlier message went to a relay that could not pass it on.
                    if let Some(reason) = earlier {
                        return Err((
                            None,
                            ChannelError::Dropped {
                                message: std::any::type_name::<S>(),
                                reason,
                            },
                        ));
                    }
                } else if let Some(reason) = earlier {
                    peer_waker.set_fault(reason);
                }
                sent
            }
            Tx::Remote { endpoint, put } => put(endpoint, value, block),
        }
    }

    /// Queues `value` on a local channel (waking its receiver and relay).
    fn queue(
        sender: &Sender<S>,
        peer_waker: &Direction,
        value: S,
        block: bool,
    ) -> Result<(), (Option<S>, ChannelError)> {
        let sent = if block {
            send_local(sender, value).map_err(|e| match e {
                ChannelError::Closed => (None, peer_waker.closed_error()),
                e => (None, e),
            })
        } else {
            sender.try_send(value).map_err(|e| match e {
                crossbeam_channel::TrySendError::Full(v) => (Some(v), ChannelError::Full),
                crossbeam_channel::TrySendError::Disconnected(v) => {
                    (Some(v), peer_waker.closed_error())
                }
            })
        };
        if sent.is_ok() {
            peer_waker.wake();
            peer_waker.kick();
        }
        sent
    }

    pub(crate) fn put(&self, value: S) -> Result<(), ChannelError> {
        self.send(value, true).map_err(|(_, e)| e)
    }

    /// Ends this sending side (the peer sees the channel close).
    pub(crate) fn close(self) {
        match self {
            Tx::Local {
                sender, peer_waker, ..
            } => {
                drop(sender);
                // After the sender is gone, so the peer's pending `recv().await` sees `Closed`.
                peer_waker.wake();
                peer_waker.ring();
            }
            Tx::Remote { endpoint, .. } => endpoint.close(),
        }
    }
}

/// Sends on a local queue; a bounded one that is full makes the caller wait, and a place that
/// waits there is still ended at once by a kill.
fn send_local<S>(sender: &Sender<S>, value: S) -> Result<(), ChannelError> {
    let value = match sender.try_send(value) {
        Ok(()) => return Ok(()),
        Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(ChannelError::Closed),
        Err(crossbeam_channel::TrySendError::Full(v)) => v,
    };
    let Some(ctx) = context::current() else {
        return sender.send(value).map_err(|_| ChannelError::Closed);
    };
    let mut sel = crossbeam_channel::Select::new();
    let send = sel.send(sender);
    let kill = sel.recv(&ctx.kill);
    let op = sel.select();
    if op.index() == send {
        op.send(sender, value).map_err(|_| ChannelError::Closed)
    } else {
        debug_assert_eq!(op.index(), kill);
        let _ = op.recv(&ctx.kill);
        context::killed()
    }
}

/// The error of a failed [`PlaceChannel::try_put`].
pub enum TryPutError<S> {
    /// The channel had no room (a bounded channel is full, or the remote receiver holds a
    /// window's worth of messages it has not taken): the value is given back.
    Full(S),
    /// The put failed as [`put`](PlaceChannel::put) would have (the value is dropped), or, for
    /// [`ChannelError::Dropped`], it succeeded and reports an earlier message that was dropped.
    Failed(ChannelError),
}

impl<S> TryPutError<S> {
    /// Whether the channel only had no room (a later `put` may succeed).
    pub fn is_full(&self) -> bool {
        matches!(self, TryPutError::Full(_))
    }

    /// The value given back by [`TryPutError::Full`].
    pub fn into_inner(self) -> Option<S> {
        match self {
            TryPutError::Full(v) => Some(v),
            TryPutError::Failed(_) => None,
        }
    }

    /// The error, as a [`ChannelError`] ([`ChannelError::Full`] for a full channel).
    pub fn error(&self) -> ChannelError {
        match self {
            TryPutError::Full(_) => ChannelError::Full,
            TryPutError::Failed(e) => e.clone(),
        }
    }
}

impl<S> fmt::Debug for TryPutError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("Full(..)"),
            TryPutError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<S> fmt::Display for TryPutError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error(), f)
    }
}

impl<S> std::error::Error for TryPutError<S> {}

/// How a wait for a queue's next item ended.
pub(crate) enum Waited<T> {
    Got(T),
    Disconnected,
    Timeout,
    Break(crate::BreakKind),
    Stopped,
}

/// How long a `get` on a channel fed from the network polls before it blocks.
const REMOTE_SPIN: Duration = Duration::from_micros(100);

/// Waits for the next item of `rx`, until `deadline`, watching the place's kill and break
/// signals (inside a place) and `stop` (for relays). `network` makes it poll a little longer
/// before it blocks, since a reply is usually one round trip away and a parked thread costs a
/// wake-up on top of it.
pub(crate) fn wait_item<T>(
    rx: &Receiver<T>,
    deadline: Option<Instant>,
    stop: Option<&Receiver<()>>,
    network: bool,
) -> Result<Waited<T>, ChannelError> {
    let ctx = context::current();
    if let Some(c) = &ctx {
        if c.killed.load(Ordering::Relaxed) {
            return context::killed();
        }
    }
    match rx.try_recv() {
        Ok(v) => return Ok(Waited::Got(v)),
        Err(TryRecvError::Disconnected) => return Ok(Waited::Disconnected),
        Err(TryRecvError::Empty) => {}
    }
    if ctx.is_some() {
        // The same brief spin crossbeam does before parking: a reply that is microseconds away
        // should not cost a thread wake-up.
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            backoff.snooze();
            match rx.try_recv() {
                Ok(v) => return Ok(Waited::Got(v)),
                Err(TryRecvError::Disconnected) => return Ok(Waited::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
        }
    }
    if network {
        // While it polls, this thread reads the process's connections itself (when the network
        // layer lets it): a message that arrives meanwhile wakes no reading thread.
        let mut polling = Polling::begin();
        let start = Instant::now();
        while start.elapsed() < REMOTE_SPIN && deadline.is_none_or(|d| Instant::now() < d) {
            polling.poll();
            match rx.try_recv() {
                Ok(v) => {
                    polling.got();
                    return Ok(Waited::Got(v));
                }
                Err(TryRecvError::Disconnected) => return Ok(Waited::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            std::thread::yield_now();
        }
    }
    block_on_item(rx, ctx.as_deref(), deadline, stop)
}

/// Polls `rx` for up to [`REMOTE_SPIN`] (or `deadline`), moving what arrives for the relay that
/// feeds it with `pull` and reading the network meanwhile; `None` when nothing came (the caller
/// then waits as usual, and the relay's thread moves what arrives).
fn spin_pull<T>(rx: &Receiver<T>, pull: &dyn Pull, deadline: Option<Instant>) -> Option<T> {
    struct Spinning<'a>(&'a dyn Pull);
    impl Drop for Spinning<'_> {
        fn drop(&mut self) {
            self.0.spin_end();
        }
    }
    pull.spin_begin();
    let _spinning = Spinning(pull);
    let mut polling = Polling::begin();
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(v) => {
                polling.got();
                return Some(v);
            }
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        if pull.pull() {
            continue;
        }
        if start.elapsed() >= REMOTE_SPIN || deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        polling.poll();
        if pull.pull() {
            continue;
        }
        std::thread::yield_now();
    }
}

fn block_on_item<T>(
    rx: &Receiver<T>,
    ctx: Option<&PlaceContext>,
    deadline: Option<Instant>,
    stop: Option<&Receiver<()>>,
) -> Result<Waited<T>, ChannelError> {
    let mut sel = crossbeam_channel::Select::new();
    let msg = sel.recv(rx);
    // In a destructor running while the place unwinds, a second unwind would abort: there the
    // signals are not watched.
    let signals = ctx.filter(|_| !std::thread::panicking());
    let kill = signals.map(|c| sel.recv(&c.kill));
    let brk = signals.map(|c| sel.recv(&c.breaks));
    let halt = stop.map(|s| sel.recv(s));
    let op = match deadline {
        None => sel.select(),
        Some(d) => match sel.select_deadline(d) {
            Ok(op) => op,
            Err(_) => return Ok(Waited::Timeout),
        },
    };
    let i = op.index();
    if i == msg {
        return Ok(match op.recv(rx) {
            Ok(v) => Waited::Got(v),
            Err(_) => Waited::Disconnected,
        });
    }
    if let (Some(k), Some(c)) = (kill, signals) {
        if i == k {
            let _ = op.recv(&c.kill);
            return context::killed();
        }
    }
    if let (Some(b), Some(c)) = (brk, signals) {
        if i == b {
            return match op.recv(&c.breaks) {
                Ok(kind) => Ok(Waited::Break(kind)),
                Err(_) => context::killed(),
            };
        }
    }
    if let (Some(h), Some(s)) = (halt, stop) {
        if i == h {
            let _ = op.recv(s);
            return Ok(Waited::Stopped);
        }
    }
    unreachable!("select returned an operation that was not registered")
}

/// Makes a cross-linked pair of place channels: what is put on one is got from the other.
///
/// Racket's `(place-channel)`. Typically one end stays here and the other is sent to a place.
///
/// # Examples
///
/// ```
/// let (here, there) = places::place_channel::<String, u8>();
/// std::thread::spawn(move || there.put(there.get().unwrap().len() as u8));
/// assert_eq!(here.put_get("four".to_string()).unwrap(), 4);
/// ```
pub fn place_channel<A: Message, B: Message>() -> (PlaceChannel<A, B>, PlaceChannel<B, A>) {
    raw_pair()
}

/// The pair without the `Message` bound, for the runtime's own use.
pub(crate) fn raw_pair<A, B>() -> (PlaceChannel<A, B>, PlaceChannel<B, A>) {
    pair_with(
        crossbeam_channel::unbounded::<A>(),
        crossbeam_channel::unbounded::<B>(),
        None,
    )
}

/// Makes a cross-linked pair whose directions each hold at most `capacity` messages (at least
/// one): a `put` on a full direction waits until the other end takes one, so a fast producer
/// cannot run a slow consumer out of memory (flow control). A `put` that waits inside a place
/// still ends at once if the place is killed. The bound holds when an end is sent to another
/// node: a producer there waits once `capacity` of its messages are not yet taken here.
///
/// # Examples
///
/// ```
/// let (producer, consumer) = places::bounded_place_channel::<u32, ()>(2);
/// let t = std::thread::spawn(move || {
///     for i in 0..10 {
///         producer.put(i).unwrap(); // waits while two are queued
///     }
/// });
/// while consumer.len() < 2 {
///     std::thread::sleep(std::time::Duration::from_millis(5));
/// }
/// std::thread::sleep(std::time::Duration::from_millis(50));
/// assert_eq!(consumer.len(), 2); // and no more: the producer waits
/// let all: Vec<u32> = (0..10).map(|_| consumer.get().unwrap()).collect();
/// assert_eq!(all, (0..10).collect::<Vec<_>>());
/// t.join().unwrap();
/// ```
pub fn bounded_place_channel<A: Message, B: Message>(
    capacity: usize,
) -> (PlaceChannel<A, B>, PlaceChannel<B, A>) {
    let capacity = capacity.max(1);
    pair_with(
        crossbeam_channel::bounded::<A>(capacity),
        crossbeam_channel::bounded::<B>(capacity),
        Some(Arc::new(PairHook::new(capacity))),
    )
}

fn pair_with<A, B>(
    (a_tx, b_rx): (Sender<A>, Receiver<A>),
    (b_tx, a_rx): (Sender<B>, Receiver<B>),
    hook: Option<Arc<PairHook>>,
) -> (PlaceChannel<A, B>, PlaceChannel<B, A>) {
    let a_waker = Arc::new(Direction::default());
    let b_waker = Arc::new(Direction::default());
    let a_own = Arc::new(OwnPass::<A>::default());
    let b_own = Arc::new(OwnPass::<B>::default());
    let _ = a_waker.reverse.set(Arc::downgrade(&b_waker));
    let _ = b_waker.reverse.set(Arc::downgrade(&a_waker));
    (
        PlaceChannel::from_parts(
            Tx::Local {
                sender: a_tx,
                peer_waker: b_waker.clone(),
                own: a_own.clone(),
            },
            Rx::Local {
                rx: a_rx,
                waker: a_waker.clone(),
                own: b_own.clone(),
            },
            hook.clone().map(|h| (h, 0)),
        ),
        PlaceChannel::from_parts(
            Tx::Local {
                sender: b_tx,
                peer_waker: a_waker,
                own: b_own,
            },
            Rx::Local {
                rx: b_rx,
                waker: b_waker,
                own: a_own,
            },
            hook.map(|h| (h, 1)),
        ),
    )
}

/// A channel end whose peer is on another node, on `endpoint`: `put` encodes and writes a
/// message on its link, `get` takes (and decodes) what arrived for it. Used by the network layer
/// for the channels of remote places and connections.
pub fn remote_channel<S: Message, R: Message>(endpoint: Arc<Endpoint>) -> PlaceChannel<S, R> {
    PlaceChannel::from_parts(
        Tx::Remote {
            endpoint: endpoint.clone(),
            put: crate::transport::put_remote::<S>,
        },
        Rx::Remote {
            endpoint,
            decode: decode_incoming::<R>,
            stash: Mutex::new(None),
            stashed: AtomicBool::new(false),
        },
        None,
    )
}

impl<S, R> PlaceChannel<S, R> {
    pub(crate) fn from_parts(tx: Tx<S>, rx: Rx<R>, bound: Option<(Arc<PairHook>, usize)>) -> Self {
        Self {
            tx: ManuallyDrop::new(tx),
            rx,
            forwarded: AtomicBool::new(false),
            bound,
            extension: OnceLock::new(),
        }
    }

    /// Sends `value` to the other end (Racket's `place-channel-put`).
    ///
    /// A local `put` returns at once (on a [bounded](bounded_place_channel) channel it waits
    /// while the channel is full). A `put` to another node encodes the value and writes it; it
    /// waits while the receiver holds a window's worth of messages it has not taken.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Closed`] if the other end is gone (the value is dropped);
    /// [`ChannelError::Lost`] if its node is gone; [`ChannelError::Unsendable`] if the value
    /// cannot be encoded or exceeds the largest message the receiving node accepts (nothing is
    /// sent then). [`ChannelError::Dropped`] reports an *earlier* message of this end that the
    /// receiver dropped (once, here or at the next `get`); the value of this call was sent. A
    /// local end whose peer was sent to another node reports so a message that could not be
    /// passed on to it (too large for that node, say): its local `put` had succeeded.
    pub fn put(&self, value: S) -> Result<(), ChannelError> {
        context::check_killed();
        self.tx.put(value)
    }

    /// Sends `value` only if that needs no waiting: a full bounded channel, or a remote one whose
    /// receiver has a window's worth of messages not yet taken, gives the value back with
    /// [`ChannelError::Full`].
    ///
    /// # Errors
    ///
    /// [`TryPutError::Full`] with the value when there is no room, or
    /// [`TryPutError::Failed`] with the errors of [`put`](Self::put).
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _b) = places::bounded_place_channel::<u8, ()>(1);
    /// a.try_put(1).unwrap();
    /// let full = a.try_put(2).unwrap_err();
    /// assert!(full.is_full());
    /// assert_eq!(full.into_inner(), Some(2));
    /// ```
    pub fn try_put(&self, value: S) -> Result<(), TryPutError<S>> {
        context::check_killed();
        self.tx.send(value, false).map_err(|(v, error)| match v {
            Some(value) if error == ChannelError::Full => TryPutError::Full(value),
            _ => TryPutError::Failed(error),
        })
    }

    /// Waits for the next message (Racket's `place-channel-get`).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Closed`] once the other end is gone and every message it sent has been
    /// got ([`ChannelError::Lost`] when its node is gone). Inside a place,
    /// [`ChannelError::Break`] if the place is sent a break while it waits; a killed place does
    /// not return from `get` at all, it ends. [`ChannelError::Dropped`] once, if the receiver
    /// on another node dropped a message this end sent (no message is taken then; the next
    /// `get` goes on): a caller waiting for the answer to a message that was dropped learns of
    /// it here instead of waiting forever. A loop that serves requests should go on after it.
    pub fn get(&self) -> Result<R, ChannelError> {
        self.get_until(None, None)
    }

    /// Like [`get`](Self::get), but gives up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Timeout`] when no message arrives in time, and the errors of `get`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<R, ChannelError> {
        // A timeout too long to add to now is no deadline at all.
        let deadline = Instant::now().checked_add(timeout);
        match self.get_until(deadline, None) {
            Err(ChannelError::Timeout(_)) => Err(ChannelError::Timeout(timeout)),
            other => other,
        }
    }

    /// Why this local end finds its channel closed: `Lost` naming the node when the relay of
    /// its peer ended with the connection to that node, else `Closed`.
    pub(crate) fn local_closed(&self) -> ChannelError {
        match &self.rx {
            Rx::Local { waker, .. } => waker.closed_error(),
            Rx::Remote { .. } => ChannelError::Closed,
        }
    }

    /// A fault recorded for a message this (local) end put, as the error that reports it; once.
    pub(crate) fn local_fault(&self) -> Option<ChannelError> {
        match &*self.tx {
            Tx::Local { peer_waker, .. } => {
                peer_waker.take_fault().map(|reason| ChannelError::Dropped {
                    message: std::any::type_name::<S>(),
                    reason,
                })
            }
            Tx::Remote { .. } => None,
        }
    }

    /// Takes a message if one is waiting, without blocking.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Empty`] when no message is waiting, [`ChannelError::Closed`] when none
    /// will ever come.
    pub fn try_get(&self) -> Result<R, ChannelError> {
        context::check_killed();
        if let Some(e) = self.local_fault() {
            return Err(e);
        }
        match &self.rx {
            Rx::Local { rx, waker, .. } => match rx.try_recv() {
                Ok(v) => {
                    self.after_local_take();
                    Ok(v)
                }
                Err(TryRecvError::Empty) => match waker.pull.get() {
                    // What arrived for a relay feeding this end, it may move itself.
                    Some(pull) if pull.pull() => match rx.try_recv() {
                        Ok(v) => {
                            self.after_local_take();
                            Ok(v)
                        }
                        Err(TryRecvError::Empty) => Err(ChannelError::Empty),
                        Err(TryRecvError::Disconnected) => Err(self.local_closed()),
                    },
                    _ => Err(ChannelError::Empty),
                },
                Err(TryRecvError::Disconnected) => Err(self.local_closed()),
            },
            Rx::Remote { endpoint, .. } => {
                if let Some(done) = self.remote_ready(endpoint) {
                    return done;
                }
                loop {
                    match endpoint.queue().try_recv() {
                        Ok(item) => {
                            if let Some(done) = self.take_item(item) {
                                return done;
                            }
                        }
                        Err(TryRecvError::Empty) => return Err(ChannelError::Empty),
                        Err(TryRecvError::Disconnected) => return Err(endpoint.closed_error()),
                    }
                }
            }
        }
    }

    /// Sends `value`, then waits for the next message (Racket's `place-channel-put/get`).
    ///
    /// # Errors
    ///
    /// The errors of [`put`](Self::put) and [`get`](Self::get).
    pub fn put_get(&self, value: S) -> Result<R, ChannelError> {
        self.put(value)?;
        self.get()
    }

    /// Waits for the next message without blocking the thread, for async code.
    ///
    /// The future is cancel-safe: dropping it before it completes loses no message. One task at a
    /// time should await `recv` on an end (the end keeps one waker).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Closed`] once the other end is gone and no message is left.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let (a, b) = places::place_channel::<u32, u32>();
    /// std::thread::spawn(move || b.put(b.get().unwrap() * 2));
    /// a.put(21).unwrap();
    /// assert_eq!(a.recv().await.unwrap(), 42);
    /// # });
    /// ```
    pub fn recv(&self) -> Recv<'_, S, R> {
        Recv::new(self)
    }

    /// A send-only handle to this channel's peer that can be cloned and kept (for example by a
    /// logging callback). While one is alive, a local peer does not see the channel as closed.
    pub fn sender(&self) -> ReplyTo<S> {
        ReplyTo::new(self.tx.duplicate())
    }

    /// The number of messages waiting to be got.
    pub fn len(&self) -> usize {
        match &self.rx {
            Rx::Local { rx, .. } => rx.len(),
            Rx::Remote { endpoint, .. } => endpoint.queue().len(),
        }
    }

    /// Whether no message is waiting to be got.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The endpoint of a channel whose peer is on another node.
    pub fn endpoint(&self) -> Option<&Arc<Endpoint>> {
        match &*self.tx {
            Tx::Remote { endpoint, .. } => Some(endpoint),
            Tx::Local { .. } => None,
        }
    }

    /// The runtime's per-end state of type `T`, made on first use.
    pub(crate) fn extension<T: Default + Send + Sync + 'static>(&self) -> Option<&T> {
        self.extension
            .get_or_init(|| Box::new(T::default()))
            .downcast_ref::<T>()
    }

    pub(crate) fn tx(&self) -> &Tx<S> {
        &self.tx
    }

    pub(crate) fn rx(&self) -> &Rx<R> {
        &self.rx
    }

    pub(crate) fn bound(&self) -> Option<&(Arc<PairHook>, usize)> {
        self.bound.as_ref()
    }

    /// Marks this end as passed on to another node: its relays own closing it now.
    pub(crate) fn set_forwarded(&self) {
        self.forwarded.store(true, Ordering::Relaxed);
    }

    /// After a value was taken from the local queue: a bounded pair's peer may have passed its
    /// end on, and then its producer learns of the room.
    #[inline]
    pub(crate) fn after_local_take(&self) {
        if let Some((hook, me)) = &self.bound {
            hook.taken(*me);
        }
    }

    /// What a select took for this end, or an error this end has to report first.
    fn remote_ready(&self, endpoint: &Endpoint) -> Option<Result<R, ChannelError>> {
        if let Rx::Remote { stash, stashed, .. } = &self.rx {
            if stashed.swap(false, Ordering::AcqRel) {
                if let Some(done) = stash.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    return Some(done);
                }
            }
        }
        endpoint.take_any_error(std::any::type_name::<S>()).map(Err)
    }

    /// Makes one queue item of a remote end into the `get` result, or `None` for an item that
    /// gives nothing (an undecodable message: dropped, and its sender told).
    pub(crate) fn take_item(&self, item: Item) -> Option<Result<R, ChannelError>> {
        let Rx::Remote {
            endpoint, decode, ..
        } = &self.rx
        else {
            return None;
        };
        match item {
            Item::Notice => endpoint.take_any_error(std::any::type_name::<S>()).map(Err),
            // Only the relay of a bridged end acts on a handoff.
            Item::Handoff { .. } => None,
            Item::Message(msg) => {
                msg.from.taken(msg.charge);
                match decode(msg) {
                    Ok(v) => Some(Ok(v)),
                    Err((from, reason)) => {
                        tracing::warn!(
                            target: "places",
                            "dropped a message from {} on channel {}: {reason}",
                            from.link().peer(),
                            from.id()
                        );
                        from.link().send_control(from.id(), Control::Error(reason));
                        None
                    }
                }
            }
        }
    }

    /// Puts a result a select took into the stash, for the `recv` that completes the select.
    pub(crate) fn stash(&self, done: Result<R, ChannelError>) {
        if let Rx::Remote { stash, stashed, .. } = &self.rx {
            *stash.lock().unwrap_or_else(PoisonError::into_inner) = Some(done);
            stashed.store(true, Ordering::Release);
        }
    }

    pub(crate) fn take_stash(&self) -> Option<Result<R, ChannelError>> {
        match &self.rx {
            Rx::Remote { stash, stashed, .. } => {
                stashed.store(false, Ordering::Release);
                stash.lock().unwrap_or_else(PoisonError::into_inner).take()
            }
            Rx::Local { .. } => None,
        }
    }

    /// `get` with a deadline and a stop signal (for relays).
    pub(crate) fn get_until(
        &self,
        deadline: Option<Instant>,
        stop: Option<&Receiver<()>>,
    ) -> Result<R, ChannelError> {
        let timed_out = || ChannelError::Timeout(Duration::ZERO);
        match &self.rx {
            Rx::Local { rx, .. } => {
                // A message this end put that a relay could not pass on is reported here, and a
                // wait is woken for it (a caller waiting for its answer would wait forever).
                let fault = match (&*self.tx, stop) {
                    (Tx::Local { peer_waker, .. }, None) => Some(&**peer_waker),
                    _ => None,
                };
                loop {
                    let notice = match fault {
                        Some(f) => {
                            if let Some(e) = self.local_fault() {
                                return Err(e);
                            }
                            // Watched even before the peer is relayed: it may be relayed
                            // (and a message dropped) while this `get` waits.
                            let n = f.notice();
                            std::sync::atomic::fence(Ordering::SeqCst);
                            if let Some(e) = self.local_fault() {
                                return Err(e);
                            }
                            Some(n)
                        }
                        None => stop,
                    };
                    // A relay (the one caller with a stop signal) polls as a network wait
                    // does: what it passes on is part of a round trip between nodes. So does
                    // an end whose peer was sent to another node: what it waits for comes
                    // from there, through a relay.
                    let mut network =
                        stop.is_some() || fault.is_some_and(|f| f.relayed.load(Ordering::Relaxed));
                    // Fed by a relay from another node: this thread moves what arrives itself
                    // while it polls, rather than wake the relay's thread.
                    if let (Rx::Local { waker, .. }, None) = (&self.rx, stop) {
                        if let Some(pull) = waker.pull.get() {
                            if let Some(v) = spin_pull(rx, &*pull, deadline) {
                                self.after_local_take();
                                return Ok(v);
                            }
                            network = false;
                        }
                    }
                    return match wait_item(rx, deadline, notice, network)? {
                        Waited::Got(v) => {
                            self.after_local_take();
                            Ok(v)
                        }
                        Waited::Stopped if fault.is_some() && stop.is_none() => continue,
                        Waited::Disconnected => Err(self.local_closed()),
                        Waited::Stopped => Err(ChannelError::Closed),
                        Waited::Timeout => Err(timed_out()),
                        Waited::Break(kind) => Err(ChannelError::Break(kind)),
                    };
                }
            }
            Rx::Remote { endpoint, .. } => {
                if let Some(done) = self.remote_ready(endpoint) {
                    return done;
                }
                loop {
                    match wait_item(endpoint.queue(), deadline, stop, true)? {
                        Waited::Got(item) => {
                            if let Some(done) = self.take_item(item) {
                                return done;
                            }
                        }
                        Waited::Disconnected => return Err(endpoint.closed_error()),
                        Waited::Stopped => return Err(ChannelError::Closed),
                        Waited::Timeout => return Err(timed_out()),
                        Waited::Break(kind) => return Err(ChannelError::Break(kind)),
                    }
                }
            }
        }
    }
}

impl<S, R> Drop for PlaceChannel<S, R> {
    fn drop(&mut self) {
        // SAFETY: `tx` is never used again: this is the channel's destructor.
        let tx = unsafe { ManuallyDrop::take(&mut self.tx) };
        match tx {
            Tx::Remote { .. } if self.forwarded.load(Ordering::Relaxed) => {}
            tx => tx.close(),
        }
    }
}

impl<S, R> fmt::Debug for PlaceChannel<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaceChannel")
            .field("sends", &std::any::type_name::<S>())
            .field("receives", &std::any::type_name::<R>())
            .field("waiting", &self.len())
            .finish()
    }
}

/// What every kind of channel end can do (Racket's `*channel-put`, `*channel-get`): local place
/// channels, local places, and (in the network layer) remote places and connections.
///
/// Write code against `Channel` to run it unchanged on a local or a remote place.
///
/// # Examples
///
/// ```
/// use places::{Channel, ChannelError};
///
/// fn ask<C: Channel<u32, u32>>(c: &C, n: u32) -> Result<u32, ChannelError> {
///     c.put_get(n)
/// }
///
/// let (a, b) = places::place_channel::<u32, u32>();
/// std::thread::spawn(move || b.put(b.get().unwrap() + 1));
/// assert_eq!(ask(&a, 41).unwrap(), 42);
/// ```
pub trait Channel<S, R> {
    /// The end's place channel.
    fn place_channel(&self) -> &PlaceChannel<S, R>;

    /// See [`PlaceChannel::put`].
    ///
    /// # Errors
    ///
    /// As [`PlaceChannel::put`].
    fn put(&self, value: S) -> Result<(), ChannelError> {
        self.place_channel().put(value)
    }

    /// See [`PlaceChannel::get`].
    ///
    /// # Errors
    ///
    /// As [`PlaceChannel::get`].
    fn get(&self) -> Result<R, ChannelError> {
        self.place_channel().get()
    }

    /// See [`PlaceChannel::put_get`].
    ///
    /// # Errors
    ///
    /// As [`PlaceChannel::put_get`].
    fn put_get(&self, value: S) -> Result<R, ChannelError> {
        self.place_channel().put_get(value)
    }

    /// See [`PlaceChannel::get_timeout`].
    ///
    /// # Errors
    ///
    /// As [`PlaceChannel::get_timeout`].
    fn get_timeout(&self, timeout: Duration) -> Result<R, ChannelError> {
        self.place_channel().get_timeout(timeout)
    }
}

impl<S, R> Channel<S, R> for PlaceChannel<S, R> {
    fn place_channel(&self) -> &PlaceChannel<S, R> {
        self
    }
}

#[cfg(test)]
mod tests;
