//! A local end whose peer was sent to a node passes its messages on itself: its `put` writes
//! them to the node, and its `get` takes what the node sent while it polls (the peer's relay
//! threads only step in when that cannot be done at once). Seen from the user, nothing changes:
//! order holds for every sender and every way of receiving, an unbounded `put` never waits
//! (even far beyond the link's window), and closing works both ways. Real node processes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, ChannelError, NodeOptions, RemoteNode, RemotePlace};

const LIMIT: Duration = Duration::from_secs(60);

places::node_test_entry!();

fn node() -> RemoteNode {
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
}

/// Takes a channel end and echoes what comes on it until it closes.
#[place]
pub fn echo_end(ch: PlaceChannel<(), PlaceChannel<(u64, u64, Vec<u8>)>>) {
    let Ok(end) = ch.get() else { return };
    while let Ok(v) = end.get() {
        if end.put(v).is_err() {
            return;
        }
    }
}

/// Takes a channel end and a count, sends 0..count on it as fast as it can, then ends.
#[place]
pub fn stream_end(ch: PlaceChannel<(), (PlaceChannel<u64, ()>, u64)>) {
    let Ok((end, n)) = ch.get() else { return };
    for i in 0..n {
        if end.put(i).is_err() {
            return;
        }
    }
}

/// A local end whose peer is in an `echo_end` place on a fresh node.
fn echoed() -> (RemoteNode, PlaceChannel<(u64, u64, Vec<u8>)>) {
    let n = node();
    let p: RemotePlace<PlaceChannel<(u64, u64, Vec<u8>)>, ()> =
        n.dynamic_place(module_path!(), "echo_end").unwrap();
    let (here, there) = place_channel();
    p.put(there).unwrap();
    (n, here)
}

/// Runs `f` on a thread and waits for it within `LIMIT`: a `put` that waits where it must not
/// shows as a failure here rather than as a test that never ends.
fn within_limit<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("{what} did not finish within {LIMIT:?}"))
}

#[test]
fn puts_far_beyond_the_window_never_wait_and_come_back_in_order() {
    let (_n, here) = echoed();
    let here = Arc::new(here);
    // 4000 messages of 8 KiB: 32 MiB, far more than a link's window, put without one `get`
    // (the echoes pile up here meanwhile).
    let count = 4000u64;
    let h = here.clone();
    within_limit("4000 puts without a get", move || {
        for i in 0..count {
            h.put((0, i, vec![i as u8; 8 << 10])).expect("a put");
        }
    });
    let h = here.clone();
    within_limit("getting the 4000 echoes", move || {
        for i in 0..count {
            let (_, j, v) = h.get_timeout(LIMIT).expect("an echo");
            assert_eq!(j, i, "echoes come back in the order they were put");
            assert!(v.len() == 8 << 10 && v.iter().all(|b| *b == i as u8));
        }
    });
}

#[test]
fn threads_that_share_the_end_each_keep_their_order() {
    let (_n, here) = echoed();
    let here = Arc::new(here);
    let (threads, each) = (3u64, 2000u64);
    let putters: Vec<_> = (0..threads)
        .map(|t| {
            let h = here.clone();
            std::thread::spawn(move || {
                for i in 0..each {
                    h.put((t, i, Vec::new())).expect("a put");
                }
            })
        })
        .collect();
    let h = here.clone();
    let next = within_limit("getting every echo", move || {
        let mut next = vec![0u64; threads as usize];
        for _ in 0..threads * each {
            let (t, i, _) = h.get_timeout(LIMIT).expect("an echo");
            assert_eq!(
                i, next[t as usize],
                "thread {t}'s messages arrive in its order"
            );
            next[t as usize] += 1;
        }
        next
    });
    for p in putters {
        p.join().expect("a putting thread");
    }
    assert_eq!(next, vec![each; threads as usize]);
}

#[test]
fn every_way_of_receiving_takes_the_stream_in_order() {
    let n = node();
    let p: RemotePlace<(PlaceChannel<u64, ()>, u64), ()> =
        n.dynamic_place(module_path!(), "stream_end").unwrap();
    let (here, there) = place_channel::<(), u64>();
    let count = 20_000u64;
    p.put((there, count)).unwrap();
    let polls = Arc::new(AtomicUsize::new(0));
    let polled = polls.clone();
    within_limit("taking the stream", move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        for i in 0..count {
            let got = match i % 5 {
                0 => here.get(),
                1 => here.get_timeout(LIMIT),
                2 => {
                    // `try_get` until it has one (each call may move what arrived itself).
                    let start = Instant::now();
                    loop {
                        match here.try_get() {
                            Err(ChannelError::Empty) if start.elapsed() < LIMIT => {
                                polled.fetch_add(1, Ordering::Relaxed);
                                std::thread::yield_now();
                            }
                            r => break r,
                        }
                    }
                }
                3 => {
                    let mut sel = places::Select::new();
                    sel.recv(&here);
                    sel.select_timeout(LIMIT).expect("a select").recv(&here)
                }
                _ => rt.block_on(async {
                    tokio::time::timeout(LIMIT, here.recv())
                        .await
                        .expect("recv within the limit")
                }),
            };
            assert_eq!(got, Ok(i), "message {i}, taken by way {}", i % 5);
        }
        // The streaming place ended after its last message: the channel closes here.
        assert_eq!(here.get_timeout(LIMIT), Err(ChannelError::Closed));
    });
    eprintln!(
        "try_get found nothing {} times",
        polls.load(Ordering::Relaxed)
    );
}

#[test]
fn dropping_the_end_closes_the_peer_and_a_gone_peer_closes_the_end() {
    // Dropped here: the echoing place's `get` fails and the place ends.
    let n = node();
    let p: RemotePlace<PlaceChannel<(u64, u64, Vec<u8>)>, ()> =
        n.dynamic_place(module_path!(), "echo_end").unwrap();
    let (here, there) = place_channel::<(u64, u64, Vec<u8>), (u64, u64, Vec<u8>)>();
    p.put(there).unwrap();
    assert_eq!(here.put_get((1, 2, vec![3])).unwrap(), (1, 2, vec![3]));
    drop(here);
    assert_eq!(p.wait_timeout(LIMIT), Some(0), "the echo place ends");

    // Gone there: a `get` here fails (and does not wait forever), and so does a later `put`.
    let p: RemotePlace<PlaceChannel<(u64, u64, Vec<u8>)>, ()> =
        n.dynamic_place(module_path!(), "echo_end").unwrap();
    let (here, there) = place_channel::<(u64, u64, Vec<u8>), (u64, u64, Vec<u8>)>();
    p.put(there).unwrap();
    assert_eq!(here.put_get((4, 5, vec![])).unwrap(), (4, 5, vec![]));
    p.kill();
    assert_eq!(p.wait_timeout(LIMIT), Some(1));
    assert_eq!(here.get_timeout(LIMIT), Err(ChannelError::Closed));
    let start = Instant::now();
    loop {
        match here.put((6, 7, vec![])) {
            Ok(()) if start.elapsed() < LIMIT => std::thread::sleep(Duration::from_millis(10)),
            r => {
                assert_eq!(r, Err(ChannelError::Closed), "a put after the peer is gone");
                break;
            }
        }
    }
}

/// Makes a pair, sends one end to its creator, and answers every number on the other with the
/// next one.
#[place]
pub fn adder(ch: PlaceChannel<PlaceChannel<u64>, ()>) {
    let (mine, theirs) = place_channel::<u64, u64>();
    if ch.put(theirs).is_err() {
        return;
    }
    while let Ok(n) = mine.get() {
        if mine.put(n + 1).is_err() {
            return;
        }
    }
}

/// Takes a channel end on its channel, asks it about 41, and says what it answered.
#[place]
pub fn asks_an_end(ch: PlaceChannel<(), PlaceChannel<u64, PlaceChannel<u64>>>) {
    let Ok(c) = ch.get() else { return };
    let Ok(end) = c.get() else { return };
    let answer = end.put_get(41).unwrap_or(0);
    let _ = c.put(answer);
}

#[test]
fn an_end_put_on_a_relayed_end_works_where_it_arrives() {
    let opts = || NodeOptions::for_this_test_binary().hand_off_channel_ends(true);
    let (x, y) = (
        create_place_node("localhost", opts()).unwrap(),
        create_place_node("localhost", opts()).unwrap(),
    );
    let a: RemotePlace<(), PlaceChannel<u64>> = x.dynamic_place(module_path!(), "adder").unwrap();
    let end = a.get_timeout(LIMIT).expect("an end from x");
    let asker: RemotePlace<PlaceChannel<u64, PlaceChannel<u64>>, ()> =
        y.dynamic_place(module_path!(), "asks_an_end").unwrap();
    let (here, there) = place_channel::<PlaceChannel<u64>, u64>();
    asker.put(there).unwrap();
    // The end goes through `here`, whose peer is on y: the relay thread sends it on.
    here.put(end).unwrap();
    assert_eq!(here.get_timeout(LIMIT), Ok(42));
}

/// A lock that the encoding of a `Snapshot` takes (as serde's `impl Serialize for Mutex` does).
static STATE: std::sync::Mutex<u64> = std::sync::Mutex::new(0);

/// Encodes as the number in [`STATE`], taking its lock.
#[derive(Debug)]
pub struct Snapshot;

impl serde::Serialize for Snapshot {
    fn serialize<Z: serde::Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        let v = *STATE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.serialize_u64(v)
    }
}

impl<'de> serde::Deserialize<'de> for Snapshot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(|_| Snapshot)
    }
}

/// A tick (which encodes without any lock) or a snapshot (which takes [`STATE`]).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Report {
    /// A tick.
    Tick(u64),
    /// A snapshot.
    Snapshot(Snapshot),
}

/// Takes a channel end and takes what comes on it until it closes.
#[place]
pub fn takes_reports(ch: PlaceChannel<(), PlaceChannel<(), Report>>) {
    let Ok(end) = ch.get() else { return };
    while end.get().is_ok() {}
}

/// A thread that holds a lock while it puts never encodes another thread's value, whose
/// encoding takes that lock (it would wait for itself, and the channel with it).
#[test]
fn a_put_under_a_lock_never_encodes_another_threads_value_that_takes_it() {
    let n = node();
    let p: RemotePlace<PlaceChannel<(), Report>, ()> =
        n.dynamic_place(module_path!(), "takes_reports").unwrap();
    let (here, there) = place_channel::<Report, ()>();
    p.put(there).unwrap();
    let here = Arc::new(here);
    let h = here.clone();
    let ticks = std::thread::spawn(move || {
        for i in 0..2000u64 {
            let mut state = STATE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *state = i;
            h.put(Report::Tick(i)).expect("a tick");
            drop(state);
            std::thread::sleep(Duration::from_micros(20));
        }
    });
    let h = here.clone();
    let snapshots = std::thread::spawn(move || {
        for _ in 0..20_000u64 {
            h.put(Report::Snapshot(Snapshot)).expect("a snapshot");
        }
    });
    within_limit("the ticks under the lock", move || {
        ticks.join().expect("the ticking thread")
    });
    within_limit("the snapshots", move || {
        snapshots.join().expect("the snapshot thread")
    });
}
