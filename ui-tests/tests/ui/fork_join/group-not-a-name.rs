use places::{fork_join, Comm};

fn main() {
    let comms = Comm::local_group(3);
    let ids = fork_join!(3, comms[0], [] -> usize, { comms[0].id() }).unwrap();
    println!("{ids:?}");
}
