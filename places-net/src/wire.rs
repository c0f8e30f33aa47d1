//! The wire format: every constant and layout two nodes agree on, in one place.
//!
//! After the [handshake](crate::handshake), a connection carries frames:
//!
//! ```text
//! u32 LE length | u8 protocol version | u8 kind | u64 LE channel id | payload (length - 10 bytes)
//! ```
//!
//! A reader never allocates more than the frame's length, and refuses a length above
//! [`MAX_FRAME`] before allocating anything, so a peer cannot make a node allocate what it merely
//! claims. The length limit is a limit on frames, not on messages: a message larger than
//! [`FRAGMENT`] travels as a [`Kind::DataFirst`] frame, [`Kind::DataMore`] frames and a
//! [`Kind::DataLast`] frame, and the fragments of different channels (and control frames: pings,
//! closes, credits, errors) interleave, so nothing waits behind a large message for more than one
//! fragment.
//!
//! Every message starts with a *head*:
//!
//! ```text
//! u8 encoding | u32 LE count | count x u64 LE ids of the channel ends inside the message
//! ```
//!
//! then (in a `DataFirst` frame only) the `u64 LE` length of the whole body, then body bytes.
//! See `places_core::transport` for what the channel-level frames mean.

use std::io::{self, Read, Write};

/// The version byte of every frame, and of the handshake's hello.
pub const PROTOCOL_VERSION: u8 = 4;

/// The first bytes a places client sends (then [`PROTOCOL_VERSION`]).
pub const MAGIC: &[u8; 8] = b"PLACES\0\x01";

/// The largest handshake frame a client accepts (the node's challenge carries its registry).
pub const MAX_HANDSHAKE_FRAME: u32 = 1 << 20;

/// The largest frame a node reads from a peer that has not proven the cookie yet.
pub const MAX_PROOF_FRAME: u32 = 4 << 10;

/// How long a new connection has, from its accept, to finish the handshake.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How many connections a node lets wait in their handshake at once; a new one beyond that
/// pushes out the oldest, so idle sockets cannot keep real clients out.
pub const MAX_PENDING_HANDSHAKES: usize = 64;

/// The largest frame a connection accepts after the handshake (2 MiB): one fragment with its
/// head, or a control frame.
pub const MAX_FRAME: u32 = 2 << 20;

/// The largest piece of a message body one frame carries (256 KiB): a ping or another
/// channel's message waits at most this long behind a large message.
pub const FRAGMENT: usize = 256 << 10;

/// The most channel ends one message may carry.
pub const MAX_CARRIED: usize = places_core::transport::MAX_CARRIED;

/// The largest log record a node passes to its parent (longer ones are cut).
pub const MAX_LOG_RECORD: usize = 64 << 10;

/// Bytes after the length prefix that every frame has: version, kind, channel id.
pub const FIXED: u32 = 1 + 1 + 8;

/// The bytes in front of every frame's payload.
pub const HEADER: usize = 4 + FIXED as usize;

/// What a frame asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Kind {
    /// Start an entry; the payload is a spawn request, the channel id the new channel's.
    Spawn = 1,
    /// The spawn (or connect) of the channel succeeded.
    SpawnOk = 2,
    /// The spawn (or connect) failed; the payload is the reason.
    SpawnErr = 3,
    /// A whole message on the channel: head and body.
    Data = 4,
    /// The sender's end of the channel is gone.
    Close = 5,
    /// The channel's place ended; the payload is its completion value (`i32 LE`).
    Exit = 6,
    /// Kill the channel's place.
    Kill = 7,
    /// Are you there?
    Ping = 8,
    /// Yes.
    Pong = 9,
    /// End the node (honoured only from the program that started it).
    Shutdown = 10,
    /// Handshake: the node's challenge.
    Challenge = 11,
    /// Handshake: the client's proof.
    Proof = 12,
    /// Handshake: the node's proof and welcome.
    Welcome = 13,
    /// Handshake refused; the payload says why.
    Refuse = 14,
    /// Open a new connection (on the frame's channel id) to a named place; the payload names it.
    Connect = 15,
    /// A log record on its way to the root node.
    Log = 16,
    /// The first fragment of a message: head, `u64 LE` body length, the first body bytes.
    DataFirst = 17,
    /// A middle fragment: body bytes.
    DataMore = 18,
    /// The last fragment: body bytes.
    DataLast = 19,
    /// The receiver dropped a message sent on the channel; the payload is the reason (UTF-8).
    Error = 20,
    /// Credit for the channel: `u64 LE` byte limit and `u64 LE` message limit, running totals.
    Credit = 21,
    /// Asks the node for a status snapshot; the reply carries the same channel id.
    Status = 22,
    /// A status snapshot (an encoded `NodeStatus`).
    StatusReply = 23,
    /// Push the end behind the channel on to another node: `u64 LE` token, `u64 LE` attempt,
    /// the address it listens at (UTF-8).
    Handoff = 24,
    /// The end behind the channel was pushed on: `u64 LE` attempt.
    HandedOff = 25,
    /// A handoff does not happen: `u64 LE` token.
    Resume = 26,
    /// This fresh channel carries an end pushed here for a message naming the token: `u64 LE`
    /// token.
    Adopt = 27,
    /// The message naming the token went out: `u64 LE` token.
    Commit = 28,
    /// The end behind the channel stays here: `u64 LE` attempt, why (UTF-8).
    Kept = 29,
    /// The end behind the channel (bridged by the sender) goes on to another node, which the
    /// receiver is to link to directly: `u64 LE` token, `u64 LE` attempt, the address (UTF-8).
    Repoint = 30,
    /// The sender sends nothing more on the channel and still takes what comes.
    Moved = 31,
}

impl Kind {
    /// The kind of a kind byte.
    pub fn from_u8(b: u8) -> Option<Kind> {
        use Kind::*;
        Some(match b {
            1 => Spawn,
            2 => SpawnOk,
            3 => SpawnErr,
            4 => Data,
            5 => Close,
            6 => Exit,
            7 => Kill,
            8 => Ping,
            9 => Pong,
            10 => Shutdown,
            11 => Challenge,
            12 => Proof,
            13 => Welcome,
            14 => Refuse,
            15 => Connect,
            16 => Log,
            17 => DataFirst,
            18 => DataMore,
            19 => DataLast,
            20 => Error,
            21 => Credit,
            22 => Status,
            23 => StatusReply,
            24 => Handoff,
            25 => HandedOff,
            26 => Resume,
            27 => Adopt,
            28 => Commit,
            29 => Kept,
            30 => Repoint,
            31 => Moved,
            _ => return None,
        })
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What it asks for.
    pub kind: Kind,
    /// The channel it concerns (0 when none).
    pub channel: u64,
    /// Its body.
    pub payload: Vec<u8>,
}

/// Why a frame could not be read. Each of these breaks the framing, so the connection closes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The connection ended inside a frame.
    #[error("connection ended inside a frame")]
    Truncated,
    /// A length prefix too small to hold a frame header.
    #[error("frame length {0} is shorter than a frame header")]
    TooShort(u32),
    /// A length prefix above the connection's limit.
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    Oversized {
        /// The claimed length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// A frame of another protocol version.
    #[error("frame of protocol version {0}, this node speaks version {PROTOCOL_VERSION}")]
    Version(u8),
    /// A frame kind this version does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// An I/O error other than the end of the stream.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Encodes a frame into one buffer, so it goes out in one write.
pub fn encode_frame(kind: Kind, channel: u64, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER + payload.len());
    buf.extend_from_slice(&header(kind, channel, payload.len()));
    buf.extend_from_slice(payload);
    buf
}

/// The bytes in front of a frame whose payload is `payload_len` bytes long.
pub fn header(kind: Kind, channel: u64, payload_len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&((FIXED as usize + payload_len) as u32).to_le_bytes());
    h[4] = PROTOCOL_VERSION;
    h[5] = kind as u8;
    h[6..14].copy_from_slice(&channel.to_le_bytes());
    h
}

/// Writes one frame.
///
/// # Errors
///
/// The writer's error. A payload over `u32::MAX - 10` bytes is an `InvalidInput` error.
pub fn write_frame(w: &mut impl Write, kind: Kind, channel: u64, payload: &[u8]) -> io::Result<()> {
    if payload.len() > (u32::MAX - FIXED) as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame payload too large",
        ));
    }
    w.write_all(&encode_frame(kind, channel, payload))
}

/// Reads one frame of at most `max` bytes (after the length prefix).
///
/// # Errors
///
/// [`WireError::Closed`] at a clean end of stream, and the other [`WireError`]s for everything
/// a frame should not be.
pub fn read_frame(r: &mut impl Read, max: u32) -> Result<Frame, WireError> {
    let mut len = [0u8; 4];
    match read_full(r, &mut len)? {
        0 => return Err(WireError::Closed),
        4 => {}
        _ => return Err(WireError::Truncated),
    }
    let want = check_length(u32::from_le_bytes(len), max)?;
    let mut head = [0u8; FIXED as usize];
    if read_full(r, &mut head)? != head.len() {
        return Err(WireError::Truncated);
    }
    let (kind, channel) = parse_head(&head)?;
    // `take` + `read_to_end` fills the buffer without zeroing it first; the capacity is the
    // frame's length, already checked against the limit.
    let mut payload = Vec::with_capacity(want);
    r.take(want as u64).read_to_end(&mut payload)?;
    if payload.len() != want {
        return Err(WireError::Truncated);
    }
    Ok(Frame {
        kind,
        channel,
        payload,
    })
}

/// Checks a frame's length prefix against the limit (before anything is allocated) and returns
/// the payload's length.
///
/// # Errors
///
/// [`WireError::TooShort`] or [`WireError::Oversized`].
pub fn check_length(len: u32, max: u32) -> Result<usize, WireError> {
    if len < FIXED {
        return Err(WireError::TooShort(len));
    }
    if len > max {
        return Err(WireError::Oversized { len, max });
    }
    Ok((len - FIXED) as usize)
}

/// Reads the version, kind and channel id that follow the length prefix.
///
/// # Errors
///
/// [`WireError::Version`] or [`WireError::UnknownKind`].
pub fn parse_head(head: &[u8; 10]) -> Result<(Kind, u64), WireError> {
    if head[0] != PROTOCOL_VERSION {
        return Err(WireError::Version(head[0]));
    }
    let kind = Kind::from_u8(head[1]).ok_or(WireError::UnknownKind(head[1]))?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&head[2..10]);
    Ok((kind, u64::from_le_bytes(id)))
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, WireError> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    Ok(done)
}

/// A message's head: its encoding and the ids of the channel ends inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHead {
    /// The codec's encoding byte.
    pub encoding: u8,
    /// The channel ids it carries.
    pub carried: Vec<u64>,
}

impl MessageHead {
    /// The head's bytes.
    pub fn encode(encoding: u8, carried: &[u64]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + carried.len() * 8);
        out.push(encoding);
        out.extend_from_slice(&(carried.len() as u32).to_le_bytes());
        for id in carried {
            out.extend_from_slice(&id.to_le_bytes());
        }
        out
    }

    /// The channel ids a head announces, as far as `bytes` hold them (for a head that is
    /// refused: the channels it carries must still be closed).
    pub fn carried_anyway(bytes: &[u8]) -> Vec<u64> {
        let Some(count) = bytes.get(1..5) else {
            return Vec::new();
        };
        let count = u32::from_le_bytes([count[0], count[1], count[2], count[3]]) as usize;
        bytes[5..]
            .chunks_exact(8)
            .take(count)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    }

    /// Reads a head off the front of `bytes`; returns it and the rest.
    ///
    /// # Errors
    ///
    /// A reason when the bytes are too short for the head they announce, or announce more than
    /// [`MAX_CARRIED`] ids.
    pub fn parse(bytes: &[u8]) -> Result<(MessageHead, &[u8]), String> {
        if bytes.len() < 5 {
            return Err("a message head shorter than 5 bytes".into());
        }
        let encoding = bytes[0];
        let count = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if count > MAX_CARRIED {
            return Err(format!(
                "a message carrying {count} channels (at most {MAX_CARRIED})"
            ));
        }
        let end = 5 + count * 8;
        if bytes.len() < end {
            return Err(format!(
                "a message head announcing {count} channels in {} bytes",
                bytes.len()
            ));
        }
        let carried = bytes[5..end]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        Ok((MessageHead { encoding, carried }, &bytes[end..]))
    }
}

/// The payload of a `Credit` frame.
pub fn credit_payload(bytes: u64, messages: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&bytes.to_le_bytes());
    p[8..].copy_from_slice(&messages.to_le_bytes());
    p
}

/// Reads a token payload (`Resume`, `Adopt`, `Commit`; `HandedOff`'s attempt), or the leading
/// `u64 LE` of a longer one.
pub fn parse_token(p: &[u8]) -> Option<u64> {
    let t: [u8; 8] = p.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(t))
}

/// The payload of a `Handoff` (or `Repoint`) frame.
pub fn handoff_payload(token: u64, attempt: u64, to: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(16 + to.len());
    p.extend_from_slice(&token.to_le_bytes());
    p.extend_from_slice(&attempt.to_le_bytes());
    p.extend_from_slice(to.as_bytes());
    p
}

/// Reads a `Handoff` (or `Repoint`) payload: the token, the attempt and the address.
pub fn parse_handoff(p: &[u8]) -> Option<(u64, u64, String)> {
    let token = parse_token(p)?;
    let attempt = parse_token(p.get(8..)?)?;
    let to = std::str::from_utf8(p.get(16..)?).ok()?;
    Some((token, attempt, to.to_owned()))
}

/// The payload of a `Kept` frame.
pub fn kept_payload(attempt: u64, why: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + why.len());
    p.extend_from_slice(&attempt.to_le_bytes());
    p.extend_from_slice(why.as_bytes());
    p
}

/// Reads a `Kept` payload: the attempt and why.
pub fn parse_kept(p: &[u8]) -> Option<(u64, String)> {
    let attempt = parse_token(p)?;
    Some((attempt, String::from_utf8_lossy(p.get(8..)?).into_owned()))
}

/// Reads a `Credit` payload.
pub fn parse_credit(p: &[u8]) -> Option<(u64, u64)> {
    let b: [u8; 8] = p.get(..8)?.try_into().ok()?;
    let m: [u8; 8] = p.get(8..16)?.try_into().ok()?;
    Some((u64::from_le_bytes(b), u64::from_le_bytes(m)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_frame_round_trips() {
        let bytes = encode_frame(Kind::Data, 42, b"hello");
        let f = read_frame(&mut &bytes[..], MAX_FRAME).unwrap();
        assert_eq!(
            f,
            Frame {
                kind: Kind::Data,
                channel: 42,
                payload: b"hello".to_vec()
            }
        );
    }

    #[test]
    fn bad_frames_are_named() {
        assert!(matches!(
            read_frame(&mut &[][..], 100),
            Err(WireError::Closed)
        ));
        assert!(matches!(
            read_frame(&mut &[1, 0][..], 100),
            Err(WireError::Truncated)
        ));
        assert!(matches!(
            read_frame(&mut &3u32.to_le_bytes()[..], 100),
            Err(WireError::TooShort(3))
        ));
        let huge = u32::MAX.to_le_bytes();
        assert!(matches!(
            read_frame(&mut &huge[..], MAX_FRAME),
            Err(WireError::Oversized { len: u32::MAX, .. })
        ));
        let mut bad_version = encode_frame(Kind::Ping, 0, b"");
        bad_version[4] = 9;
        assert!(matches!(
            read_frame(&mut &bad_version[..], 100),
            Err(WireError::Version(9))
        ));
        let mut bad_kind = encode_frame(Kind::Ping, 0, b"");
        bad_kind[5] = 200;
        assert!(matches!(
            read_frame(&mut &bad_kind[..], 100),
            Err(WireError::UnknownKind(200))
        ));
        let cut = encode_frame(Kind::Data, 1, b"abcdef");
        assert!(matches!(
            read_frame(&mut &cut[..cut.len() - 2], 100),
            Err(WireError::Truncated)
        ));
    }

    #[test]
    fn message_heads_round_trip_and_bad_ones_are_refused() {
        let head = MessageHead::encode(3, &[7, 9]);
        let mut bytes = head.clone();
        bytes.extend_from_slice(b"body");
        let (parsed, rest) = MessageHead::parse(&bytes).unwrap();
        assert_eq!(
            parsed,
            MessageHead {
                encoding: 3,
                carried: vec![7, 9]
            }
        );
        assert_eq!(rest, b"body");
        assert!(MessageHead::parse(&[1, 2]).is_err());
        // A count that claims more ids than the bytes hold, and one over the limit.
        assert!(MessageHead::parse(&[1, 5, 0, 0, 0, 1, 2, 3]).is_err());
        assert!(MessageHead::parse(&[1, 255, 255, 255, 255]).is_err());
        assert_eq!(parse_credit(&credit_payload(5, 6)), Some((5, 6)));
        assert_eq!(parse_credit(&[1, 2, 3]), None);
    }

    #[test]
    fn handoff_payloads_round_trip_and_short_ones_are_refused() {
        let p = handoff_payload(1 << 63 | 5, 77, "10.0.0.2:7000");
        assert_eq!(
            parse_handoff(&p),
            Some((1 << 63 | 5, 77, "10.0.0.2:7000".to_owned()))
        );
        assert_eq!(parse_handoff(&p[..15]), None);
        let mut not_utf8 = p.clone();
        not_utf8.push(0xff);
        assert_eq!(parse_handoff(&not_utf8), None);
        assert_eq!(
            parse_kept(&kept_payload(9, "no route")),
            Some((9, "no route".to_owned()))
        );
        assert_eq!(parse_kept(&[1, 2, 3]), None);
        assert_eq!(parse_token(&7u64.to_le_bytes()), Some(7));
        assert_eq!(parse_token(&[1]), None);
    }

    proptest! {
        /// Whatever bytes arrive, the decoder returns (a frame or an error) without panicking,
        /// and every frame it returns re-encodes to a prefix of the input.
        #[test]
        fn the_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut rest = &bytes[..];
            for _ in 0..50 {
                match read_frame(&mut rest, 64) {
                    Ok(f) => {
                        let again = encode_frame(f.kind, f.channel, &f.payload);
                        prop_assert!(again.len() <= bytes.len());
                    }
                    Err(_) => break,
                }
            }
            let _ = MessageHead::parse(&bytes);
        }

        #[test]
        fn frames_survive_a_byte_stream(frames in proptest::collection::vec(
            (1u8..=21, any::<u64>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..10)
        ) {
            let mut stream = Vec::new();
            for (k, id, p) in &frames {
                stream.extend(encode_frame(Kind::from_u8(*k).unwrap(), *id, p));
            }
            let mut r = &stream[..];
            for (k, id, p) in &frames {
                let f = read_frame(&mut r, 1000).unwrap();
                prop_assert_eq!(f.kind as u8, *k);
                prop_assert_eq!(f.channel, *id);
                prop_assert_eq!(&f.payload, p);
            }
            prop_assert!(matches!(read_frame(&mut r, 1000), Err(WireError::Closed)));
        }
    }
}
