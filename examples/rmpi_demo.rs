//! RMPI, each operation once (reference section 3, dissertation 4.3.2): a ring of messages, a
//! broadcast from rank 0 and from the last rank, a reduce to rank 3, an allreduce of a number
//! and of a vector, a max, a barrier, the partition of 10 items, and a gather.
//!
//! ```text
//! cargo run --release --example rmpi_demo [RANKS]
//! mpiexec -n 4 ./target/release/examples/rmpi_demo
//! srun --mpi=pmi2 -n 4 ./target/release/examples/rmpi_demo
//! ```
//!
//! Run by itself it launches RANKS (default 4) ranks on local nodes with `rmpi_launch`, as the
//! reference's `rmpi-launch` does; under `mpiexec` or `srun` every process is a rank, and the
//! group forms through the launcher's process manager (its PMI). Either way rank 0 gathers every rank's lines and prints
//! them in rank order; with 4 ranks:
//!
//! ```text
//! rank 0 of 4: ring: received "hello from 3"
//! rank 0 of 4: broadcast from 0: ("a", 12, "foo")
//! rank 0 of 4: broadcast from 3: [3.0, 3.5]
//! rank 0 of 4: reduce to 3: none here
//! rank 0 of 4: allreduce sum of ranks: 6
//! rank 0 of 4: allreduce of [rank, 1]: [6, 4]
//! rank 0 of 4: max of 10 * rank: 30
//! rank 0 of 4: barrier: passed
//! rank 0 of 4: partition of 10: offset 0 length 3
//! rank 0 of 4: gather to 0: ["rank 0", "rank 1", "rank 2", "rank 3"]
//! rank 1 of 4: ring: received "hello from 0"
//! ...
//! rank 3 of 4: reduce to 3: 13.8
//! ...
//! ```

use places::place;
use places::rmpi::{
    op, partition, rmpi_build_default_config, rmpi_finish, rmpi_init, rmpi_launch, Collectives,
    RmpiChannel, RmpiError, RmpiNodeConfig,
};
use places::Comm;

/// One rank's part: every operation once; rank 0 returns every rank's lines.
fn demo(comm: &Comm) -> Result<Option<Vec<String>>, RmpiError> {
    let (id, cnt) = (comm.id(), comm.cnt());
    let last = cnt - 1;
    let mut lines = Vec::new();
    let mut say = |what: String| lines.push(format!("rank {id} of {cnt}: {what}"));

    comm.send((id + 1) % cnt, format!("hello from {id}"))?;
    let prev = (id + cnt - 1) % cnt;
    let got: String = comm.recv(prev)?;
    say(format!("ring: received {got:?}"));

    let from_0 = comm.broadcast(
        0,
        (id == 0).then(|| ("a".to_owned(), 12i64, "foo".to_owned())),
    )?;
    say(format!("broadcast from 0: {from_0:?}"));
    let from_last = comm.broadcast(last, (id == last).then(|| vec![last as f64, 3.5]))?;
    say(format!("broadcast from {last}: {from_last:?}"));

    let dest = 3.min(last);
    let reduced = comm.reduce(dest, op::sum, 3.45f64)?;
    say(match reduced {
        Some(v) => format!("reduce to {dest}: {:.1}", v),
        None => format!("reduce to {dest}: none here"),
    });

    let sum = comm.allreduce(op::sum, id as u64)?;
    say(format!("allreduce sum of ranks: {sum}"));
    let v = comm.allreduce(op::elementwise_sum, vec![id as i64, 1])?;
    say(format!("allreduce of [rank, 1]: {v:?}"));
    let max = comm.allreduce(op::max, 10 * id as u64)?;
    say(format!("max of 10 * rank: {max}"));

    comm.try_barrier()?;
    say("barrier: passed".to_owned());

    let (offset, len) = partition(comm, 10);
    say(format!("partition of 10: offset {offset} length {len}"));

    let names = comm.gather(0, format!("rank {id}"))?;
    if let Some(names) = &names {
        say(format!("gather to 0: {names:?}"));
    }
    Ok(comm.gather(0, lines)?.map(|all| all.concat()))
}

/// A rank launched by `rmpi_launch`.
#[place]
pub fn rmpi_demo_place(ch: RmpiChannel<(), Vec<String>>) {
    let (comm, (), tc) = match rmpi_init(ch) {
        Ok(v) => v,
        Err(e) => return eprintln!("rmpi_demo: {e}"),
    };
    match demo(&comm) {
        Ok(lines) => {
            let _ = rmpi_finish(comm, tc, lines.unwrap_or_default());
        }
        Err(e) => panic!("rank {}: {e}", comm.id()),
    }
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Started by mpiexec or srun: this process is one rank.
    if let Some(comm) = places::net::mesh::from_pmi()? {
        if let Some(lines) = demo(&comm)? {
            for line in lines {
                println!("{line}");
            }
        }
        return Ok(());
    }
    let ranks: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(format!("RANKS must be a positive number, not {n:?}"))?,
        None => 4,
    };
    let configs: Vec<RmpiNodeConfig<()>> = (0..ranks)
        .map(|r| RmpiNodeConfig::new("localhost", 0, format!("rmpi_demo_{r}"), r))
        .collect();
    let lines: Vec<String> = rmpi_launch(
        &rmpi_build_default_config(module_path!(), "rmpi_demo_place", ()),
        &configs,
    )?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
