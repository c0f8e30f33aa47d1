use places::cg_for;

fn main() {
    let members = 3;
    let mut mine = Vec::new();
    cg_for!(members, i in 0..10, { mine.push(i); });
    println!("{mine:?}");
}
