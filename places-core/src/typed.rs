//! Receiving by kind (Racket's `named-place-typed-channel%` and `tc-get`), and Racket's
//! async bi-channels.

use std::marker::PhantomData;

use crate::channel::{place_channel, Channel, PlaceChannel};
use crate::error::ChannelError;
use crate::message::Message;
use crate::stash::Stash;

/// A channel whose messages are taken by kind: [`get`](Self::get) returns the first message of
/// the kind asked for and keeps the others, in order, for later calls.
///
/// The kind of a message is what `kind_of` says it is, typically its enum variant.
///
/// # Examples
///
/// ```
/// use places::{place_channel, TypedChannel};
///
/// #[places::message]
/// #[derive(Debug, PartialEq)]
/// enum Event { Log(String), Result(u32) }
///
/// #[derive(PartialEq)]
/// enum Kind { Log, Result }
///
/// let (here, there) = place_channel::<(), Event>();
/// there.put(Event::Log("starting".into())).unwrap();
/// there.put(Event::Result(42)).unwrap();
///
/// let tc = TypedChannel::new(here, |e: &Event| match e {
///     Event::Log(_) => Kind::Log,
///     Event::Result(_) => Kind::Result,
/// });
/// assert_eq!(tc.get(Kind::Result).unwrap(), Event::Result(42));
/// assert_eq!(tc.get(Kind::Log).unwrap(), Event::Log("starting".into()));
/// ```
pub struct TypedChannel<C, S, R, K, F> {
    channel: C,
    kind_of: F,
    pending: Stash<R>,
    _types: PhantomData<fn(S) -> K>,
}

impl<C, S, R, K, F> TypedChannel<C, S, R, K, F>
where
    C: Channel<S, R>,
    F: Fn(&R) -> K,
    K: PartialEq,
{
    /// Wraps `channel`, telling message kinds apart with `kind_of`.
    pub fn new(channel: C, kind_of: F) -> Self {
        Self {
            channel,
            kind_of,
            pending: Stash::new(),
            _types: PhantomData,
        }
    }

    /// The first message of `kind`: one kept from an earlier call, or the next of that kind to
    /// arrive (keeping the others that arrive first).
    ///
    /// # Errors
    ///
    /// The channel's error when it closes before a message of `kind` comes.
    pub fn get(&self, kind: K) -> Result<R, ChannelError> {
        self.pending
            .take_or_receive(|m| (self.kind_of)(m) == kind, || self.channel.get())
    }

    /// The next message of any kind (kept ones first).
    ///
    /// # Errors
    ///
    /// The channel's error when it closes.
    pub fn get_any(&self) -> Result<R, ChannelError> {
        match self.pending.pop() {
            Some(m) => Ok(m),
            None => self.channel.get(),
        }
    }

    /// Sends on the channel.
    ///
    /// # Errors
    ///
    /// The channel's error.
    pub fn put(&self, value: S) -> Result<(), ChannelError> {
        self.channel.put(value)
    }

    /// The wrapped channel and the messages kept so far.
    pub fn into_parts(self) -> (C, Vec<R>) {
        (self.channel, self.pending.into_vec())
    }
}

/// Racket's async bi-channel: two cross-linked ends usable from threads and from async code
/// alike (`put`, `get`, and `recv().await` on either end). This is [`place_channel`]; the name is
/// kept for readers of the Racket reference.
///
/// # Examples
///
/// ```
/// let (a, b) = places::async_bi_channel::<u32, u32>();
/// std::thread::spawn(move || b.put(b.get().unwrap() + 1));
/// assert_eq!(a.put_get(1).unwrap(), 2);
/// ```
pub fn async_bi_channel<A: Message, B: Message>() -> (PlaceChannel<A, B>, PlaceChannel<B, A>) {
    place_channel()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_taken_in_order_and_others_kept() {
        let (here, there) = crate::channel::raw_pair::<(), u32>();
        for v in [1u32, 2, 10, 3, 20] {
            there.put(v).unwrap();
        }
        drop(there);
        let tc = TypedChannel::new(here, |v: &u32| *v >= 10);
        assert_eq!(tc.get(true).unwrap(), 10);
        assert_eq!(tc.get(false).unwrap(), 1);
        assert_eq!(tc.get(true).unwrap(), 20);
        assert_eq!(tc.get_any().unwrap(), 2);
        assert_eq!(tc.get(false).unwrap(), 3);
        assert_eq!(tc.get(true), Err(ChannelError::Closed));
    }
}
