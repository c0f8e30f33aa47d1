use places::place;

#[place]
struct Worker {
    id: u32,
}

fn main() {}
