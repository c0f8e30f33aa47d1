//! NPB's pseudo-random generator: `x_{k+1} = a x_k mod 2^46`, returned as `x_{k+1} 2^-46`.
//!
//! NPB computes it in doubles split into 23-bit halves, which is exact; the same numbers come from
//! one wrapping 64-bit multiply (2^46 divides 2^64), so this is bit-for-bit NPB's sequence.

/// NPB's multiplier, 5^13.
pub const A: u64 = 1_220_703_125;
/// NPB's default seed.
pub const SEED: u64 = 314_159_265;

const MASK: u64 = (1 << 46) - 1;
const R46: f64 = 1.0 / (1u64 << 46) as f64;

/// NPB's `randlc` state: the last `x`.
#[derive(Debug, Clone, Copy)]
pub struct Randlc {
    x: u64,
}

impl Randlc {
    /// A generator at `seed` (NPB passes the seed as a double holding an integer below 2^46).
    pub fn new(seed: u64) -> Self {
        Self { x: seed & MASK }
    }

    /// The next number in (0, 1): `randlc(&x, a)`.
    pub fn next_with(&mut self, a: u64) -> f64 {
        self.x = self.x.wrapping_mul(a) & MASK;
        self.x as f64 * R46
    }

    /// The next number with NPB's multiplier.
    pub fn next(&mut self) -> f64 {
        self.next_with(A)
    }
}
