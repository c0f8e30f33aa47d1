//! Places: isolated parallel tasks, each on its own OS thread (fork-join members on parked
//! threads of a pool), started from a registered entry.

use std::fmt;
use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::channel::{raw_pair, PlaceChannel};
use crate::context::{self, Exit, Never, PlaceContext};
use crate::error::{BreakKind, SpawnError};
use crate::message::{Completion, Message};
use crate::registry::EntryThunk;

/// A running (or finished) place, and the creator's end of its channel.
///
/// A `Place<S, R>` sends `S` to the place and receives `R` from it: it dereferences to its
/// [`PlaceChannel<S, R>`], so `put`, `get`, `put_get` and the rest work on it directly, as a
/// Racket place descriptor is also a place channel.
///
/// Dropping a `Place` neither waits for nor kills the place; the place notices that its creator is
/// gone when a `get` on its channel fails with [`ChannelError::Closed`](crate::ChannelError::Closed).
///
/// # Examples
///
/// ```
/// use places::{place, Place, PlaceChannel};
///
/// #[place]
/// fn double(ch: PlaceChannel<u64>) {
///     while let Ok(n) = ch.get() {
///         ch.put(n * 2).unwrap();
///     }
/// }
///
/// let p: Place<u64> = Place::spawn(double).unwrap();
/// assert_eq!(p.put_get(21).unwrap(), 42);
/// drop(p); // closes the channel: the loop ends and so does the place
/// ```
pub struct Place<S, R = S> {
    channel: PlaceChannel<S, R>,
    control: Arc<Control>,
}

impl<S: Message, R: Message> Place<S, R> {
    /// Starts `entry` in a new place; the compiler checks the message types.
    ///
    /// `entry` is a function `fn(PlaceChannel<R, S>)` returning `()` or an `i32` exit code,
    /// usually a `#[place]` function (which can also be started by name, with [`dynamic_place`](crate::dynamic_place),
    /// and on other nodes). A closure is accepted only if it captures nothing, like a function:
    /// a place shares no state with its creator except through messages. The place's thread is
    /// named after the function, so a panic message says which place failed.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Thread`] if the operating system cannot start another thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use places::{Place, PlaceChannel};
    ///
    /// fn negate(ch: PlaceChannel<i64>) {
    ///     while let Ok(n) = ch.get() {
    ///         let _ = ch.put(-n);
    ///     }
    /// }
    ///
    /// let p: Place<i64> = Place::spawn(negate).unwrap();
    /// assert_eq!(p.put_get(5).unwrap(), -5);
    /// ```
    ///
    /// A closure that captures a local does not compile:
    ///
    /// ```compile_fail
    /// # use places::{Place, PlaceChannel};
    /// let offset = 1u64;
    /// let p = Place::<u64>::spawn(move |ch: PlaceChannel<u64>| {
    ///     let _ = ch.put(ch.get().unwrap() + offset);
    /// });
    /// ```
    pub fn spawn<F, C>(entry: F) -> Result<Self, SpawnError>
    where
        F: FnOnce(PlaceChannel<R, S>) -> C + Send + 'static,
        C: Completion,
    {
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "a place entry must capture nothing: pass a `fn` item (or a closure without captures) \
                 and send the values it needs as messages"
            )
        };
        crate::node_mode::refuse_stray();
        let (mine, theirs) = raw_pair::<S, R>();
        let thunk: EntryThunk = Box::new(move || entry(theirs).into_completion());
        start(mine, thunk, std::any::type_name::<F>())
    }
}

/// Spawns the place's thread with its signal context and completion bookkeeping.
pub(crate) fn start<S, R>(
    channel: PlaceChannel<S, R>,
    thunk: EntryThunk,
    name: &str,
) -> Result<Place<S, R>, SpawnError> {
    let PlaceHandle { control } = start_handle(thunk, name, None)?;
    Ok(Place { channel, control })
}

/// Where a place runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Thread {
    /// A thread of its own, named after the place.
    Own,
    /// A parked thread of the [pool](crate::pool), for places that start often.
    Pooled,
}

/// [`start`] on a thread of the pool (fork-join members).
pub(crate) fn start_pooled<S, R>(
    channel: PlaceChannel<S, R>,
    thunk: EntryThunk,
    name: &str,
) -> Result<Place<S, R>, SpawnError> {
    let PlaceHandle { control } = start_on(thunk, name, None, Thread::Pooled)?;
    Ok(Place { channel, control })
}

/// Starts a place thread running `thunk`; `on_finish` runs on that thread with the completion
/// value after the place has ended.
pub(crate) fn start_handle(
    thunk: EntryThunk,
    name: &str,
    on_finish: Option<Box<dyn FnOnce(i32) + Send>>,
) -> Result<PlaceHandle, SpawnError> {
    start_on(thunk, name, on_finish, Thread::Own)
}

fn start_on(
    thunk: EntryThunk,
    name: &str,
    on_finish: Option<Box<dyn FnOnce(i32) + Send>>,
    thread: Thread,
) -> Result<PlaceHandle, SpawnError> {
    let (kill_tx, kill_rx) = crossbeam_channel::bounded::<Never>(0);
    let (break_tx, break_rx) = crossbeam_channel::unbounded::<BreakKind>();
    let (dead_tx, dead_rx) = crossbeam_channel::bounded::<Never>(0);
    let killed = Arc::new(AtomicBool::new(false));
    let control = Arc::new(Control {
        state: Mutex::new(State {
            completion: None,
            dead_tx: Some(dead_tx),
            kill_tx: Some(kill_tx),
        }),
        break_tx,
        dead_rx,
        killed: killed.clone(),
    });
    let ctx = PlaceContext {
        kill: kill_rx,
        breaks: break_rx,
        killed,
    };
    let thread_control = control.clone();
    let body = move || {
        let code = run(thunk, ctx, &thread_control);
        if let Some(f) = on_finish {
            // A kill recorded 1 first; that is the place's completion value.
            f(thread_control.completion().unwrap_or(code));
        }
    };
    let started = match thread {
        Thread::Own => std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(body)
            .map(drop),
        Thread::Pooled => crate::pool::run(Box::new(body), "places pooled member"),
    };
    started.map_err(|source| SpawnError::Thread {
        key: name.to_owned(),
        source,
    })?;
    Ok(PlaceHandle { control })
}

/// A place without its channel: what a runtime that talks to the place some other way (the
/// network router) keeps to kill it and learn its completion value.
pub struct PlaceHandle {
    control: Arc<Control>,
}

impl PlaceHandle {
    /// See [`Place::wait`].
    pub fn wait(&self) -> i32 {
        self.control.wait()
    }

    /// See [`Place::completion`].
    pub fn completion(&self) -> Option<i32> {
        self.control.completion()
    }

    /// See [`Place::kill`].
    pub fn kill(&self) {
        self.control.kill();
    }

    /// See [`Place::break_place`].
    pub fn break_place(&self) {
        self.control.break_place(BreakKind::Break);
    }

    /// See [`Place::break_place_with`].
    pub fn break_place_with(&self, kind: BreakKind) {
        self.control.break_place(kind);
    }
}

impl fmt::Debug for PlaceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaceHandle")
            .field("completion", &self.completion())
            .finish()
    }
}

/// The body of every place thread; returns the completion value.
fn run(thunk: EntryThunk, ctx: PlaceContext, control: &Control) -> i32 {
    context::install(ctx);
    let outcome = panic::catch_unwind(AssertUnwindSafe(thunk));
    context::uninstall();
    let code = match outcome {
        Ok(code) => code,
        Err(payload) => match payload.downcast_ref::<Exit>() {
            Some(Exit(code)) => *code,
            // A panic (already reported by the panic hook) or a kill.
            None => 1,
        },
    };
    control.finish(code);
    code
}

/// What the creator and the place thread share about the place's life.
struct Control {
    state: Mutex<State>,
    break_tx: Sender<BreakKind>,
    /// Disconnected (ready) once the place has a completion value.
    dead_rx: Receiver<Never>,
    killed: Arc<AtomicBool>,
}

struct State {
    completion: Option<i32>,
    /// Dropped when the completion value is set.
    dead_tx: Option<Sender<Never>>,
    /// Dropped to kill the place.
    kill_tx: Option<Sender<Never>>,
}

impl Control {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields that are never left half-updated; a panic elsewhere
        // while the lock was held does not make them wrong.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the completion value (the first one wins) and makes the dead event ready.
    fn finish(&self, code: i32) {
        let mut state = self.state();
        if state.completion.is_none() {
            state.completion = Some(code);
        }
        state.dead_tx = None;
    }

    fn completion(&self) -> Option<i32> {
        self.state().completion
    }

    fn wait(&self) -> i32 {
        let _ = self.dead_rx.recv();
        self.completion().unwrap_or(1)
    }

    fn wait_timeout(&self, timeout: Duration) -> Option<i32> {
        match self.dead_rx.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => None,
            _ => Some(self.completion().unwrap_or(1)),
        }
    }

    fn break_place(&self, kind: BreakKind) {
        // Fails only if the place has ended, when there is nobody left to interrupt.
        let _ = self.break_tx.send(kind);
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        let mut state = self.state();
        state.kill_tx = None;
        drop(state);
        self.finish(1);
    }
}

impl<S, R> Place<S, R> {
    /// Waits for the place to end and returns its completion value (Racket's `place-wait`).
    ///
    /// The value is 0 when the entry returns `()`, the returned code when it returns an `i32`,
    /// the argument of [`exit`](crate::exit) when the place calls it, and 1 when the place panics
    /// or is [`kill`](Self::kill)ed.
    pub fn wait(&self) -> i32 {
        self.control.wait()
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout` and returns `None` if the place
    /// is still running.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<i32> {
        self.control.wait_timeout(timeout)
    }

    /// The completion value if the place has ended, without waiting.
    pub fn completion(&self) -> Option<i32> {
        self.control.completion()
    }

    /// Terminates the place (Racket's `place-kill`): its completion value becomes 1 unless it
    /// already had one, and [`wait`](Self::wait) and [`dead_evt`](Self::dead_evt) see it as ended
    /// at once.
    ///
    /// A place is a thread, and a thread cannot be stopped from outside safely, so the place's
    /// thread unwinds (running destructors and closing its channels) at its next channel
    /// operation or [`check_break`](crate::check_break); one that is blocked in a `get` or a
    /// select unwinds immediately.
    pub fn kill(&self) {
        self.control.kill();
    }

    /// Sends the place a break (Racket's `place-break`): a `get` it is blocked in (or its next
    /// one, or its next [`check_break`](crate::check_break)) returns
    /// [`ChannelError::Break`](crate::ChannelError::Break)`(BreakKind::Break)`.
    pub fn break_place(&self) {
        self.control.break_place(BreakKind::Break);
    }

    /// Sends the place a break of `kind` (Racket's `(place-break p 'hang-up)` and
    /// `(place-break p 'terminate)`); the place sees [`ChannelError::Break`](crate::ChannelError::Break)`(kind)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use places::{BreakKind, ChannelError, Place, PlaceChannel};
    ///
    /// fn server(ch: PlaceChannel<String, ()>) -> i32 {
    ///     loop {
    ///         match ch.get() {
    ///             Err(ChannelError::Break(BreakKind::Terminate)) => return 15,
    ///             Err(ChannelError::Break(_)) => continue, // ignore the others
    ///             _ => return 1,
    ///         }
    ///     }
    /// }
    ///
    /// let p: Place<(), String> = Place::spawn(server).unwrap();
    /// p.break_place_with(BreakKind::HangUp);
    /// p.break_place_with(BreakKind::Terminate);
    /// assert_eq!(p.wait(), 15);
    /// ```
    pub fn break_place_with(&self, kind: BreakKind) {
        self.control.break_place(kind);
    }

    /// An event that becomes ready when the place ends (Racket's `place-dead-evt`), for use with
    /// [`Select`](crate::Select) and [`sync!`](crate::sync).
    pub fn dead_evt(&self) -> DeadEvt {
        DeadEvt {
            source: DeadSource::Local(self.control.clone()),
        }
    }

    /// The place without its channel, to watch or kill it.
    pub fn handle(&self) -> PlaceHandle {
        PlaceHandle {
            control: self.control.clone(),
        }
    }

    /// The creator's end of the place's channel.
    pub fn channel(&self) -> &PlaceChannel<S, R> {
        &self.channel
    }
}

impl<S, R> crate::channel::Channel<S, R> for Place<S, R> {
    fn place_channel(&self) -> &PlaceChannel<S, R> {
        &self.channel
    }
}

impl<S, R> Deref for Place<S, R> {
    type Target = PlaceChannel<S, R>;

    fn deref(&self) -> &PlaceChannel<S, R> {
        &self.channel
    }
}

impl<S, R> fmt::Debug for Place<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Place")
            .field("channel", &self.channel)
            .field("completion", &self.completion())
            .finish()
    }
}

/// Ready once a place has ended; see [`Place::dead_evt`].
#[derive(Clone)]
pub struct DeadEvt {
    source: DeadSource,
}

#[derive(Clone)]
enum DeadSource {
    Local(Arc<Control>),
    Remote(Arc<PlaceEnd>),
}

impl DeadEvt {
    /// Whether the place has ended.
    pub fn is_ready(&self) -> bool {
        self.completion().is_some()
    }

    /// The place's completion value, once it has ended (1 for a place on a node that was lost).
    pub fn completion(&self) -> Option<i32> {
        match &self.source {
            DeadSource::Local(control) => control.completion(),
            DeadSource::Remote(end) => end.completion(),
        }
    }

    pub(crate) fn receiver(&self) -> &Receiver<Never> {
        match &self.source {
            DeadSource::Local(control) => &control.dead_rx,
            DeadSource::Remote(end) => &end.done_rx,
        }
    }
}

/// The end of a place that another runtime runs (a place on another node): its completion value
/// once known, and a [`DeadEvt`] that becomes ready then. The network layer keeps one per remote
/// place.
pub struct PlaceEnd {
    code: std::sync::OnceLock<i32>,
    /// Dropped when the place has ended; waiters wake on the disconnection.
    done_tx: Mutex<Option<Sender<Never>>>,
    done_rx: Receiver<Never>,
}

impl PlaceEnd {
    /// A place that has not ended yet.
    pub fn new() -> Arc<Self> {
        let (tx, rx) = crossbeam_channel::bounded(0);
        Arc::new(Self {
            code: std::sync::OnceLock::new(),
            done_tx: Mutex::new(Some(tx)),
            done_rx: rx,
        })
    }

    /// The place has ended with `code` (the first value reported wins).
    pub fn finish(&self, code: i32) {
        let _ = self.code.set(code);
        self.done_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// The completion value, once the place has ended.
    pub fn completion(&self) -> Option<i32> {
        self.code.get().copied()
    }

    /// Waits for the end; the completion value (1 if none was reported).
    pub fn wait(&self) -> i32 {
        let _ = self.done_rx.recv();
        self.completion().unwrap_or(1)
    }

    /// [`wait`](Self::wait), giving up after `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<i32> {
        match self.done_rx.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => None,
            _ => Some(self.completion().unwrap_or(1)),
        }
    }

    /// An event that becomes ready when the place ends, for [`Select`](crate::Select) and
    /// [`sync!`](crate::sync).
    pub fn dead_evt(self: &Arc<Self>) -> DeadEvt {
        DeadEvt {
            source: DeadSource::Remote(self.clone()),
        }
    }
}

impl fmt::Debug for PlaceEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaceEnd")
            .field("completion", &self.completion())
            .finish()
    }
}

impl fmt::Debug for DeadEvt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadEvt")
            .field("completion", &self.completion())
            .finish()
    }
}
