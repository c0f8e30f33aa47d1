//! The reference's router operations, called from a place on a node: it starts a node of its
//! own, a named place there, connects to it, and runs a message router on a thread.

use std::time::Duration;

use places::prelude::*;
use places::{
    create_place_node, define_named_remote_server, mr_connect_to, mr_spawn_remote_node,
    mr_supervise_named_dynamic_place_at, start_message_router_thread, MessageRouter, NodeOptions,
    RemotePlace, Routed,
};

places::node_test_entry!();

define_named_remote_server! {
    pub greeter {
        rpc fn greet(who: String) -> String {
            format!("hello, {who}")
        }
    }
}

/// On a node: starts another node, a named greeter there, connects, and reports the greeting.
#[place]
pub fn orchestrates(ch: PlaceChannel<String, ()>) {
    let outcome = (|| -> Result<String, String> {
        let node = mr_spawn_remote_node("localhost", NodeOptions::for_this_test_binary())
            .map_err(|e| e.to_string())?;
        let _server: RemotePlace<Routed<GreeterRequest, GreeterResponse>, GreeterResponse> =
            mr_supervise_named_dynamic_place_at(&node, "greeter", module_path!(), "make_greeter")
                .map_err(|e| e.to_string())?;
        let conn = mr_connect_to::<GreeterRequest, GreeterResponse>(&node, "greeter")
            .map_err(|e| e.to_string())?;
        greeter_greet(&conn, "places".into()).map_err(|e| e.to_string())
    })();
    let _ = ch.put(outcome.unwrap_or_else(|e| format!("error: {e}")));
}

#[test]
fn a_place_on_a_node_orchestrates_another_node() {
    let node = create_place_node("localhost", NodeOptions::for_this_test_binary()).unwrap();
    let p: RemotePlace<(), String> = node.dynamic_place(module_path!(), "orchestrates").unwrap();
    assert_eq!(
        p.get_timeout(Duration::from_secs(30)).unwrap(),
        "hello, places"
    );
}

#[test]
fn a_router_thread_runs_until_stopped() {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut router = MessageRouter::new();
    router.add(places::every_seconds(0.01, move || {
        let _ = tx.send(());
    }));
    let thread = start_message_router_thread(router);
    for _ in 0..3 {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the router's timer fires");
    }
    thread.stop();
}
