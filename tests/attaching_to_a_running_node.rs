//! A node started by hand (standalone: `PLACES_NODE=standalone`, or `PROGRAM --places-node`),
//! serving every program that has the cluster cookie, outliving each of them: real node
//! processes on loopback, a second program attaching, a wrong cookie refused.

use std::process::Command;
use std::time::Duration;

use places::prelude::*;
use places::{Cookie, NetError, RemoteNode, RemotePlace};

const LIMIT: Duration = Duration::from_secs(30);

places::node_test_entry!();

/// Echoes numbers until its creator leaves.
#[place]
pub fn echo(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

#[path = "support/standalone.rs"]
mod standalone;
use standalone::Standalone;

fn standalone(tag: &str) -> Standalone {
    let dir = std::env::temp_dir().join(format!("places-standalone-{tag}-{}", std::process::id()));
    standalone::start(&dir, None, LIMIT)
}

fn round_trip(node: &RemoteNode, n: u64) {
    let p: RemotePlace<u64> = node.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p.put_get(n).unwrap(), n);
}

#[test]
fn a_standalone_node_serves_one_client_after_another_and_outlives_them() {
    let node = standalone("outlives");
    for n in 0..3 {
        let client = RemoteNode::connect(&node.addr, &node.cookie).unwrap();
        round_trip(&client, n);
        // No client may end a node it did not start.
        client.send_exit();
        drop(client);
    }
    let client = RemoteNode::connect(&node.addr, &node.cookie).unwrap();
    round_trip(&client, 99);
    assert!(node_alive(&node));
    let s = client.status().unwrap();
    assert_eq!(s.pid, node.child.id());
}

fn node_alive(node: &Standalone) -> bool {
    std::fs::metadata(format!("/proc/{}", node.child.id())).is_ok()
}

#[test]
fn a_wrong_cookie_is_refused() {
    let node = standalone("cookie");
    let err = RemoteNode::connect(&node.addr, &Cookie::random().unwrap()).unwrap_err();
    assert!(matches!(err, NetError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("cookie"), "{err}");
    // The node goes on serving those who have the cookie.
    let client = RemoteNode::connect(&node.addr, &node.cookie).unwrap();
    round_trip(&client, 5);
}

#[test]
fn nothing_listening_is_a_connect_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let err = RemoteNode::connect(&addr, &Cookie::random().unwrap()).unwrap_err();
    assert!(matches!(err, NetError::Connect { .. }), "{err:?}");
}

#[test]
fn another_program_attaches_while_this_one_is_attached() {
    let node = standalone("two-programs");
    let mine = RemoteNode::connect(&node.addr, &node.cookie).unwrap();
    let p: RemotePlace<u64> = mine.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p.put_get(1).unwrap(), 1);
    // A second program: this test binary again, running only `attach_from_another_program`.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "attach_from_another_program",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PLACES_TEST_ATTACH", &node.addr)
        .env("PLACES_TEST_ATTACH_COOKIE", node.cookie.to_hex())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("attached and answered 42"), "{text}");
    // Both programs' places ran side by side; this one's still answers.
    assert_eq!(p.put_get(2).unwrap(), 2);
}

/// The second program of the test above (does nothing when run as part of the suite).
#[test]
fn attach_from_another_program() {
    let (Ok(addr), Ok(hex)) = (
        std::env::var("PLACES_TEST_ATTACH"),
        std::env::var("PLACES_TEST_ATTACH_COOKIE"),
    ) else {
        return;
    };
    let node = RemoteNode::connect(&addr, &Cookie::from_hex(&hex).unwrap()).unwrap();
    let p: RemotePlace<u64> = node.dynamic_place(module_path!(), "echo").unwrap();
    let n = p.put_get(42).unwrap();
    println!("attached and answered {n}");
}
