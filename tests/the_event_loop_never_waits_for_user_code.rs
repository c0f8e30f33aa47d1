//! The event loop only moves bytes: a thunk entry that takes its time, a `Deserialize` that
//! blocks, or a peer that stops reading holds up only its own channel, never the node's other
//! places and connections.

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use places::net::wire::{encode_frame, Kind};
use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const LIMIT: Duration = Duration::from_secs(60);

places::node_test_entry!();

/// The folder where the tests open the gates that user code on the node waits for; nodes get
/// it from their environment.
fn gates() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("places-gates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("PLACES_TEST_GATES", &dir);
        dir
    })
}

/// Waits (on the node) until the test opens gate `name`, for at most a minute.
fn wait_for_gate(name: &str) {
    let dir = std::env::var_os("PLACES_TEST_GATES").expect("the gate folder");
    let gate = PathBuf::from(dir).join(name);
    let end = Instant::now() + LIMIT;
    while !gate.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn open_gate(name: &str) {
    std::fs::write(gates().join(name), b"open").unwrap();
}

fn node() -> RemoteNode {
    gates();
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
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

/// A thunk entry that does its set-up slowly: until the test opens its gate.
#[place]
pub fn slow_thunk() -> Place<u64> {
    wait_for_gate("thunk");
    Place::spawn(echo).expect("spawn the echo place")
}

/// A value whose decoding waits for the gate its number names.
#[derive(Debug)]
pub struct Slow(pub u64);

impl Serialize for Slow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Slow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        wait_for_gate(&format!("decode-{n}"));
        Ok(Slow(n))
    }
}

/// Answers every `Slow` with its number.
#[place]
pub fn takes_slow(ch: PlaceChannel<u64, Slow>) {
    while let Ok(Slow(n)) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

/// Round trips on `e` work now.
fn assert_answers(e: &RemotePlace<u64>) {
    for i in 0..20 {
        assert_eq!(e.put_get(i).unwrap(), i);
    }
}

#[test]
fn a_slow_thunk_entry_holds_up_only_its_own_spawn() {
    let n = node();
    let e: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    std::thread::scope(|s| {
        let spawning = s.spawn(|| {
            let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "slow_thunk").unwrap();
            p.put_get(99).unwrap()
        });
        // The thunk runs on the node until its gate opens; meanwhile the node serves.
        assert_answers(&e);
        let other: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
        assert_eq!(other.put_get(5).unwrap(), 5);
        assert!(
            !spawning.is_finished(),
            "the thunk did not wait for its gate"
        );
        open_gate("thunk");
        assert_eq!(spawning.join().unwrap(), 99);
    });
}

#[test]
fn a_blocking_deserialize_holds_up_only_its_own_channel() {
    let n = node();
    let e: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    let t: RemotePlace<Slow, u64> = n.dynamic_place(module_path!(), "takes_slow").unwrap();
    t.put(Slow(1)).unwrap();
    // The message is decoded by the place that takes it, not by the node's event loop: the
    // other place answers while the decode waits.
    assert_answers(&e);
    assert_eq!(t.try_get(), Err(ChannelError::Empty));
    open_gate("decode-1");
    assert_eq!(t.get_timeout(LIMIT).unwrap(), 1);
}

#[test]
fn a_peer_that_stops_reading_does_not_freeze_the_node() {
    let n = node();
    let e: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    // Two raw connections that ask for pongs and never read them: their sockets fill up.
    let stuck: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(n.addr()).unwrap();
            places::net::handshake::client(&mut s, &places::net::cluster_cookie().unwrap())
                .unwrap();
            s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
            let pings: Vec<u8> = (0..4096)
                .flat_map(|_| encode_frame(Kind::Ping, 0, &[]))
                .collect();
            // Until our side is full too: the node's replies to us have long filled its socket.
            for _ in 0..1000 {
                if s.write_all(&pings).is_err() {
                    break;
                }
            }
            s
        })
        .collect();
    assert_answers(&e);
    let fresh: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(fresh.put_get(7).unwrap(), 7);
    drop(stuck);
    assert_answers(&e);
}

/// A thunk entry started under a name, whose set-up waits for its gate.
#[place]
pub fn slow_named_thunk() -> Place<u64> {
    wait_for_gate("named-thunk");
    Place::spawn(echo).expect("spawn the echo place")
}

#[test]
fn a_slow_named_thunk_holds_up_neither_connects_nor_other_places() {
    let n = node();
    let e: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    std::thread::scope(|s| {
        let spawning = s.spawn(|| {
            places::supervise_place_at::<u64, u64>(
                &n,
                module_path!(),
                "slow_named_thunk",
                places::PlaceOptions::new().named("slow"),
            )
            .map(|_| ())
        });
        // Whether or not the thunk is running yet: a connect to another name, and another
        // place, are answered at once.
        let missing = places::connect_to_named_place::<u64, u64>(&n, "nobody").unwrap_err();
        assert!(missing.to_string().contains("nobody"), "{missing}");
        assert_answers(&e);
        assert!(
            !spawning.is_finished(),
            "the thunk did not wait for its gate"
        );
        open_gate("named-thunk");
        spawning.join().unwrap().unwrap();
    });
    assert!(n.lost_reason().is_none());
}
