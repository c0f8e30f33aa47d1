use places::{place, PlaceChannel};

#[place]
extern "C" fn callback(ch: PlaceChannel<i32>) {
    let _ = ch.get();
}

fn main() {}
