//! Every collective, on groups of 1 to 9 members, with every root, on both kinds of group: threads
//! linked by channels (what `fork_join!` makes) and threads linked by direct TCP links (what
//! groups over nodes use). Each member checks its result against the value computed locally.

use std::net::{IpAddr, Ipv4Addr};
use std::thread;
use std::time::Duration;

use places::net::mesh::{form, MeshListener};
use places::rmpi::{op, Collectives, RmpiError};
use places::{Comm, Cookie};

/// What member `id` contributes.
fn value(id: usize) -> i64 {
    (id as i64 + 1) * 3 - 7
}

/// Runs every collective with every root and checks the results.
fn check(cg: &Comm) {
    let (id, cnt) = (cg.id(), cg.cnt());
    let all: Vec<i64> = (0..cnt).map(value).collect();
    let total: i64 = all.iter().sum();
    for root in 0..cnt {
        let b = cg
            .broadcast(root, (id == root).then(|| format!("from {root}")))
            .unwrap();
        assert_eq!(b, format!("from {root}"));
        let r = cg.reduce(root, op::sum, value(id)).unwrap();
        assert_eq!(r, (id == root).then_some(total), "reduce to {root} at {id}");
        let g = cg.gather(root, value(id)).unwrap();
        assert_eq!(g, (id == root).then(|| all.clone()), "gather at {root}");
        let s = cg
            .scatter(
                root,
                (id == root).then(|| (0..cnt).map(|r| r * 10 + root).collect()),
            )
            .unwrap();
        assert_eq!(s, id * 10 + root);
    }
    assert_eq!(cg.allreduce(op::sum, value(id)).unwrap(), total);
    assert_eq!(
        cg.allreduce(op::max, value(id)).unwrap(),
        *all.iter().max().unwrap()
    );
    // Non-commutative: string concatenation comes out in rank order whatever the tree.
    let cat = cg
        .allreduce(|a: String, b: String| a + &b, id.to_string())
        .unwrap();
    assert_eq!(cat, (0..cnt).map(|r| r.to_string()).collect::<String>());
    let v = cg
        .allreduce(op::elementwise_sum, vec![1.5f64, id as f64])
        .unwrap();
    assert_eq!(v, vec![1.5 * cnt as f64, (0..cnt).sum::<usize>() as f64]);
    assert_eq!(cg.allgather(value(id)).unwrap(), all);
    let a2a = cg.alltoall((0..cnt).map(|to| (id, to)).collect()).unwrap();
    assert_eq!(a2a, (0..cnt).map(|from| (from, id)).collect::<Vec<_>>());
    assert_eq!(
        cg.scan(op::sum, value(id)).unwrap(),
        all[..=id].iter().sum::<i64>()
    );
    assert_eq!(
        cg.exscan(op::sum, value(id)).unwrap(),
        (id > 0).then(|| all[..id].iter().sum::<i64>())
    );
    cg.barrier();
}

fn on_threads(group: Vec<Comm>) {
    let handles: Vec<_> = group
        .into_iter()
        .map(|cg| thread::spawn(move || check(&cg)))
        .collect();
    for h in handles {
        h.join().expect("a member's checks failed");
    }
}

#[test]
fn local_groups_of_one_to_nine() {
    for cnt in 1..=9 {
        on_threads(Comm::local_group(cnt));
    }
}

/// A group of `cnt` members linked directly over loopback TCP, one thread each.
fn mesh_group(cnt: usize) -> Vec<Comm> {
    let secret = Cookie::random().unwrap();
    let ls: Vec<MeshListener> = (0..cnt)
        .map(|_| MeshListener::bind(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap())
        .collect();
    let addrs: Vec<_> = ls.iter().map(MeshListener::addr).collect();
    let hs: Vec<_> = ls
        .into_iter()
        .enumerate()
        .map(|(rank, l)| {
            let (s, a) = (secret.clone(), addrs.clone());
            thread::spawn(move || form(rank, &s, l, &a, Duration::from_secs(60)).unwrap())
        })
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn groups_over_direct_links_of_one_to_nine() {
    for cnt in 1..=9 {
        on_threads(mesh_group(cnt));
    }
}

#[test]
fn user_messages_and_collectives_do_not_mix() {
    let g = Comm::local_group(3);
    let hs: Vec<_> = g
        .into_iter()
        .map(|cg| {
            thread::spawn(move || {
                let next = (cg.id() + 1) % 3;
                cg.send(next, format!("user {}", cg.id())).unwrap();
                let sum = cg.allreduce(op::sum, 1u32).unwrap();
                let got: String = cg.recv((cg.id() + 2) % 3).unwrap();
                (sum, got)
            })
        })
        .collect();
    let out: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(out[0], (3, "user 2".to_string()));
}

#[test]
fn a_root_without_a_value_and_a_wrong_length_are_errors() {
    let g = Comm::local_group(1);
    let e = g[0].broadcast::<u8>(0, None).unwrap_err();
    assert!(
        matches!(e, RmpiError::RootWithoutValue { rank: 0, .. }),
        "{e}"
    );
    let e = g[0].alltoall(vec![1u8, 2]).unwrap_err();
    assert!(
        e.to_string()
            .contains("needs one element per member (1), got 2"),
        "{e}"
    );
    let e = g[0].reduce(3, op::sum, 1u8).unwrap_err();
    assert!(e.to_string().contains("rank 3"), "{e}");
}

#[test]
fn a_member_that_is_gone_fails_the_collective_naming_it() {
    let mut g = Comm::local_group(3);
    drop(g.pop());
    let hs: Vec<_> = g
        .into_iter()
        .map(|cg| thread::spawn(move || cg.allreduce(op::sum, 1u8).unwrap_err().to_string()))
        .collect();
    let errs: Vec<String> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    // Member 0 waits for 2 in the tree (and 1 then waits for 0's broadcast, which fails
    // because 0 gave up): each error names a member that is gone.
    assert!(errs[0].contains("member 2"), "{errs:?}");
    assert!(errs[1].contains("member 0"), "{errs:?}");
}
