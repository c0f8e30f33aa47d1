//! Nested data parallelism (dissertation section 4.3.4): the parallel quicksort on an NDP group
//! of local nodes. Each call partitions its list around a pivot, hands the greater part to a
//! free worker (`ndp_get_node`, `ndp_send_work`) or sorts it here when none is free, sorts the
//! lesser part itself, and collects the other (`ndp_get_result`, `ndp_return_node`).
//!
//! ```text
//! cargo run --release --example ndp_qsort [-- --members 4 --numbers 1000000]
//! ```
//!
//! It sorts the dissertation's list first, then generated numbers, and checks them against
//! `sort_unstable`:
//!
//! ```text
//! (3 5 7 10 46 9128)
//! sorted 1000000 numbers on 4 members: identical to sort_unstable
//! ```

use places::rmpi::map_reduce::MapReduceConfig;
use places::rmpi::ndp::{
    make_ndp_group, ndp_get_node, ndp_get_result, ndp_return_node, ndp_send_work,
};

/// Below this, a part is sorted here rather than sent.
const SEND_FROM: usize = 10_000;

/// The dissertation's `partit`: the elements below, equal to and above a pivot.
fn partit(v: &[i64]) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
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

/// The dissertation's `ndp-parallel-qsort`.
#[places::procedure]
fn ndp_parallel_qsort(v: Vec<i64>) -> Vec<i64> {
    if v.len() < 2 {
        return v;
    }
    let (lt, eq, gt) = partit(&v);
    drop(v);
    // Spawn off the gt partition to a free worker, if there is one.
    let remote = if gt.len() >= SEND_FROM {
        ndp_get_node().map(|node| {
            let work = ndp_send_work(&node, &places::proc_addr!(ndp_parallel_qsort), &gt)
                .expect("a worker takes the work");
            (work, node)
        })
    } else {
        None
    };
    let mut out = ndp_serial_or_parallel(lt);
    out.extend(eq);
    match remote {
        Some((work, node)) => {
            out.extend(ndp_get_result(work).expect("the worker's result"));
            ndp_return_node(node);
        }
        None => out.extend(ndp_serial_or_parallel(gt)),
    }
    out
}

/// Small parts are sorted here (the dissertation's `ndp-serial-qsort`), large ones recurse.
fn ndp_serial_or_parallel(mut v: Vec<i64>) -> Vec<i64> {
    if v.len() < SEND_FROM {
        v.sort_unstable();
        v
    } else {
        ndp_parallel_qsort(v)
    }
}

fn parse_args() -> Result<(usize, usize), String> {
    let (mut members, mut numbers) = (4usize, 1_000_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let slot = match a.as_str() {
            "--members" => &mut members,
            "--numbers" => &mut numbers,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: --members N --numbers N"
                ))
            }
        };
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        *slot = v
            .parse()
            .ok()
            .filter(|&n: &usize| n > 0)
            .ok_or(format!("{a} takes a positive number, not {v:?}"))?;
    }
    if members < 2 {
        return Err("--members: a coordinator and at least one worker (2 or more)".into());
    }
    Ok((members, numbers))
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (members, numbers) = parse_args()?;
    let group = make_ndp_group(&MapReduceConfig::local(members))?;
    let qsort = places::proc_addr!(ndp_parallel_qsort);
    let small = group.run(&qsort, vec![9128, 3, 7, 46, 5, 10])?;
    let text: Vec<String> = small.iter().map(i64::to_string).collect();
    println!("({})", text.join(" "));
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let input: Vec<i64> = (0..numbers)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 1_000_000_000) as i64
        })
        .collect();
    let mut want = input.clone();
    want.sort_unstable();
    let sorted = group.run(&qsort, input)?;
    if sorted == want {
        println!("sorted {numbers} numbers on {members} members: identical to sort_unstable");
        Ok(())
    } else {
        println!("sorted {numbers} numbers on {members} members: DIFFERENT from sort_unstable");
        Err("the parallel sort differs from sort_unstable".into())
    }
}
