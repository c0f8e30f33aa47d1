//! One authenticated connection between two nodes: frames out under a lock (the calling thread
//! writes its own frame, no hand-off), frames in on a task of the process's event loop that
//! delivers each message straight into its channel's queue.

use std::collections::HashMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use places_core::{ChannelError, FrameSink, Inbound};

use crate::wire::{encode_frame, fill_header, header, Frame, Kind, WireError};

/// What a connection does with the frames that are not channel data.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Handles one frame; an error closes the connection with that reason.
    fn frame(&self, conn: &Arc<Connection>, frame: Frame) -> Result<(), String>;
    /// The connection is gone; every channel on it has already been closed.
    fn lost(&self, conn: &Arc<Connection>, reason: &str);
}

enum Slot {
    Open(Arc<dyn Inbound>),
    /// Closed here; data the peer sent before it learned so is dropped quietly.
    Closed,
}

struct State {
    /// Every channel ever opened on this connection; closed ones stay as tombstones so that
    /// data still in flight for them is told apart from data for ids never opened (bad input).
    channels: HashMap<u64, Slot>,
    lost: Option<String>,
}

/// A connection's socket: the process's tokio event loop reads it; writers (any thread) write
/// under the lock with non-blocking writes, waiting for writability when the socket is full.
struct Socket {
    stream: Arc<tokio::net::TcpStream>,
    lock: Mutex<()>,
    runtime: tokio::runtime::Handle,
}

/// A connection to a peer node (either direction).
pub(crate) struct Connection {
    peer: String,
    /// The largest frame either side sends or accepts.
    max_frame: u32,
    socket: Socket,
    /// The same socket, to shut it down without waiting for a writer that is stuck (a peer
    /// that stopped reading).
    closer: TcpStream,
    /// Set once the connection is lost: the senders' fast check.
    is_lost: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
    next_id: AtomicU64,
    started: Instant,
    /// Milliseconds since `started` when the last frame arrived.
    last_seen: AtomicU64,
    /// A ping the heartbeat could not write (a frame was being written): the writer sends it
    /// after its frame, so a peer busy reading a long one-way stream still answers pings.
    ping_pending: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connection {
    /// A connection whose socket the event loop reads (see `read_loop_evented`); `closer` is a
    /// second handle of the same socket. The side that connected allocates odd channel ids and
    /// the node even ones, so both can open channels without asking.
    pub(crate) fn new_evented(
        peer: String,
        stream: Arc<tokio::net::TcpStream>,
        closer: TcpStream,
        runtime: tokio::runtime::Handle,
        first_id: u64,
    ) -> Arc<Connection> {
        Arc::new(Connection {
            peer,
            max_frame: crate::wire::DEFAULT_MAX_FRAME,
            closer,
            is_lost: std::sync::atomic::AtomicBool::new(false),
            socket: Socket {
                stream,
                lock: Mutex::new(()),
                runtime,
            },
            state: Mutex::new(State {
                channels: HashMap::new(),
                lost: None,
            }),
            next_id: AtomicU64::new(first_id),
            started: Instant::now(),
            last_seen: AtomicU64::new(0),
            ping_pending: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The peer's name, for errors.
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// Why the connection is gone, if it is.
    pub(crate) fn lost_reason(&self) -> Option<String> {
        lock(&self.state).lost.clone()
    }

    /// A fresh channel id (ids are allocated by the side that spawns).
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(2, Ordering::Relaxed)
    }

    /// Milliseconds since the last frame arrived.
    pub(crate) fn silent_for_ms(&self) -> u64 {
        let now = self.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_seen.load(Ordering::Relaxed))
    }

    /// Registers the receiving half of channel `id`.
    pub(crate) fn register(&self, id: u64, inbound: Arc<dyn Inbound>) {
        let mut st = lock(&self.state);
        if let Some(reason) = st.lost.clone() {
            // Nothing will ever arrive: close it at once (outside the lock, since closing may
            // come back to this connection) and keep no reference to it.
            drop(st);
            inbound.close(Some(self.lost_message(&reason)));
            return;
        }
        st.channels.insert(id, Slot::Open(inbound));
    }

    /// Whether `id` was ever registered here.
    pub(crate) fn known(&self, id: u64) -> bool {
        id == 0 || lock(&self.state).channels.contains_key(&id)
    }

    fn lost_message(&self, reason: &str) -> String {
        format!("node `{}` is gone: {reason}", self.peer)
    }

    /// Writes one frame.
    pub(crate) fn send(&self, kind: Kind, id: u64, payload: &[u8]) -> Result<(), String> {
        self.send_raw(&encode_frame(kind, id, payload))
    }

    /// Writes a frame given as a header and a body, in one vectored write where the system
    /// takes it (no copy of the body).
    fn send_parts(&self, head: &[u8], body: &[u8]) -> Result<(), String> {
        if self.is_lost.load(Ordering::Relaxed) {
            let reason = self.lost_reason().unwrap_or_default();
            return Err(self.lost_message(&reason));
        }
        let result = {
            let _guard = lock(&self.socket.lock);
            let sock = &self.socket;
            write_all_evented(&sock.stream, &sock.runtime, head, body).and_then(|()| {
                if self.ping_pending.swap(false, Ordering::Relaxed) {
                    write_all_evented(
                        &sock.stream,
                        &sock.runtime,
                        &encode_frame(Kind::Ping, 0, &[]),
                        &[],
                    )
                } else {
                    Ok(())
                }
            })
        };
        result.map_err(|e| {
            self.fail(&format!("write failed: {e}"));
            // The first reason recorded (a missed heartbeat that shut the socket, say) says
            // more than the broken pipe it caused.
            self.lost_message(&self.lost_reason().unwrap_or_default())
        })
    }

    /// Sends a ping unless a frame is being written right now (then the peer hears from us
    /// anyway, and waiting for a writer that is stuck would stop the heartbeat).
    pub(crate) fn ping_if_idle(&self) {
        let Ok(_guard) = self.socket.lock.try_lock() else {
            // The writer sends it after its frame.
            self.ping_pending.store(true, Ordering::Relaxed);
            return;
        };
        let ping = encode_frame(Kind::Ping, 0, &[]);
        // Never block here (the heartbeat must stay free to declare the peer lost): a full
        // socket skips the ping; a ping begun is finished within a second or the peer is lost.
        let mut done = 0;
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        while done < ping.len() {
            match self.socket.stream.try_write(&ping[done..]) {
                Ok(n) if n > 0 => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && done == 0 => return,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                _ => {
                    drop(_guard);
                    self.fail("could not write a heartbeat");
                    return;
                }
            }
        }
    }

    /// Writes an encoded frame.
    fn send_raw(&self, buf: &[u8]) -> Result<(), String> {
        self.send_parts(buf, &[])
    }

    /// Ends the connection: the reader sees the end and closes every channel with `reason`.
    pub(crate) fn fail(&self, reason: &str) {
        {
            let mut st = lock(&self.state);
            if st.lost.is_none() {
                st.lost = Some(reason.to_owned());
            }
        }
        self.is_lost.store(true, Ordering::Relaxed);
        let _ = self.closer.shutdown(Shutdown::Both);
    }

    /// Closes every channel, naming the peer and `reason`.
    fn close_all(&self, reason: &str) {
        let slots: Vec<Slot> = {
            let mut st = lock(&self.state);
            if st.lost.is_none() {
                st.lost = Some(reason.to_owned());
            }
            st.channels.drain().map(|(_, s)| s).collect()
        };
        self.is_lost.store(true, Ordering::Relaxed);
        let message = self.lost_message(&lock(&self.state).lost.clone().unwrap_or_default());
        for slot in slots {
            if let Slot::Open(inbound) = slot {
                inbound.close(Some(message.clone()));
            }
        }
    }

    /// The peer closed its end of channel `id`.
    fn remote_close(&self, id: u64) {
        let slot = {
            let mut st = lock(&self.state);
            match st.channels.get(&id) {
                // Open here: keep a tombstone until this side closes too.
                Some(Slot::Open(_)) => st.channels.insert(id, Slot::Closed),
                // Closed on both sides now: nothing more can arrive for it.
                Some(Slot::Closed) => st.channels.remove(&id),
                // Never opened: nothing to close (and nothing to remember).
                None => None,
            }
        };
        if let Some(Slot::Open(inbound)) = slot {
            inbound.close(None);
        }
    }

    /// Delivers a message to channel `id`.
    fn deliver(&self, id: u64, payload: &[u8]) -> Result<(), String> {
        let inbound = {
            let st = lock(&self.state);
            match st.channels.get(&id) {
                Some(Slot::Open(i)) => Some(i.clone()),
                Some(Slot::Closed) => None,
                None => return Err(format!("data for unknown channel {id}")),
            }
        };
        match inbound {
            Some(i) => i
                .deliver(payload)
                .map_err(|e| format!("undecodable message on channel {id}: {e}")),
            None => Ok(()),
        }
    }

    /// Reads frames until the connection ends, as a task of the event loop.
    pub(crate) async fn read_loop_evented(
        self: Arc<Self>,
        stream: Arc<tokio::net::TcpStream>,
        max_frame: u32,
        handler: Arc<dyn Handler>,
    ) {
        let reason = loop {
            match read_frame_evented(&stream, max_frame).await {
                Ok(frame) => {
                    // A panic in user code run here (a `Deserialize` impl, a thunk) must end
                    // the connection cleanly, closing its channels, not leave them hanging.
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.dispatch(frame, &*handler)
                    }))
                    .unwrap_or_else(|_| Err("a panic while handling a frame".to_owned()));
                    if let Err(reason) = outcome {
                        break reason;
                    }
                }
                Err(WireError::Closed) => break "connection closed".to_owned(),
                Err(e) => break e.to_string(),
            }
        };
        self.end(&reason, &*handler);
    }

    /// Handles one incoming frame: channel traffic here, the rest by the handler.
    fn dispatch(self: &Arc<Self>, frame: Frame, handler: &dyn Handler) -> Result<(), String> {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_seen.store(now, Ordering::Relaxed);
        match frame.kind {
            Kind::Data => self.deliver(frame.channel, &frame.payload),
            Kind::Close => {
                self.remote_close(frame.channel);
                Ok(())
            }
            _ => handler.frame(self, frame),
        }
    }

    /// The connection ended: close everything on it and tell the handler.
    fn end(self: &Arc<Self>, reason: &str, handler: &dyn Handler) {
        // A reason recorded by `fail` (missed heartbeats, a failed write) says more than the
        // end of stream it caused.
        let reason = self.lost_reason().unwrap_or_else(|| reason.to_owned());
        self.fail(&reason);
        self.close_all(&reason);
        handler.lost(self, &reason);
    }
}

impl FrameSink for Connection {
    fn send_data(&self, id: u64, mut bytes: Vec<u8>) -> Result<(), ChannelError> {
        let len = bytes.len() - places_core::codec::FRAME_HEADROOM;
        if len > self.max_frame as usize - 10 {
            return Err(ChannelError::Unsendable(format!(
                "a message of {len} bytes exceeds the {}-byte frame limit",
                self.max_frame
            )));
        }
        fill_header(&mut bytes, Kind::Data, id);
        self.send_raw(&bytes).map_err(ChannelError::Lost)
    }

    fn send_data_parts(&self, id: u64, version: u8, body: &[u8]) -> Result<(), ChannelError> {
        if body.len() + 1 > self.max_frame as usize - 10 {
            return Err(ChannelError::Unsendable(format!(
                "a message of {} bytes exceeds the {}-byte frame limit",
                body.len() + 1,
                self.max_frame
            )));
        }
        let mut head = [0u8; places_core::codec::FRAME_HEADROOM + 1];
        head[..places_core::codec::FRAME_HEADROOM].copy_from_slice(&header(
            Kind::Data,
            id,
            1 + body.len(),
        ));
        head[places_core::codec::FRAME_HEADROOM] = version;
        self.send_parts(&head, body).map_err(ChannelError::Lost)
    }

    fn close(&self, id: u64) {
        {
            let mut st = lock(&self.state);
            match st.channels.get(&id) {
                // The peer closed first: both sides are done with it.
                Some(Slot::Closed) => {
                    st.channels.remove(&id);
                }
                // Data the peer sent before it learns of this close is dropped quietly.
                _ => {
                    st.channels.insert(id, Slot::Closed);
                }
            }
        }
        let _ = self.send(Kind::Close, id, &[]);
    }

    fn open_channel(&self, inbound: Arc<dyn Inbound>) -> u64 {
        let id = self.next_id();
        self.register(id, inbound);
        id
    }

    fn register_channel(&self, id: u64, inbound: Arc<dyn Inbound>) {
        self.register(id, inbound);
    }
}

/// Writes a header and a body on a socket of the event loop, from any thread: non-blocking
/// writes, and a wait for writability when the socket is full.
fn write_all_evented(
    stream: &tokio::net::TcpStream,
    runtime: &tokio::runtime::Handle,
    head: &[u8],
    body: &[u8],
) -> std::io::Result<()> {
    let mut bufs = [std::io::IoSlice::new(head), std::io::IoSlice::new(body)];
    let mut parts: &mut [std::io::IoSlice<'_>] = &mut bufs;
    while !parts.is_empty() {
        match stream.try_write_vectored(parts) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
            Ok(n) => std::io::IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_writable(stream, runtime)?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until `stream` can take more bytes, from whatever thread this is.
fn wait_writable(
    stream: &tokio::net::TcpStream,
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<()> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        // A plain thread (a place): block on the event loop's readiness.
        Err(_) => runtime.block_on(stream.writable()),
        // A worker of a multi-threaded runtime (the event loop itself): step out of it first.
        Ok(RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| runtime.block_on(stream.writable()))
        }
        // Inside someone's single-threaded runtime, where blocking on another is not allowed:
        // retry shortly.
        Ok(_) => {
            std::thread::sleep(std::time::Duration::from_micros(200));
            Ok(())
        }
    }
}

/// `read_frame` for a socket of the event loop.
async fn read_frame_evented(stream: &tokio::net::TcpStream, max: u32) -> Result<Frame, WireError> {
    let mut len = [0u8; 4];
    match read_exact_evented(stream, &mut len).await? {
        0 => return Err(WireError::Closed),
        4 => {}
        _ => return Err(WireError::Truncated),
    }
    let want = crate::wire::check_length(u32::from_le_bytes(len), max)?;
    let mut head = [0u8; 10];
    if read_exact_evented(stream, &mut head).await? != head.len() {
        return Err(WireError::Truncated);
    }
    let (kind, channel) = crate::wire::parse_head(&head)?;
    // Read into spare capacity: nothing is zeroed, and the capacity is the checked length.
    let mut payload: Vec<u8> = Vec::with_capacity(want);
    while payload.len() < want {
        stream.readable().await?;
        match stream.try_read_buf(&mut payload) {
            Ok(0) => return Err(WireError::Truncated),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    Ok(Frame {
        kind,
        channel,
        payload,
    })
}

/// Fills `buf` or reaches the end of the stream; returns how many bytes were read.
async fn read_exact_evented(
    stream: &tokio::net::TcpStream,
    buf: &mut [u8],
) -> Result<usize, WireError> {
    let mut done = 0;
    while done < buf.len() {
        stream.readable().await?;
        match stream.try_read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    Ok(done)
}
