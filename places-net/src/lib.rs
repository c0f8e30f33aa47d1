//! **Nodes, the wire protocol and remote places for `places`.**
//!
//! A node is this same executable started in node mode: [`create_place_node`] starts one (on
//! this host, over ssh, or through a command template), connects, and runs an authenticated
//! handshake; [`RemoteNode::dynamic_place`] starts a registered entry there and returns a
//! [`RemotePlace`] whose channel works like a local place's. Everything users need is
//! re-exported by the `places` crate.
//!
//! The layout follows the way a node is used: [`launch`](self) (options and launchers),
//! `client` (the creator's side: nodes and their places), `node` (the node's side: the
//! router), `connection` (one link: the writer, the reader), `supervise` (restart policies and
//! supervisors), [`wire`] (every wire constant) and [`handshake`].

mod client;
mod connection;
mod error;
mod event_loop;
mod fork_join;
pub mod handshake;
mod launch;
pub mod mesh;
mod node;
mod router;
mod status;
mod supervise;
pub mod tls;
pub mod wire;

pub use client::{
    connect_to_named_place, create_place_node, spawn_node_at, spawn_node_supervise_place_at,
    spawn_node_with_place_at, spawn_nodes_join, spawn_remote_node, NodeAddr, NodeDest, PendingNode,
    RemoteNode, RemotePlace, MISSED_HEARTBEATS,
};
pub use error::NetError;
pub use fork_join::{
    fork_join_member_on, fork_join_on, kill_members, run_group, GroupMember, MemberFailure,
};
pub use handshake::Cookie;
pub use launch::{cluster_cookie, ssh_bin_path, NodeOptions, DEFAULT_ROUTER_PORT};
pub use mesh::MeshInvitation;
pub use node::{
    run_if_requested, COOKIE_FILE_ENV, HAND_OFF_ENV, LISTEN_ENV, NODE_ENV, READY_LINE,
    SETTINGS_ENV, STANDALONE, TLS_DIR_ENV, TLS_ENV, TLS_ON_STDIN,
};
pub use router::{
    after_seconds, every_seconds, mr_connect_to, mr_spawn_remote_node,
    mr_supervise_named_dynamic_place_at, on_channel, start_message_router_thread, AfterSeconds,
    EventContainer, EverySeconds, IntoEventContainer, MessageRouter, OnChannel, RouterThread,
    StopToken, Stopper,
};
pub use status::{NodeStatus, PlaceState, PlaceStatus};
pub use supervise::{
    restart_every, supervise_place_at, supervise_process_at, supervise_thread_at, PlaceOptions,
    RemoteProcess, RestartEvery, RestartOnExit,
};
pub use tls::{cluster_tls, use_cluster_tls, Tls};
