#[places::main]
async fn main() {
    println!("hello");
}
