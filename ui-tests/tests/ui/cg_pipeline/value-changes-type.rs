// The value a stage passes on must have the type of the value it received.
fn main() {
    let _ = places::fork_join!(2, cg, [], {
        let _sent = places::cg_pipeline!(cg, prev, 0u32, { prev as u64 + 1 });
    });
}
