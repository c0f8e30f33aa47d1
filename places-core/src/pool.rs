//! Parked threads for places that start often: the members of `fork_join!` groups.
//!
//! Starting an OS thread costs tens of microseconds; a fork-join call starts one per member each
//! time. A member runs instead on a parked thread when one is idle (a fresh thread otherwise), and
//! its thread looks for its next job for [`SPIN`] when the member ends, then parks; a thread idle for
//! [`IDLE`] exits.
//!
//! A pooled member is as isolated as a place on a thread of its own as far as places go (its place
//! context and every other per-thread state of this crate are installed for the member and removed
//! after it), but `thread_local!` values of the program's own are the thread's: a member may see
//! values an earlier member on the same thread left in them, as on rayon's or tokio's threads.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A parked thread that has had no job for this long exits.
const IDLE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

/// How long a thread whose member ended looks for its next job before it parks (and the
/// fork-join creator for a member's report): a program that forks and joins in a loop hands
/// the next job over within this, and the wake-up of a parked thread (a few microseconds, more
/// on a busy machine) is not paid on every call.
const SPIN: Duration = Duration::from_micros(50);

/// Yields the core until `done` holds or [`SPIN`] has passed; whether it held.
pub(crate) fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= SPIN {
            return false;
        }
        std::thread::yield_now();
    }
}

/// One thread's mailbox: the job it is to run next.
struct Slot {
    job: Mutex<Option<Job>>,
    ready: Condvar,
    /// A job is in `job` (looked at without the lock while the thread spins).
    filled: AtomicBool,
    /// The thread waits on `ready` (set and read under `job`'s lock): only then does `run`
    /// notify it.
    sleeping: AtomicBool,
}

/// The parked threads, last parked first (its stack and caches are the warmest).
static PARKED: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());

/// Runs `job` on a parked thread, or on a new one named `name` if none is parked.
///
/// # Errors
///
/// The operating system's error if it cannot start a thread.
pub(crate) fn run(job: Job, name: &str) -> io::Result<()> {
    let parked = PARKED.lock().unwrap_or_else(PoisonError::into_inner).pop();
    if let Some(slot) = parked {
        let mut held = slot.job.lock().unwrap_or_else(PoisonError::into_inner);
        *held = Some(job);
        slot.filled.store(true, Ordering::Release);
        if slot.sleeping.load(Ordering::Relaxed) {
            slot.ready.notify_one();
        }
        return Ok(());
    }
    let slot = Arc::new(Slot {
        job: Mutex::new(Some(job)),
        ready: Condvar::new(),
        filled: AtomicBool::new(true),
        sleeping: AtomicBool::new(false),
    });
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || worker(&slot))?;
    Ok(())
}

fn worker(slot: &Arc<Slot>) {
    loop {
        let job = slot
            .job
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        slot.filled.store(false, Ordering::Relaxed);
        if let Some(job) = job {
            // A job catches its place's panics itself; this keeps the thread alive if anything
            // after that panics too.
            let _ = panic::catch_unwind(AssertUnwindSafe(job));
        }
        PARKED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(slot.clone());
        if !wait_for_job(slot) {
            return;
        }
    }
}

/// Waits until a job is in `slot`; `false` when the thread should exit instead (idle too long
/// and taken off the parked list before anyone handed it a job).
fn wait_for_job(slot: &Arc<Slot>) -> bool {
    spin_until(|| slot.filled.load(Ordering::Acquire));
    let mut job = slot.job.lock().unwrap_or_else(PoisonError::into_inner);
    let mut timed_out = false;
    while job.is_none() {
        if timed_out {
            // Leave only if still parked: if not, a job is on its way (`run` popped this slot
            // and is about to fill it), so wait for it without a limit.
            drop(job);
            let mut parked = PARKED.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = parked.iter().position(|s| Arc::ptr_eq(s, slot)) {
                parked.swap_remove(at);
                return false;
            }
            drop(parked);
            job = slot.job.lock().unwrap_or_else(PoisonError::into_inner);
            while job.is_none() {
                slot.sleeping.store(true, Ordering::Relaxed);
                job = slot.ready.wait(job).unwrap_or_else(PoisonError::into_inner);
                slot.sleeping.store(false, Ordering::Relaxed);
            }
            return true;
        }
        slot.sleeping.store(true, Ordering::Relaxed);
        let (guard, result) = slot
            .ready
            .wait_timeout(job, IDLE)
            .unwrap_or_else(PoisonError::into_inner);
        job = guard;
        slot.sleeping.store(false, Ordering::Relaxed);
        timed_out = result.timed_out();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn jobs_run_and_threads_are_reused() {
        // One job at a time, each started once the last one's thread is parked again: they
        // should nearly all run on the same thread (other tests of this binary may take a parked
        // thread now and then, so the bound is loose).
        let (tx, rx) = mpsc::channel();
        let mut threads = std::collections::HashSet::new();
        for i in 0..20 {
            let tx = tx.clone();
            run(
                Box::new(move || tx.send((i, std::thread::current().id())).unwrap()),
                "pool test",
            )
            .unwrap();
            let (j, id) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
            assert_eq!(i, j);
            threads.insert(id);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while PARKED.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert!(threads.len() <= 10, "{} threads for 20 jobs", threads.len());
    }

    #[test]
    fn a_job_reaches_a_thread_that_spins_and_one_that_sleeps() {
        let (tx, rx) = mpsc::channel();
        for pause in [Duration::ZERO, SPIN * 20, Duration::ZERO, SPIN * 20] {
            let tx = tx.clone();
            run(Box::new(move || tx.send(()).unwrap()), "pool test").unwrap();
            // Well under `IDLE`: a sleeping thread that was not woken would only find its job
            // when its wait times out.
            rx.recv_timeout(IDLE / 2).expect("the job ran");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while PARKED.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            // Past the spin the parked thread sleeps on its condition variable: the next job
            // must wake it.
            std::thread::sleep(pause);
        }
    }

    #[test]
    fn a_panicking_job_leaves_the_pool_working() {
        run(Box::new(|| panic!("a job that panics")), "pool test").unwrap();
        let (tx, rx) = mpsc::channel();
        run(Box::new(move || tx.send(7).unwrap()), "pool test").unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), 7);
    }
}
