//! Local places against their baselines, measured side by side in one run.
//!
//! ```text
//! cargo bench --bench local_places
//! ```
//!
//! Prints, for each pair, the median time per operation over several samples and the ratio to
//! the baseline measured in the same run:
//! - a round trip between two places over a place channel vs a crossbeam-channel ping-pong between
//!   two plain threads (and std's mpsc, which parks on every message, for reference);
//! - `dynamic_place` + `wait` of an empty entry (and `Place::spawn` + `wait`) vs
//!   `std::thread::spawn` + `join`.
//!
//! `PLACES_BENCH_QUICK=1` runs fewer iterations (for a smoke run).

use std::hint::black_box;
use std::time::{Duration, Instant};

use places::prelude::*;

#[path = "common/stats.rs"]
mod stats;
use stats::median;

/// Answers every number with itself, until the direct channel closes.
#[place]
pub fn echo_peer(ch: PlaceChannel<(), PlaceChannel<u64>>) {
    let Ok(direct) = ch.get() else { return };
    while let Ok(n) = direct.get() {
        if direct.put(n).is_err() {
            return;
        }
    }
}

/// Pings `echo_peer` over the direct channel `rounds` times and reports the elapsed nanoseconds.
#[place]
pub fn pinger(ch: PlaceChannel<u64, (PlaceChannel<u64>, u64)>) {
    let Ok((direct, rounds)) = ch.get() else {
        return;
    };
    // Warm up both threads before timing.
    for i in 0..1000 {
        let _ = direct.put_get(i);
    }
    let start = Instant::now();
    for i in 0..rounds {
        let back = direct.put_get(i).unwrap_or(u64::MAX);
        debug_assert_eq!(back, i);
    }
    let _ = ch.put(start.elapsed().as_nanos() as u64);
}

/// Does nothing: the cost of starting and ending a place.
#[place]
pub fn empty(_ch: PlaceChannel<()>) {}

fn places_round_trip(rounds: u64) -> Duration {
    let echo: Place<PlaceChannel<u64>, ()> = Place::spawn(echo_peer).expect("spawn echo");
    let ping: Place<(PlaceChannel<u64>, u64), u64> = Place::spawn(pinger).expect("spawn pinger");
    let (a, b) = place_channel::<u64, u64>();
    echo.put(b).expect("send channel");
    ping.put((a, rounds)).expect("send channel");
    let nanos = ping.get().expect("pinger result");
    ping.wait();
    echo.wait();
    Duration::from_nanos(nanos)
}

fn crossbeam_round_trip(rounds: u64) -> Duration {
    let (to_echo, echo_rx) = crossbeam_channel::unbounded::<u64>();
    let (to_ping, ping_rx) = crossbeam_channel::unbounded::<u64>();
    let echo = std::thread::spawn(move || {
        while let Ok(n) = echo_rx.recv() {
            if to_ping.send(n).is_err() {
                return;
            }
        }
    });
    let pinger = std::thread::spawn(move || {
        for i in 0..1000 {
            to_echo.send(i).ok();
            ping_rx.recv().ok();
        }
        let start = Instant::now();
        for i in 0..rounds {
            to_echo.send(i).ok();
            black_box(ping_rx.recv().ok());
        }
        start.elapsed()
    });
    let d = pinger.join().expect("pinger thread");
    echo.join().expect("echo thread");
    d
}

fn std_mpsc_round_trip(rounds: u64) -> Duration {
    use std::sync::mpsc::channel;
    let (to_echo, echo_rx) = channel::<u64>();
    let (to_ping, ping_rx) = channel::<u64>();
    let echo = std::thread::spawn(move || {
        while let Ok(n) = echo_rx.recv() {
            if to_ping.send(n).is_err() {
                return;
            }
        }
    });
    let pinger = std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..rounds {
            to_echo.send(i).ok();
            black_box(ping_rx.recv().ok());
        }
        start.elapsed()
    });
    let d = pinger.join().expect("pinger thread");
    echo.join().expect("echo thread");
    d
}

fn dynamic_place_wait(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let p: Place<()> = dynamic_place(module_path!(), "empty").expect("spawn");
        black_box(p.wait());
    }
    start.elapsed()
}

fn place_spawn_wait(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let p: Place<()> = Place::spawn(empty).expect("spawn");
        black_box(p.wait());
    }
    start.elapsed()
}

fn thread_spawn_join(n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let t = std::thread::spawn(|| black_box(0));
        black_box(t.join().ok());
    }
    start.elapsed()
}

/// Median time per operation over `samples` runs of `iters` operations.
fn median_per_op(samples: usize, iters: u64, mut f: impl FnMut(u64) -> Duration) -> Duration {
    median((0..samples).map(|_| f(iters) / iters as u32).collect())
}

fn show(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns >= 10_000 {
        format!("{:.1} us", ns as f64 / 1000.0)
    } else {
        format!("{ns} ns")
    }
}

struct Row {
    name: &'static str,
    time: Duration,
    baseline: Option<(&'static str, Duration)>,
    target: &'static str,
}

fn main() {
    places::init().expect("registry");
    let quick = std::env::var_os("PLACES_BENCH_QUICK").is_some();
    let (samples, rounds, spawns) = if quick {
        (3, 2_000, 200)
    } else {
        (11, 100_000, 2_000)
    };
    println!(
        "local places bench: {} cores, {samples} samples, median per operation",
        places::processor_count()
    );

    // Interleave the contenders sample by sample so that noise on this shared machine hits both.
    let mut pl = Vec::new();
    let mut cb = Vec::new();
    let mut sm = Vec::new();
    for _ in 0..samples {
        pl.push(places_round_trip(rounds) / rounds as u32);
        cb.push(crossbeam_round_trip(rounds) / rounds as u32);
        sm.push(std_mpsc_round_trip(rounds / 20) / (rounds / 20) as u32);
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (pl, cb, sm) = (med(&mut pl), med(&mut cb), med(&mut sm));

    let dp = median_per_op(samples, spawns, dynamic_place_wait);
    let ps = median_per_op(samples, spawns, place_spawn_wait);
    let th = median_per_op(samples, spawns, thread_spawn_join);

    let rows = [
        Row {
            name: "place channel round trip (place <-> place)",
            time: pl,
            baseline: Some(("crossbeam ping-pong", cb)),
            target: "<= 1.5x",
        },
        Row {
            name: "std mpsc ping-pong (reference)",
            time: sm,
            baseline: Some(("crossbeam ping-pong", cb)),
            target: "",
        },
        Row {
            name: "dynamic_place + wait (empty entry)",
            time: dp,
            baseline: Some(("thread spawn + join", th)),
            target: "<= 2x",
        },
        Row {
            name: "Place::spawn + wait (empty entry)",
            time: ps,
            baseline: Some(("thread spawn + join", th)),
            target: "<= 2x",
        },
        Row {
            name: "crossbeam ping-pong (baseline)",
            time: cb,
            baseline: None,
            target: "",
        },
        Row {
            name: "thread spawn + join (baseline)",
            time: th,
            baseline: None,
            target: "",
        },
    ];
    println!(
        "{:<46} {:>10}  {:>8}  {:<24} target",
        "operation", "median", "ratio", "vs"
    );
    for r in rows {
        let (ratio, vs) = match r.baseline {
            Some((name, b)) => (
                format!("{:.2}x", r.time.as_secs_f64() / b.as_secs_f64()),
                name,
            ),
            None => (String::new(), ""),
        };
        println!(
            "{:<46} {:>10}  {:>8}  {:<24} {}",
            r.name,
            show(r.time),
            ratio,
            vs,
            r.target
        );
    }
}
