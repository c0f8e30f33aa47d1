//! Word count with MapReduce on distributed places (dissertation section 4.3.3): the program
//! writes text files with one word per line (from a fixed seed), starts workers on local nodes,
//! and counts the words with a mapper, a reducer and an outputer given by procedure address.
//!
//! ```text
//! cargo run --release --example word_count [-- --workers 2 --files 8 --words 20000]
//! ```
//!
//! Each task is one file: `[(task number, path)]`. The mapper pairs each word with 1; the
//! workers sort and coalesce by word and reduce (sum) what they mapped, then merge with each
//! other pairwise; the outputer prints each `word - count` and returns the total, as the
//! dissertation's does. The program then counts the same files sequentially and compares:
//!
//! ```text
//! word_count: 8 files, 160000 words, 2 workers
//! apple - 11460
//! ...
//! total 160000
//! sequential: identical counts
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use places::rmpi::map_reduce::{make_map_reduce_workers, map_reduce, MapReduceConfig};

/// The words the files are made of.
const VOCABULARY: [&str; 14] = [
    "apple", "bread", "car", "door", "earth", "fire", "glass", "house", "iron", "jar", "kite",
    "lamp", "moon", "nest",
];

/// `[(task, path)]` to `[(word, 1)]` for every line of the file.
#[places::procedure(mapper)]
fn mapper(task: Vec<(usize, String)>) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (_, path) in task {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        out.extend(text.lines().map(|w| (w.to_owned(), 1)));
    }
    out
}

/// `(word, [n1, n2, ...])` to `(word, [n1 + n2 + ...])`.
#[places::procedure(reducer)]
fn reducer(kvs: Vec<(String, Vec<u64>)>) -> Vec<(String, Vec<u64>)> {
    kvs.into_iter()
        .map(|(k, v)| (k, vec![v.iter().sum()]))
        .collect()
}

/// Prints `word - count` lines and returns the total.
#[places::procedure]
fn outputer(kvs: Vec<(String, Vec<u64>)>) -> u64 {
    let mut total = 0;
    for (word, counts) in &kvs {
        println!("{word} - {}", counts[0]);
        total += counts[0];
    }
    total
}

/// Writes `files` files of `words` words each into a fresh folder; returns their paths.
fn write_files(files: usize, words: usize) -> std::io::Result<Vec<PathBuf>> {
    let dir = std::env::temp_dir().join(format!("places-word-count-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..files)
        .map(|f| {
            let mut text = String::with_capacity(words * 6);
            for _ in 0..words {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(VOCABULARY[(state % VOCABULARY.len() as u64) as usize]);
                text.push('\n');
            }
            let path = dir.join(format!("w{f}"));
            std::fs::write(&path, text)?;
            Ok(path)
        })
        .collect()
}

fn parse_args() -> Result<(usize, usize, usize), String> {
    let (mut workers, mut files, mut words) = (2usize, 8usize, 20_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let slot = match a.as_str() {
            "--workers" => &mut workers,
            "--files" => &mut files,
            "--words" => &mut words,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: --workers N --files N --words N"
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
    Ok((workers, files, words))
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (n, files, words) = parse_args()?;
    let paths = write_files(files, words)?;
    println!(
        "word_count: {files} files, {} words, {n} workers",
        files * words
    );
    let tasks: Vec<Vec<(usize, String)>> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| vec![(i, p.display().to_string())])
        .collect();
    let mut workers = make_map_reduce_workers(&MapReduceConfig::local(n))?;
    let out = map_reduce(
        &mut workers,
        tasks,
        &places::proc_addr!(mapper),
        &places::proc_addr!(reducer),
        Some(&places::proc_addr!(outputer)),
    )?;
    println!("total {}", out.output.unwrap_or_default());
    let mut sequential: BTreeMap<String, u64> = BTreeMap::new();
    for p in &paths {
        for w in std::fs::read_to_string(p)?.lines() {
            *sequential.entry(w.to_owned()).or_insert(0) += 1;
        }
    }
    let ours: BTreeMap<String, u64> = out.pairs.iter().map(|(k, v)| (k.clone(), v[0])).collect();
    if let Some(dir) = paths.first().and_then(|p| p.parent()) {
        let _ = std::fs::remove_dir_all(dir);
    }
    if ours == sequential {
        println!("sequential: identical counts");
        Ok(())
    } else {
        println!("sequential: DIFFERENT counts");
        Err("the MapReduce counts differ from the sequential count".into())
    }
}
