//! MapReduce word count (dissertation 4.3.3) with 1, 2 and 4 workers on local nodes against a
//! sequential Rust count of the same files, and the NDP parallel quicksort (4.3.4, the
//! `ndp_qsort` example's, from `examples/common/ndp_qsort.rs`) of 10^7
//! integers on a group of local nodes against `slice::sort_unstable`, side by side in one run,
//! as ratios.
//!
//! ```text
//! cargo bench --bench map_reduce [-- word_count | -- ndp_qsort]
//! ```
//!
//! The files (one word per line, a fixed seed) total 100 MB (`PLACES_BENCH_QUICK=1`: 4 MB, one
//! sample). Tasks carry file paths; each worker reads its files itself, so only the counted
//! pairs cross the network. The mapper counts its file's words into `(word, count)` pairs (a
//! combiner, as Hadoop programs use), the reducer sums. The sequential count reads the same
//! files and counts into a `HashMap`. The workers' nodes are started before the timer; each
//! sample then times one `map_reduce` call. Target (issue 12): 2 workers at least 1.6x the
//! sequential throughput on a 2-core machine; the NDP sort at most 3x `sort_unstable` (quick:
//! 10^5 integers).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use places::rmpi::map_reduce::{make_map_reduce_workers, map_reduce, MapReduceConfig};
use places::rmpi::ndp::make_ndp_group;

#[path = "../examples/common/ndp_qsort.rs"]
mod qsort;

#[path = "common/stats.rs"]
mod stats;
use stats::median;

const WORDS: [&str; 16] = [
    "apple", "bread", "car", "door", "earth", "fire", "glass", "house", "iron", "jar", "kite",
    "lamp", "moon", "nest", "ocean", "paper",
];

/// One file's `(word, count)` pairs.
#[places::procedure(mapper)]
fn count_file(task: Vec<(usize, String)>) -> Vec<(String, u64)> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for (_, path) in task {
        let text = std::fs::read_to_string(&path).expect("a bench file");
        count_into(&text, &mut counts);
    }
    counts.into_iter().collect()
}

#[places::procedure(reducer)]
fn sum(kvs: Vec<(String, Vec<u64>)>) -> Vec<(String, Vec<u64>)> {
    kvs.into_iter()
        .map(|(k, v)| (k, vec![v.iter().sum()]))
        .collect()
}

fn count_into(text: &str, counts: &mut HashMap<String, u64>) {
    for w in text.lines() {
        match counts.get_mut(w) {
            Some(n) => *n += 1,
            None => {
                counts.insert(w.to_owned(), 1);
            }
        }
    }
}

fn write_files(files: usize, bytes_each: usize) -> Vec<PathBuf> {
    let dir = std::env::temp_dir().join(format!("places-bench-mr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..files)
        .map(|f| {
            let mut text = String::with_capacity(bytes_each + 16);
            while text.len() < bytes_each {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
                text.push('\n');
            }
            let p = dir.join(format!("w{f}"));
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect()
}

#[places::main]
fn main() {
    let quick = std::env::var_os("PLACES_BENCH_QUICK").is_some();
    // `cargo bench --bench map_reduce -- ndp` runs only the rows whose name holds `ndp`.
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |row: &str| only.as_deref().is_none_or(|o| row.contains(o));
    if wanted("word_count") {
        word_count(quick);
    }
    if wanted("ndp_qsort") {
        ndp_qsort(quick);
    }
}

fn word_count(quick: bool) {
    let (total, samples) = if quick { (4 << 20, 1) } else { (100 << 20, 5) };
    let files = 16;
    let paths = write_files(files, total / files);
    let tasks: Vec<Vec<(usize, String)>> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| vec![(i, p.display().to_string())])
        .collect();
    println!(
        "MapReduce word count: {} MB in {files} files, {} cores, {samples} samples, medians",
        total >> 20,
        places::processor_count()
    );
    // Sequential.
    let mut seq = Vec::new();
    let mut expected = HashMap::new();
    for _ in 0..samples {
        let start = Instant::now();
        let mut counts = HashMap::new();
        for p in &paths {
            count_into(&std::fs::read_to_string(p).unwrap(), &mut counts);
        }
        seq.push(start.elapsed());
        expected = counts;
    }
    let seq = median(seq);
    let mb = total as f64 / 1e6;
    println!(
        "  sequential           {:>8.1} ms  {:>7.1} MB/s",
        seq.as_secs_f64() * 1e3,
        mb / seq.as_secs_f64()
    );
    for n in [1, 2, 4] {
        let mut workers = make_map_reduce_workers(&MapReduceConfig::local(n)).expect("workers");
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..samples {
            let start = Instant::now();
            let out = map_reduce::<_, _, _, _, ()>(
                &mut workers,
                tasks.clone(),
                &places::proc_addr!(count_file),
                &places::proc_addr!(sum),
                None,
            )
            .expect("map_reduce");
            times.push(start.elapsed());
            let got: HashMap<String, u64> = out.pairs.into_iter().map(|(k, v)| (k, v[0])).collect();
            assert_eq!(got, expected, "the counts of {n} workers");
        }
        let t = median(times);
        let target = if n == 2 { "  (target >= 1.6x)" } else { "" };
        println!(
            "  {n} worker{}            {:>8.1} ms  {:>7.1} MB/s  {:.2}x sequential{target}",
            if n == 1 { " " } else { "s" },
            t.as_secs_f64() * 1e3,
            mb / t.as_secs_f64(),
            seq.as_secs_f64() / t.as_secs_f64()
        );
    }
    if let Some(dir) = paths.first().and_then(|p| p.parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The NDP quicksort against `sort_unstable`.
fn ndp_qsort(quick: bool) {
    let samples = if quick { 1 } else { 5 };
    let count = if quick { 100_000 } else { 10_000_000 };
    let input = qsort::numbers(count);
    let mut base = Vec::new();
    let mut want = Vec::new();
    for _ in 0..samples {
        let mut v = input.clone();
        let start = Instant::now();
        v.sort_unstable();
        base.push(start.elapsed());
        want = v;
    }
    let base = median(base);
    let group = make_ndp_group(&MapReduceConfig::local(3)).expect("an NDP group");
    let mut times = Vec::new();
    for _ in 0..samples {
        let v = input.clone();
        let start = Instant::now();
        let sorted = group.run(&qsort::address(), v).expect("the NDP sort");
        times.push(start.elapsed());
        assert!(sorted == want, "the NDP sort is sorted");
    }
    let t = median(times);
    println!("NDP quicksort of {count} integers, coordinator + 2 workers on local nodes:");
    println!(
        "  sort_unstable        {:>8.1} ms",
        base.as_secs_f64() * 1e3
    );
    println!(
        "  NDP group            {:>8.1} ms  {:.2}x sort_unstable (target <= 3x)",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() / base.as_secs_f64()
    );
}
