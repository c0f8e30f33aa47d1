//! Messages of any size cross as fragments, and nothing waits behind them: another channel's
//! messages and the heartbeats interleave with the fragments, every received byte counts as a
//! sign of life, and a node whose cores are busy computing is not taken for lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};

const LIMIT: Duration = Duration::from_secs(120);

places::node_test_entry!();

/// 32 million numbers: 256 MB.
const BIG: usize = 32 << 20;

/// Sums what it gets; answers each vector with its length.
#[place]
pub fn swallows(ch: PlaceChannel<u64, Vec<f64>>) {
    while let Ok(v) = ch.get() {
        if ch.put(v.len() as u64).is_err() {
            return;
        }
    }
}

/// Answers a length with a vector of that length.
#[place]
pub fn makes(ch: PlaceChannel<Vec<f64>, u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(vec![0.25; n as usize]).is_err() {
            return;
        }
    }
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

/// Computes for the number of milliseconds it is sent, touching no channel, then answers.
#[place]
pub fn computes(ch: PlaceChannel<u64>) {
    while let Ok(ms) = ch.get() {
        let end = Instant::now() + Duration::from_millis(ms);
        let mut x = 0u64;
        while Instant::now() < end {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        if ch.put(x | 1).is_err() {
            return;
        }
    }
}

fn node(heartbeat: Duration) -> RemoteNode {
    create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().heartbeat(heartbeat),
    )
    .expect("start a local node")
}

#[test]
fn a_large_message_in_either_direction_is_not_taken_for_a_lost_node() {
    // Lost after five silent quarter-seconds: each transfer below lasts longer than that here,
    // and the node sends nothing but pongs while it reads.
    let n = node(Duration::from_millis(250));
    let s: RemotePlace<Vec<f64>, u64> = n.dynamic_place(module_path!(), "swallows").unwrap();
    let m: RemotePlace<u64, Vec<f64>> = n.dynamic_place(module_path!(), "makes").unwrap();
    assert_eq!(s.put_get(vec![1.0; BIG]).unwrap(), BIG as u64);
    let back = m.put_get(BIG as u64).unwrap();
    assert_eq!(back.len(), BIG);
    assert!(back.iter().all(|&x| x == 0.25));
    assert!(n.lost_reason().is_none(), "{:?}", n.lost_reason());
}

#[test]
fn another_channel_is_served_while_a_large_message_streams() {
    let n = node(Duration::from_secs(1));
    let s: RemotePlace<Vec<f64>, u64> = n.dynamic_place(module_path!(), "swallows").unwrap();
    let e: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(e.put_get(0).unwrap(), 0);
    let streaming = Arc::new(AtomicBool::new(true));
    let (done, big) = {
        let streaming = streaming.clone();
        let big = vec![2.0; 2 * BIG];
        let handle = std::thread::spawn(move || {
            s.put(big).unwrap();
            streaming.store(false, Ordering::SeqCst);
            s.get_timeout(LIMIT).unwrap()
        });
        (handle, 2 * BIG as u64)
    };
    // Round trips on the other channel while the 512 MB write is in progress: each waits
    // behind at most one fragment, not behind the whole message.
    let mut during = 0u64;
    let mut i = 1;
    while streaming.load(Ordering::SeqCst) {
        assert_eq!(e.put_get(i).unwrap(), i);
        if streaming.load(Ordering::SeqCst) {
            during += 1;
        }
        i += 1;
    }
    assert_eq!(done.join().unwrap(), big);
    assert!(
        during >= 1,
        "no round trip on the other channel finished while the large message was written"
    );
}

#[test]
fn busy_cores_do_not_make_a_node_look_lost() {
    let n = node(Duration::from_secs(1));
    // Both cores of the node computing for six heartbeat periods, and both of ours too.
    let busy: Vec<RemotePlace<u64>> = (0..2)
        .map(|_| n.dynamic_place(module_path!(), "computes").unwrap())
        .collect();
    for p in &busy {
        p.put(6000).unwrap();
    }
    let local: Vec<Place<u64>> = (0..2).map(|_| Place::spawn(computes).unwrap()).collect();
    for p in &local {
        p.put(6000).unwrap();
    }
    for p in busy.iter() {
        assert_ne!(p.get_timeout(LIMIT).unwrap(), 0);
    }
    for p in local.iter() {
        assert_ne!(p.get_timeout(LIMIT).unwrap(), 0);
    }
    assert!(n.lost_reason().is_none(), "{:?}", n.lost_reason());
}
