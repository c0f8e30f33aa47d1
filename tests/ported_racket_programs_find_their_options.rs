//! Options of the Racket reference that ported programs use, against real local nodes: a remote
//! place's dead event in `sync!`, the ssh client chosen per node (`#:ssh-bin-path`).

use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, NetError, NodeOptions, RemoteNode, RemotePlace};

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
