//! The one boundary where messages become bytes.
//!
//! Local places never come here: their messages are moved. Remote delivery encodes once with
//! serde through bincode, behind a one-byte version so that the format can change without
//! misreading old peers.

use std::any::{Any, TypeId};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::CodecError;

/// The version byte written before every encoded message.
pub const CODEC_VERSION: u8 = 1;

/// The version byte of a `Vec<f64>` sent as raw little-endian bytes.
pub const RAW_F64S: u8 = 2;
/// The version byte of a `Vec<i64>` sent as raw little-endian bytes.
pub const RAW_I64S: u8 = 3;
/// The version byte of a `Vec<u8>` sent as it is.
pub const RAW_BYTES: u8 = 4;

/// Bytes left free at the front of [`encode_message`]'s output, for the network layer to write
/// its frame header into without copying the message.
pub const FRAME_HEADROOM: usize = 14;

/// The largest message the codec will decode (the network's largest frame): a length inside the
/// bytes that claims more is an error, not an allocation.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_MESSAGE_BYTES>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE_BYTES>()
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
/// not hold a `T` (including empty input, trailing bytes, and lengths that claim more than
/// [`MAX_MESSAGE_BYTES`] or more than the input holds).
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
    let (value, read) = bincode::serde::decode_from_slice(body, config())?;
    if read != body.len() {
        return Err(CodecError::Trailing {
            extra: body.len() - read,
        });
    }
    Ok(value)
}

/// Encodes a message for another node, after [`FRAME_HEADROOM`] free bytes.
///
/// `Vec<f64>`, `Vec<i64>` and `Vec<u8>` skip serde and go as raw little-endian bytes (one copy,
/// no per-element work); everything else is encoded as by [`encode`].
///
/// # Errors
///
/// [`CodecError::Encode`] when serde refuses the value.
pub fn encode_message<T: Serialize + 'static>(value: &T) -> Result<Vec<u8>, CodecError> {
    let any = value as &dyn Any;
    let raw = |version: u8, len: usize| {
        let mut out = Vec::with_capacity(FRAME_HEADROOM + 1 + len);
        out.resize(FRAME_HEADROOM, 0);
        out.push(version);
        out
    };
    if let Some(v) = any.downcast_ref::<Vec<f64>>() {
        let mut out = raw(RAW_F64S, v.len() * 8);
        put_words(&mut out, v.iter().map(|x| x.to_le_bytes()));
        return Ok(out);
    }
    if let Some(v) = any.downcast_ref::<Vec<i64>>() {
        let mut out = raw(RAW_I64S, v.len() * 8);
        put_words(&mut out, v.iter().map(|x| x.to_le_bytes()));
        return Ok(out);
    }
    if let Some(v) = any.downcast_ref::<Vec<u8>>() {
        let mut out = raw(RAW_BYTES, v.len());
        out.extend_from_slice(v);
        return Ok(out);
    }
    let mut out = vec![0u8; FRAME_HEADROOM];
    out.push(CODEC_VERSION);
    bincode::serde::encode_into_std_write(value, &mut out, config())?;
    Ok(out)
}

/// The raw little-endian bytes of a `Vec<f64>`, `Vec<i64>` or `Vec<u8>` as they are in memory,
/// with the version byte that marks them, so that the network layer can write them without
/// copying; `None` for every other type (and for the numeric ones on big-endian machines, whose
/// memory is not in wire order).
pub fn raw_view<T: 'static>(value: &T) -> Option<(u8, &[u8])> {
    let any = value as &dyn Any;
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

fn put_words(out: &mut Vec<u8>, words: impl ExactSizeIterator<Item = [u8; 8]>) {
    let start = out.len();
    out.resize(start + words.len() * 8, 0);
    for (dst, w) in out[start..].chunks_exact_mut(8).zip(words) {
        dst.copy_from_slice(&w);
    }
}

/// Decodes what [`encode_message`] wrote (without its headroom).
///
/// # Errors
///
/// The errors of [`decode`], and [`CodecError::Decode`] for raw bytes of the wrong length or of
/// another type than `T`.
pub fn decode_message<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, CodecError> {
    let Some((&version, body)) = bytes.split_first() else {
        return decode(bytes);
    };
    let boxed: Box<dyn Any> = match version {
        RAW_F64S if TypeId::of::<T>() == TypeId::of::<Vec<f64>>() => {
            Box::new(words(body)?.map(f64::from_le_bytes).collect::<Vec<f64>>())
        }
        RAW_I64S if TypeId::of::<T>() == TypeId::of::<Vec<i64>>() => {
            Box::new(words(body)?.map(i64::from_le_bytes).collect::<Vec<i64>>())
        }
        RAW_BYTES if TypeId::of::<T>() == TypeId::of::<Vec<u8>>() => Box::new(body.to_vec()),
        RAW_F64S | RAW_I64S | RAW_BYTES => return Err(raw_error("raw numbers for another type")),
        _ => return decode(bytes),
    };
    boxed
        .downcast::<T>()
        .map(|b| *b)
        .map_err(|_| raw_error("raw numbers for another type"))
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
            Err(CodecError::Trailing { extra: 1 })
        ));
    }

    #[test]
    fn numeric_vectors_take_the_raw_path_and_round_trip() {
        let f = vec![1.5f64, -0.0, f64::MAX, f64::NAN];
        let bytes = encode_message(&f).unwrap();
        assert_eq!(bytes.len(), FRAME_HEADROOM + 1 + 32);
        assert_eq!(bytes[FRAME_HEADROOM], RAW_F64S);
        let back: Vec<f64> = decode_message(&bytes[FRAME_HEADROOM..]).unwrap();
        assert_eq!(back.len(), 4);
        assert!(back[..3] == f[..3] && back[1].is_sign_negative() && back[3].is_nan());
        let i = vec![i64::MIN, 0, 7];
        let bytes = encode_message(&i).unwrap();
        assert_eq!(
            decode_message::<Vec<i64>>(&bytes[FRAME_HEADROOM..]).unwrap(),
            i
        );
        let b = vec![0u8, 255, 9];
        let bytes = encode_message(&b).unwrap();
        assert_eq!(
            decode_message::<Vec<u8>>(&bytes[FRAME_HEADROOM..]).unwrap(),
            b
        );
        // Other types go through serde, with the same headroom.
        let s = (3u8, "x".to_string());
        let bytes = encode_message(&s).unwrap();
        assert_eq!(bytes[FRAME_HEADROOM], CODEC_VERSION);
        assert_eq!(
            decode_message::<(u8, String)>(&bytes[FRAME_HEADROOM..]).unwrap(),
            s
        );
    }

    #[test]
    fn raw_views_match_the_encoded_bytes() {
        let f = vec![1.5f64, -2.0];
        let (version, bytes) = raw_view(&f).unwrap();
        let encoded = encode_message(&f).unwrap();
        assert_eq!(encoded[FRAME_HEADROOM], version);
        assert_eq!(&encoded[FRAME_HEADROOM + 1..], bytes);
        assert!(raw_view(&"text".to_string()).is_none());
    }

    #[test]
    fn raw_bytes_for_the_wrong_type_or_length_are_errors() {
        let bytes = encode_message(&vec![1.0f64]).unwrap();
        assert!(decode_message::<Vec<i64>>(&bytes[FRAME_HEADROOM..]).is_err());
        assert!(decode_message::<String>(&bytes[FRAME_HEADROOM..]).is_err());
        assert!(decode_message::<Vec<f64>>(&[RAW_F64S, 1, 2, 3]).is_err());
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
    fn a_claimed_huge_length_is_an_error_not_an_allocation() {
        // A Vec<u8> whose varint length claims u64::MAX elements, followed by nothing.
        let mut bytes = vec![CODEC_VERSION, 253];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode::<Vec<u8>>(&bytes),
            Err(CodecError::Decode(_))
        ));
    }
}
