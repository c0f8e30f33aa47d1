//! Every collective, on groups of 1 to 9 members, with every root, on both kinds of group: threads
//! linked by channels (what `fork_join!` makes) and threads linked by direct TCP links (what
//! groups over nodes use), and on the sub-groups `split` makes of each. Each member checks its
//! result against the value computed locally.

use std::net::{IpAddr, Ipv4Addr};
use std::thread;
use std::time::Duration;

use places::net::mesh::{form, MeshListener};
use places::rmpi::{op, Collectives, Group, RmpiError, LARGE_VECTOR};
use places::{Comm, Cookie};

/// What member `id` contributes.
fn value(id: usize) -> i64 {
    (id as i64 + 1) * 3 - 7
}

/// Runs every collective with every root and checks the results; on a whole group (`depth`
/// 0), splits it and checks every sub-group the same way.
fn check<G: Collectives>(cg: &G, depth: usize) {
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
    // Member i gets block i of everyone's vector, combined in rank order.
    let rs = cg
        .reduce_scatter(
            |a: String, b: String| a + &b,
            (0..cnt).map(|to| format!("{id}>{to};")).collect(),
        )
        .unwrap();
    assert_eq!(
        rs,
        (0..cnt)
            .map(|from| format!("{from}>{id};"))
            .collect::<String>()
    );
    // Small vectors take the tree, large ones blocks and a ring: both give the same sums
    // (whole numbers, so exact in any order), in every position.
    for len in [3, LARGE_VECTOR / 8 + 5] {
        let mine: Vec<f64> = (0..len).map(|i| (i * (id + 1)) as f64).collect();
        let got = cg.allreduce_elementwise(op::elementwise_sum, mine).unwrap();
        let factor: usize = (1..=cnt).sum();
        assert_eq!(got.len(), len);
        for (i, x) in got.iter().enumerate() {
            assert_eq!(
                *x,
                (i * factor) as f64,
                "element {i} of {len} at {id}/{cnt}"
            );
        }
    }
    // Non-commutative on blocks: the ring keeps rank order too.
    let cat = cg
        .allreduce_elementwise(
            |a: Vec<String>, b: Vec<String>| a.into_iter().zip(b).map(|(x, y)| x + &y).collect(),
            vec![id.to_string(); 2 * LARGE_VECTOR],
        )
        .unwrap();
    let order: String = (0..cnt).map(|r| r.to_string()).collect();
    assert!(cat.len() == 2 * LARGE_VECTOR && cat.iter().all(|c| *c == order));
    cg.try_barrier().unwrap();
    if depth == 0 {
        check_split(cg);
    }
}

/// Splits the group into thirds by rank (numbered backwards by key), leaves the last member
/// out when there are several, and checks each sub-group; messages of the whole group sent
/// before and received after stay apart from the sub-groups'.
fn check_split<G: Collectives>(cg: &G) {
    let (id, cnt) = (cg.id(), cg.cnt());
    let out = cnt > 1 && id == cnt - 1;
    let next = (id + 1) % cnt;
    cg.send_tagged(next, places::Tag::USER, format!("whole {id}"))
        .unwrap();
    let color = |r: usize| (r % 3) as u32;
    let sub = cg.split((!out).then(|| color(id)), -(id as i64)).unwrap();
    match sub {
        None => assert!(out),
        Some(sub) => {
            let expected: Vec<usize> = (0..cnt)
                .rev()
                .filter(|&r| !(cnt > 1 && r == cnt - 1) && color(r) == color(id))
                .collect();
            assert_eq!(Group::cnt(&sub), expected.len());
            assert_eq!(expected[Group::id(&sub)], id);
            assert_eq!(
                sub.allgather(id).unwrap(),
                expected,
                "sub-group of {id} in {cnt}"
            );
            // The sub-group's plain messages go by the same pairs of members as the whole
            // group's, under the same tag, and do not meet them.
            let (sid, scnt) = (sub.id(), sub.cnt());
            sub.send((sid + 1) % scnt, format!("sub {sid}")).unwrap();
            let got: String = sub.recv((sid + scnt - 1) % scnt).unwrap();
            assert_eq!(got, format!("sub {}", (sid + scnt - 1) % scnt));
            check(&sub, 1);
            // A sub-group of the sub-group: its own context again.
            let pair = sub.split(Some((sub.id() / 2) as u32), 0).unwrap().unwrap();
            assert!(pair.cnt() <= 2);
            assert_eq!(pair.allreduce(op::sum, 1usize).unwrap(), pair.cnt());
        }
    }
    let got: String = cg
        .recv_tagged((id + cnt - 1) % cnt, places::Tag::USER)
        .unwrap();
    assert_eq!(got, format!("whole {}", (id + cnt - 1) % cnt));
    cg.try_barrier().unwrap();
}

fn on_threads(group: Vec<Comm>) {
    let handles: Vec<_> = group
        .into_iter()
        .map(|cg| thread::spawn(move || check(&cg, 0)))
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

/// Non-blocking receives on one kind of group: a receive tests false until its message comes,
/// then true, and keeps it for `wait`; `wait_any` takes whichever member sent; a message of
/// another tag does not complete a receive, and stays for its own.
fn check_requests(group: Vec<Comm>) {
    use places::rmpi::{wait_all, wait_any};
    use places::Tag;
    let hs: Vec<_> = group
        .into_iter()
        .map(|cg| {
            thread::spawn(move || {
                let (id, cnt) = (cg.id(), cg.cnt());
                if id == 0 {
                    let mut first = cg.irecv::<String>(1);
                    assert!(!first.test().unwrap(), "nothing was sent yet");
                    // Release member 1, which then sends a tag-5 message, then a plain one.
                    cg.isend(1, "go".to_string()).unwrap().wait();
                    let mut polls = 0u64;
                    while !first.test().unwrap() {
                        polls += 1;
                        assert!(polls < 50_000_000, "the message never came");
                        std::thread::yield_now();
                    }
                    assert!(first.test().unwrap(), "stays complete");
                    assert_eq!(first.wait().unwrap(), "plain from 1");
                    let tagged: String = cg.recv_tagged(1, Tag::user(5)).unwrap();
                    assert_eq!(tagged, "tag 5 from 1");
                    // Every other member, in whatever order they come.
                    let mut pending: Vec<_> = (1..cnt).map(|r| cg.irecv::<usize>(r)).collect();
                    let mut seen = Vec::new();
                    while !pending.is_empty() {
                        let i = wait_any(&mut pending).unwrap();
                        seen.push(pending.swap_remove(i).wait().unwrap());
                    }
                    seen.sort_unstable();
                    assert_eq!(seen, (1..cnt).map(|r| r * 100).collect::<Vec<_>>());
                    let all = wait_all((1..cnt).map(|r| cg.irecv::<usize>(r)).collect()).unwrap();
                    assert_eq!(all, (1..cnt).collect::<Vec<_>>());
                } else {
                    if id == 1 {
                        let go: String = cg.irecv(0).wait().unwrap();
                        assert_eq!(go, "go");
                        cg.send_tagged(0, Tag::user(5), "tag 5 from 1".to_string())
                            .unwrap();
                        cg.isend(0, "plain from 1".to_string()).unwrap().wait();
                    }
                    cg.isend(0, id * 100).unwrap().wait();
                    cg.isend(0, id).unwrap().wait();
                }
                cg.barrier();
            })
        })
        .collect();
    for h in hs {
        h.join().expect("a member's checks failed");
    }
}

#[test]
fn non_blocking_receives_on_local_groups_and_direct_links() {
    for cnt in [2, 3, 5] {
        check_requests(Comm::local_group(cnt));
        check_requests(mesh_group(cnt));
    }
}

#[test]
fn a_non_blocking_receive_from_a_gone_member_or_of_a_wrong_type_fails_naming_it() {
    use places::rmpi::wait_any;
    for mut g in [mesh_group(3), Comm::local_group(3)] {
        drop(g.pop());
        let (a, b) = (g.remove(0), g.remove(0));
        // Member 2 is gone: polling it fails, naming it, and so does a send to it.
        let mut r = a.irecv::<u8>(2);
        let e = loop {
            match r.test() {
                Ok(false) => std::thread::yield_now(),
                Ok(true) => panic!("a message from a member that sent none"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(e.contains("member 2"), "{e}");
        // Member 1 sends a string where a number is awaited.
        b.send(0, "text".to_string()).unwrap();
        let mut pending = vec![a.irecv::<u64>(1)];
        let e = wait_any(&mut pending).unwrap_err().to_string();
        assert!(e.contains("u64") && e.contains("String"), "{e}");
        let e = wait_any::<Comm, u8>(&mut []).unwrap_err().to_string();
        assert!(e.contains("wait forever"), "{e}");
    }
}

#[test]
fn vectors_of_different_lengths_are_an_error_at_every_member_not_a_hang() {
    // Member 0's vector is past the ring's threshold, member 1's is not.
    for group in [Comm::local_group(2), mesh_group(2)] {
        let hs: Vec<_> = group
            .into_iter()
            .map(|cg| {
                thread::spawn(move || {
                    let len = if cg.id() == 0 { LARGE_VECTOR } else { 10 };
                    cg.allreduce_elementwise(op::elementwise_sum, vec![1.0f64; len])
                        .unwrap_err()
                        .to_string()
                })
            })
            .collect();
        for h in hs {
            let e = h.join().unwrap();
            assert!(e.contains("lengths range from 10 to"), "{e}");
        }
    }
}

#[test]
fn waiting_for_any_of_receives_from_oneself_alone_fails_instead_of_spinning() {
    use places::rmpi::wait_any;
    let g = Comm::local_group(1);
    let mut pending = vec![g[0].irecv::<u8>(0)];
    let e = wait_any(&mut pending).unwrap_err().to_string();
    assert!(e.contains("itself"), "{e}");
    // Sent first, it is there.
    g[0].send(0, 3u8).unwrap();
    let mut pending = vec![g[0].irecv::<u8>(0)];
    assert_eq!(wait_any(&mut pending).unwrap(), 0);
}
