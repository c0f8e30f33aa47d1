use places::prelude::*;

fn main() {
    let ns: Vec<places::RemoteNode> = Vec::new();
    // `node` is not the keyword: the form reads `nodes = ..`.
    let _ = fork_join!(node = &ns, 2, cg, [] -> (), {});
}
