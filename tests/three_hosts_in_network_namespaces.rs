//! Several hosts for real: the test makes three network namespaces joined by a bridge
//! (`.ci/netns.sh`), each a host with an address of its own, and removes them at the end. A
//! driver runs in the first (this test binary again, through `ip netns exec`) and starts one
//! node in each namespace through the command template `ip netns exec {host} {exe} {args}`,
//! each listening on its host's address. The members of a `fork_join!` group on those nodes
//! then exchange megabytes in a ring and an all-to-all, host to host: none of it passes
//! through the driver, and the members report three different network namespaces. It runs
//! twice: with plain links, and with TLS on every link (`NodeOptions::tls`). A channel end
//! made on the first host and passed on by the driver to the third is taken over between the
//! two hosts: its megabytes do not pass through the driver either.
//!
//! Making namespaces needs root; where it is not possible the test says it is skipped, unless
//! `PLACES_REQUIRE_NETNS=1` (as in CI), where it fails.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, Tag};

places::node_test_entry!();

const MB: usize = 1 << 20;
const PREFIX_ENV: &str = "PLACES_NETNS_PREFIX";
const NET_ENV: &str = "PLACES_NETNS_NET";
const TLS_ENV: &str = "PLACES_NETNS_TLS";

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/netns.sh")
}

/// The three namespaces, removed when dropped.
struct Hosts {
    prefix: String,
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", &self.prefix]).status();
    }
}

#[path = "support/written.rs"]
mod written;
use written::io_bytes;

/// This process's network namespace, as the kernel names it (`net:[4026531840]`).
fn netns_id() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

#[test]
fn a_ring_and_an_all_to_all_across_three_hosts_go_host_to_host() {
    let required = std::env::var_os("PLACES_REQUIRE_NETNS").is_some();
    let pid = std::process::id();
    let prefix = format!("pl{pid}");
    let net = format!("10.203.{}", pid % 250);
    let made = Command::new(script())
        .args(["up", &prefix, &net])
        .stdout(Stdio::null())
        .output();
    let hosts = Hosts {
        prefix: prefix.clone(),
    };
    match made {
        Ok(out) if out.status.success() => {}
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                Err(e) => e.to_string(),
            };
            assert!(!required, "could not make the network namespaces: {why}");
            eprintln!("skipped: could not make network namespaces here ({why})");
            return;
        }
    }

    // Plain links, then TLS: a node that listens beyond loopback without TLS says it is
    // unencrypted; with TLS none does.
    let (_, stderr) = run_driver(&prefix, &net, false);
    assert!(
        stderr.contains("beyond loopback, without encryption"),
        "no node said it listens unencrypted beyond loopback:\n{stderr}"
    );
    let (stdout, stderr) = run_driver(&prefix, &net, true);
    assert!(stdout.contains("links encrypted: true"), "{stdout}");
    assert!(
        !stderr.contains("without encryption"),
        "a node with TLS said it is unencrypted:\n{stderr}"
    );
    drop(hosts);
    let left = Command::new("ip").args(["netns", "list"]).output();
    if let Ok(left) = left {
        let left = String::from_utf8_lossy(&left.stdout);
        assert!(!left.contains(&prefix), "namespaces left behind: {left}");
    }
}

/// Runs the driver (this binary again, inside the first namespace, running the ignored test
/// below; bounded by a deadline), with TLS on every link or none; returns its output.
fn run_driver(prefix: &str, net: &str, tls: bool) -> (String, String) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-a")])
        .arg(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "driver_in_the_first_namespace",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PREFIX_ENV, prefix)
        .env(NET_ENV, net)
        .env(TLS_ENV, if tls { "1" } else { "" })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the driver");
    // Its output is read as it comes (a full pipe would stall it), on threads of their own.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out_reader = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err_reader = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("the driver's status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("the killed driver's status");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_reader.join().expect("the driver's stdout");
    let stderr = err_reader.join().expect("the driver's stderr");
    assert!(
        status.success(),
        "the driver (TLS: {tls}) failed ({status}):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the driver did not run its test:\n{stdout}\n{stderr}"
    );
    if let Some(line) = stdout.lines().find(|l| l.contains("driver: ")) {
        eprintln!(
            "{}",
            line.trim_start_matches("test driver_in_the_first_namespace ... ")
        );
    }
    (stdout, stderr)
}

/// Run by the test above, inside the first namespace.
#[test]
#[ignore = "the driver of a_ring_and_an_all_to_all_across_three_hosts_go_host_to_host, which runs it inside a network namespace"]
fn driver_in_the_first_namespace() {
    let prefix = std::env::var(PREFIX_ENV).expect("started by the test above");
    let net = std::env::var(NET_ENV).expect("started by the test above");
    let mine = netns_id();
    let tls = std::env::var(TLS_ENV).is_ok_and(|v| v == "1");
    let cluster = tls.then(|| places::Tls::generate().expect("make the cluster's certificates"));
    let nodes: Vec<RemoteNode> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut opts = NodeOptions::for_this_test_binary()
                .command_template("ip netns exec {host} {exe} {args}")
                .listen_addr(format!("{net}.{}", i + 1))
                .heartbeat(Duration::from_secs(2))
                .hand_off_channel_ends(true);
            if let Some(c) = &cluster {
                opts = opts.tls(c.clone());
            }
            create_place_node(&format!("{prefix}-{h}"), opts)
                .unwrap_or_else(|e| panic!("start the node in {prefix}-{h}: {e}"))
        })
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        assert!(
            n.addr().starts_with(&format!("{net}.{}:", i + 1)),
            "node {i} is at {}",
            n.addr()
        );
    }
    // A first small group pays what is paid once before the measure starts.
    fork_join!(nodes = &nodes, 3, cg, [] -> (), { cg.barrier(); }).unwrap();

    let before = io_bytes();
    let reports = fork_join!(nodes = &nodes, 3, cg, [] -> (String, u64), {
        let (id, cnt) = (cg.id(), cg.cnt());
        let block = |from: usize, to: usize| vec![(from * 16 + to) as u8; MB];
        cg.send((id + 1) % cnt, block(id, (id + 1) % cnt)).unwrap();
        let prev = (id + cnt - 1) % cnt;
        let got: Vec<u8> = cg.recv(prev).unwrap();
        assert_eq!(got, block(prev, id));
        let mut moved = got.len() as u64;
        for to in (0..cnt).filter(|&to| to != id) {
            cg.send_tagged(to, Tag::user(1), block(id, to)).unwrap();
        }
        for from in (0..cnt).filter(|&from| from != id) {
            let got: Vec<u8> = cg.recv_tagged(from, Tag::user(1)).unwrap();
            assert_eq!(got, block(from, id), "member {id} from {from}");
            moved += got.len() as u64;
        }
        cg.barrier();
        // (With TLS, the member's node uses it on all its links, its group's among them.)
        assert_eq!(places::net::cluster_tls().is_some(), std::env::var("PLACES_NODE_TLS").is_ok_and(|v| v == "stdin"));
        (netns_id(), moved)
    })
    .unwrap();
    let through_here = io_bytes() - before;

    let moved: u64 = reports.iter().map(|r| r.1).sum();
    assert_eq!(moved, 3 * MB as u64 + 6 * MB as u64);
    let spaces: std::collections::HashSet<&String> = reports.iter().map(|r| &r.0).collect();
    assert_eq!(spaces.len(), 3, "one member per host: {reports:?}");
    assert_eq!(reports[0].0, mine, "member 0 is on the driver's host");
    assert!(
        through_here < MB as u64 / 2,
        "{through_here} bytes passed through the driver while the members exchanged {moved}"
    );

    // The control: 4 MiB sent to a place on the third host does pass through here, and the
    // measure sees it.
    let sink: places::RemotePlace<Vec<u8>, u64> = nodes[2]
        .dynamic_place(module_path!(), "sink")
        .expect("start the sink");
    let before = io_bytes();
    assert_eq!(sink.put_get(vec![7u8; 4 * MB]).unwrap(), 4 * MB as u64);
    let control = io_bytes() - before;
    assert!(
        control >= 4 * MB as u64,
        "the measure saw only {control} bytes of a 4 MiB message"
    );
    // A channel end made on the first host, passed on by the driver to a place on the third:
    // the two hosts take it over between them, and the megabytes they then exchange do not pass
    // through the driver.
    let from: places::RemotePlace<u64, EndOrDone> = nodes[0]
        .dynamic_place(module_path!(), "hands_an_end_on")
        .expect("start the origin");
    let to: places::RemotePlace<PlaceChannel<Vec<u8>>, ()> = nodes[2]
        .dynamic_place(module_path!(), "reverses")
        .expect("start the reverser");
    from.put(4).unwrap();
    let (end, _) = from.get().unwrap();
    to.put(end.expect("the end")).unwrap();
    let before = io_bytes();
    from.put(0).unwrap();
    let (_, done) = from.get().unwrap();
    let handed = io_bytes() - before;
    assert_eq!(done, "4 round trips");
    assert!(
        handed < MB as u64 / 2,
        "{handed} bytes went through the driver for an end handed on"
    );
    let encrypted = nodes.iter().all(RemoteNode::encrypted);
    assert_eq!(encrypted, tls);
    println!(
        "driver: {moved} bytes host to host, {through_here} through the driver ({control} for a 4 MiB put), {handed} for 8 MiB on an end handed on, links encrypted: {encrypted}"
    );
}

/// What `hands_an_end_on` sends: the end to pass on, then what it saw.
type EndOrDone = (Option<PlaceChannel<Vec<u8>>>, String);

/// Makes a channel and sends one end to its creator; on the go, `n` round trips of 1 MiB on
/// the other; says what it saw.
#[place]
pub fn hands_an_end_on(ch: PlaceChannel<EndOrDone, u64>) {
    let Ok(n) = ch.get() else { return };
    let (here, there) = places::place_channel::<Vec<u8>, Vec<u8>>();
    if ch.put((Some(there), String::new())).is_err() || ch.get().is_err() {
        return;
    }
    let done = (0..n).try_for_each(|i| {
        let v = vec![i as u8; MB];
        let mut back = here.put_get(v.clone()).map_err(|e| e.to_string())?;
        back.reverse();
        if back == v {
            Ok(())
        } else {
            Err(format!("answer {i} is wrong"))
        }
    });
    let said = match done {
        Ok(()) => format!("{n} round trips"),
        Err(e) => format!("failed: {e}"),
    };
    let _ = ch.put((None, said));
}

/// Takes a channel end, then answers every buffer on it with the buffer reversed.
#[place]
pub fn reverses(ch: PlaceChannel<(), PlaceChannel<Vec<u8>>>) {
    let Ok(end) = ch.get() else { return };
    while let Ok(mut v) = end.get() {
        v.reverse();
        if end.put(v).is_err() {
            return;
        }
    }
}

/// Answers every buffer with its length.
#[place]
pub fn sink(ch: PlaceChannel<u64, Vec<u8>>) {
    while let Ok(v) = ch.get() {
        if ch.put(v.len() as u64).is_err() {
            return;
        }
    }
}
