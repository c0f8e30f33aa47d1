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

#[path = "common/ndp_qsort.rs"]
mod qsort;

use places::rmpi::map_reduce::MapReduceConfig;
use places::rmpi::ndp::make_ndp_group;

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
    let addr = qsort::address();
    let small = group.run(&addr, vec![9128, 3, 7, 46, 5, 10])?;
    let text: Vec<String> = small.iter().map(i64::to_string).collect();
    println!("({})", text.join(" "));
    let input = qsort::numbers(numbers);
    let mut want = input.clone();
    want.sort_unstable();
    let sorted = group.run(&addr, input)?;
    if sorted == want {
        println!("sorted {numbers} numbers on {members} members: identical to sort_unstable");
        Ok(())
    } else {
        println!("sorted {numbers} numbers on {members} members: DIFFERENT from sort_unstable");
        Err("the parallel sort differs from sort_unstable".into())
    }
}
