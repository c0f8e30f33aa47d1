//! Edge cases of handing channel ends over between nodes (`hand_off_channel_ends`), from a
//! review: both sides streaming while the end is handed off, the origin dropping its end
//! meanwhile, the ticket's window, a new holder that never ran `places::init()`, an end passed
//! back to its own node, bounded ends and the same link (relayed), and the holder's last
//! messages arriving first. Each holds whichever path (handed off or relayed) a run takes.

use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};
use serde::{Deserialize, Serialize};

places::node_test_entry!();

const LIMIT: Duration = Duration::from_secs(60);

#[path = "support/written.rs"]
mod written;
use written::io_bytes;

fn node_with(opts: NodeOptions) -> RemoteNode {
    create_place_node("localhost", opts).expect("start a local node")
}

fn node() -> RemoteNode {
    node_with(
        NodeOptions::for_this_test_binary()
            .heartbeat(Duration::from_secs(2))
            .hand_off_channel_ends(true),
    )
}

/// The end that travels.
type End = PlaceChannel<u64, u64>;

/// What the origin sends its creator: the end, then a report.
type EndOrReport = (Option<End>, String);

/// Origin: gets `(mode, n)`, makes a pair and sends one end to its creator, waits for a go,
/// then: mode 0 — `n` round trips (put i, expect i back); mode 1 — streams 0..n out while it
/// reads n numbers in, checking they are 0..n in order; mode 2 — puts 0..n and drops its end.
#[place]
pub fn origin(ch: PlaceChannel<EndOrReport, (u64, u64)>) {
    let Ok((mode, n)) = ch.get() else { return };
    let (here, there) = places::place_channel::<u64, u64>();
    if ch.put((Some(there), String::new())).is_err() {
        return;
    }
    if ch.get().is_err() {
        return;
    }
    let report: Result<String, String> = match mode {
        0 => (|| {
            for i in 0..n {
                let back = here
                    .put_get(i)
                    .map_err(|e| format!("round trip {i}: {e}"))?;
                if back != i {
                    return Err(format!("round trip {i} came back as {back}"));
                }
            }
            Ok(format!("{n} round trips"))
        })(),
        1 => std::thread::scope(|s| {
            let here = &here;
            let writer = s.spawn(move || {
                for i in 0..n {
                    if i % 4096 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    here.put(i).map_err(|e| format!("put {i}: {e}"))?;
                }
                Ok::<(), String>(())
            });
            let mut expect = 0u64;
            let read = (|| {
                while expect < n {
                    let v = here.get().map_err(|e| format!("get after {expect}: {e}"))?;
                    if v != expect {
                        return Err(format!("expected {expect}, got {v}"));
                    }
                    expect += 1;
                }
                Ok(())
            })();
            let wrote = writer.join().unwrap();
            read.and(wrote).map(|()| format!("{n} both ways"))
        }),
        3 => (|| {
            let first: Vec<u64> = (0..3)
                .map(|_| {
                    here.get_timeout(Duration::from_secs(20))
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<_, _>>()?;
            for i in 0..n {
                let back = here
                    .put_get(i)
                    .map_err(|e| format!("round trip {i}: {e}"))?;
                if back != i {
                    return Err(format!("round trip {i} came back as {back}"));
                }
            }
            Ok(format!("first {first:?}, {n} round trips"))
        })(),
        _ => {
            for i in 0..n {
                let _ = here.put(i);
            }
            drop(here);
            Ok("dropped".into())
        }
    };
    let _ = ch.put((None, report.unwrap_or_else(|e| format!("failed: {e}"))));
}

/// What a taker is sent: how long to wait before it takes the next message, then the end.
#[derive(Serialize, Deserialize)]
pub enum ToTaker {
    /// Sleep this many milliseconds first.
    Sleep(u64),
    /// The end, and what to do with it (the mode of `origin`).
    Take(End, u64),
}

/// Taker: on `Sleep(ms)` sleeps before it looks at its queue again; on `Take(end, mode)`:
/// mode 0 — echoes until the end closes; mode 1 — streams 0..n out while reading 0..n in
/// (n from the first number it is... fixed at STREAM); mode 2 — reads until closed and reports
/// what it read. Reports on its channel.
#[place]
pub fn taker(ch: PlaceChannel<String, ToTaker>) {
    loop {
        match ch.get() {
            Ok(ToTaker::Sleep(ms)) => std::thread::sleep(Duration::from_millis(ms)),
            Ok(ToTaker::Take(end, mode)) => {
                let said = match mode {
                    0 => {
                        let mut k = 0u64;
                        let why = loop {
                            match end.get() {
                                Ok(v) => {
                                    if let Err(e) = end.put(v) {
                                        break e.to_string();
                                    }
                                    k += 1;
                                }
                                Err(e) => break e.to_string(),
                            }
                        };
                        format!("echoed {k}, then {why}")
                    }
                    1 => std::thread::scope(|s| {
                        let end = &end;
                        let writer = s.spawn(move || {
                            for i in 0..STREAM {
                                end.put(i).map_err(|e| format!("put {i}: {e}"))?;
                            }
                            Ok::<(), String>(())
                        });
                        let mut expect = 0u64;
                        let read = (|| {
                            while expect < STREAM {
                                let v =
                                    end.get().map_err(|e| format!("get after {expect}: {e}"))?;
                                if v != expect {
                                    return Err(format!("expected {expect}, got {v}"));
                                }
                                expect += 1;
                            }
                            Ok(())
                        })();
                        let wrote = writer.join().unwrap();
                        match read.and(wrote) {
                            Ok(()) => format!("{STREAM} both ways"),
                            Err(e) => format!("failed: {e}"),
                        }
                    }),
                    _ => {
                        let mut got = Vec::new();
                        let why = loop {
                            match end.get_timeout(Duration::from_secs(90)) {
                                Ok(v) => got.push(v),
                                Err(e) => break e.to_string(),
                            }
                        };
                        format!("read {got:?}, then {why}")
                    }
                };
                let _ = ch.put(said);
                return;
            }
            Err(e) => {
                let _ = ch.put(format!("taker: the message with the end: {e}"));
                return;
            }
        }
    }
}

const STREAM: u64 = 200_000;

/// How many numbers the new holder sends at once in the window test.
const BURST: u64 = 1000;

fn origin_on(x: &RemoteNode, mode: u64, n: u64) -> (RemotePlace<(u64, u64), EndOrReport>, End) {
    let from: RemotePlace<(u64, u64), EndOrReport> =
        x.dynamic_place(module_path!(), "origin").unwrap();
    from.put((mode, n)).unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    (from, end.expect("the end"))
}

fn taker_on(y: &RemoteNode) -> RemotePlace<ToTaker, String> {
    y.dynamic_place(module_path!(), "taker").unwrap()
}

/// Both sides stream while the end is handed off: nothing lost, duplicated or reordered.
#[test]
fn streams_both_ways_survive_the_handoff() {
    let (x, y) = (node(), node());
    let rounds: u64 = 6;
    let mut failures = Vec::new();
    for round in 0..rounds {
        let (from, end) = origin_on(&x, 1, STREAM);
        let to = taker_on(&y);
        let before = io_bytes();
        // The go and the end leave together: the origin starts streaming as the end goes on.
        from.put((0, 0)).unwrap();
        std::thread::sleep(Duration::from_micros(200 * round));
        to.put(ToTaker::Take(end, 1)).unwrap();
        let (_, report) = from.get_timeout(LIMIT).unwrap();
        let said = to.get_timeout(LIMIT).unwrap();
        let through = io_bytes() - before;
        println!("round {round}: origin {report}; taker {said}; {through} bytes written here");
        if !report.ends_with("both ways") || !said.ends_with("both ways") {
            failures.push((round, report, said));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// The origin drops its end while the end is being handed off: the new holder reads what
/// was put, then sees the end closed (no hang, no loss).
#[test]
fn an_origin_that_drops_its_end_during_the_handoff() {
    let (x, y) = (node(), node());
    for round in 0..6u64 {
        let (from, end) = origin_on(&x, 2, 5);
        let to = taker_on(&y);
        from.put((0, 0)).unwrap();
        std::thread::sleep(Duration::from_micros(300 * round));
        let t = Instant::now();
        to.put(ToTaker::Take(end, 2)).unwrap();
        let said = to.get_timeout(Duration::from_secs(120)).unwrap();
        println!("round {round}: taker {said} after {:?}", t.elapsed());
        assert!(said.starts_with("read [0, 1, 2, 3, 4], then"), "{said}");
    }
}

/// On X: makes a pair, connects to node P itself and sends one end to a `forwarder` there
/// (which passes it on to a `burster` on Y); reads BURST numbers from the other end.
#[place]
pub fn origin_via(ch: PlaceChannel<String, (String, String)>) {
    let Ok((p_addr, y_addr)) = ch.get() else {
        return;
    };
    let (here, there) = places::place_channel::<u64, u64>();
    let report = (|| -> Result<String, String> {
        let p = places::NodeAddr::new(p_addr)
            .connect()
            .map_err(|e| e.to_string())?;
        let fwd: RemotePlace<(End, String), String> = p
            .dynamic_place(module_path!(), "forwarder")
            .map_err(|e| e.to_string())?;
        fwd.put((there, y_addr)).map_err(|e| e.to_string())?;
        for i in 0..BURST {
            match here.get_timeout(Duration::from_secs(20)) {
                Ok(v) if v == i => {}
                Ok(v) => return Err(format!("expected {i}, got {v}")),
                Err(e) => {
                    let f = fwd.get_timeout(Duration::from_secs(5));
                    return Err(format!("after {i} of {BURST}: {e} (forwarder: {f:?})"));
                }
            }
        }
        Ok(format!("read {BURST} in order"))
    })();
    let _ = ch.put(report.unwrap_or_else(|e| format!("failed: {e}")));
}

/// On P: passes the end it gets on to a `burster` on Y.
#[place]
pub fn forwarder(ch: PlaceChannel<String, (End, String)>) {
    let Ok((end, y_addr)) = ch.get() else { return };
    let report = (|| -> Result<String, String> {
        let y = places::NodeAddr::new(y_addr)
            .connect()
            .map_err(|e| e.to_string())?;
        let b: RemotePlace<End, String> = y
            .dynamic_place(module_path!(), "burster")
            .map_err(|e| e.to_string())?;
        b.put(end).map_err(|e| e.to_string())?;
        b.get_timeout(Duration::from_secs(30))
            .map_err(|e| e.to_string())
    })();
    let _ = ch.put(report.unwrap_or_else(|e| format!("forwarder failed: {e}")));
}

/// On Y: puts 0..BURST on the end it gets, then waits a while before it lets it go.
#[place]
pub fn burster(ch: PlaceChannel<String, End>) {
    let Ok(end) = ch.get() else { return };
    let mut errors = Vec::new();
    for i in 0..BURST {
        if let Err(e) = end.put(i) {
            errors.push(format!("put {i}: {e}"));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = end.put(BURST);
    let _ = ch.put(format!(
        "burster: {} errors {:?}",
        errors.len(),
        errors.first()
    ));
    std::thread::sleep(Duration::from_secs(5));
}

/// The ticket's window is the window the end's node granted on the link it bridged the end
/// over; the endpoint made for the claim gets the window of the claimant's link. When those
/// differ (the node connected to the holder itself, and runs with a window of its own), the
/// new holder is allowed more than the node accepts, and messages are dropped.
#[test]
fn the_claimed_end_receives_within_the_tickets_window() {
    let x = node_with(
        NodeOptions::for_this_test_binary()
            .heartbeat(Duration::from_secs(2))
            .channel_window(64 << 10, 4)
            .hand_off_channel_ends(true),
    );
    let (p, y) = (node(), node());
    let o: RemotePlace<(String, String), String> =
        x.dynamic_place(module_path!(), "origin_via").unwrap();
    o.put((p.addr(), y.addr())).unwrap();
    let report = o.get_timeout(LIMIT).unwrap();
    println!("origin: {report}");
    assert_eq!(report, format!("read {BURST} in order"));
}

/// On P: starts an `origin` on node X itself (its own connection), takes the end it makes and
/// passes it on to its creator; then gives the origin its go and reports what it said.
#[place]
pub fn holder(ch: PlaceChannel<(Option<End>, String), String>) {
    let Ok(x_addr) = ch.get() else { return };
    let r = (|| -> Result<String, String> {
        let x = places::NodeAddr::new(x_addr)
            .connect()
            .map_err(|e| e.to_string())?;
        let from: RemotePlace<(u64, u64), EndOrReport> = x
            .dynamic_place(module_path!(), "origin")
            .map_err(|e| e.to_string())?;
        from.put((0, 3)).map_err(|e| e.to_string())?;
        let (end, _) = from.get_timeout(LIMIT).map_err(|e| e.to_string())?;
        ch.put((end, String::new())).map_err(|e| e.to_string())?;
        from.put((0, 0)).map_err(|e| e.to_string())?;
        let (_, report) = from
            .get_timeout(Duration::from_secs(90))
            .map_err(|e| e.to_string())?;
        Ok(report)
    })();
    let _ = ch.put((None, r.unwrap_or_else(|e| format!("holder failed: {e}"))));
}

/// The new holder is this program, which (run as one test, as `cargo test NAME` does) never
/// ran `places::init()`: starting nodes installed its direct links.
#[test]
fn an_end_handed_to_a_program_that_never_ran_init_works() {
    let (x, p) = (node(), node());
    let h: RemotePlace<String, EndOrReport> = p.dynamic_place(module_path!(), "holder").unwrap();
    h.put(x.addr()).unwrap();
    let got = h.get_timeout(LIMIT);
    let echoed = match got {
        Ok((Some(end), _)) => {
            let mut k = 0;
            while let Ok(v) = end.get_timeout(Duration::from_secs(90)) {
                if end.put(v).is_err() {
                    break;
                }
                k += 1;
            }
            format!("echoed {k}")
        }
        other => format!("the end did not arrive: {other:?}"),
    };
    let report = h.get_timeout(Duration::from_secs(120)).map(|r| r.1);
    println!("this program: {echoed}; origin: {report:?}");
    assert_eq!(report.unwrap(), "3 round trips");
}

/// X -> this program -> X again, on another connection to X than the one the end came on:
/// X takes the end over from itself, through a connection to its own address.
#[test]
fn an_end_passed_back_to_its_node_on_another_connection() {
    let x = node();
    let (from, end) = origin_on(&x, 0, 3);
    let again = x.node_addr().connect().unwrap();
    let to: RemotePlace<ToTaker, String> = again.dynamic_place(module_path!(), "taker").unwrap();
    let before = io_bytes();
    to.put(ToTaker::Take(end, 0)).unwrap();
    from.put((0, 0)).unwrap();
    let (_, report) = from.get_timeout(LIMIT).unwrap();
    println!(
        "origin: {report}; {} bytes here; x status: {}",
        io_bytes() - before,
        x.status().unwrap().table()
    );
    assert_eq!(report, "3 round trips");
}

/// Like `origin` mode 0, with a bounded pair of capacity 2.
#[place]
pub fn bounded_origin(ch: PlaceChannel<EndOrReport, u64>) {
    let Ok(n) = ch.get() else { return };
    let (here, there) = places::bounded_place_channel::<u64, u64>(2);
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

/// X -> here -> X on the same link, and a bounded end X -> here -> Y: both relayed, both work.
#[test]
fn same_link_and_bounded_ends_stay_relayed_and_work() {
    let (x, y) = (node(), node());
    let (from, end) = origin_on(&x, 0, 50);
    let to = taker_on(&x);
    to.put(ToTaker::Take(end, 0)).unwrap();
    from.put((0, 0)).unwrap();
    let (_, report) = from.get_timeout(LIMIT).unwrap();
    println!("same link: {report}");
    assert_eq!(report, "50 round trips");

    let from: RemotePlace<u64, EndOrReport> =
        x.dynamic_place(module_path!(), "bounded_origin").unwrap();
    from.put(50).unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    let to = taker_on(&y);
    let before = io_bytes();
    to.put(ToTaker::Take(end.unwrap(), 0)).unwrap();
    from.put(0).unwrap();
    let (_, report) = from.get_timeout(LIMIT).unwrap();
    println!("bounded: {report}, {} bytes here", io_bytes() - before);
    assert_eq!(report, "50 round trips");
}

/// The holder's own messages, put just before it passes the end on, reach the origin first.
#[test]
fn the_holders_last_messages_arrive_before_the_new_holders() {
    let (x, y) = (node(), node());
    for _ in 0..5 {
        let (from, end) = origin_on(&x, 3, 5);
        let to = taker_on(&y);
        from.put((0, 0)).unwrap();
        end.put(100).unwrap();
        end.put(101).unwrap();
        end.try_put(102).unwrap();
        let before = io_bytes();
        to.put(ToTaker::Take(end, 0)).unwrap();
        let (_, report) = from.get_timeout(LIMIT).unwrap();
        println!("origin: {report}; {} bytes here", io_bytes() - before);
        assert_eq!(report, "first [100, 101, 102], 5 round trips");
    }
}
