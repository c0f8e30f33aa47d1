use places::cg_for;

fn main() {
    cg_for!();
}
