//! Remote places on real node processes over real TCP on loopback: spawning by name, channels,
//! completion values, failures, and a node's process dying in the middle of a `get`.

use std::time::Duration;

use places::prelude::*;
use places::{
    create_place_node, spawn_node_at, spawn_node_supervise_place_at, spawn_node_with_place_at,
    spawn_nodes_join, Channel, NetError, NodeOptions, PlaceOptions, RemoteNode, RemotePlace,
};

const LIMIT: Duration = Duration::from_secs(30);

places::node_test_entry!();

fn node() -> RemoteNode {
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
}

/// Echoes numbers until its creator leaves.
#[place]
pub fn echo(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

/// Sums what it gets until its creator closes the channel, then sends the sum.
#[place]
pub fn summer(ch: PlaceChannel<u64>) {
    let mut sum = 0;
    while let Ok(n) = ch.get() {
        sum += n;
        if n == 0 {
            break;
        }
    }
    let _ = ch.put(sum);
}

/// Returns the code it is sent.
#[place]
pub fn exit_code(ch: PlaceChannel<(), i32>) -> i32 {
    ch.get().unwrap_or(99)
}

/// Panics after its first message.
#[place]
pub fn panics(ch: PlaceChannel<u64>) {
    let _ = ch.get();
    panic!("a remote place panics on purpose");
}

/// Greets in the hello-world way.
#[place]
pub fn hello(ch: PlaceChannel<String>) {
    if let Ok(s) = ch.get() {
        let _ = ch.put(format!("{s} World"));
    }
}

#[test]
fn a_remote_place_answers_like_a_local_one() {
    let n = node();
    let p: RemotePlace<String> = n.dynamic_place(module_path!(), "hello").unwrap();
    p.put("Hello".to_string()).unwrap();
    assert_eq!(p.get_timeout(LIMIT).unwrap(), "Hello World");
    assert_eq!(p.wait_timeout(LIMIT), Some(0));
}

#[test]
fn messages_arrive_in_order_also_while_nobody_waits() {
    let n = node();
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    for i in 0..5000 {
        p.put(i).unwrap();
    }
    // Let the replies pile up before anybody asks for them.
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..5000 {
        assert_eq!(p.get_timeout(LIMIT).unwrap(), i);
    }
}

#[test]
fn several_places_on_one_node_keep_their_channels_apart() {
    let n = node();
    let ps: Vec<RemotePlace<u64>> = (0..4)
        .map(|_| n.dynamic_place(module_path!(), "summer").unwrap())
        .collect();
    for round in 1..=100u64 {
        for (k, p) in ps.iter().enumerate() {
            p.put(round * (k as u64 + 1)).unwrap();
        }
    }
    for p in &ps {
        p.put(0).unwrap();
    }
    let sums: Vec<u64> = ps.iter().map(|p| p.get_timeout(LIMIT).unwrap()).collect();
    let base: u64 = (1..=100).sum();
    assert_eq!(sums, [base, 2 * base, 3 * base, 4 * base]);
}

#[test]
fn completion_values_cross_the_network() {
    let n = node();
    let p: RemotePlace<i32, ()> = n.dynamic_place(module_path!(), "exit_code").unwrap();
    p.put(7).unwrap();
    assert_eq!(p.wait_timeout(LIMIT), Some(7));
    let q: RemotePlace<u64> = n.dynamic_place(module_path!(), "panics").unwrap();
    q.put(1).unwrap();
    assert_eq!(q.wait_timeout(LIMIT), Some(1));
    assert_eq!(q.get_timeout(LIMIT), Err(ChannelError::Closed));
}

#[test]
fn kill_ends_a_remote_place() {
    let n = node();
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p.put_get(3).unwrap(), 3);
    p.kill();
    assert_eq!(p.wait_timeout(LIMIT), Some(1));
    assert_eq!(p.get_timeout(LIMIT), Err(ChannelError::Closed));
}

#[test]
fn spawn_errors_name_the_entry_and_the_types() {
    let n = node();
    let err = n
        .dynamic_place::<u64, u64>(module_path!(), "ecoh")
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, NetError::Spawn { .. }), "{err:?}");
    assert!(text.contains("ecoh") && text.contains("::echo`"), "{text}");
    let err = n
        .dynamic_place::<String, u64>(module_path!(), "echo")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("receives `u64`") && text.contains("receives `alloc::string::String`"),
        "{text}"
    );
    // The node keeps serving after refusing.
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p.put_get(5).unwrap(), 5);
}

#[test]
fn a_killed_node_fails_a_pending_get_with_an_error_naming_it() {
    let n = node();
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "summer").unwrap();
    let pid = n.pid().expect("a local node has a pid");
    let name = n.name().to_owned();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        assert!(
            status.map(|s| s.success()).unwrap_or(false),
            "kill -9 {pid}"
        );
    });
    // The summer never answers before it gets a 0: this get is pending when the node dies.
    let err = p.get_timeout(LIMIT).unwrap_err();
    killer.join().unwrap();
    let ChannelError::Lost(reason) = &err else {
        panic!("expected Lost, got {err:?}");
    };
    assert!(reason.contains(&name), "{reason}");
    assert_eq!(p.wait_timeout(LIMIT), Some(1));
    assert!(matches!(p.put(1), Err(ChannelError::Lost(_))));
}

#[test]
fn a_node_that_cannot_start_says_why() {
    let err = create_place_node(
        "localhost",
        NodeOptions::new().exe("/nonexistent/places-node"),
    )
    .unwrap_err();
    assert!(matches!(err, NetError::Launch { .. }), "{err:?}");
    // `true` exits at once without reporting readiness.
    let err = create_place_node("localhost", NodeOptions::new().exe("true")).unwrap_err();
    assert!(matches!(err, NetError::ExitedEarly { .. }), "{err:?}");
    // A port that is taken: the node reports that it could not listen.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().listen_port(port),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, NetError::ExitedEarly { .. }) && text.contains("could not listen"),
        "{text}"
    );
    // An unreachable host: ssh fails, and its own message is in the error.
    let err = create_place_node("example.invalid", NodeOptions::new()).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, NetError::ExitedEarly { .. }) && text.contains("example.invalid"),
        "{text}"
    );
}

/// Generic over the kind of channel: runs unchanged on a local and a remote place.
fn sum_of_echoes<C: Channel<u64, u64>>(c: &C) -> u64 {
    (1..=10).map(|i| c.put_get(i).unwrap()).sum()
}

#[test]
fn one_channel_trait_serves_local_and_remote_places() {
    let local: Place<u64> = Place::spawn(echo).unwrap();
    let n = node();
    let remote: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(sum_of_echoes(&local), 55);
    assert_eq!(sum_of_echoes(&remote), 55);
    assert_eq!(sum_of_echoes(remote.channel()), 55);
}

#[test]
fn nodes_can_be_started_with_a_place_or_in_the_background() {
    let opts = || NodeOptions::for_this_test_binary();
    let n = spawn_node_with_place_at::<u64, u64>(
        "localhost",
        module_path!(),
        "echo",
        opts(),
        PlaceOptions::new(),
    )
    .unwrap();
    assert!(
        n.first_place::<String, String>().is_none(),
        "wrong types give nothing"
    );
    let first: RemotePlace<u64> = n.first_place().expect("the first place");
    assert_eq!(first.put_get(9).unwrap(), 9);
    assert!(n.first_place::<u64, u64>().is_none(), "taken once");

    let (n2, p2) = spawn_node_supervise_place_at::<u64, u64>(
        "localhost",
        module_path!(),
        "echo",
        opts(),
        PlaceOptions::new(),
    )
    .unwrap();
    assert_eq!(p2.put_get(4).unwrap(), 4);
    assert_ne!(n2.addr(), n.addr());

    let pending = spawn_node_at("localhost", opts());
    let n3 = pending.join().unwrap();
    let p3: RemotePlace<u64> = n3.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p3.put_get(5).unwrap(), 5);

    let all = spawn_nodes_join([("localhost", opts()), ("localhost", opts())]).unwrap();
    assert_eq!(all.len(), 2);
    for node in &all {
        let p: RemotePlace<u64> = node.dynamic_place(module_path!(), "echo").unwrap();
        assert_eq!(p.put_get(6).unwrap(), 6);
    }
    assert!(spawn_nodes_join([("localhost", opts()), ("nowhere.invalid", opts())]).is_err());
}

#[test]
fn a_frozen_node_is_declared_lost_after_missed_heartbeats() {
    let n = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().heartbeat(Duration::from_secs(1)),
    )
    .unwrap();
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "summer").unwrap();
    let pid = n.pid().unwrap().to_string();
    // Stopped, not killed: the connection stays open, only the heartbeats stop.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(stopped.success());
    let start = std::time::Instant::now();
    let err = p.get_timeout(LIMIT).unwrap_err();
    let waited = start.elapsed();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    let ChannelError::Lost(reason) = &err else {
        panic!("expected Lost, got {err:?}");
    };
    assert!(
        reason.contains("heartbeat") && reason.contains(n.name()),
        "{reason}"
    );
    assert!(
        waited < LIMIT,
        "declared lost well before the test's own limit ({waited:?})"
    );
}

/// A thunk entry (Racket's `#:thunk`): it starts the place itself, after its own set-up, and the
/// caller talks to the place it returns.
#[place]
pub fn starts_an_echo() -> Place<u64> {
    Place::spawn(echo).expect("spawn the echo place")
}

#[test]
fn a_thunk_entry_starts_its_own_place_locally_and_on_a_node() {
    let local: Place<u64> = dynamic_place(module_path!(), "starts_an_echo").unwrap();
    assert_eq!(local.put_get(5).unwrap(), 5);
    let n = node();
    let remote: RemotePlace<u64> = n.dynamic_place(module_path!(), "starts_an_echo").unwrap();
    for i in 0..20 {
        assert_eq!(remote.put_get(i).unwrap(), i);
    }
    remote.kill();
    assert_eq!(remote.wait_timeout(LIMIT), Some(1));
    let err = n
        .dynamic_place::<String, String>(module_path!(), "starts_an_echo")
        .unwrap_err();
    assert!(err.to_string().contains("receives `u64`"), "{err}");
}

/// Never reads: what it is sent piles up.
#[place]
pub fn deaf(_ch: PlaceChannel<Vec<f64>>) {
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_put_stuck_on_a_frozen_node_is_released_by_the_heartbeat() {
    let n = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().heartbeat(Duration::from_secs(1)),
    )
    .unwrap();
    let p: RemotePlace<Vec<f64>> = n.dynamic_place(module_path!(), "deaf").unwrap();
    let pid = n.pid().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    // Far more than the socket buffers hold: a put blocks in its write until the heartbeat
    // declares the node lost and shuts the connection.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut outcome = Ok(());
        for _ in 0..64 {
            outcome = p.put(vec![0.5; 1 << 20]);
            if outcome.is_err() {
                break;
            }
        }
        let _ = tx.send(outcome);
    });
    let outcome = rx.recv_timeout(LIMIT);
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    match outcome {
        Ok(Err(ChannelError::Lost(reason))) => assert!(reason.contains("heartbeat"), "{reason}"),
        other => panic!("expected the stuck put to fail with a lost node, got {other:?}"),
    }
}

#[test]
fn a_node_that_never_reports_readiness_times_out() {
    // `sleep` starts fine but never prints the readiness line.
    let err = places::spawn_remote_node(
        "localhost",
        NodeOptions::new()
            .exe("sleep")
            .exe_args(["30"])
            .ready_timeout(Duration::from_millis(300)),
    )
    .unwrap_err();
    assert!(matches!(err, NetError::NotReady { .. }), "{err:?}");
    assert!(err.to_string().contains("not ready within"), "{err}");
}

#[test]
fn send_exit_ends_the_node() {
    let n = node();
    let p: RemotePlace<u64> = n.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p.put_get(1).unwrap(), 1);
    n.send_exit();
    // The node process exits: its places' channels fail, naming it.
    assert!(matches!(p.get_timeout(LIMIT), Err(ChannelError::Lost(_))));
    assert_eq!(p.wait_timeout(LIMIT), Some(1));
    assert!(n.lost_reason().is_some());
}

/// Sums the lengths of the vectors it gets; answers when it gets an empty one.
#[place]
pub fn swallows(ch: PlaceChannel<u64, Vec<f64>>) {
    let mut total = 0u64;
    while let Ok(v) = ch.get() {
        if v.is_empty() {
            let _ = ch.put(total);
        }
        total += v.len() as u64;
    }
}

#[test]
fn a_long_one_way_stream_is_not_taken_for_a_lost_node() {
    // Heartbeats every 250 ms (lost after five silent ones): the stream below lasts many
    // intervals, and the node sends nothing back while it lasts but its pongs.
    let n = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().heartbeat(Duration::from_millis(250)),
    )
    .unwrap();
    let p: RemotePlace<Vec<f64>, u64> = n.dynamic_place(module_path!(), "swallows").unwrap();
    let start = std::time::Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        p.put(vec![1.0; 1 << 17]).unwrap();
        sent += 1 << 17;
    }
    assert_eq!(p.put_get(Vec::new()).unwrap(), sent);
    assert!(n.lost_reason().is_none());
}

/// Computes for a long while without touching a channel, then returns normally.
#[place]
pub fn busy_then_done(_ch: PlaceChannel<()>) {
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < end {
        std::hint::spin_loop();
    }
}

#[test]
fn a_remote_place_killed_while_computing_completes_with_one() {
    let n = node();
    let p: RemotePlace<()> = n.dynamic_place(module_path!(), "busy_then_done").unwrap();
    p.kill();
    // It would return normally afterwards, but it was killed first: its value is 1, at once.
    assert_eq!(p.wait_timeout(LIMIT), Some(1));
}
