//! What a local end whose peer went to a node never does, now that its own threads pass its
//! messages on (see `places_core::transport::splice`): its unbounded `put` and `try_put` never
//! wait for that node, not even when the node stalls (stopped with SIGSTOP) or an end inside the
//! value waits to be handed off; a value whose `Serialize` panics fails only itself, whichever
//! thread encodes it; and a close that arrives while a `get` polls is seen at once. Real node
//! processes. (Found by a review of the change, each test failing before its fix.)

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, ChannelError, NodeOptions, RemoteNode, RemotePlace};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

places::node_test_entry!();

const LIMIT: Duration = Duration::from_secs(60);

/// How long a node is kept stopped while a put that must not wait for it may return.
const STALL: Duration = Duration::from_secs(20);

fn node() -> RemoteNode {
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
}

fn node_handing_off() -> RemoteNode {
    create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().hand_off_channel_ends(true),
    )
    .expect("start a local node")
}

fn signal(n: &RemoteNode, sig: &str) {
    let pid = n.pid().expect("a local node's pid");
    assert!(std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// Runs `f` on a thread; how long it took, or `None` if it did not return within `within`.
fn timed<T: Send + 'static>(
    within: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> (Option<Duration>, mpsc::Receiver<(Duration, T)>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = f();
        let _ = tx.send((t.elapsed(), r));
    });
    match rx.recv_timeout(within) {
        Ok((d, _)) => (Some(d), rx),
        Err(_) => (None, rx),
    }
}

// ---------------------------------------------------------------------------------------------
// An unbounded local `put` or `try_put` does not write on its thread what would wait.

/// Takes an end and takes everything on it until it closes.
#[place]
pub fn sink_bytes(ch: PlaceChannel<(), PlaceChannel<(), Vec<u8>>>) {
    let Ok(end) = ch.get() else { return };
    while end.get().is_ok() {}
}

/// Puts 3 MiB with `put` (a `try_put` when `try_it`) on a local end whose peer is on a node
/// that stalls (a busy machine, a slow network: here stopped): how long it took, or `None` if it
/// did not return while the node was stopped.
fn put_to_a_stalled_node(try_it: bool) -> Option<Duration> {
    let n = node();
    let p: RemotePlace<PlaceChannel<(), Vec<u8>>, ()> =
        n.dynamic_place(module_path!(), "sink_bytes").unwrap();
    let (here, there) = place_channel::<Vec<u8>, ()>();
    p.put(there).unwrap();
    here.put(vec![1]).unwrap();
    signal(&n, "-STOP");
    // 3 MiB: within the channel's 4 MiB window, so no credit is waited for. The node stays
    // stopped until the put returns (or STALL passes): a put that returns at all did not wait
    // for the node.
    let (took, rx) = timed(STALL, move || {
        let ok = if try_it {
            here.try_put(vec![7u8; 3 << 20]).is_ok()
        } else {
            here.put(vec![7u8; 3 << 20]).is_ok()
        };
        (here, ok)
    });
    signal(&n, "-CONT");
    let late = rx.recv_timeout(LIMIT).map(|(d, (_, ok))| (d, ok));
    eprintln!("put of 3 MiB (try_put: {try_it}): {took:?}; after the node went on: {late:?}");
    took
}

#[test]
fn an_unbounded_local_put_does_not_wait_for_a_stalled_node() {
    assert!(
        put_to_a_stalled_node(false).is_some(),
        "the put waited for the node"
    );
}

#[test]
fn try_put_does_not_wait_for_a_stalled_node() {
    assert!(
        put_to_a_stalled_node(true).is_some(),
        "the try_put waited for the node"
    );
}

// ---------------------------------------------------------------------------------------------
// A `Serialize` that panics fails its own value, whichever thread passes it on.

/// A value whose encoding can be slow or can panic.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// An ordinary number.
    Plain(u64),
    /// Takes 300 ms to encode.
    Slow,
    /// Its `Serialize` panics.
    Bomb,
}

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Plain(n) => s.serialize_u64(*n),
            Val::Slow => {
                std::thread::sleep(Duration::from_millis(300));
                s.serialize_u64(1)
            }
            Val::Bomb => panic!("the Bomb's Serialize panics"),
        }
    }
}

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(Val::Plain)
    }
}

/// Takes an end and takes every value on it until it closes.
#[place]
pub fn sink_vals(ch: PlaceChannel<(), PlaceChannel<(), Val>>) {
    let Ok(end) = ch.get() else { return };
    while end.get().is_ok() {}
}

#[test]
fn a_panicking_serialize_of_one_threads_value_does_not_panic_another_threads_put() {
    let n = node();
    let p: RemotePlace<PlaceChannel<(), Val>, ()> =
        n.dynamic_place(module_path!(), "sink_vals").unwrap();
    let (here, there) = place_channel::<Val, ()>();
    p.put(there).unwrap();
    here.put(Val::Plain(0)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let here = Arc::new(here);
    let h = here.clone();
    // Thread A puts a fine (slow to encode) value.
    let a = std::thread::spawn(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.put(Val::Slow))).map_err(|p| {
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .unwrap_or_default()
        })
    });
    std::thread::sleep(Duration::from_millis(100));
    // Thread B (this one) puts the bomb meanwhile: its put returns at once.
    let b = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| here.put(Val::Bomb)));
    let a = a.join().unwrap();
    eprintln!(
        "B's put of the bomb: {:?}; A's put of a fine value: {a:?}",
        b.is_ok()
    );
    assert_eq!(
        a,
        Ok(Ok(())),
        "thread A's put of a fine value panicked with B's value's Serialize"
    );
}

// ---------------------------------------------------------------------------------------------
// An end inside a value that may be handed off is left to the relay thread, which may wait.

type End = PlaceChannel<u64, u64>;

/// Makes a pair, sends one end to its creator, keeps the other until told.
#[place]
pub fn maker(ch: PlaceChannel<Option<End>, ()>) {
    let (mine, theirs) = places::place_channel::<u64, u64>();
    if ch.put(Some(theirs)).is_err() {
        return;
    }
    let _ = ch.get();
    drop(mine);
}

/// Takes a channel, then an end on it, and keeps it.
#[place]
pub fn end_taker(ch: PlaceChannel<(), PlaceChannel<(), End>>) {
    let Ok(c) = ch.get() else { return };
    let _kept: Vec<End> = std::iter::from_fn(|| c.get().ok()).collect();
}

#[test]
fn try_put_of_an_end_does_not_wait_for_its_node() {
    let (x, y) = (node_handing_off(), node_handing_off());
    let m: RemotePlace<(), Option<End>> = x.dynamic_place(module_path!(), "maker").unwrap();
    let e = m.get_timeout(LIMIT).unwrap().expect("an end");
    let t: RemotePlace<PlaceChannel<(), End>, ()> =
        y.dynamic_place(module_path!(), "end_taker").unwrap();
    let (here, there) = place_channel::<End, ()>();
    t.put(there).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The end's node is slow to answer.
    signal(&x, "-STOP");
    let (took, rx) = timed(STALL, move || {
        let _ = here.try_put(e);
        here
    });
    signal(&x, "-CONT");
    let late = rx.recv_timeout(LIMIT).map(|(d, _)| d);
    eprintln!("try_put of an end: {took:?} (returned after {late:?})");
    assert!(
        took.is_some(),
        "try_put waited for a handoff: returned after {late:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// A close that arrives while a `get` polls rings the relay thread.

/// Takes an end and drops it as soon as a message comes on it.
#[place]
pub fn drops_on_message(ch: PlaceChannel<(), PlaceChannel<u64, u64>>) {
    let Ok(end) = ch.get() else { return };
    let _ = end.get();
    drop(end);
}

/// Run by `a_close_that_lands_at_the_end_of_a_spin_is_seen` in a child process.
#[test]
#[ignore = "run by a_close_that_lands_at_the_end_of_a_spin_is_seen, in a child process"]
fn close_at_the_end_of_a_spin_in_a_child() {
    let n = node();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let trials: u64 = std::env::var("TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (mut worst, mut timed_out) = (Duration::ZERO, 0);
    for i in 0..trials {
        let p: RemotePlace<PlaceChannel<u64, u64>, ()> =
            n.dynamic_place(module_path!(), "drops_on_message").unwrap();
        let (here, there) = place_channel::<u64, u64>();
        p.put(there).unwrap();
        // Make sure the place has the end before the close is triggered.
        std::thread::sleep(Duration::from_millis(1));
        here.put(i).unwrap();
        // A spin whose end straddles the close's arrival (the round trip) now and then.
        let k = Duration::from_micros(i % 400);
        match here.get_timeout(k) {
            Err(ChannelError::Timeout(_)) => timed_out += 1,
            Err(ChannelError::Closed) => continue,
            other => panic!("{other:?}"),
        }
        // With the relay's idle look at ten minutes, a close nobody rang for is seen only
        // after LIMIT.
        let t = Instant::now();
        let r = rt.block_on(async { tokio::time::timeout(LIMIT, here.recv()).await });
        assert_eq!(r, Ok(Err(ChannelError::Closed)), "trial {i} (spin {k:?})");
        worst = worst.max(t.elapsed());
    }
    eprintln!("{trials} trials ({timed_out} spins timed out): the slowest close took {worst:?}");
}

#[test]
fn a_close_that_lands_at_the_end_of_a_spin_is_seen() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "close_at_the_end_of_a_spin_in_a_child",
            "--ignored",
            "--nocapture",
        ])
        .env("PLACES_RELAY_IDLE_LOOK_MS", "600000")
        .output()
        .expect("run the child");
    let said = String::from_utf8_lossy(&out.stderr);
    eprintln!("{said}");
    assert!(out.status.success(), "the child failed: {}", out.status);
    assert!(
        said.contains("the slowest close took"),
        "the child ran the trials"
    );
}

// ---------------------------------------------------------------------------------------------
// A `Serialize` that panics on the relay thread (the value waited for credit) does not end the
// relay: once the peer is gone, `put` fails.

/// Takes an end, waits, takes what comes until nothing has come for a second, then ends.
#[place]
pub fn slow_sink(ch: PlaceChannel<(), PlaceChannel<(), Val>>) {
    let Ok(end) = ch.get() else { return };
    std::thread::sleep(Duration::from_millis(500));
    while end.get_timeout(Duration::from_secs(1)).is_ok() {}
}

#[test]
fn after_a_relay_side_serialize_panic_puts_fail_once_the_peer_is_gone() {
    let n = node();
    let p: RemotePlace<PlaceChannel<(), Val>, ()> =
        n.dynamic_place(module_path!(), "slow_sink").unwrap();
    let (here, there) = place_channel::<Val, ()>();
    p.put(there).unwrap();
    // More than the window's 1024 messages: the rest wait for the relay thread, which meets
    // the bomb once credit comes back.
    for i in 0..1200 {
        here.put(Val::Plain(i)).unwrap();
    }
    here.put(Val::Bomb).unwrap();
    assert_eq!(p.wait_timeout(LIMIT), Some(0), "the sink ends");
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let mut oks = 0;
    let last = loop {
        match here.put(Val::Plain(0)) {
            Ok(()) if start.elapsed() < LIMIT => {
                oks += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            r => break r,
        }
    };
    eprintln!("{oks} puts returned Ok after the peer was gone; then {last:?}");
    assert_eq!(
        last,
        Err(ChannelError::Closed),
        "puts after the peer is gone"
    );
}
