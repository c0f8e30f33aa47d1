use places::place;

#[place]
fn tick() {
    println!("tick");
}

fn main() {}
