//! The contract between place channels and the network layer: how a channel crosses a
//! connection to another process. `places-net` implements [`Link`] (one authenticated connection);
//! everything else here is the part of the protocol that channels themselves follow.
//!
//! # The rules
//!
//! **Ids.** Every channel that crosses a link has an id on that link. The side that started the
//! connection allocates odd ids, the side that accepted it even ones ([`Link::next_id`]), so both
//! can open channels without asking. The side that allocates an id registers its [`Endpoint`]
//! in the link's [`ChannelTable`] before it sends anything that names the id.
//!
//! **Places and connections.** A spawn or a connection to a named place is requested on a fresh
//! id; the node registers the place's endpoint (or, for a named place, a *route* into the place's
//! queue) before it answers, so no message for the id arrives before its endpoint exists.
//!
//! **Channels inside messages.** A message names, in its head, the ids of the channel ends inside
//! it; the sender has registered them (bridged to the ends, see [`forward`](self)). When the first
//! frame of the message arrives, the receiver registers a *pending* endpoint for each, before any
//! later frame is read, so data on them never finds an unknown id. Decoding the message claims
//! them; a message dropped without being decoded (its channel is closed, it does not decode, it
//! exceeds a limit) closes the ids it did not claim. An entry of that list with the top bit set is no id but the token of a
//! channel end handed over from a third node (see [`handoff`]): it is kept for the message the
//! same way, and closed the same way.
//!
//! **Close.** An end that goes away sends `Close` for its id. Both sides send exactly one `Close`
//! per id and forget the id once they have both sent and received one; in between the id stays as
//! a tombstone, so that data still in flight for it is dropped quietly rather than taken for bad
//! input. After the peer's `Close`, a `put` fails with `Closed` and a `get` takes what is queued,
//! then fails with `Closed`, exactly as a local channel whose peer is gone. A named place that
//! ends closes every route into it; a connection that is lost closes every endpoint on it with
//! [`ChannelError::Lost`] naming the node.
//!
//! **Credit.** Each endpoint has a receive [`Window`] (bytes and messages). A sender may *start* a
//! message while what it has sent on the channel is below the limits the receiver granted
//! (initially one window); a message may be larger than the window, so what a receiver holds is at
//! most a window plus one message. A message costs its body's bytes plus [`CARRIED_COST`] for
//! each channel end inside it (at most [`MAX_CARRIED`] of them). As the receiver's consumer takes messages, the receiver raises
//! the limits with a `Credit` frame (after half a window). A message that starts beyond the
//! granted limits is dropped with an error.
//!
//! **Errors.** A receiver that drops a message (it does not decode, its `Deserialize` panics, it
//! exceeds a limit, its channel is unknown) tells the sender with an `Error` frame carrying the
//! reason; the sender's next `put` or `get` on that channel returns
//! [`ChannelError::Dropped`] naming the message type and the reason. The connection and its other
//! channels are untouched: a connection closes only for what breaks the framing itself.
//!
//! # Direct hand-offs
//!
//! **Channel ends that travel on.** A node that bridges an end gives it a ticket (a token); a
//! holder that sends such an end on to a third node asks the first to push it there over a
//! direct link, and the message names the token in place of an id: see [`handoff`].
//!
//! **Who runs what.** The network layer's event loop only moves bytes: it queues each message,
//! undecoded, on its endpoint and never waits. While a thread polls for a message from the
//! network, it may move the bytes itself instead ([`progress`]). Decoding (user `Deserialize` code) runs on the
//! thread that takes the message, and writes run on the thread that puts it; control frames
//! (closes, credits, errors) are queued on the link and never block their sender.

mod endpoint;
mod forward;
pub mod handoff;
mod incoming;
pub mod progress;
pub(crate) mod splice;
mod table;

use std::sync::Arc;

use crate::error::ChannelError;

pub use crate::place::PlaceEnd;
pub(crate) use endpoint::Item;
pub use endpoint::{Endpoint, EndpointStats};
pub(crate) use forward::{decoding_route, put_remote, relay, PairHook};
pub use incoming::Incoming;
pub(crate) use incoming::{decode_incoming, encoding_for};
pub use table::{ChannelTable, Delivery};

/// The limits of a channel's receiving side: how much a sender may have sent that the receiver has
/// not taken yet, in bytes (of encoded messages) and in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// Bytes of encoded messages.
    pub bytes: u64,
    /// Messages.
    pub messages: u64,
}

impl Window {
    /// The window of a channel unless configured otherwise: 4 MiB or 1024 messages.
    pub const DEFAULT: Window = Window {
        bytes: 4 << 20,
        messages: 1024,
    };

    /// A window of at least one byte and one message.
    pub fn new(bytes: u64, messages: u64) -> Self {
        Self {
            bytes: bytes.max(1),
            messages: messages.max(1),
        }
    }
}

impl Default for Window {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one side of a link announces in the handshake: how much it accepts on each channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings {
    /// The receive window of every channel on the link (unless a channel says otherwise).
    pub window: Window,
    /// The largest message this side accepts, in encoded bytes.
    pub max_message: u64,
}

impl Settings {
    /// The largest message a link accepts unless configured otherwise: 4 GiB.
    pub const DEFAULT_MAX_MESSAGE: u64 = 4 << 30;
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            window: Window::DEFAULT,
            max_message: Self::DEFAULT_MAX_MESSAGE,
        }
    }
}

/// A frame that concerns one channel and carries no message: what [`Link::send_control`] queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// This side's end of the channel is gone.
    Close,
    /// The sender may go on until it has sent `bytes` bytes and `messages` messages in all.
    Credit {
        /// The new byte limit (a running total).
        bytes: u64,
        /// The new message limit (a running total).
        messages: u64,
    },
    /// A message the peer sent on the channel was dropped; the text says why.
    Error(String),
    /// Push the channel end behind this channel on to the node listening at `to`, for the
    /// holder of the ticket with `token` (see [`handoff`](self#direct-hand-offs)); `attempt`
    /// comes back in the answer.
    Handoff {
        /// The ticket's token.
        token: u64,
        /// The holder's attempt.
        attempt: u64,
        /// Where the next holder listens.
        to: String,
    },
    /// The end was pushed on for handoff `attempt`: nothing more comes on this channel.
    HandedOff {
        /// The holder's attempt.
        attempt: u64,
    },
    /// The end could not be pushed on for handoff `attempt`: it stays bridged.
    Kept {
        /// The holder's attempt.
        attempt: u64,
        /// Why.
        why: String,
    },
    /// The handoff with this token does not happen: go on as before.
    Resume(u64),
    /// The message with the ticket for this token went out: the end's relays go on with the
    /// channel opened at the next holder.
    Commit(u64),
    /// This (fresh) channel carries the end given up for the ticket with this token, until a
    /// message naming the token comes.
    Adopt(u64),
    /// The end behind this channel (a bridge here) goes to the node listening at `to`: open a
    /// channel there for `token` and, once the message naming it is out (`Commit`), send on
    /// it instead (see [`handoff`](self#direct-hand-offs)); `attempt` comes back in the
    /// answer (`HandedOff` or `Kept`).
    Repoint {
        /// The token the channel at the next holder is adopted under.
        token: u64,
        /// The bridging side's attempt.
        attempt: u64,
        /// Where the next holder listens.
        to: String,
    },
    /// This side sends nothing more on the channel, and still takes what comes (its messages
    /// go another way now).
    Moved,
}

/// One connection to another process, as the channels that cross it see it. Implemented by the
/// network layer; see the [module docs](self) for the protocol it carries.
pub trait Link: Send + Sync + 'static {
    /// The peer's name, for errors (for example `localhost (127.0.0.1:40211)`).
    fn peer(&self) -> &str;

    /// What this side announced: its receive window and largest message.
    fn settings(&self) -> Settings;

    /// What the peer announced.
    fn peer_settings(&self) -> Settings;

    /// The link's channels.
    fn table(&self) -> &ChannelTable;

    /// A fresh channel id of this side's parity.
    fn next_id(&self) -> u64;

    /// Writes one message on channel `id`: its encoding byte, the ids of the channel ends inside
    /// it, and its body, in as many fragments as it takes. Waits while the connection cannot take
    /// more bytes (never for credit: that is the endpoint's business).
    ///
    /// # Errors
    ///
    /// [`ChannelError::Lost`] (naming the node) when the connection is gone.
    fn send_message(
        &self,
        id: u64,
        encoding: u8,
        carried: &[u64],
        body: &[u8],
    ) -> Result<(), ChannelError>;

    /// Like [`send_message`](Self::send_message), but only if the message can be sent without
    /// waiting (queued for the connection's writer, say): `None` when it cannot, and then
    /// nothing was sent. The default never can.
    fn send_message_now(
        &self,
        id: u64,
        encoding: u8,
        carried: &[u64],
        body: &[u8],
    ) -> Option<Result<(), ChannelError>> {
        let _ = (id, encoding, carried, body);
        None
    }

    /// Queues a control frame for channel `id`. Never waits; does nothing once the link is lost.
    fn send_control(&self, id: u64, control: Control);

    /// Why the link is gone, if it is.
    fn lost(&self) -> Option<String>;

    /// Where the peer listens, when this side knows it (it connected there): a channel end
    /// sent to the peer may then be pushed there directly (see [`handoff`]).
    fn peer_listens_at(&self) -> Option<String> {
        None
    }

    /// Whether the peer is on this host (the connection is over loopback).
    fn over_loopback(&self) -> bool {
        false
    }
}

/// The most channel ends one message may carry.
pub const MAX_CARRIED: usize = 4096;

/// The credit (in bytes) each channel end inside a message costs, on top of the message's
/// body: a channel end becomes an endpoint on the receiving side, which a sender must not get
/// for free.
pub const CARRIED_COST: u64 = 1024;

/// The credit a message of `body` bytes carrying `carried` channel ends takes.
pub(crate) fn charge(body: usize, carried: usize) -> u64 {
    body as u64 + carried as u64 * CARRIED_COST
}

/// The error of a link that is gone: [`ChannelError::Lost`] naming its peer.
pub(crate) fn lost_error(link: &dyn Link, reason: &str) -> ChannelError {
    ChannelError::Lost(format!("node `{}` is gone: {reason}", link.peer()))
}

/// A link's handle as the endpoints keep it.
pub type LinkRef = Arc<dyn Link>;
