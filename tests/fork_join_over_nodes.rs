//! `fork_join!(nodes = &nodes, ..)`: the members of a group run as places on real local nodes;
//! `cg_for!`, `cg_pipeline!` and barriers work unchanged; a member that panics or whose node
//! dies makes the call return an error naming it, and leaves no place behind.

use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode};

places::node_test_entry!();

fn nodes(n: usize) -> Vec<RemoteNode> {
    (0..n)
        .map(|_| {
            create_place_node(
                "localhost",
                NodeOptions::for_this_test_binary().heartbeat(Duration::from_millis(500)),
            )
            .expect("start a local node")
        })
        .collect()
}

#[test]
fn a_group_over_two_nodes_computes_like_sequential_code() {
    let ns = nodes(2);
    let n = 10_000u64;
    let parts = fork_join!(nodes = &ns, 4, cg, [n: u64] -> (usize, u64, u32), {
        let mut sum = 0u64;
        cg_for!(cg, i in 0..n, { sum += i * i; });
        cg.barrier();
        (cg.id(), sum, std::process::id())
    })
    .unwrap();
    assert_eq!(parts.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(
        parts.iter().map(|p| p.1).sum::<u64>(),
        (0..n).map(|i| i * i).sum()
    );
    // Members 0 and 2 on the first node, 1 and 3 on the second: processes of their own.
    let pids: Vec<u32> = parts.iter().map(|p| p.2).collect();
    assert_eq!(pids[0], pids[2]);
    assert_eq!(pids[1], pids[3]);
    assert_ne!(pids[0], pids[1]);
    assert!(!pids.contains(&std::process::id()));
}

#[test]
fn a_pipeline_runs_across_nodes() {
    let ns = nodes(2);
    let rows = fork_join!(nodes = &ns, 3, cg, [] -> Vec<u64>, {
        let mut out = Vec::new();
        for row in 0..5u64 {
            // Each stage adds its rank + 1 to what the stage before passed on.
            let v = cg_pipeline!(cg, prev, row * 100, { prev + cg.id() as u64 + 1 });
            out.push(v);
        }
        out
    })
    .unwrap();
    // The last stage sees every stage's addition: +1 +2 +3.
    assert_eq!(rows[2], [6, 106, 206, 306, 406]);
}

#[test]
fn a_panicking_member_on_a_node_fails_the_call_naming_it() {
    let ns = nodes(2);
    let err = fork_join!(nodes = &ns, 3, cg, [] -> usize, {
        if cg.id() == 1 {
            panic!("member one gives up on its node");
        }
        cg.barrier();
        cg.id()
    })
    .unwrap_err();
    match &err {
        ForkJoinError::Panicked { rank, message, .. } => {
            assert_eq!(*rank, 1, "{err}");
            assert_eq!(message, "member one gives up on its node");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
}

#[test]
fn a_member_whose_node_dies_fails_the_call_naming_the_node() {
    let ns = nodes(2);
    let victim = ns[1].pid().unwrap();
    let name = ns[1].name().to_owned();
    let err = fork_join!(nodes = &ns, 2, cg, [victim: u32] -> u32, {
        if cg.id() == 1 {
            // This member's node is killed (by itself, to keep the test simple); it never reports.
            let _ = std::process::Command::new("kill")
                .args(["-9", &victim.to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(30));
        }
        cg.barrier();
        0
    })
    .unwrap_err();
    let text = err.to_string();
    // Member 0 sees member 1 gone at the barrier (its panic is the first failure), or the
    // creator sees member 1's node lost: either way the error says who.
    match &err {
        ForkJoinError::Node { rank: 1, node, .. } => assert_eq!(node, &name),
        ForkJoinError::Panicked {
            rank: 0, message, ..
        } => {
            assert!(message.contains("member 1"), "{text}")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn no_nodes_is_an_error() {
    let none: Vec<RemoteNode> = Vec::new();
    let err = fork_join!(nodes = &none, 2, cg, [] -> (), {}).unwrap_err();
    assert!(matches!(err, ForkJoinError::NoNodes), "{err:?}");
}

/// A `macro_rules!` that expands to `fork_join!(nodes = ..)`: two uses share a call site.
macro_rules! spread {
    ($nodes:expr, $k:expr) => {
        fork_join!(nodes = $nodes, 2, cg, [k: u64 = $k] -> u64, { k + cg.id() as u64 })
    };
}

#[test]
fn two_groups_from_one_macro_get_entries_of_their_own() {
    let ns = nodes(1);
    assert_eq!(spread!(&ns, 10).unwrap(), [10, 11]);
    assert_eq!(spread!(&ns, 20).unwrap(), [20, 21]);
}

#[test]
fn collectives_work_on_a_group_over_nodes() {
    use places::rmpi::{op, Collectives};
    let ns = nodes(2);
    let out = fork_join!(nodes = &ns, 3, cg, [] -> (Vec<f64>, String, Option<Vec<usize>>), {
        let id = cg.id();
        let v = cg.allreduce(op::elementwise_sum, vec![1.0, id as f64, 0.5]).unwrap();
        let b = cg.broadcast(2, (id == 2).then(|| "from 2".to_string())).unwrap();
        let g = cg.gather(1, id * id).unwrap();
        (v, b, g)
    })
    .unwrap();
    for (id, (v, b, g)) in out.iter().enumerate() {
        assert_eq!(v, &vec![3.0, 3.0, 1.5]);
        assert_eq!(b, "from 2");
        assert_eq!(g, &(id == 1).then(|| vec![0, 1, 4]));
    }
}
