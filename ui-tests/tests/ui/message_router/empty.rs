// A router needs something to run.
fn main() {
    places::message_router! {}
}
