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
    let mut child = Command::new(example(name))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start example");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("poll example") {
            let out = child.wait_with_output().expect("example output");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                status.success(),
                "{name} failed with {status}\nstdout:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return stdout;
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
