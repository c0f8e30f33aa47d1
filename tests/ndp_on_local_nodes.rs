//! Nested data parallelism on real local nodes (dissertation 4.3.4): the parallel quicksort
//! on groups of 2 to 5 members (the dissertation's list, then generated numbers checked
//! against `sort_unstable`), work spread over the workers' processes, a wrong address
//! refused before anything is sent, and failures: a worker process that aborts during a run
//! (at the top, or doing another worker's part) and a procedure that panics fail the run with
//! an error that says so, and the group goes on.

use std::sync::mpsc;
use std::time::Duration;

use places::rmpi::map_reduce::MapReduceConfig;
use places::rmpi::ndp::{
    make_ndp_group, ndp_get_node, ndp_get_result, ndp_return_node, ndp_send_work, NdpError,
};
use places::{NodeOptions, ProcAddr};

places::node_test_entry!();

/// The dissertation's `ndp-parallel-qsort`: the greater part goes to a free worker if there
/// is one, else it is sorted here.
#[places::procedure]
fn qsort(v: Vec<i64>) -> Vec<i64> {
    if v.len() < 2 {
        return v;
    }
    let pivot = v[v.len() / 2];
    let lt: Vec<i64> = v.iter().copied().filter(|&x| x < pivot).collect();
    let eq: Vec<i64> = v.iter().copied().filter(|&x| x == pivot).collect();
    let gt: Vec<i64> = v.iter().copied().filter(|&x| x > pivot).collect();
    // The greater part goes to a free worker (sent away) or stays here.
    let free = if gt.len() > 1000 {
        ndp_get_node()
    } else {
        None
    };
    let (remote, here) = match free {
        Some(n) => (
            Some((
                ndp_send_work(&n, &places::proc_addr!(qsort), gt).unwrap(),
                n,
            )),
            None,
        ),
        None => (None, Some(gt)),
    };
    let mut out = qsort(lt);
    out.extend(eq);
    match (remote, here) {
        (Some((work, node)), _) => {
            out.extend(ndp_get_result(work).unwrap());
            ndp_return_node(node);
        }
        (None, Some(gt)) if gt.len() > 1000 => out.extend(qsort(gt)),
        (None, Some(mut gt)) => {
            gt.sort_unstable();
            out.extend(gt);
        }
        (None, None) => unreachable!("the part is here when it was not sent"),
    }
    out
}

/// The pids of the processes that took part: this one, and, `depth` times over, one more
/// worker's if a worker is free.
#[places::procedure]
fn spread(depth: u32) -> Vec<u32> {
    let mut pids = vec![std::process::id()];
    if depth > 0 {
        if let Some(node) = ndp_get_node() {
            let work = ndp_send_work(&node, &places::proc_addr!(spread), depth - 1).unwrap();
            pids.extend(ndp_get_result(work).unwrap());
            ndp_return_node(node);
        }
    }
    pids
}

fn config(n: usize) -> MapReduceConfig {
    MapReduceConfig::local(n).node_options(NodeOptions::for_this_test_binary())
}

fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("finished within two minutes")
}

#[test]
fn the_parallel_quicksort_sorts_on_groups_of_two_to_five() {
    for n in [2, 3, 5] {
        let (small, big, want) = bounded(move || {
            let group = make_ndp_group(&config(n)).unwrap();
            let small = group
                .run(&places::proc_addr!(qsort), vec![9128, 3, 7, 46, 5, 10])
                .unwrap();
            let mut state = 7u64;
            let input: Vec<i64> = (0..200_000)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (state >> 20) as i64 % 1_000_000
                })
                .collect();
            let mut want = input.clone();
            want.sort_unstable();
            let big = group.run(&places::proc_addr!(qsort), input).unwrap();
            (small, big, want)
        });
        assert_eq!(small, [3, 5, 7, 10, 46, 9128], "{n} members");
        assert_eq!(big, want, "{n} members");
    }
}

#[test]
fn work_spreads_over_the_workers_processes_and_nodes_come_back() {
    let pids = bounded(|| {
        let group = make_ndp_group(&config(4)).unwrap();
        let first = group.run(&places::proc_addr!(spread), 5).unwrap();
        // The nodes were returned: a second run gets as many.
        let second = group.run(&places::proc_addr!(spread), 5).unwrap();
        (first, second)
    });
    for run in [&pids.0, &pids.1] {
        // Three workers: the first and two more, each a process of its own.
        assert_eq!(run.len(), 3, "{run:?}");
        let distinct: std::collections::HashSet<_> = run.iter().collect();
        assert_eq!(distinct.len(), 3, "{run:?}");
        assert!(!run.contains(&std::process::id()), "{run:?}");
    }
}

#[test]
fn a_wrong_address_is_refused_before_anything_is_sent() {
    let e = bounded(|| {
        let group = make_ndp_group(&config(2)).unwrap();
        let wrong: ProcAddr<Vec<i64>, Vec<i64>> = ProcAddr::new(module_path!(), "qsrot");
        let e = group.run(&wrong, vec![1]).unwrap_err();
        // The group still works.
        assert_eq!(
            group.run(&places::proc_addr!(qsort), vec![2, 1]).unwrap(),
            [1, 2]
        );
        e
    });
    assert!(matches!(e, NdpError::Procedure(_)), "{e}");
    assert!(e.to_string().contains("qsrot"), "{e}");
    let e = make_ndp_group(&config(1)).unwrap_err().to_string();
    assert!(e.contains("at least one worker"), "{e}");
}

/// Ends its worker's process: at once (`0`), or after handing `depth - 1` to another worker.
#[places::procedure]
fn die(depth: u32) -> u32 {
    if depth == 0 {
        std::process::abort();
    }
    let node = ndp_get_node().expect("a free worker");
    let work = ndp_send_work(&node, &places::proc_addr!(die), depth - 1).unwrap();
    let got = ndp_get_result(work).expect("the other worker dies: this panics");
    ndp_return_node(node);
    got
}

#[places::procedure]
fn fail(_: u32) -> u32 {
    panic!("fail was asked to fail")
}

#[test]
fn a_worker_that_dies_during_a_run_fails_it_naming_the_worker_and_never_hangs() {
    let e = bounded(|| {
        let group = make_ndp_group(&config(2)).unwrap();
        group.run(&places::proc_addr!(die), 0).unwrap_err()
    });
    assert!(matches!(e, NdpError::Work(_)), "{e}");
    assert!(e.to_string().contains("worker 1"), "{e}");
}

#[test]
fn a_worker_that_dies_doing_nested_work_fails_the_run_with_the_reason() {
    let e = bounded(|| {
        let group = make_ndp_group(&config(3)).unwrap();
        group.run(&places::proc_addr!(die), 1).unwrap_err()
    });
    assert!(matches!(e, NdpError::Work(_)), "{e}");
    assert!(e.to_string().contains("panicked"), "{e}");
}

#[test]
fn a_procedure_that_panics_fails_the_run_and_the_group_goes_on() {
    let (e, after) = bounded(|| {
        let group = make_ndp_group(&config(2)).unwrap();
        let e = group.run(&places::proc_addr!(fail), 0).unwrap_err();
        let after = group
            .run(&places::proc_addr!(qsort), vec![3, 1, 2])
            .unwrap();
        (e, after)
    });
    assert!(e.to_string().contains("fail was asked to fail"), "{e}");
    assert_eq!(after, [1, 2, 3]);
}

#[places::procedure]
fn pid(_: u32) -> u32 {
    std::process::id()
}

#[places::procedure]
fn plus_one(x: u32) -> u32 {
    x + 1
}

#[places::procedure]
fn double(x: u32) -> u32 {
    2 * x
}

#[places::procedure]
fn shout(s: String) -> String {
    s.to_uppercase()
}

#[places::procedure]
fn grow(n: u32) -> Vec<u8> {
    vec![7u8; n as usize]
}

/// Lends a worker some work, then panics without collecting it or giving the worker back.
#[places::procedure]
fn leak(_: u32) -> u32 {
    let node = ndp_get_node().expect("a free worker");
    let _work = ndp_send_work(&node, &places::proc_addr!(pid), 0).unwrap();
    panic!("leak fails with worker {} on loan", node.rank());
}

#[places::procedure]
fn slow_pid(ms: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(ms.into()));
    std::process::id()
}

/// Lends a worker slow work, then its own process ends.
#[places::procedure]
fn lend_then_die(_: u32) -> u32 {
    let node = ndp_get_node().expect("a free worker");
    let _work = ndp_send_work(&node, &places::proc_addr!(slow_pid), 300).unwrap();
    std::process::abort();
}

/// Runs `f` until it says yes, for at most 30 s (the group frees workers as they report in).
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn small_messages(n: usize) -> MapReduceConfig {
    MapReduceConfig::local(n).node_options(NodeOptions::for_this_test_binary().max_message(1 << 20))
}

#[test]
fn runs_from_two_threads_take_turns_and_each_gets_its_own_answer() {
    let wrong = bounded(|| {
        let group = std::sync::Arc::new(make_ndp_group(&config(3)).unwrap());
        let other = group.clone();
        let a = std::thread::spawn(move || {
            (1..40u32)
                .filter_map(|i| match other.run(&places::proc_addr!(plus_one), i) {
                    Ok(v) if v == i + 1 => None,
                    got => Some(format!("plus_one({i}): {got:?}")),
                })
                .collect::<Vec<_>>()
        });
        let mut wrong: Vec<String> = (1000..1040u32)
            .filter_map(|i| match group.run(&places::proc_addr!(double), i) {
                Ok(v) if v == 2 * i => None,
                got => Some(format!("double({i}): {got:?}")),
            })
            .collect();
        wrong.extend(a.join().unwrap());
        wrong
    });
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn a_worker_that_dies_idle_costs_at_most_one_run_and_the_others_go_on() {
    let (alive, outcomes) = bounded(|| {
        let group = make_ndp_group(&config(3)).unwrap();
        let first = group.run(&places::proc_addr!(pid), 0).unwrap();
        let second = group.run(&places::proc_addr!(pid), 0).unwrap();
        assert_ne!(first, second, "two workers, taken in turn");
        // SAFETY: a plain kill(2) of a worker's process, a child of this one.
        assert_eq!(unsafe { libc::kill(second as i32, libc::SIGKILL) }, 0);
        let outcomes: Vec<Result<u32, String>> = (0..8)
            .map(|_| {
                group
                    .run(&places::proc_addr!(pid), 0)
                    .map_err(|e| e.to_string())
            })
            .collect();
        (first, outcomes)
    });
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    assert!(failed <= 1, "{outcomes:?}");
    assert!(
        outcomes[outcomes.len() - 3..]
            .iter()
            .all(|o| o.as_ref() == Ok(&alive)),
        "{outcomes:?}"
    );
}

#[test]
fn a_worker_lent_by_a_procedure_that_panics_comes_back() {
    let (e, back) = bounded(|| {
        let group = make_ndp_group(&config(3)).unwrap();
        assert_eq!(group.run(&places::proc_addr!(spread), 5).unwrap().len(), 2);
        let e = group.run(&places::proc_addr!(leak), 0).unwrap_err();
        let back = eventually(|| {
            group
                .run(&places::proc_addr!(spread), 5)
                .is_ok_and(|pids| pids.len() == 2)
        });
        (e, back)
    });
    assert!(e.to_string().contains("leak fails with worker"), "{e}");
    assert!(back, "the lent worker never came back");
}

#[test]
fn the_helper_of_a_worker_that_died_comes_back() {
    let (e, after) = bounded(|| {
        let group = make_ndp_group(&config(3)).unwrap();
        let e = group
            .run(&places::proc_addr!(lend_then_die), 0)
            .unwrap_err();
        // The helper finishes its work for the dead worker, then is free again.
        assert!(eventually(|| group
            .run(&places::proc_addr!(pid), 0)
            .is_ok()));
        let after: Vec<_> = (0..3)
            .map(|_| {
                group
                    .run(&places::proc_addr!(pid), 0)
                    .map_err(|e| e.to_string())
            })
            .collect();
        (e, after)
    });
    assert!(matches!(e, NdpError::Work(_)), "{e}");
    assert!(after.iter().all(Result::is_ok), "{after:?}");
}

#[test]
fn a_result_too_large_to_send_fails_its_run_and_the_worker_goes_on() {
    let (e, after) = bounded(|| {
        let group = make_ndp_group(&small_messages(2)).unwrap();
        let e = group.run(&places::proc_addr!(grow), 2 << 20).unwrap_err();
        let after: Vec<_> = (0..3)
            .map(|_| group.run(&places::proc_addr!(grow), 10).map(|v| v.len()))
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
        (e, after)
    });
    assert!(e.to_string().contains("could not be sent"), "{e}");
    assert!(e.to_string().contains("exceeds the largest message"), "{e}");
    assert!(after.iter().all(|r| r == &Ok(10)), "{after:?}");
}

#[test]
fn an_input_too_large_is_refused_before_the_run_and_the_group_goes_on() {
    let (e, after) = bounded(|| {
        let group = make_ndp_group(&small_messages(2)).unwrap();
        let e = group
            .run(&places::proc_addr!(shout), "x".repeat(2 << 20))
            .unwrap_err();
        let after = group.run(&places::proc_addr!(shout), "x".into());
        (e, after.map_err(|e| e.to_string()))
    });
    assert!(e.to_string().contains("over the 1048576"), "{e}");
    assert_eq!(after, Ok("X".to_string()));
}

/// Borrows a worker, then its own process ends before it sends the worker anything.
#[places::procedure]
fn borrow_then_die(_: u32) -> u32 {
    let _node = ndp_get_node().expect("a free worker");
    std::process::abort();
}

/// Sends two works on one loan: the second is refused.
#[places::procedure]
fn two_works_on_one_loan(_: u32) -> String {
    let node = ndp_get_node().expect("a free worker");
    let first = ndp_send_work(&node, &places::proc_addr!(plus_one), 1).unwrap();
    let second = ndp_send_work(&node, &places::proc_addr!(plus_one), 2);
    let got = ndp_get_result(first).unwrap();
    ndp_return_node(node);
    format!(
        "{got} {}",
        second
            .map(|_| "sent".to_owned())
            .unwrap_or_else(|e| e.to_string())
    )
}

#[test]
fn a_worker_lent_to_a_member_that_died_before_using_it_comes_back() {
    let (e, back) = bounded(|| {
        let group = make_ndp_group(&config(3)).unwrap();
        let e = group
            .run(&places::proc_addr!(borrow_then_die), 0)
            .unwrap_err();
        let back = eventually(|| group.run(&places::proc_addr!(pid), 0).is_ok());
        (e, back)
    });
    assert!(matches!(e, NdpError::Work(_)), "{e}");
    assert!(back, "the worker lent to the dead member never came back");
}

#[test]
fn a_loan_takes_one_work() {
    let out = bounded(|| {
        let group = make_ndp_group(&config(3)).unwrap();
        group
            .run(&places::proc_addr!(two_works_on_one_loan), 0)
            .unwrap()
    });
    assert!(out.starts_with("2 "), "{out}");
    assert!(out.contains("was sent work on this loan already"), "{out}");
}
