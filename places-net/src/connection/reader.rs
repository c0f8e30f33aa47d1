//! The reading side of a connection, as a state machine: it reads what the socket has (without
//! waiting), reassembles fragmented messages, and hands each message, undecoded, to its
//! channel. The event loop runs it whenever the socket is readable; it never waits for anything
//! but the socket and never runs user code.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::BufMut;
use places_core::codec::Body;
use places_core::transport::{Incoming, LinkRef};

use super::Connection;
use crate::wire::{self, Frame, Kind, MessageHead, WireError, FIXED};

/// How much the reader buffers at once (many small frames per read).
const BUFFER: usize = 64 << 10;

/// The largest front of a first fragment: a head with every channel it may carry, and the
/// message's length.
const MAX_FRONT: usize = 5 + wire::MAX_CARRIED * 8 + 8;

/// A message whose fragments are arriving.
enum Partial {
    /// Being reassembled: the message (its body grows), and the body's announced length.
    Building { msg: Incoming, total: usize },
    /// Refused at its first fragment: its further fragments are skipped.
    Skipping,
}

/// The frame being read.
enum Cur {
    /// A frame whose whole payload goes into the buffer before it is handled.
    Whole { kind: Kind, id: u64, len: usize },
    /// A first fragment: its front (head and length) goes into the buffer, then its body part
    /// streams into the message.
    First { id: u64, len: usize },
    /// Bytes of the body of message `id`; the last of them completes it if `last`.
    Body { id: u64, left: usize, last: bool },
    /// Bytes to throw away.
    Skip { left: usize },
}

/// What the reader keeps between reads.
pub(crate) struct ReadState {
    buf: Vec<u8>,
    start: usize,
    cur: Option<Cur>,
    partial: HashMap<u64, Partial>,
}

impl Default for ReadState {
    fn default() -> Self {
        Self {
            buf: Vec::with_capacity(BUFFER),
            start: 0,
            cur: None,
            partial: HashMap::new(),
        }
    }
}

/// A read that got nothing now.
fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl ReadState {
    fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Reads what the socket has into the buffer, keeping room for at least `want` more bytes
    /// (growing only as bytes arrive); `Ok(false)` when it has nothing now.
    fn fill(&mut self, conn: &Connection, want: usize) -> Result<bool, WireError> {
        if self.start > 0
            && (self.start == self.buf.len()
                || self.buf.capacity() - self.buf.len() < want.min(BUFFER))
        {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < want.min(BUFFER) {
            self.buf.reserve(want.min(BUFFER));
        }
        let mut read = conn.stream.try_read_buf(&mut self.buf);
        // Interrupted before it read anything: ask again (nothing else would).
        while matches!(&read, Err(e) if e.kind() == io::ErrorKind::Interrupted) {
            read = conn.stream.try_read_buf(&mut self.buf);
        }
        match read {
            Ok(0) => Err(if self.buffered() == 0 && self.cur.is_none() {
                WireError::Closed
            } else {
                WireError::Truncated
            }),
            Ok(_) => {
                conn.touch();
                Ok(true)
            }
            Err(e) if would_block(&e) => Ok(false),
            Err(e) => Err(WireError::Io(e)),
        }
    }

    /// Reads and handles frames until the socket has nothing more for now. An error breaks the
    /// framing: the connection must close.
    pub(crate) fn pump(&mut self, conn: &Arc<Connection>) -> Result<(), WireError> {
        let link: LinkRef = conn.clone();
        loop {
            let Some(cur) = self.cur.take() else {
                if self.buffered() < wire::HEADER {
                    if !self.fill(conn, wire::HEADER)? {
                        return Ok(());
                    }
                    continue;
                }
                self.cur = Some(self.header(&link)?);
                continue;
            };
            match cur {
                Cur::Whole { kind, id, len } => {
                    if self.buffered() < len {
                        self.cur = Some(cur);
                        if !self.fill(conn, len - self.buffered())? {
                            return Ok(());
                        }
                        continue;
                    }
                    let payload = self.buf[self.start..self.start + len].to_vec();
                    self.start += len;
                    self.handle(conn, &link, kind, id, payload);
                }
                Cur::First { id, len } => {
                    let front = len.min(MAX_FRONT);
                    if self.buffered() < front {
                        self.cur = Some(cur);
                        if !self.fill(conn, front - self.buffered())? {
                            return Ok(());
                        }
                        continue;
                    }
                    self.cur = Some(self.first(&link, id, len));
                }
                Cur::Body { id, left, last } => {
                    if !matches!(self.partial.get(&id), Some(Partial::Building { .. })) {
                        self.cur = Some(Cur::Skip { left });
                        continue;
                    }
                    let left = self.body(conn, id, left)?;
                    if left > 0 {
                        self.cur = Some(Cur::Body { id, left, last });
                        return Ok(());
                    }
                    if last {
                        if let Some(Partial::Building { msg, .. }) = self.partial.remove(&id) {
                            link.table().complete(msg);
                        }
                    }
                }
                Cur::Skip { left } => {
                    let n = self.buffered().min(left);
                    self.start += n;
                    if left > n {
                        self.cur = Some(Cur::Skip { left: left - n });
                        if !self.fill(conn, BUFFER)? {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Parses the next frame header and decides how its payload is read.
    fn header(&mut self, link: &LinkRef) -> Result<Cur, WireError> {
        let h = &self.buf[self.start..self.start + wire::HEADER];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let len = wire::check_length(len, wire::MAX_FRAME)?;
        let mut head = [0u8; FIXED as usize];
        head.copy_from_slice(&h[4..]);
        let (kind, id) = wire::parse_head(&head)?;
        self.start += wire::HEADER;
        Ok(match kind {
            Kind::DataFirst => Cur::First { id, len },
            Kind::DataMore | Kind::DataLast => {
                let last = kind == Kind::DataLast;
                match self.partial.get(&id) {
                    Some(Partial::Building { msg, total }) => {
                        let (have, total) = (msg.len(), *total);
                        if have + len > total || (last && have + len != total) {
                            // Dropping the message closes the channels it carries.
                            self.partial.remove(&id);
                            link.table().refuse(
                                link,
                                id,
                                &[],
                                format!(
                                    "a message announced as {total} bytes came with {} bytes",
                                    have + len
                                ),
                            );
                            if !last {
                                self.partial.insert(id, Partial::Skipping);
                            }
                            Cur::Skip { left: len }
                        } else {
                            if let Some(Partial::Building { msg, .. }) = self.partial.get_mut(&id) {
                                grow(msg.body_mut(), total, len);
                            }
                            Cur::Body {
                                id,
                                left: len,
                                last,
                            }
                        }
                    }
                    Some(Partial::Skipping) => {
                        if last {
                            self.partial.remove(&id);
                        }
                        Cur::Skip { left: len }
                    }
                    None => {
                        link.table().refuse(
                            link,
                            id,
                            &[],
                            "a fragment of a message that never began".into(),
                        );
                        Cur::Skip { left: len }
                    }
                }
            }
            _ => Cur::Whole { kind, id, len },
        })
    }

    /// Handles a whole frame.
    fn handle(
        &mut self,
        conn: &Arc<Connection>,
        link: &LinkRef,
        kind: Kind,
        id: u64,
        payload: Vec<u8>,
    ) {
        let table = link.table();
        match kind {
            Kind::Data => {
                let (head, body) = match MessageHead::parse(&payload) {
                    Ok(parsed) => parsed,
                    Err(why) => {
                        let carried = MessageHead::carried_anyway(&payload);
                        return table.refuse(
                            link,
                            id,
                            &carried,
                            format!("a malformed message: {why}"),
                        );
                    }
                };
                if let Some(mut msg) =
                    table.begin(link, id, head.encoding, head.carried, body.len() as u64)
                {
                    // Room first: extending an empty body would grow it a little at a time.
                    msg.body_mut().reserve_exact(body.len());
                    msg.body_mut().extend_from_slice(body);
                    table.complete(msg);
                }
            }
            Kind::Close => table.peer_close(id),
            Kind::Credit => {
                if let Some((bytes, messages)) = wire::parse_credit(&payload) {
                    table.credit(id, bytes, messages);
                }
            }
            Kind::Error => table.error(id, String::from_utf8_lossy(&payload).into_owned()),
            // Channel ends handed on to another node (malformed payloads are ignored).
            Kind::Handoff => {
                if let Some((token, attempt, to)) = wire::parse_handoff(&payload) {
                    table.handoff(id, token, attempt, to);
                }
            }
            Kind::HandedOff => {
                if let Some(attempt) = wire::parse_token(&payload) {
                    table.handed_off(id, attempt, Ok(()));
                }
            }
            Kind::Kept => {
                if let Some((attempt, why)) = wire::parse_kept(&payload) {
                    table.handed_off(id, attempt, Err(why));
                }
            }
            Kind::Resume => {
                if let Some(token) = wire::parse_token(&payload) {
                    table.resume(link, token);
                }
            }
            Kind::Commit => {
                if let Some(token) = wire::parse_token(&payload) {
                    table.commit(link, token);
                }
            }
            Kind::Adopt => {
                if let Some(token) = wire::parse_token(&payload) {
                    table.adopt(link, id, token);
                }
            }
            Kind::Repoint => {
                if let Some((token, attempt, to)) = wire::parse_handoff(&payload) {
                    table.repoint(link, id, token, attempt, to);
                }
            }
            Kind::Moved => table.peer_moved(id),
            // The ping's payload (a timestamp of at most 8 bytes) comes back with the pong.
            Kind::Ping => {
                let echo = if payload.len() <= 8 {
                    &payload[..]
                } else {
                    &[][..]
                };
                conn.out.reply(&wire::encode_frame(Kind::Pong, 0, echo))
            }
            Kind::Pong => conn.pong(&payload),
            other => {
                let frame = Frame {
                    kind: other,
                    channel: id,
                    payload,
                };
                match conn.handler.get() {
                    // Our own code, but a panic here must not leave the connection hanging.
                    Some(h) => {
                        let handled =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                h.frame(conn, frame)
                            }));
                        if handled.is_err() {
                            eprintln!(
                                "places: a panic while handling a {other:?} frame from {}",
                                conn.peer()
                            );
                        }
                    }
                    None => eprintln!("places: a {other:?} frame before the connection was ready"),
                }
            }
        }
    }

    /// A first fragment's front is in the buffer: begins its message (or refuses it).
    fn first(&mut self, link: &LinkRef, id: u64, len: usize) -> Cur {
        if let Some(Partial::Building { .. }) = self.partial.remove(&id) {
            link.table().refuse(
                link,
                id,
                &[],
                "a message began before the one before it ended".into(),
            );
        }
        let front = &self.buf[self.start..self.start + len.min(MAX_FRONT)];
        let parsed = MessageHead::parse(front).and_then(|(head, rest)| {
            let total: [u8; 8] = rest
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| "a first fragment without the message's length".to_owned())?;
            Ok((
                head,
                u64::from_le_bytes(total),
                front.len() - rest.len() + 8,
            ))
        });
        let max = link.settings().max_message;
        let (head, total, consumed) = match parsed {
            Ok(p) => p,
            Err(why) => {
                let carried = MessageHead::carried_anyway(front);
                link.table()
                    .refuse(link, id, &carried, format!("a malformed message: {why}"));
                self.partial.insert(id, Partial::Skipping);
                return Cur::Skip { left: len };
            }
        };
        self.start += consumed;
        let first_body = len - consumed;
        if total > max || (total as usize) < first_body {
            let why = if total > max {
                format!("a message of {total} bytes exceeds this node's limit of {max} bytes")
            } else {
                format!("a message of {total} bytes whose first fragment holds {first_body}")
            };
            link.table().refuse(link, id, &head.carried, why);
            self.partial.insert(id, Partial::Skipping);
            return Cur::Skip { left: first_body };
        }
        let total = total as usize;
        match link
            .table()
            .begin(link, id, head.encoding, head.carried, total as u64)
        {
            Some(mut msg) => {
                // Room for what arrives now and the next fragment, never for what is merely
                // announced.
                msg.body_mut()
                    .reserve_exact(total.min(first_body + wire::FRAGMENT));
                self.partial.insert(id, Partial::Building { msg, total });
                Cur::Body {
                    id,
                    left: first_body,
                    last: false,
                }
            }
            None => {
                self.partial.insert(id, Partial::Skipping);
                Cur::Skip { left: first_body }
            }
        }
    }

    /// Moves up to `left` body bytes of message `id` into its body: what the buffer holds, then
    /// straight from the socket. Returns how many are still to come.
    fn body(&mut self, conn: &Connection, id: u64, mut left: usize) -> Result<usize, WireError> {
        let Some(Partial::Building { msg, .. }) = self.partial.get_mut(&id) else {
            return Ok(left);
        };
        let body = msg.body_mut();
        let n = (self.buf.len() - self.start).min(left);
        body.extend_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        left -= n;
        while left > 0 {
            if body.spare_capacity() < left {
                body.reserve_exact(left);
            }
            populate(body, left);
            match conn.stream.try_read_buf(&mut (&mut *body).limit(left)) {
                Ok(0) => return Err(WireError::Truncated),
                Ok(n) => {
                    conn.touch();
                    left -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if would_block(&e) => return Ok(left),
                Err(e) => return Err(WireError::Io(e)),
            }
        }
        Ok(0)
    }
}

/// Makes room in a body for a fragment of `len` more bytes: geometrically, but never past the
/// announced `total` nor to more than twice what arrived.
fn grow(body: &mut Body, total: usize, len: usize) {
    if body.spare_capacity() < len {
        let want = total.min(
            (body.len() * 2)
                .max(body.len() + len)
                .max(body.len() + wire::FRAGMENT),
        );
        body.reserve_exact(want - body.len());
    }
}

/// Has the kernel back the room the next `len` bytes of a body go to in one go, rather than a
/// page fault at a time (a gigabyte is a quarter million faults otherwise), a fragment at a
/// time so that the reader never stops for long. Only a hint: where the kernel lacks it, the
/// pages come on first touch as usual.
#[cfg(target_os = "linux")]
fn populate(body: &mut Body, len: usize) {
    const PAGE: usize = 4096;
    if len < 64 << 10 {
        return;
    }
    let room = bytes::BufMut::chunk_mut(body);
    let (ptr, room_len) = (room.as_mut_ptr() as usize, room.len().min(len));
    let start = ptr.next_multiple_of(PAGE);
    let end = (ptr + room_len) & !(PAGE - 1);
    if end > start {
        // SAFETY: `[start, end)` is spare capacity of the body's own allocation, alive across
        // the call; populating only backs the pages (they read as zeros), it writes nothing.
        unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                end - start,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn populate(_body: &mut Body, _len: usize) {}
