//! Fork-join over nodes: the members of a group run as places spread over nodes, linked to each
//! other directly (see [`mesh`](crate::mesh)). What `fork_join!(nodes = .., ..)` calls.

use std::panic::{self, AssertUnwindSafe};

use places_core::{Comm, ForkJoinError, Message, PlaceChannel};
use serde::{Deserialize, Serialize};

use crate::client::{RemoteNode, RemotePlace};
use crate::mesh::MeshInvitation;

/// Why a member of a group over nodes produced no result, as it reports it.
#[doc(hidden)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MemberFailure {
    /// The body panicked, with this message.
    Panicked(String),
    /// The member could not join the group.
    Join(String),
}

/// Kills every member still running (what `fork_join_on`, `run_group` and RMPI's launch do on
/// an error, so that no place is left behind).
pub fn kill_members<A, R>(members: &[GroupMember<A, R>]) {
    for m in members {
        m.kill();
    }
}

/// How long the other members of a group have to report once one failed, before they are
/// killed.
const FAILURE_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// A member of a group over nodes, from the creator's side: a place that takes its invitation
/// and arguments and reports its result (see [`run_group`]).
pub type GroupMember<A, R> = RemotePlace<(MeshInvitation, A), Result<R, MemberFailure>>;
type Member<A, R> = GroupMember<A, R>;

/// The body of a member of a group over nodes, run in its place (what `fork_join!(nodes = ..)`
/// registers): joins the group it is invited to, runs `body`, reports its result or its panic.
#[doc(hidden)]
pub fn fork_join_member_on<A: Message, R: Message>(
    ch: PlaceChannel<Result<R, MemberFailure>, (MeshInvitation, A)>,
    body: fn(&Comm, A) -> R,
) {
    let Ok((invitation, args)) = ch.get() else {
        return;
    };
    let comm = match invitation.join() {
        Ok(c) => c,
        Err(e) => {
            let _ = ch.put(Err(MemberFailure::Join(e.to_string())));
            return;
        }
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| body(&comm, args)));
    // Report before the links close: a member that fails because this one is gone reports
    // after it, so the creator, which takes reports as they come, names the first failure.
    let _ = ch.put(
        outcome.map_err(|p| MemberFailure::Panicked(places_core::__private::panic_message(&*p))),
    );
    drop(comm);
}

/// Starts `np` members of a group as places running the registered entry `module::entry` (a
/// lifted `fork_join!` body), member `i` on `nodes[i % nodes.len()]`, links every member to
/// every other directly (node to node, one hop: this program relays nothing), gives each a
/// clone of `args`, and returns their results in rank order.
///
/// This is the function behind `fork_join!(nodes = &nodes, np, cg, [..] -> R, { .. })`, which
/// registers the entry; call it directly only with such an entry.
///
/// # Errors
///
/// [`ForkJoinError::Panicked`] naming the first member (by rank) that panicked;
/// [`ForkJoinError::Node`] naming the member and its node when a member could not be started,
/// could not link to the others, or its node was lost; [`ForkJoinError::Empty`] for `np == 0`,
/// [`ForkJoinError::NoNodes`] for no nodes. On any error every member still running is killed:
/// no place is left behind.
pub fn fork_join_on<A, R>(
    nodes: &[RemoteNode],
    np: usize,
    args: A,
    module: &str,
    entry: &str,
) -> Result<Vec<R>, ForkJoinError>
where
    A: Message + Clone,
    R: Message,
{
    if np == 0 {
        return Err(ForkJoinError::Empty);
    }
    if nodes.is_empty() {
        return Err(ForkJoinError::NoNodes);
    }
    let node_of = |rank: usize| &nodes[rank % nodes.len()];
    let mut members: Vec<Member<A, R>> = Vec::with_capacity(np);
    for rank in 0..np {
        match node_of(rank).dynamic_place(module, entry) {
            Ok(p) => members.push(p),
            Err(e) => {
                kill_members(&members);
                return Err(ForkJoinError::Node {
                    rank,
                    node: node_of(rank).name().to_owned(),
                    reason: e.to_string(),
                });
            }
        }
    }
    let nodes: Vec<String> = (0..np).map(|r| node_of(r).name().to_owned()).collect();
    run_group(members, &nodes, vec![args; np])
}

/// Forms a group of places that were started (member `i` is `members[i]`, on the node named
/// `nodes[i]`) and that wait for their invitation: invites each with `args[i]`, introduces them to
/// each other so that they link directly, and returns their results in rank order. Behind
/// [`fork_join_on`] and RMPI's `rmpi_launch`.
///
/// # Errors
///
/// As [`fork_join_on`]; on any error every member still running is killed.
///
/// # Panics
///
/// When `members`, `nodes` and `args` differ in length.
pub fn run_group<A, R>(
    members: Vec<GroupMember<A, R>>,
    nodes: &[String],
    args: Vec<A>,
) -> Result<Vec<R>, ForkJoinError>
where
    A: Message,
    R: Message,
{
    assert!(
        members.len() == nodes.len() && members.len() == args.len(),
        "run_group: {} members, {} nodes, {} arguments",
        members.len(),
        nodes.len(),
        args.len()
    );
    let np = members.len();
    if np == 0 {
        return Err(ForkJoinError::Empty);
    }
    let node_of = |rank: usize| &nodes[rank];
    let (invitations, rendezvous) = match crate::mesh::invitations(np) {
        Ok(v) => v,
        Err(e) => {
            kill_members(&members);
            return Err(ForkJoinError::Node {
                rank: 0,
                node: node_of(0).clone(),
                reason: format!("could not make the group's invitations: {e}"),
            });
        }
    };
    for (rank, ((member, invitation), args)) in
        members.iter().zip(invitations).zip(args).enumerate()
    {
        if let Err(e) = member.put((invitation, args)) {
            kill_members(&members);
            return Err(ForkJoinError::Node {
                rank,
                node: node_of(rank).clone(),
                reason: format!("could not send the member its invitation: {e}"),
            });
        }
    }
    if let Err(rank) = rendezvous.exchange() {
        kill_members(&members);
        let reason = match members[rank]
            .channel()
            .get_timeout(std::time::Duration::from_secs(5))
        {
            Ok(Err(MemberFailure::Join(e))) => format!("could not join the group: {e}"),
            _ => "the member ended before it told where it listens".to_owned(),
        };
        return Err(ForkJoinError::Node {
            rank,
            node: node_of(rank).clone(),
            reason,
        });
    }
    // Reports are taken as they arrive: the first failure to arrive is the one named (a
    // member that fails because another is gone reports after it).
    let mut results: Vec<Option<R>> = (0..np).map(|_| None).collect();
    let mut failures: Vec<(usize, Result<String, String>)> = Vec::new();
    let mut waiting: Vec<usize> = (0..np).collect();
    // After the first failure the others get a little while to report (those that fail
    // because of it are named as failing after it), then they are killed: a member computing or
    // waiting on the gone one does not hold the call.
    let mut grace_until: Option<std::time::Instant> = None;
    while !waiting.is_empty() {
        let mut sel = places_core::Select::new();
        for &rank in &waiting {
            sel.recv(members[rank].channel());
        }
        let ev = match grace_until {
            None => sel.select(),
            Some(until) => {
                let left = until.saturating_duration_since(std::time::Instant::now());
                match sel.select_timeout(left) {
                    Ok(ev) => ev,
                    Err(_) => break,
                }
            }
        };
        let at = ev.index();
        let rank = waiting.remove(at);
        match ev.recv(members[rank].channel()) {
            Ok(Ok(r)) => results[rank] = Some(r),
            Ok(Err(MemberFailure::Panicked(message))) => failures.push((rank, Ok(message))),
            Ok(Err(MemberFailure::Join(e))) => {
                failures.push((rank, Err(format!("could not join the group: {e}"))))
            }
            Err(e) => failures.push((rank, Err(format!("the member ended without a result: {e}")))),
        }
        if !failures.is_empty() && grace_until.is_none() {
            grace_until = Some(std::time::Instant::now() + FAILURE_GRACE);
        }
    }
    let Some((rank, first)) = failures.first().cloned() else {
        return Ok(results.into_iter().flatten().collect());
    };
    kill_members(&members);
    let mut also_failed: Vec<usize> = failures[1..].iter().map(|(r, _)| *r).collect();
    also_failed.sort_unstable();
    Err(match first {
        Ok(message) => ForkJoinError::Panicked {
            rank,
            message,
            also_failed,
        },
        Err(e) => ForkJoinError::Node {
            rank,
            node: node_of(rank).clone(),
            reason: e,
        },
    })
}
