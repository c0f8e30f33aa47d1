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

fn setup() -> (places::RemoteNode, PlaceChannel<Vec<u8>, u64>) {
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
