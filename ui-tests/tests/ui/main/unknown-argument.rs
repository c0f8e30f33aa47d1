#[places::main(flavor = "multi_thread")]
fn main() {
    println!("hello");
}
