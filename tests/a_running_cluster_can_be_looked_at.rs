//! `RemoteNode::status()` against real local nodes: the node's process, its places with their
//! queues and traffic, restart counts that match the supervision policy, named places, and the
//! heartbeat's round trip.

use std::time::{Duration, Instant};

use places::prelude::*;
use places::{
    create_place_node, supervise_place_at, NodeOptions, NodeStatus, PlaceOptions, PlaceState,
    RemoteNode, RemotePlace,
};

const LIMIT: Duration = Duration::from_secs(30);

places::node_test_entry!();

fn node() -> RemoteNode {
    create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().heartbeat(Duration::from_millis(250)),
    )
    .expect("start a local node")
}

/// Takes one message, then stops taking any until it is killed.
#[place]
pub fn stalls(ch: PlaceChannel<(), u64>) {
    let _ = ch.get();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let _ = places::check_break();
    }
}

/// Answers each connection's messages with their length.
#[place]
pub fn named_len(ch: PlaceChannel<(), places::Routed<String, usize>>) {
    while let Ok(places::Routed { msg, reply }) = ch.get() {
        let _ = reply.put(msg.len());
    }
}

/// Polls the node's status until `pred` holds (or fails after `LIMIT`).
fn until(n: &RemoteNode, what: &str, pred: impl Fn(&NodeStatus) -> bool) -> NodeStatus {
    let deadline = Instant::now() + LIMIT;
    loop {
        let s = n.status().expect("a status");
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never held:\n{}",
            s.table()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn key(entry: &str) -> String {
    format!("{}::{entry}", module_path!())
}

#[test]
fn the_queue_of_a_blocked_place_grows_in_its_status() {
    let n = node();
    let p: RemotePlace<u64, ()> = n.dynamic_place(module_path!(), "stalls").unwrap();
    p.put(0).unwrap();
    until(&n, "the first message taken", |s| {
        s.places
            .iter()
            .any(|q| q.key == key("stalls") && q.messages_in == 1 && q.queued == 0)
    });
    for i in 1..=5 {
        p.put(i).unwrap();
    }
    let s = until(&n, "five queued", |s| {
        s.places
            .iter()
            .any(|q| q.key == key("stalls") && q.queued == 5)
    });
    let q = s.places.iter().find(|q| q.key == key("stalls")).unwrap();
    assert_eq!(q.messages_in, 6);
    assert!(q.bytes_in > 0);
    assert_eq!(q.state, PlaceState::Running);
    assert_eq!((q.restarts, q.name.as_deref()), (0, None));
    for i in 6..=8 {
        p.put(i).unwrap();
    }
    until(&n, "eight queued", |s| {
        s.places
            .iter()
            .any(|q| q.key == key("stalls") && q.queued == 8)
    });
    assert_eq!(s.pid, n.pid().unwrap());
    assert_eq!(s.addr, n.addr());
    assert_eq!(s.name, n.name());
    p.kill();
    until(&n, "the killed place gone", |s| {
        !s.places.iter().any(|q| q.key == key("stalls"))
    });
}

#[test]
fn restart_counts_match_the_policy_and_named_places_are_listed() {
    let n = node();
    let p: RemotePlace<u64, ()> = supervise_place_at(
        &n,
        module_path!(),
        "stalls",
        PlaceOptions::new().restart_on_exit(true),
    )
    .unwrap();
    let _named: RemotePlace<places::Routed<String, usize>, ()> = supervise_place_at(
        &n,
        module_path!(),
        "named_len",
        PlaceOptions::new().named("len"),
    )
    .unwrap();
    for restarts in 1..=2u32 {
        let dead = p.dead_evt();
        p.kill();
        places::sync! {
            dead(dead) -> _code => {},
            timeout(LIMIT) => panic!("the place did not end"),
        };
        let s = until(&n, "the restarted instance", |s| {
            s.places
                .iter()
                .any(|q| q.key == key("stalls") && q.restarts == restarts)
        });
        assert_eq!(s.named, ["len"]);
        let named = s.places.iter().find(|q| q.key == key("named_len")).unwrap();
        assert_eq!(named.name.as_deref(), Some("len"));
        // The node runs the new instance a moment before the handle hears of it: the next
        // kill must find the handle on the new instance (its completion not in yet).
        let deadline = Instant::now() + LIMIT;
        while p.wait_timeout(Duration::ZERO).is_some() {
            assert!(
                Instant::now() < deadline,
                "the handle never moved to the new instance"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Traffic of a named place counts over its connections.
    let c = places::connect_to_named_place::<String, usize>(&n, "len").unwrap();
    assert_eq!(c.put_get("four".into()).unwrap(), 4);
    let s = until(&n, "the named place's traffic", |s| {
        s.places
            .iter()
            .any(|q| q.key == key("named_len") && q.messages_in == 1 && q.messages_out == 1)
    });
    assert!(s.table().contains("named_len"), "{}", s.table());
}

#[test]
fn the_heartbeat_round_trip_is_measured() {
    let n = node();
    let s = until(&n, "a heartbeat reply", |s| s.heartbeat_rtt.is_some());
    let rtt = s.heartbeat_rtt.unwrap();
    assert!(rtt > Duration::ZERO && rtt < LIMIT, "{rtt:?}");
    assert!(s.uptime > Duration::ZERO);
}

#[test]
fn threads_that_ask_for_a_status_at_once_all_get_one() {
    let n = node();
    std::thread::scope(|s| {
        let askers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..20 {
                        let st = n.status().expect("a status, however many threads ask");
                        assert_eq!(st.pid, n.pid().unwrap());
                    }
                })
            })
            .collect();
        for a in askers {
            a.join().expect("an asking thread");
        }
    });
}
