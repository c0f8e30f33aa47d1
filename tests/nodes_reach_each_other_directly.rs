//! A place on one node, told where another node is (a `NodeAddr`), connects to it directly
//! with the cluster cookie and talks to a named place there in one hop: megabytes go back and
//! forth and none of it passes through this program (its written bytes, `/proc/self/io`'s
//! `wchar`, stay far below what moved; a control shows the measure sees traffic that does
//! pass through here). The connection is made once and shared by later connects; a node that
//! dies fails the channel with an error naming it. One file of its own, so no other test's
//! traffic is counted.

use std::time::Duration;

use places::prelude::*;
use places::{
    connect_to_named_place, create_place_node, supervise_place_at, NodeAddr, NodeOptions,
    PlaceOptions, RemoteNode, RemotePlace, Routed,
};

places::node_test_entry!();

const MB: usize = 1 << 20;

fn node() -> RemoteNode {
    create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().heartbeat(Duration::from_secs(2)),
    )
    .expect("start a local node")
}

#[path = "support/written.rs"]
mod written;
use written::io_bytes;

/// A named place: answers every buffer, on the connection it came on, with one of the same
/// length.
#[place]
pub fn mirror(ch: PlaceChannel<(), Routed<Vec<u8>, Vec<u8>>>) {
    while let Ok(Routed { msg, reply }) = ch.get() {
        let _ = reply.put(vec![!msg[0]; msg.len()]);
    }
}

/// Told where the mirror's node is: connects twice (the second finds the first connection),
/// sends `n` buffers of 1 MiB to the mirror and checks each answer; says what it saw.
#[place]
pub fn visitor(ch: PlaceChannel<String, (NodeAddr, usize)>) {
    let Ok((at, n)) = ch.get() else { return };
    let report = (|| -> Result<String, String> {
        let node = at.connect().map_err(|e| e.to_string())?;
        let again = at.connect().map_err(|e| e.to_string())?;
        let shared = std::sync::Arc::ptr_eq(&node, &again);
        let mirror: PlaceChannel<Vec<u8>> =
            connect_to_named_place(&node, "mirror").map_err(|e| e.to_string())?;
        for i in 0..n {
            let back = mirror
                .put_get(vec![i as u8; MB])
                .map_err(|e| e.to_string())?;
            if back.len() != MB || back[0] != !(i as u8) {
                return Err(format!("answer {i} is wrong"));
            }
        }
        Ok(format!("{n} round trips, connection shared: {shared}"))
    })();
    let _ = ch.put(report.unwrap_or_else(|e| format!("failed: {e}")));
}

/// Told where a node is: connects to the mirror there (`mr_connect_to` with the address), then
/// talks to it until the channel fails; says how it failed.
#[place]
pub fn waits_for_the_end(ch: PlaceChannel<String, NodeAddr>) {
    let Ok(at) = ch.get() else { return };
    let report = (|| -> Result<String, String> {
        // Racket's `mr-connect-to` with a (host port) destination.
        let mirror: PlaceChannel<Vec<u8>> =
            places::mr_connect_to(&at, "mirror").map_err(|e| e.to_string())?;
        mirror.put_get(vec![1]).map_err(|e| e.to_string())?;
        ch.put("connected".into()).map_err(|e| e.to_string())?;
        for _ in 0..600 {
            if let Err(e) = mirror.put_get(vec![1]) {
                return Ok(format!("ended: {e}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("the channel outlived its node by a minute".into())
    })();
    let _ = ch.put(report.unwrap_or_else(|e| format!("failed: {e}")));
}

fn start_mirror(on: &RemoteNode) -> RemotePlace<Routed<Vec<u8>, Vec<u8>>, ()> {
    supervise_place_at(
        on,
        module_path!(),
        "mirror",
        PlaceOptions::new().named("mirror"),
    )
    .expect("start the mirror")
}

#[test]
fn a_place_reaches_a_named_place_on_another_node_in_one_hop() {
    let (x, y) = (node(), node());
    let _mirror = start_mirror(&y);
    let visitor: RemotePlace<(NodeAddr, usize), String> = x
        .dynamic_place(module_path!(), "visitor")
        .expect("start the visitor");
    // A first short visit pays what is paid once.
    visitor.put((y.node_addr(), 1)).unwrap();
    assert_eq!(
        visitor
            .channel()
            .get_timeout(Duration::from_secs(60))
            .unwrap(),
        "1 round trips, connection shared: true"
    );

    let visitor: RemotePlace<(NodeAddr, usize), String> = x
        .dynamic_place(module_path!(), "visitor")
        .expect("start the visitor");
    let before = io_bytes();
    visitor.put((y.node_addr(), 8)).unwrap();
    let report = visitor
        .channel()
        .get_timeout(Duration::from_secs(60))
        .unwrap();
    let through_here = io_bytes() - before;
    assert_eq!(report, "8 round trips, connection shared: true");
    assert!(
        through_here < MB as u64 / 2,
        "{through_here} bytes passed through the program while 16 MiB went between the nodes"
    );

    // The control: the same buffers put from here do pass through here, and the measure sees
    // them.
    let mirror: PlaceChannel<Vec<u8>> = connect_to_named_place(&y, "mirror").unwrap();
    let before = io_bytes();
    assert_eq!(mirror.put_get(vec![3u8; 4 * MB]).unwrap().len(), 4 * MB);
    let control = io_bytes() - before;
    assert!(
        control >= 4 * MB as u64,
        "the measure saw only {control} bytes of a 4 MiB message"
    );
}

#[test]
fn a_node_that_dies_fails_a_direct_channel_to_it_naming_the_node() {
    let (x, y) = (node(), node());
    let _mirror = start_mirror(&y);
    let waiter: RemotePlace<NodeAddr, String> = x
        .dynamic_place(module_path!(), "waits_for_the_end")
        .expect("start the waiter");
    waiter.put(y.node_addr()).unwrap();
    let first = waiter
        .channel()
        .get_timeout(Duration::from_secs(60))
        .unwrap();
    assert_eq!(first, "connected");
    let pid = y.pid().expect("a local node has a pid");
    let y_addr = y.addr();
    // SAFETY: a plain kill(2) of the node's own child process.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let end = waiter
        .channel()
        .get_timeout(Duration::from_secs(60))
        .unwrap();
    assert!(end.starts_with("ended: "), "{end}");
    assert!(end.contains(&y_addr), "the error names {y_addr}: {end}");
    drop(y);
}

#[test]
fn an_address_where_nothing_listens_is_a_connect_error() {
    let x = node();
    let waiter: RemotePlace<NodeAddr, String> = x
        .dynamic_place(module_path!(), "waits_for_the_end")
        .expect("start the waiter");
    // A port of this host that was free a moment ago.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    waiter.put(NodeAddr::new(free.to_string())).unwrap();
    let end = waiter
        .channel()
        .get_timeout(Duration::from_secs(60))
        .unwrap();
    assert!(end.starts_with("failed: "), "{end}");
    assert!(end.contains(&free.to_string()), "{end}");
}

#[test]
fn connects_share_one_connection_per_node_and_a_slow_one_holds_up_no_other() {
    let y = node();
    let port = y.addr().rsplit_once(':').unwrap().1.to_owned();
    let by_ip = NodeAddr::new(format!("127.0.0.1:{port}"))
        .connect()
        .unwrap();
    let by_name = NodeAddr::new(format!("localhost:{port}"))
        .connect()
        .unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&by_ip, &by_name),
        "two names of one node, two connections"
    );
    // Something that accepts and then says nothing: a connect to it waits out its handshake.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = NodeAddr::new(silent.local_addr().unwrap().to_string());
    let slow = std::thread::spawn(move || silent_addr.connect().map(|_| ()));
    std::thread::sleep(Duration::from_millis(200));
    let again = NodeAddr::new(format!("127.0.0.1:{port}"))
        .connect()
        .unwrap();
    assert!(std::sync::Arc::ptr_eq(&again, &by_ip));
    assert!(
        !slow.is_finished(),
        "the silent peer's connect ended before the cached one returned"
    );
    assert!(slow.join().unwrap().is_err(), "a silent peer is no node");
    drop(silent);
}
