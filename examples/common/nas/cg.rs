//! NPB CG: estimate the smallest eigenvalue of a large sparse symmetric matrix by inverse power
//! iteration, each step solving with 25 iterations of conjugate gradient. The matrix is NPB's
//! (`makea`: a sum of random sparse outer products with a geometric spread of weights, built with
//! `randlc`), so the result can be checked against NPB's official zeta.

use std::time::{Duration, Instant};

use places::prelude::*;
use places::rmpi::{op, rmpi_finish, rmpi_init, rmpi_launch, Collectives, RmpiChannel, RmpiError};
use places::Tag;

use super::randlc::{Randlc, SEED};
use super::{add, launch_config, sci, Class, Mode, Report, RunError};

/// Conjugate-gradient iterations per outer iteration.
pub const CGITMAX: usize = 25;
const RCOND: f64 = 0.1;
/// NPB's tolerance on zeta (relative, as NPB computes it).
const EPSILON: f64 = 1e-10;

/// One class's sizes and official zeta.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub class: Class,
    pub na: usize,
    pub nonzer: usize,
    pub niter: usize,
    pub shift: f64,
    pub zeta_verify: f64,
}

impl Params {
    /// NPB's parameters for `class`.
    pub fn of(class: Class) -> Self {
        let (na, nonzer, niter, shift, zeta_verify) = match class {
            Class::S => (1400, 7, 15, 10.0, 8.5971775078648),
            Class::W => (7000, 8, 15, 12.0, 10.362595087124),
            Class::A => (14000, 11, 15, 20.0, 17.130235054029),
            Class::B => (75000, 13, 75, 60.0, 22.712745482631),
        };
        Self {
            class,
            na,
            nonzer,
            niter,
            shift,
            zeta_verify,
        }
    }

    /// NPB's Mop/s for a timed run of `time`.
    pub fn mops(&self, time: Duration) -> f64 {
        let nz = (self.nonzer * (self.nonzer + 1)) as f64;
        2.0 * (self.niter * self.na) as f64 * (3.0 + nz + 25.0 * (5.0 + nz) + 3.0)
            / time.as_secs_f64()
            / 1e6
    }
}

/// A sparse matrix in compressed rows: row `j`'s values are `a[rowstr[j]..rowstr[j + 1]]`, in
/// columns `colidx[..]` of the same range, ascending. Checked when made, so that the
/// multiplication can leave out the bounds check on its gather.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rowstr: Vec<usize>,
    colidx: Vec<u32>,
    a: Vec<f64>,
    /// One more than the largest column index.
    cols: usize,
}

impl Matrix {
    /// A matrix from its compressed rows.
    ///
    /// # Panics
    ///
    /// If `rowstr` is empty, decreases, or does not end at `a.len() == colidx.len()`.
    pub fn new(rowstr: Vec<usize>, colidx: Vec<u32>, a: Vec<f64>) -> Self {
        assert!(!rowstr.is_empty() && rowstr[0] == 0, "rowstr starts at 0");
        assert!(
            rowstr.windows(2).all(|w| w[0] <= w[1]),
            "rowstr never decreases"
        );
        assert!(
            rowstr[rowstr.len() - 1] == a.len() && a.len() == colidx.len(),
            "rowstr ends at the number of values"
        );
        // Saturating: on a 32-bit target `u32::MAX + 1` would wrap to 0 and vouch for nothing.
        let cols = colidx
            .iter()
            .max()
            .map_or(0, |&c| (c as usize).saturating_add(1));
        Self {
            rowstr,
            colidx,
            a,
            cols,
        }
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rowstr.len() - 1
    }

    /// The row pointers, column indices and values.
    pub fn parts(&self) -> (&[usize], &[u32], &[f64]) {
        (&self.rowstr, &self.colidx, &self.a)
    }

    /// `q = A p` for this matrix's rows.
    ///
    /// Each row is summed in four interleaved partial sums: one running sum would make every
    /// multiply-add wait for the one before (four cycles each), which caps a core at a quarter
    /// of what it can do here.
    ///
    /// # Panics
    ///
    /// If `q.len() != rows()` or `p` is shorter than the matrix is wide.
    fn times(&self, p: &[f64], q: &mut [f64]) {
        assert_eq!(q.len(), self.rows(), "one result per row");
        assert!(p.len() >= self.cols, "p covers every column");
        // SAFETY (for each `get_unchecked` below): every column index is below `self.cols`
        // (checked in `new`, and the fields never change after), and `p.len() >= self.cols`.
        let at = |c: u32| unsafe { *p.get_unchecked(c as usize) };
        for (j, qj) in q.iter_mut().enumerate() {
            let (s, e) = (self.rowstr[j], self.rowstr[j + 1]);
            let (vals, cols) = (&self.a[s..e], &self.colidx[s..e]);
            let (mut vs, mut cs) = (vals.chunks_exact(4), cols.chunks_exact(4));
            let mut acc = [0.0f64; 4];
            for (v, c) in (&mut vs).zip(&mut cs) {
                for l in 0..4 {
                    acc[l] += v[l] * at(c[l]);
                }
            }
            let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
            for (v, &c) in vs.remainder().iter().zip(cs.remainder()) {
                sum += v * at(c);
            }
            *qj = sum;
        }
    }

    /// Changes one value so that a run must fail verification.
    pub fn corrupt(&mut self) {
        let mid = self.a.len() / 2;
        self.a[mid] *= 2.0;
    }
}

/// NPB's matrix for `p` (`makea` and `sparse`), from the generator state after NPB's first draw.
pub fn make_matrix(p: &Params) -> Matrix {
    let mut rng = Randlc::new(SEED);
    let _zeta = rng.next();
    let n = p.na;
    let mut nn1 = 1;
    while {
        nn1 *= 2;
        nn1 < n
    } {}
    // The random sparse vectors (1-based positions, as NPB draws them) with 0.5 at the diagonal.
    let mut arow = Vec::with_capacity(n);
    let mut acol: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut aelt: Vec<Vec<f64>> = Vec::with_capacity(n);
    for iouter in 0..n {
        let (mut v, mut iv) = (
            Vec::with_capacity(p.nonzer + 1),
            Vec::with_capacity(p.nonzer + 1),
        );
        while v.len() < p.nonzer {
            let vecelt = rng.next();
            let vecloc = rng.next();
            let i = (nn1 as f64 * vecloc) as usize + 1;
            if i > n || iv.contains(&i) {
                continue;
            }
            v.push(vecelt);
            iv.push(i);
        }
        match iv.iter().position(|&i| i == iouter + 1) {
            Some(k) => v[k] = 0.5,
            None => {
                v.push(0.5);
                iv.push(iouter + 1);
            }
        }
        arow.push(iv.len());
        acol.push(iv.iter().map(|i| i - 1).collect());
        aelt.push(v);
    }
    sparse(n, &arow, &acol, &aelt, p.shift)
}

/// NPB's `sparse`: sums the outer products `size_i v_i v_i^T` (duplicates added), plus
/// `rcond - shift` on the diagonal, into compressed rows.
fn sparse(n: usize, arow: &[usize], acol: &[Vec<usize>], aelt: &[Vec<f64>], shift: f64) -> Matrix {
    let mut rowstr = vec![0usize; n + 1];
    for i in 0..n {
        for &j in &acol[i][..arow[i]] {
            rowstr[j + 1] += arow[i];
        }
    }
    for j in 1..=n {
        rowstr[j] += rowstr[j - 1];
    }
    let nz = rowstr[n];
    let mut a = vec![0.0f64; nz];
    let mut colidx = vec![-1i64; nz];
    let mut nzloc = vec![0usize; n];
    let mut size = 1.0f64;
    let ratio = RCOND.powf(1.0 / n as f64);
    for i in 0..n {
        for nza in 0..arow[i] {
            let j = acol[i][nza];
            let scale = size * aelt[i][nza];
            for nzrow in 0..arow[i] {
                let jcol = acol[i][nzrow];
                let mut va = aelt[i][nzrow] * scale;
                if jcol == j && j == i {
                    va = va + RCOND - shift;
                }
                let jcol = jcol as i64;
                let (s, e) = (rowstr[j], rowstr[j + 1]);
                let k = (s..e)
                    .find(|&k| colidx[k] > jcol || colidx[k] == -1 || colidx[k] == jcol)
                    .expect("NPB's sparse: a row has room for every element");
                if colidx[k] > jcol {
                    // Insert in order: move the filled part of the row up by one.
                    for kk in (k..e - 1).rev() {
                        if colidx[kk] > -1 {
                            a[kk + 1] = a[kk];
                            colidx[kk + 1] = colidx[kk];
                        }
                    }
                    colidx[k] = jcol;
                    a[k] = 0.0;
                } else if colidx[k] == -1 {
                    colidx[k] = jcol;
                } else {
                    nzloc[j] += 1;
                }
                a[k] += va;
            }
        }
        size *= ratio;
    }
    // Squeeze out the slots that duplicates left empty.
    for j in 1..n {
        nzloc[j] += nzloc[j - 1];
    }
    for j in 0..n {
        let j1 = if j > 0 { rowstr[j] - nzloc[j - 1] } else { 0 };
        let j2 = rowstr[j + 1] - nzloc[j];
        for (k, from) in (j1..j2).zip(rowstr[j]..) {
            a[k] = a[from];
            colidx[k] = colidx[from];
        }
    }
    for j in 1..=n {
        rowstr[j] -= nzloc[j - 1];
    }
    let nz = rowstr[n];
    a.truncate(nz);
    colidx.truncate(nz);
    Matrix::new(rowstr, colidx.into_iter().map(|c| c as u32).collect(), a)
}

/// `x . y`, in four interleaved partial sums (see [`Matrix::times`]).
fn dot(x: &[f64], y: &[f64]) -> f64 {
    let (mut xs, mut ys) = (x.chunks_exact(4), y.chunks_exact(4));
    let mut acc = [0.0f64; 4];
    for (a, b) in (&mut xs).zip(&mut ys) {
        for l in 0..4 {
            acc[l] += a[l] * b[l];
        }
    }
    let tail: f64 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(a, b)| a * b)
        .sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Runs CG on `m` (from [`make_matrix`], perhaps [`corrupt`]ed) in `mode`.
pub fn run(p: &Params, m: Matrix, mode: Mode) -> Result<Report, RunError> {
    let (time, steps) = match mode {
        Mode::Seq => run_seq(p, &m),
        Mode::Places(np) => run_places(p, m, np)?,
        Mode::Nodes(np) => run_nodes(p, &m, np)?,
    };
    Ok(report(p, mode, time, &steps))
}

/// NPB's summary of a run that took `time` and went through `steps` (`(||r||, zeta)` per outer
/// iteration).
pub fn report(p: &Params, mode: Mode, time: Duration, steps: &[(f64, f64)]) -> Report {
    let zeta = steps.last().map_or(f64::NAN, |s| s.1);
    let err = (zeta - p.zeta_verify).abs() / p.zeta_verify;
    let verified = err <= EPSILON;
    let mut details = vec!["   iteration           ||r||                 zeta".to_owned()];
    details.extend(steps.iter().enumerate().map(|(i, &(rnorm, zeta))| {
        format!(
            "    {:5}       {}{}",
            i + 1,
            sci(rnorm, 20, 14),
            sci(zeta, 20, 13)
        )
    }));
    if verified {
        details.push(format!(" Zeta is    {}", sci(zeta, 20, 13)));
        details.push(format!(" Error is   {}", sci(err, 20, 13)));
    } else {
        details.push(format!(" Zeta                {}", sci(zeta, 20, 13)));
        details.push(format!(
            " The correct zeta is {}",
            sci(p.zeta_verify, 20, 13)
        ));
    }
    Report {
        name: "CG",
        class: p.class,
        mode,
        size: p.na,
        iterations: p.niter,
        time,
        mops: p.mops(time),
        op_type: "floating point",
        verified,
        details,
    }
}

/// Sequential CG: NPB's loop. Returns the timed part and each outer iteration's `(||r||, zeta)`.
fn run_seq(p: &Params, m: &Matrix) -> (Duration, Vec<(f64, f64)>) {
    let n = p.na;
    let mut x = vec![1.0f64; n];
    let (mut z, mut r, mut q, mut pv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut outer = |x: &mut Vec<f64>| -> (f64, f64) {
        // conj_grad
        q.fill(0.0);
        z.fill(0.0);
        r.copy_from_slice(x);
        pv.copy_from_slice(&r);
        let mut rho = dot(&r, &r);
        for _ in 0..CGITMAX {
            m.times(&pv, &mut q);
            let d = dot(&pv, &q);
            let alpha = rho / d;
            let rho0 = rho;
            for j in 0..n {
                z[j] += alpha * pv[j];
                r[j] -= alpha * q[j];
            }
            rho = dot(&r, &r);
            let beta = rho / rho0;
            for j in 0..n {
                pv[j] = r[j] + beta * pv[j];
            }
        }
        m.times(&z, &mut r);
        let sum: f64 = x.iter().zip(&r).map(|(x, r)| (x - r) * (x - r)).sum();
        let rnorm = sum.sqrt();
        // zeta and the next x
        let (t1, t2) = (dot(x, &z), dot(&z, &z));
        let t2 = 1.0 / t2.sqrt();
        for j in 0..n {
            x[j] = t2 * z[j];
        }
        (rnorm, p.shift + 1.0 / t1)
    };
    outer(&mut x);
    x.fill(1.0);
    let start = Instant::now();
    let steps: Vec<(f64, f64)> = (0..p.niter).map(|_| outer(&mut x)).collect();
    (start.elapsed(), steps)
}

/// Sums of per-member partial values, through a shared vector and the group's barrier. Two banks
/// alternate: a bank is written again only after the next reduction's barrier, by when every
/// member has read it.
struct Reducer {
    slots: SharedF64s,
    width: usize,
    bank: usize,
    parts: Vec<f64>,
}

impl Reducer {
    fn new(slots: SharedF64s, width: usize) -> Self {
        Self {
            slots,
            width,
            bank: 0,
            parts: Vec::new(),
        }
    }

    /// The group's sums of `values` (summed in member order, so every member gets the same).
    fn sum<const K: usize>(&mut self, cg: &Comm, values: [f64; K]) -> [f64; K] {
        let np = cg.cnt();
        let base = self.bank * np * self.width;
        self.bank ^= 1;
        self.slots.write_slice(base + cg.id() * self.width, &values);
        cg.barrier();
        self.parts.resize(np * self.width, 0.0);
        self.slots.read_slice(base, &mut self.parts);
        let mut out = [0.0; K];
        for w in 0..np {
            for (o, v) in out.iter_mut().zip(&self.parts[w * self.width..]) {
                *o += v;
            }
        }
        out
    }
}

/// CG on `np` local places. Each owns a block of rows (cut so the nonzeros balance) and the same
/// rows of every vector; `p` (and `z`, for the residual) are exchanged through shared vectors,
/// dot products through a [`Reducer`]. Three barriers per CG iteration: the two dot products and
/// the exchange of `p`.
fn run_places(
    p: &Params,
    m: Matrix,
    np: usize,
) -> Result<(Duration, Vec<(f64, f64)>), ForkJoinError> {
    let n = p.na;
    let (rowstr, colidx, a) = m.parts();
    let rowstr = SharedI64s::from_slice(&rowstr.iter().map(|&r| r as i64).collect::<Vec<_>>());
    let colidx = SharedI32s::from_slice(&colidx.iter().map(|&c| c as i32).collect::<Vec<_>>());
    let a = SharedF64s::from_slice(a);
    drop(m);
    let class = p.class;
    let results = fork_join!(
        np,
        cg,
        [
            class: Class,
            rowstr: SharedI64s,
            colidx: SharedI32s,
            a: SharedF64s,
            p_all: SharedF64s = SharedF64s::zeroed(n),
            z_all: SharedF64s = SharedF64s::zeroed(n),
            slots: SharedF64s = SharedF64s::zeroed(2 * np * 2)
        ] -> (Duration, Vec<(f64, f64)>),
        {
            let prm = Params::of(class);
            let (id, np, n) = (cg.id(), cg.cnt(), prm.na);
            let mut starts = vec![0i64; n + 1];
            rowstr.read_slice(0, &mut starts);
            let bounds = row_bounds(&starts.iter().map(|&s| s as usize).collect::<Vec<_>>(), np);
            let (lo, hi) = (bounds[id], bounds[id + 1]);
            let (s, e) = (starts[lo] as usize, starts[hi] as usize);
            let mut cols = vec![0i32; e - s];
            colidx.read_slice(s, &mut cols);
            let mut vals = vec![0.0; e - s];
            a.read_slice(s, &mut vals);
            let mine = Matrix::new(
                starts[lo..=hi].iter().map(|&r| r as usize - s).collect(),
                cols.into_iter().map(|c| c as u32).collect(),
                vals,
            );
            drop(starts);
            let rows = hi - lo;
            let mut sums = Reducer::new(slots, 2);
            let mut x = vec![1.0f64; rows];
            let (mut z, mut r, mut q, mut pv) =
                (vec![0.0; rows], vec![0.0; rows], vec![0.0; rows], vec![0.0; rows]);
            let mut full = vec![0.0f64; n];
            // Publishes this member's rows of `v` in `all` and reads every row back into `full`.
            let exchange = |all: &SharedF64s, v: &[f64], full: &mut [f64]| {
                all.write_slice(lo, v);
                cg.barrier();
                all.read_slice(0, full);
            };
            let mut outer = |x: &mut Vec<f64>| -> (f64, f64) {
                q.fill(0.0);
                z.fill(0.0);
                r.copy_from_slice(x);
                pv.copy_from_slice(&r);
                let [mut rho] = sums.sum(cg, [dot(&r, &r)]);
                exchange(&p_all, &pv, &mut full);
                for _ in 0..CGITMAX {
                    mine.times(&full, &mut q);
                    let [d] = sums.sum(cg, [dot(&pv, &q)]);
                    let alpha = rho / d;
                    let rho0 = rho;
                    for j in 0..rows {
                        z[j] += alpha * pv[j];
                        r[j] -= alpha * q[j];
                    }
                    [rho] = sums.sum(cg, [dot(&r, &r)]);
                    let beta = rho / rho0;
                    for j in 0..rows {
                        pv[j] = r[j] + beta * pv[j];
                    }
                    exchange(&p_all, &pv, &mut full);
                }
                exchange(&z_all, &z, &mut full);
                mine.times(&full, &mut r);
                let part: f64 = x.iter().zip(&r).map(|(x, r)| (x - r) * (x - r)).sum();
                let [sum] = sums.sum(cg, [part]);
                let [t1, t2] = sums.sum(cg, [dot(x, &z), dot(&z, &z)]);
                let t2 = 1.0 / t2.sqrt();
                for j in 0..rows {
                    x[j] = t2 * z[j];
                }
                (sum.sqrt(), prm.shift + 1.0 / t1)
            };
            outer(&mut x);
            x.fill(1.0);
            cg.barrier();
            let start = Instant::now();
            let steps: Vec<(f64, f64)> = (0..prm.niter).map(|_| outer(&mut x)).collect();
            cg.barrier();
            (start.elapsed(), steps)
        }
    )?;
    let time = results.iter().map(|r| r.0).max().unwrap_or_default();
    let steps = results.into_iter().next().map(|r| r.1).unwrap_or_default();
    Ok((time, steps))
}

/// The first row of each of `np` members, and the end: the rows are cut where the nonzeros
/// before them reach `w/np` of all, so that every member multiplies about as many.
fn row_bounds(rowstr: &[usize], np: usize) -> Vec<usize> {
    let n = rowstr.len() - 1;
    let nnz = rowstr[n];
    let cut = |w: usize| rowstr.partition_point(|&s| s < w * nnz / np).min(n);
    let mut bounds: Vec<usize> = (0..np).map(cut).collect();
    bounds.push(n);
    bounds
}

/// What one CG rank is given: the class, every rank's first row (and the end), and its own
/// rows of the matrix as compressed rows (checked again by [`Matrix::new`] when they arrive).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RankArgs {
    class: Class,
    bounds: Vec<usize>,
    rowstr: Vec<usize>,
    colidx: Vec<u32>,
    a: Vec<f64>,
}

/// Each of `np` ranks' [`RankArgs`] for `m`.
pub fn rank_args(p: &Params, m: &Matrix, np: usize) -> Vec<RankArgs> {
    let bounds = row_bounds(&m.rowstr, np);
    (0..np)
        .map(|id| {
            let (lo, hi) = (bounds[id], bounds[id + 1]);
            let (s, e) = (m.rowstr[lo], m.rowstr[hi]);
            RankArgs {
                class: p.class,
                bounds: bounds.clone(),
                rowstr: m.rowstr[lo..=hi].iter().map(|r| r - s).collect(),
                colidx: m.colidx[s..e].to_vec(),
                a: m.a[s..e].to_vec(),
            }
        })
        .collect()
}

/// Blocks of `p` (and `z`) between ranks.
const EXCHANGE: Tag = Tag::user(1);

/// One CG rank (the nodes mode, and each process under `mpiexec`): its rows of every vector,
/// its rows of the matrix; per CG iteration two allreduces of one number and one exchange of
/// the rank's block of `p` with every other rank. Returns the timed part (the slowest rank's)
/// and each outer iteration's `(||r||, zeta)`, the same at every rank.
///
/// # Errors
///
/// [`RmpiError`] when a rank is gone.
pub fn run_rank(comm: &Comm, args: RankArgs) -> Result<(Duration, Vec<(f64, f64)>), RmpiError> {
    let prm = Params::of(args.class);
    let (id, np, n) = (comm.id(), comm.cnt(), prm.na);
    let bounds = args.bounds;
    let (lo, hi) = (bounds[id], bounds[id + 1]);
    let mine = Matrix::new(args.rowstr, args.colidx, args.a);
    let rows = hi - lo;
    let mut x = vec![1.0f64; rows];
    let (mut z, mut r, mut q, mut pv) = (
        vec![0.0; rows],
        vec![0.0; rows],
        vec![0.0; rows],
        vec![0.0; rows],
    );
    let mut full = vec![0.0f64; n];
    // Sends this rank's rows of `v` to every other rank, and puts every rank's rows in `full`.
    let exchange = |v: &[f64], full: &mut [f64]| -> Result<(), RmpiError> {
        full[lo..hi].copy_from_slice(v);
        for other in (0..np).filter(|&o| o != id) {
            comm.send_tagged(other, EXCHANGE, v.to_vec())?;
        }
        for other in (0..np).filter(|&o| o != id) {
            let block: Vec<f64> = comm.recv_tagged(other, EXCHANGE)?;
            full[bounds[other]..bounds[other + 1]].copy_from_slice(&block);
        }
        Ok(())
    };
    let sum = |v: [f64; 1]| comm.allreduce(add::<1>, v).map(|[s]| s);
    let mut outer = |x: &mut Vec<f64>| -> Result<(f64, f64), RmpiError> {
        q.fill(0.0);
        z.fill(0.0);
        r.copy_from_slice(x);
        pv.copy_from_slice(&r);
        let mut rho = sum([dot(&r, &r)])?;
        exchange(&pv, &mut full)?;
        for _ in 0..CGITMAX {
            mine.times(&full, &mut q);
            let d = sum([dot(&pv, &q)])?;
            let alpha = rho / d;
            let rho0 = rho;
            for j in 0..rows {
                z[j] += alpha * pv[j];
                r[j] -= alpha * q[j];
            }
            rho = sum([dot(&r, &r)])?;
            let beta = rho / rho0;
            for j in 0..rows {
                pv[j] = r[j] + beta * pv[j];
            }
            exchange(&pv, &mut full)?;
        }
        exchange(&z, &mut full)?;
        mine.times(&full, &mut r);
        let part: f64 = x.iter().zip(&r).map(|(x, r)| (x - r) * (x - r)).sum();
        let rnorm = sum([part])?.sqrt();
        let [t1, t2] = comm.allreduce(add::<2>, [dot(x, &z), dot(&z, &z)])?;
        let t2 = 1.0 / t2.sqrt();
        for j in 0..rows {
            x[j] = t2 * z[j];
        }
        Ok((rnorm, prm.shift + 1.0 / t1))
    };
    outer(&mut x)?;
    x.fill(1.0);
    comm.try_barrier()?;
    let start = Instant::now();
    let steps = (0..prm.niter)
        .map(|_| outer(&mut x))
        .collect::<Result<Vec<_>, _>>()?;
    comm.try_barrier()?;
    let time = comm.allreduce(op::max_f64, start.elapsed().as_secs_f64())?;
    Ok((Duration::from_secs_f64(time), steps))
}

/// A CG rank launched by `rmpi_launch`.
#[place]
pub fn nas_cg_rank(ch: RmpiChannel<RankArgs, (Duration, Vec<(f64, f64)>)>) {
    let (comm, args, tc) = rmpi_init(ch).expect("a CG rank joins its group");
    let out = run_rank(&comm, args).unwrap_or_else(|e| panic!("CG rank {}: {e}", comm.id()));
    rmpi_finish(comm, tc, out).expect("a CG rank reports");
}

/// CG on `np` RMPI ranks, each a place on a local node of its own, given its rows by
/// `rmpi_launch`.
fn run_nodes(p: &Params, m: &Matrix, np: usize) -> Result<(Duration, Vec<(f64, f64)>), RmpiError> {
    let args = rank_args(p, m, np);
    let (default, configs) = launch_config(module_path!(), "nas_cg_rank", args);
    rmpi_launch(&default, &configs)
}
