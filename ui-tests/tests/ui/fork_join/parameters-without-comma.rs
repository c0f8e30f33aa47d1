use places::fork_join;

fn main() {
    let sums = fork_join!(3, cg, [n: u64 = 900 k: u64 = 2] -> u64, {
        cg.partition(0..n).map(|i| i * k).sum()
    })
    .unwrap();
    println!("{}", sums.iter().sum::<u64>());
}
