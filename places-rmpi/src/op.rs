//! Reduction operators for [`reduce`](crate::Collectives::reduce),
//! [`allreduce`](crate::Collectives::allreduce) and the scans: plain functions, so
//! `cg.allreduce(op::sum, x)` reads as MPI's `MPI_SUM` does.
//!
//! The elementwise ones combine two vectors of equal length into the left one's buffer: a
//! reduction of `Vec<f64>`s allocates nothing per element and nothing per step.

use std::ops::{Add, Mul};

/// `a + b`.
pub fn sum<T: Add<Output = T>>(a: T, b: T) -> T {
    a + b
}

/// `a * b`.
pub fn product<T: Mul<Output = T>>(a: T, b: T) -> T {
    a * b
}

/// The smaller (the left one of equals). For floats use [`min_f64`].
pub fn min<T: Ord>(a: T, b: T) -> T {
    std::cmp::min(a, b)
}

/// The larger (the right one of equals). For floats use [`max_f64`].
pub fn max<T: Ord>(a: T, b: T) -> T {
    std::cmp::max(a, b)
}

/// [`f64::min`].
pub fn min_f64(a: f64, b: f64) -> f64 {
    a.min(b)
}

/// [`f64::max`].
pub fn max_f64(a: f64, b: f64) -> f64 {
    a.max(b)
}

/// Elementwise `a[i] + b[i]`, into `a`'s buffer.
///
/// # Panics
///
/// If the lengths differ: members of a reduction must contribute vectors of one length.
pub fn elementwise_sum<T: Copy + Add<Output = T>>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
    elementwise(a, b, |x, y| x + y)
}

/// Elementwise `max(a[i], b[i])` (by `PartialOrd`; for floats a NaN on the left stays), into
/// `a`'s buffer.
///
/// # Panics
///
/// If the lengths differ.
pub fn elementwise_max<T: Copy + PartialOrd>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
    elementwise(a, b, |x, y| if y > x { y } else { x })
}

/// Elementwise `min(a[i], b[i])` (by `PartialOrd`), into `a`'s buffer.
///
/// # Panics
///
/// If the lengths differ.
pub fn elementwise_min<T: Copy + PartialOrd>(a: Vec<T>, b: Vec<T>) -> Vec<T> {
    elementwise(a, b, |x, y| if y < x { y } else { x })
}

/// Elementwise `f(a[i], b[i])`, into `a`'s buffer.
///
/// # Panics
///
/// If the lengths differ.
pub fn elementwise<T: Copy>(mut a: Vec<T>, b: Vec<T>, f: impl Fn(T, T) -> T) -> Vec<T> {
    assert_eq!(
        a.len(),
        b.len(),
        "an elementwise reduction of vectors of lengths {} and {}",
        a.len(),
        b.len()
    );
    for (x, y) in a.iter_mut().zip(b) {
        *x = f(*x, y);
    }
    a
}
