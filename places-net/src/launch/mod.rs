//! Starting node processes: the options, the three launchers (this host, ssh, a command
//! template), waiting for readiness, and connecting.

mod readiness;
mod ssh;
mod template;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use places_core::transport::{Settings, Window};

use crate::client::NodeLink;
use crate::error::NetError;
use crate::handshake::Cookie;
use crate::node::{HAND_OFF_ENV, LISTEN_ENV, NODE_ENV, SETTINGS_ENV, TLS_ENV, TLS_ON_STDIN};
use crate::supervise::RestartOnExit;
pub(crate) use readiness::NodeProcess;
pub use ssh::ssh_bin_path;
pub(crate) use ssh::ssh_command;

/// The port Racket's nodes listen on by default (`DEFAULT-ROUTER-PORT`). Local nodes use any free
/// port unless told otherwise, so two programs on one host never collide.
pub const DEFAULT_ROUTER_PORT: u16 = 6344;

/// The cluster's cookie, once known in this process.
static COOKIE: OnceLock<Cookie> = OnceLock::new();

/// A node takes the cookie it was started with as its cluster's: places on it that start nodes
/// or reach other nodes ([`NodeAddr::connect`](crate::NodeAddr::connect)) use it.
pub(crate) fn adopt_cluster_cookie(cookie: &Cookie) {
    let _ = COOKIE.set(cookie.clone());
}

/// The cluster cookie of this program: from `PLACES_COOKIE` (64 hex digits) if set, else random.
/// In a node, the cookie it was started with.
///
/// # Errors
///
/// [`NetError::BadCookie`] for a malformed `PLACES_COOKIE`, [`NetError::Random`] without randomness.
pub fn cluster_cookie() -> Result<Cookie, NetError> {
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
    pub(crate) listen_port: u16,
    pub(crate) listen_addr: String,
    pub(crate) exe: Option<PathBuf>,
    pub(crate) exe_args: Vec<String>,
    pub(crate) connect_retries: u32,
    pub(crate) retry_delay: Duration,
    pub(crate) ready_timeout: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) ssh_port: Option<u16>,
    pub(crate) ssh_identity: Option<PathBuf>,
    pub(crate) ssh_bin: Option<PathBuf>,
    pub(crate) ssh_options: Vec<String>,
    pub(crate) command_template: Option<String>,
    pub(crate) ship_executable: bool,
    pub(crate) settings: Settings,
    pub(crate) restart: Option<Arc<Mutex<RestartOnExit>>>,
    pub(crate) tls: Option<crate::tls::Tls>,
    pub(crate) hand_off: bool,
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
            ssh_bin: None,
            ssh_options: Vec::new(),
            command_template: None,
            ship_executable: false,
            settings: Settings::default(),
            restart: None,
            tls: None,
            hand_off: true,
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

    /// The ssh client for this node (Racket's `#:ssh-bin-path`); default:
    /// [`ssh_bin_path`](crate::ssh_bin_path), that is `PLACES_SSH` or `ssh` from `PATH`.
    pub fn ssh_bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssh_bin = Some(path.into());
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
    /// settings and the executable) and `{args}` by its arguments, all shell-quoted, each once,
    /// in one pass (what is substituted is never read for placeholders again). For example
    /// `"srun -w {host} {exe} {args}"`.
    pub fn command_template(mut self, template: impl Into<String>) -> Self {
        self.command_template = Some(template.into());
        self
    }

    /// Copies this executable to the ssh host (under `~/.cache/places/`, named by its SHA-256,
    /// checked before every use and written under a unique name, then renamed) and starts that
    /// copy, for hosts that do not have it.
    pub fn ship_executable(mut self, ship: bool) -> Self {
        self.ship_executable = ship;
        self
    }

    /// What to do when the node's process dies or its connection is lost: `true`, a
    /// [`restart_every`](crate::restart_every) policy, or a [`RestartOnExit`]. A restarted node
    /// is a new process (on a new port); the places started on it with
    /// [`supervise_place_at`](crate::supervise_place_at) and a restart policy are started
    /// again there, so a named place becomes reachable again under its name. Handles to places
    /// of the old process stay closed.
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

    /// How often to check the node is alive (default 1 s): it counts as lost after
    /// [`MISSED_HEARTBEATS`](crate::MISSED_HEARTBEATS) intervals in which nothing at all arrived
    /// from it (any byte counts, so a node busy streaming a large message is never taken for
    /// lost).
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// The flow-control window of every channel on the connection, in both directions: a
    /// sender may have up to `bytes` encoded bytes or `messages` messages outstanding that the
    /// receiver has not taken (default 4 MiB or 1024 messages; one message may be larger than
    /// the window). What a receiver holds for a channel stays within a window plus a message.
    pub fn channel_window(mut self, bytes: u64, messages: u64) -> Self {
        self.settings.window = Window::new(bytes, messages);
        self
    }

    /// Encrypts and authenticates the links with TLS (see [`Tls`](crate::Tls)): the node gets
    /// the material on its stdin after the cookie, and uses it on every link it makes or
    /// accepts; this program takes it up for its own links too
    /// ([`use_cluster_tls`](crate::use_cluster_tls)), unless it already has one.
    ///
    /// ```no_run
    /// use places_net::{create_place_node, NodeOptions, Tls};
    /// let node = create_place_node("localhost", NodeOptions::new().tls(Tls::generate()?))?;
    /// # let _ = node;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tls(mut self, tls: crate::tls::Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Whether the node hands channel ends over to the nodes they go on to (default on; see
    /// `places_core::transport::handoff`). A channel end made on the node and passed on by its
    /// holder to another node then links the two nodes directly: the node pushes the end there
    /// before the message carrying it is sent. The holder relays the end instead when it did
    /// not connect to the other node itself (it does not know where that one listens), when
    /// messages from the node wait at the holder, for ends of bounded pairs and ends sent with
    /// `try_put`, when the node cannot reach, log in to or hand the end to the other one, or
    /// with this option off.
    pub fn hand_off_channel_ends(mut self, on: bool) -> Self {
        self.hand_off = on;
        self
    }

    /// The largest message (in encoded bytes) either side of the connection accepts (default
    /// 4 GiB); a larger one is refused by `put` with a clear error.
    pub fn max_message(mut self, bytes: u64) -> Self {
        self.settings.max_message = bytes;
        self
    }
}

/// A node process, connected and shaken hands with.
pub(crate) struct Launched {
    pub(crate) link: Arc<NodeLink>,
    pub(crate) addr: String,
    pub(crate) process: NodeProcess,
}

/// Starts a node on `host` and connects to it.
pub(crate) fn launch(host: &str, opts: &NodeOptions) -> Result<Launched, NetError> {
    // A node whose `main` went on as a program would start nodes of its own without end.
    places_core::node_mode::refuse_stray();
    let cookie = cluster_cookie()?;
    crate::node::install_direct_links();
    // A program (or node) whose links use TLS starts its nodes with it too.
    if let Some(tls) = &opts.tls {
        crate::tls::use_cluster_tls(tls);
    }
    let tls = opts.tls.clone().or_else(crate::tls::cluster_tls);
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
    let s = opts.settings;
    let settings = format!("{},{},{}", s.window.bytes, s.window.messages, s.max_message);
    let mut command = if local {
        let mut c = Command::new(&exe);
        c.args(&opts.exe_args)
            .env(NODE_ENV, "1")
            .env(LISTEN_ENV, &listen)
            .env(SETTINGS_ENV, &settings);
        if tls.is_some() {
            c.env(TLS_ENV, TLS_ON_STDIN);
        }
        // Set either way: a node's own nodes do not inherit its choice.
        c.env(HAND_OFF_ENV, if opts.hand_off { "1" } else { "0" });
        c
    } else {
        if opts.ship_executable && opts.command_template.is_none() {
            exe = ssh::ship(&user_host, &exe, opts)?;
        }
        let node_cmd = quote_all(
            [
                "env".to_owned(),
                format!("{NODE_ENV}=1"),
                format!("{LISTEN_ENV}={listen}"),
                format!("{SETTINGS_ENV}={settings}"),
                format!(
                    "{TLS_ENV}={}",
                    if tls.is_some() { TLS_ON_STDIN } else { "" }
                ),
                format!("{HAND_OFF_ENV}={}", if opts.hand_off { "1" } else { "0" }),
                exe.display().to_string(),
            ]
            .into_iter(),
        )?;
        let args = quote_all(opts.exe_args.iter().cloned())?;
        match &opts.command_template {
            Some(t) => {
                let host = quote_all(std::iter::once(hostname.clone()))?;
                let mut c = Command::new("sh");
                c.arg("-c").arg(template::fill(t, &host, &node_cmd, &args));
                c
            }
            None => {
                let mut c = ssh_command(&user_host, opts)?;
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
        if let Some(tls) = &tls {
            let _ = s.write_all(tls.to_stdin().as_bytes());
        }
        let _ = s.flush();
    }
    let stderr_tail = readiness::forward_stderr(&mut child);
    let (ready, forwarder) = readiness::wait_ready(
        host,
        &exe.display().to_string(),
        &mut child,
        opts.ready_timeout,
        &stderr_tail,
    )?;
    // The node reports the address it bound; reach it by the host's name unless it is local,
    // or unless the name is no network name (a command template's `{host}` may be a network
    // namespace, a container or a scheduler's node name) and the node bound an address of its
    // own (not a wildcard or loopback, which say nothing of where it is from here).
    let addr = if local {
        // A local node on every address is reached on loopback: the wildcard is no address
        // to hand to anyone else (on another host it names that host).
        match ready.parse::<std::net::SocketAddr>() {
            Ok(a) if a.ip().is_unspecified() => {
                let lo: std::net::IpAddr = if a.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                };
                std::net::SocketAddr::new(lo, a.port()).to_string()
            }
            _ => ready.clone(),
        }
    } else {
        let port = ready.rsplit_once(':').map_or("", |(_, p)| p);
        let by_name = format!("{hostname}:{port}");
        let bound_here = ready
            .parse::<std::net::SocketAddr>()
            .ok()
            .filter(|a| !a.ip().is_unspecified() && !a.ip().is_loopback());
        match bound_here {
            Some(bound) if std::net::ToSocketAddrs::to_socket_addrs(&by_name).is_err() => {
                bound.to_string()
            }
            _ => by_name,
        }
    };
    let process = NodeProcess::new(child, stdin, forwarder);
    let stream = connect(&addr, opts)?;
    let link = NodeLink::handshake(host, &addr, stream, &cookie, opts)?;
    Ok(Launched {
        link,
        addr,
        process,
    })
}

pub(crate) fn quote_all(words: impl Iterator<Item = String>) -> Result<String, NetError> {
    let words: Vec<String> = words.collect();
    shlex::try_join(words.iter().map(String::as_str))
        .map_err(|e| NetError::Handshake(format!("cannot quote the node command: {e}")))
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
