//! A holder that is alive and well but takes longer to send the message carrying a
//! handed-off end than the handoff timeouts (a large field after the end, a slow link) keeps a
//! working end: the end's node waits for its commit as long as the holder is there, and the
//! next holder keeps the adopted end as long as the end's node does. The timeouts are
//! shortened to 1 s with `PLACES_HANDOFF_TIMEOUT_MS` (the nodes inherit it), so this is its
//! own file; the holder's encoding takes 12 s, longer than ten claim timeouts. A control
//! relays the end instead.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

places::node_test_entry!();

const LIMIT: Duration = Duration::from_secs(60);
const TIMEOUT_MS: u64 = 1000;

type End = PlaceChannel<u64, u64>;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    std::env::set_var("PLACES_HANDOFF_TIMEOUT_MS", TIMEOUT_MS.to_string());
    turn
}

fn node(hand_off: bool) -> RemoteNode {
    create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary()
            .heartbeat(Duration::from_secs(2))
            .hand_off_channel_ends(hand_off),
    )
    .expect("start a local node")
}

/// Makes a pair, sends one end to its creator, waits for a go, then makes `n` round trips.
#[place]
pub fn origin(ch: PlaceChannel<(Option<End>, String), u64>) {
    let Ok(n) = ch.get() else { return };
    let (here, there) = places::place_channel::<u64, u64>();
    if ch.put((Some(there), String::new())).is_err() || ch.get().is_err() {
        return;
    }
    let r = (0..n).try_for_each(|i| match here.put_get(i) {
        Ok(v) if v == i => Ok(()),
        Ok(v) => Err(format!("{i} came back as {v}")),
        Err(e) => Err(format!("round trip {i}: {e}")),
    });
    let _ = ch.put((
        None,
        match r {
            Ok(()) => format!("{n} round trips"),
            Err(e) => format!("failed: {e}"),
        },
    ));
}

/// Encoded in this program, takes `Slow.0` milliseconds: a stand-in for a large field after
/// the end (or a slow link: the commit waits for the write as well).
pub struct Slow(pub u64);

impl Serialize for Slow {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        std::thread::sleep(Duration::from_millis(self.0));
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Slow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(Slow)
    }
}

/// Echoes on the end it gets until the end closes; reports.
#[place]
pub fn echoer(ch: PlaceChannel<String, (End, Slow)>) {
    match ch.get_timeout(LIMIT) {
        Ok((end, _)) => {
            let mut k = 0u64;
            let why = loop {
                match end.get_timeout(LIMIT) {
                    Ok(v) => {
                        if let Err(e) = end.put(v) {
                            break e.to_string();
                        }
                        k += 1;
                    }
                    Err(e) => break e.to_string(),
                }
            };
            let _ = ch.put(format!("echoed {k}, then {why}"));
        }
        Err(e) => {
            let _ = ch.put(format!("the message with the end: {e}"));
        }
    }
}

fn slow_holder(hand_off: bool) -> (Result<String, String>, Result<String, String>) {
    let _turn = serial();
    let (x, y) = (node(hand_off), node(true));
    let from: RemotePlace<u64, (Option<End>, String)> =
        x.dynamic_place(module_path!(), "origin").unwrap();
    from.put(5).unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    let to: RemotePlace<(End, Slow), String> = y.dynamic_place(module_path!(), "echoer").unwrap();
    let t = Instant::now();
    let put = to.put((end.unwrap(), Slow(12_000)));
    println!("put: {put:?} after {:?}", t.elapsed());
    from.put(0).unwrap();
    let report = from
        .get_timeout(LIMIT)
        .map(|r| r.1)
        .map_err(|e| e.to_string());
    let said = to.get_timeout(LIMIT).map_err(|e| e.to_string());
    println!("origin: {report:?}; echoer: {said:?}");
    (report, said)
}

/// The holder is alive throughout; its message (and the end) reach the new holder; the end
/// must work.
#[test]
fn a_holder_slower_than_the_claim_timeout_keeps_a_working_end() {
    let (report, said) = slow_holder(true);
    assert_eq!(report.as_deref(), Ok("5 round trips"));
    assert!(
        said.as_deref().is_ok_and(|s| s.starts_with("echoed 5")),
        "{said:?}"
    );
}

/// The control: relayed (X does not hand ends over), the same passes.
#[test]
fn control_a_slow_holder_of_a_relayed_end_keeps_a_working_end() {
    let (report, said) = slow_holder(false);
    assert_eq!(report.as_deref(), Ok("5 round trips"));
    assert!(
        said.as_deref().is_ok_and(|s| s.starts_with("echoed 5")),
        "{said:?}"
    );
}
