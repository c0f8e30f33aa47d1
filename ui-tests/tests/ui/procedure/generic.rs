#[places::procedure]
fn first<T: Clone>(v: Vec<T>) -> Option<T> {
    v.first().cloned()
}

fn main() {}
