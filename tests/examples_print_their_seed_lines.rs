//! Every example runs and prints what its seed figure says. `cargo test` builds the examples
//! before it runs this; the test runs the built binaries with a time limit.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory");
    let path = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples first",
        path.display()
    );
    path
}

/// Runs an example to completion (killing it after a minute) and returns its stdout.
fn run(name: &str) -> String {
    run_with(name, &[])
}

fn run_with(name: &str, args: &[&str]) -> String {
    let (status, stdout, stderr) = run_to_end(name, args);
    assert!(
        status.success(),
        "{name} failed with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// Runs an example to completion (killing it after a minute): its exit status, stdout, stderr.
fn run_to_end(name: &str, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let mut child = Command::new(example(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start example");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("poll example") {
            let out = child.wait_with_output().expect("example output");
            return (
                status,
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{name} did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn hello_world_prints_figure_4_1() {
    let out = run("hello_world");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "hello-world received: Hello");
    // The place's second line and main's line race, as in Racket.
    let mut rest = lines[1..].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        [
            "hello-world sent: Hello World",
            "main received: Hello World"
        ]
    );
}

#[test]
fn trade_prints_both_reports() {
    let out = run("trade");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "buyer: bought for 70 after 4 rounds",
            "seller: sold for 70 after 4 rounds"
        ]
    );
}

#[test]
fn parallel_build_prints_each_job_once_and_the_total() {
    let out = run("parallel_build");
    let lines: Vec<&str> = out.lines().collect();
    let mut jobs: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("compiled "))
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    jobs.sort();
    let expected: Vec<String> = (0..24)
        .map(|i| format!("collects/racket/private/list-{i:02}.rkt"))
        .collect();
    assert_eq!(jobs, expected);
    let last = lines.last().copied().unwrap_or("");
    assert_eq!(
        last,
        format!("built 24 jobs with {} workers", places::processor_count())
    );
}

#[test]
fn mandelbrot_writes_the_same_image_with_one_and_many_places() {
    let path =
        std::env::temp_dir().join(format!("places-test-mandelbrot-{}.pgm", std::process::id()));
    let out = run_with(
        "mandelbrot",
        &["120", path.to_str().expect("utf-8 temp path")],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("mandelbrot 120x120: 1 place "),
        "{out}"
    );
    assert!(lines[0].ends_with(", identical images"), "{out}");
    assert_eq!(lines[1], format!("wrote {}", path.display()));
    let image = std::fs::read(&path).expect("the image file exists");
    let _ = std::fs::remove_file(&path);
    let header = b"P5\n120 120\n255\n";
    assert_eq!(&image[..header.len()], header);
    assert_eq!(image.len(), header.len() + 120 * 120);
    // The set is in the picture: black (bounded) and light (escaping) pixels both occur.
    let pixels = &image[header.len()..];
    assert!(pixels.contains(&0) && pixels.iter().any(|&p| p > 200));

    // On two local nodes: the same image, said and written.
    let out = run_with(
        "mandelbrot",
        &[
            "--nodes",
            "2",
            "120",
            path.to_str().expect("utf-8 temp path"),
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains(", 2 places on 2 nodes "), "{out}");
    assert!(lines[0].ends_with(", identical images"), "{out}");
    let on_nodes = std::fs::read(&path).expect("the image file exists");
    let _ = std::fs::remove_file(&path);
    assert!(on_nodes == image, "the image from 2 nodes differs");

    // The same with TLS on every link of the nodes.
    let out = run_with(
        "mandelbrot",
        &[
            "--nodes",
            "2",
            "--tls",
            "120",
            path.to_str().expect("utf-8 temp path"),
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(", 2 places on 2 nodes (TLS) "), "{out}");
    assert!(lines[0].ends_with(", identical images"), "{out}");
    let with_tls = std::fs::read(&path).expect("the image file exists");
    let _ = std::fs::remove_file(&path);
    assert!(with_tls == image, "the image from 2 TLS nodes differs");
}

#[test]
fn pipeline_prints_the_matrix_of_section_3_4_2_2() {
    let out = run("pipeline");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert_eq!(lines[0], "row 0: 0 1 9 144 21904");
    assert!(lines[4].starts_with("row 4: 0.16"), "{out}");
    assert_eq!(lines[5], "identical to the sequential computation");
    // The same members as places on two local nodes print the same.
    assert_eq!(run_with("pipeline", &["--nodes", "2"]), out);
}

#[test]
fn fft_phases_preserves_energy_and_matches_sequential() {
    let out = run_with("fft_phases", &["8"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "3-D FFT of 8^3 points on {} places: 3 phases, 2 barriers",
            places::processor_count()
        )
    );
    assert!(lines[1].ends_with("(Parseval holds)"), "{out}");
    assert_eq!(lines[2], "identical to the sequential transform");
}

#[test]
fn distributed_hello_world_prints_the_references_lines() {
    let out = run("distributed_hello_world");
    let mut lines: Vec<&str> = out.lines().collect();
    // The node's lines and the main program's line come from two processes.
    lines.sort();
    assert_eq!(
        lines,
        [
            "hello-world received: Hello",
            "hello-world sent: Hello World",
            "message-router received: Hello World"
        ],
        "{out}"
    );
}

#[test]
fn named_master_prints_what_racket_prints() {
    let out = run("named_master");
    let (hellos, rest): (Vec<&str>, Vec<&str>) =
        out.lines().partition(|l| *l == "Hello from define-cast");
    assert_eq!(hellos.len(), 2, "{out}");
    assert_eq!(
        rest,
        [
            "100",
            "200",
            "100",
            "200",
            "100",
            "200",
            "(created user0)",
            "(ok 10)",
            "(ok 5)"
        ],
        "{out}"
    );
}

#[test]
fn bank_prints_the_same_session_locally_and_on_a_node() {
    let out = run("bank");
    let session = "(created user0) (ok 10) (ok 5) (insufficient-funds 5) (invalid-account nobody)";
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [format!("local: {session}"), format!("node: {session}")]
    );
}

#[test]
fn tuple_server_prints_its_calls() {
    let out = run("tuple_server");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "Hello from define-cast",
            "get a (other connection) -> 1",
            "get c -> #f",
            "set a 1 -> 1",
            "set b 2 -> 2"
        ],
        "{out}"
    );
}

#[test]
fn supervised_shows_three_restarts_and_the_final_failure() {
    let out = run("supervised");
    let lines: Vec<&str> = out.lines().collect();
    let ups = lines
        .iter()
        .filter(|l| **l == "crashy: up, and failing on purpose")
        .count();
    assert_eq!(ups, 4, "{out}");
    let restarts: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("restarting crashy"))
        .collect();
    assert_eq!(
        restarts,
        [
            "restarting crashy (attempt 1 of 3)",
            "restarting crashy (attempt 2 of 3)",
            "restarting crashy (attempt 3 of 3)"
        ]
        .iter()
        .collect::<Vec<_>>()
    );
    // The main program's lines keep their order; the node's lines may come in between.
    let third = lines
        .iter()
        .position(|l| *l == "restarting crashy (attempt 3 of 3)");
    let gave_up = lines
        .iter()
        .position(|l| *l == "crashy failed after 3 restarts; giving up");
    assert!(
        matches!((third, gave_up), (Some(t), Some(g)) if t < g),
        "{out}"
    );
}

#[test]
fn the_readme_tour_shows_every_step() {
    let out = run("tour");
    for line in [
        "  main received: Hello World",
        "  fib(30) = 832040, fib(31) = 1346269",
        "  doubled over the direct channel: [2, 4, 6, 8, 10]",
        "  after the place ran: [0, 0, 0, 0, 0, 0, 0, 0]",
        "  wait() = 1, get() = Err(Closed)",
        "  sum of i % 3 below 1000000: 999999 (sequential: 999999)",
        "  last stage saw [106, 206, 306] (each row + 0 + 1 + 2 + 3)",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }
    // Step 4 serves places in the order they finish: all three complete, each once.
    for n in ["20", "40", "60"] {
        let done = format!("ended with completion value {n}");
        assert_eq!(out.matches(&done).count(), 1, "{done:?} in:\n{out}");
    }
    assert!(
        out.contains("fib(25) = 75025 from node 127.0.0.1:"),
        "the node step did not answer:\n{out}"
    );
    assert!(
        out.contains("no place entry `tour::helo_world` is registered")
            && out.contains("`tour::hello_world`"),
        "the misspelt-entry step did not name the entry:\n{out}"
    );
}

#[test]
fn nas_is_and_cg_verify_and_exit_with_what_they_print() {
    for name in ["nas_is", "nas_cg"] {
        for mode in [
            &["--mode", "seq"][..],
            &["--mode", "places", "--workers", "2"],
            &["--mode", "nodes", "--workers", "2"],
        ] {
            let args: Vec<&str> = ["--class", "S"].iter().chain(mode).copied().collect();
            let (status, out, err) = run_to_end(name, &args);
            assert_eq!(status.code(), Some(0), "{name} {args:?}:\n{out}{err}");
            assert!(out.contains(" VERIFICATION SUCCESSFUL"), "{out}");
            assert!(
                out.contains(" Verification    =               SUCCESSFUL"),
                "{out}"
            );
            let mut bad = args.clone();
            bad.push("--corrupt");
            let (status, out, err) = run_to_end(name, &bad);
            assert_eq!(status.code(), Some(1), "{name} {bad:?}:\n{out}{err}");
            assert!(
                out.contains(" Verification    =                   FAILED"),
                "{out}"
            );
        }
    }
}

#[test]
fn nas_examples_refuse_what_they_cannot_do_with_a_clear_message() {
    let (status, _, err) = run_to_end("nas_cg", &["--mode", "gpu"]);
    assert!(!status.success());
    assert!(err.contains("write seq, places or nodes"), "{err}");
    let (status, _, err) = run_to_end("nas_is", &["--class", "Q"]);
    assert!(!status.success());
    assert!(err.contains("write S, W, A or B"), "{err}");
}

#[test]
fn places_top_prints_a_table_per_node() {
    let out = run_with("places_top", &["--once"]);
    assert!(out.starts_with("places_top: 2 nodes, snapshot 1"), "{out}");
    let nodes: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("node localhost"))
        .collect();
    assert_eq!(nodes.len(), 2, "{out}");
    assert!(nodes
        .iter()
        .all(|l| l.contains(" pid ") && l.contains(" heartbeat ")));
    assert_eq!(out.matches("places_top::echo").count(), 4, "{out}");
    assert_eq!(out.matches("places_top::stuck").count(), 2, "{out}");
    // The flaky place may be between two instances when a snapshot is taken.
    assert!(out.matches("places_top::flaky").count() <= 2, "{out}");
    assert!(
        out.contains(" store0 ") && out.contains(" store1 "),
        "{out}"
    );
}

#[test]
fn any_places_program_serves_as_a_standalone_node_from_its_command_line() {
    // The cookie never comes on the command line.
    let (status, _, err) = run_to_end("hello_world", &["--places-node", "--cookie", "00"]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("never taken from the command line"), "{err}");
    // With a cookie file it listens, says where, and runs the handshake with a client that has
    // the cookie (which, being this test binary, has other entries: the node says which).
    let dir = std::env::temp_dir().join(format!("places-argv-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cookie = places::Cookie::random().unwrap();
    let file = dir.join("cookie");
    std::fs::write(&file, cookie.to_hex()).unwrap();
    let mut child = Command::new(example("hello_world"))
        .args(["--places-node", "--listen", "127.0.0.1:0", "--cookie-file"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(addr) = line.strip_prefix(places::net::READY_LINE) {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30));
    let attached = addr
        .as_ref()
        .ok()
        .map(|a| places::RemoteNode::connect(a, &cookie));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    match attached.expect("a ready line") {
        Err(places::NetError::Registry(diff)) => {
            assert!(diff.contains("hello_world::hello_world"), "{diff}")
        }
        other => panic!("expected the registries to differ, got {other:?}"),
    }
}

/// What `rmpi_demo` prints with 4 ranks, however they were launched.
fn check_rmpi_demo(out: &str) {
    let lines: Vec<&str> = out.lines().collect();
    // Ten lines from rank 0 (it also reports the gather), nine from each other rank.
    assert_eq!(lines.len(), 10 + 3 * 9, "{out}");
    for expected in [
        "rank 0 of 4: ring: received \"hello from 3\"",
        "rank 0 of 4: broadcast from 0: (\"a\", 12, \"foo\")",
        "rank 2 of 4: broadcast from 3: [3.0, 3.5]",
        "rank 3 of 4: reduce to 3: 13.8",
        "rank 1 of 4: reduce to 3: none here",
        "rank 1 of 4: allreduce sum of ranks: 6",
        "rank 2 of 4: allreduce of [rank, 1]: [6, 4]",
        "rank 3 of 4: max of 10 * rank: 30",
        "rank 1 of 4: barrier: passed",
        "rank 0 of 4: partition of 10: offset 0 length 3",
        "rank 1 of 4: partition of 10: offset 3 length 3",
        "rank 3 of 4: partition of 10: offset 8 length 2",
        "rank 0 of 4: gather to 0: [\"rank 0\", \"rank 1\", \"rank 2\", \"rank 3\"]",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{out}");
    }
    // In rank order.
    let ranks: Vec<&str> = lines.iter().map(|l| &l[..6]).collect();
    let mut sorted = ranks.clone();
    sorted.sort();
    assert_eq!(ranks, sorted, "{out}");
}

#[test]
fn rmpi_demo_runs_every_operation_on_four_local_nodes() {
    check_rmpi_demo(&run("rmpi_demo"));
}

/// Runs example `name` with `args` as 4 ranks under `mpiexec` (killing it after 120 s) and
/// returns its stdout; `None` when there is no mpiexec here and the test may be skipped.
/// A PMI launcher the examples run under: `mpiexec -n 4` (MPICH's hydra) or
/// `srun --mpi=pmi2 -n 4` (a Slurm cluster; `.ci/slurm.sh` starts a one-host one).
#[derive(Clone, Copy)]
enum Launcher {
    Mpiexec,
    Srun,
}

/// `launcher example args` with 4 ranks and its output, or `None` (said) when the launcher does
/// not run here and CI did not require it.
fn under(launcher: Launcher, name: &str, args: &[&str]) -> Option<String> {
    under_n(launcher, 4, name, args, true)
}

/// `launcher example args` with `ranks` ranks; its output, after checking that it succeeded
/// (or, with `succeed` false, that it failed).
fn under_n(
    launcher: Launcher,
    ranks: usize,
    name: &str,
    args: &[&str],
    succeed: bool,
) -> Option<String> {
    let n = ranks.to_string();
    let (probe, probe_args, require, install, program): (_, &[&str], _, _, _) = match launcher {
        Launcher::Mpiexec => (
            "mpiexec",
            &["--version"],
            "PLACES_REQUIRE_MPIEXEC",
            "apt-get install mpich",
            "mpiexec",
        ),
        Launcher::Srun => (
            "sinfo",
            &["-h"],
            "PLACES_REQUIRE_SRUN",
            "eval \"$(.ci/slurm.sh)\" starts a one-host Slurm",
            "srun",
        ),
    };
    let launch_args: Vec<&str> = match launcher {
        Launcher::Mpiexec => vec!["-n", &n],
        Launcher::Srun => vec!["--mpi=pmi2", "-n", &n, "--immediate=60"],
    };
    let runs = Command::new(probe)
        .args(probe_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        assert!(
            std::env::var_os(require).is_none(),
            "{require} is set but `{probe}` does not run"
        );
        eprintln!("skipped: `{probe}` does not run here ({install})");
        return None;
    }
    let mut child = Command::new(program)
        .args(&launch_args)
        .arg(example(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let start = Instant::now();
    while child.try_wait().expect("poll the launcher").is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{program} {launch_args:?} {name} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("the launcher's output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.success(),
        succeed,
        "{program} {launch_args:?} {name} {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout)
}

#[test]
fn rmpi_demo_runs_under_mpiexec() {
    if let Some(out) = under(Launcher::Mpiexec, "rmpi_demo", &[]) {
        check_rmpi_demo(&out);
    }
}

#[test]
fn rmpi_demo_runs_under_srun() {
    if let Some(out) = under(Launcher::Srun, "rmpi_demo", &[]) {
        check_rmpi_demo(&out);
    }
}

fn check_kmeans(out: &str, ranks: usize) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("kmeans: 30000 points, k 5, {ranks} ranks, 6 iterations").as_str()),
        "{out}"
    );
    let centroids: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("centroid "))
        .collect();
    assert_eq!(centroids.len(), 5, "{out}");
    let points: u64 = centroids
        .iter()
        .map(|l| {
            l.rsplit(' ')
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok())
                .expect("a count")
        })
        .sum();
    assert_eq!(points, 30_000, "every point in one cluster:\n{out}");
    assert_eq!(
        lines.last().copied(),
        Some("sequential: identical centroids"),
        "{out}"
    );
}

#[test]
fn kmeans_on_three_local_nodes_matches_the_sequential_run() {
    let out = run_with(
        "kmeans",
        &[
            "--ranks",
            "3",
            "--points",
            "30000",
            "--k",
            "5",
            "--iterations",
            "6",
        ],
    );
    check_kmeans(&out, 3);
}

#[test]
fn kmeans_under_mpiexec_matches_the_sequential_run() {
    let args = ["--points", "30000", "--k", "5", "--iterations", "6"];
    if let Some(out) = under(Launcher::Mpiexec, "kmeans", &args) {
        check_kmeans(&out, 4);
    }
}

/// A NAS run of 2 ranks under `launcher`, and the same with one input value changed: rank 0
/// prints the summary; the exit code says whether it verified.
fn nas_under(launcher: Launcher) {
    for name in ["nas_is", "nas_cg"] {
        let Some(out) = under_n(launcher, 2, name, &["--class", "S"], true) else {
            return;
        };
        assert_eq!(
            out.matches(" Verification    =               SUCCESSFUL")
                .count(),
            1,
            "{name}: one report, verified:\n{out}"
        );
        assert!(
            out.contains(" Mode            =          nodes (2 ranks)"),
            "{out}"
        );
        let out = under_n(launcher, 2, name, &["--class", "S", "--corrupt"], false)
            .expect("the launcher ran a moment ago");
        assert!(
            out.contains(" Verification    =                   FAILED"),
            "{name} --corrupt:\n{out}"
        );
    }
}

#[test]
fn nas_is_and_cg_verify_under_mpiexec() {
    nas_under(Launcher::Mpiexec);
}

#[test]
fn nas_is_and_cg_verify_under_srun() {
    nas_under(Launcher::Srun);
}

#[test]
fn kmeans_under_srun_matches_the_sequential_run() {
    let args = ["--points", "30000", "--k", "5", "--iterations", "6"];
    if let Some(out) = under(Launcher::Srun, "kmeans", &args) {
        check_kmeans(&out, 4);
    }
}

#[test]
fn word_count_prints_each_word_the_total_and_matches_the_sequential_count() {
    let out = run_with(
        "word_count",
        &["--workers", "3", "--files", "5", "--words", "2000"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("word_count: 5 files, 10000 words, 3 workers"),
        "{out}"
    );
    let counts: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.split_once(" - "))
        .map(|(_, n)| n.parse().expect("a count"))
        .collect();
    assert_eq!(counts.len(), 14, "one line per word:\n{out}");
    assert_eq!(counts.iter().sum::<u64>(), 10_000, "{out}");
    assert!(lines.contains(&"total 10000"), "{out}");
    assert_eq!(
        lines.last().copied(),
        Some("sequential: identical counts"),
        "{out}"
    );
}

#[test]
fn ndp_qsort_sorts_the_dissertations_list_and_generated_numbers() {
    let out = run_with("ndp_qsort", &["--members", "3", "--numbers", "100000"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "(3 5 7 10 46 9128)",
            "sorted 100000 numbers on 3 members: identical to sort_unstable"
        ],
        "{out}"
    );
}
