use places::{place, PlaceChannel};

#[place]
const fn idle(ch: PlaceChannel<u32>) {
    let _ = ch;
}

fn main() {}
