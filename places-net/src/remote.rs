//! The creator's side: starting nodes, and remote places whose handles work like local ones.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use places_core::{FrameSink, Message, PlaceChannel};

use crate::connection::{Connection, Handler};
use crate::error::NetError;
use crate::handshake::{self, Cookie};
use crate::node::{ConnectRequest, SpawnRequest, FAILED_LINE, LISTEN_ENV, NODE_ENV, READY_LINE};
use crate::wire::{Frame, Kind, DEFAULT_MAX_FRAME};

/// The port Racket's nodes listen on by default (`DEFAULT-ROUTER-PORT`). Local nodes use any free
/// port unless told otherwise, so two programs on one host never collide.
pub const DEFAULT_ROUTER_PORT: u16 = 6344;

/// The cluster cookie of this program: from `PLACES_COOKIE` (64 hex digits) if set, else random.
///
/// # Errors
///
/// [`NetError::BadCookie`] for a malformed `PLACES_COOKIE`, [`NetError::Random`] without randomness.
pub fn cluster_cookie() -> Result<Cookie, NetError> {
    static COOKIE: OnceLock<Cookie> = OnceLock::new();
    if let Some(c) = COOKIE.get() {
        return Ok(c.clone());
    }
    let c = match std::env::var("PLACES_COOKIE") {
        Ok(hex) => Cookie::from_hex(&hex)?,
        Err(_) => Cookie::random()?,
    };
    Ok(COOKIE.get_or_init(|| c).clone())
}

/// How to start and reach a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    listen_port: u16,
    listen_addr: String,
    exe: Option<PathBuf>,
    exe_args: Vec<String>,
    connect_retries: u32,
    retry_delay: Duration,
    ready_timeout: Duration,
    heartbeat: Duration,
    ssh_port: Option<u16>,
    ssh_identity: Option<PathBuf>,
    ssh_options: Vec<String>,
    command_template: Option<String>,
    ship_executable: bool,
    restart: Option<Arc<Mutex<RestartOnExit>>>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            listen_port: 0,
            listen_addr: "127.0.0.1".to_owned(),
            exe: None,
            exe_args: Vec::new(),
            connect_retries: 5,
            retry_delay: Duration::from_millis(100),
            ready_timeout: Duration::from_secs(30),
            heartbeat: Duration::from_secs(1),
            ssh_port: None,
            ssh_identity: None,
            ssh_options: Vec::new(),
            command_template: None,
            ship_executable: false,
            restart: None,
        }
    }
}

impl NodeOptions {
    /// Default options: any free port, this executable, 5 connection tries 100 ms apart.
    pub fn new() -> Self {
        Self::default()
    }

    /// The port the node listens on; 0 (the default for local nodes) picks a free one.
    pub fn listen_port(mut self, port: u16) -> Self {
        self.listen_port = port;
        self
    }

    /// The address the node listens on (default `127.0.0.1`, loopback: reachable only from its
    /// own host). A node on another host that this program must reach needs an address of that
    /// host, e.g. `0.0.0.0`; connections are authenticated by the cluster cookie either way.
    pub fn listen_addr(mut self, addr: impl Into<String>) -> Self {
        self.listen_addr = addr.into();
        self
    }

    /// The ssh port of the host (default: ssh's own default or `~/.ssh/config`).
    pub fn ssh_port(mut self, port: u16) -> Self {
        self.ssh_port = Some(port);
        self
    }

    /// The ssh identity file (default: ssh's own or `~/.ssh/config`'s).
    pub fn ssh_identity(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssh_identity = Some(path.into());
        self
    }

    /// Extra options for the ssh client, e.g. `["-o", "UserKnownHostsFile=/tmp/known"]`.
    pub fn ssh_options<I, A>(mut self, options: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        self.ssh_options = options.into_iter().map(Into::into).collect();
        self
    }

    /// Starts the node through a shell command instead of directly or over ssh, for cluster
    /// schedulers: `{host}` is replaced by the host, `{exe}` by the node command (environment
    /// settings and the executable) and `{args}` by its arguments, all shell-quoted. For example
    /// `"srun -w {host} {exe} {args}"`.
    pub fn command_template(mut self, template: impl Into<String>) -> Self {
        self.command_template = Some(template.into());
        self
    }

    /// Copies this executable to the ssh host (under `~/.cache/places/`, named by its SHA-256,
    /// so each build is copied once) and starts that copy, for hosts that do not have it.
    pub fn ship_executable(mut self, ship: bool) -> Self {
        self.ship_executable = ship;
        self
    }

    /// What to do when the node's process dies or its connection is lost: `true`, a
    /// [`restart_every`] policy, or a [`RestartOnExit`]. A restarted node is a new process (on a
    /// new port); the places started on it with [`supervise_place_at`] and a restart policy are
    /// started again there, so a named place becomes reachable again under its name. Handles to
    /// places of the old process stay closed.
    pub fn restart_on_exit(mut self, policy: impl Into<RestartOnExit>) -> Self {
        self.restart = Some(Arc::new(Mutex::new(policy.into())));
        self
    }

    /// The executable to start as the node (default: this program's own executable).
    pub fn exe(mut self, path: impl Into<PathBuf>) -> Self {
        self.exe = Some(path.into());
        self
    }

    /// Arguments for the node's executable. A test binary serves as a node when these select a
    /// test that calls `places::init()`: `["places_node", "--exact", "--nocapture"]`.
    pub fn exe_args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        self.exe_args = args.into_iter().map(Into::into).collect();
        self
    }

    /// How often, and how far apart, to try to connect once the node is ready (Racket's
    /// `retry-times` and `delay`).
    pub fn connect_retries(mut self, tries: u32, delay: Duration) -> Self {
        self.connect_retries = tries.max(1);
        self.retry_delay = delay;
        self
    }

    /// How long the node has to report readiness (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Options for a node that is an integration-test binary: the launcher runs only the test
    /// `test_name`, which must call `places::init()` (a no-op when the binary runs as tests).
    ///
    /// ```text
    /// #[test]
    /// fn places_node() {
    ///     places::init().unwrap();
    /// }
    ///
    /// let node = places::create_place_node("localhost", NodeOptions::for_test_binary("places_node"))?;
    /// ```
    pub fn for_test_binary(test_name: &str) -> Self {
        Self::default().exe_args([test_name, "--exact", "--nocapture", "--test-threads=1"])
    }

    /// Options for a node that is this integration-test binary, serving through the test that
    /// `places::node_test_entry!()` defines.
    pub fn for_this_test_binary() -> Self {
        Self::for_test_binary("places_node")
    }

    /// How often to check the node is alive; after three silent intervals it counts as lost.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }
}

/// Starts a node on `host` and connects to it (Racket's `create-place-node`).
///
/// - `localhost` (or `127.0.0.1`) starts this executable (or [`NodeOptions::exe`]) directly as
///   a child process in node mode.
/// - Any other host, or `user@host`, goes through the system `ssh` client ([`ssh_bin_path`]), so
///   `~/.ssh/config` applies; [`NodeOptions::ssh_port`] and [`NodeOptions::ssh_identity`] set
///   the port and key.
/// - [`NodeOptions::command_template`] runs a shell command instead (cluster schedulers).
///
/// The cookie reaches the node on its stdin, never on its command line. The node ends when this
/// program ends or drops the node.
///
/// # Errors
///
/// A [`NetError`] that says what failed: the start, an early exit (with the node's or ssh's
/// own error output), the readiness timeout, the connection, or the handshake.
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
        changed: std::sync::Condvar::new(),
    });
    if let Some(policy) = opts.restart.clone() {
        let (slot, host, opts) = (slot.clone(), host.to_owned(), opts.clone());
        std::thread::Builder::new()
            .name(format!("places node supervisor {host}"))
            .spawn(move || supervise_node(&slot, &host, &opts, &policy))
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

/// A node process, connected and shaken hands with.
struct Launched {
    link: Arc<NodeLink>,
    addr: String,
    process: NodeProcess,
}

fn launch(host: &str, opts: &NodeOptions) -> Result<Launched, NetError> {
    let cookie = cluster_cookie()?;
    let (user_host, hostname) = match host.rsplit_once('@') {
        Some((_, h)) => (host.to_owned(), h.to_owned()),
        None => (host.to_owned(), host.to_owned()),
    };
    let local = opts.command_template.is_none()
        && !host.contains('@')
        && (host == "localhost" || host == "127.0.0.1");
    let mut exe = match &opts.exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|source| NetError::Launch {
            host: host.to_owned(),
            exe: "the current executable".into(),
            source,
        })?,
    };
    let listen = format!("{}:{}", opts.listen_addr, opts.listen_port);
    let mut command = if local {
        let mut c = Command::new(&exe);
        c.args(&opts.exe_args)
            .env(NODE_ENV, "1")
            .env(LISTEN_ENV, &listen);
        c
    } else {
        if opts.ship_executable && opts.command_template.is_none() {
            exe = ship(&user_host, &exe, opts)?;
        }
        let node_cmd = quote_all(
            [
                "env".to_owned(),
                format!("{NODE_ENV}=1"),
                format!("{LISTEN_ENV}={listen}"),
                exe.display().to_string(),
            ]
            .into_iter(),
        )?;
        let args = quote_all(opts.exe_args.iter().cloned())?;
        match &opts.command_template {
            Some(template) => {
                let line = template
                    .replace("{host}", &quote_all(std::iter::once(hostname.clone()))?)
                    .replace("{exe}", &node_cmd)
                    .replace("{args}", &args);
                let mut c = Command::new("sh");
                c.arg("-c").arg(line);
                c
            }
            None => {
                let mut c = ssh_command(&user_host, opts);
                c.arg(format!("{node_cmd} {args}"));
                c
            }
        }
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetError::Launch {
            host: host.to_owned(),
            exe: format!("{:?}", command.get_program()),
            source,
        })?;
    let mut stdin = child.stdin.take();
    if let Some(s) = stdin.as_mut() {
        // The cookie goes on stdin, never on the command line where `ps` would show it.
        let _ = writeln!(s, "{}", cookie.to_hex());
        let _ = s.flush();
    }
    let stderr_tail = forward_stderr(&mut child);
    let (ready, forwarder) = wait_ready(host, &mut child, opts.ready_timeout, &stderr_tail)?;
    // The node reports the address it bound; reach it by the host's name unless it is local.
    let addr = if local {
        ready.clone()
    } else {
        let port = ready.rsplit_once(':').map_or("", |(_, p)| p);
        format!("{hostname}:{port}")
    };
    let stream = connect(&addr, opts)?;
    let process = NodeProcess {
        child,
        stdin,
        forwarder,
    };
    let link = NodeLink::handshake(host, &addr, stream, &cookie, opts.heartbeat)?;
    Ok(Launched {
        link,
        addr,
        process,
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

/// The ssh client this program uses: `PLACES_SSH` if set, else `ssh` from `PATH` (Racket's
/// `ssh-bin-path`).
pub fn ssh_bin_path() -> PathBuf {
    std::env::var_os("PLACES_SSH").map_or_else(|| PathBuf::from("ssh"), PathBuf::from)
}

fn ssh_command(dest: &str, opts: &NodeOptions) -> Command {
    let mut c = Command::new(ssh_bin_path());
    // Never prompt: a node start that needs a password fails with ssh's message instead.
    c.args(["-o", "BatchMode=yes"]);
    if let Some(port) = opts.ssh_port {
        c.arg("-p").arg(port.to_string());
    }
    if let Some(id) = &opts.ssh_identity {
        c.arg("-i").arg(id);
    }
    c.args(&opts.ssh_options).arg(dest).arg("--");
    c
}

fn quote_all(words: impl Iterator<Item = String>) -> Result<String, NetError> {
    let words: Vec<String> = words.collect();
    shlex::try_join(words.iter().map(String::as_str))
        .map_err(|e| NetError::Handshake(format!("cannot quote the node command: {e}")))
}

/// Copies `exe` to `dest` over ssh unless a copy of this build is there already; returns the
/// path of the copy on that host.
fn ship(dest: &str, exe: &std::path::Path, opts: &NodeOptions) -> Result<PathBuf, NetError> {
    use sha2::Digest;
    let launch_err = |source: std::io::Error| NetError::Launch {
        host: dest.to_owned(),
        exe: exe.display().to_string(),
        source,
    };
    let bytes = std::fs::read(exe).map_err(launch_err)?;
    let digest = sha2::Sha256::digest(&bytes);
    let hash: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    let name = exe.file_name().map_or_else(
        || "places-node".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let dir = format!(".cache/places/{hash}");
    let path = format!("{dir}/{name}");
    let qpath = quote_all(std::iter::once(path.clone()))?;
    let qdir = quote_all(std::iter::once(dir))?;
    let script = format!(
        "test -x {qpath} || {{ mkdir -p {qdir} && cat > {qpath}.part && chmod +x {qpath}.part && mv {qpath}.part {qpath}; }}"
    );
    let mut c = ssh_command(dest, opts);
    let mut child = c
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(launch_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // When the copy is there already, the remote side does not read: a broken pipe here
        // is expected then.
        let _ = stdin.write_all(&bytes);
    }
    let out = child.wait_with_output().map_err(launch_err)?;
    if !out.status.success() {
        return Err(NetError::ExitedEarly {
            host: dest.to_owned(),
            status: out.status.to_string(),
            output: format!(
                "copying the executable failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    // Relative to the remote home directory, where ssh starts.
    Ok(PathBuf::from(path))
}

/// Forwards the node's stderr to ours, keeping its last lines for error messages.
fn forward_stderr(child: &mut Child) -> Arc<Mutex<std::collections::VecDeque<String>>> {
    let tail = Arc::new(Mutex::new(std::collections::VecDeque::new()));
    if let Some(err) = child.stderr.take() {
        let tail = tail.clone();
        std::thread::spawn(move || {
            let mut stderr = std::io::stderr();
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(stderr, "{line}");
                let mut t = tail.lock().unwrap_or_else(PoisonError::into_inner);
                if t.len() == 20 {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
    }
    tail
}

/// Reads the node's stdout until its readiness line, forwarding everything else to our stdout.
fn wait_ready(
    host: &str,
    child: &mut Child,
    timeout: Duration,
    stderr_tail: &Mutex<std::collections::VecDeque<String>>,
) -> Result<(String, Option<JoinHandle<()>>), NetError> {
    let (tx, rx) = crossbeam_channel::bounded::<Result<String, String>>(1);
    let mut forwarder = None;
    if let Some(out) = child.stdout.take() {
        forwarder = Some(std::thread::spawn(move || {
            let mut reported = false;
            let mut stdout = std::io::stdout();
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // Anywhere in the line: a test harness prints `test NAME ... ` without a
                // newline before the node's first line.
                if !reported {
                    if let Some(at) = line.find(READY_LINE) {
                        reported = true;
                        let _ = tx.send(Ok(line[at + READY_LINE.len()..].trim().to_owned()));
                        continue;
                    }
                    if let Some(at) = line.find(FAILED_LINE) {
                        reported = true;
                        let _ = tx.send(Err(line[at + FAILED_LINE.len()..].to_owned()));
                        continue;
                    }
                }
                // What the node's places print shows up here, as Racket's nodes' output does.
                let _ = writeln!(stdout, "{line}");
            }
            if !reported {
                let _ = tx.send(Err(String::new()));
            }
        }));
    }
    let outcome = rx.recv_timeout(timeout);
    let early_exit = |child: &mut Child, output: String| {
        let status = child
            .wait()
            .map_or_else(|e| e.to_string(), |s| s.to_string());
        // Give the stderr forwarder a moment to take the last lines (ssh's own message).
        std::thread::sleep(Duration::from_millis(50));
        let tail: Vec<String> = stderr_tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let output = match (output.is_empty(), tail.is_empty()) {
            (_, true) => output,
            (true, false) => tail.join(" / "),
            (false, false) => format!("{output} / {}", tail.join(" / ")),
        };
        NetError::ExitedEarly {
            host: host.to_owned(),
            status,
            output,
        }
    };
    match outcome {
        Ok(Ok(addr)) => Ok((addr, forwarder)),
        Ok(Err(output)) => Err(early_exit(child, output)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(NetError::NotReady {
                host: host.to_owned(),
                timeout,
            })
        }
    }
}

fn connect(addr: &str, opts: &NodeOptions) -> Result<TcpStream, NetError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match TcpStream::connect(addr) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(source) if tries >= opts.connect_retries => {
                return Err(NetError::Connect {
                    addr: addr.to_owned(),
                    tries,
                    source,
                })
            }
            Err(_) => std::thread::sleep(opts.retry_delay),
        }
    }
}

/// A place's completion, as reported by its node.
struct Completion {
    code: OnceLock<i32>,
    /// Dropped when the code is set or the node is lost; waiters wake on the disconnection.
    done_tx: Mutex<Option<Sender<()>>>,
    done_rx: Receiver<()>,
}

impl Completion {
    fn new() -> Arc<Completion> {
        let (tx, rx) = crossbeam_channel::bounded(0);
        Arc::new(Completion {
            code: OnceLock::new(),
            done_tx: Mutex::new(Some(tx)),
            done_rx: rx,
        })
    }

    fn finish(&self, code: i32) {
        let _ = self.code.set(code);
        self.done_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// The creator's side of one connection: pending spawns and completions.
#[derive(Default)]
struct Client {
    spawns: Mutex<HashMap<u64, Sender<Result<(), String>>>>,
    completions: Mutex<HashMap<u64, Arc<Completion>>>,
}

impl Handler for Client {
    fn frame(&self, _conn: &Arc<Connection>, frame: Frame) -> Result<(), String> {
        match frame.kind {
            Kind::SpawnOk | Kind::SpawnErr => {
                let waiter = self
                    .spawns
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&frame.channel);
                let reply = if frame.kind == Kind::SpawnOk {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&frame.payload).into_owned())
                };
                match waiter {
                    Some(w) => {
                        let _ = w.send(reply);
                        Ok(())
                    }
                    None => Err(format!("spawn reply for unknown channel {}", frame.channel)),
                }
            }
            Kind::Exit => {
                let code = <[u8; 4]>::try_from(&frame.payload[..])
                    .map(i32::from_le_bytes)
                    .map_err(|_| "malformed exit frame".to_owned())?;
                // The place has ended for good: its entry goes (its handle keeps the value).
                let c = self
                    .completions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&frame.channel);
                if let Some(c) = c {
                    c.finish(code);
                }
                Ok(())
            }
            Kind::Pong => Ok(()),
            Kind::Log => {
                let record: places_core::LogRecord = places_core::codec::decode(&frame.payload)
                    .map_err(|e| format!("undecodable log record: {e}"))?;
                places_core::log_record(record);
                Ok(())
            }
            other => Err(format!("unexpected {other:?} frame from a node")),
        }
    }

    fn lost(&self, _conn: &Arc<Connection>, reason: &str) {
        for (_, w) in self
            .spawns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
        {
            let _ = w.send(Err(reason.to_owned()));
        }
        // A place whose node is gone completes with 1, like a killed one.
        for (_, c) in self
            .completions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
        {
            c.finish(1);
        }
    }
}

/// A node this program started and is connected to (Racket's `remote-node%`).
pub struct RemoteNode {
    slot: Arc<NodeSlot>,
    /// The name of the first incarnation, for errors.
    name: String,
    /// The place `spawn_node_with_place_at` started, until it is taken.
    first: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

/// What talking to a node needs, shared with the threads that supervise its places.
pub(crate) struct NodeLink {
    name: String,
    conn: Arc<Connection>,
    client: Arc<Client>,
}

impl NodeLink {
    fn handshake(
        host: &str,
        addr: &str,
        mut stream: TcpStream,
        cookie: &Cookie,
        heartbeat: Duration,
    ) -> Result<Arc<NodeLink>, NetError> {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        handshake::client(&mut stream, cookie)?;
        let _ = stream.set_read_timeout(None);
        let name = format!("{host} ({addr})");
        let lost = |e: std::io::Error| NetError::Lost {
            node: name.clone(),
            reason: e.to_string(),
        };
        // From here on the connection belongs to this process's event loop: a task reads its
        // frames; senders write their own.
        let closer = stream.try_clone().map_err(lost)?;
        stream.set_nonblocking(true).map_err(lost)?;
        let runtime = crate::event_loop::runtime().map_err(lost)?;
        let stream = {
            let _inside = runtime.enter();
            Arc::new(tokio::net::TcpStream::from_std(stream).map_err(lost)?)
        };
        let conn = Connection::new_evented(
            name.clone(),
            stream.clone(),
            closer,
            runtime.handle().clone(),
            1,
        );
        let client = Arc::new(Client::default());
        let handler: Arc<dyn Handler> = client.clone();
        runtime.spawn(
            conn.clone()
                .read_loop_evented(stream, DEFAULT_MAX_FRAME, handler),
        );
        start_heartbeat(&conn, heartbeat);
        Ok(Arc::new(NodeLink { name, conn, client }))
    }
    fn spawn_place<S: Message, R: Message>(
        &self,
        module: &str,
        name: &str,
        named: Option<String>,
    ) -> Result<RemotePlace<S, R>, NetError> {
        let req = SpawnRequest {
            module: module.to_owned(),
            name: name.to_owned(),
            receives: std::any::type_name::<S>().to_owned(),
            sends: std::any::type_name::<R>().to_owned(),
            named,
        };
        let key = format!("{module}::{name}");
        let completion = Completion::new();
        let (channel, id) =
            self.request::<S, R>(Kind::Spawn, &req, &key, Some(completion.clone()))?;
        Ok(RemotePlace {
            channel,
            conn: self.conn.clone(),
            id,
            completion,
        })
    }

    /// Opens a channel, sends a request for it (a spawn or a connect) and waits for the reply.
    fn request<S: Message, R: Message>(
        &self,
        kind: Kind,
        req: &impl serde::Serialize,
        what: &str,
        completion: Option<Arc<Completion>>,
    ) -> Result<(PlaceChannel<S, R>, u64), NetError> {
        let id = self.conn.next_id();
        let sink: Arc<dyn FrameSink> = self.conn.clone();
        let (channel, inbound) = places_core::remote_channel::<S, R>(sink, id);
        self.conn.register(id, inbound);
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.client
            .spawns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        if let Some(c) = completion {
            self.client
                .completions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, c);
        }
        let bytes = places_core::codec::encode(req).map_err(|e| self.lost(e.to_string()))?;
        self.conn.send(kind, id, &bytes).map_err(|r| self.lost(r))?;
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => Ok((channel, id)),
            Ok(Err(reason)) => {
                // The spawn failed: no completion will ever be reported for it.
                self.client
                    .completions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
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

    fn lost(&self, reason: String) -> NetError {
        NetError::Lost {
            node: self.name.clone(),
            reason,
        }
    }
}

/// The process of a node this program started.
struct NodeProcess {
    child: Child,
    /// Holding the node's stdin keeps it alive; dropping it ends the node.
    stdin: Option<ChildStdin>,
    /// Copies the node's stdout to ours; ends when the node does.
    forwarder: Option<JoinHandle<()>>,
}

impl RemoteNode {
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

    /// The node's process id, for a node this program started.
    pub fn pid(&self) -> Option<u32> {
        self.slot.lock().process.as_ref().map(|p| p.child.id())
    }

    /// How many times the node has been restarted.
    pub fn restarts(&self) -> u64 {
        self.slot.lock().generation
    }

    fn link(&self) -> Arc<NodeLink> {
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
        self.link().spawn_place(module, name, None)
    }

    /// Takes the place that [`spawn_node_with_place_at`] started (Racket's
    /// `node-get-first-place`). Returns `None` if there is none, it was taken already, or `S`
    /// and `R` are not its types.
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
        let _ = self.link().conn.send(Kind::Shutdown, 0, &[]);
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

impl NodeProcess {
    /// Closes the node's stdin, which ends it, and waits (briefly) for it, so that everything its
    /// places printed has been passed on before this program goes on or exits.
    fn shut_down(self) {
        let NodeProcess {
            mut child,
            stdin,
            forwarder,
        } = self;
        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(f) = forwarder {
            let _ = f.join();
        }
    }
}

/// The current incarnation of a node, shared with the threads that supervise it and its places.
pub(crate) struct NodeSlot {
    state: Mutex<NodeState>,
    /// Signalled when the node is restarted or its handle dropped.
    changed: std::sync::Condvar,
}

struct NodeState {
    link: Arc<NodeLink>,
    addr: String,
    process: Option<NodeProcess>,
    /// How many times the node has been restarted.
    generation: u64,
    /// The `RemoteNode` is gone: supervision ends.
    dropped: bool,
}

impl NodeSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the node has a generation after `seen` (restarted) or its handle is dropped;
    /// returns the new link, or `None` when there will be none.
    fn next_link(&self, seen: u64, limit: Duration) -> Option<(Arc<NodeLink>, u64)> {
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

/// Restarts a node whose process died, by its policy, for as long as its handle lives.
fn supervise_node(slot: &NodeSlot, host: &str, opts: &NodeOptions, policy: &Mutex<RestartOnExit>) {
    let mut attempts = 0u32;
    let mut started = Instant::now();
    loop {
        // Wait for the current process to be lost (or the handle dropped).
        let generation = loop {
            {
                let st = slot.lock();
                if st.dropped {
                    return;
                }
                if st.link.conn.lost_reason().is_some() {
                    break st.generation;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let restart = policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .decide(1, started.elapsed(), &mut attempts);
        if !restart {
            return;
        }
        match launch(host, opts) {
            Ok(l) => {
                let old = {
                    let mut st = slot.lock();
                    if st.dropped {
                        drop(st);
                        l.process.shut_down();
                        return;
                    }
                    st.link = l.link;
                    st.addr = l.addr;
                    st.generation = generation + 1;
                    st.process.replace(l.process)
                };
                slot.changed.notify_all();
                started = Instant::now();
                if let Some(p) = old {
                    std::thread::spawn(move || p.shut_down());
                }
            }
            // A failed start counts as a failed run; the policy decides about the next try.
            Err(e) => {
                places_core::log_message(
                    places_core::Severity::Warning,
                    format!("restarting node {host} failed: {e}"),
                );
                started = Instant::now();
                let mut st = slot.lock();
                st.generation = generation;
                drop(st);
            }
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

fn start_heartbeat(conn: &Arc<Connection>, interval: Duration) {
    let weak = Arc::downgrade(conn);
    let limit = (interval * 3).as_millis() as u64;
    let _ = std::thread::Builder::new()
        .name("places heartbeat".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            let Some(conn) = weak.upgrade() else { return };
            if conn.lost_reason().is_some() {
                return;
            }
            if conn.silent_for_ms() > limit {
                conn.fail(&format!(
                    "no heartbeat reply for {} ms",
                    conn.silent_for_ms()
                ));
                return;
            }
            // Never wait behind a stuck writer: a busy connection needs no ping.
            conn.ping_if_idle();
        });
}

/// A place on another node: the same channel API as a local [`Place`](places_core::Place).
pub struct RemotePlace<S, R = S> {
    channel: PlaceChannel<S, R>,
    conn: Arc<Connection>,
    id: u64,
    completion: Arc<Completion>,
}

impl<S, R> RemotePlace<S, R> {
    /// Waits for the place to end and returns its completion value: 0 or its exit code when it
    /// returns, 1 when it panics, is killed, or its node is lost.
    pub fn wait(&self) -> i32 {
        let _ = self.completion.done_rx.recv();
        self.completion.code.get().copied().unwrap_or(1)
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<i32> {
        match self.completion.done_rx.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => None,
            _ => Some(self.completion.code.get().copied().unwrap_or(1)),
        }
    }

    /// Kills the place on its node.
    pub fn kill(&self) {
        let _ = self.conn.send(Kind::Kill, self.id, &[]);
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
        f.debug_struct("RemotePlace")
            .field("node", &self.conn.peer())
            .field("channel", &self.id)
            .finish()
    }
}

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

/// What to do when a supervised place ends (Racket's `#:restart-on-exit`).
#[derive(Default)]
pub enum RestartOnExit {
    /// Leave it ended (the default).
    #[default]
    Never,
    /// Start it again at once, every time it ends (Racket's `#t`).
    Always,
    /// Racket's `restarter%`: see [`restart_every`].
    Every(RestartEvery),
    /// Ask a callback, with the completion value, whether to start it again.
    Custom(Box<dyn FnMut(i32) -> bool + Send>),
}

impl std::fmt::Debug for RestartOnExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartOnExit::Never => f.write_str("Never"),
            RestartOnExit::Always => f.write_str("Always"),
            RestartOnExit::Every(e) => write!(f, "Every({}s, retries {:?})", e.secs, e.retries),
            RestartOnExit::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl RestartOnExit {
    /// Whether to start again something that ended with `code` after running for `lived`;
    /// sleeps the policy's period first. `attempts` counts restarts in a row.
    fn decide(&mut self, code: i32, lived: Duration, attempts: &mut u32) -> bool {
        match self {
            RestartOnExit::Never => false,
            RestartOnExit::Always => true,
            RestartOnExit::Custom(f) => f(code),
            RestartOnExit::Every(e) => {
                let period = Duration::from_secs_f64(e.secs);
                if lived >= period * 2 {
                    *attempts = 0;
                }
                if e.retries.is_none_or(|n| *attempts < n) {
                    std::thread::sleep(period);
                    *attempts += 1;
                    if let Some(f) = e.on_restart.as_mut() {
                        f(*attempts);
                    }
                    true
                } else {
                    if let Some(f) = e.on_final_fail.take() {
                        f();
                    }
                    false
                }
            }
        }
    }
}

impl From<bool> for RestartOnExit {
    fn from(restart: bool) -> Self {
        if restart {
            RestartOnExit::Always
        } else {
            RestartOnExit::Never
        }
    }
}

impl From<RestartEvery> for RestartOnExit {
    fn from(e: RestartEvery) -> Self {
        RestartOnExit::Every(e)
    }
}

/// A restart policy (Racket's `restart-every`): start the place again `secs` seconds after it
/// ends, at most `retry(n)` times in a row; a place that stayed up for twice `secs` before it
/// ended starts a fresh count. When the tries run out, `on_final_fail` runs, once.
pub struct RestartEvery {
    secs: f64,
    retries: Option<u32>,
    on_final_fail: Option<Box<dyn FnOnce() + Send>>,
    on_restart: Option<Box<dyn FnMut(u32) + Send>>,
}

/// A restart policy that retries every `secs` seconds, without limit until [`RestartEvery::retry`]
/// sets one.
///
/// # Examples
///
/// ```
/// use places::{restart_every, PlaceOptions};
///
/// let opts = PlaceOptions::new().restart_on_exit(
///     restart_every(1.0).retry(3).on_final_fail(|| eprintln!("the place keeps failing")),
/// );
/// # let _ = opts;
/// ```
pub fn restart_every(secs: f64) -> RestartEvery {
    RestartEvery {
        secs: secs.max(0.0),
        retries: None,
        on_final_fail: None,
        on_restart: None,
    }
}

impl RestartEvery {
    /// Gives up after `n` restarts in a row.
    pub fn retry(mut self, n: u32) -> Self {
        self.retries = Some(n);
        self
    }

    /// Runs `f` once when the restarts run out.
    pub fn on_final_fail(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_final_fail = Some(Box::new(f));
        self
    }

    /// Runs `f` with the attempt number (from 1) each time the place is started again.
    pub fn on_restart(mut self, f: impl FnMut(u32) + Send + 'static) -> Self {
        self.on_restart = Some(Box::new(f));
        self
    }
}

impl PlaceOptions {
    /// Default options: an unnamed place.
    pub fn new() -> Self {
        Self::default()
    }

    /// What to do when the place ends: `true`, a [`restart_every`] policy, or a
    /// [`RestartOnExit`]. A restarted named place is reachable again under its name; the handle
    /// [`supervise_place_at`] returned keeps referring to the first instance.
    pub fn restart_on_exit(mut self, policy: impl Into<RestartOnExit>) -> Self {
        self.restart = policy.into();
        self
    }

    /// Registers the place on its node under `name` (Racket's `#:named`), so that any program
    /// connected to the node can reach it with [`connect_to_named_place`]. The entry must
    /// receive [`Routed`](places_core::Routed) messages: `fn(PlaceChannel<S, Routed<Req, Resp>>)`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.named = Some(name.into());
        self
    }
}

/// Starts the entry `module::name` on `node` (Racket's `supervise-place-at`), under a name when
/// the options give one. Restart policies arrive with the supervision layer.
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
            let _ = done.done_rx.recv();
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
            let code = done.code.get().copied().unwrap_or(1);
            if !self.policy.decide(code, started.elapsed(), &mut attempts) {
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

/// Opens a new connection to the place registered as `name` on `node` (Racket's
/// `connect-to-named-place`): what is put on the returned channel reaches the place as
/// [`Routed`](places_core::Routed) messages whose `reply` leads back to this channel only.
///
/// # Errors
///
/// [`NetError::Spawn`] when no place of that name runs there (the error lists the names that
/// do) or it takes other message types; [`NetError::Lost`] when the node is gone.
pub fn connect_to_named_place<Req: Message, Resp: Message>(
    node: &RemoteNode,
    name: &str,
) -> Result<PlaceChannel<Req, Resp>, NetError> {
    let req = ConnectRequest {
        name: name.to_owned(),
        receives: std::any::type_name::<places_core::Routed<Req, Resp>>().to_owned(),
    };
    node.link()
        .request::<Req, Resp>(Kind::Connect, &req, name, None)
        .map(|(ch, _)| ch)
}

/// Starts a node on `host` with one place running `module::name` on it (Racket's
/// `spawn-node-with-place-at`); the place is the node's [`first_place`](RemoteNode::first_place).
///
/// # Errors
///
/// The errors of [`create_place_node`] and of [`RemoteNode::dynamic_place`].
pub fn spawn_node_with_place_at<S: Message, R: Message>(
    host: &str,
    module: &str,
    name: &str,
    opts: NodeOptions,
) -> Result<RemoteNode, NetError> {
    let (node, place) =
        spawn_node_supervise_place_at::<S, R>(host, module, name, opts, PlaceOptions::new())?;
    *node.first.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(place));
    Ok(node)
}

/// Starts a node on `host` and a place on it, returning both (Racket's
/// `spawn-node-supervise-place-at`).
///
/// # Errors
///
/// The errors of [`create_place_node`] and of [`supervise_place_at`].
pub fn spawn_node_supervise_place_at<S: Message, R: Message>(
    host: &str,
    module: &str,
    name: &str,
    node_opts: NodeOptions,
    place_opts: PlaceOptions,
) -> Result<(RemoteNode, RemotePlace<S, R>), NetError> {
    let node = create_place_node(host, node_opts)?;
    let place = supervise_place_at(&node, module, name, place_opts)?;
    Ok((node, place))
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

/// A process started by [`supervise_process_at`].
pub struct RemoteProcess {
    host: String,
    pid: u32,
    status: Arc<(Mutex<Option<i32>>, std::sync::Condvar)>,
}

/// Starts the command `argv` on `host` (directly on `localhost`, else through ssh as nodes are)
/// and watches it (Racket's `supervise-process-at`): when it ends, its exit is logged to the
/// root node (see `log_message`) and [`RemoteProcess::wait`] returns its status.
///
/// # Errors
///
/// [`NetError::Launch`] when the command cannot be started (or `argv` is empty).
pub fn supervise_process_at(
    host: &str,
    argv: &[&str],
    opts: &NodeOptions,
) -> Result<RemoteProcess, NetError> {
    let launch_err = |source: std::io::Error| NetError::Launch {
        host: host.to_owned(),
        exe: argv.join(" "),
        source,
    };
    let Some((program, args)) = argv.split_first() else {
        return Err(launch_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command",
        )));
    };
    let local = !host.contains('@') && (host == "localhost" || host == "127.0.0.1");
    let mut command = if local {
        let mut c = Command::new(program);
        c.args(args);
        c
    } else {
        let mut c = ssh_command(host, opts);
        c.arg(quote_all(argv.iter().map(|a| (*a).to_owned()))?);
        c
    };
    let mut child = command.stdin(Stdio::null()).spawn().map_err(launch_err)?;
    let pid = child.id();
    let status = Arc::new((Mutex::new(None), std::sync::Condvar::new()));
    let watch = status.clone();
    let who = format!("PROCESS {pid} on {host} ({})", argv.join(" "));
    std::thread::spawn(move || {
        let code = match child.wait() {
            Ok(s) => s.code().unwrap_or(-1),
            Err(_) => -1,
        };
        places_core::log_message(
            places_core::Severity::Info,
            format!("{who} exited with status {code}"),
        );
        let (lock, cvar) = &*watch;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = Some(code);
        cvar.notify_all();
    });
    Ok(RemoteProcess {
        host: host.to_owned(),
        pid,
        status,
    })
}

impl RemoteProcess {
    /// The process id (on its host).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The host it runs on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Waits for the process to end and returns its exit status (-1 when killed by a signal).
    pub fn wait(&self) -> i32 {
        let (lock, cvar) = &*self.status;
        let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(code) = *s {
                return code;
            }
            s = cvar.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<i32> {
        let (lock, cvar) = &*self.status;
        let s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (s, _) = cvar
            .wait_timeout_while(s, timeout, |s| s.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        *s
    }
}

impl std::fmt::Debug for RemoteProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteProcess")
            .field("host", &self.host)
            .field("pid", &self.pid)
            .finish()
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
