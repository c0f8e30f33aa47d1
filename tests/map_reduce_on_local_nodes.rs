//! MapReduce on real local nodes (dissertation 4.3.3): word count equal to a sequential count
//! for 1 to 3 workers, the coalescing the dissertation shows, addresses checked before any work
//! is sent, a worker whose process dies mid-task (its task runs again elsewhere), and every
//! worker dying (an error naming the task and the node, not a hang).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use places::rmpi::map_reduce::{
    make_map_reduce_workers, map_reduce, MapReduceConfig, MapReduceError, Mapper,
};
use places::{NodeOptions, ProcAddr};

places::node_test_entry!();

/// Reads the file a task names (one word per line) and pairs each word with 1. A file whose
/// first line is `crash-once` kills this worker's process the first time it is mapped (a marker
/// file beside it remembers); `crash-always` every time.
#[places::procedure(mapper)]
fn mapper(task: Vec<(u32, String)>) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (_, path) in task {
        let text = std::fs::read_to_string(&path).expect("the task's file");
        let first = text.lines().next().unwrap_or("");
        let marker = format!("{path}.crashed");
        if first == "crash-always"
            || (first == "crash-once" && std::fs::File::create_new(&marker).is_ok())
        {
            std::process::abort();
        }
        out.extend(
            text.lines()
                .filter(|w| !w.starts_with("crash-"))
                .map(|w| (w.to_owned(), 1)),
        );
    }
    out
}

#[places::procedure(reducer)]
fn reducer(kvs: Vec<(String, Vec<u64>)>) -> Vec<(String, Vec<u64>)> {
    kvs.into_iter()
        .map(|(k, v)| (k, vec![v.iter().sum()]))
        .collect()
}

/// The outputer: the total of all counts.
#[places::procedure]
fn total(kvs: Vec<(String, Vec<u64>)>) -> u64 {
    kvs.iter().map(|(_, v)| v[0]).sum()
}

/// The dissertation's example of coalescing, as a mapper's output.
#[places::procedure(mapper)]
fn houses(_: Vec<(u8, u8)>) -> Vec<(String, u64)> {
    vec![("house".into(), 1), ("car".into(), 1), ("house".into(), 1)]
}

/// Keeps every value (so what the framework coalesced shows).
#[places::procedure(reducer)]
fn keep(kvs: Vec<(String, Vec<u64>)>) -> Vec<(String, Vec<u64>)> {
    kvs
}

fn config(n: usize) -> MapReduceConfig {
    MapReduceConfig::local(n)
        .node_options(NodeOptions::for_this_test_binary().heartbeat(Duration::from_millis(500)))
}

/// Fails the test if `f` has not finished within two minutes.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("finished within two minutes")
}

/// Map tasks: each a file, `[(number, path)]`.
type Tasks = Vec<Vec<(u32, String)>>;

/// Writes `files` word files in a fresh folder (word `i` of file `f` from a fixed sequence) and
/// returns the tasks and the sequential count.
fn word_files(tag: &str, files: usize, words: usize) -> (Tasks, BTreeMap<String, u64>) {
    let dir = std::env::temp_dir().join(format!("places-mr-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let vocab = ["house", "car", "tree", "river", "stone", "cloud", "bird"];
    let mut state = 12345u64;
    let mut counts = BTreeMap::new();
    let mut tasks = Vec::new();
    for f in 0..files {
        let mut text = String::new();
        for _ in 0..words {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let w = vocab[(state >> 33) as usize % vocab.len()];
            text.push_str(w);
            text.push('\n');
            *counts.entry(w.to_owned()).or_insert(0) += 1;
        }
        let path: PathBuf = dir.join(format!("w{f}"));
        std::fs::write(&path, text).unwrap();
        tasks.push(vec![(f as u32, path.display().to_string())]);
    }
    (tasks, counts)
}

fn as_map(pairs: &[(String, Vec<u64>)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.clone(), v[0])).collect()
}

#[test]
fn word_count_on_one_to_three_workers_equals_the_sequential_count() {
    for n in 1..=3 {
        let (tasks, counts) = word_files(&format!("count{n}"), 7, 500);
        let out = bounded(move || {
            let mut workers = make_map_reduce_workers(&config(n)).unwrap();
            let out = map_reduce(
                &mut workers,
                tasks,
                &places::proc_addr!(mapper),
                &places::proc_addr!(reducer),
                Some(&places::proc_addr!(total)),
            )
            .unwrap();
            // A second job on the same workers.
            let again = map_reduce::<_, _, _, _, ()>(
                &mut workers,
                vec![],
                &places::proc_addr!(mapper),
                &places::proc_addr!(reducer),
                None,
            )
            .unwrap();
            assert!(again.pairs.is_empty());
            out
        });
        assert_eq!(as_map(&out.pairs), counts, "{n} workers");
        assert!(
            out.pairs.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted by key"
        );
        assert_eq!(out.output, Some(3500));
    }
}

#[test]
fn a_mappers_output_is_sorted_and_coalesced_by_key() {
    let out = bounded(|| {
        let mut workers = make_map_reduce_workers(&config(1)).unwrap();
        map_reduce::<_, _, _, _, ()>(
            &mut workers,
            vec![vec![(0u8, 0u8)]],
            &places::proc_addr!(houses),
            &places::proc_addr!(keep),
            None,
        )
        .unwrap()
    });
    assert_eq!(
        out.pairs,
        vec![
            ("car".to_string(), vec![1]),
            ("house".to_string(), vec![1, 1])
        ]
    );
}

#[test]
fn wrong_addresses_are_errors_naming_them_before_any_work_is_sent() {
    let mut workers = bounded(|| make_map_reduce_workers(&config(1)).unwrap());
    let tasks = || vec![vec![(0u32, "/nonexistent".to_string())]];
    let unknown: Mapper<u32, String, String, u64> = ProcAddr::new(module_path!(), "mappr");
    let e = map_reduce::<_, _, _, _, ()>(
        &mut workers,
        tasks(),
        &unknown,
        &places::proc_addr!(reducer),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("mappr") && e.contains("no procedure"), "{e}");
    // The reducer's address used as a mapper of other types.
    let typed: Mapper<u32, String, String, u64> = ProcAddr::new(module_path!(), "reducer");
    let e = map_reduce::<_, _, _, _, ()>(
        &mut workers,
        tasks(),
        &typed,
        &places::proc_addr!(reducer),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("::reducer")
            && e.contains("Vec<(alloc::string::String, alloc::vec::Vec<u64>)>")
            && e.contains("Vec<(u32, alloc::string::String)>"),
        "{e}"
    );
    // A plain procedure of the right types is not a reducer.
    let e = map_reduce::<_, _, _, _, u64>(
        &mut workers,
        tasks(),
        &places::proc_addr!(mapper),
        &ProcAddr::new(module_path!(), "keep_plain"),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("keep_plain"), "{e}");
    let e = map_reduce::<_, _, _, _, u64>(
        &mut workers,
        tasks(),
        &places::proc_addr!(mapper),
        &ProcAddr::new(module_path!(), "plain_reducer"),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(e, MapReduceError::Procedure(places::ProcError::Kind { .. })),
        "{e}"
    );
    // Nothing was sent: the workers are all there.
    assert_eq!(workers.alive(), 1);
}

/// A plain procedure with a reducer's types.
#[places::procedure]
fn plain_reducer(kvs: Vec<(String, Vec<u64>)>) -> Vec<(String, Vec<u64>)> {
    kvs
}

#[test]
fn a_worker_that_dies_mid_task_has_its_tasks_run_again_elsewhere() {
    let (mut tasks, mut counts) = word_files("crash", 6, 300);
    // Task 2 kills the first worker that maps it.
    let path = tasks[2][0].1.clone();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.insert_str(0, "crash-once\n");
    std::fs::write(&path, text).unwrap();
    let _ = &mut counts;
    let out = bounded(move || {
        let mut workers = make_map_reduce_workers(&config(3)).unwrap();
        let out = map_reduce::<_, _, _, _, ()>(
            &mut workers,
            std::mem::take(&mut tasks),
            &places::proc_addr!(mapper),
            &places::proc_addr!(reducer),
            None,
        )
        .unwrap();
        (out, workers.alive())
    });
    assert_eq!(out.1, 2, "one worker died");
    assert_eq!(as_map(&out.0.pairs), counts);
}

#[test]
fn when_every_worker_dies_the_call_fails_naming_the_task_and_the_node() {
    let (mut tasks, _) = word_files("doom", 3, 50);
    let path = tasks[1][0].1.clone();
    std::fs::write(&path, "crash-always\nhouse\n").unwrap();
    let e = bounded(move || {
        let mut workers = make_map_reduce_workers(&config(2)).unwrap();
        map_reduce::<_, _, _, _, ()>(
            &mut workers,
            std::mem::take(&mut tasks),
            &places::proc_addr!(mapper),
            &places::proc_addr!(reducer),
            None,
        )
        .unwrap_err()
    });
    match &e {
        MapReduceError::NoWorkers { task, node, .. } => {
            assert_eq!(*task, 1, "{e}");
            assert!(node.contains("localhost"), "{e}");
        }
        other => panic!("expected NoWorkers, got {other}"),
    }
}
