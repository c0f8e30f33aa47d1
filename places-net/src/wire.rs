//! Frames: the unit of everything two nodes say to each other after the handshake.
//!
//! ```text
//! u32 LE length | u8 protocol version | u8 kind | u64 LE channel id | payload (length - 10 bytes)
//! ```
//!
//! A reader never allocates more than the frame's length, and refuses a length above its limit
//! before allocating anything, so a peer cannot make a node allocate what it merely claims.

use std::io::{self, Read, Write};

/// The version byte of every frame.
pub const PROTOCOL_VERSION: u8 = 1;

/// The default largest frame a connection accepts (64 MiB).
pub const DEFAULT_MAX_FRAME: u32 = 64 << 20;

/// Bytes after the length prefix that every frame has: version, kind, channel id.
const FIXED: u32 = 1 + 1 + 8;

/// What a frame asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Kind {
    /// Start an entry; the payload is a spawn request, the channel id the new channel's.
    Spawn = 1,
    /// The spawn of the channel's place succeeded.
    SpawnOk = 2,
    /// The spawn failed; the payload is the reason.
    SpawnErr = 3,
    /// A message on the channel.
    Data = 4,
    /// The sender's end of the channel is gone.
    Close = 5,
    /// The channel's place ended; the payload is its completion value.
    Exit = 6,
    /// Kill the channel's place.
    Kill = 7,
    /// Are you there?
    Ping = 8,
    /// Yes.
    Pong = 9,
    /// End the node.
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
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
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

/// Why a frame could not be read.
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
    let len = FIXED as usize + payload.len();
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.push(PROTOCOL_VERSION);
    buf.push(kind as u8);
    buf.extend_from_slice(&channel.to_le_bytes());
    buf.extend_from_slice(payload);
    buf
}

/// Fills in the header of a frame whose payload follows
/// [`FRAME_HEADROOM`](places_core::codec::FRAME_HEADROOM) free bytes, so the whole buffer can be
/// written as it is.
///
/// # Panics
///
/// If `buf` is shorter than the headroom (a caller bug).
pub fn fill_header(buf: &mut [u8], kind: Kind, channel: u64) {
    const _: () = assert!(places_core::codec::FRAME_HEADROOM == 4 + FIXED as usize);
    let payload = buf.len() - places_core::codec::FRAME_HEADROOM;
    buf[..places_core::codec::FRAME_HEADROOM].copy_from_slice(&header(kind, channel, payload));
}

/// The 14 bytes in front of a frame whose payload is `payload_len` bytes long.
pub fn header(kind: Kind, channel: u64, payload_len: usize) -> [u8; 14] {
    let mut h = [0u8; 14];
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_frame_round_trips() {
        let bytes = encode_frame(Kind::Data, 42, b"hello");
        let f = read_frame(&mut &bytes[..], DEFAULT_MAX_FRAME).unwrap();
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
            read_frame(&mut &huge[..], DEFAULT_MAX_FRAME),
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
        }

        #[test]
        fn frames_survive_a_byte_stream(frames in proptest::collection::vec(
            (1u8..=16, any::<u64>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..10)
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
