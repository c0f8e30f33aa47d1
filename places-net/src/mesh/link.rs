//! The direct links of one member of a group to the others: TCP connections carrying
//! envelopes, driven by the member's own thread.
//!
//! Every message is
//!
//! ```text
//! u64 LE body length | u64 LE tag (its context in the high half) | u16 LE type-name length |
//! type name | body
//! ```
//!
//! There is no reader thread: as in MPI, a member makes progress inside its own calls. A receive
//! reads the socket it waits on itself (one wake-up per message, as a blocking TCP read has), and
//! while it waits, and while a send waits for a full socket to drain, the member also takes in
//! what its other peers send, so two members sending each other large messages at once never
//! block each other. What a peer sends that nobody receives yet is queued, up to [`QUEUE`]
//! messages or [`QUEUE_BYTES`] bytes per peer; beyond that the member stops reading that peer
//! (except when it receives from it) and TCP pushes back on the sender. A body is read as it
//! arrives: a peer that claims a length it does not send makes the reader allocate only what did
//! arrive (and at most [`RESERVE`] ahead), and ends the link.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use places_core::{ChannelError, Envelope, Link, Payload, Tag, WireEnvelope};

use super::stream::MeshStream;

/// Messages a member holds from one peer, unreceived, before it stops reading that peer.
pub const QUEUE: usize = 1024;

/// Bytes a member holds from one peer, unreceived, before it stops reading that peer (64 MiB).
pub const QUEUE_BYTES: usize = 64 << 20;

/// The most a reader allocates ahead of the bytes that arrived (64 MiB).
pub const RESERVE: usize = 64 << 20;

/// The longest type name a message may carry (nested generic types have long names).
pub const MAX_TYPE_NAME: usize = u16::MAX as usize;

/// How long the links of a member that is gone keep reading, so that what it sent last is not
/// reset away, before they close.
const LINGER: Duration = Duration::from_secs(30);

const HEAD: usize = 18;

/// How long a receive keeps reading its socket before it sleeps in `poll`: a reply that comes
/// within it costs no wake-up (MPI libraries spin the same way). It yields between reads, so a
/// peer that shares its core still runs.
const SPIN: Duration = Duration::from_micros(50);

/// A message being read.
enum Partial {
    Head {
        buf: [u8; HEAD],
        got: usize,
    },
    Name {
        tag: Tag,
        len: u64,
        buf: Vec<u8>,
        want: usize,
    },
    Body {
        tag: Tag,
        name: String,
        len: u64,
        body: Vec<u8>,
    },
}

impl Partial {
    fn new() -> Self {
        Partial::Head {
            buf: [0; HEAD],
            got: 0,
        }
    }

    fn is_between_messages(&self) -> bool {
        matches!(self, Partial::Head { got: 0, .. })
    }
}

struct Peer {
    stream: MeshStream,
    reading: Partial,
    queue: VecDeque<WireEnvelope>,
    queued_bytes: usize,
    /// Why the link ended (the peer closed, or sent something malformed), once it did.
    ended: Option<String>,
    /// The peer closed its link between two messages: it dropped its end of the group.
    closed: bool,
}

impl Peer {
    /// What a send or receive on an ended link reports: a member that closed its link is gone
    /// ([`ChannelError::Closed`]); any other end keeps its reason.
    fn end_error(&self, peer: usize) -> ChannelError {
        match &self.ended {
            Some(_) if self.closed => ChannelError::Closed,
            Some(why) => ChannelError::Lost(format!("the link to member {peer} broke: {why}")),
            None => ChannelError::Closed,
        }
    }

    fn throttled(&self) -> bool {
        self.queue.len() >= QUEUE || self.queued_bytes >= QUEUE_BYTES
    }

    /// Reads what is there without waiting; queues every message completed.
    fn pump(&mut self, scratch: &mut [u8], receiving: bool) {
        while self.ended.is_none() && (receiving || !self.throttled()) {
            let read = match &mut self.reading {
                // (Through TLS, plaintext comes out of the session, by way of the scratch.)
                Partial::Body { len, body, .. } if !self.stream.is_tls() => {
                    // Straight into the body, at most RESERVE ahead of what arrived.
                    // Grows with what arrived (doubling), never more than RESERVE ahead of it.
                    let left = *len - body.len() as u64;
                    let want = left
                        .min(body.len().max(64 << 10) as u64)
                        .min(RESERVE as u64) as usize;
                    if body.capacity() - body.len() < want {
                        body.reserve_exact(want);
                    }
                    let spare = body.spare_capacity_mut();
                    let room = want.min(spare.len());
                    // SAFETY: `spare` is `room` writable bytes owned by `body`; `read` writes at
                    // most `room` of them and says how many.
                    let n = unsafe {
                        libc::read(
                            self.stream.as_raw_fd(),
                            spare.as_mut_ptr().cast::<libc::c_void>(),
                            room,
                        )
                    };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        let n = n as usize;
                        // SAFETY: `read` initialized `n <= room` bytes past the length.
                        unsafe { body.set_len(body.len() + n) };
                        if n > 0 {
                            self.advance(&[]);
                        }
                        Ok(n)
                    }
                }
                _ => match self.stream.read(scratch) {
                    Ok(n) => {
                        if n > 0 {
                            self.advance(&scratch[..n]);
                        }
                        Ok(n)
                    }
                    Err(e) => Err(e),
                },
            };
            match read {
                Ok(0) => {
                    self.closed = self.reading.is_between_messages();
                    self.ended = Some(if self.closed {
                        "the member closed its link".to_owned()
                    } else {
                        "the link closed in the middle of a message".to_owned()
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.ended = Some(e.to_string()),
            }
        }
    }

    /// Feeds `bytes` (and, in a body, what was read into it) through the message parser.
    fn advance(&mut self, mut bytes: &[u8]) {
        loop {
            if self.ended.is_some() {
                return;
            }
            match &mut self.reading {
                Partial::Head { buf, got } => {
                    if bytes.is_empty() {
                        return;
                    }
                    let take = (HEAD - *got).min(bytes.len());
                    buf[*got..*got + take].copy_from_slice(&bytes[..take]);
                    *got += take;
                    bytes = &bytes[take..];
                    if *got < HEAD {
                        return;
                    }
                    let len = u64::from_le_bytes(buf[0..8].try_into().unwrap_or([0; 8]));
                    let tag =
                        Tag::from_bits(u64::from_le_bytes(buf[8..16].try_into().unwrap_or([0; 8])));
                    let want = u16::from_le_bytes([buf[16], buf[17]]) as usize;
                    if want > MAX_TYPE_NAME {
                        self.ended = Some(format!(
                            "a type name of {want} bytes (at most {MAX_TYPE_NAME})"
                        ));
                        return;
                    }
                    self.reading = Partial::Name {
                        tag,
                        len,
                        buf: Vec::with_capacity(want),
                        want,
                    };
                }
                Partial::Name {
                    tag,
                    len,
                    buf,
                    want,
                } => {
                    let take = (*want - buf.len()).min(bytes.len());
                    buf.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if buf.len() < *want {
                        return;
                    }
                    let Ok(name) = String::from_utf8(std::mem::take(buf)) else {
                        self.ended = Some("a type name that is not UTF-8".to_owned());
                        return;
                    };
                    // What is in hand, or a little; the body grows as it arrives.
                    let cap = usize::try_from(*len)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len().max(64 << 10));
                    self.reading = Partial::Body {
                        tag: *tag,
                        name,
                        len: *len,
                        body: Vec::with_capacity(cap),
                    };
                }
                Partial::Body { len, body, .. } => {
                    let left = *len - body.len() as u64;
                    let take = (left.min(bytes.len() as u64)) as usize;
                    // Grows as the direct read does (doubling what arrived, at most RESERVE
                    // ahead, never past the length): an extend alone would double the capacity.
                    if body.capacity() - body.len() < take {
                        let want = left
                            .min(body.len().max(64 << 10) as u64)
                            .min(RESERVE as u64) as usize;
                        body.reserve_exact(want.max(take));
                    }
                    body.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if (body.len() as u64) < *len {
                        return;
                    }
                    let Partial::Body {
                        tag, name, body, ..
                    } = std::mem::replace(&mut self.reading, Partial::new())
                    else {
                        unreachable!("matched a body above")
                    };
                    self.queued_bytes += body.len();
                    self.queue.push_back(WireEnvelope {
                        tag,
                        type_name: name,
                        bytes: body,
                    });
                }
            }
        }
    }
}

/// Every link of one member.
struct Core {
    peers: Vec<Option<Peer>>,
    scratch: Vec<u8>,
}

impl Core {
    /// Waits until `read` has something or ended, or `write` can take bytes, taking in what
    /// every other peer sends meanwhile (unless throttled).
    fn wait(&mut self, read: Option<usize>, write: Option<usize>) {
        // Plaintext waiting in a TLS session wakes no poll: take it in first.
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut took = false;
        for (i, p) in self.peers.iter_mut().enumerate() {
            let Some(p) = p else { continue };
            if p.ended.is_none() && (Some(i) == read || !p.throttled()) && p.stream.buffered() {
                p.pump(&mut scratch, Some(i) == read);
                took = true;
            }
        }
        self.scratch = scratch;
        if took {
            return;
        }
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.peers.len());
        let mut who: Vec<usize> = Vec::with_capacity(self.peers.len());
        for (i, p) in self.peers.iter().enumerate() {
            let Some(p) = p else { continue };
            let mut events = 0;
            if p.ended.is_none() && (Some(i) == read || !p.throttled()) {
                events |= libc::POLLIN;
            }
            if Some(i) == write {
                events |= libc::POLLOUT;
            }
            if events != 0 {
                fds.push(libc::pollfd {
                    fd: p.stream.as_raw_fd(),
                    events,
                    revents: 0,
                });
                who.push(i);
            }
        }
        if fds.is_empty() {
            return;
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        if n <= 0 {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        for (fd, &i) in fds.iter().zip(&who) {
            if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                if let Some(p) = &mut self.peers[i] {
                    p.pump(&mut scratch, Some(i) == read);
                }
            }
        }
        self.scratch = scratch;
    }

    fn recv(&mut self, peer: usize) -> Result<WireEnvelope, ChannelError> {
        let spin_until = Instant::now() + SPIN;
        loop {
            let mut scratch = std::mem::take(&mut self.scratch);
            let p = self.peers[peer].as_mut().ok_or(ChannelError::Closed)?;
            if let Some(m) = p.queue.pop_front() {
                p.queued_bytes -= m.bytes.len();
                self.scratch = scratch;
                return Ok(m);
            }
            if let Some(why) = &p.ended {
                tracing::debug!("places: the link to group member {peer} ended: {why}");
                self.scratch = scratch;
                return Err(p.end_error(peer));
            }
            p.pump(&mut scratch, true);
            let ready = !p.queue.is_empty() || p.ended.is_some();
            self.scratch = scratch;
            if !ready {
                if Instant::now() < spin_until {
                    std::thread::yield_now();
                } else {
                    self.wait(Some(peer), None);
                }
            }
        }
    }

    /// What has arrived from `peer`, reading what its socket holds now; never waits.
    fn try_recv(&mut self, peer: usize) -> Result<Option<WireEnvelope>, ChannelError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let got = (|| {
            let p = self.peers[peer].as_mut().ok_or(ChannelError::Closed)?;
            if p.queue.is_empty() && p.ended.is_none() {
                p.pump(&mut scratch, true);
            }
            if let Some(m) = p.queue.pop_front() {
                p.queued_bytes -= m.bytes.len();
                return Ok(Some(m));
            }
            match &p.ended {
                Some(_) => Err(p.end_error(peer)),
                None => Ok(None),
            }
        })();
        self.scratch = scratch;
        got
    }

    fn send(&mut self, peer: usize, head: &[u8], body: &[u8]) -> Result<(), ChannelError> {
        let (mut h, mut b) = (0, 0);
        loop {
            let p = self.peers[peer].as_mut().ok_or(ChannelError::Closed)?;
            if p.ended.is_some() {
                // Seen gone: what it would be sent is read by nobody (its linger thread drops
                // it), so the send fails instead of vanishing. A part already written is lost
                // with the link.
                return Err(p.end_error(peer));
            }
            let slices = [IoSlice::new(&head[h..]), IoSlice::new(&body[b..])];
            match p.stream.write_vectored(&slices) {
                Ok(0) => return Err(ChannelError::Closed),
                Ok(mut n) => {
                    let in_head = n.min(head.len() - h);
                    h += in_head;
                    n -= in_head;
                    b += n;
                    if h == head.len() && b == body.len() {
                        return self.flush(peer);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The peer written to is read even when throttled: it may be blocked
                    // writing to this member just the same.
                    self.wait(Some(peer), Some(peer));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = e.to_string();
                    p.ended.get_or_insert(why);
                    return Err(p.end_error(peer));
                }
            }
        }
    }
}

impl Core {
    /// Sends what waits in `peer`'s TLS session, waiting for its socket as a send does.
    fn flush(&mut self, peer: usize) -> Result<(), ChannelError> {
        loop {
            let p = self.peers[peer].as_mut().ok_or(ChannelError::Closed)?;
            match p.stream.flush() {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(Some(peer), Some(peer));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    p.ended.get_or_insert(e.to_string());
                    return Err(p.end_error(peer));
                }
            }
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Only the sending halves close now: what was sent still arrives. A full close with
        // unread bytes would reset the connection and could lose what the peers sent last,
        // so a thread reads (and drops) until each peer closes too, or LINGER passes.
        let mut open: Vec<TcpStream> = Vec::new();
        for p in self.peers.iter_mut().flatten() {
            p.stream.shutdown_write();
            if p.ended.is_none() {
                if let Ok(s) = p.stream.tcp().try_clone() {
                    open.push(s);
                }
            }
        }
        if open.is_empty() {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("places-mesh-linger".into())
            .spawn(move || linger(open));
    }
}

fn linger(mut open: Vec<TcpStream>) {
    let deadline = Instant::now() + LINGER;
    let mut buf = vec![0u8; 64 << 10];
    while !open.is_empty() && Instant::now() < deadline {
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        if n <= 0 {
            continue;
        }
        let mut keep = Vec::with_capacity(open.len());
        for (s, fd) in open.into_iter().zip(&fds) {
            if fd.revents == 0 {
                keep.push(s);
                continue;
            }
            match (&s).read(&mut buf) {
                Ok(0) => {}
                Ok(_) => keep.push(s),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => keep.push(s),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => keep.push(s),
                Err(_) => {}
            }
        }
        open = keep;
    }
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|p| p.into_inner())
}

/// A link to one other member, in another process.
pub struct MeshLink {
    core: Arc<Mutex<Core>>,
    peer: usize,
}

impl MeshLink {
    /// The links of one member over connected, authenticated streams (`streams[j]` reaches
    /// member `j`; `None` at the member itself).
    pub fn group(streams: Vec<Option<TcpStream>>) -> io::Result<Vec<Option<MeshLink>>> {
        Self::group_of(
            streams
                .into_iter()
                .map(|s| s.map(MeshStream::plain))
                .collect(),
        )
    }

    /// [`group`](Self::group) over streams that may carry TLS.
    pub(crate) fn group_of(streams: Vec<Option<MeshStream>>) -> io::Result<Vec<Option<MeshLink>>> {
        let mut peers = Vec::with_capacity(streams.len());
        for s in streams {
            peers.push(match s {
                None => None,
                Some(stream) => {
                    let _ = stream.tcp().set_nodelay(true);
                    stream.tcp().set_nonblocking(true)?;
                    Some(Peer {
                        stream,
                        reading: Partial::new(),
                        queue: VecDeque::new(),
                        queued_bytes: 0,
                        ended: None,
                        closed: false,
                    })
                }
            });
        }
        let present: Vec<bool> = peers.iter().map(Option::is_some).collect();
        let core = Arc::new(Mutex::new(Core {
            peers,
            scratch: vec![0u8; 64 << 10],
        }));
        Ok(present
            .into_iter()
            .enumerate()
            .map(|(peer, p)| {
                p.then(|| MeshLink {
                    core: core.clone(),
                    peer,
                })
            })
            .collect())
    }

    /// Writes one message: its head, `prefix` (the encoding byte of a raw body), and `body`
    /// (written from where it is: a raw vector's memory, or an encoded buffer).
    fn write(
        &self,
        tag: Tag,
        type_name: &str,
        prefix: Option<u8>,
        body: &[u8],
    ) -> Result<(), ChannelError> {
        let name = type_name.as_bytes();
        if name.len() > MAX_TYPE_NAME {
            return Err(ChannelError::Unsendable(format!(
                "a type name of {} bytes crosses no link (at most {MAX_TYPE_NAME}): {type_name:.80}...",
                name.len()
            )));
        }
        let mut head = Vec::with_capacity(HEAD + name.len() + 1);
        let len = body.len() + usize::from(prefix.is_some());
        head.extend_from_slice(&(len as u64).to_le_bytes());
        head.extend_from_slice(&tag.bits().to_le_bytes());
        head.extend_from_slice(&(name.len() as u16).to_le_bytes());
        head.extend_from_slice(name);
        head.extend(prefix);
        lock(&self.core).send(self.peer, &head, body)
    }
}

impl Link for MeshLink {
    fn send(&self, envelope: Envelope) -> Result<(), ChannelError> {
        let tag = envelope.tag();
        match envelope.into_payload() {
            Payload::Local {
                value,
                type_name,
                encode,
                raw,
            } => {
                // Numeric vectors go out from their own memory, after their encoding byte.
                if let Some((encoding, bytes)) = raw(&*value) {
                    return self.write(tag, type_name, Some(encoding), bytes);
                }
                let body = encode(&*value).map_err(|e| ChannelError::Unsendable(e.to_string()))?;
                self.write(tag, type_name, None, &body)
            }
            Payload::Encoded { type_name, bytes } => self.write(tag, &type_name, None, &bytes),
        }
    }

    fn recv(&self) -> Result<Envelope, ChannelError> {
        let w = lock(&self.core).recv(self.peer)?;
        Ok(Envelope::encoded(w.tag, w.type_name, w.bytes))
    }

    fn try_recv(&self) -> Result<Option<Envelope>, ChannelError> {
        let w = lock(&self.core).try_recv(self.peer)?;
        Ok(w.map(|w| Envelope::encoded(w.tag, w.type_name, w.bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Duration;

    /// A link on one end of a loopback connection, and the raw other end.
    fn pair() -> (MeshLink, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let raw = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (one(s), raw)
    }

    /// A member whose only peer is at the other end of `s`.
    fn one(s: TcpStream) -> MeshLink {
        let mut links = MeshLink::group(vec![None, Some(s)]).unwrap();
        links.pop().flatten().unwrap()
    }

    fn head(len: u64, tag: u64, name: &str) -> Vec<u8> {
        let mut h = len.to_le_bytes().to_vec();
        h.extend_from_slice(&tag.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h
    }

    #[test]
    fn a_well_formed_message_arrives_with_its_tag_and_type_name() {
        let (link, mut raw) = pair();
        let body = places_core::codec::encode(&42u64).unwrap();
        let mut m = head(body.len() as u64, 7, "u64");
        m.extend_from_slice(&body);
        raw.write_all(&m).unwrap();
        let e = link.recv().unwrap();
        assert_eq!(e.tag(), Tag::from_bits(7));
        match e.into_payload() {
            Payload::Encoded { type_name, bytes } => {
                assert_eq!(type_name, "u64");
                assert_eq!(places_core::codec::decode::<u64>(&bytes).unwrap(), 42);
            }
            Payload::Local { .. } => panic!("a message from a socket is encoded"),
        }
    }

    #[test]
    fn a_claimed_length_that_never_arrives_closes_the_link_without_allocating_it() {
        let (link, mut raw) = pair();
        // Claims an exabyte, sends 3 bytes, closes: the reader must neither allocate the claim
        // nor deliver a cut message.
        let mut m = head(1 << 60, 0, "u8");
        m.extend_from_slice(b"abc");
        raw.write_all(&m).unwrap();
        drop(raw);
        let e = link.recv().unwrap_err();
        assert!(
            matches!(&e, ChannelError::Lost(why) if why.contains("member 1") && why.contains("middle of a message")),
            "{e:?}"
        );
    }

    #[test]
    fn a_malformed_message_ends_the_link_with_its_reason() {
        let (link, mut raw) = pair();
        let mut m = head(1, 0, "ab");
        let at = m.len() - 2;
        m[at] = 0xff;
        m.push(0);
        raw.write_all(&m).unwrap();
        let e = link.recv().unwrap_err();
        assert!(
            matches!(&e, ChannelError::Lost(why) if why.contains("not UTF-8")),
            "{e:?}"
        );
        // The send that follows says the same instead of writing into a broken link.
        let e = link.send(Envelope::local(Tag::USER, 1u8)).unwrap_err();
        assert!(matches!(&e, ChannelError::Lost(_)), "{e:?}");
    }

    #[test]
    fn a_send_to_a_member_seen_gone_fails_instead_of_vanishing() {
        let (link, raw) = pair();
        drop(one(raw));
        assert_eq!(link.recv().unwrap_err(), ChannelError::Closed);
        assert_eq!(
            link.send(Envelope::local(Tag::USER, 1u8)).unwrap_err(),
            ChannelError::Closed
        );
    }

    #[test]
    fn a_type_name_too_long_for_the_head_is_refused_by_the_sender_and_the_link_goes_on() {
        let (a, raw) = pair();
        let b = one(raw);
        let long = "a".repeat(MAX_TYPE_NAME + 4);
        let e = b
            .send(Envelope::encoded(Tag::USER, long, vec![1]))
            .unwrap_err();
        assert!(matches!(e, ChannelError::Unsendable(_)), "{e:?}");
        b.send(Envelope::local(Tag::USER, 9u8)).unwrap();
        let Payload::Encoded { type_name, .. } = a.recv().unwrap().into_payload() else {
            panic!("encoded")
        };
        assert_eq!(type_name, "u8");
    }

    #[test]
    fn two_members_flooding_each_other_with_small_messages_do_not_deadlock() {
        let (a, raw) = pair();
        let flood = |l: MeshLink| {
            for _ in 0..(QUEUE * 8) {
                l.send(Envelope::local(Tag::USER, vec![0u8; 4 << 10]))
                    .unwrap();
            }
            for _ in 0..(QUEUE * 8) {
                l.recv().unwrap();
            }
        };
        let (tx, rx) = crossbeam_channel::bounded(2);
        let t1 = tx.clone();
        std::thread::spawn(move || {
            flood(one(raw));
            let _ = t1.send(());
        });
        std::thread::spawn(move || {
            flood(a);
            let _ = tx.send(());
        });
        for _ in 0..2 {
            rx.recv_timeout(Duration::from_secs(120))
                .expect("both members finish");
        }
    }

    #[test]
    fn what_was_sent_before_a_close_still_arrives() {
        let (link, mut raw) = pair();
        for i in 0..100u32 {
            let body = places_core::codec::encode(&i).unwrap();
            let mut m = head(body.len() as u64, 0, "u32");
            m.extend_from_slice(&body);
            raw.write_all(&m).unwrap();
        }
        drop(raw);
        for i in 0..100u32 {
            let Payload::Encoded { bytes, .. } = link.recv().unwrap().into_payload() else {
                panic!("encoded")
            };
            assert_eq!(places_core::codec::decode::<u32>(&bytes).unwrap(), i);
        }
        assert_eq!(link.recv().unwrap_err(), ChannelError::Closed);
    }

    #[test]
    fn a_reader_that_is_not_read_pushes_back_on_the_sender() {
        let (link, raw) = pair();
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        // The sender writes far more than the queue and TCP's buffers hold; with nobody
        // receiving, it must block rather than fill memory.
        let sender = std::thread::spawn(move || {
            let other = one(raw);
            for _ in 0..(QUEUE * 8) {
                if other
                    .send(Envelope::local(Tag::USER, vec![0u8; 4 << 10]))
                    .is_err()
                {
                    break;
                }
            }
            let _ = done_tx.send(());
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(3)).is_err(),
            "the sender finished 32 MiB with nobody receiving"
        );
        // Receiving lets it finish.
        for _ in 0..(QUEUE * 8) {
            link.recv().unwrap();
        }
        done_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        sender.join().unwrap();
    }

    #[test]
    fn two_members_sending_each_other_more_than_tcp_holds_do_not_block_each_other() {
        let (a, raw) = pair();
        let big = || Envelope::local(Tag::USER, vec![1u8; 24 << 20]);
        let other = std::thread::spawn(move || {
            let b = one(raw);
            b.send(big()).unwrap();
            b.recv().unwrap()
        });
        // Both send 24 MiB before either receives: each send takes in the other's meanwhile.
        a.send(big()).unwrap();
        let Payload::Encoded { bytes, .. } = a.recv().unwrap().into_payload() else {
            panic!("encoded")
        };
        // Raw: the encoding byte, then the bytes.
        assert_eq!(bytes[0], places_core::codec::RAW_BYTES);
        assert_eq!(bytes.len(), 1 + (24 << 20));
        let Payload::Encoded { bytes, .. } = other.join().unwrap().into_payload() else {
            panic!("encoded")
        };
        // Raw: the encoding byte, then the bytes.
        assert_eq!(bytes[0], places_core::codec::RAW_BYTES);
        assert_eq!(bytes.len(), 1 + (24 << 20));
    }

    /// A group of two over a loopback connection: member 0's and member 1's `Comm`.
    fn two() -> (places_core::Comm, places_core::Comm) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let comm = |id: usize, link: MeshLink| {
            let mut links: Vec<Option<Box<dyn Link>>> = vec![None, None];
            links[1 - id] = Some(Box::new(link));
            places_core::Comm::from_links(id, links)
        };
        (comm(0, one(a)), comm(1, one(b)))
    }

    #[test]
    fn numeric_vectors_cross_raw_and_everything_else_encoded() {
        let (a, b) = two();
        let f: Vec<f64> = (0..100_000).map(|i| i as f64 * 0.5 - 7.0).collect();
        let i: Vec<i64> = (0..1000).map(|i| i * -3).collect();
        let u: Vec<u8> = (0..=255).collect();
        a.send(1, f.clone()).unwrap();
        a.send(1, i.clone()).unwrap();
        a.send(1, u.clone()).unwrap();
        a.send(1, (f.clone(), "mixed".to_string())).unwrap();
        a.send(1, Vec::<f64>::new()).unwrap();
        assert_eq!(b.recv::<Vec<f64>>(0).unwrap(), f);
        assert_eq!(b.recv::<Vec<i64>>(0).unwrap(), i);
        assert_eq!(b.recv::<Vec<u8>>(0).unwrap(), u);
        assert_eq!(
            b.recv::<(Vec<f64>, String)>(0).unwrap(),
            (f, "mixed".to_string())
        );
        assert!(b.recv::<Vec<f64>>(0).unwrap().is_empty());
        // A raw vector received as another type is named, not misread.
        a.send(1, vec![1.0f64, 2.0]).unwrap();
        let e = b.recv::<Vec<i64>>(0).unwrap_err().to_string();
        assert!(e.contains("Vec<f64>") && e.contains("Vec<i64>"), "{e}");
    }

    #[test]
    fn a_vec_of_f64_is_written_from_its_memory_after_its_encoding_byte() {
        let (link, mut raw) = pair();
        let v = vec![1.0f64, -2.5, 3.25];
        link.send(Envelope::local(Tag::USER, v.clone())).unwrap();
        let name = std::any::type_name::<Vec<f64>>();
        let mut got = vec![0u8; HEAD + name.len() + 1 + 24];
        raw.read_exact(&mut got).unwrap();
        assert_eq!(got[..HEAD + name.len()], head(25, 0, name)[..]);
        assert_eq!(got[HEAD + name.len()], places_core::codec::RAW_F64S);
        let body: Vec<f64> = got[HEAD + name.len() + 1..]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(body, v);
    }

    #[test]
    fn a_raw_vector_of_a_wrong_length_is_an_error_for_its_receive_only() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut raw = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let mut links: Vec<Option<Box<dyn Link>>> = vec![None, Some(Box::new(one(s)))];
        links.swap(0, 1);
        let b = places_core::Comm::from_links(1, links);
        let name = std::any::type_name::<Vec<f64>>();
        // Five bytes of "f64s", then a good message.
        let mut m = head(6, 0, name);
        m.push(places_core::codec::RAW_F64S);
        m.extend_from_slice(&[1, 2, 3, 4, 5]);
        let body = places_core::codec::encode(&7u32).unwrap();
        m.extend(head(body.len() as u64, 0, "u32"));
        m.extend(body);
        raw.write_all(&m).unwrap();
        let e = b.recv::<Vec<f64>>(0).unwrap_err().to_string();
        assert!(e.contains("multiple of 8"), "{e}");
        assert_eq!(b.recv::<u32>(0).unwrap(), 7);
    }
}
