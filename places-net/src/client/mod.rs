//! The creator's side of a node: the connection to it, the places it runs for us, and what the
//! node reports back (spawn answers, completions, log records).

mod node;
mod place;

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use crossbeam_channel::Sender;
use places_core::transport::{Endpoint, LinkRef};
use places_core::{Message, PlaceChannel};

use crate::connection::{Connection, Handler, Socket};
use crate::error::NetError;
use crate::handshake::{self, Cookie};
use crate::launch::NodeOptions;
use crate::node::{ConnectRequest, SpawnRequest};
use crate::wire::{Frame, Kind};

pub(crate) use node::NodeSlot;
pub use node::{
    create_place_node, spawn_node_at, spawn_nodes_join, spawn_remote_node, NodeAddr, NodeDest,
    PendingNode, RemoteNode,
};
pub(crate) use place::Instances;
pub use place::{
    connect_to_named_place, spawn_node_supervise_place_at, spawn_node_with_place_at, RemotePlace,
};

/// A node counts as lost after this many heartbeat intervals in which nothing arrived from it.
pub const MISSED_HEARTBEATS: u32 = 5;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A place's completion, as reported by its node (or 1 when the node is lost).
pub(crate) type Completion = places_core::transport::PlaceEnd;

/// The creator's side of one connection: pending spawns and completions.
#[derive(Default)]
struct Client {
    spawns: Mutex<HashMap<u64, Sender<Result<(), String>>>>,
    completions: Mutex<HashMap<u64, Arc<Completion>>>,
    statuses: Mutex<HashMap<u64, Sender<Vec<u8>>>>,
}

/// Log records from nodes reach the root's `tracing` subscriber from this thread, not from the
/// event loop (a subscriber is user code, and may block on its output).
fn log_sink() -> &'static Sender<places_core::LogRecord> {
    static SINK: OnceLock<Sender<places_core::LogRecord>> = OnceLock::new();
    SINK.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::unbounded::<places_core::LogRecord>();
        let _ = std::thread::Builder::new()
            .name("places log".into())
            .spawn(move || {
                for record in rx {
                    places_core::log_record(record);
                }
            });
        tx
    })
}

impl Handler for Client {
    fn frame(&self, conn: &Arc<Connection>, frame: Frame) {
        match frame.kind {
            Kind::SpawnOk | Kind::SpawnErr => {
                let waiter = lock(&self.spawns).remove(&frame.channel);
                let reply = if frame.kind == Kind::SpawnOk {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&frame.payload).into_owned())
                };
                if let Some(w) = waiter {
                    let _ = w.send(reply);
                }
            }
            Kind::Exit => {
                let Ok(code) = <[u8; 4]>::try_from(&frame.payload[..]).map(i32::from_le_bytes)
                else {
                    return eprintln!("places: a malformed exit frame from {}", conn.peer());
                };
                // The place has ended for good: its entry goes (its handle keeps the value).
                if let Some(c) = lock(&self.completions).remove(&frame.channel) {
                    c.finish(code);
                }
            }
            Kind::Log => match places_core::codec::decode::<places_core::LogRecord>(&frame.payload)
            {
                Ok(record) => {
                    let _ = log_sink().send(record);
                }
                Err(e) => eprintln!(
                    "places: an undecodable log record from {}: {e}",
                    conn.peer()
                ),
            },
            Kind::StatusReply => {
                if let Some(w) = lock(&self.statuses).remove(&frame.channel) {
                    let _ = w.send(frame.payload);
                }
            }
            other => eprintln!(
                "places: ignored an unexpected {other:?} frame from node {}",
                conn.peer()
            ),
        }
    }

    fn lost(&self, _conn: &Arc<Connection>, reason: &str) {
        // Waiters for a status see the disconnection.
        lock(&self.statuses).clear();
        for (_, w) in lock(&self.spawns).drain() {
            let _ = w.send(Err(reason.to_owned()));
        }
        // A place whose node is gone completes with 1, like a killed one.
        for (_, c) in lock(&self.completions).drain() {
            c.finish(1);
        }
    }
}

/// What talking to a node needs, shared with the threads that supervise its places.
pub(crate) struct NodeLink {
    pub(crate) name: String,
    pub(crate) conn: Arc<Connection>,
    client: Arc<Client>,
}

impl NodeLink {
    /// Runs the handshake on a fresh connection to a node, then hands the connection to the
    /// event loop and starts its heartbeat.
    pub(crate) fn handshake(
        host: &str,
        addr: &str,
        mut stream: TcpStream,
        cookie: &Cookie,
        opts: &NodeOptions,
    ) -> Result<Arc<NodeLink>, NetError> {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        let tls = opts.tls.clone().or_else(crate::tls::cluster_tls);
        let (peer_settings, session) = match &tls {
            None => (
                handshake::client_with(&mut stream, cookie, opts.settings)?,
                None,
            ),
            Some(tls) => {
                let mut session = tls.client_connection()?;
                // Each read waits at most the socket's timeout; the whole handshake at most
                // this long (a peer that trickles bytes cannot hold it up for ever).
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while session.is_handshaking() {
                    if std::time::Instant::now() > deadline {
                        return Err(NetError::Tls(format!(
                            "the TLS handshake with {addr} took more than 30 s"
                        )));
                    }
                    session.complete_io(&mut stream).map_err(|e| {
                        NetError::Tls(format!(
                            "the TLS handshake with {addr} failed: {e}{}",
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::UnexpectedEof
                                    | std::io::ErrorKind::ConnectionReset
                            ) {
                                " (the node closed the connection: does it run without TLS?)"
                            } else {
                                ""
                            }
                        ))
                    })?;
                }
                let settings = handshake::client_with(
                    &mut rustls::Stream::new(&mut session, &mut stream),
                    cookie,
                    opts.settings,
                )?;
                (settings, Some(session))
            }
        };
        let _ = stream.set_read_timeout(None);
        let _ = stream.set_write_timeout(None);
        let name = format!("{host} ({addr})");
        let lost = |e: std::io::Error| NetError::Lost {
            node: name.clone(),
            reason: e.to_string(),
        };
        // From here on the connection belongs to this process's event loop: a task reads its
        // frames; senders write their own.
        crate::connection::tune(&stream);
        let closer = stream.try_clone().map_err(lost)?;
        let runtime = crate::event_loop::runtime().map_err(lost)?;
        let stream = {
            let _inside = runtime.enter();
            Arc::new(
                match session {
                    None => Socket::plain(stream),
                    Some(s) => Socket::tls(stream, s.into(), runtime.handle().clone()),
                }
                .map_err(lost)?,
            )
        };
        let conn = Connection::new(
            crate::connection::Peer {
                name: name.clone(),
                dialed: Some(addr.to_owned()),
            },
            stream,
            closer,
            runtime.handle().clone(),
            1,
            opts.settings,
            peer_settings,
        );
        let client = Arc::new(Client::default());
        let handler: Arc<dyn Handler> = client.clone();
        runtime.spawn(conn.clone().read_loop(handler));
        start_heartbeat(&conn, opts.heartbeat);
        Ok(Arc::new(NodeLink { name, conn, client }))
    }

    pub(crate) fn spawn_place<S: Message, R: Message>(
        &self,
        module: &str,
        name: &str,
        named: Option<String>,
        restarts: u32,
    ) -> Result<RemotePlace<S, R>, NetError> {
        let req = SpawnRequest {
            module: module.to_owned(),
            name: name.to_owned(),
            receives: std::any::type_name::<S>().to_owned(),
            sends: std::any::type_name::<R>().to_owned(),
            named,
            restarts,
        };
        let key = format!("{module}::{name}");
        let completion = Completion::new();
        let (channel, id) =
            self.request::<S, R>(Kind::Spawn, &req, &key, Some(completion.clone()))?;
        Ok(RemotePlace::new(channel, self.conn.clone(), id, completion))
    }

    /// Asks the node for a status snapshot (waiting at most `limit`). The node makes one at a
    /// time per connection: while another thread's snapshot is being made, this one asks again.
    pub(crate) fn status(&self, limit: Duration) -> Result<crate::NodeStatus, NetError> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.status_once(left)? {
                Some(status) => return Ok(status),
                None if left.is_zero() => {
                    return Err(self.lost(format!(
                        "the node was busy making other status snapshots for this connection for {limit:?}"
                    )))
                }
                None => std::thread::sleep(Duration::from_millis(5).min(left)),
            }
        }
    }

    /// One status request: `None` when the node was busy with another.
    fn status_once(&self, limit: Duration) -> Result<Option<crate::NodeStatus>, NetError> {
        let id = self.conn.fresh_id();
        let (tx, rx) = crossbeam_channel::bounded(1);
        lock(&self.client.statuses).insert(id, tx);
        if let Some(r) = self.conn.lost_reason() {
            lock(&self.client.statuses).remove(&id);
            return Err(self.lost(r));
        }
        self.conn.send_control_frame(Kind::Status, id, &[]);
        let bytes = match rx.recv_timeout(limit) {
            Ok(bytes) => bytes,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                lock(&self.client.statuses).remove(&id);
                return Err(self.lost(format!("no status reply within {limit:?}")));
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                let reason = self
                    .conn
                    .lost_reason()
                    .unwrap_or_else(|| "connection closed".into());
                return Err(self.lost(reason));
            }
        };
        if bytes.is_empty() {
            return Ok(None);
        }
        places_core::codec::decode::<crate::NodeStatus>(&bytes)
            .map(Some)
            .map_err(|e| self.lost(format!("an undecodable status reply: {e}")))
    }

    /// Opens a channel, sends a request for it (a spawn or a connect) and waits for the reply.
    pub(crate) fn request<S: Message, R: Message>(
        &self,
        kind: Kind,
        req: &impl serde::Serialize,
        what: &str,
        completion: Option<Arc<Completion>>,
    ) -> Result<(PlaceChannel<S, R>, u64), NetError> {
        let link: LinkRef = self.conn.clone();
        let id = link.next_id();
        let endpoint = Endpoint::with_link_windows(link.clone(), id);
        link.table().register(endpoint.clone());
        let channel = places_core::remote_channel::<S, R>(endpoint);
        let (tx, rx) = crossbeam_channel::bounded(1);
        lock(&self.client.spawns).insert(id, tx);
        if let Some(c) = completion {
            lock(&self.client.completions).insert(id, c);
        }
        let bytes = places_core::codec::encode(req).map_err(|e| self.lost(e.to_string()))?;
        if let Some(r) = self.conn.lost_reason() {
            return Err(self.lost(r));
        }
        self.conn.send_control_frame(kind, id, &bytes);
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => Ok((channel, id)),
            Ok(Err(reason)) => {
                // The spawn failed: no completion will ever be reported for it.
                lock(&self.client.completions).remove(&id);
                match self.conn.lost_reason() {
                    Some(r) => Err(self.lost(r)),
                    None => Err(NetError::Spawn {
                        node: self.name.clone(),
                        key: what.to_owned(),
                        reason,
                    }),
                }
            }
            Err(_) => Err(self.lost("no reply to a request within 60 s".to_owned())),
        }
    }

    pub(crate) fn lost(&self, reason: String) -> NetError {
        NetError::Lost {
            node: self.name.clone(),
            reason,
        }
    }

    /// Opens a new connection to the place named `name` on this node.
    pub(crate) fn connect_named<Req: Message, Resp: Message>(
        &self,
        name: &str,
    ) -> Result<PlaceChannel<Req, Resp>, NetError> {
        let req = ConnectRequest {
            name: name.to_owned(),
            receives: std::any::type_name::<places_core::Routed<Req, Resp>>().to_owned(),
        };
        self.request::<Req, Resp>(Kind::Connect, &req, name, None)
            .map(|(ch, _)| ch)
    }
}

/// Pings the node every `interval`, and declares it lost after [`MISSED_HEARTBEATS`] intervals
/// in which nothing at all arrived from it. A ping never waits (it is a control frame).
fn start_heartbeat(conn: &Arc<Connection>, interval: Duration) {
    let weak = Arc::downgrade(conn);
    let limit = (interval * MISSED_HEARTBEATS).as_millis() as u64;
    let _ = std::thread::Builder::new()
        .name("places heartbeat".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            let Some(conn) = weak.upgrade() else { return };
            if conn.lost_reason().is_some() {
                return;
            }
            let silent = conn.silent_for_ms();
            if silent > limit {
                conn.fail(&format!(
                    "no heartbeat reply for {silent} ms ({MISSED_HEARTBEATS} intervals of {interval:?})"
                ));
                return;
            }
            conn.send_control_frame(Kind::Ping, 0, &conn.ping_payload());
        });
}
