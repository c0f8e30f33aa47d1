use places::{place, PlaceChannel};

#[place]
async fn fetch(ch: PlaceChannel<String>) {
    let _ = ch.get();
}

fn main() {}
