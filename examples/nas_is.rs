//! NAS Parallel Benchmark IS (integer sort: ranks 2^23 keys (class A) ten times by counting into buckets), verified against NPB's official values, sequentially,
//! on local places that share vectors, or on RMPI ranks on nodes (dissertation sections 3.7 and
//! 4.5).
//!
//! ```text
//! cargo run --release --example nas_is -- --class A --mode places --workers 2
//! cargo run --release --example nas_is -- --class A --mode nodes --workers 2
//! mpiexec -n 2 ./target/release/examples/nas_is --class A
//! ```
//!
//! Options: `--class S|W|A|B` (default S), `--mode seq|places|nodes` (default places), `--workers N`
//! (places or ranks; default: the processor count; `nodes` starts one local node per rank with
//! `rmpi_launch`, and under `mpiexec` or `srun` each process is a rank whatever the mode), `--corrupt` (changes one input value first, to see the
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
    let p = nas::is::Params::of(args.class);
    let mut keys = nas::is::generate_keys(&p);
    if args.corrupt {
        nas::is::corrupt(&p, &mut keys);
    }
    // Under mpiexec or srun: this process is one rank, and rank 0 reports.
    if let Some(comm) = places::net::mesh::from_pmi()? {
        let np = comm.cnt();
        let mine = nas::is::rank_args(&p, &keys, np).swap_remove(comm.id());
        drop(keys);
        if let Some(outcome) = nas::is::run_rank(&comm, mine)? {
            header(&p);
            let report = nas::is::report(&p, nas::Mode::Nodes(np), outcome);
            println!("{report}");
            std::process::exit(report.exit_code());
        }
        return Ok(());
    }
    header(&p);
    let report = nas::is::run(&p, keys, args.mode)?;
    println!("{report}");
    std::process::exit(report.exit_code());
}

fn header(p: &nas::is::Params) {
    println!();
    println!(" NAS Parallel Benchmarks (places) - IS Benchmark");
    println!();
    println!(" Size:  {}  (class {})", p.total_keys, p.class);
    println!(" Iterations:   {}", nas::is::ITERATIONS);
}
