#[places::procedure(mapper)]
fn scores(v: Vec<(u32, String)>) -> Vec<(f64, String)> {
    v.into_iter().map(|(k, s)| (f64::from(k), s)).collect()
}

fn main() {}
