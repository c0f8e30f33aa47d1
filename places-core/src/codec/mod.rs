//! The one boundary where messages become bytes.
//!
//! Local places never come here: their messages are moved. Remote delivery encodes once with
//! serde through bincode, marked with a one-byte encoding so that the format can change without
//! misreading old peers. Large numeric vectors skip serde and travel as their raw bytes.
//!
//! Decoding never trusts a length inside the bytes: what a decode allocates follows the input
//! it actually has (a string that claims more bytes than the message holds is an error, not an
//! allocation), so anything that encodes also decodes, whatever its size in memory.

mod bounded;

use std::any::{Any, TypeId};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::CodecError;

/// The encoding byte of a message encoded with serde through bincode (and the version byte
/// before every [`encode`]d value).
pub const CODEC_VERSION: u8 = 1;

/// The encoding byte of a `Vec<f64>` sent as raw little-endian bytes.
pub const RAW_F64S: u8 = 2;
/// The encoding byte of a `Vec<i64>` sent as raw little-endian bytes.
pub const RAW_I64S: u8 = 3;
/// The encoding byte of a `Vec<u8>` sent as it is.
pub const RAW_BYTES: u8 = 4;

fn config() -> bincode::config::Configuration {
    // No limit: bincode's counts a value's size in memory (eight bytes for every small `u64`),
    // so it refused messages that are small on the wire. Allocations are bounded by the input
    // instead (see `bounded`).
    bincode::config::standard()
}

/// Encodes `value` as a version byte followed by its bincode form.
///
/// # Errors
///
/// [`CodecError::Encode`] when serde refuses the value (for example a place channel outside a
/// places transport).
///
/// # Examples
///
/// ```
/// let bytes = places::codec::encode(&(7u32, "seven".to_string())).unwrap();
/// let back: (u32, String) = places::codec::decode(&bytes).unwrap();
/// assert_eq!(back, (7, "seven".to_string()));
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![CODEC_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config())?;
    Ok(out)
}

/// Decodes bytes written by [`encode`].
///
/// # Errors
///
/// [`CodecError::Version`] for an unknown version byte, [`CodecError::Decode`] for bytes that do
/// not hold a `T` (including empty input, and lengths that claim more than the input holds),
/// [`CodecError::Trailing`] for bytes left over after the value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Decode(
        bincode::error::DecodeError::UnexpectedEnd { additional: 1 },
    ))?;
    if version != CODEC_VERSION {
        return Err(CodecError::Version {
            found: version,
            expected: CODEC_VERSION,
        });
    }
    decode_serde(body)
}

/// Encodes `value` as [`encode`] does, except that a `Vec<f64>`, `Vec<i64>` or `Vec<u8>` is
/// its encoding byte followed by its raw little-endian bytes (one copy, no serde). For values
/// that are passed on as bytes (procedure inputs and outputs) and read with
/// [`decode_with_raw`].
///
/// # Errors
///
/// [`CodecError::Encode`] when serde refuses the value.
///
/// # Examples
///
/// ```
/// let bytes = places::codec::encode_with_raw(&vec![1i64, -2, 3]).unwrap();
/// if cfg!(target_endian = "little") {
///     // Raw: the encoding byte, then the numbers as they are in memory.
///     assert_eq!(bytes.len(), 1 + 3 * 8);
/// }
/// let back: Vec<i64> = places::codec::decode_with_raw(&bytes).unwrap();
/// assert_eq!(back, [1, -2, 3]);
/// // Other values are encoded as `encode` does, and `decode_with_raw` reads both.
/// let pair = places::codec::encode(&(1u8, 'x')).unwrap();
/// assert_eq!(places::codec::decode_with_raw::<(u8, char)>(&pair).unwrap(), (1, 'x'));
/// ```
pub fn encode_with_raw<T: Serialize + 'static>(value: &T) -> Result<Vec<u8>, CodecError> {
    match raw_view(value) {
        Some((encoding, bytes)) => {
            let mut out = Vec::with_capacity(1 + bytes.len());
            out.push(encoding);
            out.extend_from_slice(bytes);
            Ok(out)
        }
        None => encode(value),
    }
}

/// Decodes bytes written by [`encode_with_raw`] or by [`encode`].
///
/// # Errors
///
/// As [`decode`], and [`decode_raw`]'s for the raw encodings.
pub fn decode_with_raw<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, CodecError> {
    if TypeId::of::<T>() == TypeId::of::<Packed>() {
        let Some((&encoding, body)) = bytes.split_first() else {
            return decode(bytes);
        };
        return decode_body(encoding, Body::from_slice(encoding, body));
    }
    match bytes.split_first() {
        Some((&CODEC_VERSION, body)) => decode_serde(body),
        Some((&encoding, body)) => decode_raw(encoding, body),
        None => decode(bytes),
    }
}

/// Decodes a bincode body, allocating only what the bytes hold, and refuses trailing bytes.
fn decode_serde<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let mut decoder = bincode::serde::BorrowedSerdeDecoder::from_slice(body, config(), ());
    let value = T::deserialize(bounded::Bounded(decoder.as_deserializer()))?;
    // A value that ends early leaves bytes: one more byte reads only if something is left.
    if u8::deserialize(decoder.as_deserializer()).is_ok() {
        return Err(CodecError::Trailing);
    }
    Ok(value)
}

/// Encodes a message for another node: its encoding byte ([`CODEC_VERSION`], or one of the raw
/// encodings for `Vec<f64>`, `Vec<i64>` and `Vec<u8>`) and its body.
///
/// # Errors
///
/// [`CodecError::Encode`] when serde refuses the value.
pub fn encode_body<T: Serialize + 'static>(value: &T) -> Result<(u8, Vec<u8>), CodecError> {
    if let Some((encoding, bytes)) = raw_view(value) {
        return Ok((encoding, bytes.to_vec()));
    }
    let any = value as &dyn Any;
    if let Some(v) = any.downcast_ref::<Vec<f64>>() {
        return Ok((RAW_F64S, words_out(v.iter().map(|x| x.to_le_bytes()))));
    }
    if let Some(v) = any.downcast_ref::<Vec<i64>>() {
        return Ok((RAW_I64S, words_out(v.iter().map(|x| x.to_le_bytes()))));
    }
    let mut out = Vec::new();
    bincode::serde::encode_into_std_write(value, &mut out, config())?;
    Ok((CODEC_VERSION, out))
}

/// The raw little-endian bytes of a `Vec<f64>`, `Vec<i64>` or `Vec<u8>` as they are in memory,
/// with the encoding byte that marks them, so that the network layer can write them without
/// copying, and a [`Packed`] value's encoding and body; `None` for every other type (and for
/// the numeric ones on big-endian machines, whose memory is not in wire order).
pub fn raw_view<T: 'static>(value: &T) -> Option<(u8, &[u8])> {
    let any = value as &dyn Any;
    if let Some(p) = any.downcast_ref::<Packed>() {
        return Some((p.encoding, p.body.as_bytes()));
    }
    if let Some(v) = any.downcast_ref::<Vec<u8>>() {
        return Some((RAW_BYTES, v.as_slice()));
    }
    if cfg!(target_endian = "little") {
        if let Some(v) = any.downcast_ref::<Vec<f64>>() {
            return Some((RAW_F64S, bytemuck::cast_slice(v.as_slice())));
        }
        if let Some(v) = any.downcast_ref::<Vec<i64>>() {
            return Some((RAW_I64S, bytemuck::cast_slice(v.as_slice())));
        }
    }
    None
}

fn words_out(words: impl ExactSizeIterator<Item = [u8; 8]>) -> Vec<u8> {
    let mut out = vec![0u8; words.len() * 8];
    for (dst, w) in out.chunks_exact_mut(8).zip(words) {
        dst.copy_from_slice(&w);
    }
    out
}

/// A message body as it arrives: bytes or, for the raw numeric encodings, 8-byte words, so
/// that a received `Vec<f64>` or `Vec<i64>` is the receive buffer itself (no copy, and aligned).
///
/// A body is a [`bytes::BufMut`]: the network layer reads a socket straight into its spare
/// capacity, without zeroing it first.
#[derive(Debug)]
pub enum Body {
    /// Bytes.
    Bytes(Vec<u8>),
    /// The first `len` bytes of `words`, which holds `len` bytes rounded up to whole words
    /// (the bytes of a partial last word past `len` are zero).
    Words {
        /// The storage.
        words: Vec<u64>,
        /// How many bytes are filled.
        len: usize,
    },
}

impl Default for Body {
    fn default() -> Self {
        Body::Bytes(Vec::new())
    }
}

impl Body {
    /// An empty body for a message of `encoding`.
    pub fn for_encoding(encoding: u8) -> Body {
        match encoding {
            RAW_F64S | RAW_I64S => Body::Words {
                words: Vec::new(),
                len: 0,
            },
            _ => Body::Bytes(Vec::new()),
        }
    }

    /// A body for a message of `encoding` holding a copy of `bytes`.
    pub fn from_slice(encoding: u8, bytes: &[u8]) -> Body {
        let mut body = Body::for_encoding(encoding);
        body.reserve_exact(bytes.len());
        body.extend_from_slice(bytes);
        body
    }

    /// How many bytes it holds.
    pub fn len(&self) -> usize {
        match self {
            Body::Bytes(b) => b.len(),
            Body::Words { len, .. } => *len,
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Body::Bytes(b) => b,
            Body::Words { words, len } => {
                let bytes = bytemuck::cast_slice::<u64, u8>(words);
                &bytes[..(*len).min(bytes.len())]
            }
        }
    }

    /// Makes room for `additional` more bytes (exactly: the caller decides how it grows).
    pub fn reserve_exact(&mut self, additional: usize) {
        match self {
            Body::Bytes(b) => b.reserve_exact(additional),
            Body::Words { words, len } => {
                let want = (*len + additional).div_ceil(8);
                words.reserve_exact(want.saturating_sub(words.len()));
            }
        }
    }

    /// How many more bytes fit without growing.
    pub fn spare_capacity(&self) -> usize {
        match self {
            Body::Bytes(b) => b.capacity() - b.len(),
            Body::Words { words, len } => words.capacity() * 8 - len,
        }
    }

    /// Appends `bytes`.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        match self {
            Body::Bytes(b) => b.extend_from_slice(bytes),
            Body::Words { .. } => {
                if self.spare_capacity() < bytes.len() {
                    self.reserve_exact(bytes.len());
                }
                bytes::BufMut::put_slice(self, bytes);
            }
        }
    }
}

// SAFETY: `chunk_mut` hands out only the room after the `len` filled bytes, and `advance_mut`
// counts as filled exactly what its caller (who must have written it) says; a `Vec`'s length
// only ever covers initialized memory (for words, filled bytes and a zeroed tail).
unsafe impl bytes::BufMut for Body {
    fn remaining_mut(&self) -> usize {
        isize::MAX as usize - self.len()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        match self {
            Body::Bytes(b) => {
                let at = b.len() + cnt;
                assert!(at <= b.capacity(), "advanced past the body's capacity");
                // SAFETY: the caller wrote `cnt` bytes after the filled ones, within capacity.
                unsafe { b.set_len(at) };
            }
            Body::Words { words, len } => {
                let at = *len + cnt;
                assert!(
                    at <= words.capacity() * 8,
                    "advanced past the body's capacity"
                );
                let whole = at.div_ceil(8);
                // A partial last word: its bytes past `at` are zeroed, so that the word is
                // initialized and counted in the vector (nothing is ever kept in spare capacity,
                // which reallocation need not preserve).
                let tail = whole * 8 - at;
                if tail > 0 {
                    // SAFETY: the `tail` bytes after `at` lie inside the word that holds byte
                    // `at - 1`, within capacity.
                    unsafe {
                        std::ptr::write_bytes(words.as_mut_ptr().cast::<u8>().add(at), 0, tail);
                    }
                }
                *len = at;
                // SAFETY: every byte before `at` has been written (by the caller now, or
                // earlier), and the rest of the last word was just zeroed.
                unsafe { words.set_len(whole) };
            }
        }
    }

    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        if self.spare_capacity() == 0 {
            self.reserve_exact(64);
        }
        match self {
            Body::Bytes(b) => b.spare_capacity_mut().into(),
            Body::Words { words, len } => {
                let cap = words.capacity() * 8;
                // SAFETY: bytes `len..cap` of the allocation (the zeroed tail of a partial last
                // word, then spare capacity) are ours to write; handed out as uninitialized
                // bytes they are only ever written, never read, by the caller.
                unsafe {
                    bytes::buf::UninitSlice::from_raw_parts_mut(
                        words.as_mut_ptr().cast::<u8>().add(*len),
                        cap - *len,
                    )
                }
            }
        }
    }
}

/// A value encoded as a message carries it: its encoding byte and its body, for values that
/// are passed on without their type being known (procedure inputs and outputs). A `Vec<i64>`,
/// `Vec<f64>` or `Vec<u8>` is packed and unpacked without a copy (its memory becomes the body,
/// and a body that arrived as 8-byte words becomes the vector), and a `Packed` sent to another
/// node goes out from its body and arrives as one, whatever it holds. As bytes of its own
/// (outside a message), its form is what [`encode_with_raw`] writes and [`decode_with_raw`]
/// reads; [`encode`] writes its serde form (as inside another value), which only [`decode`]
/// reads back.
///
/// ```
/// use places::codec::Packed;
/// let p = Packed::pack(vec![3i64, 1, 2]).unwrap();
/// assert_eq!(p.len(), 24);
/// assert_eq!(p.unpack::<Vec<i64>>().unwrap(), [3, 1, 2]);
/// let q = Packed::pack(("a".to_string(), 7u8)).unwrap();
/// assert_eq!(q.unpack::<(String, u8)>().unwrap(), ("a".to_string(), 7));
/// ```
#[derive(Debug)]
pub struct Packed {
    encoding: u8,
    body: Body,
}

impl Packed {
    /// Packs `value` (a numeric or byte vector without a copy).
    ///
    /// # Errors
    ///
    /// [`CodecError::Encode`] when serde refuses the value.
    pub fn pack<T: Serialize + 'static>(value: T) -> Result<Packed, CodecError> {
        let mut slot = Some(value);
        {
            let any: &mut dyn Any = &mut slot;
            if let Some(p) = any.downcast_mut::<Option<Packed>>().and_then(Option::take) {
                return Ok(p);
            }
            if let Some(v) = any.downcast_mut::<Option<Vec<u8>>>().and_then(Option::take) {
                return Ok(Packed {
                    encoding: RAW_BYTES,
                    body: Body::Bytes(v),
                });
            }
            if cfg!(target_endian = "little") {
                if let Some(v) = any
                    .downcast_mut::<Option<Vec<i64>>>()
                    .and_then(Option::take)
                {
                    return Ok(Packed::words(RAW_I64S, v));
                }
                if let Some(v) = any
                    .downcast_mut::<Option<Vec<f64>>>()
                    .and_then(Option::take)
                {
                    return Ok(Packed::words(RAW_F64S, v));
                }
            }
        }
        let Some(value) = slot else {
            unreachable!("only the vectors above were taken")
        };
        let (encoding, bytes) = encode_body(&value)?;
        // Raw numbers (on a big-endian machine) go into words; other bytes are the body.
        let body = match encoding {
            RAW_F64S | RAW_I64S => Body::from_slice(encoding, &bytes),
            _ => Body::Bytes(bytes),
        };
        Ok(Packed { encoding, body })
    }

    /// A numeric vector's memory as the words of a body.
    fn words<W: bytemuck::Pod>(encoding: u8, v: Vec<W>) -> Packed {
        let len = v.len() * 8;
        let words = match bytemuck::allocation::try_cast_vec::<W, u64>(v) {
            Ok(words) => words,
            // Not expected for 8-byte numbers; copied if it happens.
            Err((_, v)) => bytemuck::cast_slice::<W, u8>(&v)
                .chunks_exact(8)
                .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        };
        Packed {
            encoding,
            body: Body::Words { words, len },
        }
    }

    /// The value it holds, as a `T`.
    ///
    /// # Errors
    ///
    /// As [`decode_body`]: [`CodecError::Decode`] when it does not hold a `T`.
    pub fn unpack<T: DeserializeOwned + 'static>(self) -> Result<T, CodecError> {
        decode_body(self.encoding, self.body)
    }

    /// Its encoding byte.
    pub fn encoding(&self) -> u8 {
        self.encoding
    }

    /// The size of its body in bytes.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether its body is empty.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

/// Inside another value (not as a message of its own) a `Packed` is its encoding byte and its
/// body's bytes.
impl Serialize for Packed {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.encoding, serde_bytes::Bytes::new(self.body.as_bytes())).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Packed {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (encoding, bytes): (u8, serde_bytes::ByteBuf) = Deserialize::deserialize(deserializer)?;
        Ok(Packed {
            encoding,
            body: Body::from_slice(encoding, &bytes),
        })
    }
}

/// Decodes a message body written by [`encode_body`] (or sent from a [`raw_view`]). A
/// `Vec<u8>` sent raw is the body itself, and so is a `Vec<f64>` or `Vec<i64>` that arrived as
/// [`Body::Words`]: no copy.
///
/// # Errors
///
/// [`CodecError::Version`] for an unknown encoding, [`CodecError::Decode`] for bytes that do not
/// hold a `T` (raw numbers of the wrong length, or of another type than `T`), and the errors of
/// [`decode`].
pub fn decode_body<T: DeserializeOwned + 'static>(
    encoding: u8,
    body: Body,
) -> Result<T, CodecError> {
    let is = |id: TypeId| TypeId::of::<T>() == id;
    if is(TypeId::of::<Packed>()) {
        // The message as it came: its encoding and its body, decoded later.
        return (Box::new(Packed { encoding, body }) as Box<dyn Any>)
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| raw_error("a packed value for another type"));
    }
    if let Body::Words { words, len } = body {
        if !len.is_multiple_of(8) {
            return Err(raw_error("raw numbers whose length is not a multiple of 8"));
        }
        if words.len() != len / 8 {
            return Err(raw_error("a body whose words do not hold its length"));
        }
        let boxed: Box<dyn Any> = match encoding {
            RAW_F64S if is(TypeId::of::<Vec<f64>>()) && cfg!(target_endian = "little") => {
                Box::new(bytemuck::allocation::cast_vec::<u64, f64>(words))
            }
            RAW_I64S if is(TypeId::of::<Vec<i64>>()) && cfg!(target_endian = "little") => {
                Box::new(bytemuck::allocation::cast_vec::<u64, i64>(words))
            }
            _ => {
                let bytes: Vec<u8> = bytemuck::cast_slice::<u64, u8>(&words).to_vec();
                return decode_body(encoding, Body::Bytes(bytes));
            }
        };
        return boxed
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| raw_error("raw numbers for another type"));
    }
    let Body::Bytes(body) = body else {
        unreachable!("words were handled above")
    };
    match encoding {
        CODEC_VERSION => decode_serde(&body),
        // A raw `Vec<u8>` is the body itself: no copy.
        RAW_BYTES if is(TypeId::of::<Vec<u8>>()) => (Box::new(body) as Box<dyn Any>)
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| raw_error("raw numbers for another type")),
        _ => decode_raw(encoding, &body),
    }
}

/// Decodes the bytes of a raw encoding ([`RAW_F64S`], [`RAW_I64S`], [`RAW_BYTES`]) that sit
/// in a larger buffer (after the encoding byte of a group message): one copy, into the value.
///
/// # Errors
///
/// [`CodecError::Version`] for an encoding that is not a raw one, [`CodecError::Decode`] for
/// raw numbers of the wrong length or of another type than `T`.
pub fn decode_raw<T: DeserializeOwned + 'static>(
    encoding: u8,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let is = |id: TypeId| TypeId::of::<T>() == id;
    let boxed: Box<dyn Any> = match encoding {
        RAW_F64S if is(TypeId::of::<Vec<f64>>()) => {
            Box::new(words(bytes)?.map(f64::from_le_bytes).collect::<Vec<f64>>())
        }
        RAW_I64S if is(TypeId::of::<Vec<i64>>()) => {
            Box::new(words(bytes)?.map(i64::from_le_bytes).collect::<Vec<i64>>())
        }
        RAW_BYTES if is(TypeId::of::<Vec<u8>>()) => Box::new(bytes.to_vec()),
        RAW_F64S | RAW_I64S | RAW_BYTES
            if is(TypeId::of::<Vec<f64>>())
                || is(TypeId::of::<Vec<i64>>())
                || is(TypeId::of::<Vec<u8>>()) =>
        {
            return Err(raw_error("raw numbers for another type"))
        }
        // A type whose serde form is the vector's (a `Routed<Vec<u8>, _>` that a named place
        // receives, a transparent newtype): decoded from that form, as if the vector had been
        // sent through serde.
        RAW_F64S => {
            return reencoded::<T, _>(&words(bytes)?.map(f64::from_le_bytes).collect::<Vec<_>>())
        }
        RAW_I64S => {
            return reencoded::<T, _>(&words(bytes)?.map(i64::from_le_bytes).collect::<Vec<_>>())
        }
        RAW_BYTES => return reencoded::<T, _>(&bytes),
        found => {
            return Err(CodecError::Version {
                found,
                expected: CODEC_VERSION,
            })
        }
    };
    boxed
        .downcast::<T>()
        .map(|b| *b)
        .map_err(|_| raw_error("raw numbers for another type"))
}

/// Decodes a `T` from the serde form of `value`.
fn reencoded<T: DeserializeOwned, V: Serialize + ?Sized>(value: &V) -> Result<T, CodecError> {
    let mut body = Vec::new();
    bincode::serde::encode_into_std_write(value, &mut body, config())?;
    decode_serde(&body)
}

fn words(body: &[u8]) -> Result<impl Iterator<Item = [u8; 8]> + '_, CodecError> {
    if !body.len().is_multiple_of(8) {
        return Err(raw_error("raw numbers whose length is not a multiple of 8"));
    }
    Ok(body.chunks_exact(8).map(|c| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        w
    }))
}

fn raw_error(what: &'static str) -> CodecError {
    CodecError::Decode(bincode::error::DecodeError::OtherString(what.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn round_trips_nested_values() {
        let v: (Vec<f64>, Option<String>, [u8; 3]) = (vec![1.5, -2.0], Some("x".into()), [1, 2, 3]);
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes[0], CODEC_VERSION);
        assert_eq!(
            decode::<(Vec<f64>, Option<String>, [u8; 3])>(&bytes).unwrap(),
            v
        );
    }

    #[test]
    fn packed_values_keep_their_memory_and_travel_as_messages() {
        // A numeric vector becomes the body's words: the same allocation, both ways.
        let v: Vec<i64> = (0..1000).collect();
        let at = v.as_ptr() as usize;
        let p = Packed::pack(v).unwrap();
        assert_eq!(p.len(), 8000);
        if cfg!(target_endian = "little") {
            assert_eq!(p.encoding(), RAW_I64S);
            let back: Vec<i64> = p.unpack().unwrap();
            assert_eq!(back.as_ptr() as usize, at, "no copy");
            assert_eq!(back, (0..1000).collect::<Vec<i64>>());
        }
        let f = Packed::pack(vec![0.5f64, -1.0]).unwrap();
        assert_eq!(f.unpack::<Vec<f64>>().unwrap(), [0.5, -1.0]);
        let b = Packed::pack(vec![1u8, 2, 3]).unwrap();
        assert_eq!(b.encoding(), RAW_BYTES);
        assert_eq!(b.unpack::<Vec<u8>>().unwrap(), [1, 2, 3]);
        // Another value is its bincode form; the wrong type is an error, not a panic.
        let t = Packed::pack(("x".to_string(), 7u16)).unwrap();
        assert_eq!(t.encoding(), CODEC_VERSION);
        assert!(Packed::pack(vec![1i64])
            .unwrap()
            .unpack::<Vec<f64>>()
            .is_err());
        // As a message: its raw view is its encoding and body, and a receiver that expects
        // a `Packed` gets the message as it came.
        let (enc, bytes) = raw_view(&t).unwrap();
        assert_eq!(enc, CODEC_VERSION);
        let again: Packed = decode_body(enc, Body::Bytes(bytes.to_vec())).unwrap();
        assert_eq!(
            again.unpack::<(String, u16)>().unwrap(),
            ("x".to_string(), 7)
        );
        let words = encode_with_raw(&Packed::pack(vec![9i64, 8]).unwrap()).unwrap();
        let back: Packed = decode_with_raw(&words).unwrap();
        assert_eq!(back.unpack::<Vec<i64>>().unwrap(), [9, 8]);
        // Packing a `Packed` keeps it as it is.
        let twice = Packed::pack(Packed::pack(5u8).unwrap()).unwrap();
        assert_eq!(twice.unpack::<u8>().unwrap(), 5);
        // Inside another value it goes through serde.
        let nested = encode(&(1u8, Packed::pack(vec![4i64, 5]).unwrap())).unwrap();
        let (one, inner): (u8, Packed) = decode(&nested).unwrap();
        assert_eq!(one, 1);
        assert_eq!(inner.unpack::<Vec<i64>>().unwrap(), [4, 5]);
    }

    #[test]
    fn with_raw_round_trips_numeric_vectors_and_refuses_what_does_not_fit() {
        let ints = encode_with_raw(&vec![5i64, -6]).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(ints[0], RAW_I64S);
        }
        assert_eq!(decode_with_raw::<Vec<i64>>(&ints).unwrap(), [5, -6]);
        assert!(decode_with_raw::<Vec<f64>>(&ints).is_err(), "another type");
        assert!(
            decode_with_raw::<Vec<i64>>(&ints[..ints.len() - 1]).is_err(),
            "a cut word"
        );
        assert!(decode_with_raw::<Vec<i64>>(&[]).is_err(), "no bytes");
        let bytes = encode_with_raw(&vec![1u8, 2, 3]).unwrap();
        assert_eq!(bytes, [RAW_BYTES, 1, 2, 3]);
        assert_eq!(decode_with_raw::<Vec<u8>>(&bytes).unwrap(), [1, 2, 3]);
        let text = encode_with_raw(&"seven".to_string()).unwrap();
        assert_eq!(text, encode(&"seven".to_string()).unwrap());
    }

    #[test]
    fn a_raw_vector_decodes_as_a_type_of_the_same_serde_form() {
        #[derive(Deserialize, PartialEq, Debug)]
        #[serde(transparent)]
        struct Bytes(Vec<u8>);
        #[derive(Deserialize, PartialEq, Debug)]
        #[serde(transparent)]
        struct Floats(Vec<f64>);
        assert_eq!(
            decode_raw::<Bytes>(RAW_BYTES, &[1, 2, 3]).unwrap(),
            Bytes(vec![1, 2, 3])
        );
        let f = 2.5f64.to_le_bytes();
        assert_eq!(
            decode_raw::<Floats>(RAW_F64S, &f).unwrap(),
            Floats(vec![2.5])
        );
        let i = (-7i64).to_le_bytes();
        assert_eq!(decode_raw::<(u64, i64)>(RAW_I64S, &i).unwrap(), (1, -7));
        // The raw types themselves still refuse one another's bytes.
        assert!(decode_raw::<Vec<f64>>(RAW_I64S, &i).is_err());
        assert!(decode_raw::<Vec<u8>>(RAW_F64S, &f).is_err());
    }

    #[test]
    fn rejects_an_unknown_version() {
        let mut bytes = encode(&1u32).unwrap();
        bytes[0] = 9;
        assert!(matches!(
            decode::<u32>(&bytes),
            Err(CodecError::Version {
                found: 9,
                expected: CODEC_VERSION
            })
        ));
    }

    #[test]
    fn rejects_empty_truncated_and_trailing_input() {
        assert!(matches!(decode::<u32>(&[]), Err(CodecError::Decode(_))));
        let bytes = encode(&"hello".to_string()).unwrap();
        assert!(matches!(
            decode::<String>(&bytes[..bytes.len() - 1]),
            Err(CodecError::Decode(_))
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode::<String>(&longer),
            Err(CodecError::Trailing)
        ));
    }

    #[test]
    fn numeric_vectors_take_the_raw_path_and_round_trip() {
        let f = vec![1.5f64, -0.0, f64::MAX, f64::NAN];
        let (encoding, bytes) = encode_body(&f).unwrap();
        assert_eq!((encoding, bytes.len()), (RAW_F64S, 32));
        let back: Vec<f64> = decode_body(encoding, Body::Bytes(bytes)).unwrap();
        assert_eq!(back.len(), 4);
        assert!(back[..3] == f[..3] && back[1].is_sign_negative() && back[3].is_nan());
        let i = vec![i64::MIN, 0, 7];
        let (encoding, bytes) = encode_body(&i).unwrap();
        assert_eq!(
            decode_body::<Vec<i64>>(encoding, Body::Bytes(bytes)).unwrap(),
            i
        );
        let b = vec![0u8, 255, 9];
        let (encoding, bytes) = encode_body(&b).unwrap();
        assert_eq!(
            decode_body::<Vec<u8>>(encoding, Body::Bytes(bytes)).unwrap(),
            b
        );
        // Other types go through serde.
        let s = (3u8, "x".to_string());
        let (encoding, bytes) = encode_body(&s).unwrap();
        assert_eq!(encoding, CODEC_VERSION);
        assert_eq!(
            decode_body::<(u8, String)>(encoding, Body::Bytes(bytes)).unwrap(),
            s
        );
    }

    #[test]
    fn numbers_that_arrive_as_words_are_the_vector_itself() {
        let f = vec![1.5f64, -2.0, 3.25];
        let (encoding, bytes) = encode_body(&f).unwrap();
        let mut body = Body::for_encoding(encoding);
        // As a reader fills it: in pieces that do not fall on word boundaries.
        for piece in bytes.chunks(5) {
            body.reserve_exact(piece.len());
            body.extend_from_slice(piece);
        }
        assert_eq!(body.len(), 24);
        assert_eq!(body.as_bytes(), &bytes[..]);
        assert_eq!(decode_body::<Vec<f64>>(encoding, body).unwrap(), f);
        // Words of another type, or of a length that is no multiple of 8, are errors.
        let mut body = Body::for_encoding(RAW_I64S);
        body.extend_from_slice(&[1, 2, 3]);
        assert!(decode_body::<Vec<i64>>(RAW_I64S, body).is_err());
        let mut body = Body::for_encoding(RAW_F64S);
        body.extend_from_slice(&[0; 8]);
        assert!(decode_body::<Vec<i64>>(RAW_F64S, body).is_err());
    }

    #[test]
    fn raw_views_match_the_encoded_bytes() {
        let f = vec![1.5f64, -2.0];
        let (version, bytes) = raw_view(&f).unwrap();
        let (encoding, encoded) = encode_body(&f).unwrap();
        assert_eq!((encoding, &encoded[..]), (version, bytes));
        assert!(raw_view(&"text".to_string()).is_none());
    }

    #[test]
    fn raw_bytes_for_the_wrong_type_or_length_are_errors() {
        let (encoding, bytes) = encode_body(&vec![1.0f64]).unwrap();
        assert!(decode_body::<Vec<i64>>(encoding, Body::Bytes(bytes.clone())).is_err());
        assert!(decode_body::<String>(encoding, Body::Bytes(bytes)).is_err());
        assert!(decode_body::<Vec<f64>>(RAW_F64S, Body::Bytes(vec![1, 2, 3])).is_err());
        assert!(matches!(
            decode_body::<u8>(77, Body::Bytes(vec![1])),
            Err(CodecError::Version { found: 77, .. })
        ));
    }

    #[test]
    fn a_string_claiming_a_gigabyte_is_refused_before_allocating() {
        // A String whose varint length claims 1 GiB, followed by nothing.
        let mut bytes = vec![CODEC_VERSION, 252];
        bytes.extend_from_slice(&(1u32 << 30).to_le_bytes());
        assert!(matches!(
            decode::<String>(&bytes),
            Err(CodecError::Decode(_))
        ));
    }

    #[test]
    fn claims_of_any_length_are_errors_not_allocations() {
        // Each would abort the process if it were allocated: u64::MAX elements or bytes.
        for ty in ["bytes", "string", "vec", "map", "nested"] {
            let mut bytes = vec![CODEC_VERSION];
            if ty == "nested" {
                bytes.push(1); // Some(..)
            }
            bytes.push(253);
            bytes.extend_from_slice(&u64::MAX.to_le_bytes());
            let refused = match ty {
                "bytes" => decode::<Vec<u8>>(&bytes).is_err(),
                "string" => decode::<String>(&bytes).is_err(),
                "vec" => decode::<Vec<u64>>(&bytes).is_err(),
                "map" => decode::<BTreeMap<String, u64>>(&bytes).is_err(),
                _ => decode::<Option<(String, u8)>>(&bytes).is_err(),
            };
            assert!(refused, "{ty}");
        }
        // 2^60 as a string length, with a few bytes behind it.
        let mut bytes = vec![CODEC_VERSION, 253];
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        bytes.extend_from_slice(b"abc");
        assert!(decode::<(String, String)>(&bytes).is_err());
    }

    #[test]
    fn what_is_small_on_the_wire_decodes_however_large_in_memory() {
        // 9 million small u64s: about 9 MB encoded, 72 MB in memory.
        let v: Vec<u64> = (0..9_000_000u64).map(|i| i % 100).collect();
        let bytes = encode(&v).unwrap();
        assert!(bytes.len() < 10_000_000, "{}", bytes.len());
        assert_eq!(decode::<Vec<u64>>(&bytes).unwrap(), v);
    }

    proptest::proptest! {
        /// Anything that encodes decodes to itself.
        #[test]
        fn every_encoded_value_decodes(
            words in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..2000),
            text in ".{0,300}",
            map in proptest::collection::btree_map(".{0,8}", proptest::prelude::any::<(i32, bool)>(), 0..50),
            nested in proptest::collection::vec(proptest::option::of((proptest::prelude::any::<u8>(), ".{0,5}")), 0..50),
        ) {
            let value = (words, text, map, nested);
            let bytes = encode(&value).unwrap();
            proptest::prop_assert_eq!(decode::<(Vec<u64>, String, BTreeMap<String, (i32, bool)>, Vec<Option<(u8, String)>>)>(&bytes).unwrap(), value.clone());
            let (encoding, body) = encode_body(&value).unwrap();
            proptest::prop_assert_eq!(decode_body::<(Vec<u64>, String, BTreeMap<String, (i32, bool)>, Vec<Option<(u8, String)>>)>(encoding, Body::Bytes(body)).unwrap(), value);
        }

        /// Whatever bytes arrive, decoding returns a value or an error (it never panics or
        /// aborts on a claimed length).
        #[test]
        fn any_bytes_decode_or_fail(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = decode_body::<(String, Vec<u64>, BTreeMap<u8, String>)>(CODEC_VERSION, Body::Bytes(bytes.clone()));
            let _ = decode_body::<Vec<Vec<u8>>>(CODEC_VERSION, Body::Bytes(bytes));
        }
    }
}
