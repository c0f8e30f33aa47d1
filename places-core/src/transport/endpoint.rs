//! One channel id on one link: the queue of messages that arrived for it (undecoded), the credit
//! in both directions, and its closing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender};

use super::{lost_error, Control, Incoming, LinkRef, Window};
use crate::error::ChannelError;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// The endpoints a close under way on this thread has still to close.
    static CLOSING: std::cell::RefCell<Option<Vec<Arc<Endpoint>>>> = const { std::cell::RefCell::new(None) };
}

fn closing_here() -> bool {
    CLOSING.with(|c| c.borrow().is_some())
}

/// Marks a close under way on this thread, until dropped (also by a panic).
struct CloseScope;

impl CloseScope {
    fn enter() -> CloseScope {
        CLOSING.with(|c| *c.borrow_mut() = Some(Vec::new()));
        CloseScope
    }
}

impl Drop for CloseScope {
    fn drop(&mut self) {
        let left = CLOSING.with(|c| c.borrow_mut().take());
        // After a panic in the loop, what was still to close is closed now, one by one.
        for e in left.into_iter().flatten() {
            e.close();
        }
    }
}

/// An endpoint's traffic: see [`Endpoint::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Messages that arrived and wait to be taken.
    pub queued: u64,
    /// Messages (and bytes, as counted for credit) that arrived.
    pub messages_in: u64,
    /// See `messages_in`.
    pub bytes_in: u64,
    /// Messages (and bytes) sent.
    pub messages_out: u64,
    /// See `messages_out`.
    pub bytes_out: u64,
}

/// What an endpoint's queue holds.
pub(crate) enum Item {
    /// A message, as it arrived.
    Message(Incoming),
    /// The endpoint's error slot was set: a blocked `get` wakes to report it.
    Notice,
    /// The holder asked for the end behind this channel to be pushed on to the node at `to`,
    /// behind everything it sent (see [`handoff`](super::handoff)); only a relay acts on it.
    Handoff {
        /// The ticket's token.
        token: u64,
        /// The holder's attempt, echoed in the answer.
        attempt: u64,
        /// Where the next holder listens.
        to: String,
    },
}

/// The receiving side's credit: what arrived, what was taken, and the limits granted so far.
struct RecvCredit {
    window: Window,
    arrived_bytes: u64,
    arrived_messages: u64,
    released_bytes: u64,
    released_messages: u64,
    limit_bytes: u64,
    limit_messages: u64,
}

/// Raises the granted limits to at least `bytes` and `messages`; the new limits if they rose.
fn raise(r: &mut RecvCredit, bytes: u64, messages: u64) -> Option<(u64, u64)> {
    if bytes <= r.limit_bytes && messages <= r.limit_messages {
        return None;
    }
    r.limit_bytes = r.limit_bytes.max(bytes);
    r.limit_messages = r.limit_messages.max(messages);
    Some((r.limit_bytes, r.limit_messages))
}

/// The sending side's credit: what was sent and the limits the receiver granted.
struct SendCredit {
    sent_bytes: u64,
    sent_messages: u64,
    limit_bytes: u64,
    limit_messages: u64,
}

/// One end of a channel that crosses a link: its id there, the messages that arrived for it and
/// wait (undecoded) to be taken, and its credit. A place channel whose peer is on another node
/// is a typed view of one of these.
pub struct Endpoint {
    link: LinkRef,
    id: u64,
    /// Where arriving messages go: this endpoint's own queue or, for a route into a named
    /// place, that place's. `None` once nothing more may arrive.
    inbox: Mutex<Option<Sender<Item>>>,
    queue: Receiver<Item>,
    /// Woken by every push and by the close, for an async receiver.
    waker: Arc<AtomicWaker>,
    recv: Mutex<RecvCredit>,
    send: Mutex<SendCredit>,
    credit_changed: Condvar,
    /// Held while one message is encoded and written: credit is taken in order, and the
    /// fragments of two messages never interleave on one channel.
    order: Mutex<()>,
    /// Credit is released by [`release`](Self::release) alone, not when a message is taken (a
    /// bounded channel's relay releases it when the local peer takes the message).
    manual_credit: AtomicBool,
    /// See [`set_no_relief`](Self::set_no_relief).
    no_relief: AtomicBool,
    peer_closed: AtomicBool,
    local_closed: AtomicBool,
    /// Set when the link is lost: why.
    lost: OnceLock<String>,
    /// Why a message sent on this channel was dropped by the receiver, until reported.
    error: Mutex<Option<String>>,
    /// For a named place's endpoint: the routes of the connections into it.
    routes: Mutex<Vec<Weak<Endpoint>>>,
    /// For a route: it closes with its client and never has a `get` of its own.
    is_route: bool,
    /// Where the end behind this channel can be taken over directly (see
    /// [`handoff`](super::handoff)).
    pub(crate) ticket: OnceLock<super::handoff::Ticket>,
    /// The end behind this channel has a ticket issued here: the holder may ask for it.
    pub(crate) accepts_handoff: AtomicBool,
    /// A `Handoff` waits in the queue (at most one does, whatever a peer sends).
    handoff_queued: AtomicBool,
    /// The peer's answer to the handoff under way: its attempt, and `HandedOff` (`Ok`) or
    /// `Kept` (`Err`, why) once it came.
    handed_off: Mutex<(u64, Option<Result<(), String>>)>,
    handed_off_changed: Condvar,
    /// Where the channel goes on (another link), once it moved (see
    /// [`set_successor`](Self::set_successor)).
    successor: OnceLock<Arc<Endpoint>>,
    /// On a successor: the waker of the endpoint whose queue it feeds.
    merged_waker: OnceLock<Arc<AtomicWaker>>,
    /// The channel opened at the next holder for a `Repoint`, until its bridging side decides
    /// (the token, the endpoint, and where the decision goes).
    candidate: Mutex<Option<Candidate>>,
    /// A successor may take this endpoint's queue over: its sender is kept (in `spare`) when
    /// the peer closes, rather than dropped.
    keep_open: AtomicBool,
    spare: Mutex<Option<Sender<Item>>>,
    /// The peer sent `Moved`: it sends nothing more here, and still takes what comes.
    peer_moved: AtomicBool,
    /// A bridge whose far holder links to the end's new holder directly: its outgoing relay
    /// ends with `Moved` rather than a close.
    moving_bridge: AtomicBool,
    /// A repoint of this channel is under way (asked for here, or by the peer): one at a time.
    repointing: AtomicBool,
}

/// See [`Endpoint::candidate`](Endpoint).
pub(crate) struct Candidate {
    pub(crate) token: u64,
    pub(crate) next: Arc<Endpoint>,
    /// The bridging side committed: the channel goes on at `next` whatever comes before the
    /// switch is made.
    pub(crate) committed: bool,
}

impl Endpoint {
    /// An endpoint for channel `id` on `link`, receiving with window `receive` and sending
    /// within `send` until the peer grants more.
    pub fn new(link: LinkRef, id: u64, receive: Window, send: Window) -> Arc<Endpoint> {
        let (tx, rx) = crossbeam_channel::unbounded();
        Self::build(
            link,
            id,
            tx,
            rx,
            Arc::new(AtomicWaker::new()),
            receive,
            send,
            false,
        )
    }

    /// An endpoint with the link's own windows.
    pub fn with_link_windows(link: LinkRef, id: u64) -> Arc<Endpoint> {
        let (receive, send) = (link.settings().window, link.peer_settings().window);
        Self::new(link, id, receive, send)
    }

    /// A route into the named place whose endpoint is `hub`: what arrives on channel `id` of
    /// `link` goes to the place's queue, and the place's replies go back on it. `None` when the
    /// place no longer takes messages.
    pub fn new_route(link: LinkRef, id: u64, hub: &Arc<Endpoint>) -> Option<Arc<Endpoint>> {
        let tx = lock(&hub.inbox).clone()?;
        let (_, own) = crossbeam_channel::bounded(0);
        let (receive, send) = (link.settings().window, link.peer_settings().window);
        let route = Self::build(link, id, tx, own, hub.waker.clone(), receive, send, true);
        let mut routes = lock(&hub.routes);
        if hub.local_closed.load(Ordering::Acquire) {
            return None;
        }
        routes.retain(|r| r.strong_count() > 0);
        routes.push(Arc::downgrade(&route));
        Some(route)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        link: LinkRef,
        id: u64,
        tx: Sender<Item>,
        rx: Receiver<Item>,
        waker: Arc<AtomicWaker>,
        receive: Window,
        send: Window,
        is_route: bool,
    ) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            link,
            id,
            inbox: Mutex::new(Some(tx)),
            queue: rx,
            waker,
            recv: Mutex::new(RecvCredit {
                window: receive,
                arrived_bytes: 0,
                arrived_messages: 0,
                released_bytes: 0,
                released_messages: 0,
                limit_bytes: receive.bytes,
                limit_messages: receive.messages,
            }),
            send: Mutex::new(SendCredit {
                sent_bytes: 0,
                sent_messages: 0,
                limit_bytes: send.bytes,
                limit_messages: send.messages,
            }),
            credit_changed: Condvar::new(),
            order: Mutex::new(()),
            manual_credit: AtomicBool::new(false),
            no_relief: AtomicBool::new(false),
            peer_closed: AtomicBool::new(false),
            local_closed: AtomicBool::new(false),
            lost: OnceLock::new(),
            error: Mutex::new(None),
            routes: Mutex::new(Vec::new()),
            is_route,
            ticket: OnceLock::new(),
            accepts_handoff: AtomicBool::new(false),
            handoff_queued: AtomicBool::new(false),
            handed_off: Mutex::new((0, None)),
            handed_off_changed: Condvar::new(),
            successor: OnceLock::new(),
            merged_waker: OnceLock::new(),
            candidate: Mutex::new(None),
            keep_open: AtomicBool::new(false),
            spare: Mutex::new(None),
            peer_moved: AtomicBool::new(false),
            moving_bridge: AtomicBool::new(false),
            repointing: AtomicBool::new(false),
        })
    }

    /// The channel's id on its link.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The link the channel crosses.
    pub fn link(&self) -> &LinkRef {
        &self.link
    }

    // ---- the event loop's side: never waits, never runs user code.

    /// Counts a message that starts arriving (`len` body bytes) against the credit granted.
    pub(crate) fn arrive(&self, len: u64) -> Result<(), String> {
        let mut r = lock(&self.recv);
        if r.arrived_bytes >= r.limit_bytes || r.arrived_messages >= r.limit_messages {
            return Err(format!(
                "the sender went beyond the credit granted on channel {} ({} bytes, {} messages)",
                self.id, r.limit_bytes, r.limit_messages
            ));
        }
        r.arrived_bytes += len;
        r.arrived_messages += 1;
        Ok(())
    }

    /// Queues a message for the channel's consumer; gives it back when nothing may arrive.
    pub(crate) fn push(&self, msg: Incoming) -> Result<(), Incoming> {
        let sent = match lock(&self.inbox).as_ref() {
            Some(tx) => tx.send(Item::Message(msg)).map_err(|e| match e.0 {
                Item::Message(m) => m,
                _ => unreachable!("a message was sent"),
            }),
            None => Err(msg),
        };
        self.waker.wake();
        if let Some(w) = self.merged_waker.get() {
            w.wake();
        }
        sent
    }

    /// Queues the holder's `Handoff` behind the messages that came before it: only on an end
    /// with a ticket, and one at a time (a peer repeating it queues nothing more).
    pub(crate) fn push_handoff(&self, token: u64, attempt: u64, to: String) {
        if !self.accepts_handoff.load(Ordering::Acquire) {
            if self.moving_bridge.load(Ordering::Acquire) || self.repointing.load(Ordering::Acquire)
            {
                // The end's peer is going to another node: the holder hears at once.
                self.link.send_control(
                    self.id,
                    Control::Kept {
                        attempt,
                        why: "the channel's other end is moving to another node".into(),
                    },
                );
            }
            return;
        }
        if self.handoff_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(tx) = lock(&self.inbox).as_ref() {
            let _ = tx.send(Item::Handoff { token, attempt, to });
        }
        self.waker.wake();
    }

    /// The queued `Handoff` was taken.
    pub(crate) fn handoff_taken(&self) {
        self.handoff_queued.store(false, Ordering::Release);
    }

    /// The peer's answer to the handoff `attempt`: `Ok` for `HandedOff`, `Err(why)` for `Kept`.
    /// An answer to an earlier attempt is ignored.
    pub(crate) fn set_handed_off(&self, attempt: u64, outcome: Result<(), String>) {
        let mut h = lock(&self.handed_off);
        if h.0 == attempt && h.1.is_none() {
            h.1 = Some(outcome);
            self.handed_off_changed.notify_all();
        }
    }

    /// A handoff `attempt` starts: no answer yet.
    pub(crate) fn reset_handed_off(&self, attempt: u64) {
        *lock(&self.handed_off) = (attempt, None);
    }

    /// Waits (at most `limit`) for the peer's answer to the handoff under way, or for a message
    /// or the end of the channel, which make the handoff moot; the answer, if it came.
    pub(crate) fn wait_handed_off(&self, limit: Duration) -> Option<Result<(), String>> {
        self.wait_answer(limit, true)
    }

    /// Waits (at most `limit`) for the peer's answer to the handoff or repoint under way, or
    /// for the end of the channel (and, with `moot_on_message`, a message), which make it
    /// moot; the answer, if it came.
    pub(crate) fn wait_answer(
        &self,
        limit: Duration,
        moot_on_message: bool,
    ) -> Option<Result<(), String>> {
        let deadline = std::time::Instant::now() + limit;
        let mut h = lock(&self.handed_off);
        while h.1.is_none()
            && (!moot_on_message || self.queue.is_empty())
            && !self.peer_has_closed()
        {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            // Messages and closes do not signal this condition: look again every millisecond.
            h = self
                .handed_off_changed
                .wait_timeout(h, left.min(Duration::from_millis(1)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        h.1.clone()
    }

    /// Records the peer's `Close` (done under the table's lock, so that a close here at the
    /// same moment sees it).
    pub(crate) fn mark_peer_closed(&self) {
        self.peer_closed.store(true, Ordering::Release);
    }

    /// The peer's `Close` arrived.
    pub(crate) fn peer_close(&self) {
        self.peer_closed.store(true, Ordering::Release);
        self.stop_arrivals();
        if self.is_route {
            // Nothing here holds a route open: the client left, so the route goes too.
            self.close();
        }
    }

    /// The link is gone.
    pub(crate) fn lose(&self, reason: &str) {
        // A channel its peer closed before the link went is closed, not lost.
        if !self.peer_closed.load(Ordering::Acquire) {
            let _ = self.lost.set(reason.to_owned());
        }
        self.peer_closed.store(true, Ordering::Release);
        self.stop_arrivals();
    }

    /// The peer's `Moved`: nothing more arrives here, and sends go on.
    pub(crate) fn peer_moved(&self) {
        self.peer_moved.store(true, Ordering::Release);
        self.stop_arrivals();
    }

    /// Marks (or unmarks) a bridge whose far holder links to the end's new holder directly.
    pub(crate) fn set_moving_bridge(&self, on: bool) {
        self.moving_bridge.store(on, Ordering::Release);
    }

    /// Marks a repoint of this channel under way; false when one already is.
    pub(crate) fn begin_repoint(&self) -> bool {
        !self.repointing.swap(true, Ordering::AcqRel)
    }

    /// The repoint under way is over (done or given up).
    pub(crate) fn end_repoint(&self) {
        self.repointing.store(false, Ordering::Release);
    }

    /// Whether a handoff this side asked for waits for its answer.
    pub(crate) fn handoff_under_way(&self) -> bool {
        let h = lock(&self.handed_off);
        h.0 != 0 && h.1.is_none()
    }

    /// See [`set_moving_bridge`](Self::set_moving_bridge).
    pub(crate) fn is_moving_bridge(&self) -> bool {
        self.moving_bridge.load(Ordering::Acquire)
    }

    /// Whether the peer sent `Moved` (and did not close).
    pub(crate) fn has_peer_moved(&self) -> bool {
        self.peer_moved.load(Ordering::Acquire) && !self.peer_has_closed()
    }

    fn stop_arrivals(&self) {
        let mut close = None;
        {
            let mut inbox = lock(&self.inbox);
            if let Some(tx) = inbox.take() {
                match self.successor.get() {
                    // What came here is all the old way brings: what came the new way follows.
                    Some(next) if self.lost.get().is_none() => next.release_into(tx),
                    // Lost before everything the old way brings came: the channel fails.
                    Some(next) => close = Some(next.clone()),
                    None if self.keep_open.load(Ordering::Acquire) => {
                        *lock(&self.spare) = Some(tx);
                    }
                    None => drop(tx),
                }
            }
        }
        if let Some(next) = close {
            Endpoint::close_soon(next);
        }
        self.drop_candidate(false);
        self.waker.wake();
        let _guard = lock(&self.send);
        self.credit_changed.notify_all();
    }

    /// The peer granted credit up to these totals.
    pub(crate) fn credit(&self, bytes: u64, messages: u64) {
        let mut s = lock(&self.send);
        s.limit_bytes = s.limit_bytes.max(bytes);
        s.limit_messages = s.limit_messages.max(messages);
        self.credit_changed.notify_all();
    }

    /// The peer dropped a message this side sent; the next `put` or `get` reports `reason`.
    pub(crate) fn set_error(&self, reason: String) {
        // A notice is queued only when the slot was empty: a peer repeating `Error` frames
        // replaces the reason but cannot grow the queue.
        let was_empty = lock(&self.error).replace(reason).is_none();
        if was_empty && !self.is_route {
            if let Some(tx) = lock(&self.inbox).as_ref() {
                let _ = tx.send(Item::Notice);
            }
        }
        self.waker.wake();
    }

    // ---- a channel that goes on another way (see `handoff`'s repoint).

    /// Keeps the queue's sender if the peer closes (a successor may take it over).
    pub(crate) fn keep_queue_open(&self) {
        self.keep_open.store(true, Ordering::Release);
    }

    /// No successor comes: the queue ends as usual once the peer has closed.
    pub(crate) fn let_queue_end(&self) {
        let _inbox = lock(&self.inbox);
        self.keep_open.store(false, Ordering::Release);
        drop(lock(&self.spare).take());
    }

    /// From now on the channel goes on at `next` (a channel to another node, for the same
    /// ends): sends go there at once; what arrives there is held until this endpoint's peer
    /// has closed (everything sent the old way came), then queued behind it, on this
    /// endpoint's queue. If this endpoint's link is lost first, `next` closes and the channel
    /// fails with the loss.
    pub(crate) fn set_successor(&self, next: Arc<Endpoint>) {
        let _ = next.merged_waker.set(self.waker.clone());
        let mut close = false;
        {
            let inbox = lock(&self.inbox);
            if self.successor.set(next.clone()).is_err() {
                close = true;
            } else if inbox.is_none() {
                match lock(&self.spare).take() {
                    Some(tx) if self.lost.get().is_none() => next.release_into(tx),
                    _ => close = true,
                }
            }
        }
        if close {
            Endpoint::close_soon(next);
        }
        self.keep_open.store(false, Ordering::Release);
    }

    /// On a successor: what arrived and what arrives goes to `tx` (its predecessor's queue)
    /// from now on.
    fn release_into(&self, tx: Sender<Item>) {
        let mut inbox = lock(&self.inbox);
        while let Ok(item) = self.queue.try_recv() {
            let _ = tx.send(item);
        }
        if inbox.is_some() {
            *inbox = Some(tx);
        }
        drop(inbox);
        if let Some(w) = self.merged_waker.get() {
            w.wake();
        }
    }

    /// The endpoint sends go to: the successor once there is one (unless this one's link was
    /// lost first, which the sender then hears of).
    pub(crate) fn sends_to(self: &Arc<Self>) -> &Arc<Endpoint> {
        match self.successor.get() {
            Some(next) if self.lost.get().is_none() => next,
            _ => self,
        }
    }

    /// Whether this is a relay's endpoint or a bounded pair's (whose channel cannot go on
    /// another way).
    pub(crate) fn is_relay_or_bounded(&self) -> bool {
        self.no_relief.load(Ordering::Relaxed)
            || self.manual_credit.load(Ordering::Relaxed)
            || self.is_route
    }

    /// Whether a holder's `Handoff` waits in the queue.
    pub(crate) fn handoff_pending(&self) -> bool {
        self.handoff_queued.load(Ordering::Acquire)
    }

    /// Whether the channel moved on, or is about to.
    pub(crate) fn is_moving(&self) -> bool {
        self.successor.get().is_some() || lock(&self.candidate).is_some()
    }

    /// Keeps `candidate` until its bridging side decides; false (and nothing kept) when
    /// another one is kept already or the channel ended.
    pub(crate) fn set_candidate(&self, candidate: Candidate) -> bool {
        let mut c = lock(&self.candidate);
        if c.is_some() || self.successor.get().is_some() || self.arrivals_stopped() {
            return false;
        }
        *c = Some(candidate);
        true
    }

    /// The bridging side committed the candidate for `token` (never waits): a close of the
    /// peer before the switch keeps the queue open for it.
    pub(crate) fn commit_candidate(&self, token: u64) {
        let mut c = lock(&self.candidate);
        if let Some(c) = c.as_mut().filter(|c| c.token == token) {
            c.committed = true;
            self.keep_open.store(true, Ordering::Release);
        }
    }

    /// Takes the candidate for `token`, if it is still kept.
    pub(crate) fn take_candidate(&self, token: u64) -> Option<Arc<Endpoint>> {
        let mut c = lock(&self.candidate);
        if c.as_ref().is_some_and(|c| c.token == token) {
            c.take().map(|c| c.next)
        } else {
            None
        }
    }

    /// The candidate (if any) will never be used: it closes (a committed one only with
    /// `committed_too`).
    fn drop_candidate(&self, committed_too: bool) {
        let taken = {
            let mut c = lock(&self.candidate);
            if c.as_ref().is_some_and(|c| committed_too || !c.committed) {
                c.take()
            } else {
                None
            }
        };
        if let Some(c) = taken {
            Endpoint::close_soon(c.next);
        }
    }

    /// Takes the error a dropped message left here or, once the channel moved, at its
    /// successor.
    pub(crate) fn take_any_error(&self, message: &'static str) -> Option<ChannelError> {
        self.take_error(message)
            .or_else(|| self.successor.get()?.take_error(message))
    }

    // ---- the consumer's side.

    /// Whether its consumer has something to look at: a queued item, or the end of arrivals.
    pub(crate) fn has_news(&self) -> bool {
        !self.queue.is_empty() || self.arrivals_stopped()
    }

    /// Whether nothing more can arrive (the peer closed, the link was lost, or this side
    /// closed): what is queued is all there will be.
    pub(crate) fn arrivals_stopped(&self) -> bool {
        lock(&self.inbox).is_none()
    }

    /// The queue the channel's consumer takes from.
    pub(crate) fn queue(&self) -> &Receiver<Item> {
        &self.queue
    }

    /// This endpoint's traffic so far, for status views. For a named place's endpoint the
    /// counts include its connections' routes.
    pub fn stats(&self) -> EndpointStats {
        let mut s = EndpointStats {
            queued: self.queue.len() as u64,
            ..EndpointStats::default()
        };
        let mut add = |e: &Endpoint| {
            let r = lock(&e.recv);
            s.messages_in += r.arrived_messages;
            s.bytes_in += r.arrived_bytes;
            drop(r);
            let w = lock(&e.send);
            s.messages_out += w.sent_messages;
            s.bytes_out += w.sent_bytes;
        };
        add(self);
        for route in lock(&self.routes).iter().filter_map(Weak::upgrade) {
            add(&route);
        }
        s
    }

    /// The async receiver's waker.
    pub(crate) fn waker(&self) -> &AtomicWaker {
        &self.waker
    }

    /// The consumer took a message of `len` body bytes that arrived on this endpoint.
    pub(crate) fn taken(&self, len: u64) {
        if !self.manual_credit.load(Ordering::Relaxed) {
            self.release(len);
        }
    }

    /// Makes credit follow [`release`](Self::release) only.
    pub(crate) fn set_manual_credit(&self) {
        self.manual_credit.store(true, Ordering::Relaxed);
    }

    /// Marks an endpoint whose sending and taking are done by two different threads (a relay):
    /// waiting to send never grants the peer extra credit.
    pub(crate) fn set_no_relief(&self) {
        self.no_relief.store(true, Ordering::Relaxed);
    }

    /// Gives the sender back the credit of one message of `len` bytes, telling it once half a
    /// window can be granted.
    pub(crate) fn release(&self, len: u64) {
        let grant = {
            let mut r = lock(&self.recv);
            r.released_bytes += len;
            r.released_messages += 1;
            let bytes = r.released_bytes + r.window.bytes;
            let messages = r.released_messages + r.window.messages;
            let half = |w: u64| (w / 2).max(1);
            let due = bytes.saturating_sub(r.limit_bytes) >= half(r.window.bytes)
                || messages.saturating_sub(r.limit_messages) >= half(r.window.messages);
            if due {
                raise(&mut r, bytes, messages)
            } else {
                None
            }
        };
        self.grant(grant);
    }

    /// Tells the peer new limits, if there are any (and this side is still open).
    fn grant(&self, limits: Option<(u64, u64)>) {
        if let Some((bytes, messages)) = limits {
            if !self.local_closed.load(Ordering::Acquire) {
                self.link
                    .send_control(self.id, Control::Credit { bytes, messages });
            }
        }
    }

    /// The error to report for a queue that has ended: the link's loss, or a plain close.
    pub(crate) fn closed_error(&self) -> ChannelError {
        match (self.lost.get(), self.successor.get()) {
            (Some(reason), _) => lost_error(&*self.link, reason),
            (None, Some(next)) => next.closed_error(),
            (None, None) => ChannelError::Closed,
        }
    }

    /// Puts back a reason taken by a `put` whose own message did not go out: the next call
    /// reports it (unless a newer reason came in meanwhile, which then stands for both).
    pub(crate) fn put_back_error(&self, reason: String) {
        lock(&self.error).get_or_insert(reason);
    }

    /// Takes the error a dropped message left, naming the sender's message type.
    pub(crate) fn take_error(&self, message: &'static str) -> Option<ChannelError> {
        lock(&self.error)
            .take()
            .map(|reason| ChannelError::Dropped { message, reason })
    }

    // ---- the sender's side.

    /// Holds the channel's send order (see the field).
    pub(crate) fn order(&self) -> MutexGuard<'_, ()> {
        lock(&self.order)
    }

    /// Tries to hold the send order without waiting.
    pub(crate) fn try_order(&self) -> Option<MutexGuard<'_, ()>> {
        match self.order.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Why nothing can be sent, if nothing can.
    pub(crate) fn send_closed(&self) -> Option<ChannelError> {
        if let Some(reason) = self.lost.get() {
            return Some(lost_error(&*self.link, reason));
        }
        if self.peer_closed.load(Ordering::Acquire) || self.local_closed.load(Ordering::Acquire) {
            return Some(ChannelError::Closed);
        }
        None
    }

    /// Waits until a message may start (or, with `block` false, says whether one may now).
    /// `interrupted` is asked every so often while waiting, so that a killed place stops.
    pub(crate) fn wait_credit(
        &self,
        block: bool,
        interrupted: impl Fn() -> Option<ChannelError>,
    ) -> Result<bool, ChannelError> {
        let mut relieved = false;
        let mut s = lock(&self.send);
        loop {
            if let Some(e) = self.send_closed() {
                return Err(e);
            }
            if s.sent_bytes < s.limit_bytes && s.sent_messages < s.limit_messages {
                return Ok(true);
            }
            if !block {
                return Ok(false);
            }
            if !relieved {
                relieved = true;
                drop(s);
                self.relieve();
                s = lock(&self.send);
                continue;
            }
            s = self
                .credit_changed
                .wait_timeout(s, Duration::from_millis(50))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if let Some(e) = interrupted() {
                return Err(e);
            }
        }
    }

    /// Sets the limits a sender starts with (for a channel that arrived inside a message, whose
    /// bridging side said how much it takes).
    pub(crate) fn set_send_window(&self, window: Window) {
        let mut s = lock(&self.send);
        if s.sent_messages == 0 {
            s.limit_bytes = window.bytes;
            s.limit_messages = window.messages;
        }
    }

    /// A sender of this end waits for credit, so whoever takes this end's messages may be that
    /// very thread (a place that puts, then gets): holding the peer back as well would deadlock
    /// the two. Each time a put starts waiting, the peer may send this end one more window
    /// beyond what arrived (so a queue nobody takes grows by a window per put that had to wait,
    /// as the two places' own exchange goes on, and not otherwise).
    fn relieve(&self) {
        // A bounded pair's bound is explicit, and a relay's two directions are two threads:
        // neither can deadlock this way.
        if self.manual_credit.load(Ordering::Relaxed) || self.no_relief.load(Ordering::Relaxed) {
            return;
        }
        let grant = {
            let mut r = lock(&self.recv);
            let (bytes, messages) = (
                r.arrived_bytes + r.window.bytes,
                r.arrived_messages + r.window.messages,
            );
            raise(&mut r, bytes, messages)
        };
        self.grant(grant);
    }

    /// Counts a message of `len` bytes as sent.
    pub(crate) fn reserve(&self, len: u64) {
        let mut s = lock(&self.send);
        s.sent_bytes += len;
        s.sent_messages += 1;
    }

    // ---- closing.

    /// Whether this side has closed the endpoint.
    pub fn is_closed(&self) -> bool {
        self.local_closed.load(Ordering::Acquire)
    }

    /// Closes this side: tells the peer, drops what is still queued (closing the channels inside
    /// those messages) and, for a named place, closes every route into it. Idempotent.
    ///
    /// Messages can carry channels whose queues hold messages that carry channels, and so on:
    /// the closes that a close leads to are done one after another in a loop, never by a
    /// recursion as deep as such a chain (which a peer could make as deep as it likes).
    pub fn close(&self) {
        if closing_here() {
            return self.close_now();
        }
        let _scope = CloseScope::enter();
        self.close_now();
        while let Some(next) = CLOSING.with(|c| c.borrow_mut().as_mut().and_then(Vec::pop)) {
            next.close_now();
        }
    }

    /// Closes `endpoint` now, or, when a close is under way on this thread, right after it (see
    /// [`close`](Self::close)).
    pub(crate) fn close_soon(endpoint: Arc<Endpoint>) {
        let deferred = CLOSING.with(|c| match c.borrow_mut().as_mut() {
            Some(later) => {
                later.push(endpoint.clone());
                true
            }
            None => false,
        });
        if !deferred {
            endpoint.close();
        }
    }

    /// Forgets an endpoint that was registered for a message that never went out: the peer
    /// never heard of its id, so no `Close` is sent and no tombstone kept.
    pub(crate) fn discard(&self) {
        self.local_closed.store(true, Ordering::Release);
        self.peer_closed.store(true, Ordering::Release);
        drop(lock(&self.inbox).take());
        drop(lock(&self.spare).take());
        while self.queue.try_recv().is_ok() {}
        self.link.table().forget(self);
        self.waker.wake();
        let _guard = lock(&self.send);
        self.credit_changed.notify_all();
    }

    fn close_now(&self) {
        if self.local_closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let routes: Vec<Weak<Endpoint>> = std::mem::take(&mut *lock(&self.routes));
        for route in routes.iter().filter_map(Weak::upgrade) {
            route.close();
        }
        drop(lock(&self.inbox).take());
        drop(lock(&self.spare).take());
        // Messages that will never be taken: dropping them closes the channels inside them.
        if !self.is_route {
            while self.queue.try_recv().is_ok() {}
        }
        self.link.table().local_close(self);
        if let Some(next) = self.successor.get() {
            Endpoint::close_soon(next.clone());
        }
        self.drop_candidate(true);
        self.waker.wake();
        let _guard = lock(&self.send);
        self.credit_changed.notify_all();
    }

    /// Whether the peer has closed (or the link is gone).
    pub(crate) fn peer_has_closed(&self) -> bool {
        self.peer_closed.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("peer", &self.link.peer())
            .field("id", &self.id)
            .field("closed", &self.is_closed())
            .field("peer_closed", &self.peer_has_closed())
            .finish()
    }
}
