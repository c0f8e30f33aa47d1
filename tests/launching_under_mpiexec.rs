//! A group launched by MPICH's `mpiexec` (hydra, PMI-1): each process finds its rank and size,
//! publishes where it listens in the launcher's key-value space, and links to the others
//! directly; collectives then work as in any group. The test runs `mpiexec -n 3` on this very
//! test binary, whose `mpi_member` test plays a rank when `PLACES_TEST_MPI_MEMBER` is set.
//! Without `mpiexec` on the PATH (Debian: `apt-get install mpich`) it says it is skipped, unless
//! `PLACES_REQUIRE_MPIEXEC` is set (CI sets it once it installed MPICH).

use std::process::Command;
use std::time::{Duration, Instant};

use places::rmpi::{op, Collectives};

const MEMBER_ENV: &str = "PLACES_TEST_MPI_MEMBER";

#[test]
fn mpi_member() {
    if std::env::var_os(MEMBER_ENV).is_none() {
        return;
    }
    let cg = places::net::mesh::from_pmi()
        .expect("join the group mpiexec started")
        .expect("started by mpiexec");
    let sum = cg.allreduce(op::sum, cg.id() as u64 + 1).unwrap();
    let names = cg.gather(0, format!("rank {}", cg.id())).unwrap();
    let v = cg
        .allreduce(op::elementwise_sum, vec![cg.id() as f64; 4])
        .unwrap();
    cg.barrier();
    println!(
        "MPI-MEMBER {} of {} pid {} sum {sum} v {:?} gathered {:?}",
        cg.id(),
        cg.cnt(),
        std::process::id(),
        v,
        names
    );
}

#[test]
fn three_ranks_under_mpiexec_form_a_group_and_reduce() {
    if Command::new("mpiexec").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("PLACES_REQUIRE_MPIEXEC").is_none(),
            "PLACES_REQUIRE_MPIEXEC is set but mpiexec does not run"
        );
        eprintln!("skipped: no mpiexec on the PATH (apt-get install mpich)");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("mpiexec")
        .args(["-n", "3"])
        .arg(&exe)
        .args(["--exact", "mpi_member", "--nocapture", "--test-threads=1"])
        .env(MEMBER_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start mpiexec");
    // Bounded: mpiexec and its ranks end by themselves, or the test kills them.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mpiexec -n 3 did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mpiexec failed: {stdout}\n{stderr}");
    // libtest prints `test mpi_member ... ` before what the test prints.
    let mut lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.find("MPI-MEMBER").map(|at| &l[at..]))
        .collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), 3, "{stdout}\n{stderr}");
    let pids: std::collections::HashSet<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(5).unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "three processes: {stdout}");
    for (rank, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(&format!("MPI-MEMBER {rank} of 3 ")),
            "{line}"
        );
        assert!(line.contains(" sum 6 v [3.0, 3.0, 3.0, 3.0] "), "{line}");
        let gathered = if rank == 0 {
            r#"Some(["rank 0", "rank 1", "rank 2"])"#
        } else {
            "None"
        };
        assert!(line.ends_with(&format!("gathered {gathered}")), "{line}");
    }
}
