use places::fork_join;

fn main() {
    let n = 900u64;
    let sums = fork_join!(3, cg, [] -> u64, { cg.partition(0..n).sum() }).unwrap();
    println!("{} of {n}", sums.iter().sum::<u64>());
}
