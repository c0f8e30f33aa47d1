//! The NAS kernels (IS and CG) of the `nas_is` and `nas_cg` examples, class S, sequentially, on
//! 1 to 3 local places, and on 1 to 3 RMPI ranks on local nodes (this test binary is the nodes'
//! executable): each run must pass NPB's official verification, and a run on input with one
//! changed key or one changed matrix value must fail it. (The examples' exit codes, and runs
//! under `mpiexec` and `srun`, are checked in `examples_print_their_seed_lines.rs`.)

use std::sync::mpsc;
use std::time::Duration;

#[path = "../examples/common/nas/mod.rs"]
mod nas;

use nas::{Class, Mode};

places::node_test_entry!();

const MODES: [Mode; 7] = [
    Mode::Seq,
    Mode::Places(1),
    Mode::Places(2),
    Mode::Places(3),
    Mode::Nodes(1),
    Mode::Nodes(2),
    Mode::Nodes(3),
];

/// Runs `f` on another thread and fails the test if it has not finished within two minutes.
/// The nodes mode's nodes are this test binary.
fn within_two_minutes<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    nas::use_node_options(places::NodeOptions::for_this_test_binary());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("the run finished within two minutes")
}

#[test]
fn is_class_s_verifies_in_every_mode() {
    let p = nas::is::Params::of(Class::S);
    let keys = nas::is::generate_keys(&p);
    for mode in MODES {
        let keys = keys.clone();
        let report = within_two_minutes(move || nas::is::run(&p, keys, mode).unwrap());
        assert!(report.verified, "{mode}:\n{report}");
        assert_eq!(report.exit_code(), 0);
        assert_eq!((report.size, report.iterations), (65536, 10));
    }
}

#[test]
fn is_with_one_changed_key_fails_verification_in_every_mode() {
    let p = nas::is::Params::of(Class::S);
    let mut keys = nas::is::generate_keys(&p);
    nas::is::corrupt(&p, &mut keys);
    for mode in MODES {
        let keys = keys.clone();
        let report = within_two_minutes(move || nas::is::run(&p, keys, mode).unwrap());
        assert!(!report.verified, "{mode}:\n{report}");
        assert_eq!(report.exit_code(), 1);
        assert!(
            report.to_string().contains("VERIFICATION FAILED"),
            "{report}"
        );
    }
}

#[test]
fn cg_class_s_verifies_in_every_mode_with_the_official_zeta() {
    let p = nas::cg::Params::of(Class::S);
    let matrix = nas::cg::make_matrix(&p);
    for mode in MODES {
        let matrix = matrix.clone();
        let report = within_two_minutes(move || nas::cg::run(&p, matrix, mode).unwrap());
        assert!(report.verified, "{mode}:\n{report}");
        let text = report.to_string();
        assert!(text.contains(" Zeta is     8.59717750786"), "{text}");
        // NPB prints one line per outer iteration.
        assert_eq!(
            text.lines()
                .filter(|l| l.trim_start().starts_with(char::is_numeric))
                .count(),
            15,
            "{text}"
        );
    }
}

#[test]
fn cg_with_one_changed_matrix_value_fails_verification_in_every_mode() {
    let p = nas::cg::Params::of(Class::S);
    let mut matrix = nas::cg::make_matrix(&p);
    matrix.corrupt();
    for mode in MODES {
        let matrix = matrix.clone();
        let report = within_two_minutes(move || nas::cg::run(&p, matrix, mode).unwrap());
        assert!(!report.verified, "{mode}:\n{report}");
        assert!(
            report.to_string().contains("The correct zeta is"),
            "{report}"
        );
    }
}

#[test]
fn the_matrix_is_symmetric_and_has_npb_shape() {
    // NPB's matrix is a sum of symmetric outer products: A == A^T, every diagonal element is
    // present, and no row holds a column twice.
    let m = nas::cg::make_matrix(&nas::cg::Params::of(Class::S));
    let (rowstr, colidx, a) = m.parts();
    let n = m.rows();
    assert_eq!(n, 1400);
    let at = |i: usize, j: usize| -> Option<f64> {
        let cols = &colidx[rowstr[i]..rowstr[i + 1]];
        cols.binary_search(&(j as u32))
            .ok()
            .map(|k| a[rowstr[i] + k])
    };
    for i in 0..n {
        let cols = &colidx[rowstr[i]..rowstr[i + 1]];
        assert!(
            cols.windows(2).all(|w| w[0] < w[1]),
            "row {i} is sorted, no duplicates"
        );
        assert!(at(i, i).is_some(), "diagonal {i}");
        for &j in cols {
            // Equal up to the order in which duplicates were summed.
            let (x, y) = (at(i, j as usize).unwrap(), at(j as usize, i).unwrap());
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                "a[{i}][{j}] = {x} but a[{j}][{i}] = {y}"
            );
        }
    }
}

/// NPB's own double-precision `randlc`, written from its definition, for comparison.
fn npb_randlc(x: &mut f64, a: f64) -> f64 {
    let (r23, t23) = (0.5f64.powi(23), 2f64.powi(23));
    let (r46, t46) = (r23 * r23, t23 * t23);
    let a1 = (r23 * a).trunc();
    let a2 = a - t23 * a1;
    let x1 = (r23 * *x).trunc();
    let x2 = *x - t23 * x1;
    let t1 = a1 * x2 + a2 * x1;
    let t2 = (r23 * t1).trunc();
    let z = t1 - t23 * t2;
    let t3 = t23 * z + a2 * x2;
    let t4 = (r46 * t3).trunc();
    *x = t3 - t46 * t4;
    r46 * *x
}

#[test]
fn randlc_matches_npb_double_precision_definition() {
    use nas::randlc::{Randlc, A, SEED};
    let mut ours = Randlc::new(SEED);
    let mut theirs = SEED as f64;
    for _ in 0..100_000 {
        assert_eq!(ours.next(), npb_randlc(&mut theirs, A as f64));
    }
}
