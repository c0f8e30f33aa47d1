use places::cg_for;

fn main() {
    let mut mine = Vec::new();
    cg_for!(i in 0..10, { mine.push(i); });
    println!("{mine:?}");
}
