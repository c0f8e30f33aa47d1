//! `recv().await`: a place channel's next message for async code.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crossbeam_channel::TryRecvError;

use super::{PlaceChannel, Rx};
use crate::error::ChannelError;

/// The future of [`PlaceChannel::recv`].
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, S, R> {
    ch: &'a PlaceChannel<S, R>,
}

impl<'a, S, R> Recv<'a, S, R> {
    pub(crate) fn new(ch: &'a PlaceChannel<S, R>) -> Self {
        Self { ch }
    }
}

/// The next message if one is ready (or the end of the channel), without waiting.
fn try_once<S, R>(ch: &PlaceChannel<S, R>) -> Option<Result<R, ChannelError>> {
    if let Some(e) = ch.local_fault() {
        return Some(Err(e));
    }
    match ch.rx() {
        Rx::Local { rx, .. } => match rx.try_recv() {
            Ok(v) => {
                ch.after_local_take();
                Some(Ok(v))
            }
            Err(TryRecvError::Disconnected) => Some(Err(ch.local_closed())),
            Err(TryRecvError::Empty) => None,
        },
        Rx::Remote { endpoint, .. } => {
            if let Some(done) = ch.remote_ready(endpoint) {
                return Some(done);
            }
            loop {
                match endpoint.queue().try_recv() {
                    Ok(item) => {
                        if let Some(done) = ch.take_item(item) {
                            return Some(done);
                        }
                    }
                    Err(TryRecvError::Disconnected) => return Some(Err(endpoint.closed_error())),
                    Err(TryRecvError::Empty) => return None,
                }
            }
        }
    }
}

impl<S, R> Future for Recv<'_, S, R> {
    type Output = Result<R, ChannelError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(done) = try_once(self.ch) {
            return Poll::Ready(done);
        }
        // Register, then look again: a `put` between the first look and the registration has
        // already called `wake` on the old (absent) waker and would otherwise be missed.
        match self.ch.rx() {
            Rx::Local { waker, .. } => waker.register(cx.waker()),
            Rx::Remote { endpoint, .. } => endpoint.waker().register(cx.waker()),
        }
        match try_once(self.ch) {
            Some(done) => Poll::Ready(done),
            None => Poll::Pending,
        }
    }
}
