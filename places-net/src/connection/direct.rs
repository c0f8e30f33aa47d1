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
//! Only connections that carry traffic are read so: a connection from which nothing arrived for
//! [`COLD`] stays with the event loop (a poll costs a `recv` per connection it reads, and a
//! process may have many idle ones). The event loop takes the connections back:
//! - at once when the last polling thread stops polling without its message (it goes on to
//!   block, and someone must read for it);
//! - [`LEASE`] after the last poll otherwise (a thread that got its message usually polls again
//!   soon, in a round trip; a message for anyone else waits at most that long), also when the
//!   threads that poll are all held up (descheduled, or in a long read);
//! - one by one, while threads still poll, when a connection goes [`COLD`] or its reading is
//!   paused for a peer that does not read its answers.
//!
//! One task of the event loop (the watcher) keeps the time: it wakes every [`LEASE`] while a
//! connection is handed to the polling threads, and not at all otherwise; it, not a
//! notification that could be missed, is what gives every connection back. Connections carrying TLS are always read by the
//! event loop (a TLS record may need writes and a session lock of its own). A polling thread
//! never reads a connection another thread is reading.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use places_core::transport::progress::{set_progress, Progress};

use super::Connection;

/// How long after the last poll the event loop takes the connections back.
pub(crate) const LEASE: Duration = Duration::from_millis(1);

/// A connection from which nothing arrived for this long is left to the event loop.
pub(crate) const COLD: Duration = Duration::from_millis(10);

/// The process's polling threads and the connections they read.
pub(crate) struct Direct {
    /// Threads polling now.
    polling: AtomicUsize,
    /// Nanoseconds since `epoch` of the last poll.
    last_poll: AtomicU64,
    /// Nanoseconds since `epoch` when the lease ends (0: no lease).
    lease_until: AtomicU64,
    epoch: Instant,
    /// The connections polling threads read now (their tasks dropped their registrations). A
    /// poll clones the list and lets go of the lock before it reads, so the event loop, which
    /// changes the list, never waits for a poller that is held up.
    polled: RwLock<Arc<Vec<Weak<Connection>>>>,
    /// Woken when polling starts: reading tasks of busy connections drop their registrations.
    started: tokio::sync::Notify,
    /// Woken when the last poller stops without its message: reading tasks register again
    /// (at once; the watcher would within [`LEASE`]).
    stopped: tokio::sync::Notify,
    /// Wakes the watcher: a connection was handed to the polling threads.
    handed: tokio::sync::Notify,
    /// The watcher runs.
    watching: OnceLock<()>,
}

/// The process's [`Direct`], installed as its progress on first use.
pub(crate) fn direct() -> &'static Direct {
    static DIRECT: OnceLock<Direct> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let d = DIRECT.get_or_init(|| Direct {
        polling: AtomicUsize::new(0),
        last_poll: AtomicU64::new(0),
        lease_until: AtomicU64::new(0),
        epoch: Instant::now(),
        polled: RwLock::new(Arc::new(Vec::new())),
        started: tokio::sync::Notify::new(),
        stopped: tokio::sync::Notify::new(),
        handed: tokio::sync::Notify::new(),
        watching: OnceLock::new(),
    });
    INSTALLED.get_or_init(|| set_progress(d));
    d
}

impl Direct {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Whether threads read the connections now: they poll (and one polled within [`LEASE`]:
    /// pollers that are all descheduled, or busy elsewhere, read nothing), or the lease of the
    /// last poll runs.
    pub(crate) fn active(&self) -> bool {
        let now = self.now();
        (self.polling.load(Ordering::SeqCst) > 0
            && now.saturating_sub(self.last_poll.load(Ordering::SeqCst)) < LEASE.as_nanos() as u64)
            || now < self.lease_until.load(Ordering::SeqCst)
    }

    /// Starts the watcher, once. Must be called inside the event loop.
    pub(crate) fn watch_from_here(&'static self) {
        self.watching.get_or_init(|| {
            tokio::spawn(self.watch());
        });
    }

    /// Polling threads read `conn` from now on (its task dropped its registration); the
    /// watcher watches it until it is taken back.
    pub(crate) fn hand_over(&self, conn: &Arc<Connection>) {
        self.replace_list(conn, Some(Arc::downgrade(conn)));
        self.handed.notify_one();
    }

    /// Polling threads no longer read `conn` (its task registered again, or it ended).
    pub(crate) fn take_back(&self, conn: &Connection) {
        self.replace_list(conn, None);
    }

    /// Publishes a copy of the list without `conn` (and without connections that are gone),
    /// with `added` at its end.
    fn replace_list(&self, conn: &Connection, added: Option<Weak<Connection>>) {
        let mut polled = self.polled.write().unwrap_or_else(PoisonError::into_inner);
        let list: Vec<Weak<Connection>> = polled
            .iter()
            .filter(|c| c.strong_count() > 0 && !std::ptr::eq(c.as_ptr(), conn))
            .cloned()
            .chain(added)
            .collect();
        *polled = Arc::new(list);
    }

    /// The connections handed over now.
    fn handed_over(&self) -> Arc<Vec<Weak<Connection>>> {
        self.polled
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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

    /// Waits (as a task of the event loop) until the threads stop reading the connections:
    /// the watcher or the last poller says so.
    pub(crate) async fn until_stopped(&self) {
        let stopped = self.stopped.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        if !self.active() {
            return;
        }
        stopped.await;
    }

    /// The watcher: as long as any connection is handed to the polling threads, it looks at
    /// them every [`LEASE`] (sooner when the last poller stops), and gives each back to its
    /// reading task once the threads stopped reading (no poller, or none that polled within
    /// the lease, and the lease of the last poll has run out), or once it went cold or its
    /// reading is paused. It sleeps while no connection is handed over.
    async fn watch(&'static self) {
        loop {
            // A permit: a connection handed over while the watcher was busy is not missed.
            self.handed.notified().await;
            loop {
                let stopped = self.stopped.notified();
                tokio::pin!(stopped);
                stopped.as_mut().enable();
                let conns: Vec<Arc<Connection>> = self
                    .handed_over()
                    .iter()
                    .filter_map(Weak::upgrade)
                    .collect();
                if conns.is_empty() {
                    break;
                }
                let stopped_reading = !self.active();
                for conn in conns {
                    if stopped_reading || !conn.is_hot() || conn.is_paused() {
                        conn.give_back();
                    }
                }
                let left = self
                    .lease_until
                    .load(Ordering::SeqCst)
                    .saturating_sub(self.now());
                let wait = Duration::from_nanos(left).clamp(LEASE / 2, LEASE);
                let _ = tokio::time::timeout(wait, stopped).await;
            }
        }
    }
}

impl Progress for Direct {
    fn begin(&self) {
        let was = self.active();
        self.last_poll.store(self.now(), Ordering::SeqCst);
        self.polling.fetch_add(1, Ordering::SeqCst);
        if !was {
            self.started.notify_waiters();
        }
    }

    fn poll(&self) {
        self.last_poll.store(self.now(), Ordering::SeqCst);
        let conns = self.handed_over();
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
