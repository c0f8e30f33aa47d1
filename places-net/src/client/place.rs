//! A place on another node, and the ways to reach one.

use std::ops::Deref;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use places_core::{Message, PlaceChannel};

use super::{Completion, RemoteNode};
use crate::connection::Connection;
use crate::error::NetError;
use crate::launch::NodeOptions;
use crate::supervise::{supervise_place_at, PlaceOptions};
use crate::wire::Kind;

/// A place on another node: the same channel API as a local [`Place`](places_core::Place).
///
/// A place started with a restart policy ([`PlaceOptions::restart_on_exit`]) keeps its handle
/// across restarts: the handle's channel talks to whichever instance runs now. What is put while
/// no instance runs waits for the next one (a message in flight when an instance ends may end
/// with it, as with any place that ends); what an instance sent before it ended still arrives;
/// once the policy gives up, the channel closes. The channel is bounded (64 messages each way)
/// so that either side that stops reading pushes back on the other, as on a direct channel.
/// Dropping the handle of an unnamed supervised place ends it (nothing else can reach it); a
/// named one goes on serving, and being restarted, under its name.
/// [`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout), [`dead_evt`](Self::dead_evt)
/// and [`kill`](Self::kill) act on the instance that runs when they are called.
pub struct RemotePlace<S, R = S> {
    channel: PlaceChannel<S, R>,
    target: Target,
}

/// What a handle's control operations reach.
enum Target {
    /// One instance: the connection to its node and its channel id there.
    Direct {
        conn: Arc<Connection>,
        id: u64,
        completion: Arc<Completion>,
    },
    /// Whichever instance of a supervised place runs now.
    Supervised(Arc<dyn Instances>),
}

/// The instances of a supervised place, as its handle sees them.
pub(crate) trait Instances: Send + Sync {
    /// The current (or, when none runs, the last) instance's end.
    fn completion(&self) -> Arc<Completion>;
    /// Kills the current instance.
    fn kill(&self);
    /// Where the current instance runs, for `Debug`.
    fn describe(&self) -> String;
}

impl<S, R> RemotePlace<S, R> {
    pub(crate) fn new(
        channel: PlaceChannel<S, R>,
        conn: Arc<Connection>,
        id: u64,
        completion: Arc<Completion>,
    ) -> Self {
        Self {
            channel,
            target: Target::Direct {
                conn,
                id,
                completion,
            },
        }
    }

    /// A handle whose channel is relayed to the current instance of a supervised place.
    pub(crate) fn supervised(channel: PlaceChannel<S, R>, instances: Arc<dyn Instances>) -> Self {
        Self {
            channel,
            target: Target::Supervised(instances),
        }
    }

    /// This instance's end (for a supervised handle: the current instance's).
    pub(crate) fn completion(&self) -> Arc<Completion> {
        match &self.target {
            Target::Direct { completion, .. } => completion.clone(),
            Target::Supervised(i) => i.completion(),
        }
    }

    /// Waits for the place to end and returns its completion value: 0 or its exit code when it
    /// returns, 1 when it panics, is killed, or its node is lost.
    pub fn wait(&self) -> i32 {
        self.completion().wait()
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<i32> {
        self.completion().wait_timeout(timeout)
    }

    /// An event that becomes ready when the place ends (or its node is lost), for
    /// [`Select`](places_core::Select) and [`sync!`](places_core::sync), exactly as
    /// [`Place::dead_evt`](places_core::Place::dead_evt) for a local place.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use places::{create_place_node, NodeOptions, RemotePlace};
    /// # let node = create_place_node("localhost", NodeOptions::new()).unwrap();
    /// let p: RemotePlace<u64> = node.dynamic_place("my_crate", "worker").unwrap();
    /// let dead = p.dead_evt();
    /// places::sync! {
    ///     recv(p) -> n => println!("got {n:?}"),
    ///     dead(dead) -> code => println!("the worker ended with {code}"),
    /// }
    /// ```
    pub fn dead_evt(&self) -> places_core::DeadEvt {
        self.completion().dead_evt()
    }

    /// Kills the place on its node: its channels close at once (here and for every client of a
    /// named place), and its completion value is 1.
    pub fn kill(&self) {
        match &self.target {
            Target::Direct { conn, id, .. } => conn.send_control_frame(Kind::Kill, *id, &[]),
            Target::Supervised(i) => i.kill(),
        }
    }

    /// The creator's end of the place's channel.
    pub fn channel(&self) -> &PlaceChannel<S, R> {
        &self.channel
    }
}

impl<S, R> places_core::Channel<S, R> for RemotePlace<S, R> {
    fn place_channel(&self) -> &PlaceChannel<S, R> {
        &self.channel
    }
}

impl<S, R> Deref for RemotePlace<S, R> {
    type Target = PlaceChannel<S, R>;

    fn deref(&self) -> &PlaceChannel<S, R> {
        &self.channel
    }
}

impl<S, R> std::fmt::Debug for RemotePlace<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Target::Direct { conn, id, .. } => f
                .debug_struct("RemotePlace")
                .field("node", &conn.peer())
                .field("channel", id)
                .finish(),
            Target::Supervised(i) => f
                .debug_struct("RemotePlace")
                .field("supervised", &i.describe())
                .finish(),
        }
    }
}

/// Opens a new connection to the place registered as `name` on `node` (Racket's
/// `connect-to-named-place`): what is put on the returned channel reaches the place as
/// [`Routed`](places_core::Routed) messages whose `reply` leads back to this channel only. When
/// the place ends (returns, panics, is killed), the connection closes: `get` and `put` fail with
/// `Closed`.
///
/// # Errors
///
/// [`NetError::Spawn`] when no place of that name runs there (the error lists the names that
/// do) or it takes other message types; [`NetError::Lost`] when the node is gone.
pub fn connect_to_named_place<Req: Message, Resp: Message>(
    node: &RemoteNode,
    name: &str,
) -> Result<PlaceChannel<Req, Resp>, NetError> {
    node.link().connect_named(name)
}

/// Starts a node on `host` with one place running `module::name` on it (Racket's
/// `spawn-node-with-place-at`), started with `place_opts` (a name, a restart policy, an initial
/// message); the place is the node's [`first_place`](RemoteNode::first_place).
///
/// # Errors
///
/// The errors of [`create_place_node`](crate::create_place_node) and of
/// [`supervise_place_at`].
pub fn spawn_node_with_place_at<S: Message, R: Message>(
    host: &str,
    module: &str,
    name: &str,
    node_opts: NodeOptions,
    place_opts: PlaceOptions,
) -> Result<RemoteNode, NetError> {
    let (node, place) =
        spawn_node_supervise_place_at::<S, R>(host, module, name, node_opts, place_opts)?;
    *node.first.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(place));
    Ok(node)
}

/// Starts a node on `host` and a place on it, returning both (Racket's
/// `spawn-node-supervise-place-at`).
///
/// # Errors
///
/// The errors of [`create_place_node`](crate::create_place_node) and of
/// [`supervise_place_at`].
pub fn spawn_node_supervise_place_at<S: Message, R: Message>(
    host: &str,
    module: &str,
    name: &str,
    node_opts: NodeOptions,
    place_opts: PlaceOptions,
) -> Result<(RemoteNode, RemotePlace<S, R>), NetError> {
    let node = crate::create_place_node(host, node_opts)?;
    let place = supervise_place_at(&node, module, name, place_opts)?;
    Ok((node, place))
}
