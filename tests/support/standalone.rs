//! A standalone node of the running test binary (`PLACES_NODE=standalone`, its cookie in a
//! file), for the tests that attach to running nodes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use places::Cookie;

/// A standalone node process, killed (and its directory removed) when dropped.
pub struct Standalone {
    pub child: Child,
    pub addr: String,
    pub cookie: Cookie,
    dir: PathBuf,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a node of this test binary with a fresh cookie in `dir` (and, given `tls_dir`, its
/// certificates from there); waits (at most `limit`) for its ready line.
pub fn start(dir: &Path, tls_dir: Option<&Path>, limit: Duration) -> Standalone {
    std::fs::create_dir_all(dir).unwrap();
    let cookie = Cookie::random().unwrap();
    let cookie_file = dir.join("cookie");
    std::fs::write(&cookie_file, cookie.to_hex()).unwrap();
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["places_node", "--exact", "--nocapture", "--test-threads=1"])
        .env(places::net::NODE_ENV, places::net::STANDALONE)
        .env(places::net::COOKIE_FILE_ENV, &cookie_file)
        .env(places::net::LISTEN_ENV, "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(d) = tls_dir {
        c.env(places::net::TLS_DIR_ENV, d);
    }
    let mut child = c.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    // Held from here on, so that a failure below still kills the node.
    let mut node = Standalone {
        child,
        addr: String::new(),
        cookie,
        dir: dir.to_owned(),
    };
    // The test harness prints its own text first (on the same line, too); the node's ready
    // line says where it listens.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find(places::net::READY_LINE) {
                let _ = tx.send(line[at + places::net::READY_LINE.len()..].trim().to_owned());
            }
        }
    });
    node.addr = rx.recv_timeout(limit).expect("the node's ready line");
    node
}
