//! The one boundary where messages become bytes.
//!
//! Local places never come here: their messages are moved. Remote delivery encodes once with
//! serde through bincode, behind a one-byte version so that the format can change without
//! misreading old peers.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::CodecError;

/// The version byte written before every encoded message.
pub const CODEC_VERSION: u8 = 1;

/// The largest message the codec will decode: a length inside the bytes that claims more is an
/// error, not an allocation.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

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
