//! The NAS Parallel Benchmarks IS and CG (NPB 3.4), as places programs: the kernels, NPB's
//! problem classes and verification, and the summary NPB prints. Shared by the `nas_is` and
//! `nas_cg` examples, the tests and the bench.
//!
//! Each kernel runs in two modes here: sequential (plain vectors, one thread), and `fork_join!`
//! over local places that share the vectors the algorithm shares (the dissertation's chapter 3
//! shape: each place owns a block, `cg_for!`-style loops over it, barriers between phases). The
//! problem sizes and verification values are NPB's (see `shared/nas/VERIFY.md`).

#![allow(dead_code)]

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Seq => write!(f, "seq"),
            Mode::Places(1) => write!(f, "places (1 worker)"),
            Mode::Places(n) => write!(f, "places ({n} workers)"),
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

/// Parses `--class C --mode seq|places --workers N [--corrupt]`.
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
                    "unknown argument {other:?}; usage: --class S|W|A|B --mode seq|places --workers N [--corrupt]"
                ))
            }
        }
    }
    let mode = match mode.as_str() {
        "seq" => Mode::Seq,
        "places" => Mode::Places(workers),
        "nodes" => {
            return Err(
                "--mode nodes needs RMPI across nodes, which places does not have yet; use seq or places"
                    .into(),
            )
        }
        other => return Err(format!("no mode {other:?}: write seq or places")),
    };
    Ok(Args {
        class,
        mode,
        corrupt,
    })
}
