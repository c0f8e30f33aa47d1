use places::cg_pipeline;

fn main() {
    let members = 4;
    let value = cg_pipeline!(members, prev, 0u32, { prev + 1 });
    println!("{value}");
}
