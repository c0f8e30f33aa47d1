//! Bad input against a live router: each bad connection is closed (or refused) with a reason,
//! and the node keeps serving its good clients and new ones.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use places::net::handshake;
use places::net::wire::{encode_frame, read_frame, Kind};
use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};

const LIMIT: Duration = Duration::from_secs(30);

places::node_test_entry!();

/// Echoes numbers until its creator leaves.
#[place]
pub fn echo(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

fn node() -> RemoteNode {
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
}

fn raw(n: &RemoteNode) -> TcpStream {
    let s = TcpStream::connect(n.addr()).expect("connect to the router");
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

fn authenticated(n: &RemoteNode) -> TcpStream {
    let mut s = raw(n);
    handshake::client(&mut s, &places::net::cluster_cookie().unwrap()).expect("handshake");
    s
}

/// Reads until the node closes the connection; fails if it stays open past the limit.
fn assert_closed_by_node(mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the node did not close the connection: {e}"),
        }
    }
}

/// The node still serves: the existing connection and a brand-new one both work.
fn assert_still_serving(n: &RemoteNode, p: &RemotePlace<u64>, round: u64) {
    assert_eq!(p.put_get(round).unwrap(), round);
    let mut fresh = authenticated(n);
    fresh.write_all(&encode_frame(Kind::Ping, 0, &[])).unwrap();
    let pong = read_frame(&mut fresh, 1 << 20).unwrap();
    assert_eq!(pong.kind, Kind::Pong);
}

#[test]
fn the_router_survives_every_kind_of_bad_input() {
    let n = node();
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();

    // Random bytes instead of a hello.
    let mut s = raw(&n);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let _ = s.write_all(&junk);
    assert_closed_by_node(s);
    assert_still_serving(&n, &p, 1);

    // A wrong cookie is refused, with the reason.
    let mut s = raw(&n);
    let err = handshake::client(&mut s, &places::Cookie::random().unwrap()).unwrap_err();
    assert!(err.to_string().contains("cookie"), "{err}");
    assert_still_serving(&n, &p, 2);

    // A truncated frame, then the end of the connection.
    let mut s = authenticated(&n);
    let frame = encode_frame(Kind::Data, 1, b"0123456789");
    s.write_all(&frame[..frame.len() - 4]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_closed_by_node(s);
    assert_still_serving(&n, &p, 3);

    // A length prefix of 4 GiB: refused before anything is allocated.
    let mut s = authenticated(&n);
    s.write_all(&u32::MAX.to_le_bytes()).unwrap();
    s.write_all(&[1, 4, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    assert_closed_by_node(s);
    assert_still_serving(&n, &p, 4);

    // Data for a channel that was never opened.
    let mut s = authenticated(&n);
    s.write_all(&encode_frame(Kind::Data, 777, b"\x01\x05"))
        .unwrap();
    assert_closed_by_node(s);
    assert_still_serving(&n, &p, 5);

    // Frames before the handshake: the node only ever reads a hello first.
    let mut s = raw(&n);
    s.write_all(&encode_frame(Kind::Spawn, 1, b"")).unwrap();
    assert_closed_by_node(s);
    assert_still_serving(&n, &p, 6);
}

#[test]
fn bad_spawn_requests_get_a_refusal_not_a_dead_node() {
    let n = node();
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    // An unknown entry and a known entry with the wrong types, through the public API ...
    assert!(n
        .dynamic_place::<u64, u64>(module_path!(), "no_such_entry")
        .is_err());
    assert!(n
        .dynamic_place::<String, String>(module_path!(), "echo")
        .is_err());
    // ... and a spawn request that is not one at all, on a raw authenticated connection.
    let mut s = authenticated(&n);
    s.write_all(&encode_frame(Kind::Spawn, 1, b"\x01garbage"))
        .unwrap();
    assert_closed_by_node(s);
    assert_still_serving(&n, &p, 7);
}
