//! A program started as a node whose `main` never enters node mode (no `places::init()`, no
//! `#[places::main]`) would run as a program, start nodes of its own, and so on without end. It
//! exits at once instead, and its creator's `create_place_node` says why.

use places::{create_place_node, NetError, NodeOptions};

/// Plays, when started as a node, a `main` that forgot `places::init()` and starts a node.
#[test]
fn stray_main_that_starts_a_node() {
    if std::env::var_os(places::net::NODE_ENV).is_none() {
        return;
    }
    let _ = create_place_node(
        "localhost",
        NodeOptions::for_test_binary("stray_main_that_starts_a_node"),
    );
    // Never reached: the runtime ends the process first.
    std::process::exit(7);
}

/// Plays, when started as a node, a `main` that forgot `places::init()` and starts a place.
#[test]
fn stray_main_that_starts_a_place() {
    if std::env::var_os(places::net::NODE_ENV).is_none() {
        return;
    }
    let _ = places::Place::<u8>::spawn(|ch: places::PlaceChannel<u8>| drop(ch));
    std::process::exit(7);
}

/// The processes of this test binary that run `test_name`.
fn running(test_name: &str) -> usize {
    let me = std::env::current_exe().unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let ours = args
            .first()
            .is_some_and(|a| *a == me.as_os_str().as_encoded_bytes());
        if ours && args.contains(&test_name.as_bytes()) {
            n += 1;
        }
    }
    n
}

#[test]
fn a_node_program_that_never_enters_node_mode_is_refused_without_a_second_launch() {
    for stray in [
        "stray_main_that_starts_a_node",
        "stray_main_that_starts_a_place",
    ] {
        let err = create_place_node("localhost", NodeOptions::for_test_binary(stray)).unwrap_err();
        assert!(matches!(err, NetError::NotANodeProgram { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("places::init()") && text.contains("#[places::main]"),
            "{text}"
        );
        // The stray program ended, and started nothing.
        assert_eq!(running(stray), 0, "{stray} left processes behind");
    }
}
