//! Restart policies on real nodes: a crashing place is restarted by `restart_every(..).retry(n)`
//! exactly n times and `on_final_fail` runs once; a place that stays up for twice the period
//! starts a fresh count; a killed named place is reachable again under its name.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use places::prelude::*;
use places::{
    connect_to_named_place, create_place_node, define_named_remote_server, restart_every,
    supervise_place_at, NodeOptions, PlaceOptions, RemoteNode, RemotePlace, Routed,
};

places::node_test_entry!();

fn node() -> RemoteNode {
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
}

/// Fails at once, every time.
#[place]
pub fn crashes(_ch: PlaceChannel<()>) -> i32 {
    places::exit(1)
}

/// Fails after 300 ms up.
#[place]
pub fn crashes_later(_ch: PlaceChannel<()>) -> i32 {
    std::thread::sleep(Duration::from_millis(300));
    places::exit(1)
}

define_named_remote_server! {
    pub counter {
        state n: u64 = 0;
        rpc fn bump() -> u64 {
            n += 1;
            n
        }
    }
}

/// `policy`, counting its restarts and its final failures.
fn counted(policy: places::RestartEvery) -> (places::RestartEvery, Arc<AtomicU32>, Arc<AtomicU32>) {
    let restarts = Arc::new(AtomicU32::new(0));
    let final_fails = Arc::new(AtomicU32::new(0));
    let (r, f) = (restarts.clone(), final_fails.clone());
    let policy = policy
        .on_restart(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .on_final_fail(move || {
            f.fetch_add(1, Ordering::SeqCst);
        });
    (policy, restarts, final_fails)
}

/// Polls `cond` every 20 ms for up to 20 s.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Connects to the named `counter` place on `n` until a connection answers (the place may be
/// restarting), and returns that first bump's count; `None` if it never came back.
fn first_bump_once_back(n: &RemoteNode) -> Option<u64> {
    let mut answer = None;
    eventually(|| {
        if let Ok(c) = connect_to_named_place::<CounterRequest, CounterResponse>(n, "counter") {
            answer = counter_bump(&c).ok();
        }
        answer.is_some()
    });
    answer
}

#[test]
fn the_retry_limit_holds_and_final_fail_runs_once() {
    let n = node();
    let (policy, restarts, final_fails) = counted(restart_every(0.05).retry(3));
    let first: RemotePlace<()> = supervise_place_at(
        &n,
        module_path!(),
        "crashes",
        PlaceOptions::new().restart_on_exit(policy),
    )
    .unwrap();
    assert_eq!(first.wait_timeout(Duration::from_secs(20)), Some(1));
    assert!(
        eventually(|| final_fails.load(Ordering::SeqCst) == 1),
        "on_final_fail never ran"
    );
    // Give a runaway supervisor the chance to show itself: the counts must stay put.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(restarts.load(Ordering::SeqCst), 3);
    assert_eq!(final_fails.load(Ordering::SeqCst), 1);
}

#[test]
fn a_healthy_period_resets_the_count() {
    let n = node();
    // Up for 300 ms each time, more than twice the 100 ms period: every failure counts as the
    // first, so one allowed retry never runs out.
    let (policy, restarts, final_fails) = counted(restart_every(0.1).retry(1));
    let _first: RemotePlace<()> = supervise_place_at(
        &n,
        module_path!(),
        "crashes_later",
        PlaceOptions::new().restart_on_exit(policy),
    )
    .unwrap();
    assert!(
        eventually(|| restarts.load(Ordering::SeqCst) >= 3),
        "restarts stopped early"
    );
    assert_eq!(final_fails.load(Ordering::SeqCst), 0);
}

#[test]
fn a_killed_named_place_comes_back_under_its_name() {
    let n = node();
    let first: RemotePlace<Routed<CounterRequest, CounterResponse>, CounterResponse> =
        supervise_place_at(
            &n,
            module_path!(),
            "make_counter",
            PlaceOptions::new().named("counter").restart_on_exit(true),
        )
        .unwrap();
    let c = connect_to_named_place::<CounterRequest, CounterResponse>(&n, "counter").unwrap();
    assert_eq!(counter_bump(&c).unwrap(), 1);
    assert_eq!(counter_bump(&c).unwrap(), 2);
    first.kill();
    assert_eq!(first.wait_timeout(Duration::from_secs(20)), Some(1));
    // A new instance (with fresh state) answers under the same name.
    assert_eq!(
        first_bump_once_back(&n),
        Some(1),
        "the named place did not come back"
    );
}

#[test]
fn a_supervised_process_reports_its_exit() {
    let p = places::supervise_process_at("localhost", &["sh", "-c", "exit 3"], &NodeOptions::new())
        .unwrap();
    assert!(p.pid() > 0);
    assert_eq!(p.wait_timeout(Duration::from_secs(20)), Some(3));
    assert_eq!(p.wait(), 3);
    let err =
        places::supervise_process_at("localhost", &["/nonexistent/program"], &NodeOptions::new())
            .unwrap_err();
    assert!(matches!(err, places::NetError::Launch { .. }), "{err:?}");
    assert!(places::supervise_process_at("localhost", &[], &NodeOptions::new()).is_err());
}

#[test]
fn supervise_thread_at_starts_a_place_on_the_node() {
    let n = node();
    let p: RemotePlace<()> =
        places::supervise_thread_at(&n, module_path!(), "crashes", PlaceOptions::new()).unwrap();
    assert_eq!(p.wait_timeout(Duration::from_secs(20)), Some(1));
}

#[test]
fn a_killed_node_is_restarted_with_its_supervised_places() {
    let n = create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary().restart_on_exit(restart_every(0.1).retry(3)),
    )
    .unwrap();
    let _server: RemotePlace<Routed<CounterRequest, CounterResponse>, CounterResponse> =
        supervise_place_at(
            &n,
            module_path!(),
            "make_counter",
            PlaceOptions::new().named("counter").restart_on_exit(true),
        )
        .unwrap();
    let c = connect_to_named_place::<CounterRequest, CounterResponse>(&n, "counter").unwrap();
    assert_eq!(counter_bump(&c).unwrap(), 1);
    let (old_pid, old_addr) = (n.pid().unwrap(), n.addr());
    let killed = std::process::Command::new("kill")
        .args(["-9", &old_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The old connection fails; the node comes back as a new process on a new port.
    assert!(counter_bump(&c).is_err());
    assert!(
        eventually(|| n.restarts() >= 1),
        "the node was not restarted"
    );
    assert_ne!(n.pid(), Some(old_pid));
    assert_ne!(n.addr(), old_addr);
    // Its supervised named place is started again there.
    assert_eq!(
        first_bump_once_back(&n),
        Some(1),
        "the named place did not come back on the restarted node"
    );
}
