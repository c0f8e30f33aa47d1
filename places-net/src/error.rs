//! The errors of the network layer.

use std::time::Duration;

/// Why a node could not be started, reached, or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The node's executable could not be started.
    #[error("could not start node `{host}` with `{exe}`: {source}")]
    Launch {
        /// The host.
        host: String,
        /// The program that was started.
        exe: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node process ended before it was ready.
    #[error("node `{host}` exited before it was ready ({status}){}", stderr_hint(.output))]
    ExitedEarly {
        /// The host.
        host: String,
        /// Its exit status.
        status: String,
        /// What it printed, if anything was captured.
        output: String,
    },
    /// The program started as the node never entered node mode: its `main` does not call
    /// `places::init()` (or use `#[places::main]`) before it uses places. It exited at once
    /// instead of starting nodes of its own.
    #[error("node `{host}` could not start: the node program `{exe}` does not call `places::init()` or use `#[places::main]` before it uses places (its `main` must enter node mode first)")]
    NotANodeProgram {
        /// The host.
        host: String,
        /// The program.
        exe: String,
    },
    /// The node did not report readiness in time.
    #[error("node `{host}` was not ready within {timeout:?}")]
    NotReady {
        /// The host.
        host: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// The node's port could not be reached.
    #[error("could not connect to node `{addr}` after {tries} tries: {source}")]
    Connect {
        /// Where.
        addr: String,
        /// How often it was tried.
        tries: u32,
        /// The last error.
        #[source]
        source: std::io::Error,
    },
    /// The node could not listen on its port.
    #[error("node could not listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The peer refused the handshake; the text is its reason.
    #[error("the node refused the connection: {0}")]
    Refused(String),
    /// The handshake failed; the text says at which step and why.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The two executables register different place entries.
    #[error("the node runs a different executable: {0}")]
    Registry(String),
    /// A cookie that is not 64 hex digits.
    #[error("a cluster cookie must be 64 hex digits")]
    BadCookie,
    /// The operating system gave no randomness.
    #[error("no randomness for a cookie or nonce: {0}")]
    Random(String),
    /// TLS material that cannot be read or used, or a TLS handshake that failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The node refused to start an entry.
    #[error("node `{node}` could not start `{key}`: {reason}")]
    Spawn {
        /// The node.
        node: String,
        /// The entry.
        key: String,
        /// The node's reason.
        reason: String,
    },
    /// The connection to the node is gone.
    #[error("node `{node}` is gone: {reason}")]
    Lost {
        /// The node.
        node: String,
        /// What happened.
        reason: String,
    },
}

fn stderr_hint(output: &str) -> String {
    if output.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", output.trim())
    }
}
