//! k-means over RMPI, the reference's `rmpi-launch` example (`kmeans-place` over a file of
//! colours): each rank reads its part of a generated file of RGB points, and every iteration
//! assigns its points to the nearest centroid and adds them up; one `allreduce` of the sums and
//! counts gives every rank the new centroids.
//!
//! ```text
//! cargo run --release --example kmeans [-- --ranks 4 --points 200000 --k 9 --iterations 10]
//! mpiexec -n 4 ./target/release/examples/kmeans
//! srun --mpi=pmi2 -n 4 ./target/release/examples/kmeans
//! ```
//!
//! Run by itself it launches the ranks on local nodes with `rmpi_launch`; under `mpiexec` or `srun`
//! each process is a rank. The ranks read the file where it was written, so all run on one host
//! (ranks on several hosts would need it on each). Sums are of integer colours, so they are exact in any order, and the
//! centroids are identical to those of a sequential run on the same file, which the program
//! computes too and compares. It prints:
//!
//! ```text
//! kmeans: 200000 points, k 9, 4 ranks, 10 iterations
//! centroid 0: (  31.412,  200.058,  127.739) 22262 points
//! ...
//! sequential: identical centroids
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use places::place;
use places::rmpi::{
    op, partition, rmpi_build_default_config, rmpi_finish, rmpi_init, rmpi_launch, Collectives,
    RmpiChannel, RmpiError, RmpiNodeConfig,
};
use places::Comm;

/// What every rank is told.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Job {
    /// The points file.
    file: PathBuf,
    /// How many points it holds.
    points: usize,
    /// How many centroids.
    k: usize,
    /// How many iterations.
    iterations: usize,
}

/// The centroids after the last iteration, and how many points each has.
pub type Result_ = (Vec<[f64; 3]>, Vec<i64>);

/// The points file: `points` RGB triples from a fixed generator, clustered around 9 colours.
fn write_points(path: &Path, points: usize) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 3 * points as u64) {
        return Ok(());
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let centres: [[i32; 3]; 9] = [
        [30, 200, 128],
        [220, 40, 40],
        [40, 40, 220],
        [240, 240, 240],
        [10, 10, 10],
        [128, 128, 0],
        [0, 128, 128],
        [200, 100, 220],
        [90, 170, 60],
    ];
    let mut bytes = Vec::with_capacity(3 * points);
    for _ in 0..points {
        let c = centres[(next() % 9) as usize];
        for ch in c {
            let jitter = (next() % 61) as i32 - 30;
            bytes.push((ch + jitter).clamp(0, 255) as u8);
        }
    }
    // Written whole, then renamed: a reader never sees half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::fs::File::create_new(&tmp)?.write_all(&bytes)?;
    std::fs::rename(&tmp, path)
}

fn read_points(path: &Path, offset: usize, len: usize) -> std::io::Result<Vec<[u8; 3]>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(3 * offset as u64))?;
    let mut bytes = vec![0u8; 3 * len];
    f.read_exact(&mut bytes)?;
    Ok(bytes.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
}

/// Adds each point to its nearest centroid's sums: `k` times (r, g, b, count).
fn assign(points: &[[u8; 3]], centroids: &[[f64; 3]]) -> Vec<i64> {
    let mut sums = vec![0i64; 4 * centroids.len()];
    for p in points {
        let mut best = (f64::INFINITY, 0);
        for (j, c) in centroids.iter().enumerate() {
            let d: f64 = (0..3).map(|i| (f64::from(p[i]) - c[i]).powi(2)).sum();
            if d < best.0 {
                best = (d, j);
            }
        }
        let s = &mut sums[4 * best.1..4 * best.1 + 4];
        for i in 0..3 {
            s[i] += i64::from(p[i]);
        }
        s[3] += 1;
    }
    sums
}

/// New centroids from the sums (a centroid without points stays where it was).
fn update(sums: &[i64], centroids: &mut [[f64; 3]]) -> Vec<i64> {
    let mut counts = Vec::with_capacity(centroids.len());
    for (j, c) in centroids.iter_mut().enumerate() {
        let s = &sums[4 * j..4 * j + 4];
        if s[3] > 0 {
            for i in 0..3 {
                c[i] = s[i] as f64 / s[3] as f64;
            }
        }
        counts.push(s[3]);
    }
    counts
}

/// The first `k` points of the file are the first centroids.
fn initial(path: &Path, k: usize) -> std::io::Result<Vec<[f64; 3]>> {
    Ok(read_points(path, 0, k)?
        .iter()
        .map(|p| [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])])
        .collect())
}

/// One rank's k-means.
fn kmeans(comm: &Comm, job: &Job) -> Result<Result_, Box<dyn std::error::Error>> {
    let (offset, len) = partition(comm, job.points);
    let mine = read_points(&job.file, offset, len)?;
    let mut centroids = initial(&job.file, job.k)?;
    let mut counts = Vec::new();
    for _ in 0..job.iterations {
        let sums = comm.allreduce(op::elementwise_sum, assign(&mine, &centroids))?;
        counts = update(&sums, &mut centroids);
    }
    Ok((centroids, counts))
}

/// The same on one thread, over the whole file.
fn sequential(job: &Job) -> std::io::Result<Result_> {
    let all = read_points(&job.file, 0, job.points)?;
    let mut centroids = initial(&job.file, job.k)?;
    let mut counts = Vec::new();
    for _ in 0..job.iterations {
        counts = update(&assign(&all, &centroids), &mut centroids);
    }
    Ok((centroids, counts))
}

/// A rank launched by `rmpi_launch` (the reference's `kmeans-place`).
#[place]
pub fn kmeans_place(ch: RmpiChannel<Job, Result_>) {
    let (comm, job, tc) = match rmpi_init(ch) {
        Ok(v) => v,
        Err(e) => return eprintln!("kmeans: {e}"),
    };
    match kmeans(&comm, &job) {
        Ok(result) => {
            let _ = rmpi_finish(comm, tc, result);
        }
        Err(e) => panic!("kmeans rank {}: {e}", comm.id()),
    }
}

fn report(job: &Job, ranks: usize, result: &Result_) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "kmeans: {} points, k {}, {ranks} ranks, {} iterations",
        job.points, job.k, job.iterations
    );
    for (j, (c, n)) in result.0.iter().zip(&result.1).enumerate() {
        println!(
            "centroid {j}: ({:8.3}, {:8.3}, {:8.3}) {n} points",
            c[0], c[1], c[2]
        );
    }
    if sequential(job)? == *result {
        println!("sequential: identical centroids");
        Ok(())
    } else {
        println!("sequential: DIFFERENT centroids");
        Err("the ranks' centroids differ from the sequential run's".into())
    }
}

fn parse_args() -> Result<(usize, Job), String> {
    let (mut ranks, mut points, mut k, mut iterations) = (4usize, 200_000usize, 9usize, 10usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let slot = match a.as_str() {
            "--ranks" => &mut ranks,
            "--points" => &mut points,
            "--k" => &mut k,
            "--iterations" => &mut iterations,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: --ranks N --points N --k N --iterations N"
                ))
            }
        };
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        *slot = v
            .parse()
            .ok()
            .filter(|&n: &usize| n > 0)
            .ok_or(format!("{a} takes a positive number, not {v:?}"))?;
    }
    if k > points {
        return Err(format!("--k {k} is more than the {points} points"));
    }
    let file = std::env::temp_dir().join(format!("places-kmeans-{points}.bin"));
    Ok((
        ranks,
        Job {
            file,
            points,
            k,
            iterations,
        },
    ))
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (ranks, job) = parse_args()?;
    // Under mpiexec or srun: this process is one rank; rank 0 writes the file and reports.
    if let Some(comm) = places::net::mesh::from_pmi()? {
        if comm.id() == 0 {
            write_points(&job.file, job.points)?;
        }
        comm.try_barrier().map_err(RmpiError::from)?;
        let result = kmeans(&comm, &job)?;
        if comm.id() == 0 {
            report(&job, comm.cnt(), &result)?;
        }
        return Ok(());
    }
    write_points(&job.file, job.points)?;
    let configs: Vec<RmpiNodeConfig<Job>> = (0..ranks)
        .map(|r| RmpiNodeConfig::new("localhost", 0, format!("kmeans_{r}"), r))
        .collect();
    let result: Result_ = rmpi_launch(
        &rmpi_build_default_config(module_path!(), "kmeans_place", job.clone()),
        &configs,
    )?;
    report(&job, ranks, &result)
}
