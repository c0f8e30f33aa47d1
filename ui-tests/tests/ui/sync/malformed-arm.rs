use places::{place_channel, sync};

fn main() {
    let (a, _a_peer) = place_channel::<u32, u32>();
    sync! {
        recv(a) => println!("got one"),
    }
}
