//! The NAS Parallel Benchmarks IS and CG (NPB 3.4), as places programs: the kernels, NPB's
//! problem classes and verification, and the summary NPB prints. Shared by the `nas_is` and
//! `nas_cg` examples, the tests and the bench.
//!
//! Each kernel runs in three modes here: sequential (plain vectors, one thread); `fork_join!`
//! over local places that share the vectors the algorithm shares (the dissertation's chapter 3
//! shape: each place owns a block, `cg_for!`-style loops over it, barriers between phases); and
//! RMPI ranks on nodes (chapter 4: one rank per node, each with its own memory, exchanging
//! messages over direct links), launched by `rmpi_launch` on local nodes or by `mpiexec`/`srun`.
//! The problem sizes and verification values are NPB's (see `shared/nas/VERIFY.md`).

#![allow(dead_code)]

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use places::rmpi::{rmpi_build_default_config, RmpiConfig, RmpiError, RmpiNodeConfig};

pub mod cg;
pub mod is;
pub mod randlc;

/// An NPB problem class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Class {
    /// Sample: seconds at most.
    S,
    /// Workstation.
    W,
    /// The first standard size.
    A,
    /// Four to five times A.
    B,
}

impl FromStr for Class {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "S" | "s" => Ok(Class::S),
            "W" | "w" => Ok(Class::W),
            "A" | "a" => Ok(Class::A),
            "B" | "b" => Ok(Class::B),
            _ => Err(format!("no class {s:?}: write S, W, A or B")),
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{self:?}"))
    }
}

/// `x` as C's `%W.Pe` prints it (`8.5971775078648E+00`), right-aligned in `width`.
pub fn sci(x: f64, width: usize, precision: usize) -> String {
    let s = format!("{x:.precision$e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{:>width$}", format!("{mantissa}E{sign}{:02}", exp.abs()))
}

/// How a kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One thread, plain vectors.
    Seq,
    /// `fork_join!` over this many local places sharing vectors.
    Places(usize),
    /// This many RMPI ranks, each a place on a node of its own, sharing nothing.
    Nodes(usize),
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Seq => write!(f, "seq"),
            Mode::Places(1) => write!(f, "places (1 worker)"),
            Mode::Places(n) => write!(f, "places ({n} workers)"),
            Mode::Nodes(1) => write!(f, "nodes (1 rank)"),
            Mode::Nodes(n) => write!(f, "nodes ({n} ranks)"),
        }
    }
}

/// What a run measured and whether it verified: NPB's summary.
#[derive(Debug, Clone)]
pub struct Report {
    /// "IS" or "CG".
    pub name: &'static str,
    pub class: Class,
    pub mode: Mode,
    /// Keys (IS) or rows (CG).
    pub size: usize,
    pub iterations: usize,
    /// The timed part only, as NPB times it.
    pub time: Duration,
    /// Millions of operations per second, by NPB's formula.
    pub mops: f64,
    /// "keys ranked" or "floating point".
    pub op_type: &'static str,
    pub verified: bool,
    /// Lines the kernel prints before the summary (CG's iterations, verification details).
    pub details: Vec<String>,
}

impl Report {
    /// The process exit code that says the same as the verification: 0 or 1.
    pub fn exit_code(&self) -> i32 {
        i32::from(!self.verified)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.details {
            writeln!(f, "{line}")?;
        }
        let verdict = if self.verified {
            "SUCCESSFUL"
        } else {
            "FAILED"
        };
        writeln!(f, " VERIFICATION {verdict}")?;
        writeln!(f)?;
        writeln!(f, " {} Benchmark Completed.", self.name)?;
        writeln!(f, " Class           = {:>24}", self.class)?;
        writeln!(f, " Size            = {:>24}", self.size)?;
        writeln!(f, " Iterations      = {:>24}", self.iterations)?;
        writeln!(f, " Time in seconds = {:>24.3}", self.time.as_secs_f64())?;
        writeln!(f, " Mode            = {:>24}", self.mode.to_string())?;
        writeln!(f, " Mop/s total     = {:>24.2}", self.mops)?;
        writeln!(f, " Operation type  = {:>24}", self.op_type)?;
        write!(f, " Verification    = {verdict:>24}")
    }
}

/// The command line both examples take.
#[derive(Debug, Clone)]
pub struct Args {
    pub class: Class,
    pub mode: Mode,
    /// Change one key (IS) or one matrix value (CG) before the run, to see verification fail.
    pub corrupt: bool,
}

/// Parses `--class C --mode seq|places|nodes --workers N [--corrupt]`.
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut class = Class::S;
    let mut mode = "places".to_owned();
    let mut workers = places::processor_count();
    let mut corrupt = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--class" => class = value("--class")?.parse()?,
            "--mode" => mode = value("--mode")?,
            "--workers" => {
                let v = value("--workers")?;
                workers = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--workers takes a positive number, not {v:?}"))?;
            }
            "--corrupt" => corrupt = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: --class S|W|A|B --mode seq|places|nodes --workers N [--corrupt]"
                ))
            }
        }
    }
    let mode = match mode.as_str() {
        "seq" => Mode::Seq,
        "places" => Mode::Places(workers),
        "nodes" => Mode::Nodes(workers),
        other => return Err(format!("no mode {other:?}: write seq, places or nodes")),
    };
    Ok(Args {
        class,
        mode,
        corrupt,
    })
}

/// Why a run could not finish (a run that finishes but does not verify is a [`Report`]).
#[derive(Debug)]
pub enum RunError {
    /// A place of the shared-memory mode failed.
    Places(places::ForkJoinError),
    /// A rank of the nodes mode failed, or its launch did.
    Rmpi(RmpiError),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Places(e) => e.fmt(f),
            RunError::Rmpi(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RunError {}

impl From<places::ForkJoinError> for RunError {
    fn from(e: places::ForkJoinError) -> Self {
        RunError::Places(e)
    }
}

impl From<RmpiError> for RunError {
    fn from(e: RmpiError) -> Self {
        RunError::Rmpi(e)
    }
}

/// How the nodes mode starts its nodes (default: `NodeOptions::default()`); a test binary that
/// serves as the nodes sets `NodeOptions::for_this_test_binary()` here first.
static NODE_OPTIONS: std::sync::OnceLock<places::NodeOptions> = std::sync::OnceLock::new();

/// Sets how the nodes mode starts its nodes; the first call wins.
pub fn use_node_options(opts: places::NodeOptions) {
    let _ = NODE_OPTIONS.set(opts);
}

/// The launch of `np` ranks running `func` (a `#[place]` of the module `module`), rank `r` on
/// a local node of its own with `args[r]`: `rmpi_launch`'s default config and its configs.
pub fn launch_config<A: Clone>(
    module: &str,
    func: &str,
    args: Vec<A>,
) -> (RmpiConfig<A>, Vec<RmpiNodeConfig<A>>) {
    let mut default = rmpi_build_default_config(module, func, args[0].clone());
    if let Some(opts) = NODE_OPTIONS.get() {
        default = default.node_options(opts.clone());
    }
    (default, local_ranks(func, args))
}

/// One config per rank for `rmpi_launch`, each on a local node of its own, with its own
/// arguments.
fn local_ranks<A: Clone>(name: &str, args: Vec<A>) -> Vec<RmpiNodeConfig<A>> {
    args.into_iter()
        .enumerate()
        .map(|(r, a)| RmpiNodeConfig::new("localhost", 0, format!("{name}_{r}"), r).args(a))
        .collect()
}

/// `[a[i] + b[i]]`: the reduction of the dot products' partial sums.
pub fn add<const K: usize>(mut a: [f64; K], b: [f64; K]) -> [f64; K] {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
    a
}
