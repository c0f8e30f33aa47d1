use places::{place, PlaceChannel};

struct Worker;

impl Worker {
    #[place]
    fn run(&self, ch: PlaceChannel<String>) {
        let _ = ch.get();
    }
}

fn main() {}
