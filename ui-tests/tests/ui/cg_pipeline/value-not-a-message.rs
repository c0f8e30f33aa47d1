use places::{cg_pipeline, fork_join};

#[derive(Clone, Copy)]
struct Total(u32);

fn main() {
    let sums = fork_join!(4, cg, [] -> u32, {
        let total = cg_pipeline!(cg, prev, Total(0), { Total(prev.0 + cg.id() as u32) });
        total.0
    })
    .unwrap();
    println!("{sums:?}");
}
