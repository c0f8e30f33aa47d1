use places::{place, PlaceChannel};

#[place(name = "worker")]
fn worker(ch: PlaceChannel<String>) {
    let _ = ch.get();
}

fn main() {}
