//! Relays that the threads using a channel run themselves.
//!
//! A local end whose peer was sent to another node talks to it through the peer's relays (see
//! [`forward`](super::forward)). Had a relay thread carried every message, each `put` would wake
//! it and each round trip would cost two thread switches on top of the network. Instead the
//! thread that puts a value passes it on itself when nothing waits before it (`PassOwn`, through
//! the direction's typed `OwnPass`); otherwise it queues the value and rings the relay thread.
//! A thread never passes on another thread's value: encoding runs the value's `Serialize`,
//! which may take locks the passing thread holds. The relay thread steps in for what cannot be
//! done without waiting, since an
//! unbounded local `put` never waits: the receiver has no credit left, the connection cannot
//! take the message at once (a large one, or a busy writer), an end inside it may be handed off
//! (which waits for its node), a handoff parks the relay, or the end went away. A `get` of the
//! end, while it polls, moves what arrived itself (`InPump`); the relay thread is rung only for
//! what arrives while nobody polls, and for notices and handoffs.
//!
//! Order is kept by one rule: values leave the queue only under the pump's lock, and a value
//! that could not be sent yet waits in front of the queue (`front`) for the relay thread. A
//! sender passes its value on only under that lock with the queue and the front empty; one
//! that finds the lock taken, or anything waiting, queues its value behind.

use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
use std::task::{Wake, Waker};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::forward::{put_now, put_remote_with, Now, Pending};
use super::{Control, Endpoint, Item};
use crate::channel::{remote_channel, Direction, PlaceChannel, Tx};
use crate::error::ChannelError;
use crate::message::Message;

/// The relay that takes one direction's values to another node, as a sender sees it.
pub(crate) trait Forward: Send + Sync {
    /// A value was queued: the relay thread passes it on.
    fn kick(&self);
    /// A sender went away, or something else the relay thread must look at happened.
    fn ring(&self);
    /// The endpoint values go to now.
    fn endpoint(&self) -> Arc<Endpoint>;
}

/// How often a relay thread with nothing to do looks at its queue anyway: a safety net (every
/// event that needs it also rings its bell).
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// The environment variable that sets [`IDLE_LOOK`] (in milliseconds) instead: a test that
/// sets it long sees a missed ring as a hang rather than as a one-second delay.
const IDLE_LOOK_ENV: &str = "PLACES_RELAY_IDLE_LOOK_MS";

fn idle_look() -> Duration {
    static SET: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *SET.get_or_init(|| {
        std::env::var(IDLE_LOOK_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(IDLE_LOOK, Duration::from_millis)
    })
}

/// The outgoing relay of a bridged local end: takes what the end's peer queued and puts it on
/// the end's endpoint.
pub(crate) struct OutPump<S> {
    queue: Receiver<S>,
    state: Mutex<OutState<S>>,
    bell: Sender<()>,
    bell_rx: Receiver<()>,
    /// Where a value that could not be passed on is reported (the peer's next `put` or `get`).
    faults: Weak<Direction>,
}

struct OutState<S> {
    /// Where values go (a handoff may move it to another link).
    to: Arc<Endpoint>,
    /// Taken from the queue but not sent yet (for want of credit, or it would have waited for
    /// the connection or a handoff): it goes first.
    front: Option<Front<S>>,
    /// Why the relay ends.
    ended: Option<Ended>,
}

/// A value in front of the queue.
enum Front<S> {
    Value(S),
    /// Encoded and its credit taken: only the writing is left.
    Encoded(Pending<S>),
}

/// Runs a put that encodes a value on this thread, catching a panic of the value's `Serialize`
/// (the value may be another thread's, queued while this one passed values on): `Err` with what
/// the panic said.
fn guarded<T>(put: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(put)).map_err(|payload| {
        let said = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        format!("encoding the message panicked: {said}")
    })
}

/// Why an outgoing relay ends.
#[derive(Clone, Debug)]
pub(crate) enum Ended {
    /// Every sender of the queue is gone and it is empty.
    Queue,
    /// A put on the endpoint failed (its link was lost, its peer closed).
    Failed(ChannelError),
}

/// What waking up the relay thread found.
pub(crate) enum Woken {
    /// Values to pass on, or nothing at all.
    Look,
    /// The stop signal (a handoff asks the relay to park), or its sender went.
    Stop,
}

impl<S: Message> OutPump<S> {
    pub(crate) fn new(queue: Receiver<S>, to: Arc<Endpoint>, faults: &Arc<Direction>) -> Self {
        let (bell, bell_rx) = crossbeam_channel::bounded(1);
        Self {
            queue,
            state: Mutex::new(OutState {
                to,
                front: None,
                ended: None,
            }),
            bell,
            bell_rx,
            faults: Arc::downgrade(faults),
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutState<S>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Passes queued values on, in order, the one in front first. With `block` (the relay
    /// thread, its only caller now), waits for credit, the connection and handoffs; without,
    /// waits for nothing: a value that would wait goes in front. True when the queue was
    /// emptied.
    fn drain(&self, st: &mut OutState<S>, block: bool) -> bool {
        if st.ended.is_some() {
            return false;
        }
        loop {
            let next = match st.front.take() {
                Some(f) => f,
                None => match self.queue.try_recv() {
                    Ok(v) => Front::Value(v),
                    Err(TryRecvError::Empty) => return true,
                    Err(TryRecvError::Disconnected) => {
                        st.ended = Some(Ended::Queue);
                        return false;
                    }
                },
            };
            let outcome = match (next, block) {
                (Front::Encoded(p), true) => p.send(&st.to).map_err(|e| (None, e)),
                (f @ Front::Encoded(_), false) => {
                    st.front = Some(f);
                    return false;
                }
                (Front::Value(v), true) => {
                    match guarded(|| put_remote_with(&st.to, v, true, true)) {
                        Ok(r) => r,
                        Err(why) => Err((None, ChannelError::Unsendable(why))),
                    }
                }
                (Front::Value(v), false) => match guarded(|| put_now(&st.to, v)) {
                    Ok(Now::Done(r)) => r,
                    Ok(Now::Later(p)) => {
                        st.front = Some(Front::Encoded(p));
                        return false;
                    }
                    Ok(Now::Ends(v)) => {
                        st.front = Some(Front::Value(v));
                        return false;
                    }
                    Err(why) => Err((None, ChannelError::Unsendable(why))),
                },
            };
            match outcome {
                Ok(()) => {}
                Err((Some(v), ChannelError::Full)) => {
                    st.front = Some(Front::Value(v));
                    return false;
                }
                // One value that cannot cross (too large for the far node, or its `Serialize`
                // panicked), or an earlier one the far holder dropped: its sender hears of it,
                // and the channel goes on.
                Err((
                    _,
                    ChannelError::Unsendable(reason) | ChannelError::Dropped { reason, .. },
                )) => self.report(reason),
                Err((_, e)) => {
                    st.ended = Some(Ended::Failed(e));
                    return false;
                }
            }
        }
    }

    fn report(&self, reason: String) {
        tracing::warn!(target: "places", "a relayed message was dropped: {reason}");
        if let Some(d) = self.faults.upgrade() {
            d.set_fault(reason);
        }
    }

    /// The relay thread's turn: passes everything queued on, waiting for credit as needed.
    /// `Err` with the reason once the relay must end.
    pub(crate) fn run(&self) -> Result<(), Ended> {
        loop {
            let mut st = self.lock();
            self.drain(&mut st, true);
            if let Some(e) = st.ended.clone() {
                return Err(e);
            }
            drop(st);
            // A sender that found the lock taken left its value queued for the holder.
            fence(Ordering::SeqCst);
            if self.queue.is_empty() {
                return Ok(());
            }
        }
    }

    /// Waits until a sender rings or `stop` fires (or, at the latest, [`IDLE_LOOK`]).
    pub(crate) fn wait(&self, stop: &Receiver<()>) -> Woken {
        crossbeam_channel::select! {
            recv(self.bell_rx) -> _ => Woken::Look,
            recv(stop) -> _ => Woken::Stop,
            default(idle_look()) => Woken::Look,
        }
    }

    /// Holds the pump still (no sender passes anything on) while `f` runs: for a handoff,
    /// which may give the pump a new endpoint.
    pub(crate) fn hold<T>(&self, f: impl FnOnce() -> (T, Option<Arc<Endpoint>>)) -> T {
        let mut st = self.lock();
        // A message encoded for the endpoint now (its credit taken, its ends bridged on that
        // link) goes out on it before the relay parks: it was sent before the handoff.
        match st.front.take() {
            Some(Front::Encoded(p)) => match p.send(&st.to) {
                Ok(()) => {}
                Err(ChannelError::Dropped { reason, .. }) => self.report(reason),
                Err(e) => st.ended = Some(Ended::Failed(e)),
            },
            other => st.front = other,
        }
        let (out, moved) = f();
        if let Some(ep) = moved {
            st.to = ep;
        }
        out
    }

    /// The relay ended: what is in front is dropped, and no sender passes anything on.
    pub(crate) fn end(&self) {
        let mut st = self.lock();
        st.front = None;
        st.ended.get_or_insert(Ended::Queue);
    }

    /// The endpoint values go to now.
    pub(crate) fn endpoint(&self) -> Arc<Endpoint> {
        self.lock().to.clone()
    }
}

impl<S: Message> crate::channel::PassOwn<S> for OutPump<S> {
    fn pass_own(&self, v: S) -> Result<(), S> {
        let mut st = match self.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => return Err(v),
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        // Values before it go first, by the relay thread.
        if st.ended.is_some() || st.front.is_some() || !self.queue.is_empty() {
            return Err(v);
        }
        let outcome = match guarded(|| put_now(&st.to, v)) {
            Ok(Now::Done(r)) => r,
            Ok(Now::Later(p)) => {
                st.front = Some(Front::Encoded(p));
                Ok(())
            }
            Ok(Now::Ends(v)) => {
                st.front = Some(Front::Value(v));
                Ok(())
            }
            Err(why) => Err((None, ChannelError::Unsendable(why))),
        };
        match outcome {
            Ok(()) => {}
            Err((Some(v), ChannelError::Full)) => st.front = Some(Front::Value(v)),
            // As for a queued value: its sender hears of it at its next call.
            Err((_, ChannelError::Unsendable(reason) | ChannelError::Dropped { reason, .. })) => {
                self.report(reason)
            }
            Err((_, e)) => st.ended = Some(Ended::Failed(e)),
        }
        let waits = st.front.is_some() || st.ended.is_some();
        drop(st);
        if waits {
            // It waits for credit, the connection or a handoff (or the end is over): the
            // relay thread takes it from here.
            self.ring();
        }
        Ok(())
    }
}

impl<S: Message> Forward for OutPump<S> {
    fn kick(&self) {
        // Queued: the relay thread passes it on (a sender passes only its own value on, see
        // `PassOwn`).
        self.ring();
    }

    fn ring(&self) {
        let _ = self.bell.try_send(());
    }

    fn endpoint(&self) -> Arc<Endpoint> {
        OutPump::endpoint(self)
    }
}

/// The incoming relay of a bridged local end, as the end's peer sees it: what the peer's `get`
/// does while it polls.
pub(crate) trait Pull: Send + Sync {
    /// Moves what arrived on the endpoint into the local queue, unless another thread is doing
    /// so; true when it moved something.
    fn pull(&self) -> bool;
    /// A thread starts polling for the queue (and pulls): arrivals meanwhile wake nobody else.
    fn spin_begin(&self);
    /// The polling thread stops: the relay thread watches the endpoint again.
    fn spin_end(&self);
}

/// Wakes an incoming relay's thread when a message arrives on its endpoint, unless a thread that
/// polls for the same messages will pull it itself.
struct Doorbell {
    spinners: AtomicUsize,
    bell: Sender<()>,
}

impl Wake for Doorbell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The message was queued before: a poller that stops after this looks at the queue.
        fence(Ordering::SeqCst);
        if self.spinners.load(Ordering::SeqCst) == 0 {
            let _ = self.bell.try_send(());
        }
    }
}

/// The incoming relay of a bridged local end: takes what arrives on the endpoint (as `S`) and
/// puts it on the end's own sending side, so that the end's peer gets it.
pub(crate) struct InPump<S, R> {
    state: Mutex<InState<S, R>>,
    /// The endpoint now (a handoff may move it), for a poller that stops.
    from: Mutex<Arc<Endpoint>>,
    doorbell: Arc<Doorbell>,
    waker: Waker,
    bell_rx: Receiver<()>,
}

pub(crate) struct InState<S, R> {
    /// Decodes what arrives, on the endpoint values come from.
    pub(crate) mirror: PlaceChannel<R, S>,
    /// A queue item a poller took but leaves to the relay thread: it goes first.
    pub(crate) front: Option<Item>,
    /// Where values go; taken when the relay ends, so that the queue closes.
    pub(crate) tx: Option<Tx<S>>,
    /// A put on `tx` failed: the relay ends.
    pub(crate) ended: bool,
}

impl<S: Message, R: Message> InPump<S, R> {
    pub(crate) fn new(from: Arc<Endpoint>, tx: Tx<S>) -> Self {
        let (bell, bell_rx) = crossbeam_channel::bounded(1);
        let doorbell = Arc::new(Doorbell {
            spinners: AtomicUsize::new(0),
            bell,
        });
        let mirror = view(&from);
        Self {
            state: Mutex::new(InState {
                mirror,
                front: None,
                tx: Some(tx),
                ended: false,
            }),
            from: Mutex::new(from),
            waker: Waker::from(doorbell.clone()),
            doorbell,
            bell_rx,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, InState<S, R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn from(&self) -> Arc<Endpoint> {
        self.from
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Values come from `ep` from now on (a handoff moved the end); the caller holds `st`.
    pub(crate) fn moved(&self, st: &mut InState<S, R>, ep: Arc<Endpoint>) {
        st.mirror = view(&ep);
        *self.from.lock().unwrap_or_else(PoisonError::into_inner) = ep;
        self.watch();
    }

    /// Asks the endpoint to ring the relay thread's bell at its next arrival or close.
    pub(crate) fn watch(&self) {
        self.from().waker().register(&self.waker);
    }

    /// Waits until the bell rings (or, at the latest, [`IDLE_LOOK`]).
    pub(crate) fn wait(&self) {
        let _ = self.bell_rx.recv_timeout(idle_look());
    }

    /// Decodes one message and puts it on: false when the put failed (the relay ends).
    pub(crate) fn pass(st: &mut InState<S, R>, item: Item) -> bool {
        let Some(Ok(v)) = st.mirror.take_item(item) else {
            // Did not decode: dropped, and its sender told.
            return true;
        };
        let Some(tx) = &st.tx else { return false };
        match tx.put(v) {
            Ok(()) => true,
            // Sent, but an earlier one was dropped further on (or this one cannot go on): the
            // far holder's next put or get says so, and the channel goes on.
            Err(ChannelError::Unsendable(reason) | ChannelError::Dropped { reason, .. }) => {
                let ep = st.mirror.endpoint().expect("a remote view").clone();
                ep.link().send_control(ep.id(), Control::Error(reason));
                true
            }
            Err(_) => {
                st.ended = true;
                false
            }
        }
    }

    fn ring(&self) {
        let _ = self.doorbell.bell.try_send(());
    }
}

impl<S: Message, R: Message> Pull for InPump<S, R> {
    fn pull(&self) -> bool {
        let mut st = match self.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) => return false,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if st.ended || st.front.is_some() {
            return false;
        }
        let from = st.mirror.endpoint().expect("a remote view").clone();
        let mut moved = false;
        loop {
            match from.queue().try_recv() {
                Ok(item @ Item::Message(_)) => {
                    if !Self::pass(&mut st, item) {
                        self.ring();
                        return moved;
                    }
                    moved = true;
                }
                // A notice or a handoff: the relay thread's to act on.
                Ok(item) => {
                    st.front = Some(item);
                    self.ring();
                    return moved;
                }
                Err(TryRecvError::Empty) => return moved,
                Err(TryRecvError::Disconnected) => {
                    self.ring();
                    return moved;
                }
            }
        }
    }

    fn spin_begin(&self) {
        self.doorbell.spinners.fetch_add(1, Ordering::SeqCst);
    }

    fn spin_end(&self) {
        self.doorbell.spinners.fetch_sub(1, Ordering::SeqCst);
        // An arrival while this thread polled rang nobody and used up the endpoint's waker.
        let from = self.from();
        from.waker().register(&self.waker);
        fence(Ordering::SeqCst);
        if from.has_news() {
            self.ring();
        }
    }
}

/// A view of `ep` that decodes what arrives on it; the relay closes the endpoint itself (or a
/// handoff forgets it).
pub(crate) fn view<S: Message, R: Message>(ep: &Arc<Endpoint>) -> PlaceChannel<R, S> {
    let m: PlaceChannel<R, S> = remote_channel(ep.clone());
    m.set_forwarded();
    m
}
