use places::sync;

fn main() {
    sync! {
        timeout(std::time::Duration::from_millis(10)) => println!("waited"),
    }
}
