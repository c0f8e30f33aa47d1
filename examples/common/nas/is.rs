//! NPB IS: rank 2^n integer keys by counting, ten times, checking five keys' ranks each time
//! and the full sort at the end.
//!
//! This is NPB's counting variant (without `USE_BUCKETS`): every key is counted straight into
//! an array of `max_key` counters, which a prefix sum turns into ranks. The bucketed variant
//! first scatters the keys into 2^10 buckets; on this machine that scatter alone (1,024 write
//! streams across 32 MB) takes four times as long as the whole counting variant, in C as in
//! Rust, so it is not used. In parallel, each place counts its own block of keys into counters of
//! its own, and the places then add up each other's counters, each for its own range of keys.

use std::time::{Duration, Instant};

use places::prelude::*;
use places::rmpi::{op, rmpi_finish, rmpi_init, rmpi_launch, Collectives, RmpiChannel, RmpiError};
use places::Partition;

use super::randlc::{Randlc, SEED};
use super::{launch_config, Class, Mode, Report, RunError};

/// Iterations NPB times.
pub const ITERATIONS: usize = 10;
const TEST_ARRAY_SIZE: usize = 5;

/// One class's sizes and partial-verification values.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub class: Class,
    pub total_keys: usize,
    pub max_key: usize,
    test_index: [usize; TEST_ARRAY_SIZE],
    test_rank: [i64; TEST_ARRAY_SIZE],
}

impl Params {
    /// NPB's parameters for `class`.
    pub fn of(class: Class) -> Self {
        let (keys_log2, max_key_log2, test_index, test_rank) = match class {
            Class::S => (
                16,
                11,
                [48427, 17148, 23627, 62548, 4431],
                [0, 18, 346, 64917, 65463],
            ),
            Class::W => (
                20,
                16,
                [357773, 934767, 875723, 898999, 404505],
                [1249, 11698, 1039987, 1043896, 1048018],
            ),
            Class::A => (
                23,
                19,
                [2112377, 662041, 5336171, 3642833, 4250760],
                [104, 17523, 123928, 8288932, 8388264],
            ),
            Class::B => (
                25,
                21,
                [41869, 812306, 5102857, 18232239, 26860214],
                [33422937, 10244, 59149, 33135281, 99],
            ),
        };
        Self {
            class,
            total_keys: 1 << keys_log2,
            max_key: 1 << max_key_log2,
            test_index,
            test_rank,
        }
    }

    /// The rank that test key `i` must have in iteration `it` (NPB's per-class offsets).
    fn expected_rank(&self, i: usize, it: usize) -> i64 {
        let (r, it) = (self.test_rank[i], it as i64);
        match self.class {
            Class::S if i <= 2 => r + it,
            Class::S => r - it,
            Class::W if i < 2 => r + (it - 2),
            Class::W => r - it,
            Class::A if i <= 2 => r + (it - 1),
            Class::A => r - (it - 1),
            Class::B if matches!(i, 1 | 2 | 4) => r + it,
            Class::B => r - it,
        }
    }

    /// NPB's Mop/s for a timed run of `time`.
    pub fn mops(&self, time: Duration) -> f64 {
        (ITERATIONS * self.total_keys) as f64 / time.as_secs_f64() / 1e6
    }
}

/// NPB's keys: `floor(max_key/4 * (r1 + r2 + r3 + r4))` from four consecutive `randlc` draws.
pub fn generate_keys(p: &Params) -> Vec<i32> {
    let mut rng = Randlc::new(SEED);
    let k = (p.max_key / 4) as f64;
    (0..p.total_keys)
        .map(|_| {
            let mut x = rng.next();
            x += rng.next();
            x += rng.next();
            x += rng.next();
            (k * x) as i32
        })
        .collect()
}

/// Changes one key so that the run must fail verification: the largest key (outside the slots
/// each iteration overwrites and the test slots) becomes 0, which raises every test key's rank.
pub fn corrupt(p: &Params, keys: &mut [i32]) {
    let skip = |i: usize| i <= 2 * ITERATIONS || p.test_index.contains(&i);
    let (at, _) = keys
        .iter()
        .enumerate()
        .filter(|&(i, _)| !skip(i))
        .max_by_key(|&(_, &k)| k)
        .expect("keys");
    keys[at] = 0;
}

/// Runs IS on `keys` (from [`generate_keys`], perhaps [`corrupt`]ed) in `mode`.
pub fn run(p: &Params, keys: Vec<i32>, mode: Mode) -> Result<Report, RunError> {
    let outcome = match mode {
        Mode::Seq => run_seq(p, keys),
        Mode::Places(np) => run_places(p, keys, np)?,
        Mode::Nodes(np) => run_nodes(p, &keys, np)?,
    };
    Ok(report(p, mode, outcome))
}

/// NPB's summary of a run: its timed part, the partial checks it passed, and the last
/// iteration's ranks and keys, which the full verification checks here.
pub fn report(p: &Params, mode: Mode, outcome: Outcome) -> Report {
    let (time, passed, mut ranks, keys) = outcome;
    let sorted = full_verify(&mut ranks, &keys);
    let mut details = Vec::new();
    if !sorted {
        details.push(" Full_verify: the keys are out of sort".to_owned());
    }
    let checks = passed + usize::from(sorted);
    if checks != TEST_ARRAY_SIZE * ITERATIONS + 1 {
        details.push(format!(
            " {checks} of {} checks passed",
            TEST_ARRAY_SIZE * ITERATIONS + 1
        ));
    }
    Report {
        name: "IS",
        class: p.class,
        mode,
        size: p.total_keys,
        iterations: ITERATIONS,
        time,
        mops: p.mops(time),
        op_type: "keys ranked",
        verified: checks == TEST_ARRAY_SIZE * ITERATIONS + 1,
        details,
    }
}

/// Sets the two keys NPB changes in iteration `it`, where they fall in `keys` (which holds the
/// keys from index `first` on).
fn set_iteration_keys(p: &Params, it: usize, first: usize, keys: &mut [i32]) {
    for (at, value) in [(it, it as i32), (it + ITERATIONS, (p.max_key - it) as i32)] {
        if let Some(k) = at.checked_sub(first).and_then(|i| keys.get_mut(i)) {
            *k = value;
        }
    }
}

/// The test keys found in `keys` (which holds the keys from index `first` on): `(i, value)`.
fn test_keys(p: &Params, first: usize, keys: &[i32]) -> Vec<(usize, i32)> {
    (0..TEST_ARRAY_SIZE)
        .filter_map(|i| {
            let at = p.test_index[i].checked_sub(first)?;
            Some((i, *keys.get(at)?))
        })
        .collect()
}

/// Counts `keys` into `counts` (one counter per key value) and turns the counts into ranks:
/// `counts[k]` becomes the number of keys `<= k`.
fn count_and_rank(keys: &[i32], counts: &mut [i32]) {
    counts.fill(0);
    for &k in keys {
        counts[k as usize] += 1;
    }
    let mut sum = 0;
    for c in counts.iter_mut() {
        sum += *c;
        *c = sum;
    }
}

/// The partial checks of one iteration, for the test keys `tests` (read before ranking).
fn partial_checks(
    p: &Params,
    it: usize,
    tests: &[(usize, i32)],
    rank_of: impl Fn(usize) -> i32,
) -> usize {
    tests
        .iter()
        .filter(|&&(i, k)| {
            let k = k as usize;
            0 < k && k < p.total_keys && i64::from(rank_of(k - 1)) == p.expected_rank(i, it)
        })
        .count()
}

/// NPB's full verification: places each key by its rank and checks the result is sorted.
/// `ranks` are the last iteration's (consumed).
fn full_verify(ranks: &mut [i32], keys: &[i32]) -> bool {
    let mut sorted = vec![0i32; keys.len()];
    for &k in keys {
        let r = &mut ranks[k as usize];
        *r -= 1;
        sorted[*r as usize] = k;
    }
    sorted.windows(2).all(|w| w[0] <= w[1])
}

/// What a run hands to verification: the timed part, the partial checks passed, the last
/// iteration's ranks and the keys as they were then.
pub type Outcome = (Duration, usize, Vec<i32>, Vec<i32>);

/// Sequential IS.
fn run_seq(p: &Params, mut keys: Vec<i32>) -> Outcome {
    let mut ranks = vec![0i32; p.max_key];
    let mut rank = |keys: &mut [i32], it: usize| -> usize {
        set_iteration_keys(p, it, 0, keys);
        let tests = test_keys(p, 0, keys);
        count_and_rank(keys, &mut ranks);
        partial_checks(p, it, &tests, |k| ranks[k])
    };
    rank(&mut keys, 1);
    let start = Instant::now();
    let passed: usize = (1..=ITERATIONS).map(|it| rank(&mut keys, it)).sum();
    (start.elapsed(), passed, ranks, keys)
}

/// IS on `np` local places. Each owns a block of keys. Per iteration each counts and ranks its
/// keys in counters of its own and publishes them (barrier); then each adds up everyone's
/// counters for its own range of key values into the shared ranks (barrier), and checks the
/// test keys it owns.
fn run_places(p: &Params, keys: Vec<i32>, np: usize) -> Result<Outcome, ForkJoinError> {
    let shared_keys = SharedI32s::from_slice(&keys);
    drop(keys);
    let ranks = SharedI32s::zeroed(p.max_key);
    let class = p.class;
    let results = fork_join!(
        np,
        cg,
        [
            class: Class,
            keys: SharedI32s = shared_keys.clone(),
            ranks: SharedI32s = ranks.clone(),
            counts: SharedI32s = SharedI32s::zeroed(np * p.max_key)
        ] -> (Duration, usize),
        {
            let p = Params::of(class);
            let (id, np, mk) = (cg.id(), cg.cnt(), p.max_key);
            let std::ops::Range { start: lo, end: hi } = cg.partition(0..p.total_keys).range();
            let std::ops::Range { start: vlo, end: vhi } = cg.partition(0..mk).range();
            let mut mine = vec![0i32; hi - lo];
            keys.read_slice(lo, &mut mine);
            let mut my_counts = vec![0i32; mk];
            let mut sums = vec![0i32; vhi - vlo];
            let mut theirs = vec![0i32; vhi - vlo];
            let mut rank = |it: usize| -> usize {
                set_iteration_keys(&p, it, lo, &mut mine);
                let tests = test_keys(&p, lo, &mine);
                count_and_rank(&mine, &mut my_counts);
                counts.write_slice(id * mk, &my_counts);
                cg.barrier();
                sums.fill(0);
                for w in 0..np {
                    counts.read_slice(w * mk + vlo, &mut theirs);
                    for (s, t) in sums.iter_mut().zip(&theirs) {
                        *s += t;
                    }
                }
                ranks.write_slice(vlo, &sums);
                cg.barrier();
                partial_checks(&p, it, &tests, |k| ranks.get(k))
            };
            rank(1);
            cg.barrier();
            let start = Instant::now();
            let passed: usize = (1..=ITERATIONS).map(&mut rank).sum();
            cg.barrier();
            let time = start.elapsed();
            // Untimed: the keys as they are now, for the full verification.
            keys.write_slice(lo, &mine);
            (time, passed)
        }
    )?;
    let time = results.iter().map(|r| r.0).max().unwrap_or_default();
    let passed = results.iter().map(|r| r.1).sum();
    Ok((time, passed, ranks.to_vec(), shared_keys.to_vec()))
}

/// What one IS rank is given: the class, the index of its first key, and its block of keys.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RankArgs {
    class: Class,
    first: usize,
    keys: Vec<i32>,
}

/// Each of `np` ranks' [`RankArgs`]: contiguous blocks of `keys`.
pub fn rank_args(p: &Params, keys: &[i32], np: usize) -> Vec<RankArgs> {
    (0..np)
        .map(|id| {
            let r = Partition::block(0..keys.len(), id, np).range();
            RankArgs {
                class: p.class,
                first: r.start,
                keys: keys[r].to_vec(),
            }
        })
        .collect()
}

/// One IS rank (the nodes mode, and each process under `mpiexec`). Per iteration it counts and
/// ranks its own keys in counters of its own, and a `reduce_scatter` of everyone's counters
/// gives it the ranks of its own range of key values; two allreduces of five numbers then tell
/// every rank the test keys (each in one rank's keys) and their ranks (each in one rank's
/// range). Returns, at rank 0, the timed part (the slowest rank's), the partial checks passed
/// and, gathered after the timed part, the last ranks and the keys for the full verification.
///
/// # Errors
///
/// [`RmpiError`] when a rank is gone.
pub fn run_rank(comm: &Comm, args: RankArgs) -> Result<Option<Outcome>, RmpiError> {
    let p = Params::of(args.class);
    let (id, np, mk) = (comm.id(), comm.cnt(), p.max_key);
    let (lo, mut mine) = (args.first, args.keys);
    let values: Vec<std::ops::Range<usize>> = (0..np)
        .map(|w| Partition::block(0..mk, w, np).range())
        .collect();
    let own = values[id].clone();
    let mut counts = vec![0i32; mk];
    let mut ranks = Vec::new();
    let mut rank = |it: usize, ranks: &mut Vec<i32>| -> Result<usize, RmpiError> {
        set_iteration_keys(&p, it, lo, &mut mine);
        let tests = test_keys(&p, lo, &mine);
        count_and_rank(&mine, &mut counts);
        let blocks: Vec<Vec<i32>> = values.iter().map(|r| counts[r.clone()].to_vec()).collect();
        *ranks = comm.reduce_scatter(op::elementwise_sum, blocks)?;
        let mut want = [-1i64; TEST_ARRAY_SIZE];
        for (i, k) in tests {
            want[i] = i64::from(k);
        }
        let want = comm.allreduce(op::elementwise_max, want.to_vec())?;
        let mut have = vec![0i64; TEST_ARRAY_SIZE];
        for (h, &k) in have.iter_mut().zip(&want) {
            if k > 0 && own.contains(&(k as usize - 1)) {
                *h = i64::from(ranks[k as usize - 1 - own.start]);
            }
        }
        let have = comm.allreduce(op::elementwise_sum, have)?;
        Ok((0..TEST_ARRAY_SIZE)
            .filter(|&i| {
                let k = want[i];
                0 < k && (k as usize) < p.total_keys && have[i] == p.expected_rank(i, it)
            })
            .count())
    };
    rank(1, &mut ranks)?;
    comm.try_barrier()?;
    let start = Instant::now();
    let mut passed = 0;
    for it in 1..=ITERATIONS {
        passed += rank(it, &mut ranks)?;
    }
    comm.try_barrier()?;
    let time = comm.allreduce(op::max_f64, start.elapsed().as_secs_f64())?;
    // Untimed: the last ranks and the keys as they are now, at rank 0.
    let all_ranks = comm.gather(0, ranks)?;
    let all_keys = comm.gather(0, mine)?;
    Ok(all_ranks.zip(all_keys).map(|(r, k)| {
        (
            Duration::from_secs_f64(time),
            passed,
            r.concat(),
            k.concat(),
        )
    }))
}

/// An IS rank launched by `rmpi_launch`.
#[place]
pub fn nas_is_rank(ch: RmpiChannel<RankArgs, Option<Outcome>>) {
    let (comm, args, tc) = rmpi_init(ch).expect("an IS rank joins its group");
    let out = run_rank(&comm, args).unwrap_or_else(|e| panic!("IS rank {}: {e}", comm.id()));
    rmpi_finish(comm, tc, out).expect("an IS rank reports");
}

/// IS on `np` RMPI ranks, each a place on a local node of its own, given its keys by
/// `rmpi_launch`.
fn run_nodes(p: &Params, keys: &[i32], np: usize) -> Result<Outcome, RmpiError> {
    let args = rank_args(p, keys, np);
    let (default, configs) = launch_config(module_path!(), "nas_is_rank", args);
    let out: Option<Outcome> = rmpi_launch(&default, &configs)?;
    out.ok_or_else(|| RmpiError::Config("rank 0 of IS returned no outcome".into()))
}
