//! A thread that polls for a message from the network reads the process's connections itself
//! while it polls (the event loop stands aside meanwhile). What it reads for other channels
//! reaches them, in order; a receiver that is parked meanwhile is served; and a connection
//! that ends under a polling thread is reported as the event loop reports it: `Lost`, naming
//! the node.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Echoes numbers.
#[place]
pub fn echo(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

/// Given a count, sends that many numbered messages, then waits for the next count.
#[place]
pub fn streamer(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        for i in 0..n {
            if ch.put(i).is_err() {
                return;
            }
        }
    }
}

/// Answers each number with its double (the test asks 20 ms apart, so it is parked in between).
#[place]
pub fn doubler(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n * 2).is_err() {
            return;
        }
    }
}

/// Ping-pongs with `echo` until `stop` is set; returns how many round trips it made.
fn ping_pong_until(echo: &RemotePlace<u64>, stop: &AtomicBool) -> u64 {
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        assert_eq!(echo.put_get(i).expect("a round trip"), i);
        i += 1;
    }
    i
}

#[test]
fn two_threads_waiting_on_one_connection_each_get_their_own_in_order() {
    let n = node();
    let echo: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").expect("echo");
    let stream: RemotePlace<u64> = n
        .dynamic_place(module_path!(), "streamer")
        .expect("streamer");
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        std::thread::spawn(move || ping_pong_until(&echo, &stop))
    };
    // Both threads of this program poll the one connection to the node; each message must
    // reach its own channel, in the order it was sent.
    const COUNT: u64 = 20_000;
    stream.put(COUNT).expect("start the stream");
    for want in 0..COUNT {
        let got = stream
            .get_timeout(LIMIT)
            .unwrap_or_else(|e| panic!("message {want} of the stream: {e}"));
        assert_eq!(got, want, "the stream arrived out of order");
    }
    stop.store(true, Ordering::SeqCst);
    let trips = pinger.join().expect("the pinging thread");
    eprintln!("{trips} round trips on the other channel while {COUNT} messages streamed");
    assert!(trips > 0);
}

#[test]
fn a_parked_receiver_is_served_while_another_thread_polls() {
    let n = node();
    let echo: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").expect("echo");
    let slow: RemotePlace<u64> = n.dynamic_place(module_path!(), "doubler").expect("doubler");
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        std::thread::spawn(move || ping_pong_until(&echo, &stop))
    };
    // Between these requests both the doubler (on the node) and this thread (here) are
    // parked, while the echo and the pinging thread poll the connection on both sides.
    let mut slowest = Duration::ZERO;
    for i in 0..40u64 {
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        slow.put(i).expect("a request");
        let got = slow
            .get_timeout(LIMIT)
            .unwrap_or_else(|e| panic!("answer {i}: {e}"));
        assert_eq!(got, i * 2);
        slowest = slowest.max(start.elapsed());
    }
    stop.store(true, Ordering::SeqCst);
    let trips = pinger.join().expect("the pinging thread");
    eprintln!("{trips} round trips alongside; the slowest parked answer took {slowest:?}");
}

#[test]
fn a_node_killed_while_a_thread_polls_its_connection_is_lost_naming_it() {
    let n = node();
    let echo: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").expect("echo");
    let trips = Arc::new(AtomicU64::new(0));
    let pinger = {
        let trips = trips.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut i = 0u64;
            loop {
                assert!(
                    start.elapsed() < LIMIT,
                    "the round trips went on past the kill"
                );
                match echo.put_get(i) {
                    Ok(v) => assert_eq!(v, i),
                    Err(e) => return e,
                }
                i += 1;
                trips.store(i, Ordering::SeqCst);
            }
        })
    };
    let start = Instant::now();
    while trips.load(Ordering::SeqCst) < 500 {
        assert!(start.elapsed() < LIMIT, "no round trips");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = n.pid().expect("a local node's pid");
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let err = pinger.join().expect("the pinging thread");
    match &err {
        ChannelError::Lost(why) => assert!(
            why.contains(&n.addr()),
            "`{why}` does not name the node at {}",
            n.addr()
        ),
        other => panic!("expected Lost naming the node, got {other:?}"),
    }
    eprintln!("after {} round trips: {err}", trips.load(Ordering::SeqCst));
}
