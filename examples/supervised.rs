//! A supervised place that crashes every time it runs: `restart_every(1).retry(3)` starts it
//! again three times, a second apart, then gives up and runs `on_final_fail`.
//!
//! ```text
//! cargo run --example supervised
//! ```
//!
//! It prints (the `crashy` lines come from the node process):
//!
//! ```text
//! crashy: up, and failing on purpose
//! restarting crashy (attempt 1 of 3)
//! crashy: up, and failing on purpose
//! restarting crashy (attempt 2 of 3)
//! crashy: up, and failing on purpose
//! restarting crashy (attempt 3 of 3)
//! crashy: up, and failing on purpose
//! crashy failed after 3 restarts; giving up
//! ```

use std::time::Duration;

use places::prelude::*;
use places::{
    create_place_node, restart_every, supervise_place_at, NodeOptions, PlaceOptions, RemotePlace,
};

/// Fails on purpose, every run.
#[place]
pub fn crashy(_ch: PlaceChannel<()>) -> i32 {
    println!("crashy: up, and failing on purpose");
    places::exit(1)
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = create_place_node("localhost", NodeOptions::new())?;
    let (gave_up_tx, gave_up) = std::sync::mpsc::channel();
    let policy = restart_every(1.0)
        .retry(3)
        .on_restart(|attempt| println!("restarting crashy (attempt {attempt} of 3)"))
        .on_final_fail(move || {
            println!("crashy failed after 3 restarts; giving up");
            let _ = gave_up_tx.send(());
        });
    let _first: RemotePlace<()> = supervise_place_at(
        &node,
        module_path!(),
        "crashy",
        PlaceOptions::new().restart_on_exit(policy),
    )?;
    gave_up
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the supervisor did not give up within 30 s")?;
    Ok(())
}
