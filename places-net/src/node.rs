//! Node mode: the same executable, started with `PLACES_NODE` set, serves as a node. It reads the
//! cluster cookie from stdin (never argv), listens on loopback (or the address it is given),
//! reports readiness on stdout, and runs the message router: one thread per authenticated
//! connection, spawning registered entries on request and carrying their channels' frames.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use places_core::{FrameSink, PlaceHandle};
use serde::{Deserialize, Serialize};

use crate::connection::{Connection, Handler};
use crate::error::NetError;
use crate::handshake::{self, Cookie};
use crate::wire::{Frame, Kind, DEFAULT_MAX_FRAME};

/// Set to run the executable as a node.
pub const NODE_ENV: &str = places_core::NODE_MODE_ENV;

/// The address a node listens on (default `127.0.0.1:0`, any free loopback port).
pub const LISTEN_ENV: &str = "PLACES_NODE_LISTEN";

/// The line a node prints on stdout once it listens, followed by its address.
pub const READY_LINE: &str = "places-node ready ";

/// The line a node prints on stdout when it cannot start, followed by the reason.
pub const FAILED_LINE: &str = "places-node failed ";

/// How long a new connection has to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection of the program that started this node, where log records go.
fn parent() -> &'static std::sync::OnceLock<std::sync::Weak<Connection>> {
    static PARENT: std::sync::OnceLock<std::sync::Weak<Connection>> = std::sync::OnceLock::new();
    &PARENT
}

/// What a `Spawn` frame asks for.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SpawnRequest {
    pub(crate) module: String,
    pub(crate) name: String,
    pub(crate) receives: String,
    pub(crate) sends: String,
    /// Register the place under this name, for `connect_to_named_place`.
    pub(crate) named: Option<String>,
}

/// What a `Connect` frame asks for.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ConnectRequest {
    pub(crate) name: String,
    /// The type the named place must receive: `Routed<Req, Resp>` as the client spells it.
    pub(crate) receives: String,
}

/// A named place of this node: where new connections' messages go.
struct Named {
    inbound: Arc<dyn places_core::Inbound>,
    receives: &'static str,
    key: String,
    /// Tells this registration from a later place of the same name.
    serial: u64,
}

fn named() -> &'static Mutex<HashMap<String, Named>> {
    static NAMED: std::sync::OnceLock<Mutex<HashMap<String, Named>>> = std::sync::OnceLock::new();
    NAMED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// If this process was started as a node, serves as one and exits; otherwise returns at once.
///
/// `places::init()` and `#[places::main]` call this first. A test binary can serve as a node by
/// calling it from a test that the launcher selects (see
/// [`NodeOptions::exe_args`](crate::NodeOptions::exe_args)).
pub fn run_if_requested() {
    if std::env::var_os(NODE_ENV).is_none() {
        return;
    }
    let code = match serve() {
        Ok(()) => 0,
        Err(e) => {
            println!("{FAILED_LINE}{e}");
            let _ = std::io::stdout().flush();
            3
        }
    };
    std::process::exit(code);
}

fn serve() -> Result<(), NetError> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| NetError::Handshake(format!("reading the cookie from stdin: {e}")))?;
    let cookie = Cookie::from_hex(&line)?;
    let addr = std::env::var(LISTEN_ENV).unwrap_or_else(|_| "127.0.0.1:0".to_owned());
    let listener = TcpListener::bind(&addr).map_err(|source| NetError::Listen {
        addr: addr.clone(),
        source,
    })?;
    let local = listener
        .local_addr()
        .map_err(|source| NetError::Listen { addr, source })?;
    println!("{READY_LINE}{local}");
    let _ = std::io::stdout().flush();

    // The node lives as long as its creator: the creator holds our stdin, and its end (exit,
    // crash, or dropping the node handle) closes it.
    std::thread::spawn(|| {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });

    // Log records of this node's places go to the node's parent: the first connection, made by
    // the program that started the node.
    let origin = format!("PLACE {local}");
    places_core::__private::set_log_forwarder(move |mut record| {
        if record.origin.is_none() {
            record.origin = Some(origin.clone());
        }
        match parent().get().and_then(std::sync::Weak::upgrade) {
            Some(conn) => match places_core::codec::encode(&record) {
                Ok(bytes) => {
                    let _ = conn.send(Kind::Log, 0, &bytes);
                }
                Err(e) => eprintln!("places-node: unsendable log record: {e}"),
            },
            None => eprintln!(
                "{}: {}",
                record.origin.as_deref().unwrap_or(""),
                record.message
            ),
        }
    });

    // The router: a tokio event loop accepts connections and reads every connection's frames;
    // places run on threads of their own and write their frames themselves.
    let runtime = crate::event_loop::runtime().map_err(|source| NetError::Listen {
        addr: local.to_string(),
        source,
    })?;
    let cookie = Arc::new(cookie);
    let handle = runtime.handle().clone();
    runtime.block_on(async move {
        listener
            .set_nonblocking(true)
            .map_err(|source| NetError::Listen {
                addr: local.to_string(),
                source,
            })?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| NetError::Listen {
                addr: local.to_string(),
                source,
            })?;
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(serve_connection(
                stream,
                peer,
                cookie.clone(),
                handle.clone(),
            ));
        }
    })
}

/// One connection: the handshake (blocking, on a blocking-pool thread, with a time limit),
/// then the connection's frames on the event loop.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    cookie: Arc<Cookie>,
    runtime: tokio::runtime::Handle,
) {
    let peer = peer.to_string();
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    let shaken = tokio::task::spawn_blocking(move || {
        let mut s = std_stream;
        s.set_nonblocking(false)?;
        let _ = s.set_nodelay(true);
        s.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        // The limit is for the whole handshake, not each read: a peer that trickles bytes is cut
        // off too.
        let (done, finished) = crossbeam_channel::bounded::<()>(0);
        if let Ok(closer) = s.try_clone() {
            std::thread::spawn(move || {
                if let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    finished.recv_timeout(HANDSHAKE_TIMEOUT)
                {
                    let _ = closer.shutdown(std::net::Shutdown::Both);
                }
            });
        }
        let outcome = handshake::node(&mut s, &cookie);
        drop(done);
        s.set_read_timeout(None)?;
        Ok::<_, std::io::Error>((outcome, s))
    })
    .await;
    let std_stream = match shaken {
        Ok(Ok((Ok(()), s))) => s,
        Ok(Ok((Err(e), _))) => {
            return eprintln!("places-node: refused connection from {peer}: {e}")
        }
        _ => return,
    };
    let Ok(closer) = std_stream.try_clone() else {
        return;
    };
    if std_stream.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) else {
        return;
    };
    let stream = Arc::new(stream);
    let conn = Connection::new_evented(peer, stream.clone(), closer, runtime, 2);
    let _ = parent().set(Arc::downgrade(&conn));
    let router: Arc<dyn Handler> = Arc::new(Router {
        places: Arc::new(Mutex::new(HashMap::new())),
    });
    conn.read_loop_evented(stream, DEFAULT_MAX_FRAME, router)
        .await;
}

/// The node side of one connection: the places it spawned for that peer.
struct Router {
    /// The running places this connection started; a place leaves when it ends.
    places: Arc<Mutex<HashMap<u64, PlaceHandle>>>,
}

impl Router {
    fn spawn(&self, conn: &Arc<Connection>, id: u64, req: SpawnRequest) -> Result<(), String> {
        let entry = places_core::lookup(&req.module, &req.name).map_err(|e| e.to_string())?;
        if entry.receives().name() != req.receives || entry.sends().name() != req.sends {
            return Err(format!(
                "place entry `{}` exchanges other messages than requested: the entry receives `{}` and sends `{}`, \
                 but the caller asked for a place that receives `{}` and sends `{}`",
                entry.key(),
                entry.receives().name(),
                entry.sends().name(),
                req.receives,
                req.sends
            ));
        }
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Held from the check to the registration, so two spawns cannot both take a name, and
        // a place that ends at once unregisters (in `on_finish`, on its own thread) only after
        // it was registered.
        let mut names = req
            .named
            .as_ref()
            .map(|_| named().lock().unwrap_or_else(PoisonError::into_inner));
        if let (Some(name), Some(all)) = (&req.named, &names) {
            if all.contains_key(name) {
                return Err(format!("a place named `{name}` already runs on this node"));
            }
        }
        let exit_conn = conn.clone();
        let exit_name = req.named.clone();
        let running = Arc::downgrade(&self.places);
        let on_finish = Box::new(move |code: i32| {
            if let Some(places) = running.upgrade() {
                places
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
            }
            if let Some(name) = exit_name {
                let mut all = named().lock().unwrap_or_else(PoisonError::into_inner);
                if all.get(&name).is_some_and(|n| n.serial == serial) {
                    all.remove(&name);
                }
            }
            let _ = exit_conn.send(Kind::Exit, id, &code.to_le_bytes());
        });
        let sink: Arc<dyn FrameSink> = conn.clone();
        let (handle, inbound) = entry
            .spawn_remote(sink, id, on_finish)
            .map_err(|e| e.to_string())?;
        if let (Some(name), Some(all)) = (req.named, names.as_mut()) {
            all.insert(
                name,
                Named {
                    inbound: inbound.clone(),
                    receives: entry.receives().name(),
                    key: entry.key().to_string(),
                    serial,
                },
            );
        }
        drop(names);
        conn.register(id, inbound);
        let mut places = self.places.lock().unwrap_or_else(PoisonError::into_inner);
        // A place that ended before it got here has already been left out by its `on_finish`.
        if handle.completion().is_none() {
            places.insert(id, handle);
        }
        Ok(())
    }
}

/// Opens connection `id` to the named place `req.name`.
fn connect(conn: &Arc<Connection>, id: u64, req: &ConnectRequest) -> Result<(), String> {
    let all = named().lock().unwrap_or_else(PoisonError::into_inner);
    let Some(place) = all.get(&req.name) else {
        let mut names: Vec<&str> = all.keys().map(String::as_str).collect();
        names.sort_unstable();
        return Err(if names.is_empty() {
            format!(
                "no place named `{}` runs on this node; it has no named places",
                req.name
            )
        } else {
            format!(
                "no place named `{}` runs on this node; its named places are `{}`",
                req.name,
                names.join("`, `")
            )
        });
    };
    if place.receives != req.receives {
        return Err(format!(
            "the place named `{}` (`{}`) receives `{}`, but the connection would send `{}`",
            req.name, place.key, place.receives, req.receives
        ));
    }
    let sink: Arc<dyn FrameSink> = conn.clone();
    let inbound = place
        .inbound
        .connect(sink, id)
        .ok_or_else(|| format!("the place named `{}` no longer takes messages", req.name))?;
    drop(all);
    conn.register(id, inbound);
    Ok(())
}

impl Handler for Router {
    fn frame(&self, conn: &Arc<Connection>, frame: Frame) -> Result<(), String> {
        match frame.kind {
            Kind::Spawn => {
                if frame.channel == 0 || conn.known(frame.channel) {
                    return Err(format!(
                        "spawn on channel {} that is already in use",
                        frame.channel
                    ));
                }
                let req: SpawnRequest = places_core::codec::decode(&frame.payload)
                    .map_err(|e| format!("undecodable spawn request: {e}"))?;
                match self.spawn(conn, frame.channel, req) {
                    Ok(()) => conn.send(Kind::SpawnOk, frame.channel, &[]),
                    // Mark the id used, so the client's later frames for it are not "unknown".
                    Err(reason) => {
                        conn.register(frame.channel, Arc::new(Refused));
                        conn.send(Kind::SpawnErr, frame.channel, reason.as_bytes())
                    }
                }
            }
            Kind::Connect => {
                if frame.channel == 0 || conn.known(frame.channel) {
                    return Err(format!(
                        "connect on channel {} that is already in use",
                        frame.channel
                    ));
                }
                let req: ConnectRequest = places_core::codec::decode(&frame.payload)
                    .map_err(|e| format!("undecodable connect request: {e}"))?;
                match connect(conn, frame.channel, &req) {
                    Ok(()) => conn.send(Kind::SpawnOk, frame.channel, &[]),
                    Err(reason) => {
                        conn.register(frame.channel, Arc::new(Refused));
                        conn.send(Kind::SpawnErr, frame.channel, reason.as_bytes())
                    }
                }
            }
            Kind::Kill => {
                let places = self.places.lock().unwrap_or_else(PoisonError::into_inner);
                match places.get(&frame.channel) {
                    Some(p) => {
                        p.kill();
                        Ok(())
                    }
                    // Ended already (or never ran here): nothing to kill.
                    None => Ok(()),
                }
            }
            Kind::Ping => conn.send(Kind::Pong, 0, &[]),
            Kind::Shutdown => std::process::exit(0),
            other => Err(format!("unexpected {other:?} frame")),
        }
    }

    fn lost(&self, conn: &Arc<Connection>, reason: &str) {
        // The places of this connection see their channels close and end on their own. A peer
        // that simply hung up is not worth a line; anything else is bad input and gets one.
        if reason != "connection closed" {
            eprintln!(
                "places-node: closed connection from {}: {reason}",
                conn.peer()
            );
        }
    }
}

/// The receiving half of a channel whose spawn failed: takes nothing.
struct Refused;

impl places_core::Inbound for Refused {
    fn deliver(&self, _bytes: &[u8]) -> Result<(), places_core::CodecError> {
        Ok(())
    }

    fn close(&self, _reason: Option<String>) {}

    fn connect(
        &self,
        _sink: Arc<dyn FrameSink>,
        _id: u64,
    ) -> Option<Arc<dyn places_core::Inbound>> {
        None
    }
}
