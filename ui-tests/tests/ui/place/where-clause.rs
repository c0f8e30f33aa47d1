use places::{place, PlaceChannel};

#[place]
fn count(ch: PlaceChannel<u32>)
where
    u32: Copy,
{
    let _ = ch.put(1);
}

fn main() {}
