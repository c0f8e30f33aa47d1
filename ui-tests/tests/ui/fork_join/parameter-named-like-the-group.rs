use places::fork_join;

fn main() {
    let cg = 3usize;
    let ids = fork_join!(3, cg, [cg: usize] -> usize, { cg.id() }).unwrap();
    println!("{ids:?}");
}
