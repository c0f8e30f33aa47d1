#[places::procedure]
fn log(line: String) {
    println!("{line}");
}

fn main() {}
