// `#[places::message]` derives serde's traits, which only types can have.
#[places::message]
fn job() {}

fn main() {}
