//! Fork-join against the sequential loop and rayon, side by side in one run.
//!
//! ```text
//! cargo bench --bench parallel
//! ```
//!
//! - the Mandelbrot image at 2000x2000 (dissertation Figure 3.4's kernel): sequential loop,
//!   `fork_join!` + `cg_for!` on 1 place and on `processor_count()` places writing a `SharedBytes`,
//!   and rayon's `par_chunks_mut` over the rows of a `Vec<u8>`; and `fork_join!` with one place
//!   on each of `processor_count()` local nodes, each returning its rows (the `mandelbrot`
//!   example's `--nodes`; the nodes are started before the timer);
//! - an empty `fork_join!` against an empty `rayon::scope` with as many spawned tasks;
//! - `cg.barrier()` between 2 places against `std::sync::Barrier` between 2 threads.
//!
//! Medians over several samples, contenders interleaved sample by sample so that noise on a
//! shared machine hits all of them. `PLACES_BENCH_QUICK=1` runs a smaller image and fewer samples.

use std::hint::black_box;
use std::time::{Duration, Instant};

use places::prelude::*;
use rayon::prelude::*;

#[path = "../examples/common/mandelbrot.rs"]
mod kernel;

#[path = "common/stats.rs"]
mod stats;
use stats::{median, ms};

fn sequential(n: usize) -> Vec<u8> {
    let mut img = vec![0u8; n * n];
    for (y, row) in img.chunks_mut(n).enumerate() {
        kernel::mandelbrot_row(y, n, row);
    }
    img
}

fn places_fork_join(np: usize, n: usize) -> SharedBytes {
    let b = SharedBytes::zeroed(n * n);
    fork_join!(np, cg, [n: usize, b: SharedBytes = b.clone()], {
        // Each row is computed into a local buffer and stored into the shared image at once.
        let mut row = vec![0u8; n];
        cg_for!(cg, y in 0..n, {
            kernel::mandelbrot_row(y, n, &mut row);
            b.write_slice(y * n, &row);
        });
    })
    .expect("fork_join");
    b
}

fn rayon_rows(n: usize) -> Vec<u8> {
    let mut img = vec![0u8; n * n];
    img.par_chunks_mut(n)
        .enumerate()
        .for_each(|(y, row)| kernel::mandelbrot_row(y, n, row));
    img
}

fn empty_fork_join(np: usize, reps: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..reps {
        black_box(fork_join!(np, cg, [] -> usize, { cg.id() }).expect("fork_join"));
    }
    start.elapsed() / reps
}

fn empty_rayon_scope(np: usize, reps: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..reps {
        rayon::scope(|s| {
            for i in 0..np {
                s.spawn(move |_| {
                    black_box(i);
                });
            }
        });
    }
    start.elapsed() / reps
}

/// The time per `cg.barrier()` when 2 places do `reps` of them back to back.
fn places_barrier(reps: u32) -> Duration {
    let times = fork_join!(2, cg, [reps: u32] -> Duration, {
        cg.barrier();
        let start = Instant::now();
        for _ in 0..reps {
            cg.barrier();
        }
        start.elapsed() / reps
    })
    .expect("fork_join");
    times.into_iter().max().unwrap_or_default()
}

/// The same with `std::sync::Barrier` between 2 threads.
fn std_barrier(reps: u32) -> Duration {
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let run = || {
            barrier.wait();
            let start = Instant::now();
            for _ in 0..reps {
                barrier.wait();
            }
            start.elapsed() / reps
        };
        let other = s.spawn(run);
        let mine = run();
        mine.max(other.join().expect("barrier thread"))
    })
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

fn main() {
    places::init().expect("registry");
    let quick = std::env::var_os("PLACES_BENCH_QUICK").is_some();
    let (n, samples, reps) = if quick { (400, 3, 20) } else { (2000, 9, 200) };
    let np = processor_count();
    println!("parallel bench: {np} cores, Mandelbrot {n}x{n}, {samples} samples, medians");

    let reference = sequential(n);
    let nodes = (0..np)
        .map(|_| places::create_place_node("localhost", places::NodeOptions::new()))
        .collect::<Result<Vec<_>, _>>()
        .expect("local nodes");
    let (mut seq, mut fj1, mut fjn, mut ray, mut fjnodes) =
        (vec![], vec![], vec![], vec![], vec![]);
    for sample in 0..samples {
        // A different contender goes first in each sample, so that none always runs on a
        // machine just warmed up (or slowed down) by the same neighbour.
        for k in 0..5 {
            match (sample + k) % 5 {
                0 => {
                    let (t, img) = time(|| sequential(n));
                    assert!(img == reference);
                    seq.push(t);
                }
                1 => {
                    let (t, img) = time(|| places_fork_join(1, n));
                    assert!(img.to_vec() == reference, "fork_join on 1 place differs");
                    fj1.push(t);
                }
                2 => {
                    let (t, img) = time(|| places_fork_join(np, n));
                    assert!(
                        img.to_vec() == reference,
                        "fork_join on {np} places differs"
                    );
                    fjn.push(t);
                }
                3 => {
                    let (t, img) = time(|| rayon_rows(n));
                    assert!(img == reference);
                    ray.push(t);
                }
                _ => {
                    let (t, img) = time(|| kernel::render_on_nodes(&nodes, n));
                    assert!(img.expect("fork_join on nodes") == reference);
                    fjnodes.push(t);
                }
            }
        }
    }
    let (seq, fj1, fjn, ray) = (median(seq), median(fj1), median(fjn), median(ray));
    let fjnodes = median(fjnodes);

    let (mut efj, mut eray) = (vec![], vec![]);
    for _ in 0..samples {
        efj.push(empty_fork_join(np, reps));
        eray.push(empty_rayon_scope(np, reps));
    }
    let (efj, eray) = (median(efj), median(eray));

    let (mut pb, mut sb) = (vec![], vec![]);
    for _ in 0..samples {
        pb.push(places_barrier(reps * 100));
        sb.push(std_barrier(reps * 100));
    }
    let (pb, sb) = (median(pb), median(sb));

    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("{:<44} {:>10}", "sequential loop", ms(seq));
    println!(
        "{:<44} {:>10}   {:.2}x sequential's time",
        "fork_join! on 1 place",
        ms(fj1),
        r(fj1, seq)
    );
    println!(
        "{:<44} {:>10}   speedup {:.2}x on {np} cores (target >= {:.2}x)",
        format!("fork_join! on {np} places"),
        ms(fjn),
        r(seq, fjn),
        0.95 * np as f64
    );
    println!(
        "{:<44} {:>10}   speedup {:.2}x",
        format!("fork_join! on {np} local nodes"),
        ms(fjnodes),
        r(seq, fjnodes)
    );
    println!(
        "{:<44} {:>10}   speedup {:.2}x",
        "rayon par_chunks_mut",
        ms(ray),
        r(seq, ray)
    );
    println!(
        "{:<44} {:>10.2}x  (target <= 1.2x)",
        format!("fork_join! on {np} places / rayon"),
        r(fjn, ray)
    );
    println!(
        "{:<44} {:>10.1} us  vs rayon::scope with {np} empty tasks {:.1} us: {:.1}x (target <= 3x)",
        format!("empty fork_join! on {np} places"),
        efj.as_secs_f64() * 1e6,
        eray.as_secs_f64() * 1e6,
        r(efj, eray)
    );
    println!(
        "{:<44} {:>10.2} us  vs std::sync::Barrier between 2 threads {:.2} us: {:.2}x (target < 2 us)",
        "cg.barrier() between 2 places",
        pb.as_secs_f64() * 1e6,
        sb.as_secs_f64() * 1e6,
        r(pb, sb)
    );
}
