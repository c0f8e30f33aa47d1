//! The dissertation's nested-data-parallel quicksort (section 4.3.4), shared by the `ndp_qsort`
//! example and the `map_reduce` bench.

use places::rmpi::ndp::{ndp_get_node, ndp_get_result, ndp_return_node, ndp_send_work};

/// Below this, a part is sorted where it is rather than sent.
pub const SEND_FROM: usize = 10_000;

/// The dissertation's `partit`, in place: afterwards `v[..lt]` is below the pivot,
/// `v[lt..gt]` equal to it and `v[gt..]` above it (one pass, Dijkstra's three-way partition).
pub fn partit(v: &mut [i64]) -> (usize, usize) {
    let pivot = pivot(v);
    let (mut lt, mut i, mut gt) = (0, 0, v.len());
    while i < gt {
        match v[i].cmp(&pivot) {
            std::cmp::Ordering::Less => {
                v.swap(lt, i);
                lt += 1;
                i += 1;
            }
            std::cmp::Ordering::Equal => i += 1,
            std::cmp::Ordering::Greater => {
                gt -= 1;
                v.swap(i, gt);
            }
        }
    }
    (lt, gt)
}

/// The pivot: the median of up to 255 evenly spaced elements, so that the parts handed to
/// workers are close to halves.
fn pivot(v: &[i64]) -> i64 {
    let step = (v.len() / 255).max(1);
    let mut sample: Vec<i64> = v.iter().step_by(step).take(255).copied().collect();
    sample.sort_unstable();
    sample[sample.len() / 2]
}

/// The dissertation's `ndp-parallel-qsort`: the greater part goes to a free worker if there is
/// one, else it is sorted here serially; the lesser part is sorted here, recursively.
#[places::procedure]
pub fn ndp_parallel_qsort(mut v: Vec<i64>) -> Vec<i64> {
    qsort(&mut v);
    v
}

/// The address of [`ndp_parallel_qsort`].
pub fn address() -> places::ProcAddr<Vec<i64>, Vec<i64>> {
    places::proc_addr!(ndp_parallel_qsort)
}

/// Sorts `v` in place: small parts here (the dissertation's `ndp-serial-qsort`, which is
/// `sort_unstable`), large ones by partitioning and handing the greater part to a free worker
/// when there is one.
fn qsort(v: &mut [i64]) {
    if v.len() < SEND_FROM {
        v.sort_unstable();
        return;
    }
    let (lt, gt) = partit(v);
    let (lesser, rest) = v.split_at_mut(lt);
    let greater = &mut rest[gt - lt..];
    let remote = if greater.len() >= SEND_FROM {
        ndp_get_node().map(|node| {
            let work = ndp_send_work(&node, &address(), greater.to_vec())
                .expect("a worker takes the work");
            (work, node)
        })
    } else {
        None
    };
    qsort(lesser);
    match remote {
        Some((work, node)) => {
            let sorted = ndp_get_result(work).expect("the worker's result");
            greater.copy_from_slice(&sorted);
            ndp_return_node(node);
        }
        // No worker free: the dissertation's `ndp-serial-qsort`.
        None => greater.sort_unstable(),
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
