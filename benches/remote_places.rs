//! Remote places against raw TCP on loopback, side by side in one run.
//!
//! ```text
//! cargo bench --bench remote_places
//! ```
//!
//! - an 8-byte message round trip to a place on a local node vs a blocking-socket TCP ping-pong;
//! - an 8 MB `Vec<f64>` sent to a remote place and back vs the same bytes echoed over raw TCP;
//! - the time from `create_place_node("localhost", ..)` to the first reply of a place on it.
//!
//! This bench binary is its own node executable (`places::init()` first thing in `main`).
//! `PLACES_BENCH_QUICK=1` runs fewer iterations.

use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemotePlace};

/// Echoes numbers.
#[place]
pub fn echo_u64(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

/// Echoes float vectors.
#[place]
pub fn echo_floats(ch: PlaceChannel<Vec<f64>>) {
    while let Ok(v) = ch.get() {
        if ch.put(v).is_err() {
            return;
        }
    }
}

#[path = "common/raw_tcp.rs"]
mod raw_tcp;

#[path = "common/stats.rs"]
mod stats;
use stats::{median, us};

fn main() {
    places::init().expect("registry");
    let quick = std::env::var_os("PLACES_BENCH_QUICK").is_some();
    let (samples, rounds, big_rounds) = if quick { (3, 200, 2) } else { (9, 5_000, 10) };
    println!("remote places bench: {samples} samples, medians");

    let node = create_place_node("localhost", NodeOptions::new()).expect("node");
    let small: RemotePlace<u64> = node
        .dynamic_place(module_path!(), "echo_u64")
        .expect("spawn");
    let floats: RemotePlace<Vec<f64>> = node
        .dynamic_place(module_path!(), "echo_floats")
        .expect("spawn");
    let raw8 = raw_tcp::echo_server(8);
    let big_len = 1 << 20; // 1 Mi f64 = 8 MB
    let raw_big = raw_tcp::echo_server(big_len * 8);
    let payload: Vec<f64> = (0..big_len).map(|i| i as f64 * 0.5).collect();

    let (mut p8, mut r8, mut pbig, mut rbig) = (vec![], vec![], vec![], vec![]);
    for _ in 0..samples {
        let _ = small.put_get(0);
        let start = Instant::now();
        for i in 0..rounds {
            let back = small.put_get(i as u64).expect("round trip");
            assert_eq!(back, i as u64);
        }
        p8.push(start.elapsed() / rounds);
        r8.push(raw_tcp::round_trips(raw8, 8, rounds));

        // The vector that comes back is the one sent next, as the raw echo reuses its buffer.
        let mut v = payload.clone();
        let start = Instant::now();
        for _ in 0..big_rounds {
            v = floats.put_get(v).expect("big round trip");
        }
        assert_eq!(v, payload);
        pbig.push(start.elapsed() / big_rounds);
        rbig.push(raw_tcp::round_trips(raw_big, big_len * 8, big_rounds));
    }
    let (p8, r8, pbig, rbig) = (median(p8), median(r8), median(pbig), median(rbig));

    let mut startup = Vec::new();
    for _ in 0..samples.min(5) {
        let start = Instant::now();
        let n = create_place_node("localhost", NodeOptions::new()).expect("node");
        let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo_u64").expect("spawn");
        p.put_get(1).expect("first reply");
        startup.push(start.elapsed());
    }
    let startup = median(startup);

    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "{:<52} {:>10}  vs raw TCP {:>10}: {:.2}x (target <= 1.0x)",
        "8-byte round trip to a remote place",
        us(p8),
        us(r8),
        r(p8, r8)
    );
    let mb = (big_len * 8) as f64 / 1e6;
    println!(
        "{:<52} {:>10}  vs raw TCP {:>10}: {:.2}x the time, {:.0} vs {:.0} MB/s (target >= 0.5x raw throughput)",
        "8 MB Vec<f64> to a remote place and back",
        format!("{:.2} ms", pbig.as_secs_f64() * 1e3),
        format!("{:.2} ms", rbig.as_secs_f64() * 1e3),
        r(pbig, rbig),
        2.0 * mb / pbig.as_secs_f64(),
        2.0 * mb / rbig.as_secs_f64()
    );
    println!(
        "{:<52} {:>10}  (target < 50 ms)",
        "create_place_node to the first reply",
        format!("{:.1} ms", startup.as_secs_f64() * 1e3)
    );
}
