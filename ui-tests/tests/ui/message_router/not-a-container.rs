// Only event containers (nodes, timers, `on_channel`, your own `EventContainer`s) can be routed.
fn main() {
    places::message_router! {
        42,
    }
}
