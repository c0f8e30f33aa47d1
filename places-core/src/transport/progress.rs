//! How a thread that waits for a message from the network moves it along itself.
//!
//! A `get` on a channel fed from the network polls for a while before it blocks, since a reply
//! is usually one round trip away. While it polls, the network layer may let it read the
//! process's connections itself ([`Progress`]), so a message that arrives then costs no wake-up
//! of a reading thread: the thread that wants it reads it, as a blocking TCP read does (MPI
//! libraries make progress inside their calls the same way). `places-net` installs its
//! implementation when it starts reading its first plain connection; without one, a waiting
//! thread only polls its queue.

use std::sync::OnceLock;

/// What the network layer does for a thread that polls for a message from it.
pub trait Progress: Send + Sync {
    /// A thread starts polling for a message from the network.
    fn begin(&self);
    /// Reads what the process's connections have now, without waiting, and hands each message
    /// to its channel (the polling thread then finds its own in its queue).
    fn poll(&self);
    /// The thread stops polling: `got` says whether its message came, or whether it goes on
    /// to block (and the network layer must then read for it).
    fn end(&self, got: bool);
}

static PROGRESS: OnceLock<&'static dyn Progress> = OnceLock::new();

/// Installs the process's [`Progress`] (the first call wins; later ones are ignored).
pub fn set_progress(progress: &'static dyn Progress) {
    let _ = PROGRESS.set(progress);
}

/// A thread polling for a message from the network: [`Progress::begin`] when made,
/// [`Progress::end`] when dropped (with `got` as [`got`](Self::got) left it), so that every way
/// out of the poll ends it.
pub(crate) struct Polling {
    progress: Option<&'static dyn Progress>,
    got: bool,
}

impl Polling {
    pub(crate) fn begin() -> Polling {
        let progress = PROGRESS.get().copied();
        if let Some(p) = progress {
            p.begin();
        }
        Polling {
            progress,
            got: false,
        }
    }

    /// Reads what has arrived (see [`Progress::poll`]).
    pub(crate) fn poll(&self) {
        if let Some(p) = self.progress {
            p.poll();
        }
    }

    /// The message came.
    pub(crate) fn got(&mut self) {
        self.got = true;
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        if let Some(p) = self.progress {
            p.end(self.got);
        }
    }
}
