//! Named places: any program connected to the node reaches them by name; each connection is its
//! own channel, the place sees every message with the route back to its sender, and a node keeps
//! serving when one connection closes.

use std::time::Duration;

use places::prelude::*;
use places::{
    connect_to_named_place, create_place_node, supervise_place_at, NetError, NodeOptions,
    PlaceOptions, RemoteNode, RemotePlace, Routed,
};

const LIMIT: Duration = Duration::from_secs(30);

/// A client's name and a number.
type Tally = (String, u64);

/// The creator's handle on the accumulator.
type Server = RemotePlace<Routed<Tally, Tally>, String>;

places::node_test_entry!();

fn node() -> RemoteNode {
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
}

/// A counter keyed by client: adds what each client sends and answers with that client's total.
/// It tells clients apart only by where the reply goes.
#[place]
pub fn accumulator(ch: PlaceChannel<String, Routed<Tally, Tally>>) {
    let mut totals = std::collections::HashMap::new();
    while let Ok(Routed {
        msg: (who, n),
        reply,
    }) = ch.get()
    {
        let total = totals.entry(who.clone()).or_insert(0);
        *total += n;
        let _ = reply.put((who, *total));
    }
    let _ = ch.put("accumulator done".to_string());
}

/// Starts the accumulator on `n` under the name `acc`.
fn serve_accumulator(n: &RemoteNode) -> Server {
    supervise_place_at(
        n,
        module_path!(),
        "accumulator",
        PlaceOptions::new().named("acc"),
    )
    .expect("start the named accumulator")
}

#[test]
fn each_connection_gets_its_own_replies() {
    let n = node();
    let _server = serve_accumulator(&n);
    let a = connect_to_named_place::<Tally, Tally>(&n, "acc").unwrap();
    let b = connect_to_named_place::<Tally, Tally>(&n, "acc").unwrap();
    // Interleave the two clients; every reply must come back on its own connection.
    for i in 1..=50u64 {
        a.put(("a".into(), i)).unwrap();
        b.put(("b".into(), 2 * i)).unwrap();
    }
    let mut last_a = 0;
    let mut last_b = 0;
    for _ in 0..50 {
        let (who, t) = a.get_timeout(LIMIT).unwrap();
        assert_eq!(who, "a");
        last_a = t;
        let (who, t) = b.get_timeout(LIMIT).unwrap();
        assert_eq!(who, "b");
        last_b = t;
    }
    assert_eq!((last_a, last_b), (1275, 2550));
}

#[test]
fn clients_on_several_threads_and_a_closing_connection() {
    let n = std::sync::Arc::new(node());
    let _server = serve_accumulator(&n);
    // One client connects, talks, and leaves.
    let early = connect_to_named_place::<Tally, Tally>(&n, "acc").unwrap();
    assert_eq!(
        early.put_get(("early".into(), 5)).unwrap(),
        ("early".into(), 5)
    );
    drop(early);
    // The place keeps serving the others, from several threads at once.
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let n = n.clone();
            std::thread::spawn(move || {
                let c = connect_to_named_place::<Tally, Tally>(&n, "acc").unwrap();
                let who = format!("t{k}");
                let mut total = 0;
                for i in 0..20 {
                    total = c.put_get((who.clone(), i)).unwrap().1;
                }
                total
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), (0..20).sum::<u64>());
    }
}

#[test]
fn connecting_to_a_missing_or_mistyped_name_is_an_error() {
    let n = node();
    let err = connect_to_named_place::<u64, u64>(&n, "nobody").unwrap_err();
    assert!(matches!(err, NetError::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("no place named `nobody`"), "{err}");
    let _server = serve_accumulator(&n);
    let err = connect_to_named_place::<u64, u64>(&n, "acc").unwrap_err();
    assert!(err.to_string().contains("receives"), "{err}");
    let err = supervise_place_at::<Routed<Tally, Tally>, String>(
        &n,
        module_path!(),
        "accumulator",
        PlaceOptions::new().named("acc"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("already runs"), "{err}");
}

/// A named place of byte vectors: answers each with its length.
#[place]
pub fn measures(ch: PlaceChannel<(), Routed<Vec<u8>, u64>>) {
    while let Ok(Routed { msg, reply }) = ch.get() {
        let _ = reply.put(msg.len() as u64);
    }
}

#[test]
fn a_named_place_takes_vectors_that_travel_as_raw_bytes() {
    // `Vec<u8>`, `Vec<i64>` and `Vec<f64>` cross as raw bytes, not serde; a named place
    // receives them wrapped in `Routed`, and must still decode them.
    let n = node();
    let _server: RemotePlace<Routed<Vec<u8>, u64>, ()> = supervise_place_at(
        &n,
        module_path!(),
        "measures",
        PlaceOptions::new().named("measures"),
    )
    .expect("start the named place");
    let ch = connect_to_named_place::<Vec<u8>, u64>(&n, "measures").unwrap();
    assert_eq!(ch.put_get(vec![5u8; 70_000]).unwrap(), 70_000);
    assert_eq!(ch.put_get(Vec::new()).unwrap(), 0);
}
