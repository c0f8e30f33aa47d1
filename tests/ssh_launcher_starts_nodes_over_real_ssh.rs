//! The ssh launcher against a real OpenSSH server on 127.0.0.1 (`.ci/sshd.sh` starts one and
//! prints the settings these tests read). Without `PLACES_TEST_SSH` set, each test says it is
//! skipped and passes.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, NetError, NodeOptions, RemotePlace};

const LIMIT: Duration = Duration::from_secs(30);

/// The tests that ship the executable share one cache directory on the (local) test host, and
/// one of them overwrites the copy there on purpose, and another removes it: they take this lock
/// so that none sees the others' changes between checking the copy and running it.
static SHIP_CACHE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ship_cache() -> std::sync::MutexGuard<'static, ()> {
    SHIP_CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

places::node_test_entry!();

/// Echoes numbers until its creator leaves.
#[place]
pub fn echo(ch: PlaceChannel<u64>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

/// The ssh destination and options for the test server, or `None` (with a message) to skip.
fn ssh(test: &str) -> Option<(String, NodeOptions)> {
    let Ok(dest) = std::env::var("PLACES_TEST_SSH") else {
        // Written to the process's stderr directly, past the test harness's output capture, so
        // the skip shows in a normal `cargo test` run.
        let _ = writeln!(
            std::io::stderr(),
            "skipped {test}: PLACES_TEST_SSH is not set (run `eval \"$(.ci/sshd.sh)\"` to start a test sshd)"
        );
        return None;
    };
    let mut opts = NodeOptions::for_this_test_binary().ssh_options([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
    ]);
    if let Ok(port) = std::env::var("PLACES_TEST_SSH_PORT") {
        opts = opts.ssh_port(port.parse().expect("PLACES_TEST_SSH_PORT is a port"));
    }
    if let Ok(key) = std::env::var("PLACES_TEST_SSH_KEY") {
        opts = opts.ssh_identity(key);
    }
    Some((dest, opts))
}

#[test]
fn a_node_started_over_ssh_serves_places() {
    let Some((dest, opts)) = ssh("a_node_started_over_ssh_serves_places") else {
        return;
    };
    let node = create_place_node(&dest, opts).unwrap();
    let p: RemotePlace<u64> = node.dynamic_place(module_path!(), "echo").unwrap();
    for i in 0..100 {
        assert_eq!(p.put_get(i).unwrap(), i);
    }
    assert!(node.name().starts_with(&dest), "{}", node.name());
}

#[test]
fn the_executable_can_be_shipped_to_the_host() {
    let Some((dest, opts)) = ssh("the_executable_can_be_shipped_to_the_host") else {
        return;
    };
    let _cache = ship_cache();
    let node = create_place_node(&dest, opts.ship_executable(true)).unwrap();
    let p: RemotePlace<u64> = node.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p.put_get(7).unwrap(), 7);
    // The test host is this machine: the copy is in the ssh user's cache, named by its hash.
    assert!(
        shipped_copy().is_some(),
        "no copy of this build under ~/.cache/places"
    );
}

#[test]
fn a_refused_key_fails_with_ssh_own_message() {
    let Some((dest, opts)) = ssh("a_refused_key_fails_with_ssh_own_message") else {
        return;
    };
    // A key the server does not know.
    let dir = std::env::temp_dir().join(format!("places-test-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("stranger");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let err = create_place_node(&dest, opts.ssh_identity(&key).ready_timeout(LIMIT)).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    let text = err.to_string();
    assert!(matches!(err, NetError::ExitedEarly { .. }), "{err:?}");
    assert!(text.contains("Permission denied"), "{text}");
}

#[test]
fn a_missing_executable_on_the_host_is_reported() {
    let Some((dest, opts)) = ssh("a_missing_executable_on_the_host_is_reported") else {
        return;
    };
    let err = create_place_node(&dest, opts.exe("/nonexistent/places-node")).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, NetError::ExitedEarly { .. }), "{err:?}");
    assert!(text.contains("/nonexistent/places-node"), "{text}");
}

#[test]
fn a_command_template_starts_the_node_through_a_shell() {
    // Needs no ssh server: the template runs on this host.
    let opts = NodeOptions::for_this_test_binary()
        .command_template("env PLACES_VIA_TEMPLATE=1 {exe} {args}");
    let node = create_place_node("127.0.0.1", opts).unwrap();
    let p: RemotePlace<u64> = node.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p.put_get(3).unwrap(), 3);
    assert_eq!(
        p.get_timeout(Duration::from_millis(10)),
        Err(ChannelError::Timeout(Duration::from_millis(10)))
    );
}

/// A path that must not come to exist, unique to this run.
fn marker(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("places-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn a_command_template_takes_what_it_substitutes_literally() {
    // Needs no ssh server. Each placeholder is filled once, by quoted text, in one pass: an
    // executable whose path looks like a placeholder and an argument with quotes and a `;` stay
    // what they are.
    let touched = marker("template-injection");
    let dir = std::env::temp_dir().join(format!("places-{{args}}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("node");
    let _ = std::fs::remove_file(&exe);
    std::os::unix::fs::symlink(std::env::current_exe().unwrap(), &exe).unwrap();
    let evil = format!("x'; touch {}; echo '", touched.display());
    let opts = NodeOptions::new()
        .exe(&exe)
        .exe_args([
            "places_node",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            &evil,
        ])
        .command_template("{exe} {args}");
    let node = create_place_node("127.0.0.1", opts).unwrap();
    let p: RemotePlace<u64> = node.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p.put_get(3).unwrap(), 3);
    assert!(
        !touched.exists(),
        "the template ran a command from an argument"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_ssh_destination_that_looks_like_an_option_is_refused() {
    let touched = marker("ssh-option");
    let host = format!("-oProxyCommand=touch {}", touched.display());
    let err = create_place_node(&host, NodeOptions::new()).unwrap_err();
    assert!(
        matches!(&err, NetError::Launch { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput),
        "{err:?}"
    );
    assert!(err.to_string().contains("may not"), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!touched.exists(), "ssh read the destination as an option");
}

/// The copy `ship_executable` keeps of this build of the test binary on the (local) test host
/// (copies of earlier builds, under other hashes, may be there too).
fn shipped_copy() -> Option<PathBuf> {
    let home = std::env::var("HOME").map(PathBuf::from).ok()?;
    let exe = std::env::current_exe().ok()?;
    let me = std::fs::read(&exe).ok()?;
    let exe_name = exe.file_name()?.to_owned();
    std::fs::read_dir(home.join(".cache/places"))
        .ok()?
        .flatten()
        .map(|d| d.path().join(&exe_name))
        .find(|p| std::fs::read(p).is_ok_and(|bytes| bytes == me))
}

#[test]
fn a_shipped_copy_is_checked_before_every_use() {
    let Some((dest, opts)) = ssh("a_shipped_copy_is_checked_before_every_use") else {
        return;
    };
    let _cache = ship_cache();
    let node = create_place_node(&dest, opts.clone().ship_executable(true)).unwrap();
    drop(node);
    let copy = shipped_copy().expect("the shipped copy");
    // Something else now lies at the cache path, executable: it must not be run.
    std::fs::write(&copy, "#!/bin/sh\necho not the node >&2\nexit 9\n").unwrap();
    let node = create_place_node(&dest, opts.ship_executable(true)).unwrap();
    let p: RemotePlace<u64> = node.dynamic_place(module_path!(), "echo").unwrap();
    assert_eq!(p.put_get(11).unwrap(), 11);
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(
        std::fs::read(&copy).unwrap() == me,
        "the copy was not replaced"
    );
}

#[test]
fn two_programs_shipping_at_once_both_get_a_whole_copy() {
    let Some((dest, opts)) = ssh("two_programs_shipping_at_once_both_get_a_whole_copy") else {
        return;
    };
    let _cache = ship_cache();
    if let Some(copy) = shipped_copy() {
        let _ = std::fs::remove_dir_all(copy.parent().unwrap());
    }
    let nodes: Vec<_> = (0..2)
        .map(|_| places::spawn_node_at(&dest, opts.clone().ship_executable(true)))
        .collect();
    for pending in nodes {
        let node = pending.join().unwrap();
        let p: RemotePlace<u64> = node.dynamic_place(module_path!(), "echo").unwrap();
        assert_eq!(p.put_get(12).unwrap(), 12);
    }
}
