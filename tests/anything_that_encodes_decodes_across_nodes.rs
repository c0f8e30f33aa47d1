//! Anything the sending codec accepts arrives, whatever its size in memory or on the wire
//! (fragments included), and comes back equal.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};
use proptest::prelude::*;

places::node_test_entry!();

/// A message of many shapes.
#[places::message]
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Nothing.
    Empty,
    /// Text.
    Word(String),
    /// Numbers, small and large.
    Numbers(Vec<u64>),
    /// Floats (through serde here, inside an enum).
    Floats(Vec<f64>),
    /// Shapes inside shapes, and a map.
    Nested(Vec<Shape>, BTreeMap<String, i64>),
}

/// Sends back what it gets.
#[place]
pub fn mirror(ch: PlaceChannel<Shape>) {
    while let Ok(s) = ch.get() {
        if ch.put(s).is_err() {
            return;
        }
    }
}

/// One node and one mirror for every case.
fn mirrored(shape: Shape) -> Shape {
    static PLACE: OnceLock<(RemoteNode, Mutex<RemotePlace<Shape>>)> = OnceLock::new();
    let (_, p) = PLACE.get_or_init(|| {
        let n = create_place_node("localhost", NodeOptions::for_this_test_binary()).unwrap();
        let p = n.dynamic_place(module_path!(), "mirror").unwrap();
        (n, Mutex::new(p))
    });
    let p = p.lock().unwrap();
    p.put(shape).unwrap();
    p.get_timeout(Duration::from_secs(120)).unwrap()
}

fn shapes() -> impl Strategy<Value = Shape> {
    let leaf = prop_oneof![
        Just(Shape::Empty),
        ".{0,200}".prop_map(Shape::Word),
        proptest::collection::vec(any::<u64>(), 0..300).prop_map(Shape::Numbers),
        proptest::collection::vec(any::<f64>().prop_filter("no NaN", |x| !x.is_nan()), 0..100)
            .prop_map(Shape::Floats),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        (
            proptest::collection::vec(inner, 0..6),
            proptest::collection::btree_map(".{0,10}", any::<i64>(), 0..10),
        )
            .prop_map(|(v, m)| Shape::Nested(v, m))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_shape_crosses_and_comes_back_equal(shape in shapes()) {
        prop_assert_eq!(mirrored(shape.clone()), shape);
    }
}

#[test]
fn large_values_cross_in_fragments_and_come_back_equal() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Three million numbers of every size: varints from 1 to 10 bytes, many fragments.
    let numbers: Vec<u64> = (0..3_000_000).map(|i| next() >> (i % 64)).collect();
    let text: String = (0..5_000_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let map: BTreeMap<String, i64> = (0..100_000)
        .map(|i| (format!("key{i}"), i as i64 - 50_000))
        .collect();
    let big = Shape::Nested(
        vec![
            Shape::Numbers(numbers),
            Shape::Word(text),
            Shape::Floats(vec![0.5; 1 << 20]),
        ],
        map,
    );
    assert!(mirrored(big.clone()) == big);
}
