//! NAS Parallel Benchmark IS (integer sort: ranks 2^23 keys (class A) ten times by counting into buckets), verified against NPB's official values, sequentially or
//! on local places that share vectors (dissertation sections 3.7 and 4.5).
//!
//! ```text
//! cargo run --release --example nas_is -- --class A --mode places --workers 2
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
    println!(" NAS Parallel Benchmarks (places) - IS Benchmark");
    println!();
    let p = nas::is::Params::of(args.class);
    let mut keys = nas::is::generate_keys(&p);
    if args.corrupt {
        nas::is::corrupt(&p, &mut keys);
    }
    println!(" Size:  {}  (class {})", p.total_keys, p.class);
    println!(" Iterations:   {}", nas::is::ITERATIONS);
    let report = nas::is::run(&p, keys, args.mode)?;
    println!("{report}");
    std::process::exit(report.exit_code());
}
