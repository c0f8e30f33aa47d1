use places::{cg_pipeline, fork_join};

fn main() {
    let sums = fork_join!(4, cg, [] -> u32, {
        cg_pipeline!(cg, prev, { prev + cg.id() as u32 })
    })
    .unwrap();
    println!("{sums:?}");
}
