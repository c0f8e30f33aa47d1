//! The reading side of a connection: a task of the event loop that reads frames through a buffer
//! (many small frames per read), reassembles fragmented messages, and hands each message,
//! undecoded, to its channel. It never waits for anything but the socket and never runs user code.

use std::collections::HashMap;
use std::io;

use bytes::BufMut;
use places_core::codec::Body;
use places_core::transport::{Incoming, LinkRef};

use crate::wire::{self, Kind, MessageHead, WireError, FIXED};

/// Reads frames off a socket of the event loop through a buffer.
pub(crate) struct FrameReader<'a> {
    stream: &'a tokio::net::TcpStream,
    buf: Vec<u8>,
    start: usize,
    /// Called with every read that got bytes: any byte is a sign of life.
    seen: &'a (dyn Fn() + Send + Sync),
}

/// How much the reader buffers at once.
const BUFFER: usize = 64 << 10;

impl<'a> FrameReader<'a> {
    pub(crate) fn new(
        stream: &'a tokio::net::TcpStream,
        seen: &'a (dyn Fn() + Send + Sync),
    ) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(BUFFER),
            start: 0,
            seen,
        }
    }

    fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Reads more bytes into the buffer; `Ok(0)` at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0
            && (self.start == self.buf.len() || self.buf.capacity() - self.buf.len() < 4096)
        {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() == self.buf.len() {
            self.buf.reserve(BUFFER);
        }
        loop {
            self.stream.readable().await?;
            match self.stream.try_read_buf(&mut self.buf) {
                Ok(n) => {
                    if n > 0 {
                        (self.seen)();
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next frame's kind, channel and payload length; its payload is to be read next.
    pub(crate) async fn header(&mut self, max: u32) -> Result<(Kind, u64, usize), WireError> {
        while self.buffered() < wire::HEADER {
            if self.fill().await? == 0 {
                return Err(if self.buffered() == 0 {
                    WireError::Closed
                } else {
                    WireError::Truncated
                });
            }
        }
        let h = &self.buf[self.start..self.start + wire::HEADER];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let payload = wire::check_length(len, max)?;
        let mut head = [0u8; FIXED as usize];
        head.copy_from_slice(&h[4..]);
        let (kind, channel) = wire::parse_head(&head)?;
        self.start += wire::HEADER;
        Ok((kind, channel, payload))
    }

    /// Appends the next `len` payload bytes to `dst`: what the buffer holds, then straight from
    /// the socket into `dst` (which the caller has made room in).
    pub(crate) async fn payload_into(
        &mut self,
        dst: &mut Vec<u8>,
        len: usize,
    ) -> Result<(), WireError> {
        let from_buf = self.buffered().min(len);
        dst.extend_from_slice(&self.buf[self.start..self.start + from_buf]);
        self.start += from_buf;
        let mut left = len - from_buf;
        while left > 0 {
            if left < BUFFER / 4 {
                left -= self
                    .short_remainder(left, |b| dst.extend_from_slice(b))
                    .await?;
                continue;
            }
            if dst.capacity() - dst.len() < left {
                dst.reserve(left);
            }
            self.stream.readable().await?;
            match self.stream.try_read_buf(&mut (&mut *dst).limit(left)) {
                Ok(0) => return Err(WireError::Truncated),
                Ok(n) => {
                    (self.seen)();
                    left -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WireError::Io(e)),
            }
        }
        Ok(())
    }

    /// Short remainders go through the buffer, which also picks up the frames after them;
    /// hands `put` what arrived of the `left` bytes and returns how much that was.
    async fn short_remainder(
        &mut self,
        left: usize,
        put: impl FnOnce(&[u8]),
    ) -> Result<usize, WireError> {
        if self.buffered() == 0 && self.fill().await? == 0 {
            return Err(WireError::Truncated);
        }
        let n = self.buffered().min(left);
        put(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }

    /// Appends the next `len` payload bytes to a message body, as [`payload_into`] does.
    ///
    /// [`payload_into`]: Self::payload_into
    pub(crate) async fn payload_into_body(
        &mut self,
        dst: &mut Body,
        len: usize,
    ) -> Result<(), WireError> {
        let from_buf = self.buffered().min(len);
        dst.extend_from_slice(&self.buf[self.start..self.start + from_buf]);
        self.start += from_buf;
        let mut left = len - from_buf;
        while left > 0 {
            if left < BUFFER / 4 {
                left -= self
                    .short_remainder(left, |b| dst.extend_from_slice(b))
                    .await?;
                continue;
            }
            if dst.spare_capacity() < left {
                dst.reserve_exact(left);
            }
            self.stream.readable().await?;
            match self.stream.try_read_buf(&mut (&mut *dst).limit(left)) {
                Ok(0) => return Err(WireError::Truncated),
                Ok(n) => {
                    (self.seen)();
                    left -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(WireError::Io(e)),
            }
        }
        Ok(())
    }

    /// The next `len` payload bytes, in a buffer of exactly that size.
    pub(crate) async fn payload(&mut self, len: usize) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(len);
        self.payload_into(&mut out, len).await?;
        Ok(out)
    }

    /// Skips the next `len` payload bytes.
    pub(crate) async fn skip(&mut self, len: usize) -> Result<(), WireError> {
        let mut left = len;
        while left > 0 {
            if self.buffered() == 0 && self.fill().await? == 0 {
                return Err(WireError::Truncated);
            }
            let n = self.buffered().min(left);
            self.start += n;
            left -= n;
        }
        Ok(())
    }
}

/// A message whose fragments are arriving.
pub(crate) enum Partial {
    /// Being reassembled: the message (its body grows), and the body's announced length.
    Building { msg: Incoming, total: usize },
    /// Refused at its first fragment: the rest is skipped.
    Skipping { left: usize },
}

/// What the read loop keeps between frames: the partial messages, by channel.
#[derive(Default)]
pub(crate) struct Reassembly {
    partial: HashMap<u64, Partial>,
}

impl Reassembly {
    /// A `Data` frame: a whole message.
    pub(crate) async fn whole(
        &mut self,
        r: &mut FrameReader<'_>,
        link: &LinkRef,
        id: u64,
        len: usize,
    ) -> Result<(), WireError> {
        let payload = r.payload(len).await?;
        let (head, body) = match MessageHead::parse(&payload) {
            Ok(parsed) => parsed,
            Err(why) => {
                link.table()
                    .refuse(link, id, &[], format!("a malformed message: {why}"));
                return Ok(());
            }
        };
        let table = link.table();
        if let Some(mut msg) = table.begin(link, id, head.encoding, head.carried, body.len() as u64)
        {
            // One copy of a small message: the frame's buffer also held its head.
            msg.body_mut().extend_from_slice(body);
            table.complete(msg);
        }
        Ok(())
    }

    /// A `DataFirst` frame: head, announced body length, first body bytes.
    pub(crate) async fn first(
        &mut self,
        r: &mut FrameReader<'_>,
        link: &LinkRef,
        id: u64,
        len: usize,
        max_message: u64,
    ) -> Result<(), WireError> {
        if let Some(Partial::Building { .. }) = self.partial.remove(&id) {
            link.table().refuse(
                link,
                id,
                &[],
                "a message began before the one before it ended".into(),
            );
        }
        // The head and the length come first; a head larger than one frame is malformed.
        let head_max = 5 + wire::MAX_CARRIED * 8 + 8;
        let peek = len.min(head_max);
        let mut front = r.payload(peek).await?;
        let parsed = MessageHead::parse(&front).and_then(|(head, rest)| {
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
        let (head, total, consumed) = match parsed {
            Ok(p) => p,
            Err(why) => {
                r.skip(len - peek).await?;
                link.table()
                    .refuse(link, id, &[], format!("a malformed message: {why}"));
                self.partial
                    .insert(id, Partial::Skipping { left: usize::MAX });
                return Ok(());
            }
        };
        let first_body = len - consumed;
        if total > max_message || (total as usize) < first_body {
            r.skip(len - peek).await?;
            let why = if total > max_message {
                format!(
                    "a message of {total} bytes exceeds this node's limit of {max_message} bytes"
                )
            } else {
                format!("a message of {total} bytes whose first fragment holds {first_body}")
            };
            link.table().refuse(link, id, &head.carried, why);
            self.partial.insert(
                id,
                Partial::Skipping {
                    left: (total as usize).saturating_sub(first_body),
                },
            );
            return Ok(());
        }
        let total = total as usize;
        let table = link.table();
        match table.begin(link, id, head.encoding, head.carried, total as u64) {
            Some(mut msg) => {
                let body = msg.body_mut();
                // Room for what has arrived and the next fragment, never for what is merely
                // announced.
                body.reserve_exact(total.min(first_body + wire::FRAGMENT));
                body.extend_from_slice(&front[consumed..]);
                front.clear();
                r.payload_into_body(body, len - peek).await?;
                self.partial.insert(id, Partial::Building { msg, total });
            }
            None => {
                r.skip(len - peek).await?;
                self.partial.insert(
                    id,
                    Partial::Skipping {
                        left: total - first_body,
                    },
                );
            }
        }
        Ok(())
    }

    /// A `DataMore` or `DataLast` frame.
    pub(crate) async fn more(
        &mut self,
        r: &mut FrameReader<'_>,
        link: &LinkRef,
        id: u64,
        len: usize,
        last: bool,
    ) -> Result<(), WireError> {
        match self.partial.remove(&id) {
            Some(Partial::Building { mut msg, total }) => {
                let have = msg.len();
                if have + len > total || (last && have + len != total) {
                    r.skip(len).await?;
                    // Dropping the message closes the channels it carries.
                    drop(msg);
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
                        self.partial
                            .insert(id, Partial::Skipping { left: usize::MAX });
                    }
                    return Ok(());
                }
                let body = msg.body_mut();
                if body.spare_capacity() < len {
                    // Grow geometrically, but never past the announced length nor to more than
                    // twice what arrived.
                    let want = total.min(
                        (body.len() * 2)
                            .max(body.len() + len)
                            .max(body.len() + wire::FRAGMENT),
                    );
                    body.reserve_exact(want - body.len());
                }
                populate(body, len);
                r.payload_into_body(body, len).await?;
                if last {
                    link.table().complete(msg);
                } else {
                    self.partial.insert(id, Partial::Building { msg, total });
                }
            }
            Some(Partial::Skipping { left }) => {
                r.skip(len).await?;
                if !last {
                    self.partial.insert(
                        id,
                        Partial::Skipping {
                            left: left.saturating_sub(len),
                        },
                    );
                }
            }
            None => {
                r.skip(len).await?;
                link.table().refuse(
                    link,
                    id,
                    &[],
                    "a fragment of a message that never began".into(),
                );
            }
        }
        Ok(())
    }
}

/// Has the kernel back the room the next `len` bytes of a body go to in one go, rather than a
/// page fault at a time (a gigabyte is a quarter million faults otherwise), one fragment at a
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
