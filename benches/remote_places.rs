//! Remote places against raw TCP on loopback, side by side in one run.
//!
//! ```text
//! cargo bench --bench remote_places
//! ```
//!
//! - an 8-byte message round trip to a place on a local node vs a blocking-socket TCP ping-pong,
//!   and the same while 300 idle connections to the node stay open;
//! - an 8 MB and a 1 GB `Vec<f64>` sent to a remote place and back vs the same bytes echoed over
//!   raw TCP;
//! - the latency (median and p99) of 8-byte round trips on one channel while a 1 GB message
//!   streams on another channel to the same node;
//! - how much a node's resident memory grows while a sender floods a slow consumer on it for
//!   10 s (flow control keeps it within the channel's window);
//! - the time from `create_place_node("localhost", ..)` to the first reply of a place on it;
//! - an 8-byte ping-pong between places on two sibling nodes over a channel whose ends were
//!   sent to them (the first end's node links to the second's directly: one hop), the same from
//!   a place that was told the other node's `NodeAddr` and connected to a named place there
//!   (one hop), the same ping-pong between the members of a `fork_join!` over two nodes
//!   (linked directly, one hop), with how often the two nodes' event loops woke meanwhile
//!   (threads that wait for a message read the connections themselves),
//!   and `cg.barrier()` between those members, all against the raw TCP round trip;
//! - `rmpi_launch` of 4 ranks on 4 fresh local nodes, from the call to rank 0's finish.
//!
//! This bench binary is its own node executable (`places::init()` first thing in `main`).
//! `PLACES_BENCH_QUICK=1` runs fewer iterations.

use std::time::{Duration, Instant};

use places::prelude::*;
use places::rmpi::{
    op, rmpi_build_default_config, rmpi_finish, rmpi_init, rmpi_launch, Collectives, RmpiChannel,
    RmpiNodeConfig,
};
use places::{create_place_node, NodeOptions, RemotePlace};

/// Gets a channel to a sibling, then times `n` 8-byte round trips over it (the sibling echoes);
/// reports the mean in nanoseconds.
#[place]
pub fn sibling_pinger(ch: PlaceChannel<u64, (PlaceChannel<u64>, u64)>) {
    let Ok((sibling, n)) = ch.get() else { return };
    for i in 0..100 {
        let _ = sibling.put_get(i);
    }
    let start = Instant::now();
    for i in 0..n {
        if sibling.put_get(i).ok() != Some(i) {
            return;
        }
    }
    let _ = ch.put((start.elapsed() / n as u32).as_nanos() as u64);
}

/// What `handing_pinger` sends: the end to pass on, then its time.
type EndThenTime = (Option<PlaceChannel<u64>>, u64);

/// Makes a channel, hands one end to its creator (to pass on to a sibling), waits for a go,
/// then times `n` 8-byte round trips over the other end; reports the mean in nanoseconds.
#[place]
pub fn handing_pinger(ch: PlaceChannel<EndThenTime, u64>) {
    let Ok(n) = ch.get() else { return };
    let (here, there) = places::place_channel::<u64, u64>();
    if ch.put((Some(there), 0)).is_err() || ch.get().is_err() {
        return;
    }
    for i in 0..100 {
        let _ = here.put_get(i);
    }
    let start = Instant::now();
    for i in 0..n {
        if here.put_get(i).ok() != Some(i) {
            return;
        }
    }
    let _ = ch.put((None, (start.elapsed() / n as u32).as_nanos() as u64));
}

/// Told where a sibling node is, connects to it directly and times `n` 8-byte round trips with
/// the named place `echo` there; reports the mean in nanoseconds.
#[place]
pub fn direct_pinger(ch: PlaceChannel<u64, (places::NodeAddr, u64)>) {
    let Ok((at, n)) = ch.get() else { return };
    let Ok(node) = at.connect() else { return };
    let Ok(sibling) = places::connect_to_named_place::<u64, u64>(&node, "echo") else {
        return;
    };
    for i in 0..100 {
        let _ = sibling.put_get(i);
    }
    let start = Instant::now();
    for i in 0..n {
        if sibling.put_get(i).ok() != Some(i) {
            return;
        }
    }
    let _ = ch.put((start.elapsed() / n as u32).as_nanos() as u64);
}

/// A named place that echoes numbers to whoever sent them.
#[place]
pub fn named_echo(ch: PlaceChannel<(), places::Routed<u64, u64>>) {
    while let Ok(places::Routed { msg, reply }) = ch.get() {
        let _ = reply.put(msg);
    }
}

/// Gets a channel to a sibling and echoes what comes on it.
#[place]
pub fn sibling_echo(ch: PlaceChannel<(), PlaceChannel<u64>>) {
    let Ok(sibling) = ch.get() else { return };
    while let Ok(n) = sibling.get() {
        if sibling.put(n).is_err() {
            return;
        }
    }
}

/// Echoes numbers.
#[place]
pub fn echo_u64(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

/// Answers each float vector with its length.
#[place]
pub fn swallow_floats(ch: PlaceChannel<u64, Vec<f64>>) {
    while let Ok(v) = ch.get() {
        if ch.put(v.len() as u64).is_err() {
            return;
        }
    }
}

/// Takes one byte vector every 2 ms; an empty one asks how many it took.
#[place]
pub fn slow_sink(ch: PlaceChannel<u64, Vec<u8>>) {
    let mut count = 0u64;
    while let Ok(v) = ch.get() {
        if v.is_empty() {
            if ch.put(count).is_err() {
                return;
            }
            continue;
        }
        count += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// How many times the event-loop threads of process `pid` have been switched to (voluntary
/// and involuntary context switches, from `/proc`): each is a wake-up of the loop.
fn loop_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.starts_with("places-event-lo"))
        })
        .map(|t| {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Echoes float vectors.
#[place]
pub fn echo_floats(ch: PlaceChannel<Vec<f64>>) {
    while let Ok(v) = ch.get() {
        if ch.put(v).is_err() {
            return;
        }
    }
}

#[path = "common/raw_tcp.rs"]
mod raw_tcp;

#[path = "common/stats.rs"]
mod stats;
use stats::{median, us};

fn main() {
    places::init().expect("registry");
    let quick = std::env::var_os("PLACES_BENCH_QUICK").is_some();
    let (samples, rounds, big_rounds) = if quick { (3, 200, 2) } else { (9, 5_000, 10) };
    println!("remote places bench: {samples} samples, medians");

    let node = create_place_node("localhost", NodeOptions::new()).expect("node");
    let small: RemotePlace<u64> = node
        .dynamic_place(module_path!(), "echo_u64")
        .expect("spawn");
    let floats: RemotePlace<Vec<f64>> = node
        .dynamic_place(module_path!(), "echo_floats")
        .expect("spawn");
    let raw8 = raw_tcp::echo_server(8);
    let big_len = 1 << 20; // 1 Mi f64 = 8 MB
    let raw_big = raw_tcp::echo_server(big_len * 8);
    let payload: Vec<f64> = (0..big_len).map(|i| i as f64 * 0.5).collect();

    let (mut p8, mut r8, mut pbig, mut rbig) = (vec![], vec![], vec![], vec![]);
    for _ in 0..samples {
        let _ = small.put_get(0);
        let start = Instant::now();
        for i in 0..rounds {
            let back = small.put_get(i as u64).expect("round trip");
            assert_eq!(back, i as u64);
        }
        p8.push(start.elapsed() / rounds);
        r8.push(raw_tcp::round_trips(raw8, 8, rounds));

        // The vector that comes back is the one sent next, as the raw echo reuses its buffer.
        let mut v = payload.clone();
        let start = Instant::now();
        for _ in 0..big_rounds {
            v = floats.put_get(v).expect("big round trip");
        }
        assert_eq!(v, payload);
        pbig.push(start.elapsed() / big_rounds);
        rbig.push(raw_tcp::round_trips(raw_big, big_len * 8, big_rounds));
    }
    let (p8, r8, pbig, rbig) = (median(p8), median(r8), median(pbig), median(rbig));

    // Small round trips back to back, then the same while 300 more connections to the node
    // (logged in, silent) stay open: threads that poll read only the connections that carry
    // traffic.
    let small_trips = || {
        let mut per = vec![];
        for _ in 0..samples {
            let start = Instant::now();
            for i in 0..rounds {
                assert_eq!(small.put_get(i as u64).expect("round trip"), i as u64);
            }
            per.push(start.elapsed() / rounds);
        }
        median(per)
    };
    let p8_alone = small_trips();
    let idle: Vec<std::net::TcpStream> = {
        let cookie = places::net::cluster_cookie().expect("the cluster cookie");
        (0..300)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(node.addr()).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                places::net::handshake::client(&mut s, &cookie).expect("log in");
                s
            })
            .collect()
    };
    let p8_idle = small_trips();
    drop(idle);

    // A gigabyte there and back, against the same bytes echoed over raw TCP (fewer samples:
    // each moves 2 GB).
    let huge_len: usize = if quick { 8 << 20 } else { 125_000_000 }; // 64 MB or 1 GB
    let huge_samples = if quick { 1 } else { 3 };
    let raw_huge = raw_tcp::echo_server(huge_len * 8);
    let mut huge = vec![0.75f64; huge_len];
    let (mut phuge, mut rhuge) = (vec![], vec![]);
    for _ in 0..huge_samples {
        let start = Instant::now();
        huge = floats.put_get(huge).expect("huge round trip");
        phuge.push(start.elapsed());
        rhuge.push(raw_tcp::round_trips(raw_huge, huge_len * 8, 1));
    }
    assert_eq!(huge.len(), huge_len);
    drop(huge);
    let (phuge, rhuge) = (median(phuge), median(rhuge));

    // Round trips on one channel while the gigabyte streams on another.
    let streamer: RemotePlace<Vec<f64>, u64> = node
        .dynamic_place(module_path!(), "swallow_floats")
        .expect("spawn");
    let mut idle_rtts = Vec::new();
    for i in 0..1000u64 {
        let start = Instant::now();
        small.put_get(i).expect("round trip");
        idle_rtts.push(start.elapsed());
    }
    let streaming = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sender = {
        let streaming = streaming.clone();
        std::thread::spawn(move || {
            for _ in 0..if quick { 1 } else { 3 } {
                streamer
                    .put_get(vec![1.0; huge_len])
                    .expect("stream a gigabyte");
            }
            streaming.store(false, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let mut busy_rtts = Vec::new();
    let mut i = 0u64;
    while streaming.load(std::sync::atomic::Ordering::SeqCst) {
        let start = Instant::now();
        small.put_get(i).expect("round trip while streaming");
        busy_rtts.push(start.elapsed());
        i += 1;
        std::thread::sleep(Duration::from_micros(200));
    }
    sender.join().expect("the streaming thread");
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * p) as usize]
    };
    let (idle_p50, idle_p99) = (pct(&mut idle_rtts, 0.5), pct(&mut idle_rtts, 0.99));
    let (busy_p50, busy_p99) = (pct(&mut busy_rtts, 0.5), pct(&mut busy_rtts, 0.99));

    // A fast sender against a slow consumer on the node: the node's memory stays within the
    // channel's window (4 MiB by default) however long it goes on.
    let flood_node = create_place_node("localhost", NodeOptions::new()).expect("node");
    let sink: RemotePlace<Vec<u8>, u64> = flood_node
        .dynamic_place(module_path!(), "slow_sink")
        .expect("spawn");
    sink.put_get(Vec::new()).expect("sink ready");
    let pid = flood_node.pid().expect("a local node has a pid");
    let before = rss(pid);
    let mut peak = before;
    let flood_for = if quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    };
    let start = Instant::now();
    let mut flooded = 0u64;
    while start.elapsed() < flood_for {
        sink.put(vec![3u8; 64 << 10]).expect("flood");
        flooded += 1;
        if flooded.is_multiple_of(32) {
            peak = peak.max(rss(pid));
        }
    }
    peak = peak.max(rss(pid));
    let taken = sink.put_get(Vec::new()).expect("count");
    assert_eq!(taken, flooded);

    let mut startup = Vec::new();
    for _ in 0..samples.min(5) {
        let start = Instant::now();
        let n = create_place_node("localhost", NodeOptions::new()).expect("node");
        let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo_u64").expect("spawn");
        p.put_get(1).expect("first reply");
        startup.push(start.elapsed());
    }
    let startup = median(startup);

    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "{:<52} {:>10}  vs raw TCP {:>10}: {:.2}x (target <= 1.0x)",
        "8-byte round trip to a remote place",
        us(p8),
        us(r8),
        r(p8, r8)
    );
    println!(
        "{:<52} {:>10}  vs none {:>13}: {:.2}x (back to back)",
        "  the same with 300 idle connections to the node",
        us(p8_idle),
        us(p8_alone),
        r(p8_idle, p8_alone)
    );
    let mb = (big_len * 8) as f64 / 1e6;
    println!(
        "{:<52} {:>10}  vs raw TCP {:>10}: {:.2}x the time, {:.0} vs {:.0} MB/s (target >= 0.5x raw throughput)",
        "8 MB Vec<f64> to a remote place and back",
        format!("{:.2} ms", pbig.as_secs_f64() * 1e3),
        format!("{:.2} ms", rbig.as_secs_f64() * 1e3),
        r(pbig, rbig),
        2.0 * mb / pbig.as_secs_f64(),
        2.0 * mb / rbig.as_secs_f64()
    );
    let gb = (huge_len * 8) as f64 / 1e9;
    println!(
        "{:<52} {:>10}  vs raw TCP {:>10}: {:.2}x the time, {:.2} vs {:.2} GB/s (target >= 0.5x raw throughput)",
        format!("{:.2} GB Vec<f64> to a remote place and back", gb),
        format!("{:.0} ms", phuge.as_secs_f64() * 1e3),
        format!("{:.0} ms", rhuge.as_secs_f64() * 1e3),
        r(phuge, rhuge),
        2.0 * gb / phuge.as_secs_f64(),
        2.0 * gb / rhuge.as_secs_f64()
    );
    println!(
        "{:<52} p50 {:>9}, p99 {:>9} over {} round trips (idle: p50 {}, p99 {}) (target p99 < 5 ms)",
        format!("8-byte round trip while {:.2} GB streams alongside", gb),
        us(busy_p50),
        us(busy_p99),
        busy_rtts.len(),
        us(idle_p50),
        us(idle_p99)
    );
    println!(
        "{:<52} {:>7.1} MB over {:.0} s ({} messages of 64 kB taken) (target < 64 MB)",
        "node RSS growth, fast sender vs slow consumer",
        peak.saturating_sub(before) as f64 / (1 << 20) as f64,
        flood_for.as_secs_f64(),
        flooded
    );
    println!(
        "{:<52} {:>10}  (target < 50 ms)",
        "create_place_node to the first reply",
        format!("{:.1} ms", startup.as_secs_f64() * 1e3)
    );

    // Two sibling nodes.
    let nodes = [
        create_place_node("localhost", NodeOptions::new().hand_off_channel_ends(true))
            .expect("node a"),
        create_place_node("localhost", NodeOptions::new().hand_off_channel_ends(true))
            .expect("node b"),
    ];
    let (a, b) = (&nodes[0], &nodes[1]);
    let _named_echo: RemotePlace<places::Routed<u64, u64>, ()> = places::supervise_place_at(
        b,
        module_path!(),
        "named_echo",
        places::PlaceOptions::new().named("echo"),
    )
    .expect("the named echo");
    let (mut sib, mut bar, mut direct, mut raw) = (vec![], vec![], vec![], vec![]);
    let mut by_addr = vec![];
    let mut loop_wakes: Vec<f64> = vec![];
    let mut handed = vec![];
    let reps = rounds as u64 / 5;
    for _ in 0..samples {
        let pinger: RemotePlace<(PlaceChannel<u64>, u64), u64> = a
            .dynamic_place(module_path!(), "sibling_pinger")
            .expect("pinger");
        let echo: RemotePlace<PlaceChannel<u64>, ()> = b
            .dynamic_place(module_path!(), "sibling_echo")
            .expect("echo");
        let (x, y) = places::place_channel::<u64, u64>();
        echo.put(y).expect("to b");
        pinger.put((x, reps)).expect("to a");
        let ns = pinger.get().expect("the pinger's time");
        sib.push(Duration::from_nanos(ns));
        let pinger: RemotePlace<u64, EndThenTime> = a
            .dynamic_place(module_path!(), "handing_pinger")
            .expect("handing pinger");
        let echo: RemotePlace<PlaceChannel<u64>, ()> = b
            .dynamic_place(module_path!(), "sibling_echo")
            .expect("echo");
        pinger.put(reps).expect("to a");
        let (end, _) = pinger.get().expect("the end from a");
        echo.put(end.expect("an end")).expect("to b");
        pinger.put(0).expect("go");
        let (_, ns) = pinger.get().expect("the handing pinger's time");
        handed.push(Duration::from_nanos(ns));
        let pinger: RemotePlace<(places::NodeAddr, u64), u64> = a
            .dynamic_place(module_path!(), "direct_pinger")
            .expect("direct pinger");
        let pids = [a.pid().unwrap_or(0), b.pid().unwrap_or(0)];
        let before = pids.map(loop_switches);
        pinger.put((b.node_addr(), reps)).expect("to a");
        let ns = pinger.get().expect("the direct pinger's time");
        by_addr.push(Duration::from_nanos(ns));
        let after = pids.map(loop_switches);
        // Counted over the whole exchange (connecting included), per round trip.
        loop_wakes
            .push((after[0] + after[1]).saturating_sub(before[0] + before[1]) as f64 / reps as f64);
        let per = fork_join!(nodes = &nodes, 2, cg, [reps: u64] -> Duration, {
            for _ in 0..20 {
                cg.barrier();
            }
            let start = Instant::now();
            for _ in 0..reps {
                cg.barrier();
            }
            start.elapsed() / reps as u32
        })
        .expect("a group over two nodes");
        bar.push(per.into_iter().max().unwrap_or_default());
        let per = fork_join!(nodes = &nodes, 2, cg, [reps: u64] -> Duration, {
            let other = 1 - cg.id();
            let mut round = |i: u64| {
                if cg.id() == 0 {
                    cg.send(other, i).unwrap();
                    cg.recv::<u64>(other).unwrap()
                } else {
                    let v = cg.recv::<u64>(other).unwrap();
                    cg.send(other, v).unwrap();
                    v
                }
            };
            for i in 0..20 {
                round(i);
            }
            let start = Instant::now();
            for i in 0..reps {
                round(i);
            }
            start.elapsed() / reps as u32
        })
        .expect("a group over two nodes");
        direct.push(per[0]);
        raw.push(raw_tcp::round_trips(raw8, 8, rounds));
    }
    let (sib, bar, direct, raw) = (median(sib), median(bar), median(direct), median(raw));
    let by_addr = median(by_addr);
    let handed = median(handed);
    println!(
        "{:<52} {:>10}  vs raw TCP {:>9}: {:.2}x (target <= 1.0x)",
        "8-byte ping-pong, sibling nodes, a pair made here",
        us(sib),
        us(raw),
        sib.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "{:<52} {:>10}  vs raw TCP {:>9}: {:.2}x (target <= 1.0x)",
        "8-byte ping-pong, sibling nodes, an end handed on",
        us(handed),
        us(raw),
        handed.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "{:<52} {:>10}  vs raw TCP {:>9}: {:.2}x (target <= 1.0x)",
        "8-byte ping-pong, sibling nodes, NodeAddr::connect",
        us(by_addr),
        us(raw),
        by_addr.as_secs_f64() / raw.as_secs_f64()
    );
    loop_wakes.sort_by(f64::total_cmp);
    println!(
        "{:<52} {:>10.3}  (both nodes' event loops, per round trip; a blocking reader would be 2)",
        "  event-loop wake-ups in that ping-pong",
        loop_wakes[loop_wakes.len() / 2]
    );
    println!(
        "{:<52} {:>10}  vs raw TCP {:>9}: {:.2}x (target <= 1.0x)",
        "8-byte ping-pong, group members on 2 nodes (direct)",
        us(direct),
        us(raw),
        direct.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "{:<52} {:>10}  vs raw TCP {:>9}: {:.2}x (target <= 1.0x)",
        "cg.barrier() between members on 2 nodes",
        us(bar),
        us(raw),
        bar.as_secs_f64() / raw.as_secs_f64()
    );

    // rmpi_launch of 4 ranks on 4 fresh local nodes: nodes, places, links, one allreduce, finish.
    let mut launch = Vec::with_capacity(samples);
    for _ in 0..samples {
        let configs: Vec<RmpiNodeConfig<u64>> = (0..4)
            .map(|r| RmpiNodeConfig::new("localhost", 0, format!("bench_rank_{r}"), r))
            .collect();
        let start = Instant::now();
        let sum: u64 = rmpi_launch(
            &rmpi_build_default_config(module_path!(), "launch_rank", 1u64),
            &configs,
        )
        .expect("rmpi_launch");
        launch.push(start.elapsed());
        assert_eq!(sum, 4);
    }
    println!(
        "{:<52} {:>10}  (target < 200 ms; Racket RMPI: 9 s)",
        "rmpi_launch of 4 ranks on 4 local nodes, to finish",
        format!("{:.1} ms", median(launch).as_secs_f64() * 1e3)
    );

    // TLS, last: a process that uses TLS uses it for every node it starts from then on. The
    // same round trips on a TLS node and on the plain one, side by side.
    let tls_nodes = {
        let opts = NodeOptions::new().tls(places::Tls::generate().expect("certificates"));
        [
            create_place_node("localhost", opts.clone()).expect("tls node a"),
            create_place_node("localhost", opts).expect("tls node b"),
        ]
    };
    let tls_small: RemotePlace<u64> = tls_nodes[0]
        .dynamic_place(module_path!(), "echo_u64")
        .expect("spawn");
    let tls_floats: RemotePlace<Vec<f64>> = tls_nodes[0]
        .dynamic_place(module_path!(), "echo_floats")
        .expect("spawn");
    let (mut t8, mut q8, mut tbig, mut qbig, mut tdirect) =
        (vec![], vec![], vec![], vec![], vec![]);
    let time = |p: &RemotePlace<u64>| {
        let _ = p.put_get(0);
        let start = Instant::now();
        for i in 0..rounds {
            assert_eq!(p.put_get(i as u64).expect("round trip"), i as u64);
        }
        start.elapsed() / rounds
    };
    let time_big = |p: &RemotePlace<Vec<f64>>| {
        let mut v = payload.clone();
        let start = Instant::now();
        for _ in 0..big_rounds {
            v = p.put_get(v).expect("big round trip");
        }
        assert_eq!(v, payload);
        start.elapsed() / big_rounds
    };
    for _ in 0..samples {
        t8.push(time(&tls_small));
        q8.push(time(&small));
        tbig.push(time_big(&tls_floats));
        qbig.push(time_big(&floats));
        let per = fork_join!(nodes = &tls_nodes, 2, cg, [reps: u64] -> Duration, {
            let other = 1 - cg.id();
            let mut round = |i: u64| {
                if cg.id() == 0 {
                    cg.send(other, i).unwrap();
                    cg.recv::<u64>(other).unwrap()
                } else {
                    let v = cg.recv::<u64>(other).unwrap();
                    cg.send(other, v).unwrap();
                    v
                }
            };
            for i in 0..20 {
                round(i);
            }
            let start = Instant::now();
            for i in 0..reps {
                round(i);
            }
            start.elapsed() / reps as u32
        })
        .expect("a group over two TLS nodes");
        tdirect.push(per[0]);
    }
    let (t8, q8, tbig, qbig) = (median(t8), median(q8), median(tbig), median(qbig));
    let tdirect = median(tdirect);
    println!(
        "{:<52} {:>10}  vs plain {:>11}: {:.2}x",
        "TLS: 8-byte round trip to a remote place",
        us(t8),
        us(q8),
        r(t8, q8)
    );
    println!(
        "{:<52} {:>10}  vs plain {:>11}: {:.2}x",
        format!("TLS: {mb:.0} MB round trip to a remote place"),
        us(tbig),
        us(qbig),
        r(tbig, qbig)
    );
    println!(
        "{:<52} {:>10}  vs plain {:>11}: {:.2}x",
        "TLS: 8-byte ping-pong, group members on 2 nodes",
        us(tdirect),
        us(direct),
        r(tdirect, direct)
    );
}

/// A rank of the launch bench: one allreduce, then finish.
#[place]
pub fn launch_rank(ch: RmpiChannel<u64, u64>) {
    let (comm, one, tc) = rmpi_init(ch).expect("rank joins");
    let sum = comm.allreduce(op::sum, one).expect("allreduce");
    rmpi_finish(comm, tc, sum).expect("finish");
}
