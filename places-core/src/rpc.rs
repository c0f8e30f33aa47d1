//! The runtime of `define_remote_server!`: calls with replies and deadlines, casts, and
//! `log_to_parent`.

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, Instant};

use crate::channel::Channel;
use crate::error::ChannelError;

/// Why an RPC call produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The server's channel failed: the server ended, was killed, or its node is gone.
    #[error("rpc failed: {0}")]
    Channel(#[from] ChannelError),
    /// No reply came before the call's deadline. The server may still answer later, and the
    /// next call on the same channel would then be handed that late reply (or fail with
    /// [`RpcError::WrongReply`]): after a deadline, talk to the server on a fresh channel.
    #[error("rpc `{call}` got no reply within {deadline:?}")]
    Deadline {
        /// The call.
        call: &'static str,
        /// The deadline it had.
        deadline: Duration,
    },
    /// The server answered with the reply of another call (a protocol error: two callers share
    /// one connection without taking turns).
    #[error("rpc `{call}` got the reply of another call")]
    WrongReply {
        /// The call.
        call: &'static str,
    },
}

/// How serious a [`log_to_parent`] message is (Racket's log levels).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Severity {
    /// Detail for debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something to look at.
    Warning,
    /// A failure.
    Error,
    /// A failure that ends the program.
    Fatal,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Fatal => "fatal",
        })
    }
}

/// A log message on its way to the root node (see [`log_message`] and [`log_to_parent`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    /// How serious it is.
    pub severity: Severity,
    /// The text.
    pub message: String,
    /// Where it comes from, as Racket prefixes it: `PLACE host:port` of the node whose place
    /// logged it; `None` for this process.
    pub origin: Option<String>,
}

impl LogRecord {
    /// A record from this process.
    pub fn new(severity: Severity, message: impl Into<String>) -> Self {
        Self {
            severity,
            message: message.into(),
            origin: None,
        }
    }

    /// Passes the record on toward the root node: see [`log_message`].
    pub fn emit(&self) {
        log_record(self.clone());
    }
}

/// Where records go in a process that is a node: to its parent. Set by the network layer.
type Forwarder = Box<dyn Fn(LogRecord) + Send + Sync>;

static FORWARDER: std::sync::OnceLock<Forwarder> = std::sync::OnceLock::new();

/// Makes this process pass every log record on with `forward` (a node, to its parent) instead
/// of emitting it here. Used by the network layer's node mode; the first call wins.
#[doc(hidden)]
pub fn set_log_forwarder(forward: impl Fn(LogRecord) + Send + Sync + 'static) {
    let _ = FORWARDER.set(Box::new(forward));
}

/// Logs a message at the root node (Racket's `log-message`): in a program, it becomes a
/// `tracing` event on its subscriber; in a node, it travels to the node's parent, and from
/// there on to the root, marked with the node it came from (`PLACE host:port`).
///
/// # Examples
///
/// ```
/// places::log_message(places::Severity::Info, "starting the workers");
/// ```
pub fn log_message(severity: Severity, message: impl Into<String>) {
    log_record(LogRecord::new(severity, message));
}

/// Passes a record on: forwarded from a node, emitted as a `tracing` event in the root.
pub fn log_record(record: LogRecord) {
    match FORWARDER.get() {
        Some(forward) => forward(record),
        None => {
            let text = match &record.origin {
                Some(origin) => format!("{origin}: {}", record.message),
                None => record.message,
            };
            match record.severity {
                Severity::Debug => tracing::debug!(target: "places", "{text}"),
                Severity::Info => tracing::info!(target: "places", "{text}"),
                Severity::Warning => tracing::warn!(target: "places", "{text}"),
                Severity::Error | Severity::Fatal => {
                    tracing::error!(target: "places", fatal = record.severity == Severity::Fatal, "{text}")
                }
            }
        }
    }
}

/// Where `log_to_parent` sends, inside a server loop.
type LogSink = Box<dyn Fn(LogRecord)>;

thread_local! {
    static LOG_SINK: RefCell<Option<LogSink>> = const { RefCell::new(None) };
}

/// Sends a log message from inside a `define_remote_server!` body to the server's parent (the
/// program that called it), which passes it on as [`log_message`] does. Outside a server it is
/// [`log_message`].
///
/// # Examples
///
/// ```
/// places::log_to_parent("warming up", places::Severity::Info);
/// ```
pub fn log_to_parent(message: impl Into<String>, severity: Severity) {
    let record = LogRecord::new(severity, message);
    let unsent = LOG_SINK.with(|s| match s.borrow().as_ref() {
        Some(sink) => {
            sink(record);
            None
        }
        None => Some(record),
    });
    if let Some(record) = unsent {
        record.emit();
    }
}

/// What a reply decoder makes of a server's message.
#[doc(hidden)]
pub enum Reply<T> {
    /// The reply of this call.
    Value(T),
    /// A log message that came first.
    Log(LogRecord),
    /// Some other call's reply.
    Other,
}

/// The runtime of the macros' expansions.
#[doc(hidden)]
pub mod support {
    use super::*;

    /// Runs `server` with `sink` as the destination of `log_to_parent`.
    pub fn with_server_log<R>(sink: impl Fn(LogRecord) + 'static, server: impl FnOnce() -> R) -> R {
        let previous = LOG_SINK.with(|s| s.borrow_mut().replace(Box::new(sink)));
        let out = server();
        LOG_SINK.with(|s| *s.borrow_mut() = previous);
        out
    }

    /// Sends `request` and waits for its reply, showing log messages that arrive first.
    pub fn call<Req, Resp, C, T>(
        dest: &C,
        call: &'static str,
        request: Req,
        deadline: Option<Duration>,
        decode: impl Fn(Resp) -> Reply<T>,
    ) -> Result<T, RpcError>
    where
        C: Channel<Req, Resp> + ?Sized,
    {
        dest.put(request)?;
        // A deadline too long to add to now is no deadline at all.
        let until = deadline.and_then(|d| Instant::now().checked_add(d).map(|at| (at, d)));
        loop {
            let resp = match until {
                None => dest.get()?,
                Some((at, d)) => {
                    let left = at.saturating_duration_since(Instant::now());
                    match dest.get_timeout(left) {
                        Err(ChannelError::Timeout(_)) => {
                            return Err(RpcError::Deadline { call, deadline: d })
                        }
                        other => other?,
                    }
                }
            };
            match decode(resp) {
                Reply::Value(v) => return Ok(v),
                Reply::Log(record) => record.emit(),
                Reply::Other => return Err(RpcError::WrongReply { call }),
            }
        }
    }

    /// Sends a cast.
    pub fn cast<Req, Resp, C>(dest: &C, request: Req) -> Result<(), RpcError>
    where
        C: Channel<Req, Resp> + ?Sized,
    {
        dest.put(request).map_err(RpcError::from)
    }
}
