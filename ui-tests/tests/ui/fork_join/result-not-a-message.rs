use places::fork_join;

struct Tally {
    rank: usize,
}

fn main() {
    let tallies = fork_join!(3, cg, [] -> Tally, { Tally { rank: cg.id() } }).unwrap();
    println!("{}", tallies.len());
}
