//! **RMPI for `places`: communicator groups across nodes, collectives, map-reduce and nested data
//! parallelism.**
//!
//! This crate is an empty placeholder in this release: everything it will provide is tracked as an
//! open issue, and nothing here is part of the public API yet.
