//! Groups launched by `mpiexec` or `srun`: MPICH's hydra, Slurm's `srun --mpi=pmi2` (and every
//! PMI process manager) give each process its rank and the group's size, and a key-value space
//! the processes share. Each process publishes where it listens there, waits at the launcher's
//! fence, reads the others' addresses, and links to them directly ([`form`](super::form)).
//!
//! Both wire protocols run on the socket whose descriptor is in `PMI_FD`, and both start with
//! the line `cmd=init pmi_version=V pmi_subversion=S`, answered by one line naming the version
//! the launcher speaks. PMI-1 goes on in lines of space-separated `key=value` words
//! (`cmd=get_my_kvsname`, `cmd=put`, `cmd=barrier_in`, `cmd=get`, `cmd=finalize`); PMI-2 in
//! messages that are their length in six ASCII digits followed by `key=value;` fields
//! (`cmd=fullinit`, `cmd=kvs-put`, `cmd=kvs-fence`, `cmd=kvs-get`, `cmd=finalize`). We ask
//! for PMI-2, which hydra and Slurm both speak, and follow a launcher that answers PMI-1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;

use places_core::Comm;

use super::{form, MeshListener, FORM_TIMEOUT};
use crate::error::NetError;
use crate::handshake::Cookie;

/// A connection to the process manager, in the wire protocol it chose at `init`.
struct Pmi {
    w: UnixStream,
    r: BufReader<UnixStream>,
    /// PMI-1 (`None`) or PMI-2 (`Some(job id)`, which `kvs-get` names).
    v2: Option<String>,
    /// PMI-1's key-value space name.
    kvs: String,
}

fn err(what: impl std::fmt::Display) -> NetError {
    NetError::Handshake(format!("PMI: {what}"))
}

/// `key=value` words, PMI-1's (space-separated, one line).
fn words_v1(line: &str) -> Vec<(String, String)> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `key=value;` fields, PMI-2's (`;;` stands for a `;` inside a value).
fn words_v2(body: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ';' {
            if chars.peek() == Some(&';') {
                chars.next();
                field.push(';');
            } else {
                fields.push(std::mem::take(&mut field));
            }
        } else {
            field.push(c);
        }
    }
    if !field.is_empty() {
        fields.push(field);
    }
    fields
        .iter()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn value<'a>(words: &'a [(String, String)], key: &str) -> Option<&'a str> {
    words
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn required(words: &[(String, String)], key: &str) -> Result<String, NetError> {
    value(words, key)
        .map(str::to_owned)
        .ok_or_else(|| err(format!("a reply without `{key}`")))
}

/// The longest reply either protocol is read for: the launcher's replies are short.
const MAX_REPLY: u64 = 64 << 10;

impl Pmi {
    /// Sends `line` and reads its reply in the protocol in use; checks that the reply is
    /// `reply` and that its `rc` is 0.
    fn call(&mut self, line: &str, reply: &str) -> Result<Vec<(String, String)>, NetError> {
        let words = if self.v2.is_some() {
            self.call_v2(line)?
        } else {
            self.call_v1(line)?
        };
        let got = || {
            words
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if value(&words, "cmd") != Some(reply) {
            return Err(err(format!("`{line}` was answered `{}`", got())));
        }
        if let Some(rc) = value(&words, "rc") {
            if rc != "0" {
                return Err(err(format!("`{line}` failed: `{}`", got())));
            }
        }
        Ok(words)
    }

    /// PMI-1 (and the `init` of both): a line out, a line back.
    fn call_v1(&mut self, line: &str) -> Result<Vec<(String, String)>, NetError> {
        self.w
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| err(format!("sending `{line}`: {e}")))?;
        let mut got = String::new();
        let n = (&mut self.r)
            .take(MAX_REPLY)
            .read_line(&mut got)
            .map_err(|e| err(format!("reading the reply to `{line}`: {e}")))?;
        if n == 0 {
            return Err(err(format!(
                "the launcher closed the connection after `{line}`"
            )));
        }
        Ok(words_v1(&got))
    }

    /// PMI-2: each command and reply is its length in six ASCII digits, then its fields.
    fn call_v2(&mut self, line: &str) -> Result<Vec<(String, String)>, NetError> {
        if line.len() > 999_999 {
            return Err(err(format!("a command of {} bytes", line.len())));
        }
        self.w
            .write_all(format!("{:6}{line}", line.len()).as_bytes())
            .map_err(|e| err(format!("sending `{line}`: {e}")))?;
        let closed = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                err(format!("the launcher closed the connection after `{line}`"))
            } else {
                err(format!("reading the reply to `{line}`: {e}"))
            }
        };
        let mut len = [0u8; 6];
        self.r.read_exact(&mut len).map_err(closed)?;
        let len = std::str::from_utf8(&len)
            .ok()
            .and_then(|l| l.trim().parse::<u64>().ok())
            .filter(|&n| n <= MAX_REPLY)
            .ok_or_else(|| {
                err(format!(
                    "the reply to `{line}` starts with {:?}, not a length",
                    String::from_utf8_lossy(&len)
                ))
            })?;
        let mut body = Vec::new();
        (&mut self.r)
            .take(len)
            .read_to_end(&mut body)
            .map_err(closed)?;
        if body.len() as u64 != len {
            return Err(err(format!(
                "the launcher closed the connection inside its reply to `{line}`"
            )));
        }
        Ok(words_v2(&String::from_utf8_lossy(&body)))
    }

    /// Connects on `PMI_FD` and initializes: PMI-2 unless `PLACES_PMI_VERSION=1` asks for
    /// PMI-1 or the launcher answers that it speaks only PMI-1.
    fn init(fd: i32, rank: usize, size: usize) -> Result<Self, NetError> {
        // SAFETY: the launcher passed this descriptor for exactly this use, and nothing else
        // in the process owns it; the variable is removed so that it is taken only once.
        let w = unsafe { UnixStream::from_raw_fd(fd) };
        std::env::remove_var("PMI_FD");
        let r = BufReader::new(
            w.try_clone()
                .map_err(|e| err(format!("PMI_FD={fd}: {e}")))?,
        );
        let mut pmi = Pmi {
            w,
            r,
            v2: None,
            kvs: String::new(),
        };
        pmi.negotiate(rank, size)?;
        Ok(pmi)
    }

    /// The `init` exchange and what follows it in the version the launcher speaks.
    fn negotiate(&mut self, rank: usize, size: usize) -> Result<(), NetError> {
        let pmi = self;
        let want = match std::env::var(PMI_VERSION_ENV) {
            Err(_) => 2,
            Ok(v) if v.trim() == "1" => 1,
            Ok(v) if v.trim() == "2" => 2,
            Ok(v) => return Err(err(format!("{PMI_VERSION_ENV}={v:?}: write 1 or 2"))),
        };
        let init = if want == 2 {
            "cmd=init pmi_version=2 pmi_subversion=0"
        } else {
            "cmd=init pmi_version=1 pmi_subversion=1"
        };
        // The reply names the version the launcher speaks; launchers that know only PMI-1
        // answer a PMI-2 init with `pmi_version=1 ... rc=-1`: then init again in PMI-1.
        let words = pmi.call_v1(init)?;
        if value(&words, "cmd") != Some("response_to_init") {
            return Err(err(format!(
                "`{init}` was answered without response_to_init"
            )));
        }
        let speaks_two = value(&words, "pmi_version") == Some("2");
        let ok = value(&words, "rc").is_none_or(|rc| rc == "0");
        if want == 2 && !ok && value(&words, "pmi_version") == Some("1") {
            pmi.call(
                "cmd=init pmi_version=1 pmi_subversion=1",
                "response_to_init",
            )?;
        } else if !ok {
            return Err(err(format!(
                "`{init}` failed: the launcher answered {words:?}"
            )));
        }
        if speaks_two && want == 2 {
            let jobid = std::env::var("PMI_JOBID").ok();
            pmi.v2 = Some(jobid.clone().unwrap_or_default());
            let line = match &jobid {
                Some(j) => format!("cmd=fullinit;pmijobid={j};pmirank={rank};threaded=FALSE;"),
                None => format!("cmd=fullinit;pmirank={rank};threaded=FALSE;"),
            };
            let words = pmi.call(&line, "fullinit-response")?;
            for (key, expected) in [("rank", rank), ("size", size)] {
                let got = required(&words, key)?;
                if got != expected.to_string() {
                    return Err(err(format!(
                        "the environment says {key} {expected}, the launcher {got}"
                    )));
                }
            }
        } else {
            let words = pmi.call("cmd=get_my_kvsname", "my_kvsname")?;
            pmi.kvs = required(&words, "kvsname")?;
        }
        Ok(())
    }

    fn put(&mut self, key: &str, val: &str) -> Result<(), NetError> {
        if self.v2.is_some() {
            self.call(
                &format!("cmd=kvs-put;key={key};value={val};"),
                "kvs-put-response",
            )?;
        } else {
            let line = format!("cmd=put kvsname={} key={key} value={val}", self.kvs);
            self.call(&line, "put_result")?;
        }
        Ok(())
    }

    /// The launcher's barrier, after which every member's puts can be read.
    fn fence(&mut self) -> Result<(), NetError> {
        if self.v2.is_some() {
            self.call("cmd=kvs-fence;", "kvs-fence-response")?;
        } else {
            self.call("cmd=barrier_in", "barrier_out")?;
        }
        Ok(())
    }

    fn get(&mut self, key: &str) -> Result<String, NetError> {
        if let Some(jobid) = &self.v2 {
            let line = if jobid.is_empty() {
                format!("cmd=kvs-get;srcid=-1;key={key};")
            } else {
                format!("cmd=kvs-get;jobid={jobid};srcid=-1;key={key};")
            };
            let words = self.call(&line, "kvs-get-response")?;
            if value(&words, "found") != Some("TRUE") {
                return Err(err(format!("no member published `{key}`")));
            }
            required(&words, "value")
        } else {
            let line = format!("cmd=get kvsname={} key={key}", self.kvs);
            required(&self.call(&line, "get_result")?, "value")
        }
    }

    fn finalize(&mut self) -> Result<(), NetError> {
        if self.v2.is_some() {
            self.call("cmd=finalize;", "finalize-response")?;
        } else {
            self.call("cmd=finalize", "finalize_ack")?;
        }
        Ok(())
    }
}

/// Set to `1` to speak PMI-1 to the launcher (default: PMI-2, or PMI-1 when the launcher
/// answers that it knows no other).
pub const PMI_VERSION_ENV: &str = "PLACES_PMI_VERSION";

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

/// This process's member of the group `mpiexec` or `srun --mpi=pmi2` started, linked directly
/// to every other; `None` when the process was not started by a PMI launcher (no `PMI_FD`).
///
/// The launcher's key-value space is used once, to exchange addresses and the group's secret;
/// after that the members talk over their own links, and the launcher only waits for them to
/// end. [`PMI_VERSION_ENV`] set to `1` makes the process speak PMI-1 instead of PMI-2.
///
/// Members listen on [`mesh_host`](super::mesh_host) (loopback unless `PLACES_MESH_HOST` says
/// otherwise: set it to an address of each host when the ranks run on several hosts).
///
/// # Errors
///
/// [`NetError::Handshake`] when the launcher's protocol goes wrong, when `srun` started several
/// tasks without a PMI (`srun` without `--mpi=pmi2` on a cluster whose default is `none`: each
/// task would otherwise run alone, as rank 0 of 1), and the errors of [`form`](super::form).
///
/// # Examples
///
/// ```no_run
/// // Run as `mpiexec -n 4 ./my-program` or `srun --mpi=pmi2 -n 4 ./my-program`.
/// use places::rmpi::{op, Collectives};
///
/// let cg = places::net::mesh::from_pmi().unwrap().expect("started by mpiexec");
/// let total = cg.allreduce(op::sum, cg.id()).unwrap();
/// if cg.id() == 0 {
///     println!("{} ranks, ranks add up to {total}", cg.cnt());
/// }
/// ```
pub fn from_pmi() -> Result<Option<Comm>, NetError> {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some(fd) = env_number("PMI_FD")? else {
        if TAKEN.load(std::sync::atomic::Ordering::Acquire) {
            return Err(err(
                "from_pmi was already called in this process: the launcher's connection is \
                 used once, so keep the Comm the first call returned",
            ));
        }
        if std::env::var_os("PMI_PORT").is_some() {
            return Err(err(
                "the launcher gives a PMI port (PMI_PORT, as `mpiexec -pmi-port` does), which \
                 places does not speak: run mpiexec without -pmi-port",
            ));
        }
        if let Some(n) = env_number("SLURM_STEP_NUM_TASKS")?.filter(|&n| n > 1) {
            return Err(err(format!(
                "srun started {n} tasks without a PMI for them to find each other: \
                 run `srun --mpi=pmi2 ...` (or set MpiDefault=pmi2 in slurm.conf)"
            )));
        }
        return Ok(None);
    };
    let rank = env_number("PMI_RANK")?.ok_or_else(|| err("PMI_FD is set but PMI_RANK is not"))?;
    let size = env_number("PMI_SIZE")?.ok_or_else(|| err("PMI_FD is set but PMI_SIZE is not"))?;
    if rank >= size {
        return Err(err(format!("rank {rank} of {size}")));
    }
    let fd = i32::try_from(fd).map_err(|_| err("PMI_FD is not a descriptor"))?;
    TAKEN.store(true, std::sync::atomic::Ordering::Release);
    let mut pmi = Pmi::init(fd, rank, size)?;
    let listener = MeshListener::bind_default()?;
    pmi.put(&format!("places-addr-{rank}"), &listener.addr().to_string())?;
    if rank == 0 {
        pmi.put("places-secret", &Cookie::random()?.to_hex())?;
    }
    pmi.fence()?;
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(size);
    for r in 0..size {
        let v = pmi.get(&format!("places-addr-{r}"))?;
        addrs.push(
            v.parse()
                .map_err(|_| err(format!("rank {r} published {v:?}, not an address")))?,
        );
    }
    let secret = Cookie::from_hex(&pmi.get("places-secret")?)?;
    let comm = form(rank, &secret, listener, &addrs, FORM_TIMEOUT)?;
    pmi.finalize()?;
    Ok(Some(comm))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PMI-2 connection whose launcher end is `server`: the launcher's replies are written
    /// there by the test, which no real launcher would send wrong.
    fn v2_pair() -> (Pmi, UnixStream) {
        let (w, server) = UnixStream::pair().unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        let pmi = Pmi {
            w,
            r,
            v2: Some(String::new()),
            kvs: String::new(),
        };
        (pmi, server)
    }

    #[test]
    fn pmi_2_fields_unescape_doubled_semicolons() {
        let words = words_v2("cmd=kvs-get-response;rc=0;found=TRUE;value=a;;b;");
        assert_eq!(value(&words, "value"), Some("a;b"));
        assert_eq!(value(&words, "found"), Some("TRUE"));
        assert_eq!(words.len(), 4);
    }

    #[test]
    fn pmi_2_replies_are_framed_by_their_length() {
        let (mut pmi, mut server) = v2_pair();
        let body = b"cmd=kvs-put-response;rc=0;";
        server
            .write_all(format!("{:6}", body.len()).as_bytes())
            .unwrap();
        server.write_all(body).unwrap();
        pmi.put("k", "v").unwrap();
        let mut sent = vec![0u8; 6 + "cmd=kvs-put;key=k;value=v;".len()];
        server.read_exact(&mut sent).unwrap();
        assert_eq!(&sent, b"    26cmd=kvs-put;key=k;value=v;");
    }

    #[test]
    fn a_bad_or_oversized_pmi_2_length_is_an_error_not_an_allocation() {
        for len in ["abcdef", "999999", "    -1"] {
            let (mut pmi, mut server) = v2_pair();
            server.write_all(len.as_bytes()).unwrap();
            let e = pmi.fence().unwrap_err().to_string();
            assert!(e.contains("not a length"), "{len}: {e}");
        }
    }

    #[test]
    fn a_pmi_2_reply_cut_short_or_failed_says_so() {
        let (mut pmi, mut server) = v2_pair();
        server.write_all(b"    40cmd=kvs-fence").unwrap();
        server.shutdown(std::net::Shutdown::Write).unwrap();
        let e = pmi.fence().unwrap_err().to_string();
        assert!(e.contains("closed the connection inside its reply"), "{e}");

        let (mut pmi, mut server) = v2_pair();
        let body = b"cmd=kvs-fence-response;rc=14;errmsg=no;";
        server
            .write_all(format!("{:6}", body.len()).as_bytes())
            .unwrap();
        server.write_all(body).unwrap();
        let e = pmi.fence().unwrap_err().to_string();
        assert!(e.contains("failed") && e.contains("rc=14"), "{e}");
    }

    /// A launcher that knows only PMI-1 (MPICH's old `pmiserv`, mpd) answers a PMI-2 init
    /// with `pmi_version=1 ... rc=-1`; the member then inits again in PMI-1 and goes on in it.
    #[test]
    fn a_launcher_that_knows_only_pmi_1_is_spoken_to_in_pmi_1() {
        let (w, mut server) = UnixStream::pair().unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        let mut pmi = Pmi {
            w,
            r,
            v2: None,
            kvs: String::new(),
        };
        let launcher = std::thread::spawn(move || {
            let mut lines = BufReader::new(server.try_clone().unwrap()).lines();
            let mut seen = Vec::new();
            for reply in [
                "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=-1\n",
                "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n",
                "cmd=my_kvsname kvsname=kvs_7 rc=0\n",
            ] {
                seen.push(lines.next().unwrap().unwrap());
                server.write_all(reply.as_bytes()).unwrap();
            }
            seen
        });
        std::env::remove_var(PMI_VERSION_ENV);
        pmi.negotiate(0, 1).unwrap();
        assert!(pmi.v2.is_none());
        assert_eq!(pmi.kvs, "kvs_7");
        let seen = launcher.join().unwrap();
        assert_eq!(seen[0], "cmd=init pmi_version=2 pmi_subversion=0");
        assert_eq!(seen[1], "cmd=init pmi_version=1 pmi_subversion=1");
        assert_eq!(seen[2], "cmd=get_my_kvsname");
    }
}
