//! **Nodes, the wire protocol and remote places for `places`.**
//!
//! A node is this same executable started in node mode: [`create_place_node`] starts one (on
//! `localhost` for now), connects, and runs an authenticated handshake; [`RemoteNode::dynamic_place`]
//! starts a registered entry there and returns a [`RemotePlace`] whose channel works like a local
//! place's. Everything users need is re-exported by the `places` crate.

mod connection;
mod error;
mod event_loop;
pub mod handshake;
mod node;
mod remote;
mod router;
pub mod wire;

pub use error::NetError;
pub use handshake::Cookie;
pub use node::{run_if_requested, LISTEN_ENV, NODE_ENV, READY_LINE};
pub use remote::{
    cluster_cookie, connect_to_named_place, create_place_node, restart_every, spawn_node_at,
    spawn_node_supervise_place_at, spawn_node_with_place_at, spawn_nodes_join, spawn_remote_node,
    ssh_bin_path, supervise_place_at, supervise_process_at, supervise_thread_at, NodeOptions,
    PendingNode, PlaceOptions, RemoteNode, RemotePlace, RemoteProcess, RestartEvery, RestartOnExit,
    DEFAULT_ROUTER_PORT,
};
pub use router::{
    after_seconds, every_seconds, mr_connect_to, mr_spawn_remote_node,
    mr_supervise_named_dynamic_place_at, on_channel, start_message_router_thread, AfterSeconds,
    EventContainer, EverySeconds, IntoEventContainer, MessageRouter, OnChannel, RouterThread,
    StopToken, Stopper,
};
