//! Place channels sent inside messages keep working across nodes: the routers carry them.

use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};

const LIMIT: Duration = Duration::from_secs(30);

places::node_test_entry!();

fn node() -> RemoteNode {
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
}

/// Gets a channel, then doubles every number that comes on it.
#[place]
pub fn doubler(ch: PlaceChannel<(), PlaceChannel<u64>>) {
    if let Ok(direct) = ch.get() {
        while let Ok(n) = direct.get() {
            if direct.put(n * 2).is_err() {
                return;
            }
        }
    }
}

/// Makes a channel pair, sends one end to its creator, and adds one to every number on the other.
#[place]
pub fn gives_a_channel(ch: PlaceChannel<PlaceChannel<u64>, ()>) {
    let (mine, theirs) = place_channel::<u64, u64>();
    if ch.put(theirs).is_err() {
        return;
    }
    while let Ok(n) = mine.get() {
        if mine.put(n + 1).is_err() {
            return;
        }
    }
}

/// Sends 1..=100 on the channel it is given, then reports.
#[place]
pub fn counter(ch: PlaceChannel<String, PlaceChannel<u64, ()>>) {
    let Ok(direct) = ch.get() else { return };
    for n in 1..=100 {
        if direct.put(n).is_err() {
            return;
        }
    }
    let _ = ch.put("counter sent 100 numbers".to_string());
}

/// Sums what arrives on the channel it is given until that channel closes, then reports.
#[place]
pub fn summer(ch: PlaceChannel<String, PlaceChannel<(), u64>>) {
    let Ok(direct) = ch.get() else { return };
    let mut sum = 0;
    while let Ok(n) = direct.get_timeout(LIMIT) {
        sum += n;
        if sum == 5050 {
            break;
        }
    }
    let _ = ch.put(format!("summer got {sum}"));
}

#[test]
fn a_local_channel_end_sent_to_a_remote_place_works_from_both_sides() {
    let n = node();
    let p: RemotePlace<PlaceChannel<u64>, ()> = n.dynamic_place(module_path!(), "doubler").unwrap();
    let (here, there) = place_channel::<u64, u64>();
    p.put(there).unwrap();
    for i in 1..=50 {
        assert_eq!(here.put_get(i).unwrap(), 2 * i);
    }
    // When the remote place ends, its end of the channel goes with it and `here` sees that.
    p.kill();
    assert_eq!(p.wait_timeout(LIMIT), Some(1));
    assert_eq!(here.get_timeout(LIMIT), Err(ChannelError::Closed));
}

#[test]
fn a_local_end_whose_peer_was_on_a_node_that_died_says_which_node() {
    let n = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().heartbeat(Duration::from_secs(2)),
    )
    .expect("start a local node");
    let p: RemotePlace<PlaceChannel<u64>, ()> = n.dynamic_place(module_path!(), "doubler").unwrap();
    let (here, there) = place_channel::<u64, u64>();
    p.put(there).unwrap();
    assert_eq!(here.put_get(4).unwrap(), 8);
    let pid = n.pid().expect("a local node's pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Not merely closed: lost, naming the node, for a `get` and for a `put`.
    let got = here.get_timeout(LIMIT);
    assert!(
        matches!(&got, Err(ChannelError::Lost(why)) if why.contains(&n.addr())),
        "{got:?} (node {})",
        n.addr()
    );
    let put = here.put(5);
    assert!(matches!(&put, Err(ChannelError::Lost(_))), "{put:?}");
}

#[test]
fn a_remote_place_can_send_a_channel_end_back() {
    let n = node();
    let p: RemotePlace<(), PlaceChannel<u64>> =
        n.dynamic_place(module_path!(), "gives_a_channel").unwrap();
    let theirs = p.get_timeout(LIMIT).unwrap();
    for i in 0..50 {
        assert_eq!(theirs.put_get(i).unwrap(), i + 1);
    }
}

#[test]
fn places_on_two_nodes_talk_through_a_channel_made_here() {
    let (n1, n2) = (node(), node());
    let c: RemotePlace<PlaceChannel<u64, ()>, String> =
        n1.dynamic_place(module_path!(), "counter").unwrap();
    let s: RemotePlace<PlaceChannel<(), u64>, String> =
        n2.dynamic_place(module_path!(), "summer").unwrap();
    let (to_summer, to_counter) = place_channel::<u64, ()>();
    c.put(to_summer).unwrap();
    s.put(to_counter).unwrap();
    assert_eq!(c.get_timeout(LIMIT).unwrap(), "counter sent 100 numbers");
    assert_eq!(s.get_timeout(LIMIT).unwrap(), "summer got 5050");
}

/// Gets a channel and asks its peer one question on it, reporting the answer.
#[place]
pub fn asks_once(ch: PlaceChannel<u64, PlaceChannel<u64>>) {
    if let Ok(direct) = ch.get() {
        let answer = direct.put_get(41).unwrap_or(0);
        let _ = ch.put(answer);
    }
}

#[test]
fn a_channel_received_from_one_node_can_be_passed_on_to_another() {
    let (m, n) = (node(), node());
    // The end comes from a place on node M ...
    let giver: RemotePlace<(), PlaceChannel<u64>> =
        m.dynamic_place(module_path!(), "gives_a_channel").unwrap();
    let end = giver.get_timeout(LIMIT).unwrap();
    // ... and goes on to a place on node N, which talks through it to the place on M.
    let asker: RemotePlace<PlaceChannel<u64>, u64> =
        n.dynamic_place(module_path!(), "asks_once").unwrap();
    asker.put(end).unwrap();
    assert_eq!(asker.get_timeout(LIMIT).unwrap(), 42);
    assert_eq!(asker.wait_timeout(LIMIT), Some(0));
    // N's place is done and its end closed: the place on M sees that and ends.
    assert_eq!(giver.wait_timeout(LIMIT), Some(0));
}

#[test]
fn a_channel_cannot_be_encoded_outside_a_transport() {
    let (a, _b) = place_channel::<u64, u64>();
    let err = places::codec::encode(&a).unwrap_err();
    assert!(err.to_string().contains("places transport"), "{err}");
}

/// Reads five numbers from the channel it gets and reports their sum.
#[place]
pub fn sums_five(ch: PlaceChannel<u64, PlaceChannel<(), u64>>) {
    if let Ok(direct) = ch.get() {
        let sum = (0..5).map(|_| direct.get().unwrap_or(0)).sum();
        let _ = ch.put(sum);
    }
}

#[test]
fn messages_queued_before_a_channel_is_sent_arrive_after_it() {
    let n = node();
    let p: RemotePlace<PlaceChannel<(), u64>, u64> =
        n.dynamic_place(module_path!(), "sums_five").unwrap();
    let (here, there) = place_channel::<u64, ()>();
    // Already waiting in the end that is about to travel.
    for i in 1..=5 {
        here.put(i).unwrap();
    }
    p.put(there).unwrap();
    assert_eq!(p.get_timeout(LIMIT).unwrap(), 15);
}
