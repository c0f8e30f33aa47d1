//! A failure belongs to the channel it happened on: a message that does not decode (or whose
//! `Deserialize` panics), data for a channel that ended, a message over the size limit: the
//! sender's channel reports it, and the node's other places go on as if nothing happened.

use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const LIMIT: Duration = Duration::from_secs(60);

places::node_test_entry!();

fn node() -> RemoteNode {
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
}

/// A number whose decoding refuses 13 and panics on 666.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Picky(pub u32);

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            13 => Err(serde::de::Error::custom("13 is unlucky")),
            666 => panic!("a Deserialize that panics on purpose"),
            n => Ok(Picky(n)),
        }
    }
}

/// Answers every number it decodes with the number itself.
#[place]
pub fn picky_echo(ch: PlaceChannel<u32, Picky>) {
    while let Ok(Picky(n)) = ch.get() {
        if ch.put(n).is_err() {
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

/// Sums the numbers it is sent.
#[place]
pub fn sums(ch: PlaceChannel<u64, Vec<u64>>) {
    while let Ok(v) = ch.get() {
        if ch.put(v.iter().sum()).is_err() {
            return;
        }
    }
}

/// Answers with the length of each vector, and sends the vector back.
#[place]
pub fn mirror(ch: PlaceChannel<Vec<f64>>) {
    while let Ok(v) = ch.get() {
        if ch.put(v).is_err() {
            return;
        }
    }
}

/// Takes one message, then ends.
#[place]
pub fn ends_after_one(ch: PlaceChannel<(), Option<PlaceChannel<u64>>>) {
    let _ = ch.get();
}

#[test]
fn a_message_that_does_not_decode_fails_its_channel_once_and_nothing_else() {
    let n = node();
    let p: RemotePlace<Picky, u32> = n.dynamic_place(module_path!(), "picky_echo").unwrap();
    let other: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p.put_get(Picky(1)).unwrap(), 1);

    // Refused by the receiver's decoder: the sender's next operation says so, naming the type.
    p.put(Picky(13)).unwrap();
    match p.get_timeout(LIMIT) {
        Err(ChannelError::Dropped { message, reason }) => {
            assert!(message.ends_with("Picky"), "{message}");
            assert!(
                reason.contains("13 is unlucky") && reason.contains("Picky"),
                "{reason}"
            );
        }
        other => panic!("expected the drop to be reported, got {other:?}"),
    }
    // Reported once; the channel goes on, and so does every other place on the node.
    assert_eq!(p.put_get(Picky(2)).unwrap(), 2);
    assert_eq!(other.put_get(3).unwrap(), 3);

    // A `Deserialize` that panics: the same, and the node's router is untouched.
    p.put(Picky(666)).unwrap();
    match p.get_timeout(LIMIT) {
        Err(ChannelError::Dropped { reason, .. }) => {
            assert!(reason.contains("panicked"), "{reason}")
        }
        other => panic!("expected the drop to be reported, got {other:?}"),
    }
    assert_eq!(p.put_get(Picky(4)).unwrap(), 4);
    assert_eq!(other.put_get(5).unwrap(), 5);
    assert!(n.lost_reason().is_none());
}

#[test]
fn a_message_small_on_the_wire_but_large_in_memory_arrives() {
    let n = node();
    let p: RemotePlace<Vec<u64>, u64> = n.dynamic_place(module_path!(), "sums").unwrap();
    let other: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    // Nine million small numbers: about 9 MB encoded, 72 MB in memory.
    let v: Vec<u64> = (0..9_000_000u64).map(|i| i % 7).collect();
    let expected: u64 = v.iter().sum();
    assert_eq!(p.put_get(v).unwrap(), expected);
    assert_eq!(other.put_get(1).unwrap(), 1);
}

#[test]
fn a_put_to_a_place_that_has_ended_fails_that_channel_only() {
    let n = node();
    let other: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    for round in 0..5u64 {
        let p: RemotePlace<Option<PlaceChannel<u64>>, ()> =
            n.dynamic_place(module_path!(), "ends_after_one").unwrap();
        // The first message ends the place; the second, with a channel end in it, races the
        // place's close: it is refused here, or dropped there (closing the channel it carries).
        p.put(None).unwrap();
        let (mine, theirs) = place_channel::<u64, u64>();
        match p.put(Some(theirs)) {
            Ok(()) | Err(ChannelError::Closed) => {}
            Err(e) => panic!("unexpected put error {e:?}"),
        }
        // Either way the other end closes: no hang, no lost node.
        assert_eq!(mine.get_timeout(LIMIT), Err(ChannelError::Closed));
        assert_eq!(p.wait_timeout(LIMIT), Some(0));
        // Once the close has arrived, a put fails as on a local channel.
        assert_eq!(p.put(None), Err(ChannelError::Closed));
        assert_eq!(other.put_get(round).unwrap(), round);
    }
    assert!(n.lost_reason().is_none());
}

#[test]
fn a_hundred_megabytes_cross_and_come_back() {
    let n = node();
    let p: RemotePlace<Vec<f64>> = n.dynamic_place(module_path!(), "mirror").unwrap();
    let v: Vec<f64> = (0..12_500_000).map(|i| i as f64 * 0.5).collect();
    let back = p.put_get(v.clone()).unwrap();
    assert!(back == v, "the vector came back changed");
}

#[test]
fn a_message_over_the_size_limit_is_refused_at_the_sender() {
    let n = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().max_message(1 << 20),
    )
    .unwrap();
    let p: RemotePlace<Vec<f64>> = n.dynamic_place(module_path!(), "mirror").unwrap();
    match p.put(vec![0.0; 1 << 18]) {
        Err(ChannelError::Unsendable(why)) => {
            assert!(
                why.contains("exceeds the largest message") && why.contains("1048576"),
                "{why}"
            )
        }
        other => panic!("expected the size limit, got {other:?}"),
    }
    // Smaller messages still go.
    assert_eq!(p.put_get(vec![1.5; 1000]).unwrap(), vec![1.5; 1000]);
}

/// Answers every number with a `Picky` of it. Its creator drops the unlucky ones, which is
/// reported here once, by a `get` or a `put` (which sends all the same): it goes on.
#[place]
pub fn sends_picky(ch: PlaceChannel<Picky, u32>) {
    loop {
        let n = match ch.get() {
            Ok(n) => n,
            Err(ChannelError::Dropped { .. }) => continue,
            Err(_) => return,
        };
        match ch.put(Picky(n)) {
            Ok(()) | Err(ChannelError::Dropped { .. }) => {}
            Err(_) => return,
        }
    }
}

#[test]
fn a_message_this_side_cannot_decode_is_skipped_by_get_select_and_recv() {
    let n = node();
    let p: RemotePlace<u32, Picky> = n.dynamic_place(module_path!(), "sends_picky").unwrap();
    let quiet: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    // `get`: the unlucky one is dropped here (and its sender told), the next one arrives.
    p.put(13).unwrap();
    p.put(1).unwrap();
    assert_eq!(p.get_timeout(LIMIT).unwrap(), Picky(1));
    // `sync!`: likewise, while another remote channel stays quiet.
    p.put(13).unwrap();
    p.put(2).unwrap();
    let got = places::sync! {
        recv(quiet) -> m => panic!("the quiet channel woke: {m:?}"),
        recv(p) -> m => m.unwrap(),
        timeout(LIMIT) => panic!("nothing arrived"),
    };
    assert_eq!(got, Picky(2));
    // `recv().await`.
    p.put(13).unwrap();
    p.put(3).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let got = rt.block_on(async { tokio::time::timeout(LIMIT, p.recv()).await });
    assert_eq!(got.expect("recv timed out").unwrap(), Picky(3));
    assert_eq!(quiet.put_get(4).unwrap(), 4);
}

/// Answers how many channel ends each message holds.
#[place]
pub fn counts_ends(ch: PlaceChannel<u64, Vec<PlaceChannel<u8, u8>>>) {
    while let Ok(v) = ch.get() {
        if ch.put(v.len() as u64).is_err() {
            return;
        }
    }
}

#[test]
fn a_message_with_more_channel_ends_than_allowed_is_refused_and_its_ends_close() {
    let n = node();
    let p: RemotePlace<Vec<PlaceChannel<u8, u8>>, u64> =
        n.dynamic_place(module_path!(), "counts_ends").unwrap();
    let most = places::net::wire::MAX_CARRIED;
    let (theirs, mine): (Vec<_>, Vec<_>) = (0..=most).map(|_| place_channel::<u8, u8>()).unzip();
    match p.put(theirs) {
        Err(ChannelError::Unsendable(why)) => assert!(why.contains("at most"), "{why}"),
        other => panic!("expected the put to be refused, got {other:?}"),
    }
    // Nothing went out: the ends that were inside close here.
    assert_eq!(mine[0].get_timeout(LIMIT), Err(ChannelError::Closed));
    assert_eq!(mine[most].get_timeout(LIMIT), Err(ChannelError::Closed));
    // As many as allowed go.
    let (theirs, _mine): (Vec<_>, Vec<_>) = (0..100).map(|_| place_channel::<u8, u8>()).unzip();
    assert_eq!(p.put_get(theirs).unwrap(), 100);
}

/// Takes a channel end, then answers every buffer on it with its length.
#[place]
pub fn serves_a_sent_end(ch: PlaceChannel<(), PlaceChannel<u64, Vec<u8>>>) {
    let Ok(end) = ch.get() else { return };
    while let Ok(v) = end.get() {
        if end.put(v.len() as u64).is_err() {
            return;
        }
    }
}

/// Waits for a `Dropped` on `here` (from a `put` that sent the next message, or a `get`) after
/// a message too large for where its peer went, then checks the channel still answers.
fn dropped_then_goes_on(here: &PlaceChannel<Vec<u8>, u64>) -> Result<String, String> {
    // The put itself may already hear of it (the relay is quick), else the waiting `get`.
    let reason = match here.put(vec![0; 2 << 20]) {
        Err(ChannelError::Dropped { reason, .. }) => reason,
        Err(e) => return Err(format!("the local put: {e}")),
        Ok(()) => match here.get_timeout(LIMIT) {
            Err(ChannelError::Dropped { reason, .. }) => reason,
            other => return Err(format!("expected Dropped, got {other:?}")),
        },
    };
    // Reported once; the channel goes on.
    match here.put_get(vec![2; 1000]) {
        Ok(1000) => Ok(reason),
        other => Err(format!("after the drop: {other:?}")),
    }
}

#[test]
fn a_message_too_large_for_where_its_channel_went_fails_that_message_only() {
    let n = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().max_message(1 << 20),
    )
    .unwrap();
    let p: RemotePlace<PlaceChannel<u64, Vec<u8>>, ()> = n
        .dynamic_place(module_path!(), "serves_a_sent_end")
        .unwrap();
    let (here, there) = places::place_channel::<Vec<u8>, u64>();
    p.put(there).unwrap();
    assert_eq!(here.put_get(vec![1; 10]).unwrap(), 10);
    // The local put succeeds; its relay cannot pass the message on; the waiting `get` hears.
    let reason = dropped_then_goes_on(&here).unwrap();
    assert!(
        reason.contains("exceeds the largest message") && reason.contains("1048576"),
        "{reason}"
    );
}

/// What `sends_its_end_away` sends its creator: the end to pass on, then its report.
type EndThenReport = (Option<PlaceChannel<u64, Vec<u8>>>, String);

/// Makes a pair, sends one end to its creator (to pass on to another node), then sends a
/// message too large for that node on the other; says what it saw.
#[place]
pub fn sends_its_end_away(ch: PlaceChannel<EndThenReport, ()>) {
    let (here, there) = places::place_channel::<Vec<u8>, u64>();
    if ch.put((Some(there), String::new())).is_err() {
        return;
    }
    let report = match here.put_get(vec![1; 10]) {
        Ok(10) => dropped_then_goes_on(&here).unwrap_or_else(|e| format!("failed: {e}")),
        other => format!("failed: first answer {other:?}"),
    };
    let _ = ch.put((None, report));
}

#[test]
fn a_message_too_large_for_the_second_hop_fails_that_message_only() {
    let x = node();
    let y = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().max_message(1 << 20),
    )
    .unwrap();
    let from: RemotePlace<(), EndThenReport> = x
        .dynamic_place(module_path!(), "sends_its_end_away")
        .unwrap();
    let server: RemotePlace<PlaceChannel<u64, Vec<u8>>, ()> = y
        .dynamic_place(module_path!(), "serves_a_sent_end")
        .unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    server.put(end.expect("the end")).unwrap();
    let (_, report) = from.get_timeout(LIMIT).unwrap();
    assert!(
        report.contains("exceeds the largest message") && report.contains("1048576"),
        "{report}"
    );
}
