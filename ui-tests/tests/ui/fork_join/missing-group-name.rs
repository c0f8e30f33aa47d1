use places::fork_join;

fn main() {
    let n = 900u64;
    let sums = fork_join!(3, [n: u64] -> u64, { n }).unwrap();
    println!("{sums:?}");
}
