use places::{place, PlaceChannel};

#[place]
unsafe fn poke(ch: PlaceChannel<u64>) {
    let _ = ch.get();
}

fn main() {}
