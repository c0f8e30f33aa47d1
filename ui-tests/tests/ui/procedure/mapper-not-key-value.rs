#[places::procedure(mapper)]
fn lengths(words: Vec<String>) -> Vec<usize> {
    words.iter().map(String::len).collect()
}

fn main() {}
