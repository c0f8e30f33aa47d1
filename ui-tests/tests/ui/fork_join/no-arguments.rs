use places::fork_join;

fn main() {
    let ids: Vec<()> = fork_join!().unwrap();
    println!("{ids:?}");
}
