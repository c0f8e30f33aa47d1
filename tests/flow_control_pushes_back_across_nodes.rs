//! Every queue pushes back: a channel across nodes carries a credit window, so a fast sender
//! waits for a slow consumer instead of filling its node's memory; `try_put` reports a full
//! window; a bounded channel keeps its bound when its end crosses nodes; and the credits never
//! deadlock two places that send to each other.

use std::time::{Duration, Instant};

use places::prelude::*;
use places::{bounded_place_channel, create_place_node, NodeOptions, RemoteNode, RemotePlace};

const LIMIT: Duration = Duration::from_secs(60);

places::node_test_entry!();

fn node_with(opts: NodeOptions) -> RemoteNode {
    create_place_node("localhost", opts).expect("start a local node")
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// Takes one vector every 2 ms; an empty one asks for the count so far.
#[place]
pub fn slow_sink(ch: PlaceChannel<u64, Vec<u8>>) {
    let mut count = 0u64;
    while let Ok(v) = ch.get() {
        if v.is_empty() {
            if ch.put(count).is_err() {
                return;
            }
            continue;
        }
        count += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_fast_sender_cannot_fill_a_slow_nodes_memory() {
    let n = node_with(NodeOptions::for_this_test_binary());
    let p: RemotePlace<Vec<u8>, u64> = n.dynamic_place(module_path!(), "slow_sink").unwrap();
    let pid = n.pid().unwrap();
    assert_eq!(p.put_get(Vec::new()).unwrap(), 0);
    let before = rss(pid);
    let mut sent = 0u64;
    let mut peak = before;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        p.put(vec![7u8; 64 << 10]).unwrap();
        sent += 1;
        if sent.is_multiple_of(64) {
            peak = peak.max(rss(pid));
        }
    }
    peak = peak.max(rss(pid));
    // Everything sent arrives, in the end.
    assert_eq!(p.put_get(Vec::new()).unwrap(), sent);
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 64 << 20,
        "the node grew by {} MB while a sender flooded it ({sent} messages of 64 kB)",
        growth >> 20
    );
}

/// What a gated consumer gets: first the gate, then numbers.
#[places::message]
pub enum Gated {
    /// Wait on this before taking any number.
    Gate(PlaceChannel<(), ()>),
    /// A number.
    Number(u64),
}

/// Takes the gate, waits for it to open, then sums `count` numbers and answers the sum.
#[place]
pub fn gated_sum(ch: PlaceChannel<u64, Gated>) {
    let Ok(Gated::Gate(gate)) = ch.get() else {
        return;
    };
    let Ok(()) = gate.get() else { return };
    let mut sum = 0;
    while let Ok(Gated::Number(n)) = ch.get() {
        if n == u64::MAX {
            let _ = ch.put(sum);
            return;
        }
        sum += n;
    }
}

#[test]
fn try_put_reports_a_full_window_and_put_waits_for_room() {
    let n = node_with(NodeOptions::for_this_test_binary().channel_window(1 << 20, 16));
    let p: RemotePlace<Gated, u64> = n.dynamic_place(module_path!(), "gated_sum").unwrap();
    let (gate, theirs) = place_channel::<(), ()>();
    p.put(Gated::Gate(theirs)).unwrap();
    let mut accepted = 0u64;
    let full = loop {
        match p.try_put(Gated::Number(1)) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted <= 16, "try_put went past a 16-message window");
    };
    assert!(full.is_full(), "{full:?}");
    assert!(matches!(full.into_inner(), Some(Gated::Number(1))));
    assert!((1..=16).contains(&accepted), "{accepted}");
    // A blocking put waits until the consumer takes some; open the gate from another thread.
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        gate.put(()).unwrap();
        gate
    });
    for _ in 0..100 {
        p.put(Gated::Number(1)).unwrap();
    }
    p.put(Gated::Number(u64::MAX)).unwrap();
    assert_eq!(p.get_timeout(LIMIT).unwrap(), accepted + 100);
    drop(opener.join().unwrap());
}

/// Puts 0..100 on the bounded channel end it is given, reporting each put as it returns.
#[place]
pub fn producer(ch: PlaceChannel<u64, PlaceChannel<u64, ()>>) {
    let Ok(out) = ch.get() else { return };
    for i in 0..100 {
        if out.put(i).is_err() || ch.put(i).is_err() {
            return;
        }
    }
}

#[test]
fn a_bounded_channel_keeps_its_bound_when_its_end_crosses_nodes() {
    let n = node_with(NodeOptions::for_this_test_binary());
    let p: RemotePlace<PlaceChannel<u64, ()>, u64> =
        n.dynamic_place(module_path!(), "producer").unwrap();
    let (far, here) = bounded_place_channel::<u64, ()>(3);
    p.put(far).unwrap();
    // Three puts go through while nothing is taken here ...
    for i in 0..3 {
        assert_eq!(p.get_timeout(LIMIT).unwrap(), i);
    }
    // ... and no fourth: the producer on the other node waits (however slow this machine, a
    // fourth report can only come if the bound is broken).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(p.try_get(), Err(ChannelError::Empty));
    assert_eq!(here.len(), 3);
    // Each message taken here lets one more through.
    assert_eq!(here.get_timeout(LIMIT).unwrap(), 0);
    assert_eq!(p.get_timeout(LIMIT).unwrap(), 3);
    let rest: Vec<u64> = (1..100).map(|_| here.get_timeout(LIMIT).unwrap()).collect();
    assert_eq!(rest, (1..100).collect::<Vec<_>>());
}

/// Echoes numbers until its creator leaves.
#[place]
pub fn echo(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

/// Sends `count` numbers on the channel it is given before it reads any, then takes as many.
#[place]
pub fn burst_then_read(ch: PlaceChannel<u64, (PlaceChannel<u64>, u64)>) {
    let Ok((peer, count)) = ch.get() else { return };
    for i in 0..count {
        if peer.put(i).is_err() {
            return;
        }
    }
    let mut sum = 0;
    for _ in 0..count {
        match peer.get() {
            Ok(v) => sum += v,
            Err(_) => return,
        }
    }
    let _ = ch.put(sum);
}

#[test]
fn credits_never_deadlock_two_places_that_send_to_each_other() {
    // Small windows, so that every direction runs out of credit many times over.
    let opts = || NodeOptions::for_this_test_binary().channel_window(4096, 8);
    let a = node_with(opts());
    // This program and a place: 5000 puts before the first get.
    let e: RemotePlace<u64> = a.dynamic_place(module_path!(), "echo").unwrap();
    for i in 0..5000 {
        e.put(i).unwrap();
    }
    for i in 0..5000 {
        assert_eq!(e.get_timeout(LIMIT).unwrap(), i);
    }
    // Two places on two nodes, each sending a burst to the other before reading.
    let b = node_with(opts());
    let pa: RemotePlace<(PlaceChannel<u64>, u64), u64> =
        a.dynamic_place(module_path!(), "burst_then_read").unwrap();
    let pb: RemotePlace<(PlaceChannel<u64>, u64), u64> =
        b.dynamic_place(module_path!(), "burst_then_read").unwrap();
    let (x, y) = place_channel::<u64, u64>();
    let count = 2000u64;
    pa.put((x, count)).unwrap();
    pb.put((y, count)).unwrap();
    let expected = count * (count - 1) / 2;
    assert_eq!(pa.get_timeout(LIMIT).unwrap(), expected);
    assert_eq!(pb.get_timeout(LIMIT).unwrap(), expected);
}

/// Puts 0.. on the bounded end it is given, reporting each put that returned.
#[place]
pub fn counting_producer(ch: PlaceChannel<u64, PlaceChannel<u64, ()>>) {
    let Ok(out) = ch.get() else { return };
    for i in 0.. {
        if out.put(i).is_err() || ch.put(i).is_err() {
            return;
        }
    }
}

#[test]
fn a_bounded_end_keeps_its_bound_while_this_side_sends_on_it_too() {
    let n = node_with(NodeOptions::for_this_test_binary().channel_window(1 << 20, 8));
    let p: RemotePlace<PlaceChannel<u64, ()>, u64> = n
        .dynamic_place(module_path!(), "counting_producer")
        .unwrap();
    let (far, here) = bounded_place_channel::<u64, ()>(1);
    p.put(far).unwrap();
    // This side sends the producer what it never reads, so the relay that carries it keeps
    // running out of credit and waiting: the producer must still get no more than its bound.
    let here = std::sync::Arc::new(here);
    let sender = {
        let here = here.clone();
        std::thread::spawn(move || while here.put(()).is_ok() {})
    };
    let mut reported = 0;
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        if p.get_timeout(Duration::from_millis(100)).is_ok() {
            reported += 1;
        }
    }
    assert!(
        reported <= 2,
        "{reported} puts returned on a bounded(1) end with nothing taken"
    );
    drop(p);
    drop(n);
    drop(sender);
}

/// A number that does not decode when it is 0.
#[derive(Debug, PartialEq)]
pub struct NotZero(pub u64);

impl serde::Serialize for NotZero {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for NotZero {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match <u64 as serde::Deserialize>::deserialize(d)? {
            0 => Err(serde::de::Error::custom("zero refused")),
            n => Ok(NotZero(n)),
        }
    }
}

/// Puts 0, 1, 2 on the bounded end it is given (0 does not decode on the other side, which a
/// later put reports; the producer goes on).
#[place]
pub fn not_zero_producer(ch: PlaceChannel<(), PlaceChannel<NotZero, ()>>) {
    let Ok(out) = ch.get() else { return };
    for i in 0..3 {
        match out.put(NotZero(i)) {
            Ok(()) | Err(ChannelError::Dropped { .. }) => {}
            Err(_) => return,
        }
    }
    let _ = ch.put(());
}

#[test]
fn a_message_dropped_on_a_bounded_end_gives_its_credit_back() {
    let n = node_with(NodeOptions::for_this_test_binary());
    let p: RemotePlace<PlaceChannel<NotZero, ()>, ()> = n
        .dynamic_place(module_path!(), "not_zero_producer")
        .unwrap();
    let (far, here) = bounded_place_channel::<NotZero, ()>(1);
    p.put(far).unwrap();
    // With room for one message, the producer's second put waits for the credit of the first,
    // which was dropped here and never taken.
    assert_eq!(here.get_timeout(LIMIT).unwrap(), NotZero(1));
    assert_eq!(here.get_timeout(LIMIT).unwrap(), NotZero(2));
    assert_eq!(p.get_timeout(LIMIT), Ok(()));
}
