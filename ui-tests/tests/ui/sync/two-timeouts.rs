use places::{place_channel, sync};

fn main() {
    let (a, _a_peer) = place_channel::<u32, u32>();
    sync! {
        recv(a) -> msg => println!("{msg:?}"),
        timeout(std::time::Duration::from_secs(1)) => println!("slow"),
        timeout(std::time::Duration::from_secs(5)) => println!("very slow"),
    }
}
