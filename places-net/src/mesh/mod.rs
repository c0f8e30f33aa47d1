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

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use places_core::{Comm, Link, PlaceChannel};
use serde::{Deserialize, Serialize};

use crate::error::NetError;
use crate::handshake::Cookie;

pub use link::{MeshLink, MAX_TYPE_NAME, QUEUE, QUEUE_BYTES, RESERVE};
#[cfg(unix)]
pub use pmi::from_pmi;

/// The first bytes a member sends on a link it opens.
const MESH_MAGIC: &[u8; 8] = b"PLMESH\0\x01";

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
/// node listens on if it is a node bound to a specific address, else `127.0.0.1`.
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
    let node_ip = crate::node::listen_addr()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified());
    Ok(node_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)))
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
    let cnt = addrs.len();
    if rank >= cnt {
        return Err(NetError::Handshake(format!(
            "member {rank} of a group of {cnt}"
        )));
    }
    let deadline = Instant::now() + timeout;
    let mut links: Vec<Option<TcpStream>> = (0..cnt).map(|_| None).collect();
    for (peer, addr) in addrs.iter().enumerate().take(rank) {
        let stream = connect(*addr, deadline).map_err(|e| {
            NetError::Handshake(format!(
                "member {rank} could not reach member {peer} at {addr}: {e}"
            ))
        })?;
        let stream = open_link(stream, rank, peer, cnt, secret, deadline).map_err(|e| {
            NetError::Handshake(format!(
                "member {rank} could not link to member {peer} at {addr}: {e}"
            ))
        })?;
        links[peer] = Some(prepare(stream));
    }
    let mut missing = cnt - rank - 1;
    let sock = socket2::SockRef::from(&listener.listener);
    while missing > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let waiting: Vec<String> = (rank + 1..cnt)
                .filter(|p| links[*p].is_none())
                .map(|p| p.to_string())
                .collect();
            return Err(NetError::Handshake(format!(
                "member {rank} of a group of {cnt}: members {} did not connect within {timeout:?}",
                waiting.join(", ")
            )));
        }
        // On Linux a receive timeout bounds `accept` too.
        let _ = sock.set_read_timeout(Some(left.min(Duration::from_secs(1))));
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
                return Err(NetError::Listen {
                    addr: listener.addr.to_string(),
                    source: e,
                })
            }
        };
        match accept_link(stream, rank, cnt, secret, deadline) {
            Ok((peer, _)) if links[peer].is_some() => {
                tracing::warn!("places: member {peer} linked to member {rank} twice; the second link is dropped");
            }
            Ok((peer, stream)) => {
                links[peer] = Some(prepare(stream));
                missing -= 1;
            }
            Err(e) => tracing::warn!(
                "places: member {rank} dropped a connection to its group port {}: {e}",
                listener.addr
            ),
        }
    }
    let links = MeshLink::group(links)
        .map_err(|e| NetError::Handshake(format!("starting the links of member {rank}: {e}")))?
        .into_iter()
        .map(|l| l.map(|l| Box::new(l) as Box<dyn Link>))
        .collect();
    Ok(Comm::from_links(rank, links))
}

fn prepare(stream: TcpStream) -> TcpStream {
    let _ = stream.set_read_timeout(None);
    let _ = stream.set_write_timeout(None);
    keepalive(&stream);
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
    mut s: TcpStream,
    rank: usize,
    peer: usize,
    cnt: usize,
    secret: &Cookie,
    deadline: Instant,
) -> io::Result<TcpStream> {
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10)),
    ))?;
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
    Ok(s)
}

/// The accepting side: returns the peer's rank once it proved the secret.
fn accept_link(
    mut s: TcpStream,
    rank: usize,
    cnt: usize,
    secret: &Cookie,
    deadline: Instant,
) -> io::Result<(usize, TcpStream)> {
    let _ = s.set_nodelay(true);
    // A stranger gets a few seconds, never the whole formation time.
    s.set_read_timeout(Some(
        deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(10), Duration::from_secs(10)),
    ))?;
    let mut hello = [0u8; 8 + 4 + 4 + 32];
    s.read_exact(&mut hello)?;
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
    let mut proof = [0u8; 32];
    s.read_exact(&mut proof)?;
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
        let addrs = self.rendezvous.get().map_err(lost)?;
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
    /// The rank of the first member that is gone before it reported.
    pub fn exchange(&self) -> Result<(), usize> {
        let mut addrs = Vec::with_capacity(self.channels.len());
        for (rank, ch) in self.channels.iter().enumerate() {
            addrs.push(ch.get().map_err(|_| rank)?);
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
