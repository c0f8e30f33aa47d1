use places::{place, PlaceChannel};

type Chan = PlaceChannel<String>;

#[place]
fn byte(b: u8) {
    let _ = b;
}

// The macro reads the signature's tokens, so an alias is not recognised as a channel either.
#[place]
fn aliased(ch: Chan) {
    let _ = ch.get();
}

fn main() {}
