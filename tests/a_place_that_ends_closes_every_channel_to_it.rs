//! When a place ends (returns, panics, is killed), every channel end that talks to it closes:
//! its creator's, every client connection of a named place, and the ends it was sent in
//! messages. `get` fails with `Closed` (never hangs) and `put` fails with `Closed` once the close
//! has arrived, as on local channels. A restarted named place serves new connections; the old
//! ones are closed, not left orphaned.

use std::time::{Duration, Instant};

use places::prelude::*;
use places::{
    connect_to_named_place, create_place_node, supervise_place_at, NodeOptions, PlaceOptions,
    RemoteNode, RemotePlace, Routed,
};

const LIMIT: Duration = Duration::from_secs(60);

places::node_test_entry!();

fn node() -> RemoteNode {
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
}

/// What a client asks the named place.
#[places::message]
#[derive(Debug)]
pub enum Ask {
    /// Answer with this number plus one.
    Bump(u64),
    /// Panic.
    Panic,
    /// Return from the entry.
    Leave,
    /// Keep this channel end (and close the reply's connection when the place ends).
    Keep(PlaceChannel<u64>),
}

/// A named place that answers bumps, and ends as it is asked to.
#[place]
pub fn server(ch: PlaceChannel<(), Routed<Ask, u64>>) {
    let mut kept = Vec::new();
    while let Ok(Routed { msg, reply }) = ch.get() {
        match msg {
            Ask::Bump(n) => {
                let _ = reply.put(n + 1);
            }
            Ask::Panic => panic!("the named place panics on purpose"),
            Ask::Leave => return,
            Ask::Keep(end) => {
                let _ = end.put(7);
                kept.push(end);
                let _ = reply.put(0);
            }
        }
    }
}

fn start(n: &RemoteNode, name: &str) -> RemotePlace<Routed<Ask, u64>, ()> {
    supervise_place_at(n, module_path!(), "server", PlaceOptions::new().named(name)).unwrap()
}

/// A `get` that ends with `Closed` (not a timeout), then a `put` that fails with `Closed`.
fn assert_closed(c: &PlaceChannel<Ask, u64>) {
    assert_eq!(c.get_timeout(LIMIT), Err(ChannelError::Closed));
    assert_eq!(c.put(Ask::Bump(1)), Err(ChannelError::Closed));
}

#[test]
fn clients_of_a_named_place_that_returns_panics_or_is_killed_see_it_close() {
    let n = node();
    for (i, how) in ["leave", "panic", "kill"].into_iter().enumerate() {
        let name = format!("server-{i}");
        let place = start(&n, &name);
        let a = connect_to_named_place::<Ask, u64>(&n, &name).unwrap();
        let b = connect_to_named_place::<Ask, u64>(&n, &name).unwrap();
        assert_eq!(a.put_get(Ask::Bump(1)).unwrap(), 2);
        assert_eq!(b.put_get(Ask::Bump(2)).unwrap(), 3);
        // A channel end held by the place closes with it too.
        let (mine, theirs) = place_channel::<u64, u64>();
        assert_eq!(a.put_get(Ask::Keep(theirs)).unwrap(), 0);
        assert_eq!(mine.get_timeout(LIMIT).unwrap(), 7);
        match how {
            "leave" => a.put(Ask::Leave).unwrap(),
            "panic" => a.put(Ask::Panic).unwrap(),
            _ => place.kill(),
        }
        assert_closed(&a);
        assert_closed(&b);
        assert_eq!(mine.get_timeout(LIMIT), Err(ChannelError::Closed));
        let code = place.wait_timeout(LIMIT);
        assert_eq!(code, Some(if how == "leave" { 0 } else { 1 }), "{how}");
        // The name is free again, and a new connection is refused rather than left hanging.
        let deadline = Instant::now() + LIMIT;
        loop {
            match connect_to_named_place::<Ask, u64>(&n, &name) {
                Err(e) => {
                    assert!(e.to_string().contains(&name), "{e}");
                    break;
                }
                // Connected in the moment before the name was taken down: it closes.
                Ok(c) => assert_closed(&c),
            }
            assert!(
                Instant::now() < deadline,
                "the name {name} stayed registered"
            );
        }
    }
    assert!(n.lost_reason().is_none());
}

#[test]
fn a_restarted_named_place_serves_new_connections_and_closes_old_ones() {
    let n = node();
    let first: RemotePlace<Routed<Ask, u64>, ()> = supervise_place_at(
        &n,
        module_path!(),
        "server",
        PlaceOptions::new().named("again").restart_on_exit(true),
    )
    .unwrap();
    let old = connect_to_named_place::<Ask, u64>(&n, "again").unwrap();
    assert_eq!(old.put_get(Ask::Bump(10)).unwrap(), 11);
    first.kill();
    assert_closed(&old);
    // The restarted instance answers new connections.
    let deadline = Instant::now() + LIMIT;
    let answer = loop {
        if let Ok(c) = connect_to_named_place::<Ask, u64>(&n, "again") {
            if let Ok(v) = c.put_get(Ask::Bump(20)) {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the named place did not come back"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(answer, 21);
    // The old connection stays closed.
    assert_eq!(old.put(Ask::Bump(1)), Err(ChannelError::Closed));
}

/// Gets a channel end, answers one number on it, then returns (dropping it).
#[place]
pub fn answers_once(ch: PlaceChannel<(), PlaceChannel<u64>>) {
    if let Ok(end) = ch.get() {
        if let Ok(n) = end.get() {
            let _ = end.put(n * 10);
        }
    }
}

#[test]
fn a_channel_end_sent_to_a_place_closes_when_that_place_ends() {
    let n = node();
    for _ in 0..3 {
        let p: RemotePlace<PlaceChannel<u64>, ()> =
            n.dynamic_place(module_path!(), "answers_once").unwrap();
        let (mine, theirs) = place_channel::<u64, u64>();
        p.put(theirs).unwrap();
        assert_eq!(mine.put_get(4).unwrap(), 40);
        assert_eq!(mine.get_timeout(LIMIT), Err(ChannelError::Closed));
        assert_eq!(mine.put(5), Err(ChannelError::Closed));
        assert_eq!(p.wait_timeout(LIMIT), Some(0));
    }
}
