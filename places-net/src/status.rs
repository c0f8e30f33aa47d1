//! A view of a running node: its process, its places and their traffic, as a typed snapshot
//! ([`RemoteNode::status`](crate::RemoteNode::status)), the way Erlang's observer or Ray's
//! dashboard show a cluster.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A snapshot of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's name, as errors and logs give it.
    pub name: String,
    /// The address its router listens on.
    pub addr: String,
    /// Its process id.
    pub pid: u32,
    /// How long its process has run.
    pub uptime: Duration,
    /// How many times the node was restarted (by this program's supervision).
    pub restarts: u64,
    /// The last heartbeat's round trip, once one came back.
    pub heartbeat_rtt: Option<Duration>,
    /// Every place running on the node, for whichever program started it, in start order.
    pub places: Vec<PlaceStatus>,
    /// The names of its named places, sorted.
    pub named: Vec<String>,
}

/// A snapshot of one place on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceStatus {
    /// Its entry, `module::name`.
    pub key: String,
    /// Its name, for a named place.
    pub name: Option<String>,
    /// Whether it runs or is ending.
    pub state: PlaceState,
    /// How long this instance has run.
    pub uptime: Duration,
    /// How many times it was restarted before this instance (by its supervisor).
    pub restarts: u32,
    /// Messages that arrived for it and wait to be taken.
    pub queued: u64,
    /// Messages and bytes it was sent (for a named place: over all its connections).
    pub messages_in: u64,
    /// See `messages_in`.
    pub bytes_in: u64,
    /// Messages and bytes it sent.
    pub messages_out: u64,
    /// See `messages_out`.
    pub bytes_out: u64,
}

/// What a place is doing, as far as its node can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PlaceState {
    /// It runs.
    Running,
    /// It has ended (returned, panicked or was killed) and is being cleaned up.
    Ending,
}

impl NodeStatus {
    /// The snapshot as a table, one line per place, for a terminal.
    pub fn table(&self) -> String {
        let mut out = format!(
            "node {}  pid {}  up {:.1} s  restarts {}  heartbeat {}\n",
            self.name,
            self.pid,
            self.uptime.as_secs_f64(),
            self.restarts,
            self.heartbeat_rtt.map_or_else(
                || "-".to_owned(),
                |d| format!("{:.0} us", d.as_secs_f64() * 1e6)
            ),
        );
        out.push_str(&format!(
            "  {:<40} {:<12} {:<8} {:>8} {:>8} {:>7} {:>10} {:>10} {:>8}\n",
            "entry", "name", "state", "up (s)", "restarts", "queued", "in", "out", "msgs in"
        ));
        for p in &self.places {
            out.push_str(&format!(
                "  {:<40} {:<12} {:<8} {:>8.1} {:>8} {:>7} {:>10} {:>10} {:>8}\n",
                p.key,
                p.name.as_deref().unwrap_or("-"),
                format!("{:?}", p.state),
                p.uptime.as_secs_f64(),
                p.restarts,
                p.queued,
                bytes(p.bytes_in),
                bytes(p.bytes_out),
                p.messages_in,
            ));
        }
        out
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}
