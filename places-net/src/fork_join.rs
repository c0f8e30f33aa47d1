//! Fork-join over nodes: the members of a group run as places spread over nodes, joined by
//! [`Comm::invitations`](places_core::Comm::invitations). What `fork_join!(nodes = .., ..)`
//! calls.

use places_core::{ForkJoinError, Invitation, Message};

use crate::client::{RemoteNode, RemotePlace};

/// A member of a group over nodes, from the creator's side.
type Member<A, R> = RemotePlace<(Invitation, A), Result<R, String>>;

/// Starts `np` members of a group as places running the registered entry `module::entry` (a
/// lifted `fork_join!` body), member `i` on `nodes[i % nodes.len()]`, gives each its invitation
/// and a clone of `args`, and returns their results in rank order.
///
/// This is the function behind `fork_join!(nodes = &nodes, np, cg, [..] -> R, { .. })`, which
/// registers the entry; call it directly only with such an entry.
///
/// # Errors
///
/// [`ForkJoinError::Panicked`] naming the first member (by rank) that panicked;
/// [`ForkJoinError::Node`] naming the member and its node when a member could not be started
/// or its node was lost; [`ForkJoinError::Empty`] for `np == 0`, [`ForkJoinError::NoNodes`] for
/// no nodes. On any error every member still running is killed: no place is left behind.
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
    let kill_all = |members: &[Member<A, R>]| {
        for m in members {
            m.kill();
        }
    };
    for rank in 0..np {
        match node_of(rank).dynamic_place(module, entry) {
            Ok(p) => members.push(p),
            Err(e) => {
                kill_all(&members);
                return Err(ForkJoinError::Node {
                    rank,
                    node: node_of(rank).name().to_owned(),
                    reason: e.to_string(),
                });
            }
        }
    }
    for (rank, (member, invitation)) in members
        .iter()
        .zip(places_core::Comm::invitations(np))
        .enumerate()
    {
        if let Err(e) = member.put((invitation, args.clone())) {
            kill_all(&members);
            return Err(ForkJoinError::Node {
                rank,
                node: node_of(rank).name().to_owned(),
                reason: format!("could not send the member its invitation: {e}"),
            });
        }
    }
    // Reports are taken as they arrive: the first failure to arrive is the one named (a
    // member that fails because another is gone reports after it).
    let mut results: Vec<Option<R>> = (0..np).map(|_| None).collect();
    let mut failures: Vec<(usize, Result<String, String>)> = Vec::new();
    let mut waiting: Vec<usize> = (0..np).collect();
    while !waiting.is_empty() {
        let mut sel = places_core::Select::new();
        for &rank in &waiting {
            sel.recv(members[rank].channel());
        }
        let ev = sel.select();
        let at = ev.index();
        let rank = waiting.remove(at);
        match ev.recv(members[rank].channel()) {
            Ok(Ok(r)) => results[rank] = Some(r),
            Ok(Err(message)) => failures.push((rank, Ok(message))),
            Err(e) => failures.push((rank, Err(e.to_string()))),
        }
    }
    let Some((rank, first)) = failures.first().cloned() else {
        return Ok(results.into_iter().flatten().collect());
    };
    kill_all(&members);
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
            node: node_of(rank).name().to_owned(),
            reason: format!("the member ended without a result: {e}"),
        },
    })
}
