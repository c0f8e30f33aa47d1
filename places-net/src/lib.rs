//! **Nodes, launchers, the message router and remote places for `places`.**
//!
//! This crate is the home of the distributed half of the project (remote nodes over TCP and ssh,
//! named places, supervision). It is an empty placeholder in this release: everything it will
//! provide is tracked as an open issue, and nothing here is part of the public API yet.
