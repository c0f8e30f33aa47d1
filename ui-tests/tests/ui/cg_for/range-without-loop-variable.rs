use places::{cg_for, Comm};

fn main() {
    let comms = Comm::local_group(3);
    let mut count = 0;
    cg_for!(comms[1], 0..10, { count += 1; });
    println!("{count}");
}
