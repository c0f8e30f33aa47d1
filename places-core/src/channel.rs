//! Place channels: typed, asynchronous, two-way endpoints.

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use crossbeam_utils::Backoff;

use crate::context::{self, PlaceContext};
use crate::error::{ChannelError, CodecError};
use crate::message::Message;

/// One end of a two-way place channel: sends `S`, receives `R`.
///
/// The other end, a `PlaceChannel<R, S>`, is held by another place (or thread, or task). `put` never
/// blocks; `get` waits for a message and fails with [`ChannelError::Closed`] once the other end is
/// gone and no message is left, so a `get` never hangs on a dead peer. Messages between two ends
/// arrive in the order they were sent.
///
/// Local delivery moves the value: nothing is copied or encoded. A place channel is itself a
/// [`Message`](crate::Message), so it can be sent to another place to set up a direct line.
///
/// Waiting is cheap in both directions: a `get` spins briefly before it parks its thread, so a
/// ping-pong between two busy places does not pay an operating-system wake-up per message.
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
    rx: Receiver<R>,
    /// Woken by the peer's `put` and drop.
    own_waker: Arc<AtomicWaker>,
    /// Set (for a channel fed from the network) to say why the channel closed, e.g. which node
    /// was lost.
    closed_reason: Option<Arc<OnceLock<String>>>,
    /// Set when this end was passed on to another node: the proxy then owns closing it.
    forwarded: std::sync::atomic::AtomicBool,
}

/// Where a channel end's `put` goes.
enum Tx<S> {
    /// Another end in this process: the value is moved.
    Local {
        sender: Sender<S>,
        /// Wakes the peer's `recv().await`.
        peer_waker: Arc<AtomicWaker>,
    },
    /// An end on another node: the value is encoded once and written as a frame by the caller.
    Remote {
        sink: Arc<dyn FrameSink>,
        id: u64,
        encode: fn(&S) -> Result<Vec<u8>, CodecError>,
        /// The value's bytes as they are, for numeric vectors (written without a copy).
        raw: RawView<S>,
    },
}

/// See [`crate::codec::raw_view`].
type RawView<S> = for<'a> fn(&'a S) -> Option<(u8, &'a [u8])>;

impl<S> Tx<S> {
    fn duplicate(&self) -> Tx<S> {
        match self {
            Tx::Local { sender, peer_waker } => Tx::Local {
                sender: sender.clone(),
                peer_waker: peer_waker.clone(),
            },
            Tx::Remote {
                sink,
                id,
                encode,
                raw,
            } => Tx::Remote {
                sink: sink.clone(),
                id: *id,
                encode: *encode,
                raw: *raw,
            },
        }
    }

    fn put(&self, value: S) -> Result<(), ChannelError> {
        match self {
            Tx::Local { sender, peer_waker } => {
                send_local(sender, value)?;
                peer_waker.wake();
                Ok(())
            }
            Tx::Remote {
                sink,
                id,
                encode,
                raw,
            } => {
                if let Some((version, bytes)) = raw(&value) {
                    return sink.send_data_parts(*id, version, bytes);
                }
                encode_and_send(sink, *id, || encode(&value))
            }
        }
    }
}

thread_local! {
    /// The start signals of the channel proxies made while encoding the current message.
    static PENDING_GATES: std::cell::RefCell<Vec<Sender<bool>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes a message for `sink` and sends it on channel `id`. Channel ends inside it get proxies
/// that start forwarding only once this message is out (so the peer learns of a channel before
/// any of its traffic), or close their channel if it never goes out.
fn encode_and_send(
    sink: &Arc<dyn FrameSink>,
    id: u64,
    encode: impl FnOnce() -> Result<Vec<u8>, CodecError>,
) -> Result<(), ChannelError> {
    let outer = PENDING_GATES.with(|g| std::mem::take(&mut *g.borrow_mut()));
    let encoded = with_transport(sink, encode);
    let gates = PENDING_GATES.with(|g| std::mem::replace(&mut *g.borrow_mut(), outer));
    let sent = encoded
        .map_err(|e| ChannelError::Unsendable(e.to_string()))
        .and_then(|bytes| sink.send_data(id, bytes));
    for gate in gates {
        let _ = gate.send(sent.is_ok());
    }
    sent
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

thread_local! {
    /// The connection a message is being encoded for or decoded from, so that place channels
    /// inside it can be carried across (see the `Serialize` impl of [`PlaceChannel`]).
    static TRANSPORT: std::cell::RefCell<Option<Arc<dyn FrameSink>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `sink` as the current transport.
fn with_transport<T>(sink: &Arc<dyn FrameSink>, f: impl FnOnce() -> T) -> T {
    let previous = TRANSPORT.with(|t| t.borrow_mut().replace(sink.clone()));
    let out = f();
    TRANSPORT.with(|t| *t.borrow_mut() = previous);
    out
}

fn current_transport() -> Option<Arc<dyn FrameSink>> {
    TRANSPORT.with(|t| t.borrow().clone())
}

/// A message that reached a named place through one of its connections, with the route back to
/// that connection (Racket's `(list msg src)`).
///
/// A named place's entry receives these: `fn server(ch: PlaceChannel<(), Routed<Req, Resp>>)`.
/// Each client of `connect_to_named_place` has its own route, so replies never cross.
pub struct Routed<Req, Resp> {
    /// The client's message.
    pub msg: Req,
    /// Where the answer goes.
    pub reply: ReplyTo<Resp>,
}

/// The sending side of one connection to a named place; cheap to clone and keep.
pub struct ReplyTo<T> {
    tx: Arc<SendHalf<T>>,
}

/// A sender kept apart from its channel end; dropping the last one wakes an async receiver,
/// which must see the channel close.
struct SendHalf<T>(ManuallyDrop<Tx<T>>);

impl<T> Drop for SendHalf<T> {
    fn drop(&mut self) {
        // SAFETY: `0` is never used again: this is its destructor.
        if let Tx::Local { sender, peer_waker } = unsafe { ManuallyDrop::take(&mut self.0) } {
            drop(sender);
            peer_waker.wake();
        }
    }
}

impl<T> Clone for ReplyTo<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T> ReplyTo<T> {
    /// Sends `value` back to the connection the message came from.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Closed`] or [`ChannelError::Lost`] when that client is gone.
    pub fn put(&self, value: T) -> Result<(), ChannelError> {
        context::check_killed();
        self.tx.0.put(value)
    }
}

impl<T> fmt::Debug for ReplyTo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyTo(..)")
    }
}

impl<Req: fmt::Debug, Resp> fmt::Debug for Routed<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routed")
            .field("msg", &self.msg)
            .finish_non_exhaustive()
    }
}

/// The producer side of a channel end's queue, as the network layer feeds it: closing drops the
/// sender (so the end sees the closure once the queue drains); every push and close wakes an
/// async receiver.
struct Feed<T> {
    tx: Mutex<Option<Sender<T>>>,
    waker: Arc<AtomicWaker>,
}

impl<T> Drop for Feed<T> {
    fn drop(&mut self) {
        // A feed that was never closed still ends its queue: wake an async receiver to see it.
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.waker.wake();
    }
}

impl<T> Feed<T> {
    fn new(tx: Sender<T>, waker: Arc<AtomicWaker>) -> Self {
        Self {
            tx: Mutex::new(Some(tx)),
            waker,
        }
    }

    fn push(&self, value: T) {
        if let Some(tx) = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            // A receiver that is gone has no use for the message.
            let _ = tx.send(value);
        }
        self.waker.wake();
    }

    fn close(&self) {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.waker.wake();
    }

    /// Another feed into the same queue, unless this one is closed.
    fn fork(&self) -> Option<Feed<T>> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        Some(Feed::new(tx, self.waker.clone()))
    }
}

/// The route of the connection whose message is being decoded, set by [`RoutedInbound`].
struct Route {
    sink: Arc<dyn FrameSink>,
    id: u64,
}

thread_local! {
    static DECODING_ROUTE: std::cell::RefCell<Option<Route>> = const { std::cell::RefCell::new(None) };
}

/// A routed message travels as its `msg` alone; the route is the connection it came on.
impl<Req: serde::Serialize, Resp> serde::Serialize for Routed<Req, Resp> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.msg.serialize(serializer)
    }
}

impl<'de, Req: serde::Deserialize<'de>, Resp: Message> serde::Deserialize<'de>
    for Routed<Req, Resp>
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let msg = Req::deserialize(deserializer)?;
        let route = DECODING_ROUTE
            .with(|r| r.borrow().as_ref().map(|r| (r.sink.clone(), r.id)))
            .ok_or_else(|| {
                serde::de::Error::custom(
                    "a routed message can only be decoded by a named place's connection",
                )
            })?;
        Ok(Routed {
            msg,
            reply: ReplyTo {
                tx: Arc::new(SendHalf(ManuallyDrop::new(Tx::Remote {
                    sink: route.0,
                    id: route.1,
                    encode: |v: &Resp| crate::codec::encode_message(v),
                    raw: crate::codec::raw_view::<Resp>,
                }))),
            },
        })
    }
}

/// One connection's messages into a named place's queue, each decoded with that connection's
/// route.
struct RoutedInbound<R> {
    feed: Feed<R>,
    sink: Arc<dyn FrameSink>,
    id: u64,
}

impl<R: Message> Inbound for RoutedInbound<R> {
    fn deliver(&self, bytes: &[u8]) -> Result<(), CodecError> {
        DECODING_ROUTE.with(|r| {
            *r.borrow_mut() = Some(Route {
                sink: self.sink.clone(),
                id: self.id,
            })
        });
        let value = with_transport(&self.sink, || crate::codec::decode_message::<R>(bytes));
        DECODING_ROUTE.with(|r| r.borrow_mut().take());
        self.feed.push(value?);
        Ok(())
    }

    fn close(&self, _reason: Option<String>) {
        // One client leaving closes only its own feed, not the named place's queue.
        self.feed.close();
    }

    fn connect(&self, _sink: Arc<dyn FrameSink>, _id: u64) -> Option<Arc<dyn Inbound>> {
        None
    }
}

/// How long a `get` on a channel fed from the network polls before it blocks.
const REMOTE_SPIN: Duration = Duration::from_micros(100);

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
    )
}

/// Makes a cross-linked pair whose directions each hold at most `capacity` messages (at least
/// one): a `put`
/// on a full direction waits until the other end takes one, so a fast producer cannot run a
/// slow consumer out of memory (flow control). A `put` that waits inside a place still ends at
/// once if the place is killed.
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
    pair_with(
        crossbeam_channel::bounded::<A>(capacity),
        crossbeam_channel::bounded::<B>(capacity),
    )
}

fn pair_with<A, B>(
    (a_tx, b_rx): (Sender<A>, Receiver<A>),
    (b_tx, a_rx): (Sender<B>, Receiver<B>),
) -> (PlaceChannel<A, B>, PlaceChannel<B, A>) {
    let a_waker = Arc::new(AtomicWaker::new());
    let b_waker = Arc::new(AtomicWaker::new());
    (
        PlaceChannel {
            tx: ManuallyDrop::new(Tx::Local {
                sender: a_tx,
                peer_waker: b_waker.clone(),
            }),
            rx: a_rx,
            own_waker: a_waker.clone(),
            closed_reason: None,
            forwarded: std::sync::atomic::AtomicBool::new(false),
        },
        PlaceChannel {
            tx: ManuallyDrop::new(Tx::Local {
                sender: b_tx,
                peer_waker: a_waker,
            }),
            rx: b_rx,
            own_waker: b_waker,
            closed_reason: None,
            forwarded: std::sync::atomic::AtomicBool::new(false),
        },
    )
}

impl<S, R> PlaceChannel<S, R> {
    /// Sends `value` to the other end and returns at once (Racket's `place-channel-put`).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Closed`] if the other end is gone; the value is dropped.
    pub fn put(&self, value: S) -> Result<(), ChannelError> {
        context::check_killed();
        self.tx.put(value)
    }

    /// Waits for the next message (Racket's `place-channel-get`).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Closed`] once the other end is gone and every message it sent has been
    /// got. Inside a place, [`ChannelError::Break`] if the place is sent a break while it waits;
    /// a killed place does not return from `get` at all, it ends.
    pub fn get(&self) -> Result<R, ChannelError> {
        match context::current() {
            None => {
                if let Some(ready) = self.spin_remote() {
                    return ready;
                }
                self.rx.recv().map_err(|_| self.closed())
            }
            Some(ctx) => self.get_in_place(&ctx, None),
        }
    }

    /// For a channel fed from the network, polls (yielding the core) for a while before the
    /// caller blocks: a reply is usually one network round trip away, and a parked thread costs
    /// a wake-up on top of it. Local channels return `None` at once.
    #[inline]
    fn spin_remote(&self) -> Option<Result<R, ChannelError>> {
        self.closed_reason.as_ref()?;
        let start = Instant::now();
        loop {
            match self.rx.try_recv() {
                Ok(v) => return Some(Ok(v)),
                Err(TryRecvError::Disconnected) => return Some(Err(self.closed())),
                Err(TryRecvError::Empty) if start.elapsed() > REMOTE_SPIN => return None,
                Err(TryRecvError::Empty) => std::thread::yield_now(),
            }
        }
    }

    /// Like [`get`](Self::get), but gives up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Timeout`] when no message arrives in time, and the errors of `get`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<R, ChannelError> {
        match context::current() {
            None => self.rx.recv_timeout(timeout).map_err(|e| match e {
                RecvTimeoutError::Timeout => ChannelError::Timeout(timeout),
                RecvTimeoutError::Disconnected => self.closed(),
            }),
            Some(ctx) => self.get_in_place(&ctx, Some(timeout)),
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
        self.rx.try_recv().map_err(|e| match e {
            TryRecvError::Empty => ChannelError::Empty,
            TryRecvError::Disconnected => self.closed(),
        })
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
    pub fn recv(&self) -> Recv<'_, R> {
        Recv {
            rx: &self.rx,
            waker: &self.own_waker,
            closed_reason: self.closed_reason.as_deref(),
        }
    }

    /// A send-only handle to this channel's peer that can be cloned and kept (for example by a
    /// logging callback). While one is alive, a local peer does not see the channel as closed.
    pub fn sender(&self) -> ReplyTo<S> {
        ReplyTo {
            tx: Arc::new(SendHalf(ManuallyDrop::new(self.tx.duplicate()))),
        }
    }

    /// The number of messages waiting to be got.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no message is waiting to be got.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    pub(crate) fn receiver(&self) -> &Receiver<R> {
        &self.rx
    }

    /// The error for a disconnected channel: [`ChannelError::Lost`] when the network layer said
    /// why, [`ChannelError::Closed`] otherwise.
    pub(crate) fn closed(&self) -> ChannelError {
        match self.closed_reason.as_ref().and_then(|r| r.get()) {
            Some(reason) => ChannelError::Lost(reason.clone()),
            None => ChannelError::Closed,
        }
    }

    /// `get` for a place thread: spin a little, then block on the message, the kill signal and
    /// the break signal at once.
    fn get_in_place(
        &self,
        ctx: &PlaceContext,
        timeout: Option<Duration>,
    ) -> Result<R, ChannelError> {
        if ctx.killed.load(std::sync::atomic::Ordering::Relaxed) {
            return context::killed();
        }
        // The same brief spin crossbeam does before parking: a reply that is microseconds away
        // should not cost a thread wake-up.
        let backoff = Backoff::new();
        loop {
            match self.rx.try_recv() {
                Ok(v) => return Ok(v),
                Err(TryRecvError::Disconnected) => return Err(self.closed()),
                Err(TryRecvError::Empty) if backoff.is_completed() => break,
                Err(TryRecvError::Empty) => backoff.snooze(),
            }
        }
        if let Some(ready) = self.spin_remote() {
            return ready;
        }
        // A timeout too long to add to now is no deadline at all.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut sel = crossbeam_channel::Select::new();
        let msg = sel.recv(&self.rx);
        let kill = sel.recv(&ctx.kill);
        let brk = sel.recv(&ctx.breaks);
        let op = match deadline {
            None => sel.select(),
            Some(d) => match sel.select_deadline(d) {
                Ok(op) => op,
                Err(_) => return Err(ChannelError::Timeout(timeout.unwrap_or_default())),
            },
        };
        match op.index() {
            i if i == msg => op.recv(&self.rx).map_err(|_| self.closed()),
            i if i == kill => {
                let _ = op.recv(&ctx.kill);
                context::killed()
            }
            i if i == brk => match op.recv(&ctx.breaks) {
                Ok(()) => Err(ChannelError::Break),
                Err(_) => context::killed(),
            },
            _ => unreachable!("select returned an operation that was not registered"),
        }
    }
}

/// Where the frames of channels that cross to another node are written: implemented by the network
/// layer's connections.
pub trait FrameSink: Send + Sync {
    /// Writes one message for channel `id` to the other node. The first
    /// [`FRAME_HEADROOM`](crate::codec::FRAME_HEADROOM) bytes of `bytes` are free for the frame
    /// header; the message follows them.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Lost`] (naming the node) when the connection is gone.
    fn send_data(&self, id: u64, bytes: Vec<u8>) -> Result<(), ChannelError>;

    /// Writes one message for channel `id` whose encoding is the version byte `version`
    /// followed by `body` as it is (numeric vectors), without copying `body` first.
    ///
    /// # Errors
    ///
    /// As [`send_data`](Self::send_data).
    fn send_data_parts(&self, id: u64, version: u8, body: &[u8]) -> Result<(), ChannelError>;

    /// Tells the other node that this end of channel `id` is gone.
    fn close(&self, id: u64);

    /// Allocates a channel id on this connection for a channel this side sends to the other
    /// node, and registers where the other node's messages on it go.
    fn open_channel(&self, inbound: Arc<dyn Inbound>) -> u64;

    /// Registers where messages on channel `id`, which the other node sent to this side, go.
    fn register_channel(&self, id: u64, inbound: Arc<dyn Inbound>);
}

/// The receiving half of a channel fed by the network: the connection's reader hands it each
/// message for the channel.
pub trait Inbound: Send + Sync {
    /// Decodes one message and queues it for the channel's `get`.
    ///
    /// # Errors
    ///
    /// The codec's error when the bytes do not decode; nothing is queued then.
    fn deliver(&self, bytes: &[u8]) -> Result<(), CodecError>;

    /// Closes the channel: a `get` fails once the queued messages are taken, with
    /// [`ChannelError::Lost`] carrying `reason` when there is one.
    fn close(&self, reason: Option<String>);

    /// A further producer into the same queue, for a new connection to a named place: its
    /// messages are decoded with `(sink, id)` as their [`ReplyTo`] route. `None` when the channel
    /// is closed.
    fn connect(&self, sink: Arc<dyn FrameSink>, id: u64) -> Option<Arc<dyn Inbound>>;
}

struct InboundChannel<R> {
    feed: Feed<R>,
    reason: Arc<OnceLock<String>>,
    /// The connection the messages come from (to decode channels inside them).
    sink: Arc<dyn FrameSink>,
}

impl<R: Message> Inbound for InboundChannel<R> {
    fn deliver(&self, bytes: &[u8]) -> Result<(), CodecError> {
        let value: R = with_transport(&self.sink, || crate::codec::decode_message(bytes))?;
        self.feed.push(value);
        Ok(())
    }

    fn close(&self, reason: Option<String>) {
        if let Some(reason) = reason {
            let _ = self.reason.set(reason);
        }
        self.feed.close();
    }

    fn connect(&self, sink: Arc<dyn FrameSink>, id: u64) -> Option<Arc<dyn Inbound>> {
        Some(Arc::new(RoutedInbound {
            feed: self.feed.fork()?,
            sink,
            id,
        }))
    }
}

/// A channel end whose peer is on another node: `put` encodes and writes a frame for `id` to
/// `sink`; the returned [`Inbound`] is where the connection delivers the peer's messages.
pub fn remote_channel<S: Message, R: Message>(
    sink: Arc<dyn FrameSink>,
    id: u64,
) -> (PlaceChannel<S, R>, Arc<dyn Inbound>) {
    let (tx, rx) = crossbeam_channel::unbounded::<R>();
    let waker = Arc::new(AtomicWaker::new());
    let reason = Arc::new(OnceLock::new());
    let inbound: Arc<dyn Inbound> = Arc::new(InboundChannel {
        feed: Feed::new(tx, waker.clone()),
        reason: reason.clone(),
        sink: sink.clone(),
    });
    let channel = PlaceChannel {
        tx: ManuallyDrop::new(Tx::Remote {
            sink,
            id,
            encode: |v: &S| crate::codec::encode_message(v),
            raw: crate::codec::raw_view::<S>,
        }),
        rx,
        own_waker: waker,
        closed_reason: Some(reason),
        forwarded: std::sync::atomic::AtomicBool::new(false),
    };
    (channel, inbound)
}

impl<S, R> Drop for PlaceChannel<S, R> {
    fn drop(&mut self) {
        // SAFETY: `tx` is never used again: this is the channel's destructor.
        match unsafe { ManuallyDrop::take(&mut self.tx) } {
            Tx::Local { sender, peer_waker } => {
                drop(sender);
                // After the sender is gone, so the peer's pending `recv().await` sees `Closed`.
                peer_waker.wake();
            }
            Tx::Remote { sink, id, .. } => {
                if !self.forwarded.load(std::sync::atomic::Ordering::Relaxed) {
                    sink.close(id);
                }
            }
        }
    }
}

impl<S, R> fmt::Debug for PlaceChannel<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaceChannel")
            .field("sends", &std::any::type_name::<S>())
            .field("receives", &std::any::type_name::<R>())
            .field("waiting", &self.rx.len())
            .finish()
    }
}

/// The future of [`PlaceChannel::recv`].
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, R> {
    rx: &'a Receiver<R>,
    waker: &'a AtomicWaker,
    /// Read when the channel turns out closed, not before: a node lost while the future waits
    /// must be reported as lost.
    closed_reason: Option<&'a OnceLock<String>>,
}

impl<R> Future for Recv<'_, R> {
    type Output = Result<R, ChannelError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let try_once = |rx: &Receiver<R>| match rx.try_recv() {
            Ok(v) => Some(Ok(v)),
            Err(TryRecvError::Disconnected) => {
                Some(Err(match self.closed_reason.and_then(OnceLock::get) {
                    Some(reason) => ChannelError::Lost(reason.clone()),
                    None => ChannelError::Closed,
                }))
            }
            Err(TryRecvError::Empty) => None,
        };
        if let Some(done) = try_once(self.rx) {
            return Poll::Ready(done);
        }
        // Register, then look again: a `put` between the first look and the registration has
        // already called `wake` on the old (absent) waker and would otherwise be missed.
        self.waker.register(cx.waker());
        match try_once(self.rx) {
            Some(done) => Poll::Ready(done),
            None => Poll::Pending,
        }
    }
}

/// A place channel end can be sent to a place on another node inside any message. The end stays
/// here, bridged: what its peer sends is forwarded to the node, and what the node puts reaches the
/// peer, so the two ends talk as if they were local. That holds also for an end whose peer is on
/// a third node (it was received from there): this process relays between the two. On the wire
/// the end is just a channel id on the connection. Outside a places transport (plain serde)
/// encoding a channel is an error.
impl<S: Message, R: Message> serde::Serialize for PlaceChannel<S, R> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let Some(sink) = current_transport() else {
            return Err(serde::ser::Error::custom(
                "a place channel can only be encoded by a places transport (sending it to another node)",
            ));
        };
        let (id, _) = self
            .bridge(&sink, None)
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_u64(id)
    }
}

impl<S: Message, R: Message> PlaceChannel<S, R> {
    /// Bridges this end to a channel on the connection `sink` (a fresh id, or `id`): what the
    /// peer sends goes out as frames, and the frames that come in go where this end's `put`s
    /// would (to a local peer, or on to the node where the peer is). Returns the channel id and
    /// the inbound registered for it.
    pub(crate) fn bridge(
        &self,
        sink: &Arc<dyn FrameSink>,
        id: Option<u64>,
    ) -> Result<(u64, Arc<dyn Inbound>), String> {
        if matches!(&*self.tx, Tx::Remote { .. }) {
            // The proxy closes that channel when the node's end is gone; this end must not.
            self.forwarded
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let (queue_tx, queue_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
        let inbound: Arc<dyn Inbound> = Arc::new(ForwardIn {
            queue: Mutex::new(Some(queue_tx)),
        });
        {
            let (tx, sink) = (self.tx.duplicate(), sink.clone());
            std::thread::Builder::new()
                .name("places channel relay".into())
                .spawn(move || relay_in::<S>(&queue_rx, tx, &sink, stop_tx))
                .map_err(|e| format!("could not start a channel relay: {e}"))?;
        }
        let fresh = id.is_none();
        let id = match id {
            Some(id) => {
                sink.register_channel(id, inbound.clone());
                id
            }
            None => sink.open_channel(inbound.clone()),
        };
        let rx = self.rx.clone();
        let out = sink.clone();
        let gate_inbound = inbound.clone();
        // A channel sent inside a message waits for that message to go out first.
        let gate = if fresh {
            let (tx, rx) = crossbeam_channel::bounded::<bool>(1);
            PENDING_GATES.with(|g| g.borrow_mut().push(tx));
            Some(rx)
        } else {
            None
        };
        // Forwards what the peer sends to the node, until either side is gone.
        let spawned = std::thread::Builder::new()
            .name(format!("places channel proxy {id}"))
            .spawn(move || {
                if let Some(gate) = gate {
                    if gate.recv() != Ok(true) {
                        // The message never went out: end the relay too (which closes the
                        // far side of an end that came from a third node) and the channel.
                        gate_inbound.close(None);
                        out.close(id);
                        return;
                    }
                }
                forward_out(&rx, &stop_rx, &out, id);
            });
        if let Err(e) = spawned {
            sink.close(id);
            return Err(format!("could not start a channel proxy: {e}"));
        }
        Ok((id, inbound))
    }
}

fn forward_out<R: Message>(
    rx: &Receiver<R>,
    stop: &Receiver<()>,
    sink: &Arc<dyn FrameSink>,
    id: u64,
) {
    loop {
        let mut sel = crossbeam_channel::Select::new();
        let msg = sel.recv(rx);
        let halt = sel.recv(stop);
        let op = sel.select();
        if op.index() == halt {
            let _ = op.recv(stop);
            return;
        }
        debug_assert_eq!(op.index(), msg);
        match op.recv(rx) {
            Ok(v) => {
                let sent = encode_and_send(sink, id, || crate::codec::encode_message(&v));
                if sent.is_err() {
                    // The node's end must not wait for messages that will never come.
                    sink.close(id);
                    return;
                }
            }
            Err(_) => {
                sink.close(id);
                return;
            }
        }
    }
}

/// The node's messages on a forwarded channel, on to the end's peer (here or on a third node).
struct ForwardIn {
    /// The node's messages, in order, to this channel's relay thread (see [`relay_in`]); taken
    /// when the node's end closes.
    queue: Mutex<Option<Sender<Vec<u8>>>>,
}

impl Inbound for ForwardIn {
    fn deliver(&self, bytes: &[u8]) -> Result<(), CodecError> {
        // Handed on rather than put here: putting may wait (a full bounded queue, a slow third
        // node), and this runs on the event loop, which must never wait.
        if let Some(q) = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let _ = q.send(bytes.to_vec());
        }
        Ok(())
    }

    fn close(&self, _reason: Option<String>) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn connect(&self, _sink: Arc<dyn FrameSink>, _id: u64) -> Option<Arc<dyn Inbound>> {
        None
    }
}

/// Puts the node's messages on a forwarded channel where the forwarded end's own `put`s go, in
/// order; when the node's end closes, closes that side too and stops the outgoing proxy.
fn relay_in<S: Message>(
    queue: &Receiver<Vec<u8>>,
    tx: Tx<S>,
    sink: &Arc<dyn FrameSink>,
    stop: crossbeam_channel::Sender<()>,
) {
    while let Ok(bytes) = queue.recv() {
        match with_transport(sink, || crate::codec::decode_message::<S>(&bytes)) {
            // A peer that is gone has no use for the message.
            Ok(value) => {
                let _ = tx.put(value);
            }
            Err(e) => {
                eprintln!("places: dropped an undecodable message on a forwarded channel: {e}")
            }
        }
    }
    match tx {
        Tx::Local { sender, peer_waker } => {
            drop(sender);
            peer_waker.wake();
        }
        // Passed on from another node: tell that node this end is gone.
        Tx::Remote { sink, id, .. } => sink.close(id),
    }
    drop(stop);
}

/// The receiving side of [`Serialize`](serde::Serialize): a channel end whose peer stayed on the
/// node that sent it.
impl<'de, S: Message, R: Message> serde::Deserialize<'de> for PlaceChannel<S, R> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = <u64 as serde::Deserialize>::deserialize(deserializer)?;
        let Some(sink) = current_transport() else {
            return Err(serde::de::Error::custom(
                "a place channel cannot be decoded from bytes outside a places transport",
            ));
        };
        let (ch, inbound) = remote_channel::<S, R>(sink.clone(), id);
        sink.register_channel(id, inbound);
        Ok(ch)
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
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_in_order_both_ways() {
        let (a, b) = raw_pair::<u32, String>();
        for i in 0..100 {
            a.put(i).unwrap();
        }
        for i in 0..100 {
            assert_eq!(b.get().unwrap(), i);
            b.put(i.to_string()).unwrap();
        }
        for i in 0..100 {
            assert_eq!(a.get().unwrap(), i.to_string());
        }
    }

    #[test]
    fn get_on_a_dropped_peer_fails_after_draining() {
        let (a, b) = raw_pair::<u8, u8>();
        b.put(1).unwrap();
        drop(b);
        assert_eq!(a.get(), Ok(1));
        assert_eq!(a.get(), Err(ChannelError::Closed));
        assert_eq!(a.put(2), Err(ChannelError::Closed));
        assert_eq!(a.try_get(), Err(ChannelError::Closed));
    }

    #[test]
    fn try_get_and_timeout() {
        let (a, b) = raw_pair::<u8, u8>();
        assert_eq!(a.try_get(), Err(ChannelError::Empty));
        let t = Duration::from_millis(20);
        assert_eq!(a.get_timeout(t), Err(ChannelError::Timeout(t)));
        b.put(5).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a.get_timeout(t), Ok(5));
        assert!(a.is_empty());
    }

    #[test]
    fn get_wakes_when_the_peer_is_dropped_by_another_thread() {
        let (a, b) = raw_pair::<u8, u8>();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(b);
        });
        assert_eq!(
            a.get_timeout(Duration::from_secs(10)),
            Err(ChannelError::Closed)
        );
        t.join().unwrap();
    }

    #[test]
    fn async_recv_sees_messages_and_closure() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (a, b) = raw_pair::<u32, u32>();
        let t = std::thread::spawn(move || {
            for i in 0..1000 {
                b.put(i).unwrap();
            }
        });
        rt.block_on(async {
            for i in 0..1000 {
                let v = tokio::time::timeout(Duration::from_secs(10), a.recv())
                    .await
                    .expect("recv timed out")
                    .unwrap();
                assert_eq!(v, i);
            }
            let end = tokio::time::timeout(Duration::from_secs(10), a.recv())
                .await
                .expect("recv after close timed out");
            assert_eq!(end, Err(ChannelError::Closed));
        });
        t.join().unwrap();
    }

    #[test]
    fn serde_refuses_a_channel_outside_a_transport() {
        let (a, _b) = raw_pair::<u8, u8>();
        let err = crate::codec::encode(&a).unwrap_err();
        assert!(err.to_string().contains("place channel"), "{err}");
    }
}
