//! The runtime of `define_remote_server!`: calls with replies and deadlines, casts, and
//! `log_to_parent`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::channel::{Channel, PlaceChannel};
use crate::error::ChannelError;

/// A call to a `define_remote_server!` server as it travels: the id its reply will carry, and
/// the call (the generated `NameCall` enum). Casts, which get no reply, carry id 0.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RpcRequest<C> {
    /// The call's id on its channel; 0 for a cast.
    pub id: u64,
    /// What is asked.
    pub call: C,
}

/// A server's answer as it travels: the id of the call it answers (0 for a `log_to_parent`
/// message), and the reply (the generated `NameReply` enum).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RpcResponse<R> {
    /// The id of the call answered; 0 for a log message.
    pub id: u64,
    /// The answer.
    pub reply: R,
}

/// Why an RPC call produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The server's channel failed: the server ended, was killed, or its node is gone.
    #[error("rpc failed: {0}")]
    Channel(#[from] ChannelError),
    /// No reply came before the call's deadline. The server may still answer later; that reply
    /// is dropped when it comes (every call carries an id), so the channel stays usable.
    #[error("rpc `{call}` got no reply within {deadline:?}")]
    Deadline {
        /// The call.
        call: &'static str,
        /// The deadline it had.
        deadline: Duration,
    },
    /// The server answered the call's id with the reply of another method (a server that is
    /// not the one the client was generated for).
    #[error("rpc `{call}` got the reply of another method")]
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
        /// Puts the previous sink back however `server` ends (a panic, a kill, `places::exit`):
        /// the thread may serve another place next (fork-join members share pooled threads).
        struct Restore(Option<LogSink>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                let _ = LOG_SINK.try_with(|s| *s.borrow_mut() = previous);
            }
        }
        let _restore = Restore(LOG_SINK.with(|s| s.borrow_mut().replace(Box::new(sink))));
        server()
    }

    /// Sends `call` with a fresh id and waits for the reply with that id, showing log messages
    /// that arrive first. Several threads may call through one channel at once: each gets its
    /// own reply. A reply that comes after its call gave up is dropped.
    pub fn call<Call, Rep, C, T>(
        dest: &C,
        name: &'static str,
        call: Call,
        deadline: Option<Duration>,
        decode: impl Fn(Rep) -> Reply<T>,
    ) -> Result<T, RpcError>
    where
        C: Channel<RpcRequest<Call>, RpcResponse<Rep>> + ?Sized,
        Rep: Send + 'static,
    {
        let ch = dest.place_channel();
        let own;
        let demux = match ch.extension::<Demux<Rep>>() {
            Some(d) => d,
            None => {
                own = Demux::default();
                &own
            }
        };
        // A deadline too long to add to now is no deadline at all.
        let until = deadline.and_then(|d| Instant::now().checked_add(d).map(|at| (at, d)));
        let call_id = demux.begin();
        let _waiting = Waiting { demux, id: call_id };
        dest.put(RpcRequest { id: call_id, call })?;
        loop {
            let resp = demux.next(ch, call_id, until.map(|(at, _)| at));
            let resp = match resp {
                Ok(r) => r,
                Err(ChannelError::Timeout(_)) => {
                    let deadline = until.map(|(_, d)| d).unwrap_or_default();
                    return Err(RpcError::Deadline {
                        call: name,
                        deadline,
                    });
                }
                Err(e) => return Err(RpcError::Channel(e)),
            };
            match decode(resp.reply) {
                Reply::Value(v) => return Ok(v),
                Reply::Log(record) => record.emit(),
                Reply::Other => return Err(RpcError::WrongReply { call: name }),
            }
        }
    }

    /// Sends a cast (id 0: no reply).
    pub fn cast<Call, Rep, C>(dest: &C, call: Call) -> Result<(), RpcError>
    where
        C: Channel<RpcRequest<Call>, RpcResponse<Rep>> + ?Sized,
    {
        dest.put(RpcRequest { id: 0, call }).map_err(RpcError::from)
    }
}

/// The replies of one channel to an RPC server, sorted out between the calls waiting on it:
/// one caller at a time takes from the channel and hands each reply to the call with its id.
pub(crate) struct Demux<R> {
    state: Mutex<DemuxState<R>>,
    changed: Condvar,
}

struct DemuxState<R> {
    next_id: u64,
    /// The calls waiting for a reply.
    waiting: HashSet<u64>,
    /// Replies taken by one caller for another.
    stash: HashMap<u64, RpcResponse<R>>,
    /// A caller is taking from the channel.
    receiving: bool,
    /// The channel failed for good: every caller gets this.
    failed: Option<ChannelError>,
}

impl<R> Default for Demux<R> {
    fn default() -> Self {
        Self {
            state: Mutex::new(DemuxState {
                next_id: 1,
                waiting: HashSet::new(),
                stash: HashMap::new(),
                receiving: false,
                failed: None,
            }),
            changed: Condvar::new(),
        }
    }
}

/// Forgets a call's id when the call ends (answered or not): its late reply is then dropped.
struct Waiting<'a, R> {
    demux: &'a Demux<R>,
    id: u64,
}

impl<R> Drop for Waiting<'_, R> {
    fn drop(&mut self) {
        let mut st = self.demux.state();
        st.waiting.remove(&self.id);
        st.stash.remove(&self.id);
    }
}

impl<R> Demux<R> {
    fn state(&self) -> MutexGuard<'_, DemuxState<R>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh call id, waiting for its reply.
    fn begin(&self) -> u64 {
        let mut st = self.state();
        let id = st.next_id;
        st.next_id = st.next_id.wrapping_add(1).max(1);
        st.waiting.insert(id);
        id
    }

    /// The next response for call `id`: its reply, or a log message (id 0).
    fn next<S>(
        &self,
        ch: &PlaceChannel<S, RpcResponse<R>>,
        id: u64,
        until: Option<Instant>,
    ) -> Result<RpcResponse<R>, ChannelError> {
        let mut st = self.state();
        loop {
            if let Some(r) = st.stash.remove(&id) {
                return Ok(r);
            }
            if let Some(e) = &st.failed {
                return Err(e.clone());
            }
            let left = match until {
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(ChannelError::Timeout(Duration::ZERO)),
                },
                None => None,
            };
            if st.receiving {
                // Another caller takes from the channel; it hands over what is ours.
                let wait = left
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1));
                st = self
                    .changed
                    .wait_timeout(st, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            st.receiving = true;
            drop(st);
            let got = match left {
                None => ch.get(),
                Some(left) => ch.get_timeout(left),
            };
            st = self.state();
            st.receiving = false;
            self.changed.notify_all();
            match got {
                Ok(resp) if resp.id == id || resp.id == 0 => return Ok(resp),
                Ok(resp) => {
                    if st.waiting.contains(&resp.id) {
                        st.stash.insert(resp.id, resp);
                    } else {
                        tracing::debug!(
                            target: "places",
                            "dropped the late reply to rpc call {} (its caller gave up)",
                            resp.id
                        );
                    }
                }
                Err(e @ (ChannelError::Closed | ChannelError::Lost(_))) => {
                    st.failed = Some(e.clone());
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
}
