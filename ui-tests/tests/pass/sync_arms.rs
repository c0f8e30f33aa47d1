//! `sync!` with a `recv`, a `dead` and a `timeout` arm, each taken in turn; bodies as expressions
//! and as blocks, the whole `sync!` used as a value.

use std::time::Duration;

use places::{place, place_channel, sync, DeadEvt, Place, PlaceChannel};

/// Ends with the completion value it is sent.
#[place]
fn exit_with(ch: PlaceChannel<u32, i32>) -> i32 {
    ch.get().unwrap_or(1)
}

fn next_event(a: &PlaceChannel<u32>, dead: &DeadEvt) -> String {
    sync! {
        recv(a) -> msg => format!("a {}", msg.unwrap()),
        dead(dead) -> code => {
            let text = format!("dead {code}");
            text
        },
        timeout(Duration::from_millis(50)) => "timeout".to_string(),
    }
}

fn main() {
    let (a, a_peer) = place_channel::<u32, u32>();
    let p: Place<i32, u32> = Place::spawn(exit_with).unwrap();
    let dead = p.dead_evt();

    assert_eq!(next_event(&a, &dead), "timeout");
    a_peer.put(5).unwrap();
    assert_eq!(next_event(&a, &dead), "a 5");
    p.put(7).unwrap();
    assert_eq!(next_event(&a, &dead), "dead 7");
}
