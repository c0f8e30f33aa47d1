use places::fork_join;

fn main() {
    let ids = fork_join!(3, cg, [(a, b): (u32, u32) = (1, 2)] -> u32, { a + b + cg.id() as u32 })
        .unwrap();
    println!("{ids:?}");
}
