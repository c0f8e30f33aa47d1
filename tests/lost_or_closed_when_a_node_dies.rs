//! When a node dies, an end whose peer was there says `Lost` naming the node (bounded pairs
//! and `Select` too); one whose peer had closed before says `Closed`, however soon after the
//! node dies (from a review).

use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};

const LIMIT: Duration = Duration::from_secs(30);

places::node_test_entry!();

fn node() -> RemoteNode {
    create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().heartbeat(Duration::from_secs(2)),
    )
    .expect("start a local node")
}

fn kill(n: &RemoteNode) {
    let pid = n.pid().expect("a local node's pid");
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// Doubles every number on the end it is given.
#[place]
pub fn doubler2(ch: PlaceChannel<(), PlaceChannel<u64>>) {
    if let Ok(direct) = ch.get() {
        while let Ok(n) = direct.get() {
            if direct.put(n * 2).is_err() {
                return;
            }
        }
    }
}

/// Takes the end, drops it at once (its peer sees the close), says so, and stays alive.
#[place]
pub fn dropper(ch: PlaceChannel<String, PlaceChannel<u64>>) {
    if let Ok(end) = ch.get() {
        drop(end);
        let _ = ch.put("dropped".into());
        std::thread::sleep(Duration::from_secs(120));
    }
}

/// Makes a pair, sends one end to its creator, drops the other at once, says so, stays alive.
#[place]
pub fn gives_and_drops(ch: PlaceChannel<(Option<PlaceChannel<u64>>, String), ()>) {
    let (mine, theirs) = places::place_channel::<u64, u64>();
    let _ = ch.put((Some(theirs), String::new()));
    let _ = ch.get();
    drop(mine);
    let _ = ch.put((None, "dropped".into()));
    std::thread::sleep(Duration::from_secs(120));
}

fn is_lost<T: std::fmt::Debug>(r: &Result<T, ChannelError>, n: &RemoteNode) -> bool {
    matches!(r, Err(ChannelError::Lost(why)) if why.contains(&n.addr()))
}

#[test]
fn a_bounded_local_end_whose_peer_was_on_a_node_that_died_says_lost() {
    let n = node();
    let p: RemotePlace<PlaceChannel<u64>, ()> =
        n.dynamic_place(module_path!(), "doubler2").unwrap();
    let (here, there) = places::bounded_place_channel::<u64, u64>(2);
    p.put(there).unwrap();
    assert_eq!(here.put_get(4).unwrap(), 8);
    kill(&n);
    let got = here.get_timeout(LIMIT);
    let put = here.put(5);
    let try_got = here.try_get();
    println!("get {got:?}; put {put:?}; try_get {try_got:?}");
    assert!(is_lost(&got, &n), "{got:?}");
    assert!(is_lost(&put, &n), "{put:?}");
    assert!(is_lost(&try_got, &n), "{try_got:?}");
}

#[test]
fn select_on_a_local_end_whose_peer_was_on_a_node_that_died_says_lost() {
    let n = node();
    let p: RemotePlace<PlaceChannel<u64>, ()> =
        n.dynamic_place(module_path!(), "doubler2").unwrap();
    let (here, there) = places::place_channel::<u64, u64>();
    p.put(there).unwrap();
    assert_eq!(here.put_get(4).unwrap(), 8);
    kill(&n);
    let mut sel = places::Select::new();
    let i = sel.recv(&here);
    let ev = sel.select();
    assert_eq!(ev.index(), i);
    let got = ev.recv(&here);
    println!("select: {got:?}");
    assert!(is_lost(&got, &n), "{got:?}");
}

/// The peer closed the channel (and the test saw it did) before its node died: Closed.
#[test]
fn a_local_end_whose_relayed_peer_closed_before_its_node_died_says_closed() {
    let n = node();
    let p: RemotePlace<PlaceChannel<u64>, String> =
        n.dynamic_place(module_path!(), "dropper").unwrap();
    let (here, there) = places::place_channel::<u64, u64>();
    p.put(there).unwrap();
    assert_eq!(p.get_timeout(LIMIT).unwrap(), "dropped");
    std::thread::sleep(Duration::from_secs(1));
    kill(&n);
    std::thread::sleep(Duration::from_secs(1));
    let got = here.get_timeout(LIMIT);
    println!("relayed local end: {got:?}");
    assert_eq!(got, Err(ChannelError::Closed));
}

/// The same for an end made on the node (held here directly, not relayed): for comparison.
#[test]
fn a_remote_end_whose_peer_closed_before_its_node_died_says_closed() {
    let n = node();
    let p: RemotePlace<(), (Option<PlaceChannel<u64>>, String)> =
        n.dynamic_place(module_path!(), "gives_and_drops").unwrap();
    let (end, _) = p.get_timeout(LIMIT).unwrap();
    let end = end.unwrap();
    p.put(()).unwrap();
    assert_eq!(p.get_timeout(LIMIT).unwrap().1, "dropped");
    std::thread::sleep(Duration::from_secs(1));
    kill(&n);
    std::thread::sleep(Duration::from_secs(1));
    let got = end.get_timeout(LIMIT);
    println!("remote end: {got:?}");
    assert_eq!(got, Err(ChannelError::Closed));
}

/// A value that takes 20 ms to decode (user code), so that a relay takes a while to pass on
/// a burst of them.
#[derive(Debug, PartialEq)]
pub struct Slow(pub u64);

impl serde::Serialize for Slow {
    fn serialize<Z: serde::Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Slow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        std::thread::sleep(Duration::from_millis(20));
        <u64 as serde::Deserialize>::deserialize(d).map(Slow)
    }
}

/// Sends 100 values on the end it is given, drops the end (its peer sees the close), says
/// so, and stays alive.
#[place]
pub fn sends_then_drops(ch: PlaceChannel<String, PlaceChannel<Slow, u64>>) {
    if let Ok(end) = ch.get() {
        for i in 0..100 {
            let _ = end.put(Slow(i));
        }
        drop(end);
        let _ = ch.put("sent 100 and dropped the end".into());
        std::thread::sleep(Duration::from_secs(120));
    }
}

/// The remote peer sent everything and closed the channel; only then did its node die. The
/// local end gets the 100 values and then should see the close it was sent, not the later loss.
fn peer_closes_then_node_dies(wait_before_kill: Duration) -> Result<Slow, ChannelError> {
    let n = node();
    let p: RemotePlace<PlaceChannel<Slow, u64>, String> =
        n.dynamic_place(module_path!(), "sends_then_drops").unwrap();
    let (here, there) = places::place_channel::<u64, Slow>();
    p.put(there).unwrap();
    assert_eq!(
        p.get_timeout(LIMIT).unwrap(),
        "sent 100 and dropped the end"
    );
    std::thread::sleep(wait_before_kill);
    kill(&n);
    for i in 0..100 {
        assert_eq!(here.get_timeout(LIMIT), Ok(Slow(i)));
    }
    let end = here.get_timeout(LIMIT);
    println!("after the 100 values (killed {wait_before_kill:?} after the close): {end:?}");
    end
}

#[test]
fn a_relayed_peer_that_closed_is_reported_closed_when_its_node_dies_at_once() {
    assert_eq!(
        peer_closes_then_node_dies(Duration::ZERO),
        Err(ChannelError::Closed)
    );
}

#[test]
fn control_a_relayed_peer_that_closed_is_reported_closed_when_its_node_dies_later() {
    assert_eq!(
        peer_closes_then_node_dies(Duration::from_secs(4)),
        Err(ChannelError::Closed)
    );
}
