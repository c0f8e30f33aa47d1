//! The paths a `codec::Packed` can take, from a review: a group of `Comm::invitations`
//! (an encoded link), a node link (as a message and nested in one), malformed input, and a
//! body whose words do not hold its length.

use places::codec::{self, Packed};
use places::Comm;

/// A `Packed` sent between members of a `Comm::invitations` group (EncodedLink) must arrive
/// holding what was packed.
#[test]
fn a_packed_vector_crosses_an_encoded_link() {
    let mut g: Vec<Comm> = Comm::invitations(2).into_iter().map(|i| i.join()).collect();
    let b = g.pop().unwrap();
    let a = g.pop().unwrap();
    a.send(1, Packed::pack(vec![3i64, 1, 2]).unwrap()).unwrap();
    let got: Packed = b.recv(0).unwrap();
    eprintln!("arrived: encoding {} len {}", got.encoding(), got.len());
    assert_eq!(got.unpack::<Vec<i64>>().unwrap(), [3, 1, 2]);
}

#[test]
fn a_packed_tuple_crosses_an_encoded_link() {
    let mut g: Vec<Comm> = Comm::invitations(2).into_iter().map(|i| i.join()).collect();
    let b = g.pop().unwrap();
    let a = g.pop().unwrap();
    a.send(1, Packed::pack(("a".to_string(), 7u8)).unwrap())
        .unwrap();
    let got: Packed = b.recv(0).unwrap();
    eprintln!("arrived: encoding {} len {}", got.encoding(), got.len());
    assert_eq!(got.unpack::<(String, u8)>().unwrap(), ("a".to_string(), 7));
}

/// Malformed packed input is an error, never a panic.
#[test]
fn malformed_packed_input_is_an_error() {
    let p: Packed = codec::decode_with_raw(&[0xee, 1, 2, 3]).unwrap();
    assert!(p.unpack::<Vec<i64>>().is_err());
    let p: Packed = codec::decode_with_raw(&[codec::RAW_I64S, 1, 2, 3, 4, 5]).unwrap();
    assert_eq!(p.len(), 5);
    assert!(p.unpack::<Vec<i64>>().is_err());
    // Nested, serde form: (encoding, bytes).
    let nested = codec::encode(&(codec::RAW_I64S, serde_bytes_like(&[1, 2, 3]))).unwrap();
    let p: Packed = codec::decode(&nested).unwrap();
    assert!(p.unpack::<Vec<i64>>().is_err());
    let nested = codec::encode(&(codec::RAW_F64S, serde_bytes_like(&[0; 16]))).unwrap();
    let p: Packed = codec::decode(&nested).unwrap();
    assert_eq!(p.unpack::<Vec<f64>>().unwrap(), [0.0, 0.0]);
}

fn serde_bytes_like(b: &[u8]) -> Vec<u8> {
    // bincode writes a Vec<u8> and serde_bytes' bytes the same way (length, then bytes).
    b.to_vec()
}

/// The same, where the wrong reading decodes: the receiver gets a different vector, no error.
#[test]
fn a_packed_byte_vector_crosses_an_encoded_link_unchanged() {
    let mut g: Vec<Comm> = Comm::invitations(2).into_iter().map(|i| i.join()).collect();
    let b = g.pop().unwrap();
    let a = g.pop().unwrap();
    a.send(1, Packed::pack(vec![7u8, 8, 9]).unwrap()).unwrap();
    let got: Packed = b.recv(0).unwrap();
    assert_eq!(got.unpack::<Vec<u8>>().unwrap(), [7, 8, 9]);
}

places::node_test_entry!();

/// Reverses the `Vec<i64>` in each packed value, and echoes a nested one.
#[places::place]
pub fn packed_echo(ch: places::PlaceChannel<Packed, Packed>) {
    while let Ok(p) = ch.get() {
        let out = match p.unpack::<Vec<i64>>() {
            Ok(mut v) => {
                v.reverse();
                Packed::pack(v).unwrap()
            }
            Err(e) => Packed::pack(format!("error: {e}")).unwrap(),
        };
        if ch.put(out).is_err() {
            return;
        }
    }
}

/// Sends every `(k, packed)` back as `(k + 1, packed)`.
#[places::place]
pub fn nested_echo(ch: places::PlaceChannel<(u8, Packed), (u8, Packed)>) {
    while let Ok((k, p)) = ch.get() {
        if ch.put((k + 1, p)).is_err() {
            return;
        }
    }
}

#[test]
fn packed_values_cross_a_node_link_top_level_and_nested() {
    let n = places::create_place_node("localhost", places::NodeOptions::for_this_test_binary())
        .expect("start a local node");
    let p: places::RemotePlace<Packed, Packed> =
        n.dynamic_place(module_path!(), "packed_echo").unwrap();
    p.put(Packed::pack(vec![1i64, 2, 3]).unwrap()).unwrap();
    let back = p.get_timeout(std::time::Duration::from_secs(30)).unwrap();
    assert_eq!(back.unpack::<Vec<i64>>().unwrap(), [3, 2, 1]);
    // A packed value of another type: the place's unpack fails, as an error.
    p.put(Packed::pack(vec![0.5f64]).unwrap()).unwrap();
    let back = p.get_timeout(std::time::Duration::from_secs(30)).unwrap();
    println!("{:?}", back.unpack::<String>());
    let q: places::RemotePlace<(u8, Packed), (u8, Packed)> =
        n.dynamic_place(module_path!(), "nested_echo").unwrap();
    q.put((1, Packed::pack(vec![9i64, 8]).unwrap())).unwrap();
    let (k, back) = q.get_timeout(std::time::Duration::from_secs(30)).unwrap();
    assert_eq!(k, 2);
    assert_eq!(back.unpack::<Vec<i64>>().unwrap(), [9, 8]);
    q.put((1, Packed::pack(vec![1u8, 2, 3]).unwrap())).unwrap();
    let (_, back) = q.get_timeout(std::time::Duration::from_secs(30)).unwrap();
    assert_eq!(back.unpack::<Vec<u8>>().unwrap(), [1, 2, 3]);
}

/// `Body::Words` has public fields: a body whose `len` disagrees with its words is decoded by
/// its words (the `len` ignored), and its bytes panic. Safe, but inconsistent.
#[test]
fn an_inconsistent_words_body_is_an_error_not_a_panic() {
    let v = codec::decode_body::<Vec<i64>>(
        codec::RAW_I64S,
        codec::Body::Words {
            words: vec![1, 2, 3],
            len: 8,
        },
    );
    assert!(v.is_err(), "{v:?}");
    let b = codec::Body::Words {
        words: vec![],
        len: 16,
    };
    assert!(b.as_bytes().is_empty());
}
