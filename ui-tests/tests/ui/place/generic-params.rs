use places::{place, Message, PlaceChannel};

#[place]
fn echo<T: Message>(ch: PlaceChannel<T>) {
    while let Ok(v) = ch.get() {
        let _ = ch.put(v);
    }
}

fn main() {}
