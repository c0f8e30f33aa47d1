//! The event loop of a node program (Racket's `message-router`): event containers (timers,
//! nodes, connections with callbacks, anything implementing [`EventContainer`]) each run on a
//! thread of their own, so a callback that blocks (an RPC to a slow server, say) delays only its
//! own container; the router returns when every container has finished or it is stopped.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use places_core::{Channel, ChannelError};

/// Something the message router runs (Racket's `event-container<%>`).
///
/// `run` is called once, on a thread of its own, and should return when the container has
/// nothing more to do or `stop` says the router is stopping. Borrowed containers work: the
/// router's threads are scoped to [`MessageRouter::run`].
pub trait EventContainer: Send {
    /// Runs the container until it is done or the router stops.
    fn run(&mut self, stop: &StopToken);
}

/// Tells a container the router is stopping; use its waits instead of `std::thread::sleep`.
#[derive(Clone)]
pub struct StopToken {
    rx: Receiver<()>,
}

impl StopToken {
    /// Sleeps for `d`, or less if the router stops; returns `false` if it stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        !matches!(
            self.rx.recv_timeout(d),
            Err(RecvTimeoutError::Disconnected) | Ok(())
        )
    }

    /// Sleeps until `at` (see [`sleep`](Self::sleep)).
    pub fn sleep_until(&self, at: Instant) -> bool {
        self.sleep(at.saturating_duration_since(Instant::now()))
    }

    /// Whether the router is stopping.
    pub fn is_stopped(&self) -> bool {
        matches!(
            self.rx.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected) | Ok(())
        )
    }
}

/// Stops a running router from anywhere (a callback, another thread).
#[derive(Clone)]
pub struct Stopper {
    tx: Arc<Mutex<Option<Sender<()>>>>,
}

impl Stopper {
    /// Stops the router: every container's waits end, and `run` returns once they have.
    pub fn stop(&self) {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// The event loop: add containers, then [`run`](Self::run) it. `message_router!` builds one.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use places::{after_seconds, every_seconds, MessageRouter};
///
/// let ticks = AtomicU32::new(0);
/// let mut router = MessageRouter::new();
/// let stop = router.stopper();
/// router.add(every_seconds(0.01, || {
///     ticks.fetch_add(1, Ordering::Relaxed);
/// }));
/// router.add(after_seconds(0.2, move || stop.stop()));
/// router.run();
/// assert!(ticks.load(Ordering::Relaxed) >= 5);
/// ```
pub struct MessageRouter<'a> {
    containers: Vec<Box<dyn EventContainer + 'a>>,
    stop_rx: Receiver<()>,
    stopper: Stopper,
}

impl Default for MessageRouter<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> MessageRouter<'a> {
    /// An empty router.
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(0);
        Self {
            containers: Vec::new(),
            stop_rx: rx,
            stopper: Stopper {
                tx: Arc::new(Mutex::new(Some(tx))),
            },
        }
    }

    /// Adds a container.
    pub fn add(&mut self, container: impl IntoEventContainer<'a>) -> &mut Self {
        self.containers.push(container.into_container());
        self
    }

    /// A handle that stops this router.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Runs every container on a thread of its own until all have finished or the router is
    /// stopped (Racket's `message-router` never returns; a callback ends the program with
    /// `std::process::exit`, or stops the router with a [`Stopper`]).
    pub fn run(self) {
        let MessageRouter {
            mut containers,
            stop_rx,
            stopper,
        } = self;
        let token = StopToken { rx: stop_rx };
        std::thread::scope(|s| {
            for c in &mut containers {
                let token = token.clone();
                s.spawn(move || c.run(&token));
            }
        });
        drop(stopper);
    }

    /// Runs the router on a thread of its own (Racket's `start-message-router/thread`); the
    /// containers must own what they use.
    pub fn spawn(self) -> RouterThread
    where
        'a: 'static,
    {
        let stopper = self.stopper();
        let handle = std::thread::spawn(move || self.run());
        RouterThread { stopper, handle }
    }
}

/// A router running on its own thread; see [`MessageRouter::spawn`].
pub struct RouterThread {
    stopper: Stopper,
    handle: std::thread::JoinHandle<()>,
}

impl RouterThread {
    /// Stops the router and waits for it.
    pub fn stop(self) {
        self.stopper.stop();
        let _ = self.handle.join();
    }

    /// A handle that stops the router.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }
}

/// What [`MessageRouter::add`] takes: containers, and things that make one.
pub trait IntoEventContainer<'a> {
    /// The container.
    fn into_container(self) -> Box<dyn EventContainer + 'a>;
}

impl<'a, C: EventContainer + 'a> IntoEventContainer<'a> for C {
    fn into_container(self) -> Box<dyn EventContainer + 'a> {
        Box::new(self)
    }
}

/// Runs a callback once, `secs` seconds after the router starts (Racket's `after-seconds`).
pub struct AfterSeconds<F> {
    secs: f64,
    f: Option<F>,
}

/// Runs `f` once, `secs` seconds after the router starts.
pub fn after_seconds<F: FnOnce() + Send>(secs: f64, f: F) -> AfterSeconds<F> {
    AfterSeconds { secs, f: Some(f) }
}

impl<F: FnOnce() + Send> EventContainer for AfterSeconds<F> {
    fn run(&mut self, stop: &StopToken) {
        if stop.sleep(Duration::from_secs_f64(self.secs.max(0.0))) {
            if let Some(f) = self.f.take() {
                f();
            }
        }
    }
}

/// Runs a callback every `secs` seconds (Racket's `every-seconds`); the first run is `secs`
/// seconds after the router starts. Runs are counted from the start, so a slow callback does
/// not make later ones drift (a run that is late by a whole period is skipped).
pub struct EverySeconds<F> {
    secs: f64,
    f: F,
}

/// Runs `f` every `secs` seconds until the router stops.
pub fn every_seconds<F: FnMut() + Send>(secs: f64, f: F) -> EverySeconds<F> {
    EverySeconds { secs, f }
}

impl<F: FnMut() + Send> EventContainer for EverySeconds<F> {
    fn run(&mut self, stop: &StopToken) {
        let period = Duration::from_secs_f64(self.secs.max(0.001));
        let mut next = Instant::now() + period;
        while stop.sleep_until(next) {
            (self.f)();
            next += period;
            let now = Instant::now();
            while next < now {
                next += period;
            }
        }
    }
}

/// Calls a callback for every message from a place or connection (Racket's `set-on-channel!`)
/// until the channel closes or the router stops.
pub struct OnChannel<'a, C, F, S, R> {
    channel: &'a C,
    f: F,
    _messages: std::marker::PhantomData<fn(S) -> R>,
}

/// Calls `f` with every message that arrives on `channel`.
pub fn on_channel<'a, S, R, C, F>(channel: &'a C, f: F) -> OnChannel<'a, C, F, S, R>
where
    C: Channel<S, R> + Sync,
    F: FnMut(R) + Send,
{
    OnChannel {
        channel,
        f,
        _messages: std::marker::PhantomData,
    }
}

impl<S, R, C, F> EventContainer for OnChannel<'_, C, F, S, R>
where
    C: Channel<S, R> + Sync,
    F: FnMut(R) + Send,
{
    fn run(&mut self, stop: &StopToken) {
        // Polls with a short timeout so that a stop is noticed; messages are still handled as
        // soon as they arrive.
        while !stop.is_stopped() {
            match self.channel.get_timeout(Duration::from_millis(50)) {
                Ok(m) => (self.f)(m),
                Err(ChannelError::Timeout(_)) => {}
                Err(_) => return,
            }
        }
    }
}

/// A node in a router (Racket adds the `remote-node%` itself): the router keeps running while
/// the node is up, and this container ends when the node is lost.
impl EventContainer for &crate::RemoteNode {
    fn run(&mut self, stop: &StopToken) {
        while stop.sleep(Duration::from_millis(50)) {
            if self.lost_reason().is_some() {
                return;
            }
        }
    }
}

/// A node handed to the router by value stays up while the router runs.
impl EventContainer for crate::RemoteNode {
    fn run(&mut self, stop: &StopToken) {
        let mut node: &crate::RemoteNode = self;
        node.run(stop);
    }
}

/// Runs an event loop over the listed containers until they are all done (Racket's
/// `message-router` with `after-seconds` and `every-seconds`).
///
/// ```text
/// message_router! {
///     container,                          // a node, `on_channel(&place, |m| ..)`, any EventContainer
///     after_seconds(2) => { .. },         // once, 2 s after the start
///     every_seconds(1) => { .. },         // every second
/// }
/// ```
///
/// Each container runs on its own thread, so a callback that blocks on a remote call delays
/// nothing else. Callbacks may borrow local variables. The form returns when every container
/// has finished; a callback ends the program with `std::process::exit`, as in Racket.
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
///
/// let log = Mutex::new(Vec::new());
/// places::message_router! {
///     after_seconds(0.02) => { log.lock().unwrap().push("first"); },
///     after_seconds(0.05) => { log.lock().unwrap().push("second"); },
/// }
/// assert_eq!(*log.lock().unwrap(), ["first", "second"]);
/// ```
#[macro_export]
macro_rules! message_router {
    (@add $r:ident;) => {};
    (@add $r:ident; after_seconds($s:expr) => $b:block $(, $($rest:tt)*)?) => {
        $r.add($crate::after_seconds(($s) as f64, || $b));
        $crate::message_router!(@add $r; $($($rest)*)?);
    };
    (@add $r:ident; every_seconds($s:expr) => $b:block $(, $($rest:tt)*)?) => {
        $r.add($crate::every_seconds(($s) as f64, || $b));
        $crate::message_router!(@add $r; $($($rest)*)?);
    };
    (@add $r:ident; after_seconds $($rest:tt)*) => {
        ::core::compile_error!("expected `after_seconds(SECONDS) => { .. }`: the body is a block")
    };
    (@add $r:ident; every_seconds $($rest:tt)*) => {
        ::core::compile_error!("expected `every_seconds(SECONDS) => { .. }`: the body is a block")
    };
    (@add $r:ident; $c:expr $(, $($rest:tt)*)?) => {
        $r.add($c);
        $crate::message_router!(@add $r; $($($rest)*)?);
    };
    () => {
        ::core::compile_error!("`message_router!` needs at least one container or timer: `message_router! { node, after_seconds(2) => { .. } }`")
    };
    ($($arms:tt)+) => {{
        let mut __places_router = $crate::MessageRouter::new();
        $crate::message_router!(@add __places_router; $($arms)+);
        __places_router.run()
    }};
}

/// Racket's `start-message-router/thread`: runs `router` on a thread of its own.
pub fn start_message_router_thread(router: MessageRouter<'static>) -> RouterThread {
    router.spawn()
}

/// Racket's `mr-spawn-remote-node`: starts a node from wherever this is called, including a
/// place on another node (every node runs the same executable, so no router is asked). Every
/// node here is what Racket calls `#:solo`: connected to the program that started it only.
///
/// # Errors
///
/// As [`create_place_node`](crate::create_place_node).
pub fn mr_spawn_remote_node(
    host: &str,
    opts: crate::NodeOptions,
) -> Result<crate::RemoteNode, crate::NetError> {
    crate::create_place_node(host, opts)
}

/// Racket's `mr-supervise-named-dynamic-place-at`: starts the entry `module::entry` on `node`
/// under `name`.
///
/// # Errors
///
/// As [`supervise_place_at`](crate::supervise_place_at).
pub fn mr_supervise_named_dynamic_place_at<S: places_core::Message, R: places_core::Message>(
    node: &crate::RemoteNode,
    name: &str,
    module: &str,
    entry: &str,
) -> Result<crate::RemotePlace<S, R>, crate::NetError> {
    crate::supervise_place_at(node, module, entry, crate::PlaceOptions::new().named(name))
}

/// Racket's `mr-connect-to` and `send-new-place-channel-to-named-dest`: a new channel to the
/// place named `name` on `node` (see [`connect_to_named_place`](crate::connect_to_named_place)).
/// The node is a [`RemoteNode`](crate::RemoteNode) this process holds, or a
/// [`NodeAddr`](crate::NodeAddr) (Racket's `(list host port)`), which this process connects to
/// directly on first use: from a place on another node, the channel is then one hop.
///
/// # Errors
///
/// As [`connect_to_named_place`](crate::connect_to_named_place), and as
/// [`NodeAddr::connect`](crate::NodeAddr::connect) for an address.
pub fn mr_connect_to<Req: places_core::Message, Resp: places_core::Message>(
    node: &(impl crate::NodeDest + ?Sized),
    name: &str,
) -> Result<places_core::PlaceChannel<Req, Resp>, crate::NetError> {
    node.with_node(&mut |n| crate::connect_to_named_place(n, name))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn timers_fire_in_order_and_count() {
        let log = Mutex::new(Vec::new());
        let ticks = AtomicU32::new(0);
        let mut router = MessageRouter::new();
        let stop = router.stopper();
        router.add(after_seconds(0.05, || log.lock().unwrap().push("a")));
        router.add(after_seconds(0.15, || log.lock().unwrap().push("b")));
        router.add(every_seconds(0.02, || {
            ticks.fetch_add(1, Ordering::Relaxed);
        }));
        router.add(after_seconds(0.3, move || stop.stop()));
        router.run();
        assert_eq!(*log.lock().unwrap(), ["a", "b"]);
        let n = ticks.load(Ordering::Relaxed);
        // 0.3 s / 0.02 s = 15 periods; allow for a slow, shared machine but not for drift upward.
        assert!((3..=15).contains(&n), "{n} ticks");
    }

    #[test]
    fn a_slow_callback_does_not_hold_up_other_timers() {
        let fast = AtomicU32::new(0);
        let mut router = MessageRouter::new();
        let stop = router.stopper();
        router.add(after_seconds(0.01, || {
            std::thread::sleep(Duration::from_millis(400))
        }));
        router.add(every_seconds(0.02, || {
            fast.fetch_add(1, Ordering::Relaxed);
        }));
        router.add(after_seconds(0.3, move || stop.stop()));
        router.run();
        // While the slow callback blocked, the other timer kept firing.
        assert!(
            fast.load(Ordering::Relaxed) >= 3,
            "{}",
            fast.load(Ordering::Relaxed)
        );
    }

    #[test]
    fn on_channel_sees_every_message_then_ends_when_the_channel_closes() {
        let (a, b) = places_core::place_channel::<u32, u32>();
        let seen = Mutex::new(Vec::new());
        std::thread::spawn(move || {
            for i in 0..5 {
                b.put(i).unwrap();
            }
        });
        let mut router = MessageRouter::new();
        router.add(on_channel(&a, |m: u32| seen.lock().unwrap().push(m)));
        router.run();
        assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3, 4]);
    }
}
