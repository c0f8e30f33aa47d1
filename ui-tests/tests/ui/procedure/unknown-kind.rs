#[places::procedure(combiner)]
fn combine(kvs: Vec<(String, u64)>) -> Vec<(String, u64)> {
    kvs
}

fn main() {}
