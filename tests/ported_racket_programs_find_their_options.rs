//! Options of the Racket reference that ported programs use, against real local nodes: a remote
//! place's dead event in `sync!`, the ssh client chosen per node (`#:ssh-bin-path`).

use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, NetError, NodeOptions, PlaceOptions, RemoteNode, RemotePlace};

const LIMIT: Duration = Duration::from_secs(30);

places::node_test_entry!();

fn node() -> RemoteNode {
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
}

/// Ends with the code it is sent.
#[place]
pub fn ends_with(ch: PlaceChannel<(), i32>) -> i32 {
    ch.get().unwrap_or(99)
}

#[test]
fn sync_waits_on_remote_places_dead_events_as_on_local_ones() {
    let n = node();
    let a: RemotePlace<i32, ()> = n.dynamic_place(module_path!(), "ends_with").unwrap();
    let b: RemotePlace<i32, ()> = n.dynamic_place(module_path!(), "ends_with").unwrap();
    let (dead_a, dead_b) = (a.dead_evt(), b.dead_evt());
    assert!(!dead_a.is_ready() && !dead_b.is_ready());
    b.put(7).unwrap();
    let first = places::sync! {
        dead(dead_a) -> code => ("a", code),
        dead(dead_b) -> code => ("b", code),
        timeout(LIMIT) => ("nobody", -1),
    };
    assert_eq!(first, ("b", 7));
    assert!(dead_b.is_ready());
    assert_eq!(dead_b.completion(), Some(7));
    // A node that is lost ends its places: their dead events become ready with 1.
    n.send_exit();
    let lost = places::sync! {
        dead(dead_a) -> code => code,
        timeout(LIMIT) => -1,
    };
    assert_eq!(lost, 1);
}

#[test]
fn a_select_over_a_lost_nodes_channel_names_the_node() {
    let n = node();
    let a: RemotePlace<i32, ()> = n.dynamic_place(module_path!(), "ends_with").unwrap();
    let name = n.name().to_owned();
    // The node's process dies without a word: the channel's error must say which node.
    let pid = n.pid().expect("a local node has a pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let got = places::sync! {
        recv(a) -> m => m,
        timeout(LIMIT) => Err(ChannelError::Timeout(LIMIT)),
    };
    match got {
        Err(ChannelError::Lost(reason)) => assert!(reason.contains(&name), "{reason}"),
        other => panic!("expected Lost naming {name}, got {other:?}"),
    }
}

#[test]
fn each_node_can_use_its_own_ssh_client() {
    // The client is a script that says it ran and fails as ssh fails: nothing is contacted.
    let dir = std::env::temp_dir().join(format!("places-ssh-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("ran");
    let script = dir.join("my-ssh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\necho \"my-ssh was asked for: $*\" >&2\nexit 255\n",
            marker.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let err = create_place_node("node-a.invalid", NodeOptions::new().ssh_bin(&script)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, NetError::ExitedEarly { .. }), "{err:?}");
    assert!(text.contains("my-ssh was asked for"), "{text}");
    assert!(text.contains("node-a.invalid"), "{text}");
    assert!(marker.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Answers its first message with `first: ..`, every later one with `echo: ..`.
#[place]
pub fn greeter(ch: PlaceChannel<String, String>) {
    let Ok(first) = ch.get() else { return };
    if ch.put(format!("first: {first}")).is_err() {
        return;
    }
    while let Ok(m) = ch.get() {
        if ch.put(format!("echo: {m}")).is_err() {
            return;
        }
    }
}

/// Ends at once with 1.
#[place]
pub fn fails(_ch: PlaceChannel<String, String>) -> i32 {
    1
}

/// Waits until `evt` is ready (or fails the test).
fn ended(evt: &places::DeadEvt) -> i32 {
    places::sync! {
        dead(evt) -> code => code,
        timeout(LIMIT) => panic!("the place did not end within {LIMIT:?}"),
    }
}

#[test]
fn a_restarted_place_keeps_its_handle_and_gets_its_initial_message_again() {
    let n = node();
    let p: RemotePlace<String> = places::supervise_place_at(
        &n,
        module_path!(),
        "greeter",
        PlaceOptions::new()
            .initial_message("hello".to_string())
            .restart_on_exit(true),
    )
    .unwrap();
    // Put at once: the initial message still comes first.
    p.put("x".to_string()).unwrap();
    assert_eq!(p.get_timeout(LIMIT).unwrap(), "first: hello");
    assert_eq!(p.get_timeout(LIMIT).unwrap(), "echo: x");
    for round in 0..3 {
        let dead = p.dead_evt();
        p.kill();
        assert_eq!(ended(&dead), 1);
        // Sent while the place is down or restarting: it waits for the next instance, which
        // gets the initial message first.
        p.put(format!("after kill {round}")).unwrap();
        assert_eq!(p.get_timeout(LIMIT).unwrap(), "first: hello");
        assert_eq!(
            p.get_timeout(LIMIT).unwrap(),
            format!("echo: after kill {round}")
        );
    }
}

#[test]
fn a_place_without_a_policy_gets_its_initial_message_first() {
    let n = node();
    let p: RemotePlace<String> = n
        .dynamic_place_with(
            module_path!(),
            "greeter",
            PlaceOptions::new().initial_message("hi".to_string()),
        )
        .unwrap();
    p.put("y".to_string()).unwrap();
    assert_eq!(p.get_timeout(LIMIT).unwrap(), "first: hi");
    assert_eq!(p.get_timeout(LIMIT).unwrap(), "echo: y");
}

#[test]
fn an_initial_message_of_another_type_is_refused_naming_both() {
    let n = node();
    let err = places::supervise_place_at::<String, String>(
        &n,
        module_path!(),
        "greeter",
        PlaceOptions::new().initial_message(7u32),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, NetError::Spawn { .. }), "{err:?}");
    assert!(text.contains("u32") && text.contains("String"), "{text}");
}

#[test]
fn when_the_policy_gives_up_the_handle_closes() {
    let n = node();
    let p: RemotePlace<String> = places::supervise_place_at(
        &n,
        module_path!(),
        "fails",
        PlaceOptions::new().restart_on_exit(places::restart_every(0.05).retry(2)),
    )
    .unwrap();
    assert_eq!(p.get_timeout(LIMIT), Err(ChannelError::Closed));
    assert_eq!(p.wait_timeout(LIMIT), Some(1));
}

#[test]
fn spawn_node_with_place_at_takes_the_places_options() {
    let node = places::spawn_node_with_place_at::<places::Routed<String, String>, ()>(
        "localhost",
        module_path!(),
        "named_echo",
        NodeOptions::for_this_test_binary(),
        PlaceOptions::new().named("first").restart_on_exit(true),
    )
    .unwrap();
    let c = places::connect_to_named_place::<String, String>(&node, "first").unwrap();
    assert_eq!(c.put_get("a".to_string()).unwrap(), "a!");
    let first: RemotePlace<places::Routed<String, String>, ()> =
        node.first_place().expect("the first place");
    let dead = first.dead_evt();
    first.kill();
    assert_eq!(ended(&dead), 1);
    // Restarted under its name: a new connection reaches it.
    let deadline = std::time::Instant::now() + LIMIT;
    let answer = loop {
        if let Ok(c) = places::connect_to_named_place::<String, String>(&node, "first") {
            if let Ok(v) = c.put_get("b".to_string()) {
                break v;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the named place did not come back"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(answer, "b!");
}

/// A named place answering each connection's messages with `..!`.
#[place]
pub fn named_echo(ch: PlaceChannel<(), places::Routed<String, String>>) {
    while let Ok(places::Routed { msg, reply }) = ch.get() {
        let _ = reply.put(format!("{msg}!"));
    }
}

/// Gets a count, sends that many numbers, then ends.
#[place]
pub fn burst(ch: PlaceChannel<u64, u64>) {
    if let Ok(n) = ch.get() {
        for i in 0..n {
            if ch.put(i).is_err() {
                return;
            }
        }
    }
}

#[test]
fn what_an_instance_sent_before_it_ended_reaches_the_handle() {
    let n = node();
    let p: RemotePlace<u64> = places::supervise_place_at(
        &n,
        module_path!(),
        "burst",
        PlaceOptions::new().restart_on_exit(places::RestartOnExit::Custom(Box::new(|_| false))),
    )
    .unwrap();
    p.put(3000).unwrap();
    let mut got = 0u64;
    while let Ok(v) = p.get_timeout(LIMIT) {
        assert_eq!(v, got);
        got += 1;
    }
    assert_eq!(got, 3000);
}

/// Fails at once the first `n` times it runs on a node (counted in a file), then greets.
#[place]
pub fn fails_first(ch: PlaceChannel<String, String>) -> i32 {
    let marker = std::env::temp_dir().join(format!(
        "places-fails-first-{}",
        std::os::unix::process::parent_id()
    ));
    if !marker.exists() {
        let _ = std::fs::write(&marker, "ran");
        return 1;
    }
    let _ = std::fs::remove_file(&marker);
    greeter(ch);
    0
}

#[test]
fn an_instance_that_ends_before_its_initial_message_does_not_double_it() {
    let n = node();
    let p: RemotePlace<String> = places::supervise_place_at(
        &n,
        module_path!(),
        "fails_first",
        PlaceOptions::new()
            .initial_message("INIT".to_string())
            .restart_on_exit(places::restart_every(0.1)),
    )
    .unwrap();
    // The second instance answers; its first message must be the initial one, once.
    assert_eq!(p.get_timeout(LIMIT).unwrap(), "first: INIT");
    p.put("after".to_string()).unwrap();
    assert_eq!(p.get_timeout(LIMIT).unwrap(), "echo: after");
}

#[test]
fn dropping_the_handle_of_an_unnamed_supervised_place_ends_it() {
    let n = node();
    let p: RemotePlace<String> = places::supervise_place_at(
        &n,
        module_path!(),
        "greeter",
        PlaceOptions::new().restart_on_exit(true),
    )
    .unwrap();
    p.put("x".to_string()).unwrap();
    assert_eq!(p.get_timeout(LIMIT).unwrap(), "first: x");
    drop(p);
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let s = n.status().unwrap();
        if !s.places.iter().any(|q| q.key.ends_with("::greeter")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place runs on:\n{}",
            s.table()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends numbers as fast as it may, forever.
#[place]
pub fn floods(ch: PlaceChannel<u64, ()>) {
    let mut i = 0;
    while ch.put(i).is_ok() {
        i += 1;
    }
}

#[test]
fn a_supervised_handle_that_is_not_read_pushes_back_on_its_place() {
    let n = node();
    let p: RemotePlace<(), u64> = places::supervise_place_at(
        &n,
        module_path!(),
        "floods",
        PlaceOptions::new().restart_on_exit(true),
    )
    .unwrap();
    // Nobody reads: the place may fill its channel's window and the relay's hold, no more.
    let sent = |n: &RemoteNode| {
        n.status()
            .unwrap()
            .places
            .iter()
            .find(|q| q.key.ends_with("::floods"))
            .map_or(0, |q| q.messages_out)
    };
    // Wait until it stops (two snapshots apart agree), however loaded the machine is.
    let deadline = std::time::Instant::now() + LIMIT;
    let mut last = sent(&n);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = sent(&n);
        if now == last && now > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && now < 4096,
            "the place sent {now} messages nobody took"
        );
        last = now;
    }
    assert!(last < 4096, "the place sent {last} messages nobody took");
    assert_eq!(p.get_timeout(LIMIT).unwrap(), 0);
}

#[test]
fn a_policy_callback_that_panics_closes_the_handle() {
    let n = node();
    let p: RemotePlace<String> = places::supervise_place_at(
        &n,
        module_path!(),
        "fails",
        PlaceOptions::new().restart_on_exit(places::RestartOnExit::Custom(Box::new(|_| {
            panic!("this policy callback panics on purpose")
        }))),
    )
    .unwrap();
    assert_eq!(p.get_timeout(LIMIT), Err(ChannelError::Closed));
}
