//! A channel end handed over from node X to node Y is pushed by X to Y before the message
//! naming it arrives, so Y has it whenever Y's consumer takes the message: here long after
//! every handoff timeout (shortened to 3 s with `PLACES_HANDOFF_TIMEOUT_MS`, which the nodes
//! inherit). A Y that X cannot log in to (another cookie) gets the end relayed instead, and it
//! works. Its own file: the timeouts are set for the whole process, and the traffic measure
//! counts every write of it.

use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};
use serde::{Deserialize, Serialize};

places::node_test_entry!();

const LIMIT: Duration = Duration::from_secs(60);
/// The handoff timeouts of every process of this test.
const TIMEOUT_MS: u64 = 3000;
/// Bytes per round trip.
const LEN: usize = 100_000;
const ROUNDS: usize = 20;

#[path = "support/written.rs"]
mod written;
use written::io_bytes;

#[path = "support/standalone.rs"]
mod standalone;

/// The tests of this file take turns: the measure counts every write of the process.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // `places_core::transport::handoff::TIMEOUTS_ENV`; the nodes inherit it.
    std::env::set_var("PLACES_HANDOFF_TIMEOUT_MS", TIMEOUT_MS.to_string());
    turn
}

fn node() -> RemoteNode {
    create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary()
            .heartbeat(Duration::from_secs(2))
            .hand_off_channel_ends(true),
    )
    .expect("start a local node")
}

type End = PlaceChannel<Vec<u8>, Vec<u8>>;

/// Makes a pair, sends one end to its creator, waits for a go, then makes `ROUNDS` round trips
/// of `LEN` bytes on the other (each answer the buffer reversed) and reports.
#[place]
pub fn origin(ch: PlaceChannel<(Option<End>, String), ()>) {
    let (here, there) = places::place_channel::<Vec<u8>, Vec<u8>>();
    if ch.put((Some(there), String::new())).is_err() || ch.get().is_err() {
        return;
    }
    let report = (0..ROUNDS).try_for_each(|i| {
        let v: Vec<u8> = (0..LEN).map(|j| (i + j) as u8).collect();
        let mut back = here
            .put_get(v.clone())
            .map_err(|e| format!("round trip {i}: {e}"))?;
        back.reverse();
        if back == v {
            Ok(())
        } else {
            Err(format!("answer {i} is wrong"))
        }
    });
    let _ = ch.put((
        None,
        match report {
            Ok(()) => format!("{ROUNDS} round trips"),
            Err(e) => format!("failed: {e}"),
        },
    ));
}

/// What a reverser is sent: a pause before it looks at its queue again, or the end.
#[derive(Serialize, Deserialize)]
pub enum ToReverser {
    /// Sleep this many milliseconds.
    Sleep(u64),
    /// Answer every buffer on this end with the buffer reversed.
    Take(End),
}

/// Sleeps when told to; answers every buffer on the end it is given with the buffer reversed,
/// then reports how many it answered.
#[place]
pub fn reverser(ch: PlaceChannel<String, ToReverser>) {
    loop {
        match ch.get() {
            Ok(ToReverser::Sleep(ms)) => std::thread::sleep(Duration::from_millis(ms)),
            Ok(ToReverser::Take(end)) => {
                let mut k = 0;
                while let Ok(mut v) = end.get() {
                    v.reverse();
                    if end.put(v).is_err() {
                        break;
                    }
                    k += 1;
                }
                let _ = ch.put(format!("answered {k}"));
                return;
            }
            Err(e) => {
                let _ = ch.put(format!("reverser: {e}"));
                return;
            }
        }
    }
}

/// Passes an end made on `x` on to a reverser behind `y`, which takes it only after `pause`;
/// returns the origin's report, the reverser's, and what this program wrote meanwhile.
fn pass_on(x: &RemoteNode, y: &RemoteNode, pause: Duration) -> (String, String, u64) {
    let from: RemotePlace<(), (Option<End>, String)> =
        x.dynamic_place(module_path!(), "origin").unwrap();
    let to: RemotePlace<ToReverser, String> = y.dynamic_place(module_path!(), "reverser").unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    let before = io_bytes();
    to.put(ToReverser::Sleep(pause.as_millis() as u64)).unwrap();
    to.put(ToReverser::Take(end.expect("the end"))).unwrap();
    from.put(()).unwrap();
    let (_, report) = from.get_timeout(LIMIT + pause).unwrap();
    let said = to.get_timeout(LIMIT).unwrap();
    (report, said, io_bytes() - before)
}

#[test]
fn a_new_holder_that_takes_the_end_long_after_the_handoff_has_it() {
    let _turn = serial();
    let (x, y) = (node(), node());
    // Well past every handoff timeout: with the end pulled when it is decoded, its node
    // would have closed it by then.
    let pause = Duration::from_millis(3 * TIMEOUT_MS);
    let t = Instant::now();
    let (report, said, through_here) = pass_on(&x, &y, pause);
    println!(
        "origin: {report}; reverser: {said}; {through_here} bytes written here; {:?}",
        t.elapsed()
    );
    assert_eq!(report, format!("{ROUNDS} round trips"));
    // X and Y talked directly: the round trips' 4 MB did not pass through here.
    assert!(
        through_here < (ROUNDS * LEN) as u64 / 2,
        "{through_here} bytes went through this program"
    );
    assert_eq!(said, format!("answered {ROUNDS}"));
}

#[test]
fn a_new_holder_the_node_cannot_log_in_to_gets_the_end_relayed() {
    let _turn = serial();
    let x = node();
    // Y runs with a cookie of its own: this program attaches with it, X cannot.
    let dir = std::env::temp_dir().join(format!("places-handoff-cookie-{}", std::process::id()));
    let y_proc = standalone::start(&dir, None, LIMIT);
    let y = RemoteNode::connect(&y_proc.addr, &y_proc.cookie).unwrap();
    let t = Instant::now();
    let (report, said, through_here) = pass_on(&x, &y, Duration::ZERO);
    println!(
        "origin: {report}; reverser: {said}; {through_here} bytes written here; {:?}",
        t.elapsed()
    );
    assert_eq!(report, format!("{ROUNDS} round trips"));
    assert_eq!(said, format!("answered {ROUNDS}"));
    // Relayed: every byte both ways passes through here.
    assert!(
        through_here >= (2 * ROUNDS * LEN) as u64,
        "{through_here} bytes went through this program"
    );
}

/// On Y: takes the end and Z's address, passes the end on to a reverser on Z (connecting to Z
/// itself), says so, then reports the reverser's answer and how many bytes this process wrote
/// meanwhile.
#[place]
pub fn forwarder(ch: PlaceChannel<String, (End, String)>) {
    let Ok((end, z_addr)) = ch.get() else { return };
    let report = (|| -> Result<String, String> {
        let z = places::NodeAddr::new(z_addr)
            .connect()
            .map_err(|e| e.to_string())?;
        let to: RemotePlace<ToReverser, String> = z
            .dynamic_place(module_path!(), "reverser")
            .map_err(|e| e.to_string())?;
        let before = io_bytes();
        to.put(ToReverser::Take(end)).map_err(|e| e.to_string())?;
        ch.put("passed on".into()).map_err(|e| e.to_string())?;
        let said = to.get_timeout(LIMIT).map_err(|e| e.to_string())?;
        Ok(format!("{said}; {} bytes", io_bytes() - before))
    })();
    let _ = ch.put(report.unwrap_or_else(|e| format!("forwarder failed: {e}")));
}

/// X -> this program -> Y -> Z, where Y connected to Z itself: X pushes the end to Y, then
/// (asked by Y, with the same ticket) on to Z, so neither this program nor Y relays the
/// round trips.
#[test]
fn an_end_handed_on_twice_goes_one_hop_each_time() {
    let _turn = serial();
    let (x, y, z) = (node(), node(), node());
    let from: RemotePlace<(), (Option<End>, String)> =
        x.dynamic_place(module_path!(), "origin").unwrap();
    let fwd: RemotePlace<(End, String), String> =
        y.dynamic_place(module_path!(), "forwarder").unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    let before = io_bytes();
    fwd.put((end.expect("the end"), z.addr())).unwrap();
    assert_eq!(fwd.get_timeout(LIMIT).unwrap(), "passed on");
    from.put(()).unwrap();
    let (_, report) = from.get_timeout(LIMIT).unwrap();
    let forwarded = fwd.get_timeout(LIMIT).unwrap();
    let through_here = io_bytes() - before;
    println!("origin: {report}; forwarder: {forwarded}; {through_here} bytes written here");
    assert_eq!(report, format!("{ROUNDS} round trips"));
    let (said, y_bytes) = forwarded.split_once("; ").expect("the forwarder's report");
    assert_eq!(said, format!("answered {ROUNDS}"));
    let y_bytes: u64 = y_bytes.trim_end_matches(" bytes").parse().unwrap();
    let half = (ROUNDS * LEN) as u64 / 2;
    assert!(y_bytes < half, "{y_bytes} bytes went through Y");
    assert!(
        through_here < half,
        "{through_here} bytes went through here"
    );
}
