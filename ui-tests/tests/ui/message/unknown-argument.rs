#[places::message(serde = "x")]
struct Job(u32);

fn main() {}
