//! Groups launched by `mpiexec`: MPICH's hydra (and every PMI-1 process manager) gives each
//! process its rank and the group's size, and a key-value space the processes share. Each
//! process publishes where it listens there, waits at the launcher's barrier, reads the others'
//! addresses, and links to them directly ([`form`](super::form)).
//!
//! The PMI-1 wire protocol is lines of `key=value` words on the socket whose descriptor is in
//! `PMI_FD`: `cmd=init pmi_version=1 pmi_subversion=1`, `cmd=get_my_kvsname`, `cmd=put`,
//! `cmd=barrier_in`, `cmd=get`, `cmd=finalize`, each answered by one line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;

use places_core::Comm;

use super::{form, MeshListener, FORM_TIMEOUT};
use crate::error::NetError;
use crate::handshake::Cookie;

/// A PMI-1 connection.
struct Pmi {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

fn err(what: impl std::fmt::Display) -> NetError {
    NetError::Handshake(format!("PMI: {what}"))
}

impl Pmi {
    /// One command, one reply line, parsed into its words; checks `cmd=` and `rc=0`.
    fn call(&mut self, line: &str, reply: &str) -> Result<Vec<(String, String)>, NetError> {
        self.w
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| err(format!("sending `{line}`: {e}")))?;
        let mut got = String::new();
        // The launcher's replies are short; a line over 64 KiB is not one.
        let n = (&mut self.r)
            .take(64 << 10)
            .read_line(&mut got)
            .map_err(|e| err(format!("reading the reply to `{line}`: {e}")))?;
        if n == 0 {
            return Err(err(format!(
                "the launcher closed the connection after `{line}`"
            )));
        }
        let words: Vec<(String, String)> = got
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let get = |k: &str| {
            words
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        if get("cmd") != Some(reply) {
            return Err(err(format!("`{line}` was answered `{}`", got.trim())));
        }
        if let Some(rc) = get("rc") {
            if rc != "0" {
                return Err(err(format!("`{line}` failed: `{}`", got.trim())));
            }
        }
        Ok(words)
    }

    fn value(words: &[(String, String)], key: &str) -> Result<String, NetError> {
        words
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| err(format!("a reply without `{key}`")))
    }
}

fn env_number(name: &str) -> Result<Option<usize>, NetError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| err(format!("{name}={v:?} is not a number"))),
    }
}

/// This process's member of the group `mpiexec` started, linked directly to every other; `None`
/// when the process was not started by a PMI-1 launcher (no `PMI_FD`).
///
/// Members listen on [`mesh_host`](super::mesh_host) (loopback unless `PLACES_MESH_HOST` says
/// otherwise: set it to an address of each host when the ranks run on several hosts).
///
/// # Errors
///
/// [`NetError::Handshake`] when the launcher's protocol goes wrong, and the errors of
/// [`form`](super::form).
///
/// # Examples
///
/// ```no_run
/// // Run as `mpiexec -n 4 ./my-program`.
/// use places::rmpi::{op, Collectives};
///
/// let cg = places::net::mesh::from_pmi().unwrap().expect("started by mpiexec");
/// let total = cg.allreduce(op::sum, cg.id()).unwrap();
/// if cg.id() == 0 {
///     println!("{} ranks, ranks add up to {total}", cg.cnt());
/// }
/// ```
pub fn from_pmi() -> Result<Option<Comm>, NetError> {
    let Some(fd) = env_number("PMI_FD")? else {
        return Ok(None);
    };
    let rank = env_number("PMI_RANK")?.ok_or_else(|| err("PMI_FD is set but PMI_RANK is not"))?;
    let size = env_number("PMI_SIZE")?.ok_or_else(|| err("PMI_FD is set but PMI_SIZE is not"))?;
    if rank >= size {
        return Err(err(format!("rank {rank} of {size}")));
    }
    let fd = i32::try_from(fd).map_err(|_| err("PMI_FD is not a descriptor"))?;
    // SAFETY: the launcher passed this descriptor for exactly this use, and nothing else in
    // the process owns it; the variable is removed so that it is taken only once.
    let w = unsafe { UnixStream::from_raw_fd(fd) };
    std::env::remove_var("PMI_FD");
    let r = BufReader::new(
        w.try_clone()
            .map_err(|e| err(format!("PMI_FD={fd}: {e}")))?,
    );
    let mut pmi = Pmi { w, r };
    pmi.call(
        "cmd=init pmi_version=1 pmi_subversion=1",
        "response_to_init",
    )?;
    let kvs = Pmi::value(&pmi.call("cmd=get_my_kvsname", "my_kvsname")?, "kvsname")?;
    let listener = MeshListener::bind_default()?;
    pmi.call(
        &format!(
            "cmd=put kvsname={kvs} key=places-addr-{rank} value={}",
            listener.addr()
        ),
        "put_result",
    )?;
    if rank == 0 {
        let secret = Cookie::random()?;
        pmi.call(
            &format!(
                "cmd=put kvsname={kvs} key=places-secret value={}",
                secret.to_hex()
            ),
            "put_result",
        )?;
    }
    pmi.call("cmd=barrier_in", "barrier_out")?;
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(size);
    for r in 0..size {
        let words = pmi.call(
            &format!("cmd=get kvsname={kvs} key=places-addr-{r}"),
            "get_result",
        )?;
        let v = Pmi::value(&words, "value")?;
        addrs.push(
            v.parse()
                .map_err(|_| err(format!("rank {r} published {v:?}, not an address")))?,
        );
    }
    let secret = Cookie::from_hex(&Pmi::value(
        &pmi.call(
            &format!("cmd=get kvsname={kvs} key=places-secret"),
            "get_result",
        )?,
        "value",
    )?)?;
    let comm = form(rank, &secret, listener, &addrs, FORM_TIMEOUT)?;
    pmi.call("cmd=finalize", "finalize_ack")?;
    Ok(Some(comm))
}
