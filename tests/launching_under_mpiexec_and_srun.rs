//! Groups launched by MPICH's `mpiexec` (hydra) and by Slurm's `srun --mpi=pmi2`: each process
//! finds its rank and size through the launcher's PMI, publishes where it listens in the
//! launcher's key-value space, and links to the others directly; collectives then work as in
//! any group. The tests run the launcher on this very test binary, whose `mpi_member` test plays
//! a rank when `PLACES_TEST_MPI_MEMBER` is set.
//!
//! Without `mpiexec` on the PATH (Debian: `apt-get install mpich`) the mpiexec tests say they
//! are skipped, unless `PLACES_REQUIRE_MPIEXEC` is set; without a Slurm cluster that answers
//! `sinfo` (`.ci/slurm.sh` starts a one-host one) the srun tests say so, unless
//! `PLACES_REQUIRE_SRUN` is set. CI sets both once it installed and started them.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use places::rmpi::{op, Collectives};

const MEMBER_ENV: &str = "PLACES_TEST_MPI_MEMBER";

#[test]
fn mpi_member() {
    if std::env::var_os(MEMBER_ENV).is_none() {
        return;
    }
    let cg = match places::net::mesh::from_pmi() {
        Ok(Some(cg)) => cg,
        Ok(None) => panic!("not started by a PMI launcher"),
        Err(e) => {
            println!("MPI-MEMBER-ERROR {e}");
            return;
        }
    };
    // The launcher's connection is used once; a second call says so.
    let again = places::net::mesh::from_pmi().map(|c| c.is_some());
    assert!(
        matches!(&again, Err(e) if e.to_string().contains("already called")),
        "{again:?}"
    );
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

/// Whether `program args` runs here; when it does not and `require` is set, the test fails.
fn available(program: &str, args: &[&str], require: &str, install: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os(require).is_none(),
            "{require} is set but `{program} {}` does not run",
            args.join(" ")
        );
        eprintln!(
            "skipped: `{program} {}` does not run ({install})",
            args.join(" ")
        );
    }
    ok
}

fn mpiexec_runs() -> bool {
    available(
        "mpiexec",
        &["--version"],
        "PLACES_REQUIRE_MPIEXEC",
        "apt-get install mpich",
    )
}

fn slurm_runs() -> bool {
    available(
        "sinfo",
        &["-h"],
        "PLACES_REQUIRE_SRUN",
        "start a cluster with `eval \"$(.ci/slurm.sh)\"`",
    )
}

/// Runs `launcher launcher_args <this binary> mpi_member` with `env`, bounded by 120 s.
fn launch(launcher: &str, launcher_args: &[&str], env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(launcher)
        .args(launcher_args)
        .arg(&exe)
        .args(["--exact", "mpi_member", "--nocapture", "--test-threads=1"])
        .env(MEMBER_ENV, "1")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {launcher}: {e}"));
    // Bounded: the launcher and its ranks end by themselves, or the test kills them.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{launcher} {launcher_args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The members' report lines, sorted by rank; every rank agreed on the group.
fn check_members(out: &Output, n: usize) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the launch failed: {stdout}\n{stderr}"
    );
    // libtest prints `test mpi_member ... ` before what the test prints.
    let mut lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.find("MPI-MEMBER").map(|at| &l[at..]))
        .collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), n, "{stdout}\n{stderr}");
    let pids: std::collections::HashSet<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(5).unwrap())
        .collect();
    assert_eq!(pids.len(), n, "{n} processes: {stdout}");
    let sum: usize = (1..=n).sum();
    let v = (0..n).sum::<usize>() as f64;
    let everyone: Vec<String> = (0..n).map(|r| format!("\"rank {r}\"")).collect();
    for (rank, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(&format!("MPI-MEMBER {rank} of {n} ")),
            "{line}"
        );
        assert!(
            line.contains(&format!(" sum {sum} v [{v:?}, {v:?}, {v:?}, {v:?}] ")),
            "{line}"
        );
        let gathered = if rank == 0 {
            format!("Some([{}])", everyone.join(", "))
        } else {
            "None".to_owned()
        };
        assert!(line.ends_with(&format!("gathered {gathered}")), "{line}");
    }
}

#[test]
fn three_ranks_under_mpiexec_form_a_group_and_reduce() {
    if mpiexec_runs() {
        check_members(&launch("mpiexec", &["-n", "3"], &[]), 3);
    }
}

#[test]
fn ranks_under_mpiexec_speaking_pmi_1_form_the_same_group() {
    if mpiexec_runs() {
        let env = [(places::net::mesh::PMI_VERSION_ENV, "1")];
        check_members(&launch("mpiexec", &["-n", "3"], &env), 3);
    }
}

#[test]
fn four_ranks_under_srun_form_a_group_and_reduce() {
    if slurm_runs() {
        // --immediate: a cluster that cannot run the step now fails it instead of queueing.
        let args = ["--mpi=pmi2", "-n", "4", "--immediate=60"];
        check_members(&launch("srun", &args, &[]), 4);
    }
}

#[test]
fn srun_without_a_pmi_is_an_error_that_says_what_to_write() {
    if slurm_runs() {
        let args = ["--mpi=none", "-n", "2", "--immediate=60"];
        let out = launch("srun", &args, &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let errors: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.find("MPI-MEMBER-ERROR").map(|at| &l[at..]))
            .collect();
        assert_eq!(errors.len(), 2, "{stdout}");
        for e in errors {
            assert!(e.contains("srun started 2 tasks"), "{e}");
            assert!(e.contains("srun --mpi=pmi2"), "{e}");
        }
    }
}
