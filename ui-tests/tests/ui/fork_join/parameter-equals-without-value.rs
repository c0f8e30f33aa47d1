use places::fork_join;

fn main() {
    let sums = fork_join!(3, cg, [n: u64 =] -> u64, { cg.partition(0..n).sum() }).unwrap();
    println!("{}", sums.iter().sum::<u64>());
}
