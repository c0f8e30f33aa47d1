#[places::procedure]
async fn double(x: u64) -> u64 {
    2 * x
}

fn main() {}
