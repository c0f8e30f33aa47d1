//! Shared vectors: fixed-size vectors of atomic numbers that every place holding them sees.
//!
//! Racket's `make-shared-bytes`, `make-shared-fxvector` and `make-shared-flvector`. Sending one on a
//! local place channel shares it (the receiver sees the sender's writes and the other way round);
//! cloning one shares it too. Elements are read and written with relaxed atomics, so concurrent
//! access is never undefined behaviour; order between places comes from messages or
//! [`Place::wait`](crate::Place::wait), as in Racket.
//!
//! A shared vector sent to another node cannot stay shared: it arrives as a copy of its contents
//! at the time it was sent.

use std::fmt;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! shared_vector {
    (
        $(#[$doc:meta])*
        $name:ident, $elem:ty, $atomic:ty, $zero:expr,
        load: |$la:ident| $load:expr,
        store: |$sv:ident| $store:expr
    ) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            cells: Arc<[$atomic]>,
        }

        impl $name {
            /// A shared vector of `len` elements, each set to `value`.
            pub fn new(len: usize, value: $elem) -> Self {
                let cells: Arc<[$atomic]> = (0..len)
                    .map(|_| {
                        let $sv = value;
                        <$atomic>::new($store)
                    })
                    .collect();
                Self { cells }
            }

            /// A shared vector of `len` zeros.
            pub fn zeroed(len: usize) -> Self {
                Self::new(len, $zero)
            }

            /// A shared vector holding a copy of `values`.
            pub fn from_slice(values: &[$elem]) -> Self {
                let cells: Arc<[$atomic]> = values
                    .iter()
                    .map(|&$sv| <$atomic>::new($store))
                    .collect();
                Self { cells }
            }

            /// The number of elements, fixed at creation.
            pub fn len(&self) -> usize {
                self.cells.len()
            }

            /// Whether the vector has no elements.
            pub fn is_empty(&self) -> bool {
                self.cells.is_empty()
            }

            /// The element at `index`.
            ///
            /// # Panics
            ///
            /// If `index >= len()`.
            #[inline]
            pub fn get(&self, index: usize) -> $elem {
                let $la = self.cells[index].load(Ordering::Relaxed);
                $load
            }

            /// Sets the element at `index`.
            ///
            /// # Panics
            ///
            /// If `index >= len()`.
            #[inline]
            pub fn set(&self, index: usize, value: $elem) {
                let $sv = value;
                self.cells[index].store($store, Ordering::Relaxed);
            }

            /// Writes `values` into the elements from `start` on (one relaxed store each).
            ///
            /// # Panics
            ///
            /// If `start + values.len() > len()`.
            pub fn write_slice(&self, start: usize, values: &[$elem]) {
                let cells = &self.cells[start..start + values.len()];
                for (cell, &$sv) in cells.iter().zip(values) {
                    cell.store($store, Ordering::Relaxed);
                }
            }

            /// Reads the elements from `start` on into `out`.
            ///
            /// # Panics
            ///
            /// If `start + out.len() > len()`.
            pub fn read_slice(&self, start: usize, out: &mut [$elem]) {
                let cells = &self.cells[start..start + out.len()];
                for (cell, slot) in cells.iter().zip(out.iter_mut()) {
                    let $la = cell.load(Ordering::Relaxed);
                    *slot = $load;
                }
            }

            /// A copy of all elements.
            pub fn to_vec(&self) -> Vec<$elem> {
                (0..self.len()).map(|i| self.get(i)).collect()
            }

            /// Whether `self` and `other` are the same shared storage (not merely equal contents).
            pub fn shares_with(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.cells, &other.cells)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.to_vec()).finish()
            }
        }

        /// Encodes a snapshot of the contents (only used when the vector leaves this process).
        impl Serialize for $name {
            fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
                self.to_vec().serialize(serializer)
            }
        }

        /// Decodes into a new shared vector holding the encoded contents.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Vec::<$elem>::deserialize(deserializer).map(|v| Self::from_slice(&v))
            }
        }
    };
}

shared_vector! {
    /// A shared, fixed-size byte vector (Racket's `make-shared-bytes`).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = places::SharedBytes::zeroed(4);
    /// let alias = b.clone();
    /// alias.set(2, 7);
    /// assert_eq!(b.to_vec(), [0, 0, 7, 0]);
    /// ```
    SharedBytes, u8, AtomicU8, 0,
    load: |v| v,
    store: |v| v
}

shared_vector! {
    /// A shared, fixed-size vector of `i64` (Racket's `make-shared-fxvector`).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = places::SharedI64s::new(3, -1);
    /// v.fetch_add(0, 5);
    /// assert_eq!(v.to_vec(), [4, -1, -1]);
    /// ```
    SharedI64s, i64, AtomicI64, 0,
    load: |v| v,
    store: |v| v
}

shared_vector! {
    /// A shared, fixed-size vector of `i32`: half the memory of [`SharedI64s`] for data that
    /// fits, such as the keys and counts of an integer sort (Racket has no such vector; its
    /// fixnum vector is [`SharedI64s`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = places::SharedI32s::from_slice(&[3, 1]);
    /// v.fetch_add(1, 2);
    /// assert_eq!(v.to_vec(), [3, 3]);
    /// ```
    SharedI32s, i32, AtomicI32, 0,
    load: |v| v,
    store: |v| v
}

shared_vector! {
    /// A shared, fixed-size vector of `f64` (Racket's `make-shared-flvector`).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = places::SharedF64s::from_slice(&[0.5, 1.5]);
    /// v.set(1, 2.25);
    /// assert_eq!(v.to_vec(), [0.5, 2.25]);
    /// ```
    SharedF64s, f64, AtomicU64, 0.0,
    load: |bits| f64::from_bits(bits),
    store: |v| v.to_bits()
}

/// `fetch_add` for the integer vectors.
macro_rules! fetch_add {
    ($($name:ident: $elem:ty),*) => {$(
        impl $name {
            /// Adds `delta` to the element at `index`, wrapping, and returns the old value.
            /// Concurrent adds from several places all count.
            ///
            /// # Panics
            ///
            /// If `index >= len()`.
            pub fn fetch_add(&self, index: usize, delta: $elem) -> $elem {
                self.cells[index].fetch_add(delta, Ordering::Relaxed)
            }
        }
    )*};
}

fetch_add!(SharedBytes: u8, SharedI64s: i64, SharedI32s: i32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_storage_and_writes() {
        let a = SharedF64s::new(3, 1.0);
        let b = a.clone();
        b.set(0, -2.5);
        assert_eq!(a.get(0), -2.5);
        assert!(a.shares_with(&b));
        assert!(!a.shares_with(&SharedF64s::new(3, 1.0)));
    }

    #[test]
    fn slices_read_and_write_ranges() {
        let v = SharedF64s::zeroed(5);
        v.write_slice(1, &[1.0, 2.0, 3.0]);
        let mut out = [0.0; 4];
        v.read_slice(1, &mut out);
        assert_eq!(out, [1.0, 2.0, 3.0, 0.0]);
        assert_eq!(v.to_vec(), [0.0, 1.0, 2.0, 3.0, 0.0]);
    }

    #[test]
    #[should_panic]
    fn a_slice_past_the_end_panics() {
        SharedBytes::zeroed(2).write_slice(1, &[1, 2]);
    }

    #[test]
    fn concurrent_adds_all_count() {
        let v = SharedI64s::zeroed(1);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let v = v.clone();
                s.spawn(move || {
                    for _ in 0..10_000 {
                        v.fetch_add(0, 1);
                    }
                });
            }
        });
        assert_eq!(v.get(0), 40_000);
    }

    #[test]
    fn serde_carries_a_snapshot_into_new_storage() {
        let a = SharedBytes::from_slice(&[1, 2, 3]);
        let bytes = crate::codec::encode(&a).unwrap();
        let b: SharedBytes = crate::codec::decode(&bytes).unwrap();
        assert_eq!(b.to_vec(), [1, 2, 3]);
        assert!(!a.shares_with(&b));
    }

    #[test]
    #[should_panic(expected = "index out of bounds")]
    fn out_of_range_panics() {
        SharedBytes::zeroed(2).get(2);
    }
}
