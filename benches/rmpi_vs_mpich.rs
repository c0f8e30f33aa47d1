//! RMPI (our `Comm` under `mpiexec`) against MPICH running a small C program, side by side in
//! one run on this machine.
//!
//! ```text
//! cargo bench --bench rmpi_vs_mpich
//! PLACES_BENCH_QUICK=1 cargo bench --bench rmpi_vs_mpich   # a short smoke run
//! ```
//!
//! Rows, each measured for our ranks and for MPICH's:
//!
//! - an 8-byte ping-pong round trip between 2 ranks;
//! - an 8 MB message (1 Mi `f64`) sent one way between 2 ranks: the time per transfer and MB/s
//!   (10^6 bytes); the receiver answers the last message of each repetition with one byte;
//! - `allreduce` of one `f64` (sum) on 2 and on 4 ranks;
//! - `allreduce` of 1 Mi `f64` (8 MB, elementwise sum: ours `allreduce_elementwise` with
//!   `op::elementwise_sum` on a `Vec<f64>`, which reduces blocks and passes them round a ring,
//!   MPICH `MPI_SUM` on `MPI_DOUBLE`) on 2 and on 4 ranks;
//! - the launch: `mpiexec -n 4` of a program that forms the group and exits (ours
//!   `places::net::mesh::from_pmi()`, MPICH `MPI_Init` + `MPI_Finalize`), from the spawn of
//!   `mpiexec` to its exit;
//!
//! and, in this process, a raw blocking TCP round trip of 8 bytes on loopback (two threads,
//! `TCP_NODELAY`) as the baseline the issue's targets refer to, sampled before every row. It is
//! also shown with both threads pinned to one core: where a wake-up across cores is slow
//! (virtual machines), the unpinned round trip can be several times the pinned one, while
//! ranks that poll instead of sleeping (MPICH busy-polls; ours reads for 50 us before it sleeps
//! in `poll`) mostly do not pay that wake-up. The targets use the unpinned one.
//!
//! Our ranks are this bench binary, re-run by `mpiexec -n N` with `PLACES_BENCH_RMPI_ROLE` set
//! to the measurement (`MODE WARMUP ITERS REPS`); MPICH's are `benches/mpich_reference.c`, built
//! with `mpicc -O2` into the target directory when the bench starts. Both run WARMUP untimed
//! operations, then REPS repetitions of ITERS timed ones, and rank 0 prints the mean time of one
//! operation per repetition on a `BENCH-RESULT` line that this process parses. The rows are
//! measured in rounds that alternate ours, MPICH over TCP and MPICH with its defaults (shared
//! memory), and every row reports the median over all repetitions (ours also min-max).
//!
//! MPICH "over TCP" runs with `MPIR_CVAR_NOLOCAL=1` (MPICH treats every rank as remote: no
//! shared memory of its own, no node-aware collectives) plus the netmod's own switch:
//! `UCX_TLS=tcp` for ch4:ucx (Debian's build; without it UCX still uses its shared-memory
//! transports, whatever `MPIR_CVAR_NOLOCAL` says), `FI_PROVIDER=tcp` for ch4:ofi. The bench
//! prints the environment it used and MPICH's ping-pong with it against MPICH's default one
//! (about a microsecond over shared memory, ten or more over loopback TCP), and warns when the
//! two are within 3x of each other (then it did not leave shared memory).
//!
//! Notes on what is compared: ours sends a vector it owns (`Comm::send` takes the value), so
//! the one-way transfer's copies are made before the timer starts, as MPI's buffer exists
//! before `MPI_Send`; our 8 MB allreduce feeds each result back as the next input (no copy;
//! MPICH reads one buffer and writes another). MPICH busy-polls, so 4 ranks on a machine with
//! fewer cores fight over them. With UCX's TCP transport MPICH sometimes hangs in
//! `MPI_Finalize` after its measurement is done (UCX's TCP cleanup); the bench takes the printed
//! result, stops that `mpiexec` after a few seconds and counts it. Every `mpiexec` is stopped
//! after 120 s at the most. Nothing here asserts on speed; it only prints.
//!
//! Without `mpiexec` the bench says so (`skipped: mpiexec not found`) and prints only the raw TCP
//! baseline; without `mpicc` it says `skipped: mpicc not found` and leaves the MPICH columns
//! empty. `PLACES_BENCH_QUICK=1` runs one round with few repetitions (well under a minute).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use places::rmpi::{op, Collectives};
use places::Comm;

#[path = "common/raw_tcp.rs"]
mod raw_tcp;

#[path = "common/stats.rs"]
mod stats;
use stats::median;

/// Set (to `MODE WARMUP ITERS REPS`) in the environment of our ranks under `mpiexec`.
const ROLE_ENV: &str = "PLACES_BENCH_RMPI_ROLE";

/// The start of the line rank 0 prints with its repetitions' times.
const RESULT: &str = "BENCH-RESULT";

/// The start of the line a rank of ours prints when it fails.
const RANK_ERROR: &str = "BENCH-RANK-ERROR";

/// The elements of the 8 MB vectors.
const BIG_LEN: usize = 1 << 20;

/// The longest any `mpiexec` may run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest a launch-only `mpiexec` may run (it normally takes well under a second).
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a run may go on once rank 0 printed its result (`MPI_Finalize` and exit).
const FINALIZE_GRACE: Duration = Duration::from_secs(3);

/// What a run measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Form the group and exit.
    Init,
    /// 8-byte round trips between ranks 0 and 1.
    PingPong,
    /// 8 MB messages from rank 0 to rank 1.
    Transfer,
    /// Allreduce of one f64.
    Allreduce8,
    /// Allreduce of 1 Mi f64.
    Allreduce8M,
}

impl Mode {
    const ALL: [Mode; 5] = [
        Mode::Init,
        Mode::PingPong,
        Mode::Transfer,
        Mode::Allreduce8,
        Mode::Allreduce8M,
    ];

    /// The name both programs take on their command line or role.
    fn name(self) -> &'static str {
        match self {
            Mode::Init => "init",
            Mode::PingPong => "pingpong",
            Mode::Transfer => "transfer",
            Mode::Allreduce8 => "allreduce8",
            Mode::Allreduce8M => "allreduce8m",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        std::process::exit(rank_main(&role));
    }
    parent();
}

// ---------------------------------------------------------------------------------------------
// Our ranks, under mpiexec.

type BoxError = Box<dyn std::error::Error>;

/// One rank of ours: joins the group `mpiexec` started, runs the measurement `role` names, and
/// (rank 0) prints the result line. Returns the exit code.
fn rank_main(role: &str) -> i32 {
    let words: Vec<&str> = role.split_whitespace().collect();
    let parsed = match words.as_slice() {
        [mode, warmup, iters, reps] => Mode::parse(mode).zip(
            warmup
                .parse::<u32>()
                .ok()
                .zip(iters.parse::<u32>().ok())
                .zip(reps.parse::<u32>().ok()),
        ),
        [mode] => Mode::parse(mode).map(|m| (m, ((0, 1), 1))),
        _ => None,
    };
    let Some((mode, ((warmup, iters), reps))) = parsed.filter(|(_, ((_, i), r))| *i > 0 && *r > 0)
    else {
        eprintln!("{ROLE_ENV}={role:?}: expected `MODE WARMUP ITERS REPS`");
        return 2;
    };
    let cg = match places::net::mesh::from_pmi() {
        Ok(Some(cg)) => cg,
        Ok(None) => {
            println!("{RANK_ERROR} not started by mpiexec (no PMI_FD)");
            return 2;
        }
        Err(e) => {
            println!("{RANK_ERROR} from_pmi: {e}");
            return 1;
        }
    };
    if mode == Mode::Init {
        return 0;
    }
    match measure(&cg, mode, warmup, iters, reps) {
        Ok(()) => 0,
        Err(e) => {
            println!("{RANK_ERROR} rank {}: {e}", cg.id());
            1
        }
    }
}

/// The buffers of a measurement, made outside the timed part.
struct Work {
    mode: Mode,
    /// The vector the 8 MB allreduce feeds back through itself.
    big: Vec<f64>,
    /// What the last element of `big` should be.
    expect: f64,
    /// The vectors the transfer's sender sends, one per message.
    copies: Vec<Vec<f64>>,
    /// Whether every value received was the one expected.
    good: bool,
}

fn fresh() -> Vec<f64> {
    (0..BIG_LEN).map(|i| 0.5 * i as f64).collect()
}

impl Work {
    fn new(mode: Mode) -> Self {
        Work {
            mode,
            big: Vec::new(),
            expect: 0.0,
            copies: Vec::new(),
            good: true,
        }
    }

    /// Makes the buffers for `n` operations.
    fn prepare(&mut self, cg: &Comm, n: u32) {
        match self.mode {
            Mode::Transfer if cg.id() == 0 => {
                let v = fresh();
                self.copies = (0..n).map(|_| v.clone()).collect();
            }
            Mode::Allreduce8M => {
                self.big = fresh();
                self.expect = 0.5 * (BIG_LEN - 1) as f64;
            }
            _ => {}
        }
    }

    /// Runs `n` operations.
    fn run(&mut self, cg: &Comm, n: u32) -> Result<(), BoxError> {
        let (id, cnt) = (cg.id(), cg.cnt());
        match self.mode {
            Mode::Init => {}
            Mode::PingPong => {
                for i in 0..n {
                    if id == 0 {
                        let sent = f64::from(i);
                        cg.send(1, sent)?;
                        let back: f64 = cg.recv(1)?;
                        self.good &= back == sent;
                    } else if id == 1 {
                        let x: f64 = cg.recv(0)?;
                        cg.send(0, x)?;
                    }
                }
            }
            Mode::Transfer => {
                if id == 0 {
                    for v in self.copies.drain(..) {
                        cg.send(1, v)?;
                    }
                    let _ack: u8 = cg.recv(1)?;
                } else if id == 1 {
                    for _ in 0..n {
                        let v: Vec<f64> = cg.recv(0)?;
                        self.good &= v.len() == BIG_LEN && v[BIG_LEN - 1] == fresh_last();
                    }
                    cg.send(0, 0u8)?;
                }
            }
            Mode::Allreduce8 => {
                let want = (cnt * (cnt + 1) / 2) as f64;
                for _ in 0..n {
                    let sum = cg.allreduce(op::sum, (id + 1) as f64)?;
                    self.good &= sum == want;
                }
            }
            Mode::Allreduce8M => {
                for _ in 0..n {
                    let v = std::mem::take(&mut self.big);
                    self.big = cg.allreduce_elementwise(op::elementwise_sum, v)?;
                    self.expect *= cnt as f64;
                    let last = self.big.last().copied().unwrap_or(f64::NAN);
                    self.good &= self.big.len() == BIG_LEN
                        && (last - self.expect).abs() <= self.expect.abs() * 1e-12;
                }
            }
        }
        Ok(())
    }
}

fn fresh_last() -> f64 {
    0.5 * (BIG_LEN - 1) as f64
}

/// Warm-up, timed repetitions, and rank 0's result line.
fn measure(cg: &Comm, mode: Mode, warmup: u32, iters: u32, reps: u32) -> Result<(), BoxError> {
    if matches!(mode, Mode::PingPong | Mode::Transfer) && cg.cnt() < 2 {
        return Err(format!("{} needs 2 ranks", mode.name()).into());
    }
    let mut work = Work::new(mode);
    work.prepare(cg, warmup);
    work.run(cg, warmup)?;
    let mut ns = Vec::with_capacity(reps as usize);
    for _ in 0..reps {
        work.prepare(cg, iters);
        cg.try_barrier()?;
        let start = Instant::now();
        work.run(cg, iters)?;
        ns.push(start.elapsed().as_nanos() / u128::from(iters));
    }
    // Every rank's check counts: rank 1 is the one that sees a transfer's data.
    let all_good = cg.reduce(0, |a: bool, b: bool| a && b, work.good)?;
    cg.try_barrier()?;
    if let Some(all_good) = all_good {
        let ns: Vec<String> = ns.iter().map(u128::to_string).collect();
        println!(
            "{RESULT} {} {} {} ns={}",
            mode.name(),
            cg.cnt(),
            if all_good { "ok" } else { "bad" },
            ns.join(",")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The parent: runs mpiexec, collects, prints.

/// What one `mpiexec` run gave.
struct Outcome {
    /// Its stdout, line by line.
    lines: Vec<String>,
    /// Its stderr.
    stderr: String,
    /// From the spawn to the exit.
    elapsed: Duration,
    /// Whether it was stopped (timeout, or a hang after the result) instead of exiting.
    stopped: bool,
    /// Whether it exited with status 0.
    success: bool,
}

/// Stops `child` (an `mpiexec`): SIGTERM first, which hydra passes to its ranks, then SIGKILL.
fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: `kill` on the pid of our own child, which has not been reaped yet (we hold
        // its `Child` and have not waited for it successfully).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `mpiexec -n N` of `run`, bounded by `timeout` (and by
/// [`FINALIZE_GRACE`] once a result line came).
fn mpiexec(n: usize, run: &Invocation, timeout: Duration) -> Result<Outcome, String> {
    let start = Instant::now();
    let mut child = Command::new("mpiexec")
        .arg("-n")
        .arg(n.to_string())
        .arg(&run.exe)
        .args(&run.args)
        .envs(run.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start mpiexec: {e}"))?;
    // Readers in threads of their own: a rank left behind may hold the pipes open, so they are
    // never joined, only listened to.
    let (tx, rx) = mpsc::channel::<String>();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    }
    let (etx, erx) = mpsc::channel::<String>();
    if let Some(mut err) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            let _ = etx.send(s);
        });
    }
    let mut lines = Vec::new();
    let mut deadline = start + timeout;
    let mut stopped = false;
    let (status, elapsed) = loop {
        while let Ok(line) = rx.try_recv() {
            if line.contains(RESULT) {
                deadline = deadline.min(Instant::now() + FINALIZE_GRACE);
            }
            lines.push(line);
        }
        match child.try_wait() {
            Ok(Some(status)) => break (Some(status), start.elapsed()),
            Ok(None) => {}
            Err(e) => return Err(format!("wait for mpiexec: {e}")),
        }
        if Instant::now() > deadline {
            let elapsed = start.elapsed();
            stop(&mut child);
            stopped = true;
            break (None, elapsed);
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    // What is still in the pipes.
    let drain_until = Instant::now() + Duration::from_secs(2);
    while let Some(left) = drain_until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let stderr = erx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
    Ok(Outcome {
        lines,
        stderr,
        elapsed,
        stopped,
        success: status.is_some_and(|s| s.success()),
    })
}

/// The repetitions' times on a result line: `BENCH-RESULT MODE RANKS CHECK ns=..`.
fn parse_result(out: &Outcome, mode: Mode, n: usize) -> Result<Vec<Duration>, String> {
    let line = out
        .lines
        .iter()
        .find_map(|l| l.find(RESULT).map(|at| &l[at..]))
        .ok_or_else(|| describe_failure(out))?;
    let w: Vec<&str> = line.split_whitespace().collect();
    let [_, m, ranks, check, ns] = w.as_slice() else {
        return Err(format!("unreadable result line {line:?}"));
    };
    if *m != mode.name() || *ranks != n.to_string() {
        return Err(format!("result for another run: {line:?}"));
    }
    if *check != "ok" {
        return Err(format!("wrong values received ({line:?})"));
    }
    ns.strip_prefix("ns=")
        .ok_or_else(|| format!("unreadable result line {line:?}"))?
        .split(',')
        .map(|t| {
            t.parse::<u64>()
                .map(Duration::from_nanos)
                .map_err(|_| format!("unreadable time {t:?} in {line:?}"))
        })
        .collect()
}

fn describe_failure(out: &Outcome) -> String {
    let said: Vec<&str> = out
        .lines
        .iter()
        .filter_map(|l| l.find(RANK_ERROR).map(|at| &l[at..]))
        .collect();
    let why = if out.stopped {
        format!("no result within {:.0} s", out.elapsed.as_secs_f64())
    } else {
        "no result line".to_owned()
    };
    let detail = said
        .first()
        .map(|s| s.to_string())
        .or_else(|| {
            out.stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    if detail.is_empty() {
        why
    } else {
        format!("{why}: {detail}")
    }
}

/// Who runs a measurement.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Our ranks (this binary).
    Ours,
    /// The C program with the environment that keeps MPICH on TCP.
    MpichTcp,
    /// The C program with MPICH's defaults.
    MpichDefault,
}

/// The programs and environments.
struct Setup {
    /// This binary.
    ours: PathBuf,
    /// The built C program, or why there is none.
    reference: Result<PathBuf, String>,
    /// The environment that keeps MPICH on TCP.
    tcp_env: Vec<(String, String)>,
}

/// What `mpiexec` starts on each rank.
struct Invocation {
    /// The program.
    exe: PathBuf,
    /// Its arguments.
    args: Vec<String>,
    /// What its environment adds.
    env: Vec<(String, String)>,
}

impl Setup {
    /// The program, its arguments and environment for `side` measuring `role`.
    fn command(&self, side: Side, role: &str) -> Option<Invocation> {
        match side {
            Side::Ours => Some(Invocation {
                exe: self.ours.clone(),
                args: Vec::new(),
                env: vec![(ROLE_ENV.to_owned(), role.to_owned())],
            }),
            Side::MpichTcp | Side::MpichDefault => {
                let exe = self.reference.as_ref().ok()?.clone();
                let args = role.split_whitespace().map(str::to_owned).collect();
                let env = if side == Side::MpichTcp {
                    self.tcp_env.clone()
                } else {
                    Vec::new()
                };
                Some(Invocation { exe, args, env })
            }
        }
    }
}

/// The samples of one side of one row.
#[derive(Default)]
struct Series {
    samples: Vec<Duration>,
    /// Why runs failed.
    failures: Vec<String>,
    /// Runs that printed their result but did not exit by themselves.
    hung_after_result: usize,
}

impl Series {
    fn record(&mut self, outcome: Result<Outcome, String>, mode: Mode, n: usize) {
        let out = match outcome {
            Ok(out) => out,
            Err(e) => {
                self.failures.push(e);
                return;
            }
        };
        if mode == Mode::Init {
            if out.success && !out.stopped {
                self.samples.push(out.elapsed);
            } else if out.stopped {
                self.failures.push(format!(
                    "did not exit within {:.0} s",
                    out.elapsed.as_secs_f64()
                ));
            } else {
                self.failures.push(describe_failure(&out));
            }
            return;
        }
        match parse_result(&out, mode, n) {
            Ok(times) => {
                if out.stopped {
                    self.hung_after_result += 1;
                }
                self.samples.extend(times);
            }
            Err(e) => self.failures.push(e),
        }
    }

    fn median(&self) -> Option<Duration> {
        (!self.samples.is_empty()).then(|| median(self.samples.clone()))
    }

    fn min_max(&self) -> Option<(Duration, Duration)> {
        min_max(&self.samples)
    }

    /// Why there is no number, or what else to know about it.
    fn note(&self) -> String {
        let mut notes = Vec::new();
        if !self.failures.is_empty() {
            notes.push(format!(
                "{} run(s) failed: {}",
                self.failures.len(),
                self.failures[0]
            ));
        }
        if self.hung_after_result > 0 {
            notes.push(format!(
                "{} run(s) did not exit within {} s of printing the result (stopped; the \
                 result counts)",
                self.hung_after_result,
                FINALIZE_GRACE.as_secs()
            ));
        }
        notes.join("; ")
    }
}

/// A row of the table: a measurement and its three sides.
struct Row {
    label: &'static str,
    mode: Mode,
    ranks: usize,
    warmup: u32,
    iters: u32,
    reps: u32,
    ours: Series,
    tcp: Series,
    default: Series,
}

impl Row {
    fn role(&self) -> String {
        format!(
            "{} {} {} {}",
            self.mode.name(),
            self.warmup,
            self.iters,
            self.reps
        )
    }

    fn series(&mut self, side: Side) -> &mut Series {
        match side {
            Side::Ours => &mut self.ours,
            Side::MpichTcp => &mut self.tcp,
            Side::MpichDefault => &mut self.default,
        }
    }
}

/// The smallest and the largest of `samples`.
fn min_max(samples: &[Duration]) -> Option<(Duration, Duration)> {
    Some((*samples.iter().min()?, *samples.iter().max()?))
}

/// The raw TCP baseline: samples with the threads where the scheduler puts them, and with both
/// pinned to one core.
struct RawTcp {
    /// The echo server for the unpinned samples.
    addr: std::net::SocketAddr,
    /// Round trips per sample.
    rounds: u32,
    /// The pinned sampler, when pinning works here.
    pinned: Option<(mpsc::Sender<u32>, mpsc::Receiver<Duration>)>,
    /// Mean round trip of each unpinned sample.
    free: Vec<Duration>,
    /// Mean round trip of each pinned sample.
    one_core: Vec<Duration>,
}

impl RawTcp {
    fn new(rounds: u32) -> Self {
        RawTcp {
            addr: raw_tcp::echo_server(8),
            rounds,
            pinned: pinned_sampler(),
            free: Vec::new(),
            one_core: Vec::new(),
        }
    }

    /// One sample of each kind.
    fn sample(&mut self) {
        self.free
            .push(raw_tcp::round_trips(self.addr, 8, self.rounds));
        if let Some((ask, got)) = &self.pinned {
            let taken = ask.send(self.rounds).ok().and_then(|_| got.recv().ok());
            match taken {
                Some(d) => self.one_core.push(d),
                None => self.pinned = None,
            }
        }
    }
}

/// A thread pinned to one core that takes raw TCP samples on request: it starts its own echo
/// server, whose threads inherit its pin. `None` when pinning fails.
fn pinned_sampler() -> Option<(mpsc::Sender<u32>, mpsc::Receiver<Duration>)> {
    let (ask, asked) = mpsc::channel::<u32>();
    let (tell, got) = mpsc::channel::<Duration>();
    let (ready_tx, ready) = mpsc::channel::<bool>();
    std::thread::spawn(move || {
        let pinned = pin_to_one_core();
        let _ = ready_tx.send(pinned);
        if !pinned {
            return;
        }
        let addr = raw_tcp::echo_server(8);
        while let Ok(n) = asked.recv() {
            if tell.send(raw_tcp::round_trips(addr, 8, n)).is_err() {
                return;
            }
        }
    });
    ready.recv().ok().filter(|&p| p).map(|_| (ask, got))
}

/// Pins the calling thread to the first core it may run on.
fn pin_to_one_core() -> bool {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `cpu_set_t` is plain data (all zeroes is the empty set), and both calls get a
    // pointer to one of the size they are told; pid 0 is the calling thread.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
            return false;
        }
        let Some(cpu) = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &allowed))
        else {
            return false;
        };
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        libc::sched_setaffinity(0, size, &one) == 0
    }
}

/// `d` with a unit that fits it.
fn fmt_time(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.1} us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// `lo-hi`, with the unit once when both have the same.
fn fmt_range((lo, hi): (Duration, Duration)) -> String {
    let (lo, hi) = (fmt_time(lo), fmt_time(hi));
    match (lo.split_once(' '), hi.split_once(' ')) {
        (Some((l, lu)), Some((h, hu))) if lu == hu => format!("{l}-{h} {hu}"),
        _ => format!("{lo}-{hi}"),
    }
}

/// The 1, 5 and 15 minute load averages, for the header.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}

/// MB/s (10^6 bytes) for an 8 MB message taking `d`.
fn mbps(d: Duration) -> f64 {
    (BIG_LEN * 8) as f64 / 1e6 / d.as_secs_f64()
}

/// MPICH's version and device, from `mpichversion`.
fn mpich_version() -> (String, String) {
    let text = Command::new("mpichversion")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    (field("MPICH Version:"), field("MPICH Device:"))
}

/// The environment that keeps this MPICH off shared memory: MPICH's own switch, and the
/// netmod's.
fn tcp_env(device: &str) -> Vec<(String, String)> {
    let mut env = vec![("MPIR_CVAR_NOLOCAL".to_owned(), "1".to_owned())];
    if device.contains("ucx") {
        env.push(("UCX_TLS".to_owned(), "tcp".to_owned()));
    } else if device.contains("ofi") {
        env.push(("FI_PROVIDER".to_owned(), "tcp".to_owned()));
    } else {
        // ch3 (nemesis) or unknown: name both netmods' switches; the wrong one is ignored.
        env.push(("MPIR_CVAR_CH3_NOLOCAL".to_owned(), "1".to_owned()));
        env.push(("UCX_TLS".to_owned(), "tcp".to_owned()));
        env.push(("FI_PROVIDER".to_owned(), "tcp".to_owned()));
    }
    env
}

/// Builds the C reference with `mpicc -O2` into the target directory.
fn build_reference() -> Result<PathBuf, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/mpich_reference.c");
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mpich_reference");
    let out = Command::new("mpicc")
        .arg("-O2")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output();
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("mpicc not found (apt-get install mpich)".to_owned())
        }
        Err(e) => Err(format!("mpicc: {e}")),
        Ok(o) if !o.status.success() => Err(format!(
            "mpicc -O2 {} failed: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => Ok(exe),
    }
}

fn mpiexec_runs() -> bool {
    Command::new("mpiexec")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn parent() {
    let quick = std::env::var_os("PLACES_BENCH_QUICK").is_some();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rounds = if quick { 1 } else { 3 };
    let pick = |quick_v: u32, full: u32| if quick { quick_v } else { full };
    // (label, mode, ranks, warmup, iters per repetition, repetitions per round)
    let plan: [(&'static str, Mode, usize, u32, u32, u32); 6] = [
        (
            "8-byte ping-pong round trip, 2 ranks",
            Mode::PingPong,
            2,
            pick(100, 500),
            pick(200, 2000),
            pick(3, 5),
        ),
        (
            "8 MB one way, 2 ranks: time per transfer",
            Mode::Transfer,
            2,
            pick(1, 2),
            pick(3, 10),
            pick(3, 5),
        ),
        (
            "allreduce 8 B (one f64 sum), 2 ranks",
            Mode::Allreduce8,
            2,
            pick(50, 200),
            pick(100, 1000),
            pick(3, 5),
        ),
        (
            "allreduce 8 B (one f64 sum), 4 ranks",
            Mode::Allreduce8,
            4,
            pick(5, 20),
            pick(20, 100),
            pick(3, 5),
        ),
        (
            "allreduce 8 MB (1M f64 elementwise), 2 ranks",
            Mode::Allreduce8M,
            2,
            1,
            pick(2, 10),
            pick(3, 5),
        ),
        (
            "allreduce 8 MB (1M f64 elementwise), 4 ranks",
            Mode::Allreduce8M,
            4,
            1,
            pick(2, 5),
            pick(3, 5),
        ),
    ];
    let mut rows: Vec<Row> = plan
        .into_iter()
        .map(|(label, mode, ranks, warmup, iters, reps)| Row {
            label,
            mode,
            ranks,
            warmup,
            iters,
            reps,
            ours: Series::default(),
            tcp: Series::default(),
            default: Series::default(),
        })
        .collect();
    let mut launch = Row {
        label: "launch: mpiexec -n 4, form the group, exit",
        mode: Mode::Init,
        ranks: 4,
        warmup: 0,
        iters: 1,
        reps: 3,
        ours: Series::default(),
        tcp: Series::default(),
        default: Series::default(),
    };

    println!(
        "RMPI vs MPICH bench: {rounds} round(s) alternating ours / MPICH over TCP / MPICH default, \
         medians{}",
        if quick { " (quick)" } else { "" }
    );

    // The baseline, in this process: an echo thread and this one, wherever the scheduler puts
    // them, and the same with both on one core (a wake-up across cores costs more on some
    // machines, virtual ones above all).
    let mut raw = RawTcp::new(pick(500, 2000));

    let have_mpiexec = mpiexec_runs();
    let (version, device) = mpich_version();
    let setup = Setup {
        ours: std::env::current_exe().expect("this bench's executable"),
        reference: if have_mpiexec {
            build_reference()
        } else {
            Err("mpiexec not found".to_owned())
        },
        tcp_env: tcp_env(&device),
    };
    let tcp_env_text: Vec<String> = setup
        .tcp_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let tcp_env_text = tcp_env_text.join(" ");
    match (&setup.reference, have_mpiexec) {
        (_, false) => println!(
            "machine: {cores} core(s), load average {}\n\
             skipped: mpiexec not found (apt-get install mpich): no RMPI or MPICH rows, only the \
             raw TCP baseline",
            load_average()
        ),
        (Ok(_), true) => println!(
            "machine: {cores} core(s), load average {}; MPICH {version} ({device}); \
             MPICH over TCP with: {tcp_env_text}",
            load_average()
        ),
        (Err(e), true) => println!(
            "machine: {cores} core(s), load average {}\nskipped: {e}: no MPICH columns",
            load_average()
        ),
    }

    if have_mpiexec {
        let sides = [Side::Ours, Side::MpichTcp, Side::MpichDefault];
        // A first launch of each program, untimed: page cache, and a failure shows early.
        for side in sides {
            if let Some(run) = setup.command(side, "init") {
                let _ = mpiexec(4, &run, LAUNCH_TIMEOUT);
            }
        }
        for _ in 0..rounds {
            for row in rows.iter_mut() {
                raw.sample();
                let role = row.role();
                for side in sides {
                    let Some(run) = setup.command(side, &role) else {
                        continue;
                    };
                    let out = mpiexec(row.ranks, &run, RUN_TIMEOUT);
                    let (mode, ranks) = (row.mode, row.ranks);
                    row.series(side).record(out, mode, ranks);
                }
            }
            for _ in 0..launch.reps {
                for side in sides {
                    let Some(run) = setup.command(side, "init") else {
                        continue;
                    };
                    let out = mpiexec(4, &run, LAUNCH_TIMEOUT);
                    launch.series(side).record(out, Mode::Init, 4);
                }
            }
        }
    } else {
        for _ in 0..rounds * rows.len() {
            raw.sample();
        }
    }
    let raw_median = median(raw.free.clone());
    let one_core = (!raw.one_core.is_empty()).then(|| median(raw.one_core.clone()));
    println!(
        "raw blocking TCP round trip, 8 bytes, loopback (two threads, TCP_NODELAY): {} \
         (min-max {}, {} samples of {} round trips)",
        fmt_time(raw_median),
        fmt_range(min_max(&raw.free).expect("raw samples")),
        raw.free.len(),
        raw.rounds
    );
    match min_max(&raw.one_core) {
        Some(range) => println!(
            "  the same with both threads pinned to one core: {} (min-max {})",
            fmt_time(one_core.unwrap_or_default()),
            fmt_range(range)
        ),
        None => println!("  (could not pin both threads to one core for a second baseline)"),
    }
    if !have_mpiexec {
        return;
    }
    if 4 > cores {
        println!(
            "note: 4 ranks on {cores} core(s) oversubscribe the machine; MPICH busy-polls while it waits"
        );
    }
    print_table(
        &rows,
        &launch,
        raw_median,
        one_core,
        setup.reference.is_ok(),
    );
    if setup.reference.is_ok() {
        // The evidence that the TCP environment left shared memory: a shared-memory round trip
        // takes about a microsecond, one over loopback TCP ten or more.
        let pp = &rows[0];
        if let (Some(t), Some(d)) = (pp.tcp.median(), pp.default.median()) {
            let x = t.as_secs_f64() / d.as_secs_f64();
            let verdict = if x < 3.0 {
                "WARNING: that is close, so MPICH may not have left shared memory"
            } else {
                "so it left shared memory"
            };
            println!(
                "MPICH ping-pong with {tcp_env_text}: {} vs {} with its defaults ({x:.1}x); {verdict}",
                fmt_time(t),
                fmt_time(d)
            );
        }
    }
    println!("load average at the end: {}", load_average());
}

const W_LABEL: usize = 46;

fn print_table(rows: &[Row], launch: &Row, raw: Duration, one_core: Option<Duration>, mpich: bool) {
    println!();
    println!(
        "{:<W_LABEL$} {:>10} {:>21} {:>10} {:>10} {:>10}  target",
        "row", "ours", "ours min-max", "MPICH tcp", "ours/MPICH", "ours/raw"
    );
    let dash = |s: Option<String>| s.unwrap_or_else(|| "-".to_owned());
    let mut notes: Vec<String> = Vec::new();
    let mut note = |row: &str, side: &str, s: &Series| {
        let n = s.note();
        if !n.is_empty() {
            notes.push(format!("  {row} ({side}): {n}"));
        }
    };
    for row in rows.iter().chain(std::iter::once(launch)) {
        let ours = row.ours.median();
        let tcp = row.tcp.median().filter(|_| mpich);
        let to_raw = matches!(
            (row.mode, row.ranks),
            (Mode::PingPong, _) | (Mode::Allreduce8, 2)
        );
        let target = match (row.mode, row.ranks) {
            (Mode::PingPong, _) | (Mode::Allreduce8, 2) => ours.map(|o| {
                let met = o <= raw;
                let pinned = one_core
                    .map(|p| format!(" ({} the one-core round trip)", ratio(o, p)))
                    .unwrap_or_default();
                format!(
                    "<= 1.0x raw TCP round trip: {}{pinned}",
                    if met { "met" } else { "not met" }
                )
            }),
            (Mode::Allreduce8M, _) => match (ours, tcp) {
                (Some(o), Some(t)) => Some(format!(
                    "<= 2.0x MPICH over TCP: {}",
                    if o.as_secs_f64() <= 2.0 * t.as_secs_f64() {
                        "met"
                    } else {
                        "not met"
                    }
                )),
                _ => Some("<= 2.0x MPICH over TCP".to_owned()),
            },
            (Mode::Init, _) => ours.map(|o| {
                format!(
                    "ours < 200 ms: {}",
                    if o < Duration::from_millis(200) {
                        "met"
                    } else {
                        "not met"
                    }
                )
            }),
            _ => None,
        };
        let ours_text = match ours {
            Some(o) => fmt_time(o),
            None => "failed".to_owned(),
        };
        println!(
            "{:<W_LABEL$} {:>10} {:>21} {:>10} {:>10} {:>10}  {}",
            row.label,
            ours_text,
            dash(row.ours.min_max().map(fmt_range)),
            dash(tcp.map(fmt_time)),
            dash(ours.zip(tcp).map(|(o, t)| ratio(o, t))),
            dash(ours.filter(|_| to_raw).map(|o| ratio(o, raw))),
            target.unwrap_or_default()
        );
        if row.mode == Mode::Transfer {
            // The same measurement as throughput: higher is better, the ratio is ours/MPICH MB/s.
            let (lo, hi) = row
                .ours
                .min_max()
                .map_or((0.0, 0.0), |(lo, hi)| (mbps(hi), mbps(lo)));
            println!(
                "{:<W_LABEL$} {:>10} {:>21} {:>10} {:>10} {:>10}  (throughput: the ratio is ours/MPICH MB/s)",
                "8 MB one way, 2 ranks: MB/s",
                dash(ours.map(|o| format!("{:.0}", mbps(o)))),
                dash(ours.map(|_| format!("{lo:.0}-{hi:.0}"))),
                dash(tcp.map(|t| format!("{:.0}", mbps(t)))),
                dash(ours.zip(tcp).map(|(o, t)| format!("{:.2}x", mbps(o) / mbps(t)))),
                "-",
            );
        }
        note(row.label, "ours", &row.ours);
        if mpich {
            note(row.label, "MPICH tcp", &row.tcp);
            note(row.label, "MPICH default", &row.default);
        }
    }
    if mpich {
        println!();
        println!(
            "{:<W_LABEL$} {:>12} {:>21} {:>14}",
            "MPICH with its defaults (shared memory)", "MPICH", "MPICH min-max", "ours/MPICH"
        );
        for row in rows.iter().chain(std::iter::once(launch)) {
            let d = row.default.median();
            println!(
                "{:<W_LABEL$} {:>12} {:>21} {:>14}",
                row.label,
                dash(d.map(fmt_time)),
                dash(row.default.min_max().map(fmt_range)),
                dash(row.ours.median().zip(d).map(|(o, d)| ratio(o, d))),
            );
            if row.mode == Mode::Transfer {
                println!(
                    "{:<W_LABEL$} {:>12} {:>21} {:>14}",
                    "8 MB one way, 2 ranks: MB/s",
                    dash(d.map(|d| format!("{:.0}", mbps(d)))),
                    "",
                    dash(
                        row.ours
                            .median()
                            .zip(d)
                            .map(|(o, d)| format!("{:.2}x", mbps(o) / mbps(d)))
                    ),
                );
            }
        }
    }
    let samples = |s: &Series| s.samples.len();
    println!();
    println!(
        "ours/MPICH: our median over MPICH's (times; on the MB/s row, throughputs); \
         ours/raw: over the raw TCP round trip above"
    );
    println!(
        "samples per row (ours / MPICH tcp / MPICH default): {}",
        rows.iter()
            .chain(std::iter::once(launch))
            .map(|r| format!(
                "{} on {}: {}/{}/{}",
                r.mode.name(),
                r.ranks,
                samples(&r.ours),
                samples(&r.tcp),
                samples(&r.default)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !notes.is_empty() {
        println!("notes:");
        for n in notes {
            println!("{n}");
        }
    }
}
