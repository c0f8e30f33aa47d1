//! One authenticated connection between two processes: the [`Link`] that place channels cross.
//!
//! Frames go out from the threads that send them ([`outbox`]: a thread writes its own message,
//! one fragment per turn, and control frames never wait). Frames come in through a reading
//! state machine ([`reader`]) that a task of the process's event loop runs whenever the socket
//! is readable, handing every message, undecoded, to its channel; while threads poll for
//! messages from the network, they run it themselves instead ([`direct`]).

mod direct;
mod outbox;
mod reader;
mod socket;

pub(crate) use socket::Socket;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant};

use places_core::transport::{ChannelTable, Control, Link, Settings};
use places_core::ChannelError;

use crate::wire::{self, encode_frame, header, Frame, Kind, MessageHead, WireError};
use outbox::Outbox;
use reader::ReadState;

/// The most answers (in bytes) a connection queues for a peer that does not read them before it
/// stops reading from that peer; also how much may wait in the queue before small messages are
/// written by their senders again, rather than queued.
const MAX_CONTROL_BACKLOG: usize = 1 << 20;

/// Messages up to this size are queued for the writer rather than written with a turn.
const SMALL: usize = 8 << 10;

/// A small message within this long after the previous one on the connection, with nothing
/// arriving in between, is left to the event loop to write together with those that follow
/// (20 us). A message that answers one that came after the last send (a round trip) is
/// written at once, however soon.
const CORK_NANOS: u64 = 20_000;

/// What a connection does with the frames that are not about channels (spawns, exits, logs).
/// Runs on the event loop: it must not wait, and must not run user code.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Handles one frame. A frame it does not expect is logged and ignored: only broken framing
    /// closes a connection.
    fn frame(&self, conn: &Arc<Connection>, frame: Frame);
    /// The connection is gone; every channel on it has already been closed.
    fn lost(&self, conn: &Arc<Connection>, reason: &str);
}

/// Who a connection is with.
pub(crate) struct Peer {
    /// Its name, for errors (`host (addr)`).
    pub(crate) name: String,
    /// Where it listens, when this side connected to it there.
    pub(crate) dialed: Option<String>,
}

/// A connection to a peer process (either direction).
pub(crate) struct Connection {
    peer: String,
    settings: Settings,
    peer_settings: Settings,
    pub(crate) stream: Arc<Socket>,
    out: Arc<Outbox>,
    table: ChannelTable,
    next_id: AtomicU64,
    started: Instant,
    /// Milliseconds since `started` when bytes last arrived.
    last_seen: AtomicU64,
    /// Nanoseconds since `started` when bytes last arrived.
    last_arrival: AtomicU64,
    /// The last heartbeat round trip in nanoseconds (0: none yet).
    rtt_ns: AtomicU64,
    /// Nanoseconds since `started` when the last small message was sent.
    last_small: AtomicU64,
    /// Where the peer listens, when this side connected to it there.
    dialed: Option<String>,
    /// The peer is on this host.
    loopback: bool,
    /// What the reader keeps between reads (taken by the event loop's task, or by a thread
    /// that polls for a message, see [`direct`]).
    read_state: Mutex<ReadState>,
    /// The connection has ended (its channels are closed and its handler told).
    ended: AtomicBool,
    /// Wakes the reading task when a polling thread ended the connection.
    ended_wake: tokio::sync::Notify,
    /// Wakes the reading task to take the connection back from the polling threads.
    given_back: tokio::sync::Notify,
    /// Handles the frames that are not about channels; set when reading starts.
    handler: OnceLock<Arc<dyn Handler>>,
    runtime: tokio::runtime::Handle,
}

/// How many bytes the kernel may hold in each direction of a connection (Linux doubles it for
/// its own bookkeeping). The default on loopback grows to several megabytes, all of it ahead of
/// any small message queued behind a large one; a bounded buffer keeps that wait to a couple of
/// milliseconds without slowing a large transfer (measured with `cargo bench --bench
/// remote_places`).
const SOCKET_BUFFER: usize = 256 << 10;

/// Sets a connection's socket buffers (see [`SOCKET_BUFFER`]).
pub(crate) fn tune(stream: &std::net::TcpStream) {
    let sock = socket2::SockRef::from(stream);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
}

impl Connection {
    /// A connection whose socket the event loop reads (see [`read_loop`](Self::read_loop));
    /// `closer` is a second handle of the same socket. The side that connected allocates odd
    /// channel ids and the node even ones, so both can open channels without asking.
    pub(crate) fn new(
        peer: Peer,
        stream: Arc<Socket>,
        closer: std::net::TcpStream,
        runtime: tokio::runtime::Handle,
        first_id: u64,
        settings: Settings,
        peer_settings: Settings,
    ) -> Arc<Connection> {
        let loopback = closer
            .peer_addr()
            .is_ok_and(|a| a.ip().to_canonical().is_loopback());
        Arc::new(Connection {
            dialed: peer.dialed,
            loopback,
            peer: peer.name,
            settings,
            peer_settings,
            out: Outbox::new(stream.clone(), runtime.clone(), closer),
            stream,
            table: ChannelTable::new(),
            next_id: AtomicU64::new(first_id),
            started: Instant::now(),
            last_seen: AtomicU64::new(0),
            last_arrival: AtomicU64::new(0),
            rtt_ns: AtomicU64::new(0),
            last_small: AtomicU64::new(0),
            read_state: Mutex::new(ReadState::default()),
            ended: AtomicBool::new(false),
            ended_wake: tokio::sync::Notify::new(),
            given_back: tokio::sync::Notify::new(),
            handler: OnceLock::new(),
            runtime,
        })
    }

    /// The process's event loop.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// The peer's name, for errors.
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// Why the connection is gone, if it is.
    pub(crate) fn lost_reason(&self) -> Option<String> {
        self.out.failed()
    }

    /// The error of a connection that is gone, naming the peer.
    pub(crate) fn lost_message(&self, reason: &str) -> String {
        format!("node `{}` is gone: {reason}", self.peer)
    }

    /// Milliseconds since bytes last arrived.
    pub(crate) fn silent_for_ms(&self) -> u64 {
        let now = self.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_seen.load(Ordering::Relaxed))
    }

    /// A ping's payload: when it leaves, in nanoseconds since the connection started.
    pub(crate) fn ping_payload(&self) -> [u8; 8] {
        (self.started.elapsed().as_nanos() as u64).to_le_bytes()
    }

    /// A pong came back with the payload of its ping: records the round trip.
    pub(crate) fn pong(&self, payload: &[u8]) {
        if let Ok(sent) = <[u8; 8]>::try_from(payload).map(u64::from_le_bytes) {
            let now = self.started.elapsed().as_nanos() as u64;
            if let Some(rtt) = now.checked_sub(sent) {
                self.rtt_ns.store(rtt.max(1), Ordering::Relaxed);
            }
        }
    }

    /// The last heartbeat's round trip, once one came back.
    pub(crate) fn heartbeat_rtt(&self) -> Option<Duration> {
        match self.rtt_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// A fresh channel id of this side's parity.
    pub(crate) fn fresh_id(&self) -> u64 {
        places_core::transport::Link::next_id(self)
    }

    pub(crate) fn touch(&self) {
        let now = self.started.elapsed().as_nanos() as u64;
        self.last_arrival.store(now, Ordering::Relaxed);
        self.last_seen.store(now / 1_000_000, Ordering::Relaxed);
    }

    /// Queues a control frame; never waits.
    pub(crate) fn send_control_frame(self: &Arc<Self>, kind: Kind, id: u64, payload: &[u8]) {
        self.out.control(&encode_frame(kind, id, payload));
    }

    /// Queues an answer to what the peer asked (a spawn's answer, say): like a control frame,
    /// but counted, so that a peer that asks and never reads is read no more.
    pub(crate) fn send_reply_frame(self: &Arc<Self>, kind: Kind, id: u64, payload: &[u8]) {
        self.out.reply(&encode_frame(kind, id, payload));
    }

    /// Ends the connection: the reader sees the end and closes every channel with `reason`.
    pub(crate) fn fail(&self, reason: &str) {
        self.out.fail(reason);
    }

    /// Reads frames until the connection ends, as a task of the event loop: whenever the
    /// socket is readable, except while threads that poll for messages read it (a plain
    /// connection's registration is then dropped, see [`direct`]).
    pub(crate) async fn read_loop(self: Arc<Self>, handler: Arc<dyn Handler>) {
        let _ = self.handler.set(handler.clone());
        let direct = (!self.stream.is_tls()).then(direct::direct);
        if let Some(d) = direct {
            d.watch_from_here();
        }
        // The second handle of the socket, registered for reading while the loop reads.
        let mut reads = match self.stream.second_handle() {
            Ok(handle) => Registration::Off(handle),
            Err(e) => return self.end(&e.to_string(), &*handler),
        };
        // Whether polling threads read it now; given back however this task ends (a panic
        // too), or the watcher would watch it for ever.
        let mut handed = HandedOver {
            direct,
            conn: &self,
            on: false,
        };
        let reason = loop {
            if self.ended.load(Ordering::Acquire) {
                break None;
            }
            // (A polling thread may hold the state for a moment: wait for it, since the
            // readiness that woke this task is cleared already.)
            let pumped = {
                let mut st = self
                    .read_state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                st.pump(&self)
            };
            if let Err(e) = pumped {
                break Some(wire_reason(&e));
            }
            // A peer that asks for answers (pings, say) and never reads them would make this
            // side queue them without end: read no more from it until they have gone. (Only
            // answers count: two nodes flooding each other with messages must not stop
            // reading each other.)
            while self.out.unread_replies() > MAX_CONTROL_BACKLOG && self.lost_reason().is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // While threads poll, they read a connection that carries traffic; the watcher
            // gives it back when it goes cold.
            if let Some(d) = direct.filter(|d| d.active() && self.is_hot() && !self.is_paused()) {
                reads = reads.off();
                if !handed.on {
                    d.hand_over(&self);
                    handed.on = true;
                }
                tokio::select! {
                    () = d.until_stopped() => {}
                    () = self.given_back.notified() => {}
                    () = self.ended_wake.notified() => {}
                }
                continue;
            }
            let r = match reads.on() {
                Ok(r) => r,
                Err(e) => break Some(e.to_string()),
            };
            // Registered first, then left by the polling threads: bytes that come in between
            // make the new registration readable.
            handed.take_back();
            if self.stream.holds_plaintext() {
                reads = Registration::On(r);
                continue;
            }
            // A busy connection is handed to the polling threads as soon as they start; an idle
            // one is not woken for it (bytes that come wake it, and it is busy then).
            let ready = match direct {
                Some(d) if self.is_hot() => tokio::select! {
                    ready = r.readable() => ready,
                    () = d.until_started() => Ok(()),
                    () = self.ended_wake.notified() => Ok(()),
                },
                Some(_) => tokio::select! {
                    ready = r.readable() => ready,
                    () = self.ended_wake.notified() => Ok(()),
                },
                None => r.readable().await,
            };
            reads = Registration::On(r);
            if let Err(e) = ready {
                break Some(e.to_string());
            }
        };
        handed.take_back();
        if let Some(reason) = reason {
            self.end(&reason, &*handler);
        }
    }

    /// Whether bytes arrived within [`direct::COLD`].
    fn is_hot(&self) -> bool {
        let now = self.started.elapsed().as_nanos() as u64;
        now.saturating_sub(self.last_arrival.load(Ordering::Relaxed))
            < direct::COLD.as_nanos() as u64
    }

    /// Whether reading is paused for a peer that does not read its answers.
    fn is_paused(&self) -> bool {
        self.out.unread_replies() > MAX_CONTROL_BACKLOG
    }

    /// Gives the connection back to its reading task (see [`direct`]).
    fn give_back(&self) {
        self.given_back.notify_one();
    }

    /// Reads what the socket has now, on a thread that polls for a message (see [`direct`]):
    /// unless another thread reads it, or its reading is paused for a peer that does not read
    /// its answers.
    fn progress(self: &Arc<Self>) {
        if self.ended.load(Ordering::Acquire) || self.is_paused() {
            return;
        }
        let Some(handler) = self.handler.get() else {
            return;
        };
        let mut st = match self.read_state.try_lock() {
            Ok(st) => st,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if self.ended.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = st.pump(self) {
            drop(st);
            self.end(&wire_reason(&e), &**handler);
        }
    }

    /// The connection ended: close everything on it and tell the handler (once).
    fn end(self: &Arc<Self>, reason: &str, handler: &dyn Handler) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        self.ended_wake.notify_one();
        // A reason recorded by `fail` (missed heartbeats, a failed write) says more than the
        // end of stream it caused.
        let reason = self.lost_reason().unwrap_or_else(|| reason.to_owned());
        self.fail(&reason);
        self.table.lose(&reason);
        handler.lost(self, &reason);
    }
}

/// Whether a reading task has handed its connection to the polling threads; takes it back when
/// dropped.
struct HandedOver<'a> {
    direct: Option<&'static direct::Direct>,
    conn: &'a Connection,
    on: bool,
}

impl HandedOver<'_> {
    fn take_back(&mut self) {
        if let Some(d) = self.direct.filter(|_| self.on) {
            d.take_back(self.conn);
        }
        self.on = false;
    }
}

impl Drop for HandedOver<'_> {
    fn drop(&mut self) {
        self.take_back();
    }
}

/// A connection's read registration with the event loop: on, or off (its handle kept).
enum Registration {
    On(socket::Reads),
    Off(std::net::TcpStream),
    /// Only while it changes.
    Changing,
}

impl Registration {
    /// Drops the registration (keeping the handle).
    fn off(self) -> Registration {
        match self {
            Registration::On(r) => Registration::Off(r.unregister()),
            other => other,
        }
    }

    /// The registration, made if it is off.
    fn on(&mut self) -> std::io::Result<socket::Reads> {
        match std::mem::replace(self, Registration::Changing) {
            Registration::On(r) => Ok(r),
            Registration::Off(handle) => Socket::register_reads(handle),
            Registration::Changing => Err(std::io::Error::other("the read registration was lost")),
        }
    }
}

impl Connection {
    /// Queues a small message for the writer (never waits). Queued, not written by this
    /// thread, when it sent another one moments ago: the event loop then writes all that came
    /// meanwhile at once.
    fn queue_small(
        &self,
        id: u64,
        encoding: u8,
        carried: &[u64],
        body: &[u8],
    ) -> Result<(), String> {
        let head = MessageHead::encode(encoding, carried);
        let now = self.started.elapsed().as_nanos() as u64;
        let last = self.last_small.swap(now, Ordering::Relaxed);
        let answers = self.last_arrival.load(Ordering::Relaxed) > last;
        let defer = now.saturating_sub(last) < CORK_NANOS && !answers;
        let mut frame = Vec::with_capacity(wire::HEADER + head.len() + body.len());
        frame.extend_from_slice(&header(Kind::Data, id, head.len() + body.len()));
        frame.extend_from_slice(&head);
        frame.extend_from_slice(body);
        self.out.queue(&frame, defer)
    }
}

impl Link for Connection {
    fn peer(&self) -> &str {
        &self.peer
    }

    fn settings(&self) -> Settings {
        self.settings
    }

    fn peer_settings(&self) -> Settings {
        self.peer_settings
    }

    fn table(&self) -> &ChannelTable {
        &self.table
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(2, Ordering::Relaxed)
    }

    fn send_message(
        &self,
        id: u64,
        encoding: u8,
        carried: &[u64],
        body: &[u8],
    ) -> Result<(), ChannelError> {
        let lost = |reason: String| ChannelError::Lost(self.lost_message(&reason));
        if let Some(reason) = self.out.failed() {
            return Err(lost(reason));
        }
        if body.len() <= SMALL && self.out.backlog() < MAX_CONTROL_BACKLOG {
            return self.queue_small(id, encoding, carried, body).map_err(lost);
        }
        let head = MessageHead::encode(encoding, carried);
        if body.len() <= wire::FRAGMENT {
            let h = header(Kind::Data, id, head.len() + body.len());
            return self.out.write_frame(&[&h, &head, body]).map_err(lost);
        }
        let total = (body.len() as u64).to_le_bytes();
        let (first, mut rest) = body.split_at(wire::FRAGMENT);
        let h = header(Kind::DataFirst, id, head.len() + 8 + first.len());
        self.out
            .write_frame(&[&h, &head, &total, first])
            .map_err(lost)?;
        while !rest.is_empty() {
            let n = rest.len().min(wire::FRAGMENT);
            let (chunk, after) = rest.split_at(n);
            let kind = if after.is_empty() {
                Kind::DataLast
            } else {
                Kind::DataMore
            };
            let h = header(kind, id, chunk.len());
            self.out.write_frame(&[&h, chunk]).map_err(lost)?;
            rest = after;
        }
        Ok(())
    }

    fn send_message_now(
        &self,
        id: u64,
        encoding: u8,
        carried: &[u64],
        body: &[u8],
    ) -> Option<Result<(), ChannelError>> {
        // Only small messages are queued for the writer; a larger one waits for a turn.
        if body.len() > SMALL
            || self.out.backlog() >= MAX_CONTROL_BACKLOG
            || self.out.failed().is_some()
        {
            return None;
        }
        let lost = |reason: String| ChannelError::Lost(self.lost_message(&reason));
        Some(self.queue_small(id, encoding, carried, body).map_err(lost))
    }

    fn send_control(&self, id: u64, control: Control) {
        let frame = match control {
            Control::Close => encode_frame(Kind::Close, id, &[]),
            Control::Credit { bytes, messages } => {
                encode_frame(Kind::Credit, id, &wire::credit_payload(bytes, messages))
            }
            Control::Error(reason) => {
                return self
                    .out
                    .reply(&encode_frame(Kind::Error, id, reason.as_bytes()))
            }
            Control::Handoff { token, attempt, to } => encode_frame(
                Kind::Handoff,
                id,
                &wire::handoff_payload(token, attempt, &to),
            ),
            Control::HandedOff { attempt } => {
                encode_frame(Kind::HandedOff, id, &attempt.to_le_bytes())
            }
            Control::Kept { attempt, why } => {
                encode_frame(Kind::Kept, id, &wire::kept_payload(attempt, &why))
            }
            Control::Resume(token) => encode_frame(Kind::Resume, id, &token.to_le_bytes()),
            Control::Commit(token) => encode_frame(Kind::Commit, id, &token.to_le_bytes()),
            Control::Adopt(token) => encode_frame(Kind::Adopt, id, &token.to_le_bytes()),
            Control::Repoint { token, attempt, to } => encode_frame(
                Kind::Repoint,
                id,
                &wire::handoff_payload(token, attempt, &to),
            ),
            Control::Moved => encode_frame(Kind::Moved, id, &[]),
        };
        self.out.control(&frame);
    }

    fn lost(&self) -> Option<String> {
        self.out.failed()
    }

    fn peer_listens_at(&self) -> Option<String> {
        self.dialed.clone()
    }

    fn over_loopback(&self) -> bool {
        self.loopback
    }
}

/// A wire error as a connection's end reason.
fn wire_reason(e: &WireError) -> String {
    match e {
        WireError::Closed => "connection closed".to_owned(),
        other => other.to_string(),
    }
}
