//! One authenticated connection between two nodes: frames out under a lock (the calling thread
//! writes its own frame, no hand-off), frames in on one reader thread that delivers each message
//! straight into its channel's queue.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use places_core::{ChannelError, FrameSink, Inbound};

use crate::wire::{encode_frame, fill_header, header, read_frame, Frame, Kind, WireError};

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

/// A connection to a peer node (either direction).
pub(crate) struct Connection {
    peer: String,
    /// The largest frame either side sends or accepts.
    max_frame: u32,
    writer: Mutex<TcpStream>,
    /// The same socket, to shut it down without waiting for a writer that is stuck (a peer
    /// that stopped reading).
    closer: Option<TcpStream>,
    /// Set once the connection is lost: the senders' fast check.
    is_lost: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
    next_id: AtomicU64,
    started: Instant,
    /// Milliseconds since `started` when the last frame arrived.
    last_seen: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connection {
    /// A connection; the side that connected allocates odd channel ids and the node even ones,
    /// so both can open channels without asking.
    pub(crate) fn new(peer: String, writer: TcpStream, first_id: u64) -> Arc<Connection> {
        Arc::new(Connection {
            peer,
            max_frame: crate::wire::DEFAULT_MAX_FRAME,
            closer: writer.try_clone().ok(),
            is_lost: std::sync::atomic::AtomicBool::new(false),
            writer: Mutex::new(writer),
            state: Mutex::new(State {
                channels: HashMap::new(),
                lost: None,
            }),
            next_id: AtomicU64::new(first_id),
            started: Instant::now(),
            last_seen: AtomicU64::new(0),
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
        if let Some(reason) = &st.lost {
            inbound.close(Some(self.lost_message(reason)));
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
        let mut writer = lock(&self.writer);
        let mut bufs = [std::io::IoSlice::new(head), std::io::IoSlice::new(body)];
        let mut parts: &mut [std::io::IoSlice<'_>] = &mut bufs;
        let mut result = Ok(());
        while !parts.is_empty() {
            match writer.write_vectored(parts) {
                Ok(0) => {
                    result = Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => std::io::IoSlice::advance_slices(&mut parts, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(writer);
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
        if let Ok(mut w) = self.writer.try_lock() {
            if w.write_all(&encode_frame(Kind::Ping, 0, &[])).is_err() {
                drop(w);
                self.fail("write failed while pinging");
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
        match &self.closer {
            Some(c) => {
                let _ = c.shutdown(Shutdown::Both);
            }
            None => {
                let _ = lock(&self.writer).shutdown(Shutdown::Both);
            }
        }
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
        let slot = lock(&self.state).channels.insert(id, Slot::Closed);
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

    /// Reads frames until the connection ends; runs on the connection's reader thread.
    pub(crate) fn read_loop(
        self: &Arc<Self>,
        mut reader: TcpStream,
        max_frame: u32,
        handler: &dyn Handler,
    ) {
        let reason = loop {
            match read_frame(&mut reader, max_frame) {
                Ok(frame) => {
                    let now = self.started.elapsed().as_millis() as u64;
                    self.last_seen.store(now, Ordering::Relaxed);
                    let outcome = match frame.kind {
                        Kind::Data => self.deliver(frame.channel, &frame.payload),
                        Kind::Close => {
                            self.remote_close(frame.channel);
                            Ok(())
                        }
                        _ => handler.frame(self, frame),
                    };
                    if let Err(reason) = outcome {
                        break reason;
                    }
                }
                Err(WireError::Closed) => break "connection closed".to_owned(),
                Err(e) => break e.to_string(),
            }
        };
        // A reason recorded by `fail` (missed heartbeats, a failed write) says more than the
        // end of stream it caused.
        let reason = self.lost_reason().unwrap_or(reason);
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
        lock(&self.state).channels.insert(id, Slot::Closed);
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
