//! Non-blocking point-to-point operations (MPI's `MPI_Isend`, `MPI_Irecv`, `MPI_Test`,
//! `MPI_Wait`, `MPI_Waitany`, `MPI_Waitall`).

use std::time::Duration;

use places_core::{Message, Tag};

use crate::{Group, RmpiError};

/// A send started by [`isend`](crate::Collectives::isend). Sends on a `Comm` are buffered: the message is queued for the
/// peer when `isend` returns (at once, unless the link to that peer already holds its bound of
/// unread messages, in which case `isend` waits for room as `send` does), so the request is
/// complete from the start; it exists so that code written against MPI's requests reads the
/// same.
#[derive(Debug)]
#[must_use = "a request is completed by `wait` or `test`"]
pub struct SendRequest(pub(crate) ());

impl SendRequest {
    /// Whether the send is complete: always, since the message was queued by `isend`.
    pub fn test(&mut self) -> bool {
        true
    }

    /// Completes the send.
    pub fn wait(self) {}
}

/// A receive started by [`irecv`](crate::Collectives::irecv) or
/// [`irecv_tagged`](crate::Collectives::irecv_tagged): the message is taken when it has
/// arrived and the request is tested or waited for.
///
/// Two pending receives of the same member and tag take that member's messages in the order
/// they complete (by `test` or `wait`), which is the order they are waited for, not
/// necessarily the order they were started; give them different tags to tell them apart.
#[must_use = "a receive completes only through `test` or `wait`"]
pub struct RecvRequest<'g, G: Group + ?Sized, T> {
    pub(crate) group: &'g G,
    pub(crate) src: usize,
    pub(crate) tag: Tag,
    pub(crate) got: Option<T>,
}

impl<G: Group + ?Sized, T: Message> RecvRequest<'_, G, T> {
    /// Whether the message has arrived; takes it into the request if it has (and then stays
    /// `true`). Never waits.
    ///
    /// # Errors
    ///
    /// [`RmpiError::Comm`] when the member is gone, or sent a message of another type.
    pub fn test(&mut self) -> Result<bool, RmpiError> {
        if self.got.is_none() {
            self.got = self.group.try_recv_tagged(self.src, self.tag)?;
        }
        Ok(self.got.is_some())
    }

    /// Waits for the message and returns it.
    ///
    /// # Errors
    ///
    /// As [`test`](Self::test).
    pub fn wait(self) -> Result<T, RmpiError> {
        match self.got {
            Some(v) => Ok(v),
            None => Ok(self.group.recv_tagged(self.src, self.tag)?),
        }
    }

    /// The member the message comes from.
    pub fn source(&self) -> usize {
        self.src
    }
}

impl<G: Group + ?Sized, T> std::fmt::Debug for RecvRequest<'_, G, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvRequest")
            .field("src", &self.src)
            .field("tag", &self.tag)
            .field("arrived", &self.got.is_some())
            .finish()
    }
}

/// The longest sleep between two rounds of tests while waiting for any of several receives.
const MAX_NAP: Duration = Duration::from_millis(1);

/// Waits until one of `requests` has its message, and returns its index (the first such one).
///
/// # Errors
///
/// [`RmpiError::Config`] when `requests` is empty (it would wait forever), `EmptySelf` when
/// every request is a receive from oneself and none has its message, and the first error a
/// test meets.
pub fn wait_any<G: Group + ?Sized, T: Message>(
    requests: &mut [RecvRequest<'_, G, T>],
) -> Result<usize, RmpiError> {
    if requests.is_empty() {
        return Err(RmpiError::Config(
            "wait_any of no requests would wait forever".into(),
        ));
    }
    // Spin a little (a message usually follows soon), then yield, then nap for growing times.
    let mut round = 0u32;
    loop {
        for (i, r) in requests.iter_mut().enumerate() {
            if r.test()? {
                return Ok(i);
            }
        }
        // Receives from oneself complete only from what was sent already: if nothing else is
        // pending, nothing can come.
        if let Some(r) = requests.iter().find(|r| r.src == r.group.id()) {
            if requests.iter().all(|q| q.src == q.group.id()) {
                return Err(places_core::CommError::EmptySelf { rank: r.src }.into());
            }
        }
        round = round.saturating_add(1);
        if round < 64 {
            std::hint::spin_loop();
        } else if round < 128 {
            std::thread::yield_now();
        } else {
            let micros = 1u64 << (round - 128).min(10);
            std::thread::sleep(Duration::from_micros(micros).min(MAX_NAP));
        }
    }
}

/// Waits for every one of `requests` and returns their messages in order.
///
/// # Errors
///
/// The first error a receive meets.
pub fn wait_all<G: Group + ?Sized, T: Message>(
    requests: Vec<RecvRequest<'_, G, T>>,
) -> Result<Vec<T>, RmpiError> {
    requests.into_iter().map(RecvRequest::wait).collect()
}
