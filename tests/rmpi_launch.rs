//! The seed's RMPI launch on real local nodes: `rmpi_build_default_config`, `rmpi_launch`,
//! `rmpi_init`, `rmpi_finish`. Ranks are places on node processes of their own, linked
//! directly; per-rank overrides apply; wrong configs, a rank that panics, one that ends without
//! finishing, and one whose node dies are errors naming the rank.

use std::time::Duration;

use places::place;
use places::rmpi::{
    op, rmpi_build_default_config, rmpi_finish, rmpi_init, rmpi_launch, rmpi_launch_all,
    Collectives, RmpiChannel, RmpiConfig, RmpiError, RmpiNodeConfig,
};
use places::NodeOptions;

places::node_test_entry!();

/// What each rank of `demo` reports.
type Seen = (usize, usize, u32, String, u64, Option<Vec<u64>>, u64);

/// Each rank: a ring message (`greeting` and its rank), an allreduce, a broadcast from the last
/// rank, a gather at 0.
fn program(comm: &places::Comm, base: u64, greeting: &str) -> Seen {
    let (id, cnt) = (comm.id(), comm.cnt());
    comm.send((id + 1) % cnt, format!("{greeting} {id}"))
        .unwrap();
    let ring: String = comm.recv((id + cnt - 1) % cnt).unwrap();
    let sum = comm.allreduce(op::sum, base + id as u64).unwrap();
    let last = cnt - 1;
    let from_last = comm
        .broadcast(last, (id == last).then_some(base * 100))
        .unwrap();
    let gathered = comm.gather(0, id as u64 * base).unwrap();
    comm.barrier();
    (id, cnt, std::process::id(), ring, sum, gathered, from_last)
}

/// A rank running `program`.
#[place]
pub fn demo(ch: RmpiChannel<u64, Seen>) {
    let (comm, base, tc) = rmpi_init(ch).expect("rank joins");
    let seen = program(&comm, base, "hello from");
    rmpi_finish(comm, tc, seen).unwrap();
}

/// The same types as `demo`, another greeting: for a per-rank override of the function.
#[place]
pub fn quiet(ch: RmpiChannel<u64, Seen>) {
    let (comm, base, tc) = rmpi_init(ch).expect("rank joins");
    let seen = program(&comm, base, "quiet");
    rmpi_finish(comm, tc, seen).unwrap();
}

/// Rank 1 panics after joining; the others wait at a barrier.
#[place]
pub fn one_panics(ch: RmpiChannel<(), ()>) {
    let (comm, (), tc) = rmpi_init(ch).expect("rank joins");
    if comm.id() == 1 {
        panic!("rank one cannot go on");
    }
    let _ = comm.try_barrier();
    rmpi_finish(comm, tc, ()).unwrap();
}

/// Rank 1 returns without `rmpi_finish`.
#[place]
pub fn one_forgets(ch: RmpiChannel<(), ()>) {
    let (comm, (), tc) = rmpi_init(ch).expect("rank joins");
    if comm.id() == 1 {
        return;
    }
    let _ = comm.try_barrier();
    rmpi_finish(comm, tc, ()).unwrap();
}

/// Rank 1 kills its own node (the process) in the middle of the program.
#[place]
pub fn node_dies(ch: RmpiChannel<(), ()>) {
    let (comm, (), tc) = rmpi_init(ch).expect("rank joins");
    if comm.id() == 1 {
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        std::thread::sleep(Duration::from_secs(60));
    }
    let _ = comm.try_barrier();
    rmpi_finish(comm, tc, ()).unwrap();
}

/// Rank 1 fails at once; the others would sleep for ten minutes.
#[place]
pub fn one_fails_others_sleep(ch: RmpiChannel<(), ()>) {
    let (comm, (), tc) = rmpi_init(ch).expect("rank joins");
    if comm.id() == 1 {
        panic!("rank one fails at once");
    }
    std::thread::sleep(Duration::from_secs(600));
    rmpi_finish(comm, tc, ()).unwrap();
}

/// Never calls `rmpi_init`: sleeps for ten minutes.
#[place]
pub fn never_inits(ch: RmpiChannel<(), ()>) {
    std::thread::sleep(Duration::from_secs(600));
    drop(ch);
}

/// Runs `rmpi_launch` on a thread and waits at most `limit` for it.
fn launch_within(
    limit: Duration,
    default: RmpiConfig<()>,
    configs: Vec<RmpiNodeConfig<()>>,
) -> Result<(), RmpiError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(rmpi_launch::<(), ()>(&default, &configs));
    });
    rx.recv_timeout(limit)
        .expect("rmpi_launch returned, though ranks were still sleeping")
}

#[test]
fn a_failed_rank_ends_the_launch_without_waiting_for_the_others() {
    let e = launch_within(
        Duration::from_secs(120),
        defaults("one_fails_others_sleep", ()),
        local(3, "s"),
    )
    .unwrap_err();
    assert!(
        matches!(&e, RmpiError::Rank { rank: 1, reason, .. } if reason.contains("fails at once")),
        "{e}"
    );
}

#[test]
fn a_rank_that_never_joins_fails_the_launch_after_the_formation_time() {
    let mut configs = local(3, "n");
    configs[1] = configs[1].clone().func("never_inits");
    let e = launch_within(
        Duration::from_secs(240),
        defaults("one_forgets", ()),
        configs,
    )
    .unwrap_err();
    assert!(matches!(&e, RmpiError::Rank { rank: 1, .. }), "{e}");
}

#[test]
fn configs_sharing_a_node_must_name_one_executable() {
    let configs = vec![
        RmpiNodeConfig::<u64>::new("localhost", 7, "a", 0),
        RmpiNodeConfig::new("localhost", 7, "b", 1).executable("/bin/true"),
    ];
    let e = rmpi_launch::<u64, Seen>(&defaults("demo", 1), &configs).unwrap_err();
    assert!(
        matches!(&e, RmpiError::Config(m) if m.contains("different executables")),
        "{e}"
    );
}

fn opts() -> NodeOptions {
    NodeOptions::for_this_test_binary().heartbeat(Duration::from_millis(500))
}

fn defaults<A>(func: &str, args: A) -> RmpiConfig<A> {
    rmpi_build_default_config(module_path!(), func, args).node_options(opts())
}

fn local<A>(n: usize, prefix: &str) -> Vec<RmpiNodeConfig<A>> {
    (0..n)
        .map(|r| RmpiNodeConfig::new("localhost", 0, format!("{prefix}_{r}"), r))
        .collect()
}

fn check_demo(seen: &[Seen], bases: &[u64]) {
    let cnt = seen.len();
    let sum: u64 = bases.iter().zip(0..).map(|(b, id)| b + id).sum();
    for (id, s) in seen.iter().enumerate() {
        assert_eq!((s.0, s.1), (id, cnt));
        assert_eq!(s.4, sum, "allreduce at rank {id}");
        assert_eq!(
            s.6,
            bases[cnt - 1] * 100,
            "broadcast from the last rank at {id}"
        );
        assert_eq!(s.5.is_some(), id == 0, "only rank 0 gathers");
        assert!(
            s.3.ends_with(&format!(" {}", (id + cnt - 1) % cnt)),
            "{}",
            s.3
        );
    }
    let gathered: Vec<u64> = bases.iter().zip(0..).map(|(b, id)| id * b).collect();
    assert_eq!(seen[0].5.as_deref(), Some(&gathered[..]));
}

#[test]
fn four_ranks_on_four_nodes_run_the_program_and_rank_0_returns() {
    let all: Vec<Seen> = rmpi_launch_all(&defaults("demo", 7u64), &local(4, "demo")).unwrap();
    check_demo(&all, &[7; 4]);
    // Four node processes, none of them this one.
    let mut pids: Vec<u32> = all.iter().map(|s| s.2).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 4);
    assert!(!pids.contains(&std::process::id()));
    // `rmpi_launch` returns rank 0's value.
    let first: Seen = rmpi_launch(&defaults("demo", 7u64), &local(3, "again")).unwrap();
    assert_eq!((first.0, first.1), (0, 3));
    assert_eq!(first.5.as_deref(), Some(&[0u64, 7, 14][..]));
}

#[test]
fn every_group_size_from_one_to_five_launches() {
    for n in 1..=5 {
        let all: Vec<Seen> = rmpi_launch_all(&defaults("demo", 3u64), &local(n, "size")).unwrap();
        check_demo(&all, &vec![3; n]);
    }
}

#[test]
fn a_rank_may_override_its_arguments_and_its_function() {
    let mut configs = local::<u64>(3, "over");
    // Listed out of rank order, one with other arguments, one with another function.
    configs.swap(0, 2);
    configs[1] = configs[1].clone().args(50);
    configs[0] = configs[0].clone().func("quiet");
    let all: Vec<Seen> = rmpi_launch_all(&defaults("demo", 1u64), &configs).unwrap();
    check_demo(&all, &[1, 50, 1]);
    // Rank 2 ran `quiet`: rank 0 got its ring message.
    assert_eq!(all[0].3, "quiet 2");
    assert_eq!(all[1].3, "hello from 0");
}

#[test]
fn configs_with_one_host_and_port_share_a_node() {
    // A free port, found by binding; should another program take it before the node does,
    // the launch fails to start the node and a fresh port is tried.
    for attempt in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let configs: Vec<RmpiNodeConfig<u64>> = vec![
            RmpiNodeConfig::new("localhost", port, "shared_0", 0),
            RmpiNodeConfig::new("localhost", port, "shared_1", 1),
            RmpiNodeConfig::new("localhost", 0, "own_2", 2),
        ];
        match rmpi_launch_all::<u64, Seen>(&defaults("demo", 2u64), &configs) {
            Ok(all) => {
                check_demo(&all, &[2; 3]);
                assert_eq!(all[0].2, all[1].2, "ranks 0 and 1 share a node process");
                assert_ne!(all[0].2, all[2].2);
                return;
            }
            Err(RmpiError::Node { .. }) if attempt < 2 => {}
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn ranks_missing_or_twice_are_refused_before_anything_starts() {
    let twice = vec![
        RmpiNodeConfig::<u64>::new("localhost", 0, "a", 0),
        RmpiNodeConfig::new("localhost", 0, "b", 0),
    ];
    let e = rmpi_launch::<u64, Seen>(&defaults("demo", 1), &twice).unwrap_err();
    assert!(
        matches!(&e, RmpiError::Config(m) if m.contains("both have rank 0")),
        "{e}"
    );
    let gap = vec![
        RmpiNodeConfig::<u64>::new("localhost", 0, "a", 0),
        RmpiNodeConfig::new("localhost", 0, "b", 2),
    ];
    let e = rmpi_launch::<u64, Seen>(&defaults("demo", 1), &gap).unwrap_err();
    assert!(
        matches!(&e, RmpiError::Config(m) if m.contains("rank 2")),
        "{e}"
    );
    let e = rmpi_launch::<u64, Seen>(&defaults("demo", 1), &[]).unwrap_err();
    assert!(matches!(e, RmpiError::Config(_)), "{e}");
}

#[test]
fn an_unknown_function_is_an_error_naming_it() {
    let e = rmpi_launch::<u64, Seen>(&defaults("no_such_rank", 1), &local(2, "x")).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, RmpiError::Rank { rank: 0, .. }) && text.contains("no_such_rank"),
        "{text}"
    );
}

#[test]
fn a_rank_that_panics_fails_the_launch_with_its_message() {
    let e = rmpi_launch::<(), ()>(&defaults("one_panics", ()), &local(3, "p")).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(&e, RmpiError::Rank { rank: 1, reason, .. } if reason.contains("rank one cannot go on")),
        "{text}"
    );
}

#[test]
fn a_rank_that_ends_without_finishing_fails_the_launch() {
    let e = rmpi_launch::<(), ()>(&defaults("one_forgets", ()), &local(3, "f")).unwrap_err();
    assert!(matches!(&e, RmpiError::Rank { rank: 1, .. }), "{e}");
}

#[test]
fn a_rank_whose_node_dies_fails_the_launch_naming_it() {
    let e = rmpi_launch::<(), ()>(&defaults("node_dies", ()), &local(3, "d")).unwrap_err();
    let text = e.to_string();
    // The launcher sees rank 1's node lost, or another rank's report that member 1 is gone
    // comes first: either way the error says rank 1.
    match &e {
        RmpiError::Rank { rank: 1, .. } => {}
        RmpiError::Rank { reason, .. } => assert!(reason.contains("member 1"), "{text}"),
        other => panic!("unexpected {other}"),
    }
}
