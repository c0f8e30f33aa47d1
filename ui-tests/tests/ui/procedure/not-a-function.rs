#[places::procedure]
struct Mapper;

fn main() {}
