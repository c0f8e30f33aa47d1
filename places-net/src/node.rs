//! Node mode: the same executable, started with `PLACES_NODE` set, serves as a node. It reads the
//! cluster cookie from stdin (never argv), listens on loopback (or the address it is given),
//! reports readiness on stdout, and runs the message router on the process's event loop:
//! authenticating connections, spawning registered entries on request and carrying their
//! channels.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use places_core::transport::{Endpoint, Link, LinkRef, Settings, Window};
use places_core::PlaceHandle;
use serde::{Deserialize, Serialize};

use crate::connection::{Connection, Handler, Socket};
use crate::error::NetError;
use crate::handshake::{self, Cookie};
use crate::tls::Tls;
use crate::wire::{Frame, Kind, HANDSHAKE_TIMEOUT, MAX_PENDING_HANDSHAKES};

/// Set to run the executable as a node.
pub const NODE_ENV: &str = places_core::NODE_MODE_ENV;

/// The address a node listens on (default `127.0.0.1:0`, any free loopback port).
pub const LISTEN_ENV: &str = "PLACES_NODE_LISTEN";

/// The node's [`Settings`] as `WINDOW_BYTES,WINDOW_MESSAGES,MAX_MESSAGE` (default: the defaults).
pub const SETTINGS_ENV: &str = "PLACES_NODE_SETTINGS";

/// Set (to [`TLS_ON_STDIN`]) by a launcher whose node uses TLS: the material follows the cookie
/// on stdin.
pub const TLS_ENV: &str = "PLACES_NODE_TLS";

/// The value of [`TLS_ENV`] that says the TLS material comes on stdin.
pub const TLS_ON_STDIN: &str = "stdin";

/// A directory holding `ca.pem`, `cert.pem` and `key.pem` (see [`Tls::from_dir`]) for a
/// standalone node started through [`NODE_ENV`] (the command line's `--tls-dir`).
pub const TLS_DIR_ENV: &str = "PLACES_NODE_TLS_DIR";

/// The line a node prints on stdout once it listens, followed by its address.
pub const READY_LINE: &str = "places-node ready ";

/// The line a node prints on stdout when it cannot start, followed by the reason.
pub const FAILED_LINE: &str = places_core::NODE_FAILED_LINE;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The connection of the program that started this node: where log records go, and the only
/// one that may shut the node down.
fn parent() -> &'static OnceLock<Weak<Connection>> {
    static PARENT: OnceLock<Weak<Connection>> = OnceLock::new();
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
    /// How many instances of it ran before this one (its supervisor counts), for status views.
    pub(crate) restarts: u32,
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
    hub: Arc<Endpoint>,
    receives: &'static str,
    key: String,
    /// Tells this registration from a later place of the same name.
    serial: u64,
}

fn named() -> &'static Mutex<HashMap<String, Named>> {
    static NAMED: OnceLock<Mutex<HashMap<String, Named>>> = OnceLock::new();
    NAMED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Forgets the name `name` if it still belongs to registration `serial`.
fn unname(name: &str, serial: u64) {
    let mut all = lock(named());
    if all.get(name).is_some_and(|n| n.serial == serial) {
        all.remove(name);
    }
}

/// The settings a node announces: from [`SETTINGS_ENV`], or the defaults.
fn own_settings() -> Settings {
    let parsed = std::env::var(SETTINGS_ENV).ok().and_then(|s| {
        let v: Vec<u64> = s.split(',').filter_map(|p| p.trim().parse().ok()).collect();
        match v[..] {
            [bytes, messages, max] => Some(Settings {
                window: Window::new(bytes, messages),
                max_message: max,
            }),
            _ => None,
        }
    });
    parsed.unwrap_or_default()
}

/// If this process was started as a node, serves as one and exits; otherwise returns at once.
///
/// `places::init()` and `#[places::main]` call this first. A test binary can serve as a node by
/// calling it from a test that the launcher selects (see
/// [`NodeOptions::exe_args`](crate::NodeOptions::exe_args)).
pub fn run_if_requested() {
    // Channel ends handed on between nodes go over direct links (in every process).
    places_core::transport::handoff::set_direct_links(
        places_core::transport::handoff::DirectLinks {
            enabled: hands_off,
            listens_at: listen_addr,
            connect: connect_direct,
        },
    );
    let start = match requested() {
        Ok(Some(start)) => start,
        Ok(None) => return,
        Err(e) => {
            eprintln!("places-node: {e}");
            std::process::exit(2);
        }
    };
    places_core::node_mode::enter();
    let code = match serve(start) {
        Ok(()) => 0,
        Err(e) => {
            println!("{FAILED_LINE}{e}");
            let _ = std::io::stdout().flush();
            3
        }
    };
    std::process::exit(code);
}

/// Set to `0` for a process that does not hand channel ends over (a node started with
/// [`NodeOptions::hand_off_channel_ends`](crate::NodeOptions::hand_off_channel_ends) off).
pub const HAND_OFF_ENV: &str = "PLACES_NODE_HAND_OFF";

/// Channel ends handed on between nodes go over direct links: installed in every process that
/// starts or reaches nodes, or is one.
pub(crate) fn install_direct_links() {
    places_core::transport::handoff::set_direct_links(
        places_core::transport::handoff::DirectLinks {
            enabled: hands_off,
            listens_at: listen_addr,
            connect: connect_direct,
        },
    );
}

/// Whether this process hands the channel ends it bridges over to the nodes they go on to:
/// unless [`HAND_OFF_ENV`] is `0` (a node started with
/// [`NodeOptions::hand_off_channel_ends`](crate::NodeOptions::hand_off_channel_ends) off).
fn hands_off() -> bool {
    std::env::var(HAND_OFF_ENV).map_or(true, |v| v != "0")
}

/// A link to the node at `addr`, made once per process and shared
/// ([`NodeAddr::connect`](crate::NodeAddr::connect)).
fn connect_direct(addr: &str) -> Result<places_core::transport::LinkRef, String> {
    let node = crate::NodeAddr::new(addr)
        .connect()
        .map_err(|e| e.to_string())?;
    let link: places_core::transport::LinkRef = node.link().conn.clone();
    Ok(link)
}

/// The address this node listens on, once it does.
pub(crate) fn listen_addr() -> Option<String> {
    LISTENING.get().cloned()
}

static LISTENING: OnceLock<String> = OnceLock::new();

/// The address the first authenticated client from another host reached this node on: an
/// address of this host known to be reachable from outside, when the node listens on all.
pub(crate) fn reached_at() -> Option<std::net::IpAddr> {
    REACHED_AT.get().copied()
}

static REACHED_AT: OnceLock<std::net::IpAddr> = OnceLock::new();

/// When this node's process started serving.
fn started() -> &'static std::time::Instant {
    static STARTED: OnceLock<std::time::Instant> = OnceLock::new();
    STARTED.get_or_init(std::time::Instant::now)
}

/// How this process was asked to be a node.
enum Start {
    /// Started by `create_place_node`: the cookie comes on stdin, the first connection is the
    /// creator's, and the node ends when its creator does (its stdin closes).
    Child,
    /// Started by hand or by a service manager (`--places-node`, or `PLACES_NODE=standalone`):
    /// serves every client that has the cookie and outlives each of them.
    Standalone {
        listen: String,
        cookie_file: Option<std::path::PathBuf>,
        tls_dir: Option<std::path::PathBuf>,
    },
}

/// The value of [`NODE_ENV`] that starts a standalone node.
pub const STANDALONE: &str = "standalone";
/// The file a standalone node started through [`NODE_ENV`] reads its cookie from (else stdin).
pub const COOKIE_FILE_ENV: &str = "PLACES_NODE_COOKIE_FILE";

static IS_STANDALONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether (and how) this process is to serve as a node: [`NODE_ENV`], or a command line
/// `PROGRAM --places-node [--listen ADDR] [--cookie-file PATH]` (the cookie never on the
/// command line, where other users of the host could read it: from the file, else stdin).
fn requested() -> Result<Option<Start>, String> {
    if let Some(v) = std::env::var_os(NODE_ENV) {
        if v == STANDALONE {
            return Ok(Some(Start::Standalone {
                listen: std::env::var(LISTEN_ENV).unwrap_or_else(|_| "127.0.0.1:0".to_owned()),
                cookie_file: std::env::var_os(COOKIE_FILE_ENV).map(Into::into),
                tls_dir: std::env::var_os(TLS_DIR_ENV)
                    .filter(|v| !v.is_empty())
                    .map(Into::into),
            }));
        }
        return Ok(Some(Start::Child));
    }
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("--places-node") {
        return Ok(None);
    }
    let (mut listen, mut cookie_file, mut tls_dir) = ("127.0.0.1:0".to_owned(), None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--cookie-file" => {
                cookie_file = Some(args.next().ok_or("--cookie-file needs a path")?.into())
            }
            "--tls-dir" => tls_dir = Some(args.next().ok_or("--tls-dir needs a directory")?.into()),
            "--cookie" => {
                return Err("the cookie is never taken from the command line (other users of the host can read it there): use --cookie-file PATH or pipe it to stdin".into())
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}: a node takes --listen ADDR, --cookie-file PATH and --tls-dir DIR"
                ))
            }
        }
    }
    Ok(Some(Start::Standalone {
        listen,
        cookie_file,
        tls_dir,
    }))
}

fn read_cookie(file: Option<&std::path::Path>) -> Result<Cookie, NetError> {
    let line = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            NetError::Handshake(format!("reading the cookie from {}: {e}", path.display()))
        })?,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| NetError::Handshake(format!("reading the cookie from stdin: {e}")))?;
            line
        }
    };
    Cookie::from_hex(line.trim())
}

fn serve(start: Start) -> Result<(), NetError> {
    started();
    let (cookie, addr, child, tls) = match start {
        Start::Child => {
            let cookie = read_cookie(None)?;
            let tls = if std::env::var(TLS_ENV).is_ok_and(|v| v == TLS_ON_STDIN) {
                let mut stdin = std::io::stdin().lock();
                Some(Tls::from_stdin(|| {
                    let mut line = String::new();
                    match stdin.read_line(&mut line) {
                        Ok(n) if n > 0 => Some(line),
                        _ => None,
                    }
                })?)
            } else {
                None
            };
            (
                cookie,
                std::env::var(LISTEN_ENV).unwrap_or_else(|_| "127.0.0.1:0".to_owned()),
                true,
                tls,
            )
        }
        Start::Standalone {
            listen,
            cookie_file,
            tls_dir,
        } => {
            IS_STANDALONE.store(true, Ordering::Relaxed);
            let tls = tls_dir.map(Tls::from_dir).transpose()?;
            (read_cookie(cookie_file.as_deref())?, listen, false, tls)
        }
    };
    crate::launch::adopt_cluster_cookie(&cookie);
    if let Some(tls) = &tls {
        crate::tls::use_cluster_tls(tls);
    }
    let listener = TcpListener::bind(&addr).map_err(|source| NetError::Listen {
        addr: addr.clone(),
        source,
    })?;
    let local = listener
        .local_addr()
        .map_err(|source| NetError::Listen { addr, source })?;
    let _ = LISTENING.set(local.to_string());
    println!("{READY_LINE}{local}");
    let _ = std::io::stdout().flush();
    if !local.ip().is_loopback() && tls.is_none() {
        eprintln!(
            "places-node: listening on {local}, beyond loopback, without encryption: the cookie authenticates clients, but traffic can be read and changed on the way"
        );
    }

    // A child node lives as long as its creator: the creator holds our stdin, and its end
    // (exit, crash, or dropping the node handle) closes it. A standalone node runs until it is
    // stopped from outside.
    std::thread::spawn(move || {
        if !child {
            return;
        }
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => std::process::exit(0),
                Ok(_) => {}
            }
        }
    });

    // Log records of this node's places go to the node's parent.
    let origin = format!("PLACE {local}");
    places_core::__private::set_log_forwarder(move |mut record| {
        if record.origin.is_none() {
            record.origin = Some(origin.clone());
        }
        if record.message.len() > crate::wire::MAX_LOG_RECORD {
            let mut cut = crate::wire::MAX_LOG_RECORD;
            while !record.message.is_char_boundary(cut) {
                cut -= 1;
            }
            record.message.truncate(cut);
            record.message.push_str(" [cut]");
        }
        match parent().get().and_then(Weak::upgrade) {
            Some(conn) => match places_core::codec::encode(&record) {
                Ok(bytes) => conn.send_control_frame(Kind::Log, 0, &bytes),
                Err(e) => eprintln!("places-node: unsendable log record: {e}"),
            },
            None => eprintln!(
                "{}: {}",
                record.origin.as_deref().unwrap_or(""),
                record.message
            ),
        }
    });

    let runtime = crate::event_loop::runtime().map_err(|source| NetError::Listen {
        addr: local.to_string(),
        source,
    })?;
    let cookie = Arc::new(cookie);
    let settings = own_settings();
    let handle = runtime.handle().clone();
    listener
        .set_nonblocking(true)
        .map_err(|source| NetError::Listen {
            addr: local.to_string(),
            source,
        })?;
    let listener = {
        let _inside = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(|source| NetError::Listen {
            addr: local.to_string(),
            source,
        })?
    };
    runtime.spawn(accept_loop(listener, cookie, tls, settings, handle));
    // The event loop's own thread serves; this one waits for the node's end (its creator
    // closing stdin ends the process).
    loop {
        std::thread::park();
    }
}

/// The connections still in their handshake, oldest first.
#[derive(Default)]
struct Pending {
    next: u64,
    live: BTreeMap<u64, tokio::task::AbortHandle>,
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    cookie: Arc<Cookie>,
    tls: Option<Tls>,
    settings: Settings,
    runtime: tokio::runtime::Handle,
) {
    let pending: Arc<Mutex<Pending>> = Arc::default();
    let mut starving = false;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors (or memory): retrying at once would spin. Wait for
                // connections to end.
                if matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) {
                    if !starving {
                        eprintln!("places-node: cannot accept connections for now: {e}");
                        starving = true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        starving = false;
        let _ = stream.set_nodelay(true);
        let mut p = lock(&pending);
        let token = p.next;
        p.next += 1;
        let (cookie, tls, runtime, pending2) = (
            cookie.clone(),
            tls.clone(),
            runtime.clone(),
            pending.clone(),
        );
        let task = tokio::spawn(async move {
            let with = Shake {
                cookie,
                tls,
                settings,
            };
            serve_connection(stream, peer, with, runtime, pending2, token).await
        });
        p.live.insert(token, task.abort_handle());
        while p.live.len() > MAX_PENDING_HANDSHAKES {
            if let Some((_, oldest)) = p.live.pop_first() {
                oldest.abort();
            }
        }
    }
}

/// What a node's side of a handshake needs.
struct Shake {
    cookie: Arc<Cookie>,
    tls: Option<Tls>,
    settings: Settings,
}

/// The handshake of a fresh connection: TLS first if the node uses it, then the cookie's.
async fn shake(
    stream: tokio::net::TcpStream,
    with: &Shake,
) -> Result<(tokio::net::TcpStream, Option<rustls::Connection>, Settings), NetError> {
    let mut stream = stream;
    match &with.tls {
        None => {
            let s = handshake::node(&mut stream, &with.cookie, with.settings).await?;
            Ok((stream, None, s))
        }
        Some(tls) => {
            let mut first = [0u8; 1];
            // A places client without TLS greets with the magic, not a TLS record (0x16).
            if stream.peek(&mut first).await.is_ok_and(|n| n == 1) && first[0] != 0x16 {
                let _ = handshake::refuse_plain(&mut stream).await;
                return Err(NetError::Tls(
                    "the peer does not speak TLS, and this node requires it".into(),
                ));
            }
            let mut s = tls
                .acceptor()
                .accept(stream)
                .await
                .map_err(|e| NetError::Tls(format!("the TLS handshake failed: {e}")))?;
            let settings = handshake::node(&mut s, &with.cookie, with.settings).await?;
            let (tcp, session) = s.into_inner();
            Ok((tcp, Some(session.into()), settings))
        }
    }
}

/// One connection: the handshake (on the event loop, within a deadline from its accept), then
/// the connection's frames.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    with: Shake,
    runtime: tokio::runtime::Handle,
    pending: Arc<Mutex<Pending>>,
    token: u64,
) {
    let settings = with.settings;
    let shaken = tokio::time::timeout(HANDSHAKE_TIMEOUT, shake(stream, &with)).await;
    lock(&pending).live.remove(&token);
    let (stream, session, peer_settings) = match shaken {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return eprintln!("places-node: refused connection from {peer}: {e}"),
        Err(_) => {
            return eprintln!(
                "places-node: refused connection from {peer}: no handshake within {HANDSHAKE_TIMEOUT:?}"
            )
        }
    };
    // A loopback client (a local status query, say) says nothing of how other hosts reach us.
    if let Ok(local) = stream.local_addr().map(|a| a.ip()) {
        if !local.is_loopback() {
            let _ = REACHED_AT.set(local);
        }
    }
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    crate::connection::tune(&std_stream);
    let Ok(closer) = std_stream.try_clone() else {
        return;
    };
    let made = match session {
        None => Socket::plain(std_stream),
        Some(s) => Socket::tls(std_stream, s, runtime.clone()),
    };
    let Ok(stream) = made else {
        return;
    };
    let conn = Connection::new(
        crate::connection::Peer {
            name: peer.to_string(),
            dialed: None,
        },
        Arc::new(stream),
        closer,
        runtime,
        2,
        settings,
        peer_settings,
    );
    // A standalone node has no parent: no client may shut it down, and logs stay on its stderr.
    let is_parent =
        !IS_STANDALONE.load(Ordering::Relaxed) && parent().set(Arc::downgrade(&conn)).is_ok();
    let state = Arc::new(RouterState {
        places: Mutex::new(HashMap::new()),
        is_parent: AtomicBool::new(is_parent),
        status_busy: AtomicBool::new(false),
    });
    {
        let mut all = lock(connections());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&state));
    }
    let router: Arc<dyn Handler> = Arc::new(Router { state });
    conn.read_loop(router).await;
}

/// A place this connection started.
struct Running {
    handle: PlaceHandle,
    endpoint: Arc<Endpoint>,
    name: Option<(String, u64)>,
    key: String,
    started: std::time::Instant,
    restarts: u32,
    /// Start order on this node.
    serial: u64,
}

/// Every connection's places, for status snapshots.
fn connections() -> &'static Mutex<Vec<Weak<RouterState>>> {
    static ALL: OnceLock<Mutex<Vec<Weak<RouterState>>>> = OnceLock::new();
    ALL.get_or_init(|| Mutex::new(Vec::new()))
}

/// This node's status, without what only its client knows (its name, restarts, heartbeat).
fn status(addr: String) -> crate::NodeStatus {
    let states: Vec<Arc<RouterState>> = lock(connections())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    let mut places: Vec<(u64, crate::PlaceStatus)> = Vec::new();
    for state in states {
        for r in lock(&state.places).values() {
            let s = r.endpoint.stats();
            places.push((
                r.serial,
                crate::PlaceStatus {
                    key: r.key.clone(),
                    name: r.name.as_ref().map(|(n, _)| n.clone()),
                    state: if r.handle.completion().is_some() {
                        crate::PlaceState::Ending
                    } else {
                        crate::PlaceState::Running
                    },
                    uptime: r.started.elapsed(),
                    restarts: r.restarts,
                    queued: s.queued,
                    messages_in: s.messages_in,
                    bytes_in: s.bytes_in,
                    messages_out: s.messages_out,
                    bytes_out: s.bytes_out,
                },
            ));
        }
    }
    places.sort_by_key(|(serial, _)| *serial);
    let mut named: Vec<String> = lock(named()).keys().cloned().collect();
    named.sort_unstable();
    crate::NodeStatus {
        name: String::new(),
        addr,
        pid: std::process::id(),
        uptime: started().elapsed(),
        restarts: 0,
        heartbeat_rtt: None,
        places: places.into_iter().map(|(_, p)| p).collect(),
        named,
    }
}

struct RouterState {
    /// The running places this connection started; a place leaves when it ends.
    places: Mutex<HashMap<u64, Running>>,
    is_parent: AtomicBool,
    /// A status snapshot is being made for this connection.
    status_busy: AtomicBool,
}

/// The node side of one connection.
struct Router {
    state: Arc<RouterState>,
}

/// Starts the entry a spawn request names on channel `id` of `conn` (off the event loop: a
/// thunk entry is user code).
fn spawn(
    state: &Arc<RouterState>,
    conn: &Arc<Connection>,
    id: u64,
    req: SpawnRequest,
) -> Result<(), String> {
    let entry = places_core::lookup(&req.module, &req.name).map_err(|e| e.to_string())?;
    entry
        .check_types(&req.receives, &req.sends)
        .map_err(|e| e.to_string())?;
    static SERIAL: AtomicU64 = AtomicU64::new(1);
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    let link: LinkRef = conn.clone();
    let endpoint = Endpoint::with_link_windows(link, id);
    conn.table().register(endpoint.clone());
    // The name is taken before the entry starts (a thunk entry runs user code, which must not
    // run while the lock is held: the event loop takes it for connects); connections made
    // meanwhile queue their messages for the place.
    if let Some(name) = &req.named {
        let mut all = lock(named());
        if all.contains_key(name) {
            drop(all);
            endpoint.close();
            return Err(format!("a place named `{name}` already runs on this node"));
        }
        all.insert(
            name.clone(),
            Named {
                hub: endpoint.clone(),
                receives: entry.receives().name(),
                key: entry.key().to_string(),
                serial,
            },
        );
    }
    let exit_conn = conn.clone();
    let exit_name = req.named.clone();
    let running = Arc::downgrade(state);
    let on_finish = Box::new(move |code: i32| {
        if let Some(state) = running.upgrade() {
            lock(&state.places).remove(&id);
        }
        if let Some(name) = exit_name {
            unname(&name, serial);
        }
        exit_conn.send_control_frame(Kind::Exit, id, &code.to_le_bytes());
    });
    let handle = match entry.start_remote(&req.receives, &req.sends, endpoint.clone(), on_finish) {
        Ok(h) => h,
        Err(e) => {
            if let Some(name) = &req.named {
                unname(name, serial);
            }
            endpoint.close();
            return Err(e.to_string());
        }
    };
    // A place that ended before it got here has already been left out by its `on_finish`.
    if handle.completion().is_none() {
        lock(&state.places).insert(
            id,
            Running {
                handle,
                endpoint,
                key: format!("{}::{}", req.module, req.name),
                started: std::time::Instant::now(),
                restarts: req.restarts,
                serial,
                name: req.named.map(|n| (n, serial)),
            },
        );
    }
    Ok(())
}

/// Opens connection `id` to the named place `req.name`: a route into its queue.
fn connect(conn: &Arc<Connection>, id: u64, req: &ConnectRequest) -> Result<(), String> {
    let all = lock(named());
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
    let link: LinkRef = conn.clone();
    let route = Endpoint::new_route(link, id, &place.hub)
        .ok_or_else(|| format!("the place named `{}` no longer takes messages", req.name))?;
    drop(all);
    conn.table().register(route);
    Ok(())
}

impl Handler for Router {
    fn frame(&self, conn: &Arc<Connection>, frame: Frame) {
        let id = frame.channel;
        match frame.kind {
            Kind::Spawn | Kind::Connect if id == 0 || conn.table().is_known(id) => {
                conn.send_reply_frame(
                    Kind::SpawnErr,
                    id,
                    format!("channel {id} is already in use").as_bytes(),
                );
            }
            Kind::Spawn => {
                let req: SpawnRequest = match places_core::codec::decode(&frame.payload) {
                    Ok(r) => r,
                    Err(e) => {
                        return conn.send_reply_frame(
                            Kind::SpawnErr,
                            id,
                            format!("undecodable spawn request: {e}").as_bytes(),
                        )
                    }
                };
                let (state, conn) = (self.state.clone(), conn.clone());
                // Off the event loop: starting a thunk entry runs its code.
                let runtime = conn.runtime().clone();
                runtime.spawn_blocking(move || match spawn(&state, &conn, id, req) {
                    Ok(()) => conn.send_reply_frame(Kind::SpawnOk, id, &[]),
                    Err(reason) => conn.send_reply_frame(Kind::SpawnErr, id, reason.as_bytes()),
                });
            }
            Kind::Connect => {
                let answer = places_core::codec::decode::<ConnectRequest>(&frame.payload)
                    .map_err(|e| format!("undecodable connect request: {e}"))
                    .and_then(|req| connect(conn, id, &req));
                match answer {
                    Ok(()) => conn.send_reply_frame(Kind::SpawnOk, id, &[]),
                    Err(reason) => conn.send_reply_frame(Kind::SpawnErr, id, reason.as_bytes()),
                }
            }
            Kind::Kill => {
                let running = lock(&self.state.places).remove(&id);
                // Ended already (or never ran here): nothing to kill.
                if let Some(r) = running {
                    r.handle.kill();
                    // Its channels close now, not when its thread next notices the kill.
                    if let Some((name, serial)) = &r.name {
                        unname(name, *serial);
                    }
                    r.endpoint.close();
                    conn.send_control_frame(Kind::Exit, id, &1i32.to_le_bytes());
                }
            }
            Kind::Status => {
                // One snapshot at a time per connection: a request that comes while one is being
                // made gets an empty answer ("busy"), so a peer that floods requests costs a
                // reply each (counted against it, as every reply is), not a thread each.
                if self.state.status_busy.swap(true, Ordering::AcqRel) {
                    return conn.send_reply_frame(Kind::StatusReply, id, &[]);
                }
                // Off the event loop: the snapshot takes locks that place threads take too.
                let (conn, state) = (conn.clone(), self.state.clone());
                let runtime = conn.runtime().clone();
                runtime.spawn_blocking(move || {
                    let addr = listen_addr().unwrap_or_default();
                    let encoded = places_core::codec::encode(&status(addr));
                    // Free before the reply goes: the peer may ask again as soon as it has it.
                    state.status_busy.store(false, Ordering::Release);
                    match encoded {
                        Ok(bytes) => conn.send_reply_frame(Kind::StatusReply, id, &bytes),
                        Err(e) => eprintln!("places-node: could not encode a status: {e}"),
                    }
                });
            }
            Kind::Shutdown if self.state.is_parent.load(Ordering::Relaxed) => {
                std::process::exit(0)
            }
            Kind::Shutdown => eprintln!(
                "places-node: ignored a shutdown from {}: only the program that started the node may end it",
                conn.peer()
            ),
            other => eprintln!(
                "places-node: ignored an unexpected {other:?} frame from {}",
                conn.peer()
            ),
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
