//! Links with TLS (`NodeOptions::tls`): real node processes on loopback whose every link (to
//! their creator, and between each other) is encrypted and integrity-protected, with the
//! cookie handshake inside. A relay in the middle of a link sees no plaintext where a plain
//! link (the control) shows it, and a byte it changes breaks the link instead of arriving;
//! a plain client, a TLS client of a plain node and a certificate of another authority are
//! each refused with a clear error; a node started by hand takes its certificates from a
//! directory. Its own file: a process that uses TLS uses it for all its links.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use places::prelude::*;
use places::{
    connect_to_named_place, create_place_node, supervise_place_at, Cookie, NetError, NodeAddr,
    NodeOptions, PlaceOptions, RemoteNode, RemotePlace, Routed, Tls,
};

places::node_test_entry!();

const LIMIT: Duration = Duration::from_secs(30);
const MARKER: &[u8] = b"PLAINTEXT-MARKER-4d1f";

/// The cluster's TLS, one for the whole test binary (a process keeps the first it uses).
fn cluster() -> &'static Tls {
    static TLS: std::sync::OnceLock<Tls> = std::sync::OnceLock::new();
    TLS.get_or_init(|| Tls::generate().unwrap())
}

fn opts(tls: &Tls) -> NodeOptions {
    NodeOptions::for_this_test_binary()
        .heartbeat(Duration::from_secs(2))
        .tls(tls.clone())
}

/// Answers every buffer with the same buffer reversed.
#[place]
pub fn reverser(ch: PlaceChannel<Vec<u8>>) {
    while let Ok(mut v) = ch.get() {
        v.reverse();
        if ch.put(v).is_err() {
            return;
        }
    }
}

/// A named place: answers every buffer, on the connection it came on, with it reversed.
#[place]
pub fn mirror(ch: PlaceChannel<(), Routed<Vec<u8>, Vec<u8>>>) {
    while let Ok(Routed { mut msg, reply }) = ch.get() {
        msg.reverse();
        let _ = reply.put(msg);
    }
}

/// Told where the mirror's node is, connects to it directly (a node-to-node link, with the
/// TLS the node was started with) and sends it `n` buffers of `len` bytes; says what it saw.
#[place]
pub fn visitor(ch: PlaceChannel<String, (NodeAddr, usize, usize)>) {
    let Ok((at, n, len)) = ch.get() else { return };
    let report = (|| -> Result<String, String> {
        let node = at.connect().map_err(|e| e.to_string())?;
        let mirror: PlaceChannel<Vec<u8>> =
            connect_to_named_place(&node, "mirror").map_err(|e| e.to_string())?;
        for i in 0..n {
            let v: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
            let mut back = mirror.put_get(v.clone()).map_err(|e| e.to_string())?;
            back.reverse();
            if back != v {
                return Err(format!("answer {i} is wrong"));
            }
        }
        Ok(format!(
            "{n} answers over an encrypted link: {}",
            node.encrypted()
        ))
    })();
    let _ = ch.put(report.unwrap_or_else(|e| format!("failed: {e}")));
}

#[test]
fn nodes_with_tls_talk_to_their_creator_and_to_each_other() {
    let tls = cluster().clone();
    let a = create_place_node("localhost", opts(&tls)).unwrap();
    let b = create_place_node("localhost", opts(&tls)).unwrap();
    assert!(a.encrypted() && b.encrypted());
    // Creator to node: small and large messages (8 MiB crosses in fragments, and fills the
    // socket, so writes wait for it).
    let p: RemotePlace<Vec<u8>> = a.dynamic_place(module_path!(), "reverser").unwrap();
    for len in [1usize, 1000, 8 << 20] {
        let v: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let mut back = p.put_get(v.clone()).unwrap();
        back.reverse();
        assert_eq!(back, v, "{len} bytes");
    }
    // Node to node, directly: a place on `a` visits the mirror on `b`.
    let _mirror: RemotePlace<Routed<Vec<u8>, Vec<u8>>, ()> = supervise_place_at(
        &b,
        module_path!(),
        "mirror",
        PlaceOptions::new().named("mirror"),
    )
    .unwrap();
    let visitor: RemotePlace<(NodeAddr, usize, usize), String> =
        a.dynamic_place(module_path!(), "visitor").unwrap();
    visitor.put((b.node_addr(), 20, 300_000)).unwrap();
    let report = visitor.get_timeout(LIMIT * 2).unwrap();
    assert_eq!(report, "20 answers over an encrypted link: true");
}

/// A relay between a client and a node that keeps what passes in each direction, and can
/// change one byte of what the node sends once `flip_after` bytes have passed.
struct Relay {
    addr: String,
    seen: Arc<Mutex<Vec<u8>>>,
}

fn relay(target: &str, flip_after: Option<usize>) -> Relay {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (target, seen2) = (target.to_owned(), seen.clone());
    std::thread::spawn(move || {
        let Ok((client, _)) = l.accept() else { return };
        let Ok(node) = TcpStream::connect(&target) else {
            return;
        };
        let pump = |mut from: TcpStream, mut to: TcpStream, flip: Option<usize>, keep| {
            let seen = Arc::clone(&seen2);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                let mut passed = 0usize;
                loop {
                    let n = match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if let Some(at) = flip {
                        if passed <= at && at < passed + n {
                            buf[at - passed] ^= 0x20;
                        }
                    }
                    passed += n;
                    if keep {
                        seen.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
        };
        pump(
            client.try_clone().unwrap(),
            node.try_clone().unwrap(),
            None,
            true,
        );
        pump(node, client, flip_after, true);
    });
    Relay { addr, seen }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[path = "support/standalone.rs"]
mod standalone;
use standalone::Standalone;

fn standalone(dir: &std::path::Path, tls_dir: Option<&std::path::Path>) -> Standalone {
    standalone::start(dir, tls_dir, LIMIT)
}

fn scratch(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("places-tls-{tag}-{}", std::process::id()))
}

/// Runs `test` of this binary in a fresh process (one that has no cluster TLS yet), with
/// `vars`; returns what it printed.
fn in_fresh_process(test: &str, vars: &[(&str, String)]) -> String {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn a_relay_in_the_middle_sees_no_plaintext_and_cannot_change_a_byte() {
    let dir = scratch("relay");
    let tls = cluster().clone();
    tls.write_dir(dir.join("tls")).unwrap();
    let plain = standalone(&dir.join("plain"), None);
    let secure = standalone(&dir.join("secure"), Some(&dir.join("tls")));
    let marked = || {
        let mut v = MARKER.repeat(100);
        v.extend_from_slice(b"end");
        v
    };
    // The control, in a process without TLS: through a plain link the relay sees the marker
    // both ways.
    let text = in_fresh_process(
        "plain_client_through_a_relay",
        &[
            ("PLACES_TEST_NODE", plain.addr.clone()),
            ("PLACES_TEST_COOKIE", plain.cookie.to_hex()),
        ],
    );
    assert!(text.contains("relay saw the marker: true"), "{text}");
    // With TLS: the same exchange, and the relay sees none of it.
    let r = relay(&secure.addr, None);
    let client = RemoteNode::connect_with(&r.addr, &secure.cookie, &opts(&tls)).unwrap();
    assert!(client.encrypted());
    let p: RemotePlace<Vec<u8>> = client.dynamic_place(module_path!(), "reverser").unwrap();
    let mut back = p.put_get(marked()).unwrap();
    back.reverse();
    assert_eq!(back, marked());
    let seen = r.seen.lock().unwrap().clone();
    assert!(seen.len() > 2 * MARKER.len() * 100, "{} bytes", seen.len());
    assert!(!contains(&seen, MARKER), "the relay read the marker");
    let mut rev = MARKER.to_vec();
    rev.reverse();
    assert!(!contains(&seen, &rev), "the relay read the reversed marker");
    assert!(!contains(&seen, places::net::handshake::MAGIC));
    // A relay that changes one byte the node sends, after the handshakes: the link breaks with
    // a TLS error; nothing changed arrives.
    let r = relay(&secure.addr, Some(6000));
    let client = RemoteNode::connect_with(&r.addr, &secure.cookie, &opts(&tls)).unwrap();
    let p: RemotePlace<Vec<u8>> = client.dynamic_place(module_path!(), "reverser").unwrap();
    let mut got = Vec::new();
    let err = loop {
        match p.put_get(vec![7u8; 1000]) {
            Ok(v) => {
                assert_eq!(v, vec![7u8; 1000], "a changed message arrived");
                got.push(v);
                assert!(got.len() < 100, "the changed byte went unnoticed");
            }
            Err(e) => break e,
        }
    };
    let why = format!("{err}");
    println!("a changed byte: {why}");
    assert!(why.contains("TLS"), "{why}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The control of the test above, run in a process of its own (does nothing in the suite).
#[test]
fn plain_client_through_a_relay() {
    let (Ok(addr), Ok(hex)) = (
        std::env::var("PLACES_TEST_NODE"),
        std::env::var("PLACES_TEST_COOKIE"),
    ) else {
        return;
    };
    let r = relay(&addr, None);
    let client = RemoteNode::connect(&r.addr, &Cookie::from_hex(&hex).unwrap()).unwrap();
    assert!(!client.encrypted());
    let p: RemotePlace<Vec<u8>> = client.dynamic_place(module_path!(), "reverser").unwrap();
    let v = MARKER.repeat(100);
    let mut back = p.put_get(v.clone()).unwrap();
    back.reverse();
    assert_eq!(back, v);
    let seen = r.seen.lock().unwrap().clone();
    println!("relay saw the marker: {}", contains(&seen, MARKER));
}

#[test]
fn mismatched_ends_are_refused_with_a_reason() {
    let dir = scratch("refused");
    let tls = cluster().clone();
    tls.write_dir(dir.join("tls")).unwrap();
    let secure = standalone(&dir.join("secure"), Some(&dir.join("tls")));
    let plain = standalone(&dir.join("plain"), None);
    // A certificate of another authority: refused, and the node goes on serving.
    let stranger = Tls::generate().unwrap();
    let err = RemoteNode::connect_with(&secure.addr, &secure.cookie, &opts(&stranger)).unwrap_err();
    println!("another authority: {err}");
    assert!(matches!(err, NetError::Tls(_)), "{err:?}");
    let ok = RemoteNode::connect_with(&secure.addr, &secure.cookie, &opts(&tls)).unwrap();
    let p: RemotePlace<Vec<u8>> = ok.dynamic_place(module_path!(), "reverser").unwrap();
    assert_eq!(p.put_get(vec![1, 2]).unwrap(), vec![2, 1]);
    // The right certificate without the cookie: refused by the cookie handshake inside TLS.
    let err = RemoteNode::connect_with(&secure.addr, &Cookie::random().unwrap(), &opts(&tls))
        .unwrap_err();
    assert!(err.to_string().contains("cookie"), "{err}");
    // TLS to a node without it.
    let err = RemoteNode::connect_with(&plain.addr, &plain.cookie, &opts(&tls)).unwrap_err();
    println!("TLS to a plain node: {err}");
    assert!(err.to_string().contains("without TLS"), "{err}");
    // No TLS to a node that requires it (from a process without TLS).
    let text = in_fresh_process(
        "plain_client_of_a_tls_node",
        &[
            ("PLACES_TEST_NODE", secure.addr.clone()),
            ("PLACES_TEST_COOKIE", secure.cookie.to_hex()),
        ],
    );
    println!(
        "{}",
        text.lines()
            .filter(|l| l.contains("refused"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(text.contains("refused: "), "{text}");
    assert!(text.contains("requires TLS"), "{text}");
    // Certificates that cannot be read are an error naming the file.
    let err = Tls::from_dir(dir.join("nothing here")).unwrap_err();
    assert!(err.to_string().contains("ca.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Part of the test above, run in a process of its own (does nothing in the suite).
#[test]
fn plain_client_of_a_tls_node() {
    let (Ok(addr), Ok(hex)) = (
        std::env::var("PLACES_TEST_NODE"),
        std::env::var("PLACES_TEST_COOKIE"),
    ) else {
        return;
    };
    match RemoteNode::connect(&addr, &Cookie::from_hex(&hex).unwrap()) {
        Ok(_) => println!("connected without TLS"),
        Err(e) => println!("refused: {e}"),
    }
}

#[test]
fn many_senders_share_an_encrypted_link() {
    let tls = cluster().clone();
    let node = create_place_node("localhost", opts(&tls)).unwrap();
    // Several threads, each with its own place on the same link: large messages (written in
    // fragments, with the socket full) and small ones between them, all at once.
    std::thread::scope(|s| {
        for t in 0..4usize {
            let node = &node;
            s.spawn(move || {
                let p: RemotePlace<Vec<u8>> =
                    node.dynamic_place(module_path!(), "reverser").unwrap();
                for round in 0..3usize {
                    let len = if (t + round) % 2 == 0 { 6 << 20 } else { 10 };
                    let v: Vec<u8> = (0..len).map(|i| (i ^ t ^ round) as u8).collect();
                    let mut back = p.put_get(v.clone()).unwrap();
                    back.reverse();
                    assert_eq!(back, v, "thread {t} round {round}");
                }
            });
        }
    });
}

#[test]
fn a_fork_join_group_on_nodes_with_tls_runs_a_ring_and_an_all_to_all() {
    let tls = cluster().clone();
    let nodes: Vec<RemoteNode> = (0..3)
        .map(|_| create_place_node("localhost", opts(&tls)).unwrap())
        .collect();
    const LEN: usize = 1 << 20;
    let got = fork_join!(nodes = &nodes, 3, cg, [] -> (bool, usize), {
        let (id, cnt) = (cg.id(), cg.cnt());
        let block = |from: usize, to: usize| vec![(from * 16 + to) as u8; LEN];
        cg.send((id + 1) % cnt, block(id, (id + 1) % cnt)).unwrap();
        let prev = (id + cnt - 1) % cnt;
        let ring: Vec<u8> = cg.recv(prev).unwrap();
        assert_eq!(ring, block(prev, id));
        for to in (0..cnt).filter(|&to| to != id) {
            cg.send_tagged(to, places::Tag::user(1), block(id, to)).unwrap();
        }
        let mut all = 0;
        for from in (0..cnt).filter(|&from| from != id) {
            let got: Vec<u8> = cg.recv_tagged(from, places::Tag::user(1)).unwrap();
            assert_eq!(got, block(from, id));
            all += got.len();
        }
        cg.barrier();
        // The member's node uses TLS on its links, its group's among them.
        (places::net::cluster_tls().is_some(), ring.len() + all)
    })
    .unwrap();
    assert_eq!(got, vec![(true, 3 * LEN); 3]);
}
