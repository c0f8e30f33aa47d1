//! `log_message` in a place two nodes away reaches the root program's `tracing` subscriber,
//! marked with the node it came from; `log_to_parent` in an RPC server reaches it too.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, define_remote_server, NodeOptions, RemotePlace, Severity};

places::node_test_entry!();

/// Logs a warning and ends.
#[place]
pub fn logs(_ch: PlaceChannel<()>) {
    places::log_message(Severity::Warning, "hello from two nodes away");
}

/// Logs an info line and ends.
#[place]
pub fn logs_nearby(_ch: PlaceChannel<()>) {
    places::log_message(Severity::Info, "hello from next door");
}

/// Starts a node of its own with `logs` on it, waits for that place, and reports the node's
/// address.
#[place]
pub fn starts_a_grandchild(ch: PlaceChannel<String, ()>) {
    let outcome = create_place_node("localhost", NodeOptions::for_this_test_binary())
        .map_err(|e| e.to_string())
        .and_then(|node| {
            let p: RemotePlace<()> = node
                .dynamic_place(module_path!(), "logs")
                .map_err(|e| e.to_string())?;
            p.wait();
            Ok(node.addr().to_owned())
        });
    let _ = ch.put(outcome.unwrap_or_else(|e| format!("error: {e}")));
}

define_remote_server! {
    pub chatty {
        rpc fn work() -> u8 {
            places::log_to_parent("working hard", Severity::Info);
            7
        }
    }
}

/// Everything the subscriber writes, for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn wait_for(&self, needle: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// One global subscriber for this test binary (records arrive on reader threads).
fn captured() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let c = Captured::default();
            let writer = c.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
            c
        })
        .clone()
}

#[test]
fn a_log_message_two_nodes_away_reaches_the_root() {
    let log = captured();
    let child = create_place_node("localhost", NodeOptions::for_this_test_binary()).unwrap();
    let p: RemotePlace<(), String> = child
        .dynamic_place(module_path!(), "starts_a_grandchild")
        .unwrap();
    let grandchild = p.get_timeout(Duration::from_secs(30)).unwrap();
    assert!(!grandchild.starts_with("error"), "{grandchild}");
    let expected = format!("PLACE {grandchild}: hello from two nodes away");
    assert!(
        log.wait_for(&expected),
        "not logged: {expected:?}\n{}",
        log.text()
    );
    assert!(log.text().contains("WARN"), "{}", log.text());
}

#[test]
fn log_to_parent_in_a_server_reaches_the_root() {
    let log = captured();
    let node = create_place_node("localhost", NodeOptions::for_this_test_binary()).unwrap();
    let server: RemotePlace<ChattyRequest, ChattyResponse> =
        node.dynamic_place(module_path!(), "make_chatty").unwrap();
    assert_eq!(chatty_work(&server).unwrap(), 7);
    assert!(log.wait_for("working hard"), "{}", log.text());
}

#[test]
fn records_carry_the_nodes_log_prefix() {
    let log = captured();
    let node = create_place_node("localhost", NodeOptions::for_this_test_binary()).unwrap();
    assert_eq!(node.log_prefix(), format!("PLACE {}", node.addr()));
    let p: RemotePlace<()> = node.dynamic_place(module_path!(), "logs_nearby").unwrap();
    p.wait();
    let expected = format!("{}: hello from next door", node.log_prefix());
    assert!(
        log.wait_for(&expected),
        "not logged: {expected:?}\n{}",
        log.text()
    );
}
