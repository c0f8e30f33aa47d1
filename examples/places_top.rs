//! A view of a running cluster, as Erlang's observer or `top` gives one: two local nodes run a
//! small workload (echo places kept busy, a named tuple-style server with clients, a supervised
//! place that keeps crashing, and a place that has stopped taking its messages), and this
//! program prints each node's `RemoteNode::status()` as a table, refreshed every second.
//!
//! ```text
//! cargo run --release --example places_top            # refreshes 10 times
//! cargo run --release --example places_top -- --once  # one snapshot, for scripts
//! ```
//!
//! Each node's block starts with a line such as
//!
//! ```text
//! node localhost (127.0.0.1:40215)  pid 81233  up 1.2 s  restarts 0  heartbeat 85 us
//! ```

use std::time::Duration;

use places::prelude::*;
use places::{
    connect_to_named_place, create_place_node, restart_every, supervise_place_at, NodeOptions,
    PlaceOptions, RemoteNode, RemotePlace, Routed,
};

/// Echoes numbers until its creator leaves.
#[place]
pub fn echo(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

/// A named store: `Some(v)` sets, `None` reads.
#[place]
pub fn store(ch: PlaceChannel<(), Routed<Option<u64>, u64>>) {
    let mut value = 0;
    while let Ok(Routed { msg, reply }) = ch.get() {
        if let Some(v) = msg {
            value = v;
        }
        let _ = reply.put(value);
    }
}

/// Runs a little while, then fails (its supervisor restarts it).
#[place]
pub fn flaky(_ch: PlaceChannel<(), ()>) -> i32 {
    std::thread::sleep(Duration::from_millis(700));
    1
}

/// Takes one message, then no more (its queue grows).
#[place]
pub fn stuck(ch: PlaceChannel<(), u64>) {
    let _ = ch.get();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if places::check_break().is_err() {
            return;
        }
    }
}

/// The workload of one node: what keeps its places' counters moving.
struct Workload {
    echoes: Vec<RemotePlace<u64>>,
    stuck: RemotePlace<u64, ()>,
    _flaky: RemotePlace<(), ()>,
    store: PlaceChannel<Option<u64>, u64>,
}

fn start(node: &RemoteNode, i: usize) -> Result<Workload, Box<dyn std::error::Error>> {
    let echoes = (0..2)
        .map(|_| node.dynamic_place(module_path!(), "echo"))
        .collect::<Result<Vec<_>, _>>()?;
    let stuck: RemotePlace<u64, ()> = node.dynamic_place(module_path!(), "stuck")?;
    let flaky = supervise_place_at(
        node,
        module_path!(),
        "flaky",
        PlaceOptions::new().restart_on_exit(restart_every(0.1)),
    )?;
    let name = format!("store{i}");
    let _server: RemotePlace<Routed<Option<u64>, u64>, ()> = supervise_place_at(
        node,
        module_path!(),
        "store",
        PlaceOptions::new().named(&name),
    )?;
    // The server handle may go: the named place runs on, reachable by name.
    let store = connect_to_named_place::<Option<u64>, u64>(node, &name)?;
    Ok(Workload {
        echoes,
        stuck,
        _flaky: flaky,
        store,
    })
}

impl Workload {
    /// One round of traffic.
    fn tick(&self, round: u64) -> Result<(), ChannelError> {
        for (k, e) in self.echoes.iter().enumerate() {
            for j in 0..(10 * (k as u64 + 1)) {
                e.put_get(round * 100 + j)?;
            }
        }
        self.stuck.put(round)?;
        self.store.put_get(Some(round))?;
        Ok(())
    }
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let nodes = [
        create_place_node(
            "localhost",
            NodeOptions::new().heartbeat(Duration::from_millis(500)),
        )?,
        create_place_node(
            "localhost",
            NodeOptions::new().heartbeat(Duration::from_millis(500)),
        )?,
    ];
    let loads = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| start(n, i))
        .collect::<Result<Vec<_>, _>>()?;
    let frames = if once { 1 } else { 10 };
    for frame in 0..frames {
        // A second of traffic, then a snapshot of every node.
        for round in 0..10u64 {
            for load in &loads {
                load.tick(frame * 10 + round)?;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !once {
            // Clear the terminal and go home, as `top` does.
            print!("\x1b[2J\x1b[H");
        }
        println!("places_top: {} nodes, snapshot {}", nodes.len(), frame + 1);
        for node in &nodes {
            print!("{}", node.status()?.table());
        }
    }
    Ok(())
}
