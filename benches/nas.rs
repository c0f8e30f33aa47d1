//! NAS IS and CG, class A, in each mode (sequential, places, RMPI ranks on local nodes) with 1
//! and 2 workers, against the reference figures
//! issue 13 gives for this kind of machine (2 cores): NPB 3.4's serial, OpenMP (NPB-CPP) and MPI
//! codes, and Racket's places and RMPI (dissertation sections 3.7 and 4.5).
//!
//! ```text
//! cargo bench --bench nas
//! ```
//!
//! Every run is verified (a run that does not verify stops the bench). Medians over several
//! samples, modes interleaved sample by sample so that noise on a shared machine hits all of
//! them. `PLACES_BENCH_QUICK=1` runs class S, one sample.
//!
//! The reference figures were measured on another machine of this kind. To compare with NPB on
//! this machine, side by side, point `PLACES_NPB_BIN` at a directory holding NPB's class A
//! binaries `cg_A_ser`, `cg_A_omp`, `is_A_ser`, `is_A_omp` (for example NPB-CPP's NPB-SER and
//! NPB-OMP codes built with `g++ -O3 -mcmodel=medium [-fopenmp]`); each then runs in every
//! sample too (the OpenMP ones with `OMP_NUM_THREADS=2`), and the bench prints our times against
//! their medians. NPB's code is not part of this project.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[path = "../examples/common/nas/mod.rs"]
mod nas;

#[path = "common/stats.rs"]
mod stats;
use stats::median;

use nas::{Class, Mode, Report};

/// Reference times in seconds (class A): serial, OpenMP 2 threads, MPI 2 ranks, Racket places,
/// Racket RMPI.
struct Reference {
    serial: f64,
    omp: f64,
    mpi: f64,
    racket_places: f64,
    racket_rmpi: f64,
}

const IS_A: Reference = Reference {
    serial: 0.157,
    omp: 0.095,
    mpi: 0.11,
    racket_places: 0.24,
    racket_rmpi: 40.0,
};

const CG_A: Reference = Reference {
    serial: 0.65,
    omp: 0.28,
    mpi: 0.31,
    racket_places: 0.75,
    racket_rmpi: 51.9,
};

const MODES: [Mode; 5] = [
    Mode::Seq,
    Mode::Places(1),
    Mode::Places(2),
    Mode::Nodes(1),
    Mode::Nodes(2),
];

/// Runs an NPB binary and returns the time it printed, or `None` (with a message) if it did not
/// run or did not verify.
fn npb(dir: &Path, name: &str) -> Option<Duration> {
    let out = Command::new(dir.join(name))
        .env("OMP_NUM_THREADS", "2")
        .output()
        .map_err(|e| eprintln!("could not run {name}: {e}"))
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("SUCCESSFUL") {
        eprintln!("{name} did not verify:\n{text}");
        return None;
    }
    let line = text.lines().find(|l| l.contains("Time in seconds"))?;
    let secs: f64 = line.rsplit('=').next()?.trim().parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

/// The NPB binaries' medians on this machine: serial and OpenMP with 2 threads.
#[derive(Default)]
struct SideBySide {
    serial: Vec<Duration>,
    omp: Vec<Duration>,
}

fn check(report: Report) -> Duration {
    assert!(report.verified, "a run did not verify:\n{report}");
    report.time
}

fn print(
    name: &str,
    class: Class,
    times: &[Vec<Duration>; MODES.len()],
    r: &Reference,
    here: &SideBySide,
    mops: impl Fn(Duration) -> f64,
) {
    println!("{name} class {class}:");
    let serial_here = (!here.serial.is_empty()).then(|| median(here.serial.clone()));
    let omp_here = (!here.omp.is_empty()).then(|| median(here.omp.clone()));
    for (mode, samples) in MODES.iter().zip(times) {
        let t = median(samples.clone());
        let s = t.as_secs_f64();
        let mut versus = match mode {
            Mode::Places(2) => format!(
                "{:.2}x NPB OpenMP (target <= 1.2x), {:.2}x NPB MPI, {:.2}x Racket places, Racket RMPI / ours {:.0}x",
                s / r.omp,
                s / r.mpi,
                s / r.racket_places,
                r.racket_rmpi / s
            ),
            Mode::Nodes(2) => format!(
                "{:.2}x NPB MPI (target <= 1.5x), Racket RMPI / ours {:.0}x",
                s / r.mpi,
                r.racket_rmpi / s
            ),
            Mode::Seq => format!("{:.2}x NPB serial (target <= 1.1x)", s / r.serial),
            _ => format!("{:.2}x NPB serial", s / r.serial),
        };
        let here = match mode {
            Mode::Places(2) => omp_here.map(|o| ("OpenMP", o)),
            _ => serial_here.map(|o| ("serial", o)),
        };
        if let Some((what, o)) = here {
            versus += &format!(
                "; here: {:.2}x NPB {what} ({:.3} s)",
                s / o.as_secs_f64(),
                o.as_secs_f64()
            );
        }
        println!(
            "  {:<22} {:>8.3} s {:>9.1} Mop/s   {versus}",
            mode.to_string(),
            s,
            mops(t)
        );
    }
}

#[places::main]
fn main() {
    let quick = std::env::var_os("PLACES_BENCH_QUICK").is_some();
    let (class, samples) = if quick { (Class::S, 1) } else { (Class::A, 5) };
    println!(
        "NAS bench: class {class}, {} cores, {samples} samples, medians{}",
        places::processor_count(),
        if quick {
            " (quick: the ratios are to class A figures, so they mean nothing here)"
        } else {
            ""
        }
    );

    let isp = nas::is::Params::of(class);
    let keys = nas::is::generate_keys(&isp);
    let cgp = nas::cg::Params::of(class);
    let matrix = nas::cg::make_matrix(&cgp);
    let mut is_times: [Vec<Duration>; MODES.len()] = Default::default();
    let mut cg_times: [Vec<Duration>; MODES.len()] = Default::default();
    let npb_dir = std::env::var_os("PLACES_NPB_BIN")
        .map(PathBuf::from)
        .filter(|_| class == Class::A);
    let (mut is_here, mut cg_here) = (SideBySide::default(), SideBySide::default());
    for sample in 0..samples {
        if let Some(dir) = &npb_dir {
            is_here.serial.extend(npb(dir, "is_A_ser"));
            is_here.omp.extend(npb(dir, "is_A_omp"));
            cg_here.serial.extend(npb(dir, "cg_A_ser"));
            cg_here.omp.extend(npb(dir, "cg_A_omp"));
        }
        for k in 0..MODES.len() {
            let m = (sample + k) % MODES.len();
            let report = nas::is::run(&isp, keys.clone(), MODES[m]).expect("IS");
            is_times[m].push(check(report));
            let report = nas::cg::run(&cgp, matrix.clone(), MODES[m]).expect("CG");
            cg_times[m].push(check(report));
        }
    }
    print("IS", class, &is_times, &IS_A, &is_here, |t| isp.mops(t));
    print("CG", class, &cg_times, &CG_A, &cg_here, |t| cgp.mops(t));
}
