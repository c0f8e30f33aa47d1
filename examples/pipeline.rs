//! CGpipeline, dissertation section 3.4.2.2: a 5x5 matrix where each cell's new value is the
//! square of its old value plus the new value of the cell to its left. Each of five places owns a
//! column; rows flow through the places as through a pipeline, so place 3 can work on row 1
//! while place 4 is still on row 0.
//!
//! ```text
//! cargo run --example pipeline               # five local places
//! cargo run --example pipeline -- --nodes 2  # the same five members, as places on 2 local nodes
//! ```
//!
//! It prints the resulting matrix, row by row, and checks it against the same recurrence computed
//! sequentially:
//!
//! ```text
//! row 0: 0 1 9 144 21904
//! ...
//! identical to the sequential computation
//! ```

use places::prelude::*;

/// The matrix of the dissertation: row `r`, column `c` holds `c + r / 10`.
fn matrix() -> Vec<f64> {
    (0..25)
        .map(|i| (i % 5) as f64 + (i / 5) as f64 / 10.0)
        .collect()
}

fn sequential(v: &[f64]) -> Vec<f64> {
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

/// One member's part: its column, top to bottom, each cell waiting for the one to its left.
fn column(cg: &Comm, v: &[f64]) -> Vec<f64> {
    let mut column = Vec::with_capacity(5);
    for i in 0..5 {
        let value = cg_pipeline!(cg, prev_value, 0.0, {
            let idx = i * 5 + cg.id();
            let x = v[idx] + prev_value;
            x * x
        });
        column.push(value);
    }
    column
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let nodes = match (args.next().as_deref(), args.next()) {
        (None, _) => 0,
        (Some("--nodes"), Some(n)) => n
            .parse()
            .map_err(|_| format!("--nodes takes a number, not {n:?}"))?,
        _ => return Err("usage: pipeline [--nodes N]".into()),
    };
    let v = matrix();
    // One place per column; each returns its column, top to bottom.
    let columns = if nodes == 0 {
        fork_join!(5, cg, [v: Vec<f64> = v.clone()] -> Vec<f64>, { column(cg, &v) })?
    } else {
        let ns = (0..nodes)
            .map(|_| places::create_place_node("localhost", places::NodeOptions::new()))
            .collect::<Result<Vec<_>, _>>()?;
        fork_join!(nodes = &ns, 5, cg, [v: Vec<f64> = v.clone()] -> Vec<f64>, { column(cg, &v) })?
    };
    let expected = sequential(&v);
    for row in 0..5 {
        let cells: Vec<String> = columns.iter().map(|c| format!("{}", c[row])).collect();
        println!("row {row}: {}", cells.join(" "));
    }
    let same = (0..25).all(|i| columns[i % 5][i / 5] == expected[i]);
    if !same {
        return Err("the pipeline differs from the sequential computation".into());
    }
    println!("identical to the sequential computation");
    Ok(())
}
