//! Parallel build, dissertation Figure 3.1: a controller in the main thread and one worker place
//! per core. Each worker asks for a job, "compiles" it, reports it finished and asks again; the
//! controller answers whichever worker speaks first, with `Select` over the live workers, and
//! retires a worker when no job is left.
//!
//! ```text
//! cargo run --example parallel_build
//! ```
//!
//! It prints one line per job, as each finishes (in whatever order the workers finish them), then
//! the total:
//!
//! ```text
//! compiled collects/racket/private/list-07.rkt (worker 1, checksum 3c1f9b2a)
//! ...
//! built 24 jobs with 2 workers
//! ```

use std::collections::{BTreeSet, VecDeque};

use places::prelude::*;

/// What a worker says to the controller.
#[places::message]
#[derive(Debug)]
pub enum Request {
    /// Asks for a job.
    GetJob,
    /// Reports a job done, with the checksum of its "compiled" output.
    JobFinished(String, u32),
}

/// What the controller answers.
#[places::message]
#[derive(Debug)]
pub enum Reply {
    /// A file to compile.
    Job(String),
    /// No jobs left: the worker should end.
    Done,
}

/// Stands in for compiling a module: real work (an FNV-1a hash over many rounds) whose result
/// depends only on the job.
fn compile(job: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for round in 0..200_000u32 {
        for b in job.bytes().chain(round.to_le_bytes()) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// The worker loop of Figure 3.1.
#[place]
pub fn worker(ch: PlaceChannel<Request, Reply>) {
    loop {
        match ch.put_get(Request::GetJob) {
            Ok(Reply::Job(job)) => {
                let sum = compile(&job);
                if ch.put(Request::JobFinished(job, sum)).is_err() {
                    return;
                }
            }
            Ok(Reply::Done) | Err(_) => return,
        }
    }
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut queue: VecDeque<String> = (0..24)
        .map(|i| format!("collects/racket/private/list-{i:02}.rkt"))
        .collect();
    let total = queue.len();
    let workers: Vec<Place<Reply, Request>> = (0..processor_count())
        .map(|_| dynamic_place(module_path!(), "worker"))
        .collect::<Result<_, _>>()?;

    let mut active: Vec<usize> = (0..workers.len()).collect();
    let mut finished = BTreeSet::new();
    while !active.is_empty() {
        // Build the event list anew each round, like `(apply sync (map make-event ps))`.
        let mut sel = Select::new();
        for &w in &active {
            sel.recv(&workers[w]);
        }
        let ev = sel.select();
        let w = active[ev.index()];
        match ev.recv(&workers[w]) {
            Ok(Request::GetJob) => match queue.pop_front() {
                Some(job) => workers[w].put(Reply::Job(job))?,
                None => {
                    workers[w].put(Reply::Done)?;
                    active.retain(|&a| a != w);
                }
            },
            Ok(Request::JobFinished(job, sum)) => {
                println!("compiled {job} (worker {w}, checksum {sum:08x})");
                finished.insert(job);
            }
            Err(e) => return Err(format!("worker {w} failed: {e}").into()),
        }
    }
    for p in &workers {
        p.wait();
    }
    if finished.len() != total {
        return Err(format!("only {} of {total} jobs finished", finished.len()).into());
    }
    println!(
        "built {} jobs with {} workers",
        finished.len(),
        workers.len()
    );
    Ok(())
}
