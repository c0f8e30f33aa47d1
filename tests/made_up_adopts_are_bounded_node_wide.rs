//! Made-up `Adopt` frames (see `places_core::transport::handoff`) from one authenticated peer
//! over several connections: the node keeps a bounded number of adopted ends in all, not a
//! number per connection (each buffers what the peer sends on it). From a review.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use places::net::handshake;
use places::net::wire::{self, encode_frame, read_frame, Kind, MessageHead};
use places::{create_place_node, NodeOptions, RemoteNode};

places::node_test_entry!();

const LIMIT: Duration = Duration::from_secs(60);

fn node() -> RemoteNode {
    create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().hand_off_channel_ends(true),
    )
    .expect("start a local node")
}

fn authenticated(n: &RemoteNode) -> TcpStream {
    let mut s = TcpStream::connect(n.addr()).expect("connect to the node");
    s.set_read_timeout(Some(LIMIT)).unwrap();
    handshake::client(&mut s, &places::net::cluster_cookie().unwrap()).expect("handshake");
    s
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Adopts 4096 made-up tokens on `s` (plus one that is refused); returns how many the node kept.
fn adopt_all(s: &mut TcpStream, conn: u64) -> usize {
    let mut frames = Vec::new();
    for i in 0..4096u64 {
        let token = 1u64 << 63 | (conn << 32) | i;
        frames.extend(encode_frame(
            Kind::Adopt,
            1001 + 2 * i,
            &token.to_le_bytes(),
        ));
    }
    s.write_all(&frames).unwrap();
    let token = 1u64 << 63 | (conn << 32) | 0xffff_ffff;
    s.write_all(&encode_frame(Kind::Adopt, 99_001, &token.to_le_bytes()))
        .unwrap();
    let mut kept = 0;
    loop {
        let f = read_frame(s, wire::MAX_FRAME).expect("a frame from the node");
        if f.channel == 99_001 {
            assert_eq!(f.kind, Kind::Kept, "{f:?}");
            return kept;
        }
        if f.kind == Kind::HandedOff {
            kept += 1;
        }
    }
}

#[test]
fn made_up_adopts_over_several_links_are_bounded_node_wide() {
    let y = node();
    let pid = y.pid().unwrap();
    let before = rss_kib(pid);
    let mut conns = Vec::new();
    let mut total = 0;
    for c in 0..4u64 {
        let mut s = authenticated(&y);
        total += adopt_all(&mut s, c);
        conns.push(s);
    }
    // A MiB of data on each of 64 adopted ids (16 per connection): buffered, nobody reads it.
    let body = vec![7u8; 1 << 20];
    let mut payload = MessageHead::encode(places::codec::RAW_BYTES, &[]);
    payload.extend_from_slice(&body);
    for s in conns.iter_mut() {
        for i in 0..16u64 {
            s.write_all(&encode_frame(Kind::Data, 1001 + 2 * i, &payload))
                .unwrap();
        }
        s.flush().unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_kib(pid);
    println!(
        "one node keeps {total} made-up adopted ends from 4 links of one peer; its RSS went from {before} KiB to {after} KiB"
    );
    assert!(
        total <= 8192,
        "{total} adopted ends, more than the node's 8192 marks"
    );
}
