//! Starting places on nodes under supervision, by name or not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use places_core::Message;

use super::RestartOnExit;
use crate::client::{Completion, NodeSlot, RemoteNode, RemotePlace};
use crate::error::NetError;

/// How [`supervise_place_at`] starts a place.
#[derive(Default)]
pub struct PlaceOptions {
    named: Option<String>,
    restart: RestartOnExit,
}

impl std::fmt::Debug for PlaceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaceOptions")
            .field("named", &self.named)
            .field("restart", &self.restart)
            .finish()
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
    /// returned keeps referring to the first instance.
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
}

/// Starts the entry `module::name` on `node` (Racket's `supervise-place-at`), under a name when
/// the options give one, restarted by the options' policy.
///
/// # Errors
///
/// [`NetError::Spawn`] with the node's reason (an unknown entry, other message types, a name
/// already taken), or [`NetError::Lost`] when the node is gone.
pub fn supervise_place_at<S: Message, R: Message>(
    node: &RemoteNode,
    module: &str,
    name: &str,
    opts: PlaceOptions,
) -> Result<RemotePlace<S, R>, NetError> {
    let first = node
        .link()
        .spawn_place::<S, R>(module, name, opts.named.clone())?;
    if !matches!(opts.restart, RestartOnExit::Never) {
        let job = Supervision {
            slot: node.slot.clone(),
            module: module.to_owned(),
            name: name.to_owned(),
            named: opts.named,
            policy: opts.restart,
        };
        let done = first.completion.clone();
        std::thread::Builder::new()
            .name(format!("places supervisor {module}::{name}"))
            .spawn(move || job.run::<S, R>(done))
            .map_err(|e| NetError::Lost {
                node: node.name().to_owned(),
                reason: format!("could not start a supervisor thread: {e}"),
            })?;
    }
    Ok(first)
}

/// Restarts one supervised place according to its policy, for as long as its node is there.
struct Supervision {
    slot: Arc<NodeSlot>,
    module: String,
    name: String,
    named: Option<String>,
    policy: RestartOnExit,
}

impl Supervision {
    fn run<S: Message, R: Message>(mut self, first: Arc<Completion>) {
        let mut done = first;
        let mut started = Instant::now();
        let mut attempts = 0u32;
        let (mut link, mut generation) = {
            let st = self.slot.lock();
            (st.link.clone(), st.generation)
        };
        // The current instance's handle, kept so that its channel stays open.
        let mut _current: Option<RemotePlace<S, R>> = None;
        loop {
            done.wait();
            if link.conn.lost_reason().is_some() {
                // The node is gone: go on only on the node's next incarnation.
                match self.slot.next_link(generation, Duration::from_secs(120)) {
                    Some((l, g)) => {
                        link = l;
                        generation = g;
                    }
                    None => return,
                }
            }
            let code = done.completion().unwrap_or(1);
            if !self.policy.apply(code, started.elapsed(), &mut attempts) {
                return;
            }
            match link.spawn_place::<S, R>(&self.module, &self.name, self.named.clone()) {
                Ok(p) => {
                    done = p.completion.clone();
                    _current = Some(p);
                    started = Instant::now();
                }
                // The node is gone (or refuses): wait for its next incarnation, if it has one.
                Err(_) => match self.slot.next_link(generation, Duration::from_secs(120)) {
                    Some((l, g)) => {
                        link = l;
                        generation = g;
                        // Counted as a failed run: the loop's wait returns at once.
                        done = Completion::new();
                        done.finish(1);
                    }
                    None => return,
                },
            }
        }
    }
}

/// Starts `module::name` on `node` (Racket's `supervise-thread-at`). Racket distinguishes
/// threads from places inside a node; here every place already is a thread of the node's
/// process, so this is [`supervise_place_at`] with default options.
///
/// # Errors
///
/// As [`supervise_place_at`].
pub fn supervise_thread_at<S: Message, R: Message>(
    node: &RemoteNode,
    module: &str,
    name: &str,
) -> Result<RemotePlace<S, R>, NetError> {
    supervise_place_at(node, module, name, PlaceOptions::new())
}
