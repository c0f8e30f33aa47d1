use places::fork_join;

fn main() {
    let ids = fork_join!(3, cg, [] -> usize, { cg.id() }.unwrap());
    println!("{ids:?}");
}
