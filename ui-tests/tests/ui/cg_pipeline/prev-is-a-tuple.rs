use places::{cg_pipeline, fork_join};

fn main() {
    let sums = fork_join!(4, cg, [] -> (u32, u32), {
        cg_pipeline!(cg, (sum, count), (0u32, 0u32), { (sum + cg.id() as u32, count + 1) })
    })
    .unwrap();
    println!("{sums:?}");
}
