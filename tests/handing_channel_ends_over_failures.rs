//! Failures around a channel end handed over from node X through this program to node Y
//! (`places_core::transport::handoff`), each beside a control in which X relays instead, from
//! a review that found them: another peer filling Y's room for adopted ends, X dying while
//! the message is encoded, the holder dying meanwhile, a `Serialize` that panics after the
//! end, a `try_get` on a message whose end is not there, and a local node on every address.

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use places::net::handshake;
use places::net::wire::{self, encode_frame, read_frame, Kind};
use places::prelude::*;
use places::{create_place_node, ChannelError, NodeOptions, RemoteNode, RemotePlace};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

places::node_test_entry!();

const LIMIT: Duration = Duration::from_secs(60);

type End = PlaceChannel<u64, u64>;

fn node() -> RemoteNode {
    create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary()
            .heartbeat(Duration::from_secs(2))
            .hand_off_channel_ends(true),
    )
    .expect("start a local node")
}

fn kill(n: &RemoteNode) {
    let pid = n.pid().expect("a local node has a pid");
    // SAFETY: plain kill(2) on a child process this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// Makes a pair, sends one end to its creator, then echoes nothing: waits for a go, then makes
/// `n` round trips on the other end and reports.
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

/// Echoes on the end it is given until the end closes; reports what it did, or why the
/// message with the end did not decode.
#[place]
pub fn echoer(ch: PlaceChannel<String, (End, Gate)>) {
    match ch.get_timeout(LIMIT) {
        Ok((end, Gate)) => {
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

fn authenticated(n: &RemoteNode) -> TcpStream {
    let mut s = TcpStream::connect(n.addr()).expect("connect to the node");
    s.set_read_timeout(Some(LIMIT)).unwrap();
    handshake::client(&mut s, &places::net::cluster_cookie().unwrap()).expect("handshake");
    s
}

/// An authenticated peer of `y` fills its allowance of adopted ends that wait for their
/// message, as the bad-input test does; returns its connection (kept open).
fn fill_adoptions(y: &RemoteNode) -> TcpStream {
    let mut s = authenticated(y);
    let mut frames = Vec::new();
    for i in 0..4096u64 {
        let token = 1u64 << 63 | (0x5eed_0000 + i);
        frames.extend(encode_frame(
            Kind::Adopt,
            1001 + 2 * i,
            &token.to_le_bytes(),
        ));
    }
    s.write_all(&frames).unwrap();
    let token = 1u64 << 63 | 0x7777;
    s.write_all(&encode_frame(Kind::Adopt, 99_001, &token.to_le_bytes()))
        .unwrap();
    // Wait until Y has taken all of them in (its refusal of one more says so).
    loop {
        let f = read_frame(&mut s, wire::MAX_FRAME).expect("a frame from Y");
        if f.kind == Kind::Kept && f.channel == 99_001 {
            break;
        }
    }
    s
}

/// One peer's made-up `Adopt` frames fill Y's room for adopted ends that wait for their
/// message, on that peer's link: a handoff to Y from another node still works (the room is
/// counted per link, and X tells the holder `HandedOff` only once Y has taken the end).
#[test]
fn made_up_adopts_from_one_peer_do_not_break_another_peers_handoff() {
    let _turn = serial();
    let (x, y) = (node(), node());
    let s = fill_adoptions(&y);

    // Now an ordinary X -> this program -> Y handoff. The gate holds the message back for a
    // second once the end is encoded (X has pushed it), so that Y certainly takes X's `Adopt`
    // before the message (as it does in almost every run anyway).
    let from: RemotePlace<u64, (Option<End>, String)> =
        x.dynamic_place(module_path!(), "origin").unwrap();
    from.put(5).unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    let to: RemotePlace<(End, Gate), String> = y.dynamic_place(module_path!(), "echoer").unwrap();
    let to = std::sync::Arc::new(to);
    let t = Instant::now();
    let put = send_gated(&to, (end.unwrap(), Gate), || {
        std::thread::sleep(Duration::from_secs(1))
    });
    from.put(0).unwrap();
    let report = from.get_timeout(LIMIT).map(|r| r.1);
    // The echoer's report, or the error this program's `get` gives for the message Y dropped.
    let said = to.get_timeout(LIMIT);
    println!(
        "put: {put:?}; origin: {report:?}; echoer: {said:?}; {:?}",
        t.elapsed()
    );
    drop(s);
    assert_eq!(report.as_deref(), Ok("5 round trips"));
    assert!(
        said.as_deref().is_ok_and(|s| s.starts_with("echoed 5")),
        "{said:?}"
    );
}

/// Sends `msg` (which holds a `Gate`) on `to` from another thread; once the gate is reached
/// (everything before it is encoded) runs `meanwhile`, then lets the encoding go on.
fn send_gated<M: places::Message>(
    to: &std::sync::Arc<RemotePlace<M, String>>,
    msg: M,
    meanwhile: impl FnOnce(),
) -> Result<(), String> {
    set_gate(0);
    let sender = {
        let to = to.clone();
        std::thread::spawn(move || to.put(msg).map_err(|e| e.to_string()))
    };
    wait_gate(1);
    meanwhile();
    set_gate(2);
    sender.join().unwrap()
}

fn wait_gate(state: u8) {
    let (m, cv) = &GATE;
    let mut g = m.lock().unwrap();
    let deadline = Instant::now() + LIMIT;
    while *g != state {
        assert!(Instant::now() < deadline, "the gate was never reached");
        g = cv.wait_timeout(g, Duration::from_secs(1)).unwrap().0;
    }
}

fn set_gate(state: u8) {
    let (m, cv) = &GATE;
    *m.lock().unwrap() = state;
    cv.notify_all();
}

/// The state of the gate a `Gate` waits at while it is encoded: 0 idle, 1 encoding, 2 go.
static GATE: (Mutex<u8>, Condvar) = (Mutex::new(0), Condvar::new());

/// A value whose encoding (in this program) says it started and waits for a go: a stand-in
/// for a message whose fields after the channel end take a while to encode.
pub struct Gate;

impl Serialize for Gate {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        let (m, cv) = &GATE;
        let mut g = m.lock().unwrap();
        if *g == 0 {
            *g = 1;
            cv.notify_all();
            let deadline = Instant::now() + LIMIT;
            while *g != 2 && Instant::now() < deadline {
                g = cv.wait_timeout(g, Duration::from_secs(1)).unwrap().0;
            }
        }
        s.serialize_u8(0)
    }
}

impl<'de> Deserialize<'de> for Gate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u8::deserialize(d).map(|_| Gate)
    }
}

/// Takes `(end, Gate)`: says whether the message arrived and what the end does.
#[place]
pub fn gated_taker(ch: PlaceChannel<String, (End, Gate)>) {
    let said = match ch.get_timeout(LIMIT) {
        Ok((end, Gate)) => format!(
            "got the message; the end: {:?}",
            end.get_timeout(Duration::from_secs(5))
        ),
        Err(e) => format!("the message was lost: {e}"),
    };
    let _ = ch.put(said);
}

/// X dies after it pushed the end to Y and before the message naming it reaches Y (the
/// holder was still encoding it): the message still arrives, with the end closed, as it would
/// relayed (Y keeps an adopted end a while after its node closed it).
#[test]
fn the_message_survives_the_ends_node_dying_mid_handoff() {
    let said = end_node_dies_while_the_message_is_encoded(true);
    assert!(
        said.as_deref()
            .is_ok_and(|s| s.starts_with("got the message")),
        "{said:?}"
    );
}

/// The control: the same with X not handing ends over (relayed by this program) passes.
#[test]
fn control_the_message_survives_the_ends_node_dying_when_relayed() {
    let said = end_node_dies_while_the_message_is_encoded(false);
    assert!(
        said.as_deref()
            .is_ok_and(|s| s.starts_with("got the message")),
        "{said:?}"
    );
}

/// The tests that use `GATE` run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn end_node_dies_while_the_message_is_encoded(hand_off: bool) -> Result<String, ChannelError> {
    let _turn = serial();
    let x = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary()
            .heartbeat(Duration::from_secs(2))
            .hand_off_channel_ends(hand_off),
    )
    .expect("start a local node");
    let y = node();
    let from: RemotePlace<u64, (Option<End>, String)> =
        x.dynamic_place(module_path!(), "origin").unwrap();
    from.put(5).unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    let end = end.unwrap();
    let to: RemotePlace<(End, Gate), String> =
        y.dynamic_place(module_path!(), "gated_taker").unwrap();
    let to = std::sync::Arc::new(to);
    // Once the end is encoded (handed off: X pushed it to Y), while the rest of the message
    // is being encoded: X dies, Y sees its link to X go, and Y's sweeper runs (every second).
    let sent = send_gated(&to, (end, Gate), || {
        std::thread::sleep(Duration::from_secs(2));
        kill(&x);
        std::thread::sleep(Duration::from_secs(4));
    });
    let t = Instant::now();
    // The taker's report, or the error this program's `get` gives for the message Y dropped.
    let said = to.get_timeout(LIMIT);
    println!(
        "put: {sent:?}; taker: {said:?} ({:?} after the put)",
        t.elapsed()
    );
    said
}

/// A value that, encoded on a node, creates the file `marker` and then takes two minutes.
#[derive(Debug)]
pub struct Stall {
    /// The file to create.
    pub marker: String,
}

impl Serialize for Stall {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        let _ = std::fs::write(&self.marker, b"encoding");
        std::thread::sleep(Duration::from_secs(120));
        s.serialize_str(&self.marker)
    }
}

impl<'de> Deserialize<'de> for Stall {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|marker| Stall { marker })
    }
}

/// On X: makes a pair, connects to P itself and sends one end to a `stalling_holder` there
/// (which passes it on to Y); then waits on the other end and reports what it got.
#[place]
pub fn origin_via(ch: PlaceChannel<String, (String, String, String)>) {
    let Ok((p_addr, y_addr, marker)) = ch.get() else {
        return;
    };
    let (here, there) = places::place_channel::<u64, u64>();
    let r = (|| -> Result<String, String> {
        let p = places::NodeAddr::new(p_addr)
            .connect()
            .map_err(|e| e.to_string())?;
        let h: RemotePlace<(End, String, String), String> = p
            .dynamic_place(module_path!(), "stalling_holder")
            .map_err(|e| e.to_string())?;
        h.put((there, y_addr, marker)).map_err(|e| e.to_string())?;
        ch.put("sent".into()).map_err(|e| e.to_string())?;
        let got = here.get_timeout(Duration::from_secs(150));
        Ok(format!("the end's get: {got:?}"))
    })();
    let _ = ch.put(r.unwrap_or_else(|e| format!("failed: {e}")));
}

/// On P: passes the end on to a `sink` on Y, in a message whose encoding stalls after the end.
#[place]
pub fn stalling_holder(ch: PlaceChannel<String, (End, String, String)>) {
    let Ok((end, y_addr, marker)) = ch.get() else {
        return;
    };
    let Ok(y) = places::NodeAddr::new(y_addr).connect() else {
        return;
    };
    let Ok(sink) = y.dynamic_place::<(End, Stall), String>(module_path!(), "sink") else {
        return;
    };
    let _ = sink.put((end, Stall { marker }));
}

/// On Y: takes one message and keeps it.
#[place]
pub fn sink(ch: PlaceChannel<String, (End, Stall)>) {
    let _kept = ch.get_timeout(Duration::from_secs(150));
    std::thread::sleep(Duration::from_secs(5));
}

/// The holder P dies while X waits for its commit (P had the end pushed on to Y and was still
/// sending the message): the origin hears at once, as it would relayed.
#[test]
fn the_origin_hears_promptly_when_the_holder_dies_mid_handoff() {
    let waited = holder_dies_while_the_message_is_encoded(true);
    assert!(
        waited < Duration::from_secs(20),
        "the origin heard nothing for {waited:?}"
    );
}

/// The control: the same with X not handing ends over (relayed by P) passes.
#[test]
fn control_the_origin_hears_promptly_when_the_holder_of_a_relayed_end_dies() {
    let waited = holder_dies_while_the_message_is_encoded(false);
    assert!(
        waited < Duration::from_secs(20),
        "the origin heard nothing for {waited:?}"
    );
}

fn holder_dies_while_the_message_is_encoded(hand_off: bool) -> Duration {
    let x = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary()
            .heartbeat(Duration::from_secs(2))
            .hand_off_channel_ends(hand_off),
    )
    .expect("start a local node");
    let (p, y) = (node(), node());
    let marker = std::env::temp_dir().join(format!(
        "places-review-stall-{}-{hand_off}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&marker);
    let o: RemotePlace<(String, String, String), String> =
        x.dynamic_place(module_path!(), "origin_via").unwrap();
    o.put((p.addr(), y.addr(), marker.display().to_string()))
        .unwrap();
    assert_eq!(o.get_timeout(LIMIT).unwrap(), "sent");
    // P is encoding the message after the end: X has pushed the end to Y and waits for P.
    let deadline = Instant::now() + LIMIT;
    while !marker.exists() {
        assert!(Instant::now() < deadline, "P never encoded the message");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    kill(&p);
    let t = Instant::now();
    let report = o.get_timeout(Duration::from_secs(150)).unwrap();
    let waited = t.elapsed();
    let _ = std::fs::remove_file(&marker);
    println!("origin: {report}, {waited:?} after the holder died");
    waited
}

/// A value whose encoding panics (user code).
pub struct Boom;

impl Serialize for Boom {
    fn serialize<Z: Serializer>(&self, _: Z) -> Result<Z::Ok, Z::Error> {
        panic!("a Serialize that panics, after the channel end")
    }
}

impl<'de> Deserialize<'de> for Boom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u8::deserialize(d).map(|_| Boom)
    }
}

/// Takes one message (none comes).
#[place]
pub fn boom_taker(ch: PlaceChannel<String, (End, Boom)>) {
    let _ = ch.get_timeout(Duration::from_secs(150));
}

/// Makes a pair, sends one end to its creator, waits for a go, then waits on the other end
/// and reports what it got.
#[place]
pub fn waiter(ch: PlaceChannel<(Option<End>, String), u64>) {
    let (here, there) = places::place_channel::<u64, u64>();
    if ch.put((Some(there), String::new())).is_err() || ch.get().is_err() {
        return;
    }
    let got = here.get_timeout(Duration::from_secs(150));
    let _ = ch.put((None, format!("{got:?}")));
}

fn serialize_panics_after_the_end(hand_off: bool) -> Duration {
    let x = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary()
            .heartbeat(Duration::from_secs(2))
            .hand_off_channel_ends(hand_off),
    )
    .expect("start a local node");
    let y = node();
    let from: RemotePlace<u64, (Option<End>, String)> =
        x.dynamic_place(module_path!(), "waiter").unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    let to: RemotePlace<(End, Boom), String> =
        y.dynamic_place(module_path!(), "boom_taker").unwrap();
    let put = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        to.put((end.unwrap(), Boom))
    }));
    assert!(put.is_err(), "the put panics");
    let t = Instant::now();
    from.put(0).unwrap();
    let report = from.get_timeout(Duration::from_secs(150)).map(|r| r.1);
    let waited = t.elapsed();
    println!("origin: {report:?} after {waited:?}");
    waited
}

/// A `Serialize` that panics after a handed-off end: the message never goes out, the end's
/// node is told to go on (`Resume`), and the origin hears at once that the end is gone.
#[test]
fn a_serialize_that_panics_after_a_handed_off_end_closes_it_promptly() {
    let waited = serialize_panics_after_the_end(true);
    assert!(
        waited < Duration::from_secs(20),
        "the origin heard nothing for {waited:?}"
    );
}

/// The control: a relayed end (X does not hand ends over) closes at once.
#[test]
fn control_a_serialize_that_panics_after_a_relayed_end_closes_it_promptly() {
    let waited = serialize_panics_after_the_end(false);
    assert!(
        waited < Duration::from_secs(20),
        "the origin heard nothing for {waited:?}"
    );
}

/// A local node started to listen on every address (`listen_addr("0.0.0.0")`, as the docs
/// advise for a node that other hosts must reach) is dialed on loopback, not at the wildcard,
/// which would be no address to hand to a node on another host.
#[test]
fn a_local_node_on_every_address_is_not_dialed_at_the_wildcard() {
    let y = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().listen_addr("0.0.0.0"),
    )
    .expect("start a local node");
    println!("dialed at {}", y.addr());
    assert!(!y.addr().starts_with("0.0.0.0"), "{}", y.addr());
}

/// Polls with `try_get` until a message (or an error other than `Empty`) comes; reports the
/// longest single `try_get` call.
#[place]
pub fn try_taker(ch: PlaceChannel<String, (End, Gate)>) {
    let start = Instant::now();
    let mut longest = Duration::ZERO;
    let got = loop {
        let t = Instant::now();
        let r = ch.try_get();
        longest = longest.max(t.elapsed());
        match r {
            Err(ChannelError::Empty) if start.elapsed() < Duration::from_secs(15) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => break other.map(|_| "an end").map_err(|e| e.to_string()),
        }
    };
    let _ = ch.put(format!("{}", longest.as_millis()));
    let _ = ch.put(format!("{got:?}"));
}

/// `try_get` ("without blocking") on a message that names a handed-off end, while another
/// peer has filled Y's room for adopted ends: never waits (the end is at Y before the message
/// is sent, or the end stays relayed).
#[test]
fn try_get_does_not_block_on_a_handed_off_end_that_has_not_come() {
    let _turn = serial();
    let (x, y) = (node(), node());
    let s = fill_adoptions(&y);
    let from: RemotePlace<u64, (Option<End>, String)> =
        x.dynamic_place(module_path!(), "origin").unwrap();
    from.put(1).unwrap();
    let (end, _) = from.get_timeout(LIMIT).unwrap();
    let to: RemotePlace<(End, Gate), String> =
        y.dynamic_place(module_path!(), "try_taker").unwrap();
    let to = std::sync::Arc::new(to);
    // Another peer filled Y's room for adopted ends: X's own handoff is not held up by it.
    let put = send_gated(&to, (end.unwrap(), Gate), || {
        std::thread::sleep(Duration::from_secs(1))
    });
    // Skip the error this program's `get` reports for the message Y dropped, if any.
    let longest = loop {
        match to.get_timeout(LIMIT) {
            Ok(ms) => break ms,
            Err(ChannelError::Dropped { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    let got = to.get_timeout(LIMIT);
    println!("put: {put:?}; longest try_get: {longest} ms; then {got:?}");
    drop(s);
    let longest: u64 = longest.parse().unwrap();
    assert!(longest < 2000, "a try_get took {longest} ms");
}
