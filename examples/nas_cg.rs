//! NAS Parallel Benchmark CG (conjugate gradient: the smallest eigenvalue of a 14000x14000 sparse matrix (class A)), verified against NPB's official values, sequentially,
//! on local places that share vectors, or on RMPI ranks on nodes (dissertation sections 3.7 and
//! 4.5).
//!
//! ```text
//! cargo run --release --example nas_cg -- --class A --mode places --workers 2
//! cargo run --release --example nas_cg -- --class A --mode nodes --workers 2
//! mpiexec -n 2 ./target/release/examples/nas_cg --class A
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
    let p = nas::cg::Params::of(args.class);
    let mut matrix = nas::cg::make_matrix(&p);
    if args.corrupt {
        matrix.corrupt();
    }
    // Under mpiexec or srun: this process is one rank, and rank 0 reports.
    if let Some(comm) = places::net::mesh::from_pmi()? {
        let np = comm.cnt();
        let mine = nas::cg::rank_args(&p, &matrix, np).swap_remove(comm.id());
        drop(matrix);
        let (time, steps) = nas::cg::run_rank(&comm, mine)?;
        if comm.id() == 0 {
            header(&p);
            let report = nas::cg::report(&p, nas::Mode::Nodes(np), time, &steps);
            println!("{report}");
            std::process::exit(report.exit_code());
        }
        return Ok(());
    }
    header(&p);
    let report = nas::cg::run(&p, matrix, args.mode)?;
    println!("{report}");
    std::process::exit(report.exit_code());
}

fn header(p: &nas::cg::Params) {
    println!();
    println!(" NAS Parallel Benchmarks (places) - CG Benchmark");
    println!();
    println!(" Size: {:11}", p.na);
    println!(" Iterations: {:5}", p.niter);
}
