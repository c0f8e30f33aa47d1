//! Threads that wait for a message read the connections themselves.
//!
//! A `get` on a channel fed from the network polls for a while before it blocks (see
//! [`places_core::transport::progress`]). While any thread of the process polls so, the event
//! loop stops watching the plain connections (it drops their read registrations) and the
//! polling threads read them: each poll reads what every such connection has, without waiting,
//! and queues each message on its channel, so the thread whose message it is finds it without a
//! wake-up of the event loop in between. This is what makes a round trip between places on two
//! nodes cost about what a blocking TCP round trip does (measured with `cargo bench --bench
//! remote_places`): every wake-up of a second thread per message costs a context switch, and on
//! a machine with few cores the polling threads and the event loop compete for them.
//!
//! The event loop takes the connections back:
//! - at once when the last polling thread stops polling without its message (it goes on to
//!   block, and someone must read for it);
//! - [`LEASE`] after the last poll otherwise (a thread that got its message usually polls again
//!   soon, in a round trip; a message for anyone else waits at most that long).
//!
//! Connections carrying TLS are always read by the event loop (a TLS record may need writes
//! and a session lock of its own). A polling thread never reads a connection whose reading is
//! paused for a peer that does not read its answers, nor one another thread is reading.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use places_core::transport::progress::{set_progress, Progress};

use super::Connection;

/// How long after the last poll the event loop takes the connections back.
pub(crate) const LEASE: Duration = Duration::from_millis(1);

/// The process's polling threads and the connections they read.
pub(crate) struct Direct {
    /// Threads polling now.
    polling: AtomicUsize,
    /// Nanoseconds since `epoch` when the lease ends (0: no lease).
    lease_until: AtomicU64,
    epoch: Instant,
    /// The plain connections being read (those gone are skipped, and swept on registration).
    conns: RwLock<Vec<Weak<Connection>>>,
    /// Woken when polling starts: reading tasks drop their registrations.
    started: tokio::sync::Notify,
    /// Woken when polling stops for good: reading tasks register again.
    stopped: tokio::sync::Notify,
}

/// The process's [`Direct`], installed as its progress on first use.
pub(crate) fn direct() -> &'static Direct {
    static DIRECT: OnceLock<Direct> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let d = DIRECT.get_or_init(|| Direct {
        polling: AtomicUsize::new(0),
        lease_until: AtomicU64::new(0),
        epoch: Instant::now(),
        conns: RwLock::new(Vec::new()),
        started: tokio::sync::Notify::new(),
        stopped: tokio::sync::Notify::new(),
    });
    INSTALLED.get_or_init(|| set_progress(d));
    d
}

impl Direct {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Whether threads read the connections now (polling, or within the lease of the last
    /// poll).
    pub(crate) fn active(&self) -> bool {
        self.polling.load(Ordering::SeqCst) > 0
            || self.now() < self.lease_until.load(Ordering::SeqCst)
    }

    /// Adds a plain connection to those polling threads read.
    pub(crate) fn add(&self, conn: &Arc<Connection>) {
        let mut conns = self.conns.write().unwrap_or_else(PoisonError::into_inner);
        conns.retain(|c| c.strong_count() > 0);
        conns.push(Arc::downgrade(conn));
    }

    /// Waits (as a task of the event loop) until polling starts.
    pub(crate) async fn until_started(&self) {
        let started = self.started.notified();
        tokio::pin!(started);
        started.as_mut().enable();
        if self.active() {
            return;
        }
        started.await;
    }

    /// Waits (as a task of the event loop) until the threads stop reading the connections.
    pub(crate) async fn until_stopped(&self) {
        loop {
            let stopped = self.stopped.notified();
            tokio::pin!(stopped);
            stopped.as_mut().enable();
            if !self.active() {
                return;
            }
            let left = self
                .lease_until
                .load(Ordering::SeqCst)
                .saturating_sub(self.now());
            let wait = Duration::from_nanos(left).max(LEASE);
            let _ = tokio::time::timeout(wait, stopped).await;
        }
    }
}

impl Progress for Direct {
    fn begin(&self) {
        let was = self.active();
        self.polling.fetch_add(1, Ordering::SeqCst);
        if !was {
            self.started.notify_waiters();
        }
    }

    fn poll(&self) {
        let conns = self.conns.read().unwrap_or_else(PoisonError::into_inner);
        for conn in conns.iter() {
            if let Some(conn) = conn.upgrade() {
                conn.progress();
            }
        }
    }

    fn end(&self, got: bool) {
        if got {
            let until = self.now() + LEASE.as_nanos() as u64;
            self.lease_until.fetch_max(until, Ordering::SeqCst);
        }
        if self.polling.fetch_sub(1, Ordering::SeqCst) == 1 && !got {
            // The last poller goes on to block: the event loop must read for it now.
            self.lease_until.store(0, Ordering::SeqCst);
            self.stopped.notify_waiters();
        }
    }
}
