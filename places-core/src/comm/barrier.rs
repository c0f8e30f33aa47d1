//! The barrier of a group whose members share this process's memory.
//!
//! A message barrier costs every member a thread wake-up (tens of microseconds); members that
//! share memory can meet on three counters instead. A waiting member spins briefly (the others
//! are usually microseconds away in a balanced parallel loop), then yields its core, then sleeps
//! on a condition variable, so an unbalanced or oversubscribed group does not burn cores.
//!
//! Rules:
//! - `generation` counts completed barriers. A member reads it on arrival and is released when it
//!   changes; the last to arrive resets `arrived` before advancing `generation`, so nobody counts
//!   into a barrier that is still being left.
//! - `gone` holds the rank (plus one) of the first member whose `Comm` was dropped. A member gone
//!   before it arrives can never arrive: every waiter, now and later, fails with its rank. A
//!   member that completes a barrier and leaves at once sets `gone` after its `generation` step,
//!   so a waiter that sees `gone` looks at `generation` once more before it fails: a barrier
//!   that completed never fails anyone still leaving it.
//! - A sleeper announces itself in `sleepers` before its last look at `generation`, and the waker
//!   advances `generation` before it looks at `sleepers` (both sequentially consistent): either
//!   the sleeper sees the new generation or the waker sees the sleeper and notifies under the
//!   lock the sleeper holds while it checks. No wake-up is lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a waiter spins before it yields its core.
const SPIN: Duration = Duration::from_micros(50);
/// How long a waiter yields before it sleeps.
const YIELD: Duration = Duration::from_millis(1);
/// A sleeper looks again this often even without a notification (a safety net, not a rule).
const RECHECK: Duration = Duration::from_secs(1);

pub(crate) struct SharedBarrier {
    cnt: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    gone: AtomicUsize,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

impl SharedBarrier {
    pub(crate) fn new(cnt: usize) -> Self {
        Self {
            cnt,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            gone: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Waits until all `cnt` members have arrived; `Err(rank)` when member `rank` is gone.
    pub(crate) fn wait(&self) -> Result<(), usize> {
        self.check_gone()?;
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.cnt {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::SeqCst);
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                self.wake.notify_all();
            }
            return Ok(());
        }
        let released = || self.generation.load(Ordering::SeqCst) != generation;
        let start = Instant::now();
        let mut round = 0u32;
        loop {
            if released() {
                return Ok(());
            }
            self.check_gone_after(&released)?;
            round = round.wrapping_add(1);
            if !round.is_multiple_of(64) {
                std::hint::spin_loop();
                continue;
            }
            let waited = start.elapsed();
            if waited < SPIN {
                std::hint::spin_loop();
            } else if waited < SPIN + YIELD {
                std::thread::yield_now();
            } else {
                break;
            }
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let mut held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = loop {
            if released() {
                break Ok(());
            }
            if let Err(rank) = self.check_gone_after(&released) {
                break Err(rank);
            }
            held = match self.wake.wait_timeout(held, RECHECK) {
                Ok((held, _)) => held,
                Err(poisoned) => poisoned.into_inner().0,
            };
        };
        drop(held);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    /// Member `rank` is gone: every waiter, now and later, fails (unless its barrier completed).
    pub(crate) fn depart(&self, rank: usize) {
        let _ = self
            .gone
            .compare_exchange(0, rank + 1, Ordering::SeqCst, Ordering::SeqCst);
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }

    /// [`check_gone`](Self::check_gone) for a waiter: a member that completed this barrier
    /// and left right after it makes `gone` set, but this barrier still counts, so `generation`
    /// is looked at again after `gone` (the departure follows its barrier's `generation` step in
    /// the sequentially consistent order, so a waiter that sees the one sees the other).
    fn check_gone_after(&self, released: &impl Fn() -> bool) -> Result<(), usize> {
        match self.check_gone() {
            Err(_) if released() => Ok(()),
            other => other,
        }
    }

    fn check_gone(&self) -> Result<(), usize> {
        match self.gone.load(Ordering::SeqCst) {
            0 => Ok(()),
            rank => Err(rank - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    #[test]
    fn no_member_leaves_before_all_arrive() {
        // Each round every member bumps a counter before the barrier and checks after it that all
        // bumps of the round are in; with sleeping, yielding and spinning members mixed in.
        let n = 4;
        let b = Arc::new(SharedBarrier::new(n));
        let count = Arc::new(AtomicU64::new(0));
        std::thread::scope(|s| {
            for m in 0..n {
                let (b, count) = (b.clone(), count.clone());
                s.spawn(move || {
                    for round in 1..=300u64 {
                        if m == round as usize % n && round % 50 == 0 {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        b.wait().unwrap();
                        assert!(count.load(Ordering::SeqCst) >= round * n as u64);
                        b.wait().unwrap();
                    }
                });
            }
        });
        assert_eq!(count.load(Ordering::SeqCst), 300 * n as u64);
    }

    #[test]
    fn a_departed_member_fails_the_waiters_and_later_calls() {
        let b = Arc::new(SharedBarrier::new(3));
        let waiter = {
            let b = b.clone();
            std::thread::spawn(move || b.wait())
        };
        // The waiter is asleep after a few milliseconds; departing must wake it.
        std::thread::sleep(Duration::from_millis(20));
        b.depart(2);
        assert_eq!(waiter.join().unwrap(), Err(2));
        assert_eq!(b.wait(), Err(2));
    }

    #[test]
    fn a_member_that_leaves_right_after_a_barrier_does_not_fail_it() {
        // The last to arrive returns and departs at once, while the other is still leaving the
        // same barrier: that barrier must succeed for both.
        for _ in 0..2000 {
            let b = Arc::new(SharedBarrier::new(2));
            let other = {
                let b = b.clone();
                std::thread::spawn(move || {
                    let r = b.wait();
                    b.depart(1);
                    r
                })
            };
            let mine = b.wait();
            b.depart(0);
            assert_eq!(mine, Ok(()));
            assert_eq!(other.join().unwrap(), Ok(()));
        }
    }

    #[test]
    fn a_group_of_one_never_waits() {
        let b = SharedBarrier::new(1);
        for _ in 0..3 {
            b.wait().unwrap();
        }
    }
}
