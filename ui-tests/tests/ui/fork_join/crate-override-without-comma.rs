use places::fork_join;

fn main() {
    let ids = fork_join!(crate = ::places 3, cg, [] -> usize, { cg.id() }).unwrap();
    println!("{ids:?}");
}
