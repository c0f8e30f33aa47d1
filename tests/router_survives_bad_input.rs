//! Bad input against a live router. What breaks the framing or the authentication closes that
//! connection (or refuses it); what concerns one channel is answered on that channel and the
//! connection goes on. Either way the node keeps serving its good clients and new ones.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use places::net::handshake;
use places::net::wire::{self, encode_frame, read_frame, Frame, Kind, MessageHead};
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

/// The next frame the node sends on `s`, skipping pongs.
fn next_frame(s: &mut TcpStream) -> Frame {
    loop {
        let f = read_frame(s, wire::MAX_FRAME).expect("a frame from the node");
        if f.kind != Kind::Pong {
            return f;
        }
    }
}

/// The connection is still open and served: a ping gets a pong.
fn assert_connection_serves(s: &mut TcpStream) {
    s.write_all(&encode_frame(Kind::Ping, 0, &[])).unwrap();
    loop {
        let f = read_frame(s, wire::MAX_FRAME).expect("the connection is still open");
        if f.kind == Kind::Pong {
            return;
        }
    }
}

/// The node still serves: the existing connection and a brand-new one both work.
fn assert_still_serving(n: &RemoteNode, p: &RemotePlace<u64>, round: u64) {
    assert_eq!(p.put_get(round).unwrap(), round);
    let mut fresh = authenticated(n);
    assert_connection_serves(&mut fresh);
}

/// A whole message on channel `id`: head (encoding 1, no channels) and body.
fn data(id: u64, body: &[u8]) -> Vec<u8> {
    let mut payload = MessageHead::encode(1, &[]);
    payload.extend_from_slice(body);
    encode_frame(Kind::Data, id, &payload)
}

#[test]
fn bad_framing_or_authentication_closes_that_connection_only() {
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
    let frame = data(1, b"0123456789");
    s.write_all(&frame[..frame.len() - 4]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_closed_by_node(s);
    assert_still_serving(&n, &p, 3);

    // A length prefix of 4 GiB: refused before anything is allocated.
    let mut s = authenticated(&n);
    s.write_all(&u32::MAX.to_le_bytes()).unwrap();
    s.write_all(&[wire::PROTOCOL_VERSION, 4, 0, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    assert_closed_by_node(s);
    assert_still_serving(&n, &p, 4);

    // A frame of another protocol version, and a kind no version has.
    for (at, byte) in [(4usize, 99u8), (5, 200)] {
        let mut s = authenticated(&n);
        let mut bad = encode_frame(Kind::Ping, 0, &[]);
        bad[at] = byte;
        s.write_all(&bad).unwrap();
        assert_closed_by_node(s);
    }
    assert_still_serving(&n, &p, 5);

    // Frames before the handshake: the node only ever reads a hello first.
    let mut s = raw(&n);
    s.write_all(&encode_frame(Kind::Spawn, 1, b"")).unwrap();
    assert_closed_by_node(s);
    assert_still_serving(&n, &p, 6);
}

#[test]
fn bad_messages_are_answered_on_their_channel_and_the_connection_goes_on() {
    let n = node();
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    let mut s = authenticated(&n);

    // Data for a channel that was never opened: an error, then a close, for that channel.
    s.write_all(&data(777, b"\x05")).unwrap();
    let f = next_frame(&mut s);
    assert_eq!((f.kind, f.channel), (Kind::Error, 777), "{f:?}");
    assert!(String::from_utf8_lossy(&f.payload).contains("no channel 777"));
    let f = next_frame(&mut s);
    assert_eq!((f.kind, f.channel), (Kind::Close, 777), "{f:?}");
    assert_connection_serves(&mut s);

    // A message whose head is cut short, and one that announces more channels than it holds.
    for payload in [vec![1u8], vec![1, 9, 0, 0, 0, 1, 2]] {
        s.write_all(&encode_frame(Kind::Data, 779, &payload))
            .unwrap();
        let f = next_frame(&mut s);
        assert_eq!((f.kind, f.channel), (Kind::Error, 779), "{f:?}");
        assert!(String::from_utf8_lossy(&f.payload).contains("malformed"));
    }
    assert_connection_serves(&mut s);

    // A fragment of a message that never began.
    s.write_all(&encode_frame(Kind::DataMore, 781, b"abc"))
        .unwrap();
    let f = next_frame(&mut s);
    assert_eq!((f.kind, f.channel), (Kind::Error, 781), "{f:?}");
    assert_connection_serves(&mut s);

    // A first fragment that announces an exabyte: refused, nothing allocated, and its further
    // fragments are skipped.
    let mut first = MessageHead::encode(1, &[]);
    first.extend_from_slice(&(1u64 << 60).to_le_bytes());
    first.extend_from_slice(&[0u8; 100]);
    s.write_all(&encode_frame(Kind::DataFirst, 783, &first))
        .unwrap();
    s.write_all(&encode_frame(Kind::DataMore, 783, &[0u8; 100]))
        .unwrap();
    s.write_all(&encode_frame(Kind::DataLast, 783, &[0u8; 100]))
        .unwrap();
    let f = next_frame(&mut s);
    assert_eq!((f.kind, f.channel), (Kind::Error, 783), "{f:?}");
    assert!(
        String::from_utf8_lossy(&f.payload).contains("exceeds this node's limit"),
        "{}",
        String::from_utf8_lossy(&f.payload)
    );
    assert_connection_serves(&mut s);
    assert_still_serving(&n, &p, 7);
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
    // ... and a spawn request that is not one at all, on a raw authenticated connection: a
    // refusal on its channel, and the connection still serves.
    let mut s = authenticated(&n);
    s.write_all(&encode_frame(Kind::Spawn, 1, b"\x01garbage"))
        .unwrap();
    let f = next_frame(&mut s);
    assert_eq!((f.kind, f.channel), (Kind::SpawnErr, 1), "{f:?}");
    assert!(String::from_utf8_lossy(&f.payload).contains("undecodable spawn request"));
    assert_connection_serves(&mut s);
    assert_still_serving(&n, &p, 8);
}

#[test]
fn only_the_program_that_started_a_node_can_shut_it_down() {
    let n = node();
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    let mut s = authenticated(&n);
    s.write_all(&encode_frame(Kind::Shutdown, 0, &[])).unwrap();
    assert_connection_serves(&mut s);
    assert_still_serving(&n, &p, 9);
    // Its creator can.
    n.send_exit();
    assert!(matches!(p.get_timeout(LIMIT), Err(ChannelError::Lost(_))));
}

#[test]
fn idle_unauthenticated_sockets_do_not_keep_real_clients_out() {
    let n = node();
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    // Far more idle sockets than the node lets wait in their handshake: it pushes out the
    // oldest, so a real client still gets in at once.
    let idle: Vec<TcpStream> = (0..300).map(|_| raw(&n)).collect();
    let mut fresh = authenticated(&n);
    assert_connection_serves(&mut fresh);
    assert_still_serving(&n, &p, 10);
    // The oldest idle sockets have been closed by the node.
    let mut first = idle.into_iter().next().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(first.read(&mut buf).unwrap_or(0), 0);
}

/// Clock ticks of CPU time process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc");
    // After the command name in parentheses: state, then 10 fields, then utime and stime.
    let rest = &stat[stat.rfind(')').expect("the command name") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_node_out_of_descriptors_waits_instead_of_spinning_and_recovers() {
    // The node (this test binary, under `prlimit`) may hold 40 descriptors.
    let me = std::env::current_exe().unwrap();
    let n = create_place_node(
        "localhost",
        NodeOptions::new().exe("prlimit").exe_args([
            "--nofile=40:40".to_owned(),
            "--".to_owned(),
            me.display().to_string(),
            "places_node".to_owned(),
            "--exact".to_owned(),
            "--nocapture".to_owned(),
            "--test-threads=1".to_owned(),
        ]),
    )
    .expect("start a node with few descriptors");
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    // More idle connections than it has descriptors: its accept fails with EMFILE.
    let idle: Vec<TcpStream> = (0..60).map(|_| raw(&n)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let pid = n.pid().unwrap();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    // A loop that retried at once would use the whole core: about 200 ticks in 2 s.
    assert!(
        used < 50,
        "the node used {used} clock ticks of CPU in 2 s while out of descriptors"
    );
    // Its existing connection works throughout, and new ones once descriptors are free again.
    assert_eq!(p.put_get(11).unwrap(), 11);
    drop(idle);
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let mut s = raw(&n);
        if handshake::client(&mut s, &places::net::cluster_cookie().unwrap()).is_ok() {
            assert_connection_serves(&mut s);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node never took new connections again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Handoff frames (see `places_core::transport::handoff`) from a peer that makes them up: an
/// `Adopt` without a token is refused on its channel; ends adopted for messages that never come
/// are bounded per peer (later ones are refused, naming why); answers and commits for handoffs
/// that do not exist, and malformed payloads, are ignored. The connection goes on throughout.
#[test]
fn made_up_handoff_frames_are_refused_or_ignored_and_bounded() {
    let n = node();
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    let mut s = authenticated(&n);

    s.write_all(&encode_frame(Kind::Adopt, 901, &5u64.to_le_bytes()))
        .unwrap();
    let f = next_frame(&mut s);
    assert_eq!((f.kind, f.channel), (Kind::Kept, 901), "{f:?}");
    let (_, why) = wire::parse_kept(&f.payload).expect("a Kept payload");
    assert!(why.contains("token"), "{why}");
    let f = next_frame(&mut s);
    assert_eq!((f.kind, f.channel), (Kind::Close, 901), "{f:?}");

    // Made-up answers, commits, resumes and handoffs, and short payloads: nothing happens.
    for (kind, payload) in [
        (Kind::Commit, (1u64 << 63 | 3).to_le_bytes().to_vec()),
        (Kind::Resume, (1u64 << 63 | 3).to_le_bytes().to_vec()),
        (Kind::HandedOff, 3u64.to_le_bytes().to_vec()),
        (Kind::Kept, wire::kept_payload(3, "why")),
        (
            Kind::Handoff,
            wire::handoff_payload(1 << 63 | 3, 3, "127.0.0.1:1"),
        ),
        (Kind::Adopt, vec![1, 2]),
        (Kind::Handoff, vec![1, 2, 3]),
        (Kind::Kept, vec![]),
    ] {
        s.write_all(&encode_frame(kind, 903, &payload)).unwrap();
    }
    assert_connection_serves(&mut s);

    // Ends adopted for messages that never come: at most 4096 wait; the next is refused.
    let mut frames = Vec::new();
    for i in 0..4096u64 {
        let token = 1u64 << 63 | (0x5eed_0000 + i);
        frames.extend(encode_frame(
            Kind::Adopt,
            1001 + 2 * i,
            &token.to_le_bytes(),
        ));
    }
    s.write_all(&frames).unwrap();
    let token = 1u64 << 63 | 0x7777;
    s.write_all(&encode_frame(Kind::Adopt, 99_001, &token.to_le_bytes()))
        .unwrap();
    // Each kept one is answered `HandedOff`; the refusal is `Kept`, with the reason.
    let mut kept = 0;
    let f = loop {
        let f = next_frame(&mut s);
        if f.channel == 99_001 {
            break f;
        }
        if f.kind == Kind::HandedOff {
            kept += 1;
        }
    };
    assert_eq!(kept, 4096);
    assert_eq!(f.kind, Kind::Kept, "{f:?}");
    let (_, why) = wire::parse_kept(&f.payload).expect("a Kept payload");
    assert!(why.contains("wait here for their messages"), "{why}");
    assert_connection_serves(&mut s);
    assert_still_serving(&n, &p, 8);
}
