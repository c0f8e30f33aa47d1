use places::{cg_for, Comm};

fn main() {
    let comms = Comm::local_group(3);
    let mut mine = Vec::new();
    cg_for!(comms[1], i of 0..10, { mine.push(i); });
    println!("{mine:?}");
}
