use places::{place, PlaceChannel};

#[place]
fn sum(ch: PlaceChannel<u64>) -> u64 {
    let mut total = 0;
    while let Ok(x) = ch.get() {
        total += x;
    }
    total
}

fn main() {}
