//! Shared vectors sent to places are shared, not copied: the dissertation's `zero!` example and
//! concurrent updates from several places.

use places::prelude::*;

/// Racket's `zero!`: receives a vector and fills it with zeros.
#[place]
fn zero(ch: PlaceChannel<(), SharedI64s>) {
    if let Ok(v) = ch.get() {
        for i in 0..v.len() {
            v.set(i, 0);
        }
    }
}

#[place]
fn add_ones(ch: PlaceChannel<(), SharedI64s>) {
    if let Ok(v) = ch.get() {
        for _ in 0..10_000 {
            v.fetch_add(0, 1);
        }
    }
}

#[place]
fn scale(ch: PlaceChannel<(), (SharedF64s, SharedBytes)>) {
    if let Ok((f, b)) = ch.get() {
        for i in 0..f.len() {
            f.set(i, f.get(i) * 2.0);
            b.set(i, i as u8 + 100);
        }
    }
}

#[test]
fn a_place_writes_a_vector_its_creator_reads() {
    let v = SharedI64s::new(1000, 7);
    let p: Place<SharedI64s, ()> = Place::spawn(zero).unwrap();
    p.put(v.clone()).unwrap();
    assert_eq!(p.wait(), 0);
    assert!(v.to_vec().iter().all(|&x| x == 0));
}

#[test]
fn updates_from_several_places_all_count() {
    let v = SharedI64s::zeroed(1);
    let ps: Vec<Place<SharedI64s, ()>> = (0..4).map(|_| Place::spawn(add_ones).unwrap()).collect();
    for p in &ps {
        p.put(v.clone()).unwrap();
    }
    for p in &ps {
        assert_eq!(p.wait(), 0);
    }
    assert_eq!(v.get(0), 40_000);
}

#[test]
fn float_and_byte_vectors_are_shared_too() {
    let f = SharedF64s::from_slice(&[0.5, 1.5, -3.0]);
    let b = SharedBytes::zeroed(3);
    let p: Place<(SharedF64s, SharedBytes), ()> = Place::spawn(scale).unwrap();
    p.put((f.clone(), b.clone())).unwrap();
    assert_eq!(p.wait(), 0);
    assert_eq!(f.to_vec(), [1.0, 3.0, -6.0]);
    assert_eq!(b.to_vec(), [100, 101, 102]);
}

#[test]
fn processor_count_matches_the_machine() {
    let n = places::processor_count();
    assert!(n >= 1);
    assert_eq!(
        n,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}
