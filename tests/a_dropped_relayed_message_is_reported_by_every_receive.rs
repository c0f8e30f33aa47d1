//! A local end whose peer went to a node that cannot take one of its messages (too large for
//! it) hears of the dropped message in every way it receives: `get_timeout`, `recv().await`,
//! `try_get`, `Select` and `sync!` (a real node with a 1 MiB message limit).
use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, ChannelError, NodeOptions, RemotePlace};

places::node_test_entry!();

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

/// A node that takes messages of at most 1 MiB, and a place there that serves the end it is
/// sent.
fn small_node_and_server() -> (
    places::RemoteNode,
    RemotePlace<PlaceChannel<u64, Vec<u8>>, ()>,
) {
    let n = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().max_message(1 << 20),
    )
    .unwrap();
    let p = n
        .dynamic_place(module_path!(), "serves_a_sent_end")
        .unwrap();
    (n, p)
}

fn setup() -> (places::RemoteNode, PlaceChannel<Vec<u8>, u64>) {
    let (n, p) = small_node_and_server();
    let (here, there) = places::place_channel::<Vec<u8>, u64>();
    p.put(there).unwrap();
    std::mem::forget(p);
    assert_eq!(here.put_get(vec![1; 10]).unwrap(), 10);
    if let Err(e) = here.put(vec![0; 2 << 20]) {
        panic!("the big put: {e:?}");
    }
    (n, here)
}

#[test]
fn blocking_get_reports_it() {
    let (_n, here) = setup();
    let r = here.get_timeout(Duration::from_secs(10));
    eprintln!("get_timeout: {r:?}");
    assert!(matches!(r, Err(ChannelError::Dropped { .. })));
}

#[test]
fn async_recv_reports_it() {
    let (_n, here) = setup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let r = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), here.recv()).await });
    eprintln!("recv().await within 10 s: {r:?}");
    assert!(matches!(r, Ok(Err(ChannelError::Dropped { .. }))));
}

#[test]
fn try_get_reports_it() {
    let (_n, here) = setup();
    let t = Instant::now();
    let r = loop {
        match here.try_get() {
            Err(ChannelError::Empty) if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => break other,
        }
    };
    eprintln!("try_get for 10 s: {r:?}");
    assert!(matches!(r, Err(ChannelError::Dropped { .. })));
}

#[test]
fn select_reports_it() {
    let (_n, here) = setup();
    let mut sel = places::Select::new();
    let i = sel.recv(&here);
    let ev = sel
        .select_timeout(Duration::from_secs(10))
        .expect("the drop makes the select ready");
    assert_eq!(ev.index(), i);
    let r = ev.recv(&here);
    eprintln!("select within 10 s: {r:?}");
    assert!(matches!(r, Err(ChannelError::Dropped { .. })));
    // Reported once: the channel goes on.
    assert_eq!(here.put_get(vec![1; 3]).unwrap(), 3);
}

#[test]
fn sync_reports_it() {
    let (_n, here) = setup();
    let (_other, idle) = places::place_channel::<(), ()>();
    let r = places::sync! {
        recv(idle) -> m => panic!("nothing comes on the idle channel: {m:?}"),
        recv(here) -> m => m,
        timeout(Duration::from_secs(10)) => panic!("the drop was not reported within 10 s"),
    };
    eprintln!("sync!: {r:?}");
    assert!(matches!(r, Err(ChannelError::Dropped { .. })));
}

/// The select takes the report when it picks the end: a receive of the same end between the
/// select and `recv` finds nothing to report, and `recv` still gives the report (before, it fell
/// back to a blocking `get` that never returned).
#[test]
fn a_selected_drop_is_kept_for_its_recv() {
    let (_n, here) = setup();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sel = places::Select::new();
        sel.recv(&here);
        let ev = sel
            .select_timeout(Duration::from_secs(10))
            .expect("the drop makes the select ready");
        let between = here.try_get();
        let r = ev.recv(&here);
        let _ = tx.send((format!("{between:?}"), format!("{r:?}")));
    });
    let (between, r) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the select and its recv returned");
    assert_eq!(between, "Err(Empty)");
    assert!(r.starts_with("Err(Dropped"), "{r}");
}

/// Completing a drop's event with another channel is a mistake the select catches, as for any
/// other event.
#[test]
fn a_selected_drop_completed_with_another_channel_panics() {
    let (_n, here) = setup();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (idle, _peer) = places::place_channel::<(), ()>();
        let mut sel = places::Select::new();
        sel.recv(&here);
        let ev = sel
            .select_timeout(Duration::from_secs(10))
            .expect("the drop makes the select ready");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ev.recv(&idle)));
        let _ = tx.send(r.is_err());
    });
    let panicked = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the wrong recv returned or panicked");
    assert!(panicked, "recv with another channel did not panic");
}

/// Sends `here`'s peer to a node with a 1 MiB limit while `waiting` already waits on `here`,
/// then puts a 2 MiB message on `here`, which the relay drops. `waiting` gets `here` and
/// returns what its receive gave; the result is what it returned within 30 s.
fn drop_while_waiting(
    waiting: impl FnOnce(&PlaceChannel<Vec<u8>, u64>) -> String + Send,
) -> Option<String> {
    let (n, p) = small_node_and_server();
    let (here, there) = places::place_channel::<Vec<u8>, u64>();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let here = &here;
        s.spawn(move || {
            let _ = tx.send(waiting(here));
        });
        // Gives the receive time to start waiting before the peer goes (were it late, it would
        // start after the peer went, which the tests above cover: the test still holds).
        std::thread::sleep(Duration::from_millis(300));
        p.put(there).unwrap();
        here.put(vec![0; 2 << 20]).unwrap();
        let r = rx.recv_timeout(Duration::from_secs(30)).ok();
        // Ends the receive if it is still waiting (the test then fails).
        drop(p);
        drop(n);
        r
    })
}

/// Asserts that the receive returned (within its 30 s) what starts with `report`.
fn assert_reported(r: Option<String>, report: &str) {
    assert!(r.as_deref().is_some_and(|r| r.starts_with(report)), "{r:?}");
}

/// A `get` that began waiting before its end's peer was sent to the node hears of the drop.
#[test]
fn a_get_waiting_since_before_the_peer_went_reports_it() {
    let r = drop_while_waiting(|here| format!("{:?}", here.get_timeout(Duration::from_secs(20))));
    eprintln!("get_timeout: {r:?}");
    assert_reported(r, "Err(Dropped");
}

/// So does a select that began waiting then.
#[test]
fn a_select_waiting_since_before_the_peer_went_reports_it() {
    let r = drop_while_waiting(|here| {
        let mut sel = places::Select::new();
        sel.recv(here);
        let r = match sel.select_timeout(Duration::from_secs(20)) {
            Ok(ev) => format!("{:?}", ev.recv(here)),
            Err(e) => format!("select: {e:?}"),
        };
        r
    });
    eprintln!("select: {r:?}");
    assert_reported(r, "Err(Dropped");
}

/// And a `recv().await` that began waiting then.
#[test]
fn an_async_recv_waiting_since_before_the_peer_went_reports_it() {
    let r = drop_while_waiting(|here| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let r =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), here.recv()).await });
        format!("{r:?}")
    });
    eprintln!("recv().await: {r:?}");
    assert_reported(r, "Ok(Err(Dropped");
}
