//! Starting places on nodes under supervision, by name or not.

use std::any::{Any, TypeId};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use places_core::{Message, PlaceChannel, Select, TryPutError};

use super::RestartOnExit;
use crate::client::{Completion, Instances, NodeSlot, RemoteNode, RemotePlace};
use crate::error::NetError;

/// How [`supervise_place_at`] starts a place.
#[derive(Default)]
pub struct PlaceOptions {
    named: Option<String>,
    restart: RestartOnExit,
    initial: Option<Initial>,
}

impl std::fmt::Debug for PlaceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaceOptions")
            .field("named", &self.named)
            .field("restart", &self.restart)
            .field(
                "initial_message",
                &self.initial.as_ref().map(|i| i.type_name),
            )
            .finish()
    }
}

/// A message each instance gets before any other: a fresh copy per instance.
struct Initial {
    make: Box<dyn Fn() -> Box<dyn Any + Send> + Send + Sync>,
    type_id: TypeId,
    type_name: &'static str,
}

impl Initial {
    /// A copy for the next instance, if the place receives `S` (checked before the first start).
    fn make<S: Message>(&self) -> Option<S> {
        (self.make)().downcast::<S>().ok().map(|b| *b)
    }
}

impl PlaceOptions {
    /// Default options: an unnamed place.
    pub fn new() -> Self {
        Self::default()
    }

    /// What to do when the place ends: `true`, a [`restart_every`](crate::restart_every)
    /// policy, or a [`RestartOnExit`]. A restarted named place is reachable again under its
    /// name (connections to the old instance are closed); the handle [`supervise_place_at`]
    /// returned talks to each new instance in turn (see [`RemotePlace`]).
    pub fn restart_on_exit(mut self, policy: impl Into<RestartOnExit>) -> Self {
        self.restart = policy.into();
        self
    }

    /// Registers the place on its node under `name` (Racket's `#:named`), so that any program
    /// connected to the node can reach it with [`connect_to_named_place`](crate::connect_to_named_place).
    /// The entry must receive [`Routed`](places_core::Routed) messages:
    /// `fn(PlaceChannel<S, Routed<Req, Resp>>)`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.named = Some(name.into());
        self
    }

    /// A message the place receives before anything else, and every restarted instance again
    /// (Racket's `#:initial-message`, which Racket documents and ignores). Its type must be the
    /// type the place receives; each instance gets a clone.
    pub fn initial_message<T: Message + Clone + Sync>(mut self, message: T) -> Self {
        self.initial = Some(Initial {
            make: Box::new(move || Box::new(message.clone())),
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
        });
        self
    }
}

/// Starts the entry `module::name` on `node` (Racket's `supervise-place-at`), under a name when
/// the options give one, restarted by the options' policy, each instance first receiving the
/// options' initial message. With a restart policy, the handle stays valid across restarts (see
/// [`RemotePlace`]).
///
/// # Errors
///
/// [`NetError::Spawn`] with the node's reason (an unknown entry, other message types, a name
/// already taken, an initial message of another type than the place receives), or
/// [`NetError::Lost`] when the node is gone.
pub fn supervise_place_at<S: Message, R: Message>(
    node: &RemoteNode,
    module: &str,
    name: &str,
    opts: PlaceOptions,
) -> Result<RemotePlace<S, R>, NetError> {
    if let Some(init) = &opts.initial {
        if init.type_id != TypeId::of::<S>() {
            return Err(NetError::Spawn {
                node: node.name().to_owned(),
                key: format!("{module}::{name}"),
                reason: format!(
                    "the initial message for {module}::{name} is a `{}`, but the place receives `{}`",
                    init.type_name,
                    std::any::type_name::<S>()
                ),
            });
        }
    }
    let first = node
        .link()
        .spawn_place::<S, R>(module, name, opts.named.clone(), 0)?;
    if matches!(opts.restart, RestartOnExit::Never) {
        if let Some(init) = opts.initial.as_ref().and_then(Initial::make::<S>) {
            first.put(init).map_err(|e| NetError::Lost {
                node: node.name().to_owned(),
                reason: format!("the initial message could not be sent: {e}"),
            })?;
        }
        return Ok(first);
    }
    let current = Arc::new(Current {
        state: Mutex::new(CurrentState {
            place: Arc::new(first),
            generation: 1,
            over: false,
            abandoned: false,
        }),
        changed: Condvar::new(),
        describe: format!("{module}::{name} on {}", node.name()),
        named: opts.named.is_some(),
    });
    // Bounded both ways: the relay holds no more for the handle than the handle's channel does,
    // so a handle that does not read pushes back on the instance as a direct one would.
    let (mine, relay_end) = places_core::bounded_place_channel::<S, R>(RELAY_HOLD);
    let (poke, poked) = places_core::place_channel::<(), ()>();
    let handle = Arc::new(HandleRef(current.clone()));
    let relay = Relay {
        user: relay_end,
        current: current.clone(),
        initial: opts.initial,
        poked,
        handle: Arc::downgrade(&handle),
    };
    let job = Supervision {
        slot: node.slot.clone(),
        module: module.to_owned(),
        name: name.to_owned(),
        named: opts.named,
        policy: opts.restart,
        current: current.clone(),
        poke,
    };
    let start = |what: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(format!("places {what} {module}::{name}"))
            .spawn(f)
            .map(drop)
            .map_err(|e| NetError::Lost {
                node: node.name().to_owned(),
                reason: format!("could not start a {what} thread: {e}"),
            })
    };
    start("relay", Box::new(move || relay.run()))?;
    start("supervisor", Box::new(move || job.run()))?;
    Ok(RemotePlace::supervised(mine, handle))
}

/// Starts `module::name` on `node` with `opts` (Racket's `supervise-thread-at`). Racket
/// distinguishes threads from places inside a node; here every place already is a thread of the
/// node's process, so this is [`supervise_place_at`].
///
/// # Errors
///
/// As [`supervise_place_at`].
pub fn supervise_thread_at<S: Message, R: Message>(
    node: &RemoteNode,
    module: &str,
    name: &str,
    opts: PlaceOptions,
) -> Result<RemotePlace<S, R>, NetError> {
    supervise_place_at(node, module, name, opts)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The instances of one supervised place: the one running now (or the last one), counted.
struct Current<S, R> {
    state: Mutex<CurrentState<S, R>>,
    changed: Condvar,
    describe: String,
    /// A named place outlives its handle.
    named: bool,
}

struct CurrentState<S, R> {
    place: Arc<RemotePlace<S, R>>,
    /// Instances started so far.
    generation: u64,
    /// The policy gave up (or the node is gone for good): no instance will follow `place`.
    over: bool,
    /// The handle of an unnamed place was dropped: nothing more is started.
    abandoned: bool,
}

impl<S: Message, R: Message> Instances for Current<S, R> {
    fn completion(&self) -> Arc<Completion> {
        lock(&self.state).place.completion()
    }

    fn kill(&self) {
        let place = lock(&self.state).place.clone();
        place.kill();
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// Restarts one supervised place according to its policy, for as long as its node is there,
/// and tells the relay about each new instance.
struct Supervision<S, R> {
    slot: Arc<NodeSlot>,
    module: String,
    name: String,
    named: Option<String>,
    policy: RestartOnExit,
    current: Arc<Current<S, R>>,
    poke: PlaceChannel<(), ()>,
}

impl<S: Message, R: Message> Supervision<S, R> {
    fn run(mut self) {
        let mut started = Instant::now();
        let mut attempts = 0u32;
        let (mut link, mut generation) = {
            let st = self.slot.lock();
            (st.link.clone(), st.generation)
        };
        let mut done = lock(&self.current.state).place.completion();
        loop {
            done.wait();
            if lock(&self.current.state).abandoned {
                return self.finish();
            }
            if link.conn.lost_reason().is_some() {
                // The node is gone: go on only on the node's next incarnation.
                match self.slot.next_link(generation, Duration::from_secs(120)) {
                    Some((l, g)) => {
                        link = l;
                        generation = g;
                    }
                    None => return self.finish(),
                }
            }
            let code = done.completion().unwrap_or(1);
            // A policy callback that panics ends the supervision as a policy that gives up
            // would: the handle closes instead of waiting for an instance that never comes.
            let lived = started.elapsed();
            let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.policy.apply(code, lived, &mut attempts)
            }))
            .unwrap_or(false);
            if !again || lock(&self.current.state).abandoned {
                return self.finish();
            }
            let restarts = u32::try_from(lock(&self.current.state).generation).unwrap_or(u32::MAX);
            match link.spawn_place::<S, R>(&self.module, &self.name, self.named.clone(), restarts) {
                Ok(p) => {
                    done = p.completion();
                    let mut st = lock(&self.current.state);
                    st.place = Arc::new(p);
                    st.generation += 1;
                    drop(st);
                    self.current.changed.notify_all();
                    let _ = self.poke.put(());
                    started = Instant::now();
                }
                // The node refuses (a name still taken, say): a failed run, for the policy.
                Err(NetError::Spawn { .. }) => {
                    done = Completion::new();
                    done.finish(1);
                    started = Instant::now();
                }
                // The node is gone: wait for its next incarnation, if it has one.
                Err(_) => match self.slot.next_link(generation, Duration::from_secs(120)) {
                    Some((l, g)) => {
                        link = l;
                        generation = g;
                        // Counted as a failed run: the loop's wait returns at once.
                        done = Completion::new();
                        done.finish(1);
                    }
                    None => return self.finish(),
                },
            }
        }
    }

    /// No instance will follow: the relay closes the handle's channel.
    fn finish(self) {
        lock(&self.current.state).over = true;
        self.current.changed.notify_all();
        let _ = self.poke.put(());
    }
}

/// How many messages the relay holds for an instance that is not taking them (more wait in the
/// handle's channel).
const RELAY_HOLD: usize = 64;

/// Carries messages between a supervised place's handle and its current instance.
struct Relay<S, R> {
    /// The handle's channel, from the relay's side: what the user puts arrives here.
    user: PlaceChannel<R, S>,
    current: Arc<Current<S, R>>,
    initial: Option<Initial>,
    /// A `()` whenever the supervisor started an instance or gave up.
    poked: PlaceChannel<(), ()>,
    /// Alive while the handle is.
    handle: std::sync::Weak<HandleRef<S, R>>,
}

/// What the handle holds: its view of the instances. The relay watches it to learn that the
/// handle is gone even while it is not reading the handle's channel.
struct HandleRef<S, R>(Arc<Current<S, R>>);

impl<S: Message, R: Message> Instances for HandleRef<S, R> {
    fn completion(&self) -> Arc<Completion> {
        self.0.completion()
    }

    fn kill(&self) {
        self.0.kill();
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

impl<S: Message, R: Message> Relay<S, R> {
    fn run(self) {
        /// A message for the instance; `true` marks the initial message of the current one.
        type Waiting<S> = VecDeque<(bool, S)>;
        let mut pending: Waiting<S> = VecDeque::new();
        let mut seen = 0u64;
        // The instance messages go to (until it is known to have ended), and the one whose
        // channel is still read (until it is drained: what it sent before it ended still goes
        // to the handle).
        let mut target: Option<Arc<RemotePlace<S, R>>> = None;
        let mut draining: Option<Arc<RemotePlace<S, R>>> = None;
        let mut supervisor_gone = false;
        let mut backoff = Duration::from_millis(1);
        // A message from the instance that the handle's full channel could not take yet.
        let mut to_user: Option<R> = None;
        loop {
            {
                let st = lock(&self.current.state);
                if st.generation != seen {
                    seen = st.generation;
                    target = Some(st.place.clone());
                    draining = target.clone();
                    // An initial message the last instance never took is not repeated.
                    pending.retain(|(initial, _)| !initial);
                    if let Some(init) = self.initial.as_ref().and_then(Initial::make::<S>) {
                        pending.push_front((true, init));
                    }
                }
                // Over, or its supervisor is gone however it ended: no instance will follow.
                if (st.over || supervisor_gone) && draining.is_none() {
                    // Dropping `user` closes the handle's channel.
                    return;
                }
            }
            // An instance known to have ended gets nothing more: what waits, waits for the next.
            if target
                .as_ref()
                .is_some_and(|p| p.completion().completion().is_some())
            {
                target = None;
            }
            let mut delivered = false;
            if let Some(p) = &target {
                while let Some((initial, m)) = pending.pop_front() {
                    match p.try_put(m) {
                        Ok(()) => delivered = true,
                        Err(TryPutError::Full(m)) => {
                            pending.push_front((initial, m));
                            break;
                        }
                        // The instance is gone; the message went with it.
                        Err(_) => {
                            target = None;
                            break;
                        }
                    }
                }
            }
            if let Some(m) = to_user.take() {
                match self.user.try_put(m) {
                    Ok(()) => delivered = true,
                    Err(TryPutError::Full(m)) => to_user = Some(m),
                    Err(_) => return self.abandon(),
                }
            }
            let mut sel = Select::new();
            let from_user = (pending.len() < RELAY_HOLD).then(|| sel.recv(&self.user));
            let from_place = draining
                .as_ref()
                .filter(|_| to_user.is_none())
                .map(|p| sel.recv(p.channel()));
            let poke = (!supervisor_gone).then(|| sel.recv(&self.poked));
            // Retry soon while messages wait for room (backing off while the instance takes
            // none); otherwise look again now and then.
            let stuck = to_user.is_some() || (!pending.is_empty() && target.is_some());
            let wait = if !stuck {
                Duration::from_secs(1)
            } else {
                backoff = if delivered {
                    Duration::from_millis(1)
                } else {
                    (backoff * 2).min(Duration::from_millis(100))
                };
                backoff
            };
            let Ok(ev) = sel.select_timeout(wait) else {
                // Full and waiting: the handle may have gone meanwhile.
                if self.user_gone() {
                    return self.abandon();
                }
                continue;
            };
            let i = Some(ev.index());
            if i == from_user {
                match ev.recv(&self.user) {
                    Ok(m) => pending.push_back((false, m)),
                    // The handle is gone.
                    Err(_) => return self.abandon(),
                }
            } else if i == from_place {
                let Some(p) = draining.clone() else { continue };
                match ev.recv(p.channel()) {
                    Ok(m) => match self.user.try_put(m) {
                        Ok(()) => {}
                        Err(TryPutError::Full(m)) => to_user = Some(m),
                        Err(_) => return self.abandon(),
                    },
                    // This instance has ended and everything it sent has been passed on.
                    Err(_) => {
                        drop(sel);
                        draining = None;
                        if target.as_ref().is_some_and(|t| Arc::ptr_eq(t, &p)) {
                            target = None;
                        }
                    }
                }
            } else if i == poke && ev.recv(&self.poked).is_err() {
                supervisor_gone = true;
            }
        }
    }

    /// Whether the handle is gone.
    fn user_gone(&self) -> bool {
        self.handle.strong_count() == 0
    }

    /// The handle is gone. An unnamed place can no longer be reached: its current instance is
    /// killed and not restarted. A named place goes on serving (and being restarted) under its
    /// name.
    fn abandon(&self) {
        let place = {
            let mut st = lock(&self.current.state);
            if !self.current.named {
                st.abandoned = true;
            }
            st.place.clone()
        };
        if !self.current.named {
            place.kill();
        }
    }
}
