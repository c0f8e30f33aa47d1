use places::{cg_for, Comm};

fn main() {
    let comms = Comm::local_group(3);
    let mut mine = Vec::new();
    cg_for!(crate = ::places comms[1], i in 0..10, { mine.push(i); });
    println!("{mine:?}");
}
