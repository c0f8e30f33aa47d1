//! A peer that sends `Repoint` again and again on one of its own channels (to an address that
//! accepts connections and never answers) gets one repoint under way and a refusal for the
//! rest: the node's threads and connections stay bounded, and the channel goes on working.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemotePlace};
use places_core::transport::Control;

places::node_test_entry!();

/// Waits for numbers.
#[place]
pub fn idle(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn repoints_on_one_channel_start_a_bounded_number_of_threads() {
    // Accepts connections and never answers: a connection attempt there waits for its
    // handshake's timeout.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = hole.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hole.incoming() {
            held.push(s);
        }
    });
    let x = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().hand_off_channel_ends(true),
    )
    .expect("start a local node");
    let p: RemotePlace<u64, u64> = x.dynamic_place(module_path!(), "idle").unwrap();
    p.put(1).unwrap();
    assert_eq!(p.get_timeout(Duration::from_secs(20)).unwrap(), 1);
    let pid = x.pid().unwrap();
    let before = threads_of(pid);
    let ep = p
        .channel()
        .endpoint()
        .expect("a remote place's channel")
        .clone();
    for k in 0..2000u64 {
        ep.link().send_control(
            ep.id(),
            Control::Repoint {
                token: (1 << 63) | (k + 1),
                attempt: k,
                to: to.clone(),
            },
        );
    }
    let t = Instant::now();
    let mut most = before;
    while t.elapsed() < Duration::from_secs(4) {
        most = most.max(threads_of(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The place still answers.
    p.put(2).unwrap();
    let answer = p.get_timeout(Duration::from_secs(20));
    assert!(
        most < before + 100,
        "the node went from {before} to {most} threads (answer after: {answer:?})"
    );
    assert_eq!(answer.unwrap(), 2);
}
