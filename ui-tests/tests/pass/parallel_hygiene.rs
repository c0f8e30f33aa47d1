//! `fork_join!`, `cg_for!` and `cg_pipeline!` expand to absolute paths only: they compile without
//! the prelude, beside local items that shadow the names an expansion could otherwise pick up,
//! and with the `crate = ::places` override.
#![no_implicit_prelude]

// Shadows that a relative `Result`, `Ok`, `Vec`, `AsRef`, `Comm` or `core` in an expansion would
// pick up.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct AsRef;
#[allow(dead_code)]
struct Comm;
#[allow(dead_code)]
mod core {}
#[allow(dead_code)]
mod places {}

fn main() {
    // A parameter passed by name, one with a value, and `cg_for!` inside the body.
    let n = 900u64;
    let sums = ::places::fork_join!(3, cg, [n: u64, k: u64 = 2] -> u64, {
        let mut s = 0;
        ::places::cg_for!(cg, i in 0..n, { s += i * k; });
        s
    })
    .unwrap();
    ::std::assert_eq!(sums, [2 * 44850, 2 * 134850, 2 * 224850]);

    // `cg_pipeline!` inside the body: a running sum of the ranks.
    let prefix = ::places::fork_join!(4, cg, [] -> u32, {
        ::places::cg_pipeline!(cg, prev, 0u32, { prev + cg.id() as u32 })
    })
    .unwrap();
    ::std::assert_eq!(prefix, [0, 1, 3, 6]);

    // The same with `crate = ::places` on each form, and the default `()` result.
    let units = ::places::fork_join!(crate = ::places, 2, cg, [] , {
        let mut seen = 0u8;
        ::places::cg_for!(crate = ::places, cg, i in 0..=9u8, { seen += i; });
        let _ = ::places::cg_pipeline!(crate = ::places, cg, prev, seen, { prev + seen });
    })
    .unwrap();
    ::std::assert_eq!(units, [(), ()]);

    let doubled = ::places::fork_join!(crate = ::places, 2, cg, [v: u32 = 21] -> u32, {
        ::places::cg_pipeline!(crate = ::places, cg, prev, v, { prev * 2 })
    })
    .unwrap();
    ::std::assert_eq!(doubled, [42, 84]);
}
