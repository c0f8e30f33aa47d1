//! A channel end made on node X (started with `hand_off_channel_ends(true)`), sent to this
//! program and passed on to a place on node Y: X pushes the end to Y over a direct link, so the megabytes that X and Y then
//! exchange on it pass through neither this program's writes (`/proc/self/io`'s `wchar`, which
//! counts socket writes) nor its relays. A control (an end this program keeps and relays between
//! two nodes) shows the measure sees relayed traffic. An end whose node already sent messages
//! that wait here is passed on relayed, in order; ends passed on again and again keep working.
//! Its own file, so no other test's traffic is counted.

use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};

places::node_test_entry!();

const LIMIT: Duration = Duration::from_secs(60);
const MB: usize = 1 << 20;

/// The tests of this file take turns: the measure counts every write of the process.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn node_with(hand_off: bool) -> RemoteNode {
    create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary()
            .heartbeat(Duration::from_secs(2))
            .hand_off_channel_ends(hand_off),
    )
    .expect("start a local node")
}

/// A node that hands channel ends over.
fn node() -> RemoteNode {
    node_with(true)
}

#[path = "support/written.rs"]
mod written;
use written::io_bytes;

/// Takes a channel end, then answers every buffer on it with the buffer reversed.
#[place]
pub fn reverser(ch: PlaceChannel<(), PlaceChannel<Vec<u8>, Vec<u8>>>) {
    let Ok(end) = ch.get() else { return };
    while let Ok(mut v) = end.get() {
        v.reverse();
        if end.put(v).is_err() {
            return;
        }
    }
}

/// The end that travels.
type End = PlaceChannel<Vec<u8>, Vec<u8>>;

/// What `origin` sends its creator: the end to pass on, then a report.
type EndOrReport = (Option<PlaceChannel<Vec<u8>, Vec<u8>>>, String);

/// Makes a pair and sends one end to its creator; with `wait` it waits for a go before it uses
/// the other, else it sends at once (the messages then wait at the creator). Then `n` round
/// trips of `len` bytes; reports what it saw.
#[place]
pub fn origin(ch: PlaceChannel<EndOrReport, (bool, usize, usize)>) {
    let Ok((wait, n, len)) = ch.get() else { return };
    let (here, there) = places::place_channel::<Vec<u8>, Vec<u8>>();
    if ch.put((Some(there), String::new())).is_err() {
        return;
    }
    let report = (|| -> Result<String, String> {
        if wait {
            ch.get().map_err(|e| format!("the go: {e}"))?;
        } else {
            // Sent before the end has gone on: it waits at the creator.
            here.put(vec![1, 2, 3]).map_err(|e| e.to_string())?;
        }
        for i in 0..n {
            let v: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
            let mut back = here.put_get(v.clone()).map_err(|e| e.to_string())?;
            if !wait && i == 0 {
                if back != vec![3, 2, 1] {
                    return Err(format!("the first answer is {back:?}"));
                }
                back = here.get().map_err(|e| e.to_string())?;
            }
            back.reverse();
            if back != v {
                return Err(format!("answer {i} is wrong"));
            }
        }
        Ok(format!("{n} round trips"))
    })();
    let _ = ch.put((None, report.unwrap_or_else(|e| format!("failed: {e}"))));
}

/// Starts `origin` on `x` and `reverser` on `y`, passes the end from one to the other through
/// this program, and returns the origin's report and what this program wrote meanwhile.
fn pass_on(x: &RemoteNode, y: &RemoteNode, wait: bool, n: usize, len: usize) -> (String, u64) {
    let from: RemotePlace<(bool, usize, usize), EndOrReport> =
        x.dynamic_place(module_path!(), "origin").unwrap();
    let to: RemotePlace<PlaceChannel<Vec<u8>, Vec<u8>>, ()> =
        y.dynamic_place(module_path!(), "reverser").unwrap();
    from.put((wait, n, len)).unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    let end = end.expect("the end");
    if !wait {
        // The origin's first message waits here before the end goes on.
        let deadline = std::time::Instant::now() + LIMIT;
        while end.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the first message never came"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    to.put(end).unwrap();
    let before = io_bytes();
    if wait {
        from.put((true, 0, 0)).unwrap();
    }
    let (_, report) = from.get_timeout(LIMIT).unwrap();
    (report, io_bytes() - before)
}

#[test]
fn an_end_passed_on_to_another_node_links_the_two_directly() {
    let _turn = serial();
    let (x, y) = (node(), node());
    // A first pass pays what is paid once (the direct connection, threads).
    let (report, _) = pass_on(&x, &y, true, 1, 10);
    assert_eq!(report, "1 round trips");

    let (report, through_here) = pass_on(&x, &y, true, 16, MB);
    assert_eq!(report, "16 round trips");
    // 32 MiB went between X and Y; relayed here, all of it would be written here.
    assert!(
        through_here < MB as u64 / 2,
        "{through_here} bytes went through this program"
    );

    // The control: an end of a pair made here, kept here, with a node on the other side: the
    // same traffic passes through this program's writes.
    let to: RemotePlace<PlaceChannel<Vec<u8>, Vec<u8>>, ()> =
        y.dynamic_place(module_path!(), "reverser").unwrap();
    let (here, there) = places::place_channel::<Vec<u8>, Vec<u8>>();
    to.put(there).unwrap();
    let before = io_bytes();
    for i in 0..4u8 {
        let mut back = here.put_get(vec![i; MB]).unwrap();
        back.reverse();
        assert_eq!(back, vec![i; MB]);
    }
    let control = io_bytes() - before;
    assert!(control >= 4 * MB as u64, "the measure saw {control} bytes");
}

#[test]
fn a_node_that_does_not_hand_ends_over_has_them_relayed() {
    let _turn = serial();
    let (x, y) = (node_with(false), node());
    let (report, through_here) = pass_on(&x, &y, true, 4, 100_000);
    assert_eq!(report, "4 round trips");
    assert!(through_here >= 800_000, "{through_here}");
}

#[test]
fn an_end_with_messages_waiting_here_is_passed_on_relayed_in_order() {
    let _turn = serial();
    let (x, y) = (node(), node());
    let (report, through_here) = pass_on(&x, &y, false, 4, 100_000);
    assert_eq!(report, "4 round trips");
    // Relayed: every byte passes through here.
    assert!(through_here >= 400_000, "{through_here}");
}

/// Takes an end and passes it back to its creator (to go on once more), then ends.
#[place]
pub fn passes_back(ch: PlaceChannel<End, End>) {
    if let Ok(end) = ch.get() {
        let _ = ch.put(end);
        let _ = ch.get();
    }
}

#[test]
fn an_end_passed_on_again_and_again_keeps_working() {
    let _turn = serial();
    let (x, y, z) = (node(), node(), node());
    let from: RemotePlace<(bool, usize, usize), EndOrReport> =
        x.dynamic_place(module_path!(), "origin").unwrap();
    let hop: RemotePlace<End, End> = y.dynamic_place(module_path!(), "passes_back").unwrap();
    let to: RemotePlace<PlaceChannel<Vec<u8>, Vec<u8>>, ()> =
        z.dynamic_place(module_path!(), "reverser").unwrap();
    from.put((true, 5, 50_000)).unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    // X -> here -> Y -> here -> Z.
    hop.put(end.expect("the end")).unwrap();
    let end = hop.get_timeout(LIMIT).unwrap();
    to.put(end).unwrap();
    from.put((true, 0, 0)).unwrap();
    let (_, report) = from.get_timeout(LIMIT).unwrap();
    assert_eq!(report, "5 round trips");
}

#[test]
fn a_new_holder_that_dies_ends_the_channel_at_the_origin() {
    let _turn = serial();
    let (x, y) = (node(), node());
    let from: RemotePlace<(bool, usize, usize), EndOrReport> =
        x.dynamic_place(module_path!(), "origin").unwrap();
    let to: RemotePlace<PlaceChannel<Vec<u8>, Vec<u8>>, ()> =
        y.dynamic_place(module_path!(), "reverser").unwrap();
    from.put((true, usize::MAX, 1000)).unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    to.put(end.expect("the end")).unwrap();
    from.put((true, 0, 0)).unwrap();
    // Round trips go on between X and Y until Y's process is killed.
    std::thread::sleep(Duration::from_millis(300));
    let pid = y.pid().expect("a local node's pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (_, report) = from.get_timeout(LIMIT).unwrap();
    println!("{report}");
    assert!(report.starts_with("failed: "), "{report}");
    // The origin's end says which node is gone, not merely that the channel closed.
    let port = y.addr().rsplit(':').next().unwrap().to_owned();
    assert!(
        report.contains("is gone") && report.contains(&port),
        "{report} (node {})",
        y.addr()
    );
}
