//! Medians and time formats shared by the benches (each bench uses the part it prints).
#![allow(dead_code)]

use std::time::Duration;

/// The median of `samples` (the upper one of the middle two for an even count).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `d` in microseconds, one decimal.
pub fn us(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

/// `d` in milliseconds, two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
