use places::fork_join;

#[derive(Clone)]
struct Config {
    scale: u64,
}

fn main() {
    let config = Config { scale: 2 };
    let sums = fork_join!(3, cg, [n: u64 = 900, config: Config] -> u64, {
        cg.partition(0..n).map(|i| i * config.scale).sum()
    })
    .unwrap();
    println!("{}", sums.iter().sum::<u64>());
}
