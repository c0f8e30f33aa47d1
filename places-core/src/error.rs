//! The error types of the local runtime, one per operation family.

use std::time::Duration;

/// Why a channel operation did not produce a message.
///
/// A closed peer is always reported as [`ChannelError::Closed`], or as [`ChannelError::Lost`]
/// naming the node when the peer was on a node whose connection was lost (also for a local
/// end whose peer was sent to that node): no `get` ever waits for a peer that can no longer
/// send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The other end of the channel is gone (its place ended, panicked, was killed, or the
    /// channel end was dropped) and no message is left to read.
    #[error("place channel closed: the other end is gone and no message is left")]
    Closed,
    /// [`try_get`](crate::PlaceChannel::try_get) found no message waiting.
    #[error("no message is waiting on the place channel")]
    Empty,
    /// [`get_timeout`](crate::PlaceChannel::get_timeout) saw no message within the limit.
    #[error("no message arrived within {0:?}")]
    Timeout(Duration),
    /// The calling place was sent a break by [`Place::break_place`](crate::Place::break_place)
    /// (or [`break_place_with`](crate::Place::break_place_with)) while it waited; the message, if
    /// one comes, stays in the channel. The kind says which break (Racket's `#f`, `'hang-up`,
    /// `'terminate`).
    #[error("the place was sent a {0} while waiting for a message")]
    Break(crate::BreakKind),
    /// The channel's peer was on another node that is gone or unreachable; the text says which
    /// node and what happened.
    #[error("place channel lost: {0}")]
    Lost(String),
    /// The message could not be encoded for another node, or is larger than the receiving node
    /// accepts (the text says why); nothing was sent.
    #[error("message could not be sent to another node: {0}")]
    Unsendable(String),
    /// [`try_put`](crate::PlaceChannel::try_put) found no room: the channel is bounded and full,
    /// or its receiver on another node holds a window's worth of messages it has not taken.
    #[error("the place channel has no room for another message now")]
    Full,
    /// The receiver on another node dropped a message this end sent (it did not decode, its
    /// `Deserialize` panicked, it exceeded a limit, or the channel was unknown there); the
    /// channel itself goes on. Reported once, by the next `put` (which still sends its own
    /// value) or `get` (which takes no message) on this end.
    #[error("a `{message}` sent on this place channel was dropped by the receiver: {reason}")]
    Dropped {
        /// The type of the messages this end sends.
        message: &'static str,
        /// The receiver's reason.
        reason: String,
    },
}

/// Why a place could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// No `#[place]` entry is registered under the key.
    #[error("no place entry `{key}` is registered{}", nearest_hint(.nearest))]
    UnknownEntry {
        /// The key that was asked for, as `module::name`.
        key: String,
        /// Registered keys that are spelled most like it, nearest first.
        nearest: Vec<String>,
    },
    /// The entry exists but exchanges other message types than the caller asked for.
    #[error(
        "place entry `{key}` exchanges other messages than requested: the entry receives `{entry_receives}` and sends `{entry_sends}`, \
         but the caller asked for a place that receives `{asked_receives}` and sends `{asked_sends}`"
    )]
    TypeMismatch {
        /// The key of the entry, as `module::name`.
        key: String,
        /// The type the registered entry receives from its creator.
        entry_receives: String,
        /// The type the registered entry sends to its creator.
        entry_sends: String,
        /// The type the caller wants to send to the place.
        asked_receives: String,
        /// The type the caller wants to receive from the place.
        asked_sends: String,
    },
    /// Two entries were registered under one key (for example two versions of one crate).
    #[error(
        "place entry `{key}` is registered twice: at {first} and at {second}; rename one of them"
    )]
    Duplicate {
        /// The key registered twice.
        key: String,
        /// Where the first definition is (`file:line`).
        first: String,
        /// Where the second definition is (`file:line`).
        second: String,
    },
    /// The operating system refused to start the place's thread.
    #[error("could not start a thread for place `{key}`: {source}")]
    Thread {
        /// The entry that was being started.
        key: String,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },
}

fn nearest_hint(nearest: &[String]) -> String {
    if nearest.is_empty() {
        "; no `#[place]` entry is registered in this executable".to_owned()
    } else {
        let list: Vec<String> = nearest.iter().map(|k| format!("`{k}`")).collect();
        format!("; the nearest registered entries are {}", list.join(", "))
    }
}

/// Why a message could not be encoded or decoded by the [`codec`](crate::codec).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("could not encode a message: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The bytes are not a valid encoding of the expected type.
    #[error("could not decode a message: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The bytes hold a whole value and then more.
    #[error("message has unexpected bytes after its end")]
    Trailing,
    /// The payload was encoded with a codec version this build does not read.
    #[error("message encoded with codec version {found}, this build reads version {expected}")]
    Version {
        /// The version found in the payload.
        found: u8,
        /// The version this build writes and reads.
        expected: u8,
    },
}

/// The kinds of break a place can be sent (Racket's `place-break` with `#f`, `'hang-up` or
/// `'terminate`); the place sees it as [`ChannelError::Break`] and decides what it means, as a
/// Racket place's break handler would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakKind {
    /// A plain break (Racket's `exn:break`, like Ctrl-C).
    Break,
    /// A hang-up (Racket's `exn:break:hang-up`, like SIGHUP).
    HangUp,
    /// A request to terminate (Racket's `exn:break:terminate`, like SIGTERM).
    Terminate,
}

impl std::fmt::Display for BreakKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BreakKind::Break => "break",
            BreakKind::HangUp => "hang-up break",
            BreakKind::Terminate => "terminate break",
        })
    }
}
