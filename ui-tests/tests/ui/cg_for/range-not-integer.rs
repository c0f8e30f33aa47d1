use places::{cg_for, Comm};

fn main() {
    let comms = Comm::local_group(3);
    let mut mine = Vec::new();
    cg_for!(comms[1], x in 0.0..1.0, { mine.push(x); });
    println!("{mine:?}");
}
