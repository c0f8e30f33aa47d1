//! Direct links between the members of a group that live in different processes.
//!
//! A group over processes forms in three steps: every member listens on a port of its own
//! ([`MeshListener::bind`]), the members learn each other's addresses through a *rendezvous*
//! (the program that started them, in [`fork_join_on`](crate::fork_join_on); the PMI key-value
//! space of `mpiexec` or `srun`), and then every member connects to every member of a lower rank
//! ([`form`]). Each connection is authenticated with the group's secret (a fresh random key that
//! travels inside the invitations, or the launcher's), one per pair, and after that a message
//! from member `i` to member `j` travels from `i`'s process to `j`'s in one hop: no node or
//! program in between relays anything.

mod link;
#[cfg(unix)]
mod pmi;
mod stream;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use places_core::{Comm, Link, PlaceChannel};
use serde::{Deserialize, Serialize};

use crate::error::NetError;
use crate::handshake::Cookie;

pub use link::{MeshLink, MAX_TYPE_NAME, QUEUE, QUEUE_BYTES, RESERVE};
#[cfg(unix)]
pub use pmi::{from_pmi, PMI_VERSION_ENV};
use stream::MeshStream;

/// The first bytes a member sends on a link it opens.
/// Version 2: 64-bit tags (with a communication context) and raw numeric bodies.
const MESH_MAGIC: &[u8; 8] = b"PLMESH\0\x02";

/// How long a group takes at most to form once every member knows the others' addresses.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(60);

/// The address members listen on, when set (default: the address this node listens on when it
/// is one and listens on a specific address, else `127.0.0.1`).
pub const MESH_HOST_ENV: &str = "PLACES_MESH_HOST";

/// A member's port, bound before its address is published, so that peers that learn the
/// address can connect at once.
#[derive(Debug)]
pub struct MeshListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MeshListener {
    /// Listens on a free port of `host`.
    ///
    /// # Errors
    ///
    /// [`NetError::Listen`] when the port cannot be opened.
    pub fn bind(host: IpAddr) -> Result<Self, NetError> {
        let listen_err = |source| NetError::Listen {
            addr: format!("{host}:0"),
            source,
        };
        let listener = TcpListener::bind((host, 0)).map_err(listen_err)?;
        let addr = listener.local_addr().map_err(listen_err)?;
        Ok(Self { listener, addr })
    }

    /// Listens on a free port of [`mesh_host`].
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn bind_default() -> Result<Self, NetError> {
        Self::bind(mesh_host()?)
    }

    /// The address peers connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// The address this process's members listen on: [`MESH_HOST_ENV`] if set, else the address this
/// node listens on if it is a node bound to a specific address, else (a node listening on every
/// address) the address its first client reached it on, else `127.0.0.1`.
///
/// # Errors
///
/// [`NetError::Handshake`] when the variable is set to something that is not an IP address.
pub fn mesh_host() -> Result<IpAddr, NetError> {
    if let Ok(v) = std::env::var(MESH_HOST_ENV) {
        return v.trim().parse().map_err(|_| {
            NetError::Handshake(format!(
                "{MESH_HOST_ENV}={v:?} is not an IP address to listen on"
            ))
        });
    }
    let Some(node_ip) = crate::node::listen_addr()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.ip())
    else {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    };
    if !node_ip.is_unspecified() {
        return Ok(node_ip);
    }
    // A node on every address: the one its client reached it on is reachable by others too.
    Ok(crate::node::reached_at().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)))
}

/// Forms member `rank`'s view of a group whose members listen at `addrs` (`addrs[rank]` is this
/// member's own `listener`): connects to every lower rank, accepts every higher one, and
/// authenticates each link with `secret`. Connections that do not prove the secret are dropped
/// (and logged) while the member keeps waiting for its real peers, until `timeout`.
///
/// # Errors
///
/// [`NetError::Connect`] when a lower rank cannot be reached, [`NetError::Handshake`] when a peer
/// fails to authenticate or the group does not form within `timeout`.
pub fn form(
    rank: usize,
    secret: &Cookie,
    listener: MeshListener,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<Comm, NetError> {
    // A cluster whose links use TLS uses it on its groups' links too.
    form_with_tls(
        rank,
        secret,
        listener,
        addrs,
        timeout,
        crate::tls::cluster_tls().as_ref(),
    )
}

/// [`form`] with TLS on every link (`Some`), or none: every member of a group must agree.
/// The secret's handshake runs inside TLS.
///
/// # Errors
///
/// As [`form`]; a member whose TLS does not match fails its links' handshakes.
pub fn form_with_tls(
    rank: usize,
    secret: &Cookie,
    listener: MeshListener,
    addrs: &[SocketAddr],
    timeout: Duration,
    tls: Option<&crate::tls::Tls>,
) -> Result<Comm, NetError> {
    let cnt = addrs.len();
    if rank >= cnt {
        return Err(NetError::Handshake(format!(
            "member {rank} of a group of {cnt}"
        )));
    }
    let deadline = Instant::now() + timeout;
    let tls = tls.cloned();
    let mut links: Vec<Option<MeshStream>> = (0..cnt).map(|_| None).collect();
    for (peer, addr) in addrs.iter().enumerate().take(rank) {
        let mut tries = 0u64;
        let stream = loop {
            tries += 1;
            let stream = connect(*addr, deadline).map_err(|e| {
                NetError::Handshake(format!(
                    "member {rank} could not reach member {peer} at {addr}: {e}"
                ))
            })?;
            match open_link(stream, tls.as_ref(), rank, peer, cnt, secret, deadline) {
                Ok(s) => break s,
                // A peer that proves a wrong secret is not retried; one that dropped the
                // connection (busy with strangers, say) is, until the deadline.
                Err(e)
                    if e.kind() != io::ErrorKind::PermissionDenied
                        && Instant::now() + Duration::from_millis(100) < deadline =>
                {
                    tracing::debug!("places: member {rank} retries its link to member {peer}: {e}");
                    std::thread::sleep(Duration::from_millis(50 * tries.min(20)));
                }
                Err(e) => {
                    return Err(NetError::Handshake(format!(
                        "member {rank} could not link to member {peer} at {addr}: {e}"
                    )))
                }
            }
        };
        links[peer] = Some(prepare(stream));
    }
    let mut missing = cnt - rank - 1;
    if missing > 0 {
        let arrivals = Acceptor::start(listener, tls.clone(), rank, cnt, secret.clone(), deadline)?;
        while missing > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            let (peer, stream) = match arrivals.linked.recv_timeout(left) {
                Ok(linked) => linked,
                Err(_) => {
                    let waiting: Vec<String> = (rank + 1..cnt)
                        .filter(|p| links[*p].is_none())
                        .map(|p| p.to_string())
                        .collect();
                    return Err(NetError::Handshake(format!(
                        "member {rank} of a group of {cnt}: members {} did not connect within {timeout:?}",
                        waiting.join(", ")
                    )));
                }
            };
            if links[peer].is_some() {
                tracing::warn!("places: member {peer} linked to member {rank} twice; the second link is dropped");
                continue;
            }
            links[peer] = Some(prepare(stream));
            missing -= 1;
        }
    }
    let links = MeshLink::group_of(links)
        .map_err(|e| NetError::Handshake(format!("starting the links of member {rank}: {e}")))?
        .into_iter()
        .map(|l| l.map(|l| Box::new(l) as Box<dyn Link>))
        .collect();
    Ok(Comm::from_links(rank, links))
}

/// Most connections a member authenticates at once while its group forms; more are dropped.
const MAX_HANDSHAKES: usize = 64;

/// How long a connection to a member's group port has to prove the secret.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Accepts connections to a forming member's port on a thread of its own, and authenticates
/// each on a thread of its own, so that a stranger that connects and stays silent (or sends a
/// byte at a time) holds up nobody: the member's real peers link meanwhile, and each stranger is
/// dropped after [`HANDSHAKE_LIMIT`].
struct Acceptor {
    linked: std::sync::mpsc::Receiver<(usize, MeshStream)>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Acceptor {
    fn start(
        listener: MeshListener,
        tls: Option<crate::tls::Tls>,
        rank: usize,
        cnt: usize,
        secret: Cookie,
        deadline: Instant,
    ) -> Result<Self, NetError> {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let (tx, linked) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let secret = Arc::new(secret);
        let in_flight = Arc::new(AtomicUsize::new(0));
        // On Linux a receive timeout bounds `accept` too: the thread looks at `stop` each second.
        let _ = socket2::SockRef::from(&listener.listener)
            .set_read_timeout(Some(Duration::from_secs(1)));
        std::thread::Builder::new()
            .name("places-mesh-accept".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let stream = match listener.listener.accept() {
                        Ok((s, _)) => s,
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) =>
                        {
                            continue
                        }
                        Err(e) => {
                            // Out of descriptors, say: retrying at once would spin.
                            tracing::warn!("places: member {rank} cannot accept on {}: {e}", listener.addr);
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    };
                    if in_flight.load(Ordering::Relaxed) >= MAX_HANDSHAKES {
                        tracing::warn!(
                            "places: member {rank} dropped a connection to its group port {}: {MAX_HANDSHAKES} others are still proving themselves",
                            listener.addr
                        );
                        continue;
                    }
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let (tx, secret, count, tls) =
                        (tx.clone(), secret.clone(), in_flight.clone(), tls.clone());
                    let addr = listener.addr;
                    let until = deadline.min(Instant::now() + HANDSHAKE_LIMIT);
                    let spawned = std::thread::Builder::new()
                        .name("places-mesh-handshake".into())
                        .spawn(move || {
                            match accept_link(stream, tls.as_ref(), rank, cnt, &secret, until) {
                                Ok(linked) => {
                                    let _ = tx.send(linked);
                                }
                                Err(e) => tracing::warn!(
                                    "places: member {rank} dropped a connection to its group port {addr}: {e}"
                                ),
                            }
                            count.fetch_sub(1, Ordering::Relaxed);
                        });
                    if spawned.is_err() {
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            })
            .map_err(|e| NetError::Handshake(format!("member {rank} cannot accept its peers: {e}")))?;
        Ok(Self { linked, stop })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `read_exact` that gives up at `until`, however slowly the bytes come.
fn read_exact_until(s: &mut MeshStream, mut buf: &mut [u8], until: Instant) -> io::Result<()> {
    while !buf.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the handshake did not finish in time",
            ));
        }
        s.tcp().set_read_timeout(Some(left))?;
        match s.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn prepare(stream: MeshStream) -> MeshStream {
    let _ = stream.tcp().set_read_timeout(None);
    let _ = stream.tcp().set_write_timeout(None);
    keepalive(stream.tcp());
    stream
}

/// A peer whose host vanishes without closing (a pulled cable, a dead machine) is noticed
/// within about 10 s: TCP keep-alive probes an idle link after 5 s, every second, 5 times.
fn keepalive(stream: &TcpStream) {
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(1));
    #[cfg(target_os = "linux")]
    let ka = ka.with_retries(5);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&ka);
}

fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, NetError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        match TcpStream::connect_timeout(&addr, left.max(Duration::from_millis(10))) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline || tries >= 50 => {
                return Err(NetError::Connect {
                    addr: addr.to_string(),
                    tries,
                    source: e,
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20 * u64::from(tries.min(10)))),
        }
    }
}

fn nonce() -> Result<[u8; 32], io::Error> {
    crate::handshake::nonce().map_err(|e| io::Error::other(e.to_string()))
}

fn role(who: &str, low: usize, high: usize) -> Vec<u8> {
    format!("places mesh {who} {low} {high}").into_bytes()
}

/// The connecting side (`rank` > `peer`): hello, then prove the secret after the peer did.
fn open_link(
    s: TcpStream,
    tls: Option<&crate::tls::Tls>,
    rank: usize,
    peer: usize,
    cnt: usize,
    secret: &Cookie,
    deadline: Instant,
) -> io::Result<MeshStream> {
    let _ = s.set_nodelay(true);
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(10));
    s.set_read_timeout(Some(left))?;
    s.set_write_timeout(Some(left))?;
    let mut s = MeshStream::secure(s, tls, true, deadline)?;
    let mine = nonce()?;
    let mut hello = MESH_MAGIC.to_vec();
    hello.extend_from_slice(&(rank as u32).to_le_bytes());
    hello.extend_from_slice(&(cnt as u32).to_le_bytes());
    hello.extend_from_slice(&mine);
    s.write_all(&hello)?;
    let mut reply = [0u8; 64];
    s.read_exact(&mut reply)?;
    let theirs: [u8; 32] = reply[..32].try_into().map_err(io::Error::other)?;
    if !secret.verify(&role("acceptor", peer, rank), &mine, &theirs, &reply[32..]) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the peer does not know the group's secret",
        ));
    }
    s.write_all(&secret.sign(&role("connector", peer, rank), &theirs, &mine))?;
    s.flush()?;
    Ok(s)
}

/// The accepting side: returns the peer's rank once it proved the secret, before `deadline`.
fn accept_link(
    s: TcpStream,
    tls: Option<&crate::tls::Tls>,
    rank: usize,
    cnt: usize,
    secret: &Cookie,
    deadline: Instant,
) -> io::Result<(usize, MeshStream)> {
    let _ = s.set_nodelay(true);
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(10));
    s.set_read_timeout(Some(left))?;
    s.set_write_timeout(Some(left))?;
    let mut s = MeshStream::secure(s, tls, false, deadline)?;
    let mut hello = [0u8; 8 + 4 + 4 + 32];
    read_exact_until(&mut s, &mut hello, deadline)?;
    if &hello[..8] != MESH_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a places group member (wrong greeting)",
        ));
    }
    let word = |at: usize| {
        u32::from_le_bytes([hello[at], hello[at + 1], hello[at + 2], hello[at + 3]]) as usize
    };
    let (peer, their_cnt) = (word(8), word(12));
    if their_cnt != cnt || peer <= rank || peer >= cnt {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a hello from member {peer} of {their_cnt} at member {rank} of {cnt}"),
        ));
    }
    let theirs: [u8; 32] = hello[16..].try_into().map_err(io::Error::other)?;
    let mine = nonce()?;
    let mut reply = mine.to_vec();
    reply.extend_from_slice(&secret.sign(&role("acceptor", rank, peer), &theirs, &mine));
    s.write_all(&reply)?;
    s.flush()?;
    let mut proof = [0u8; 32];
    read_exact_until(&mut s, &mut proof, deadline)?;
    if !secret.verify(&role("connector", rank, peer), &mine, &theirs, &proof) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("member {peer} does not know the group's secret"),
        ));
    }
    Ok((peer, s))
}

/// What a place needs to join a group whose members live in several processes: its rank, the
/// group's size and secret, and a channel to the program forming the group, which tells it
/// where the others listen. [`fork_join_on`](crate::fork_join_on) makes these; call
/// [`join`](Self::join) in the member.
#[derive(Serialize, Deserialize)]
pub struct MeshInvitation {
    rank: usize,
    cnt: usize,
    secret: String,
    rendezvous: PlaceChannel<SocketAddr, Vec<SocketAddr>>,
}

impl MeshInvitation {
    /// The member's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// This member's view of the group: listens, reports its address, learns the others', and
    /// links to each directly.
    ///
    /// # Errors
    ///
    /// [`NetError`] when the port cannot be opened, the forming program is gone, or a link
    /// cannot be made.
    pub fn join(self) -> Result<Comm, NetError> {
        let secret = Cookie::from_hex(&self.secret)?;
        let listener = MeshListener::bind_default()?;
        let lost = |e: places_core::ChannelError| NetError::Lost {
            node: "the program forming the group".into(),
            reason: e.to_string(),
        };
        self.rendezvous.put(listener.addr()).map_err(lost)?;
        // Bounded: a member that never joins must not hold the others forever.
        let addrs = self
            .rendezvous
            .get_timeout(FORM_TIMEOUT + Duration::from_secs(5))
            .map_err(lost)?;
        if addrs.len() != self.cnt {
            return Err(NetError::Handshake(format!(
                "member {} was told {} addresses for a group of {}",
                self.rank,
                addrs.len(),
                self.cnt
            )));
        }
        form(self.rank, &secret, listener, &addrs, FORM_TIMEOUT)
    }
}

impl std::fmt::Debug for MeshInvitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshInvitation")
            .field("rank", &self.rank)
            .field("cnt", &self.cnt)
            .finish_non_exhaustive()
    }
}

/// The forming program's side of a group's invitations: one channel per member, on which it
/// hears where the member listens and tells it where all listen.
pub struct Rendezvous {
    channels: Vec<PlaceChannel<Vec<SocketAddr>, SocketAddr>>,
}

impl Rendezvous {
    /// Waits for every member's address, then tells every member all of them.
    ///
    /// # Errors
    ///
    /// The rank of the first member that is gone before it reported, or that did not report
    /// within [`FORM_TIMEOUT`] (it never joined).
    pub fn exchange(&self) -> Result<(), usize> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        let mut addrs = Vec::with_capacity(self.channels.len());
        for (rank, ch) in self.channels.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            addrs.push(ch.get_timeout(left).map_err(|_| rank)?);
        }
        for (rank, ch) in self.channels.iter().enumerate() {
            ch.put(addrs.clone()).map_err(|_| rank)?;
        }
        Ok(())
    }
}

/// The invitations of a new group of `cnt` members in other processes (element `i` is member
/// `i`'s), and the rendezvous that introduces them to each other once each joined.
///
/// # Errors
///
/// [`NetError::Random`] when there is no randomness for the group's secret.
pub fn invitations(cnt: usize) -> Result<(Vec<MeshInvitation>, Rendezvous), NetError> {
    let secret = Cookie::random()?.to_hex();
    let mut channels = Vec::with_capacity(cnt);
    let mut invitations = Vec::with_capacity(cnt);
    for rank in 0..cnt {
        let (mine, theirs) = places_core::place_channel::<Vec<SocketAddr>, SocketAddr>();
        channels.push(mine);
        invitations.push(MeshInvitation {
            rank,
            cnt,
            secret: secret.clone(),
            rendezvous: theirs,
        });
    }
    Ok((invitations, Rendezvous { channels }))
}
