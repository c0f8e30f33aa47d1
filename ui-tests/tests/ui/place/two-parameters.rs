use places::{place, PlaceChannel};

#[place]
fn scale(ch: PlaceChannel<f64>, factor: f64) {
    while let Ok(x) = ch.get() {
        let _ = ch.put(x * factor);
    }
}

fn main() {}
