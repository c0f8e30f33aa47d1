//! A node this program started: its handle, its current process, and starting nodes.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use places_core::Message;

use super::{NodeLink, RemotePlace};
use crate::error::NetError;
use crate::handshake::Cookie;
use crate::launch::{launch, NodeOptions, NodeProcess};
use crate::wire::Kind;

/// Starts a node on `host` and connects to it (Racket's `create-place-node`).
///
/// - `localhost` (or `127.0.0.1`) starts this executable (or [`NodeOptions::exe`]) directly as
///   a child process in node mode.
/// - Any other host, or `user@host`, goes through the system `ssh` client
///   ([`ssh_bin_path`](crate::ssh_bin_path)), so `~/.ssh/config` applies;
///   [`NodeOptions::ssh_port`] and [`NodeOptions::ssh_identity`] set the port and key.
/// - [`NodeOptions::command_template`] runs a shell command instead (cluster schedulers).
///
/// The cookie reaches the node on its stdin, never on its command line. The node ends when this
/// program ends or drops the node.
///
/// # Errors
///
/// A [`NetError`] that says what failed: the start, an early exit (with the node's or ssh's
/// own error output), a node program that never enters node mode
/// ([`NetError::NotANodeProgram`]), the readiness timeout, the connection, or the handshake.
pub fn create_place_node(host: &str, opts: NodeOptions) -> Result<RemoteNode, NetError> {
    let launched = launch(host, &opts)?;
    let name = launched.link.name.clone();
    let slot = Arc::new(NodeSlot {
        state: Mutex::new(NodeState {
            link: launched.link,
            addr: launched.addr,
            process: Some(launched.process),
            generation: 0,
            dropped: false,
        }),
        changed: Condvar::new(),
    });
    if let Some(policy) = opts.restart.clone() {
        let (slot, host, opts) = (slot.clone(), host.to_owned(), opts.clone());
        std::thread::Builder::new()
            .name(format!("places node supervisor {host}"))
            .spawn(move || crate::supervise::supervise_node(&slot, &host, &opts, &policy))
            .map_err(|e| NetError::Lost {
                node: name.clone(),
                reason: format!("could not start the node's supervisor: {e}"),
            })?;
    }
    Ok(RemoteNode {
        slot,
        name,
        first: Mutex::new(None),
    })
}

/// Racket's `spawn-remote-racket-node`: the same as [`create_place_node`] here (a node is this
/// executable, whatever the host).
///
/// # Errors
///
/// As [`create_place_node`].
pub fn spawn_remote_node(host: &str, opts: NodeOptions) -> Result<RemoteNode, NetError> {
    create_place_node(host, opts)
}

/// A node this program started and is connected to (Racket's `remote-node%`).
pub struct RemoteNode {
    pub(crate) slot: Arc<NodeSlot>,
    /// The name of the first incarnation, for errors.
    name: String,
    /// The place `spawn_node_with_place_at` started, until it is taken.
    pub(crate) first: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

impl RemoteNode {
    /// Attaches to a node that is already running at `addr` (one started by hand or by a
    /// service manager with `--places-node`, see [`run_if_requested`](crate::run_if_requested)),
    /// authenticating with the cluster `cookie`. Several programs may attach to one node; the
    /// node outlives each of them, and none of them can shut it down. The places started through
    /// this handle end when it is dropped (their channels close), as with any node.
    ///
    /// # Errors
    ///
    /// [`NetError::Connect`] when nothing answers at `addr`, [`NetError::Refused`] when the
    /// node refuses the cookie or runs another build (the registries differ),
    /// [`NetError::Handshake`] when what answers is not a node.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use places::{Cookie, RemoteNode};
    ///
    /// // The node was started as `my-program --places-node --listen 127.0.0.1:7000
    /// // --cookie-file /etc/my-cluster/cookie`.
    /// let cookie = Cookie::from_hex(&std::fs::read_to_string("/etc/my-cluster/cookie")?)?;
    /// let node = RemoteNode::connect("127.0.0.1:7000", &cookie)?;
    /// println!("{}", node.status()?.table());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(addr: &str, cookie: &Cookie) -> Result<RemoteNode, NetError> {
        Self::connect_with(addr, cookie, &NodeOptions::new())
    }

    /// [`connect`](Self::connect) with options: the heartbeat, the channel window and message
    /// limit (the launch settings of `opts` do not apply).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub fn connect_with(
        addr: &str,
        cookie: &Cookie,
        opts: &NodeOptions,
    ) -> Result<RemoteNode, NetError> {
        use std::net::ToSocketAddrs;
        let connect_err = |source: std::io::Error| NetError::Connect {
            addr: addr.to_owned(),
            tries: 1,
            source,
        };
        let target = addr
            .to_socket_addrs()
            .map_err(connect_err)?
            .next()
            .ok_or_else(|| {
                connect_err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the address resolves to nothing",
                ))
            })?;
        crate::node::install_direct_links();
        let stream = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(10))
            .map_err(connect_err)?;
        // Small messages go out at once, as on the connections to launched nodes.
        let _ = stream.set_nodelay(true);
        let link = NodeLink::handshake(addr, addr, stream, cookie, opts)?;
        let name = link.name.clone();
        Ok(RemoteNode {
            slot: Arc::new(NodeSlot {
                state: Mutex::new(NodeState {
                    link,
                    addr: addr.to_owned(),
                    process: None,
                    generation: 0,
                    dropped: false,
                }),
                changed: Condvar::new(),
            }),
            name,
            first: Mutex::new(None),
        })
    }

    /// Where the node listens, as a value places on other nodes can [connect](NodeAddr::connect)
    /// to directly.
    pub fn node_addr(&self) -> NodeAddr {
        NodeAddr::new(self.addr())
    }

    /// Whether this program's link to the node is encrypted (TLS: [`NodeOptions::tls`]).
    pub fn encrypted(&self) -> bool {
        self.link().conn.stream.is_tls()
    }

    /// The node's name in errors and logs: host and address (of its first process).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why the node (its current process) counts as lost, if it does.
    pub fn lost_reason(&self) -> Option<String> {
        self.link().conn.lost_reason()
    }

    /// The address the node's router listens on (a restarted node listens on a new one).
    pub fn addr(&self) -> String {
        self.slot.lock().addr.clone()
    }

    /// A snapshot of the node: its process, every place running on it (for whichever program
    /// started it) with its traffic, its named places, and what this program knows of it
    /// (restarts, the last heartbeat's round trip).
    ///
    /// # Errors
    ///
    /// [`NetError::Lost`] when the node is gone or does not answer within 10 s.
    pub fn status(&self) -> Result<crate::NodeStatus, NetError> {
        let link = self.link();
        let mut status = link.status(Duration::from_secs(10))?;
        status.name = self.name.clone();
        status.restarts = self.restarts();
        status.heartbeat_rtt = link.conn.heartbeat_rtt();
        Ok(status)
    }

    /// What marks this node's log records where they reach the root program's subscriber,
    /// `PLACE ADDR` (Racket's `get-log-prefix`).
    pub fn log_prefix(&self) -> String {
        format!("PLACE {}", self.addr())
    }

    /// The node's process id, for a node this program started.
    pub fn pid(&self) -> Option<u32> {
        self.slot.lock().process.as_ref().map(NodeProcess::id)
    }

    /// How many times the node has been restarted.
    pub fn restarts(&self) -> u64 {
        self.slot.lock().generation
    }

    /// The largest message, in encoded bytes, the node accepts (what it announced in the
    /// handshake): a `put` of a larger one to a place there is refused.
    pub fn max_message(&self) -> u64 {
        use places_core::transport::Link;
        self.link().conn.peer_settings().max_message
    }

    pub(crate) fn link(&self) -> Arc<NodeLink> {
        self.slot.lock().link.clone()
    }

    /// Starts the entry registered under `module::name` in a new place on the node.
    ///
    /// # Errors
    ///
    /// [`NetError::Spawn`] with the node's reason (an unknown entry, other message types), or
    /// [`NetError::Lost`] when the node is gone.
    pub fn dynamic_place<S: Message, R: Message>(
        &self,
        module: &str,
        name: &str,
    ) -> Result<RemotePlace<S, R>, NetError> {
        self.link().spawn_place(module, name, None, 0)
    }

    /// [`dynamic_place`](Self::dynamic_place) with options (Racket's `launch-place` with
    /// `#:restart-on-exit` and `#:initial-message`): a name, a restart policy, an initial message.
    /// This is [`supervise_place_at`](crate::supervise_place_at) on this node.
    ///
    /// # Errors
    ///
    /// As [`supervise_place_at`](crate::supervise_place_at).
    pub fn dynamic_place_with<S: Message, R: Message>(
        &self,
        module: &str,
        name: &str,
        opts: crate::PlaceOptions,
    ) -> Result<RemotePlace<S, R>, NetError> {
        crate::supervise_place_at(self, module, name, opts)
    }

    /// Takes the place that [`spawn_node_with_place_at`](crate::spawn_node_with_place_at)
    /// started (Racket's `node-get-first-place`). Returns `None` if there is none, it was taken
    /// already, or `S` and `R` are not its types.
    pub fn first_place<S: Message, R: Message>(&self) -> Option<RemotePlace<S, R>> {
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        let place = first.take()?;
        match place.downcast::<RemotePlace<S, R>>() {
            Ok(p) => Some(*p),
            Err(other) => {
                *first = Some(other);
                None
            }
        }
    }

    /// Tells the node to exit (Racket's `node-send-exit`).
    pub fn send_exit(&self) {
        self.link().conn.send_control_frame(Kind::Shutdown, 0, &[]);
    }
}

/// Where a node listens, as a value that can travel: the program gives it to places on other
/// nodes, which reach the node with [`connect`](Self::connect), directly (Racket's
/// `NEW-NODE-CONNECT` between nodes). Channels to the node's places are then one hop from the
/// place that connected: nothing passes through the program.
///
/// # Examples
///
/// ```no_run
/// use places::prelude::*;
/// use places::{connect_to_named_place, create_place_node, NodeAddr, NodeOptions, PlaceOptions};
///
/// /// Told where the echo is, asks it once, directly.
/// #[place]
/// fn asker(ch: PlaceChannel<u64, NodeAddr>) {
///     let Ok(at) = ch.get() else { return };
///     let node = at.connect().expect("the sibling node");
///     let echo: PlaceChannel<u64> = connect_to_named_place(&node, "echo").unwrap();
///     let _ = ch.put(echo.put_get(7).unwrap());
/// }
///
/// #[place]
/// fn echo(ch: PlaceChannel<u64>) {
///     while let Ok(n) = ch.get() {
///         if ch.put(n).is_err() { return; }
///     }
/// }
///
/// #[places::main]
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let x = create_place_node("localhost", NodeOptions::new())?;
///     let y = create_place_node("localhost", NodeOptions::new())?;
///     let _echo = places::supervise_place_at::<u64, u64>(&y, module_path!(), "echo", PlaceOptions::new().named("echo"))?;
///     let asker: places::RemotePlace<NodeAddr, u64> = x.dynamic_place(module_path!(), "asker")?;
///     assert_eq!(asker.put_get(y.node_addr())?, 7);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct NodeAddr {
    addr: String,
}

/// One address's connection, made on first use by [`NodeAddr::connect`].
type Slot = Arc<Mutex<Option<Arc<RemoteNode>>>>;

/// This process's connections to nodes, by the socket address they resolve to.
static CONNECTED: Mutex<Vec<(std::net::SocketAddr, Slot)>> = Mutex::new(Vec::new());

impl NodeAddr {
    /// The node listening at `addr` (`host:port`).
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into() }
    }

    /// The address, `host:port`.
    pub fn as_str(&self) -> &str {
        &self.addr
    }

    /// This process's connection to the node, authenticated with the cluster cookie (in a
    /// node, the cookie it was started with): made on first use, then shared by every caller
    /// of `connect` in this process for the address the name resolves to (one such connection
    /// per pair of processes; a node handle from [`create_place_node`] is a connection of its
    /// own); a connection found lost is made again. A connection being made holds up only
    /// other callers for the same node.
    ///
    /// # Errors
    ///
    /// As [`RemoteNode::connect`].
    pub fn connect(&self) -> Result<Arc<RemoteNode>, NetError> {
        use std::net::ToSocketAddrs;
        let connect_err = |source: std::io::Error| NetError::Connect {
            addr: self.addr.clone(),
            tries: 1,
            source,
        };
        // Keyed by where the name leads, so that `localhost:7000` and `127.0.0.1:7000` share.
        let target = self
            .addr
            .to_socket_addrs()
            .map_err(connect_err)?
            .next()
            .ok_or_else(|| {
                connect_err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the address resolves to nothing",
                ))
            })?;
        let slot: Slot = {
            let mut connected = CONNECTED.lock().unwrap_or_else(PoisonError::into_inner);
            match connected.iter().find(|(a, _)| *a == target) {
                Some((_, slot)) => slot.clone(),
                None => {
                    let slot = Slot::default();
                    connected.push((target, slot.clone()));
                    slot
                }
            }
        };
        // Only callers for this one node wait for a connection being made (two at once make
        // one); connections to other nodes go on.
        let mut node = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = node.as_ref().filter(|n| n.lost_reason().is_none()) {
            return Ok(n.clone());
        }
        let fresh = Arc::new(RemoteNode::connect(
            &target.to_string(),
            &crate::launch::cluster_cookie()?,
        )?);
        *node = Some(fresh.clone());
        Ok(fresh)
    }
}

/// A node to reach ([`mr_connect_to`](crate::mr_connect_to)): a [`RemoteNode`] this process
/// holds, or a [`NodeAddr`], connected to on first use ([`NodeAddr::connect`]).
pub trait NodeDest: sealed::Sealed {
    /// Calls `f` with this process's handle on the node.
    ///
    /// # Errors
    ///
    /// For an address, as [`NodeAddr::connect`].
    fn with_node<T>(&self, f: &mut dyn FnMut(&RemoteNode) -> T) -> Result<T, NetError>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::RemoteNode {}
    impl Sealed for super::NodeAddr {}
}

impl NodeDest for RemoteNode {
    fn with_node<T>(&self, f: &mut dyn FnMut(&RemoteNode) -> T) -> Result<T, NetError> {
        Ok(f(self))
    }
}

impl NodeDest for NodeAddr {
    fn with_node<T>(&self, f: &mut dyn FnMut(&RemoteNode) -> T) -> Result<T, NetError> {
        Ok(f(&*self.connect()?))
    }
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.addr)
    }
}

impl Drop for RemoteNode {
    fn drop(&mut self) {
        let process = {
            let mut st = self.slot.lock();
            st.dropped = true;
            st.link.conn.fail("the node handle was dropped");
            st.process.take()
        };
        self.slot.changed.notify_all();
        if let Some(p) = process {
            p.shut_down();
        }
    }
}

impl std::fmt::Debug for RemoteNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteNode")
            .field("name", &self.name)
            .finish()
    }
}

/// The current incarnation of a node, shared with the threads that supervise it and its places.
pub(crate) struct NodeSlot {
    state: Mutex<NodeState>,
    /// Signalled when the node is restarted or its handle dropped.
    pub(crate) changed: Condvar,
}

pub(crate) struct NodeState {
    pub(crate) link: Arc<NodeLink>,
    pub(crate) addr: String,
    pub(crate) process: Option<NodeProcess>,
    /// How many times the node has been restarted.
    pub(crate) generation: u64,
    /// The `RemoteNode` is gone: supervision ends.
    pub(crate) dropped: bool,
}

impl NodeSlot {
    pub(crate) fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the node has a generation after `seen` (restarted) or its handle is dropped;
    /// returns the new link, or `None` when there will be none.
    pub(crate) fn next_link(&self, seen: u64, limit: Duration) -> Option<(Arc<NodeLink>, u64)> {
        let st = self.lock();
        let (st, _) = self
            .changed
            .wait_timeout_while(st, limit, |st| st.generation == seen && !st.dropped)
            .unwrap_or_else(PoisonError::into_inner);
        if st.dropped || st.generation == seen {
            None
        } else {
            Some((st.link.clone(), st.generation))
        }
    }
}

/// A node being started in the background; see [`spawn_node_at`].
#[derive(Debug)]
pub struct PendingNode {
    host: String,
    handle: JoinHandle<Result<RemoteNode, NetError>>,
}

impl PendingNode {
    /// Waits until the node is up (or failed to start).
    ///
    /// # Errors
    ///
    /// The errors of [`create_place_node`].
    pub fn join(self) -> Result<RemoteNode, NetError> {
        match self.handle.join() {
            Ok(result) => result,
            Err(_) => Err(NetError::Lost {
                node: self.host,
                reason: "the thread starting the node panicked".into(),
            }),
        }
    }
}

/// Starts a node on `host` without waiting for it (Racket's `spawn-node-at`); join the result to
/// get the node. Starting several nodes this way overlaps their start-up.
pub fn spawn_node_at(host: &str, opts: NodeOptions) -> PendingNode {
    let owned = host.to_owned();
    let handle = std::thread::spawn(move || create_place_node(&owned, opts));
    PendingNode {
        host: host.to_owned(),
        handle,
    }
}

/// Starts nodes on all `hosts` at once and waits for all of them (Racket's `spawn-nodes/join`).
///
/// # Errors
///
/// The first error among the nodes, in the order given; the nodes that did start are dropped
/// (and end).
pub fn spawn_nodes_join<'a>(
    hosts: impl IntoIterator<Item = (&'a str, NodeOptions)>,
) -> Result<Vec<RemoteNode>, NetError> {
    let pending: Vec<PendingNode> = hosts
        .into_iter()
        .map(|(h, o)| spawn_node_at(h, o))
        .collect();
    pending.into_iter().map(PendingNode::join).collect()
}
