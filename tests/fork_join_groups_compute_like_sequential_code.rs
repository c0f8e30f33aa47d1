//! `fork_join!`, `cg_for!`, `cg_pipeline!` and barriers, each checked against a sequential
//! computation of the same thing.

use std::sync::mpsc;
use std::time::Duration;

use places::prelude::*;

/// Runs `f` on another thread and fails the test if it has not finished within 60 s, so a
/// deadlocked group fails instead of hanging.
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the group finished within a minute (no deadlock)")
}

#[test]
fn results_come_back_in_rank_order() {
    let ids = fork_join!(5, cg, [] -> (usize, usize), { (cg.id(), cg.cnt()) }).unwrap();
    assert_eq!(ids, [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5)]);
}

#[test]
fn each_member_gets_its_own_copy_of_the_parameters() {
    let words = vec!["a".to_string(), "b".to_string()];
    let k = 10u32;
    let out = fork_join!(3, cg, [mut words: Vec<String> = words.clone(), k: u32, offset: u32 = k * 2] -> (usize, u32), {
        words.push(format!("member {}", cg.id()));
        (words.len(), k + offset)
    })
    .unwrap();
    assert_eq!(out, [(3, 30), (3, 30), (3, 30)]);
    assert_eq!(words.len(), 2, "the creator's value is untouched");
}

#[test]
fn cg_for_cuts_900_iterations_as_the_dissertation_says() {
    let blocks = fork_join!(3, cg, [] -> (u32, u32), {
        let mut seen = Vec::new();
        cg_for!(cg, i in 0..900u32, { seen.push(i); });
        (seen[0], seen[seen.len() - 1])
    })
    .unwrap();
    assert_eq!(blocks, [(0, 299), (300, 599), (600, 899)]);
}

#[test]
fn cg_for_covers_uneven_short_and_empty_ranges_exactly_once() {
    for (np, n) in [(3usize, 10i64), (3, 2), (4, 0), (2, 1), (5, 23), (1, 7)] {
        let parts = fork_join!(np, cg, [n: i64] -> Vec<i64>, {
            let mut mine = Vec::new();
            cg_for!(cg, i in -3..n, { mine.push(i); });
            mine
        })
        .unwrap();
        let lens: Vec<usize> = parts.iter().map(Vec::len).collect();
        let flat: Vec<i64> = parts.into_iter().flatten().collect();
        assert_eq!(flat, (-3..n).collect::<Vec<_>>(), "np={np} n={n}");
        let (max, min) = (lens.iter().max().unwrap(), lens.iter().min().unwrap());
        assert!(
            max - min <= 1,
            "balanced blocks for np={np} n={n}: {lens:?}"
        );
    }
}

#[test]
fn a_cg_for_sum_equals_the_sequential_sum() {
    let n = 100_000u64;
    let parts = fork_join!(processor_count(), cg, [n: u64] -> u64, {
        let mut s = 0u64;
        cg_for!(cg, i in 1..=n, { s += i * i % 7; });
        s
    })
    .unwrap();
    assert_eq!(
        parts.iter().sum::<u64>(),
        (1..=n).map(|i| i * i % 7).sum::<u64>()
    );
}

/// The recurrence of section 3.4.2.2, computed one row at a time.
fn sequential_pipeline(v: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; 25];
    for row in 0..5 {
        let mut prev = 0.0;
        for col in 0..5 {
            let x = v[row * 5 + col] + prev;
            prev = x * x;
            out[row * 5 + col] = prev;
        }
    }
    out
}

#[test]
fn cg_pipeline_matches_the_sequential_recurrence() {
    let v: Vec<f64> = (0..25)
        .map(|i| (i % 5) as f64 + (i / 5) as f64 / 10.0)
        .collect();
    let columns = fork_join!(5, cg, [v: Vec<f64> = v.clone()] -> Vec<f64>, {
        let mut column = Vec::new();
        for i in 0..5 {
            let value = cg_pipeline!(cg, prev, 0.0, {
                let x = v[i * 5 + cg.id()] + prev;
                x * x
            });
            column.push(value);
        }
        column
    })
    .unwrap();
    let expected = sequential_pipeline(&v);
    for (col, values) in columns.iter().enumerate() {
        for (row, value) in values.iter().enumerate() {
            assert_eq!(*value, expected[row * 5 + col], "row {row} col {col}");
        }
    }
}

#[test]
fn a_barrier_separates_phases() {
    let slots = SharedI64s::zeroed(4);
    let seen = fork_join!(4, cg, [slots: SharedI64s] -> Vec<i64>, {
        let mut seen = Vec::new();
        for phase in 1..=10 {
            slots.set(cg.id(), phase);
            cg.barrier();
            // After the barrier every member has written this phase's value.
            seen.extend((0..cg.cnt()).map(|m| slots.get(m)));
            cg.barrier();
        }
        seen
    })
    .unwrap();
    for member in seen {
        let expected: Vec<i64> = (1..=10).flat_map(|p| [p; 4]).collect();
        assert_eq!(member, expected);
    }
}

#[test]
fn members_talk_point_to_point() {
    let ring = fork_join!(4, cg, [] -> u32, {
        let next = (cg.id() + 1) % cg.cnt();
        let prev = (cg.id() + cg.cnt() - 1) % cg.cnt();
        cg.send(next, cg.id() as u32).unwrap();
        cg.recv::<u32>(prev).unwrap()
    })
    .unwrap();
    assert_eq!(ring, [3, 0, 1, 2]);
}

#[test]
fn a_panicking_member_fails_the_group_and_releases_the_others() {
    let result = within_a_minute(|| {
        fork_join!(4, cg, [] -> usize, {
            if cg.id() == 2 {
                panic!("member two gives up");
            }
            // Everyone else waits at a barrier member 2 never reaches.
            cg.barrier();
            cg.id()
        })
    });
    let err = result.unwrap_err();
    let ForkJoinError::Panicked {
        rank,
        message,
        also_failed,
    } = &err
    else {
        panic!("expected Panicked, got {err:?}");
    };
    assert_eq!(*rank, 2, "{err}");
    assert_eq!(message, "member two gives up");
    assert!(!also_failed.contains(&2));
}

#[test]
fn a_panic_mid_pipeline_releases_the_later_stages() {
    let result = within_a_minute(|| {
        fork_join!(4, cg, [] -> u32, {
            let mut last = 0;
            for row in 0..100u32 {
                last = cg_pipeline!(cg, prev, row, {
                    if cg.id() == 1 && row == 50 {
                        panic!("stage one breaks at row 50");
                    }
                    prev + 1
                });
            }
            last
        })
    });
    match result {
        Err(ForkJoinError::Panicked { rank: 1, .. }) => {}
        other => panic!("expected member 1 to be reported, got {other:?}"),
    }
}

#[test]
fn a_group_of_zero_is_an_error() {
    let r = fork_join!(0, cg, [] -> (), {});
    assert!(matches!(r, Err(ForkJoinError::Empty)));
}

/// A plain function as the body: the function-first form of the macro.
fn count_mine(cg: &Comm, (n,): (usize,)) -> usize {
    cg.partition(0..n).count()
}

#[test]
fn the_function_form_takes_a_plain_fn() {
    let counts = places::fork_join(4, (10usize,), count_mine).unwrap();
    assert_eq!(counts, [3, 3, 2, 2]);
}

#[test]
fn a_member_that_exits_is_reported_as_such() {
    let result = within_a_minute(|| {
        fork_join!(2, cg, [] -> u8, {
            if cg.id() == 1 {
                places::exit(3);
            }
            0
        })
    });
    match result {
        Err(ForkJoinError::Panicked {
            rank: 1, message, ..
        }) => {
            assert!(message.contains("places::exit(3)"), "{message}");
        }
        other => panic!("expected member 1's exit, got {other:?}"),
    }
}
