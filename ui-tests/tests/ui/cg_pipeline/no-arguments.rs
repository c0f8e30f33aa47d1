use places::cg_pipeline;

fn main() {
    let value: u32 = cg_pipeline!();
    println!("{value}");
}
