//! Supervision: restart policies (a pure decision, tested on its own), and the supervisors of
//! nodes, places and processes that follow them.

mod node;
mod place;
mod process;

use std::time::Duration;

pub(crate) use node::supervise_node;
pub use place::{supervise_place_at, supervise_thread_at, PlaceOptions};
pub use process::{supervise_process_at, RemoteProcess};

/// What to do when a supervised place ends (Racket's `#:restart-on-exit`).
#[derive(Default)]
pub enum RestartOnExit {
    /// Leave it ended (the default).
    #[default]
    Never,
    /// Start it again at once, every time it ends (Racket's `#t`).
    Always,
    /// Racket's `restarter%`: see [`restart_every`].
    Every(RestartEvery),
    /// Ask a callback, with the completion value, whether to start it again.
    Custom(Box<dyn FnMut(i32) -> bool + Send>),
}

impl std::fmt::Debug for RestartOnExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartOnExit::Never => f.write_str("Never"),
            RestartOnExit::Always => f.write_str("Always"),
            RestartOnExit::Every(e) => write!(f, "Every({}s, retries {:?})", e.secs, e.retries),
            RestartOnExit::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// What a policy decided about something that ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Decision {
    /// Start it again after this long; this is restart number `attempt` in a row.
    Restart { after: Duration, attempt: u32 },
    /// Leave it ended.
    GiveUp,
}

impl RestartOnExit {
    /// Whether to start again something that ended with `code` after running for `lived`.
    /// `attempts` counts restarts in a row (a run of twice the period starts a fresh count).
    /// Nothing waits and no callback runs here, except a [`RestartOnExit::Custom`] policy's,
    /// which is the decision.
    pub(crate) fn decide(&mut self, code: i32, lived: Duration, attempts: &mut u32) -> Decision {
        match self {
            RestartOnExit::Never => Decision::GiveUp,
            RestartOnExit::Always => {
                *attempts += 1;
                Decision::Restart {
                    after: Duration::ZERO,
                    attempt: *attempts,
                }
            }
            RestartOnExit::Custom(f) => {
                if f(code) {
                    *attempts += 1;
                    Decision::Restart {
                        after: Duration::ZERO,
                        attempt: *attempts,
                    }
                } else {
                    Decision::GiveUp
                }
            }
            RestartOnExit::Every(e) => {
                let period = Duration::from_secs_f64(e.secs);
                if lived >= period * 2 {
                    *attempts = 0;
                }
                if e.retries.is_none_or(|n| *attempts < n) {
                    *attempts += 1;
                    Decision::Restart {
                        after: period,
                        attempt: *attempts,
                    }
                } else {
                    Decision::GiveUp
                }
            }
        }
    }

    /// [`decide`](Self::decide), then acts on it: waits the period and reports the restart to
    /// the policy's callback, or runs its final-failure callback. Returns whether to restart.
    pub(crate) fn apply(&mut self, code: i32, lived: Duration, attempts: &mut u32) -> bool {
        match self.decide(code, lived, attempts) {
            Decision::Restart { after, attempt } => {
                std::thread::sleep(after);
                if let RestartOnExit::Every(e) = self {
                    if let Some(f) = e.on_restart.as_mut() {
                        f(attempt);
                    }
                }
                true
            }
            Decision::GiveUp => {
                if let RestartOnExit::Every(e) = self {
                    if let Some(f) = e.on_final_fail.take() {
                        f();
                    }
                }
                false
            }
        }
    }
}

impl From<bool> for RestartOnExit {
    fn from(restart: bool) -> Self {
        if restart {
            RestartOnExit::Always
        } else {
            RestartOnExit::Never
        }
    }
}

impl From<RestartEvery> for RestartOnExit {
    fn from(e: RestartEvery) -> Self {
        RestartOnExit::Every(e)
    }
}

/// A restart policy (Racket's `restart-every`): start the place again `secs` seconds after it
/// ends, at most `retry(n)` times in a row; a place that stayed up for twice `secs` before it
/// ended starts a fresh count. When the tries run out, `on_final_fail` runs, once.
pub struct RestartEvery {
    secs: f64,
    retries: Option<u32>,
    on_final_fail: Option<Box<dyn FnOnce() + Send>>,
    on_restart: Option<Box<dyn FnMut(u32) + Send>>,
}

/// A restart policy that retries every `secs` seconds, without limit until [`RestartEvery::retry`]
/// sets one.
///
/// # Examples
///
/// ```
/// use places::{restart_every, PlaceOptions};
///
/// let opts = PlaceOptions::new().restart_on_exit(
///     restart_every(1.0).retry(3).on_final_fail(|| eprintln!("the place keeps failing")),
/// );
/// # let _ = opts;
/// ```
pub fn restart_every(secs: f64) -> RestartEvery {
    RestartEvery {
        secs: secs.max(0.0),
        retries: None,
        on_final_fail: None,
        on_restart: None,
    }
}

impl RestartEvery {
    /// Gives up after `n` restarts in a row.
    pub fn retry(mut self, n: u32) -> Self {
        self.retries = Some(n);
        self
    }

    /// Runs `f` once when the restarts run out.
    pub fn on_final_fail(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_final_fail = Some(Box::new(f));
        self
    }

    /// Runs `f` with the attempt number (from 1) each time the place is started again.
    pub fn on_restart(mut self, f: impl FnMut(u32) + Send + 'static) -> Self {
        self.on_restart = Some(Box::new(f));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_every_counts_restarts_in_a_row_and_resets_after_a_long_run() {
        let mut p: RestartOnExit = restart_every(1.0).retry(2).into();
        let mut n = 0;
        let short = Duration::from_millis(100);
        let second = Duration::from_secs(1);
        assert_eq!(
            p.decide(1, short, &mut n),
            Decision::Restart {
                after: second,
                attempt: 1
            }
        );
        assert_eq!(
            p.decide(1, short, &mut n),
            Decision::Restart {
                after: second,
                attempt: 2
            }
        );
        assert_eq!(p.decide(1, short, &mut n), Decision::GiveUp);
        // Up for twice the period: a fresh count.
        assert_eq!(
            p.decide(1, Duration::from_secs(2), &mut n),
            Decision::Restart {
                after: second,
                attempt: 1
            }
        );
    }

    #[test]
    fn the_other_policies_decide_as_named() {
        let mut n = 0;
        assert_eq!(
            RestartOnExit::Never.decide(0, Duration::ZERO, &mut n),
            Decision::GiveUp
        );
        assert!(matches!(
            RestartOnExit::Always.decide(0, Duration::ZERO, &mut n),
            Decision::Restart { after, .. } if after == Duration::ZERO
        ));
        let mut only_failures = RestartOnExit::Custom(Box::new(|code| code != 0));
        assert_eq!(
            only_failures.decide(0, Duration::ZERO, &mut n),
            Decision::GiveUp
        );
        assert!(matches!(
            only_failures.decide(3, Duration::ZERO, &mut n),
            Decision::Restart { .. }
        ));
    }

    #[test]
    fn giving_up_runs_the_final_failure_callback_once() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut p: RestartOnExit = restart_every(0.0)
            .retry(0)
            .on_final_fail(move || tx.send(()).unwrap())
            .into();
        let mut n = 0;
        assert!(!p.apply(1, Duration::ZERO, &mut n));
        assert!(!p.apply(1, Duration::ZERO, &mut n));
        assert_eq!(rx.try_iter().count(), 1);
    }
}
