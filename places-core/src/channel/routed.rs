//! Messages that reached a named place through one of its connections, and the way back.

use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use super::{TryPutError, Tx};
use crate::context;
use crate::error::ChannelError;
use crate::message::Message;

/// A message that reached a named place through one of its connections, with the route back to
/// that connection (Racket's `(list msg src)`).
///
/// A named place's entry receives these: `fn server(ch: PlaceChannel<(), Routed<Req, Resp>>)`.
/// Each client of `connect_to_named_place` has its own route, so replies never cross.
pub struct Routed<Req, Resp> {
    /// The client's message.
    pub msg: Req,
    /// Where the answer goes.
    pub reply: ReplyTo<Resp>,
}

/// The sending side of one connection to a named place (or of a channel, see
/// [`PlaceChannel::sender`](super::PlaceChannel::sender)); cheap to clone and keep.
pub struct ReplyTo<T> {
    tx: Arc<SendHalf<T>>,
}

/// A sender kept apart from its channel end; dropping the last one wakes an async receiver,
/// which must see the channel close.
struct SendHalf<T>(ManuallyDrop<Tx<T>>);

impl<T> Drop for SendHalf<T> {
    fn drop(&mut self) {
        // SAFETY: `0` is never used again: this is its destructor.
        if let Tx::Local {
            sender, peer_waker, ..
        } = unsafe { ManuallyDrop::take(&mut self.0) }
        {
            peer_waker.count_kept_sender(false);
            drop(sender);
            peer_waker.wake();
            peer_waker.ring();
        }
        // A remote route stays open as long as its client: replies are sent through many
        // short-lived `ReplyTo`s.
    }
}

impl<T> Clone for ReplyTo<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T> ReplyTo<T> {
    pub(crate) fn new(tx: Tx<T>) -> Self {
        if let Tx::Local { peer_waker, .. } = &tx {
            peer_waker.count_kept_sender(true);
        }
        Self {
            tx: Arc::new(SendHalf(ManuallyDrop::new(tx))),
        }
    }

    /// Sends `value` back to the connection the message came from.
    ///
    /// # Errors
    ///
    /// [`ChannelError::Closed`] or [`ChannelError::Lost`] when that client is gone, and the other
    /// errors of [`PlaceChannel::put`](super::PlaceChannel::put).
    pub fn put(&self, value: T) -> Result<(), ChannelError> {
        context::check_killed();
        self.tx.0.put(value)
    }

    /// Sends `value` only if that needs no waiting; see
    /// [`PlaceChannel::try_put`](super::PlaceChannel::try_put).
    ///
    /// # Errors
    ///
    /// As [`PlaceChannel::try_put`](super::PlaceChannel::try_put).
    pub fn try_put(&self, value: T) -> Result<(), TryPutError<T>> {
        context::check_killed();
        self.tx.0.send(value, false).map_err(|(v, error)| match v {
            Some(value) if error == ChannelError::Full => TryPutError::Full(value),
            _ => TryPutError::Failed(error),
        })
    }
}

impl<T> fmt::Debug for ReplyTo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyTo(..)")
    }
}

impl<Req: fmt::Debug, Resp> fmt::Debug for Routed<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routed")
            .field("msg", &self.msg)
            .finish_non_exhaustive()
    }
}

/// A routed message travels as its `msg` alone; the route is the connection it came on.
impl<Req: serde::Serialize, Resp> serde::Serialize for Routed<Req, Resp> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.msg.serialize(serializer)
    }
}

impl<'de, Req: serde::Deserialize<'de>, Resp: Message> serde::Deserialize<'de>
    for Routed<Req, Resp>
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let msg = Req::deserialize(deserializer)?;
        let route = crate::transport::decoding_route().ok_or_else(|| {
            serde::de::Error::custom(
                "a routed message can only be decoded by a named place's connection",
            )
        })?;
        Ok(Routed {
            msg,
            reply: ReplyTo::new(Tx::Remote {
                endpoint: route,
                put: crate::transport::put_remote::<Resp>,
            }),
        })
    }
}
