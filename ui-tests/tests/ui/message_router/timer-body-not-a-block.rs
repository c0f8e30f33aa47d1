// A timer's body is a block, as in `after_seconds(2) => { .. }`.
fn main() {
    places::message_router! {
        after_seconds(2) => println!("late"),
    }
}
