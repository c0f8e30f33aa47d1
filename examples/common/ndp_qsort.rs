//! The dissertation's nested-data-parallel quicksort (section 4.3.4), shared by the `ndp_qsort`
//! example and the `map_reduce` bench.

use places::rmpi::ndp::{ndp_get_node, ndp_get_result, ndp_return_node, ndp_send_work};

/// Below this, a part is sorted where it is rather than sent.
pub const SEND_FROM: usize = 10_000;

/// The dissertation's `partit`: the elements below, equal to and above a pivot.
pub fn partit(v: &[i64]) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let pivot = v[v.len() / 2];
    let (mut lt, mut eq, mut gt) = (Vec::new(), Vec::new(), Vec::new());
    for &x in v {
        match x.cmp(&pivot) {
            std::cmp::Ordering::Less => lt.push(x),
            std::cmp::Ordering::Equal => eq.push(x),
            std::cmp::Ordering::Greater => gt.push(x),
        }
    }
    (lt, eq, gt)
}

/// The dissertation's `ndp-parallel-qsort`: the greater part goes to a free worker if there is
/// one, else it is sorted here; the lesser part is sorted here.
#[places::procedure]
pub fn ndp_parallel_qsort(v: Vec<i64>) -> Vec<i64> {
    if v.len() < 2 {
        return v;
    }
    let (lt, eq, gt) = partit(&v);
    drop(v);
    let remote = if gt.len() >= SEND_FROM {
        ndp_get_node().map(|node| {
            let work = ndp_send_work(&node, &places::proc_addr!(ndp_parallel_qsort), &gt)
                .expect("a worker takes the work");
            (work, node)
        })
    } else {
        None
    };
    let mut out = serial_or_parallel(lt);
    out.extend(eq);
    match remote {
        Some((work, node)) => {
            out.extend(ndp_get_result(work).expect("the worker's result"));
            ndp_return_node(node);
        }
        None => out.extend(serial_or_parallel(gt)),
    }
    out
}

/// The address of [`ndp_parallel_qsort`].
pub fn address() -> places::ProcAddr<Vec<i64>, Vec<i64>> {
    places::proc_addr!(ndp_parallel_qsort)
}

/// Small parts are sorted here (the dissertation's `ndp-serial-qsort`), large ones recurse.
fn serial_or_parallel(mut v: Vec<i64>) -> Vec<i64> {
    if v.len() < SEND_FROM {
        v.sort_unstable();
        v
    } else {
        ndp_parallel_qsort(v)
    }
}

/// `n` numbers from a fixed xorshift seed, below 10^9.
pub fn numbers(n: usize) -> Vec<i64> {
    let mut state = 0x853c_49e6_748f_ea9bu64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 1_000_000_000) as i64
        })
        .collect()
}
