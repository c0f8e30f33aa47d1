//! NAS Parallel Benchmark CG (conjugate gradient: the smallest eigenvalue of a 14000x14000 sparse matrix (class A)), verified against NPB's official values, sequentially or
//! on local places that share vectors (dissertation sections 3.7 and 4.5).
//!
//! ```text
//! cargo run --release --example nas_cg -- --class A --mode places --workers 2
//! ```
//!
//! Options: `--class S|W|A|B` (default S), `--mode seq|places` (default places), `--workers N`
//! (default: the processor count), `--corrupt` (changes one input value first, to see the
//! verification fail). It prints NPB's summary, ending with
//!
//! ```text
//!  Verification    =               SUCCESSFUL
//! ```
//!
//! and exits with 0 when the run verified, 1 when it did not.

#[path = "common/nas/mod.rs"]
mod nas;

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = nas::parse_args(std::env::args().skip(1))?;
    println!();
    println!(" NAS Parallel Benchmarks (places) - CG Benchmark");
    println!();
    let p = nas::cg::Params::of(args.class);
    let mut matrix = nas::cg::make_matrix(&p);
    if args.corrupt {
        matrix.corrupt();
    }
    println!(" Size: {:11}", p.na);
    println!(" Iterations: {:5}", p.niter);
    let report = nas::cg::run(&p, matrix, args.mode)?;
    println!("{report}");
    std::process::exit(report.exit_code());
}
