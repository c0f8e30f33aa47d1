//! Fork-join: start a group of places, give each its [`Comm`] and a copy of the parameters,
//! collect their results in rank order (dissertation Figure 3.2).

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::channel::raw_pair;
use crate::comm::Comm;
use crate::error::{ChannelError, SpawnError};
use crate::message::Message;
use crate::place::{self, Place};
use crate::pool;
use crate::registry::EntryThunk;

/// Why a fork-join group produced no results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForkJoinError {
    /// A member panicked. `rank` is the member that failed first; members that failed after it
    /// (typically because it was gone) are listed in `also_failed`.
    #[error("member {rank} of the fork-join group panicked: {message}{}", also(.also_failed))]
    Panicked {
        /// The member that failed first.
        rank: usize,
        /// Its panic message.
        message: String,
        /// Members that failed afterwards, in rank order.
        also_failed: Vec<usize>,
    },
    /// A member could not be started.
    #[error("could not start member {rank} of the fork-join group: {source}")]
    Spawn {
        /// The member.
        rank: usize,
        /// Why.
        #[source]
        source: Box<SpawnError>,
    },
    /// A group needs at least one member.
    #[error("a fork-join group needs at least one member")]
    Empty,
    /// A member on another node could not be started, or its node was lost before it reported.
    #[error("member {rank} of the fork-join group, on node {node}: {reason}")]
    Node {
        /// The member.
        rank: usize,
        /// Its node.
        node: String,
        /// What happened.
        reason: String,
    },
    /// A group over nodes was given no node to run on.
    #[error("a fork-join group over nodes needs at least one node")]
    NoNodes,
}

fn also(ranks: &[usize]) -> String {
    if ranks.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = ranks.iter().map(usize::to_string).collect();
        format!(" (then members {} failed too)", list.join(", "))
    }
}

/// What a member reports to the creator: its result, or the order and message of its panic.
type Outcome<R> = Result<R, (usize, String)>;

/// Starts `np` places, each running `body(&comm, args.clone())` with its own member of a fresh
/// communicator group, and returns their results in rank order.
///
/// Members run on parked threads kept for them (a fresh thread only when none is idle), so a call
/// costs no thread start per member; those threads, and the creator waiting for their results,
/// look for work for a few tens of microseconds before they park, so calls made back to back
/// cost no thread wake-up either (an empty call costs about what an empty `rayon::scope` does).
/// Each member gets a fresh place context, as any place does; `thread_local!` values of the
/// program's own belong to the thread, so a member may see what an earlier member on the same
/// thread left in one.
///
/// This is the function behind [`fork_join!`](crate::fork_join), which lifts a block into `body`
/// and builds `args` from its parameter list. `body` must capture nothing (a `fn` item or a
/// closure without captures): everything a member needs arrives through `args` or its `Comm`.
///
/// # Errors
///
/// [`ForkJoinError::Panicked`] if a member panics: the other members are released (their
/// receives from it fail, and a barrier panics), and the error names the member that failed first.
/// [`ForkJoinError::Spawn`] if a place cannot be started, [`ForkJoinError::Empty`] if `np == 0`.
///
/// # Examples
///
/// ```
/// use places::Comm;
///
/// fn sum_of_squares(cg: &Comm, n: u64) -> u64 {
///     cg.partition(0..n).map(|i| i * i).sum()
/// }
///
/// let parts = places::fork_join(3, 10, sum_of_squares).unwrap();
/// assert_eq!(parts.len(), 3);
/// assert_eq!(parts.iter().sum::<u64>(), (0..10).map(|i| i * i).sum());
/// ```
pub fn fork_join<A, R, F>(np: usize, args: A, body: F) -> Result<Vec<R>, ForkJoinError>
where
    A: Message + Clone,
    R: Message,
    F: Fn(&Comm, A) -> R + Copy + Send + 'static,
{
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "a fork-join body must capture nothing: pass values to it as parameters"
        )
    };
    if np == 0 {
        return Err(ForkJoinError::Empty);
    }
    let order = Arc::new(AtomicUsize::new(0));
    let mut members = Vec::with_capacity(np);
    for (rank, comm) in Comm::local_group(np).into_iter().enumerate() {
        let (mine, theirs) = raw_pair::<(), Outcome<R>>();
        let args = args.clone();
        let order = order.clone();
        let thunk: EntryThunk = Box::new(move || {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| body(&comm, args)));
            // A failure takes its place in the order before this member releases the others:
            // one that fails because this one is gone comes after it.
            let report =
                outcome.map_err(|p| (order.fetch_add(1, Ordering::SeqCst), panic_message(&*p)));
            // Release the other members before reporting: their receives from this member
            // fail at once instead of waiting for the creator to notice.
            drop(comm);
            let failed = report.is_err();
            let _ = theirs.put(report);
            i32::from(failed)
        });
        let name = format!("fork_join member {rank} of {np}");
        let member =
            place::start_pooled(mine, thunk, &name).map_err(|source| ForkJoinError::Spawn {
                rank,
                source: Box::new(source),
            })?;
        members.push(member);
    }
    let mut results = Vec::with_capacity(np);
    let mut failures: Vec<(usize, usize, String)> = Vec::new();
    for (rank, member) in members.iter().enumerate() {
        match await_report(member) {
            Ok(Ok(r)) => results.push(r),
            Ok(Err((seq, message))) => failures.push((seq, rank, message)),
            // Only a kill ends a member without a report; nobody else holds the handle.
            Err(e) => failures.push((usize::MAX, rank, format!("ended without a result: {e}"))),
        }
    }
    for member in &members {
        // A member that reported ends a moment later.
        pool::spin_until(|| member.completion().is_some());
        member.wait();
    }
    failures.sort();
    let mut failures = failures.into_iter();
    match failures.next() {
        None => Ok(results),
        Some((_, rank, message)) => {
            let mut also_failed: Vec<usize> = failures.map(|(_, r, _)| r).collect();
            also_failed.sort_unstable();
            Err(ForkJoinError::Panicked {
                rank,
                message,
                also_failed,
            })
        }
    }
}

/// A member's report: looked for briefly (yielding the core to the members; an empty or short
/// member reports meanwhile, and the creator's wake-up is not paid on every call), then waited
/// for.
fn await_report<R: Message>(member: &Place<(), Outcome<R>>) -> Result<Outcome<R>, ChannelError> {
    let mut got = None;
    pool::spin_until(|| match member.try_get() {
        Err(ChannelError::Empty) => false,
        other => {
            got = Some(other);
            true
        }
    });
    got.unwrap_or_else(|| member.get())
}

/// The message of a caught panic.
#[doc(hidden)]
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(crate::context::Exit(code)) = payload.downcast_ref::<crate::context::Exit>() {
        format!("the member called `places::exit({code})`")
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
