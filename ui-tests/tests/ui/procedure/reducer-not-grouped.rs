#[places::procedure(reducer)]
fn sum(kvs: Vec<(String, u64)>) -> Vec<(String, u64)> {
    kvs
}

fn main() {}
