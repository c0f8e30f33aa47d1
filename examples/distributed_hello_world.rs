//! The distributed places reference's first example, on this machine: start a node on
//! `localhost` with the `hello_world` place on it, and run the message router: after 2 seconds
//! it sends the place `Hello` and prints the answer, after 6 seconds it ends the program.
//!
//! ```text
//! cargo run --example distributed_hello_world
//! ```
//!
//! The node is this same executable, started in node mode by `#[places::main]`; what its place
//! prints comes back through the node's output. It prints (the place's lines come from the node
//! process, so they may interleave with the main program's line):
//!
//! ```text
//! hello-world received: Hello
//! hello-world sent: Hello World
//! message-router received: Hello World
//! ```

use places::prelude::*;
use places::{
    message_router, spawn_node_supervise_place_at, NodeOptions, PlaceOptions, RemotePlace,
};

/// The place: receive a greeting, answer it.
#[place]
pub fn hello_world(ch: PlaceChannel<String>) {
    match ch.get() {
        Ok(msg) => println!("hello-world received: {msg}"),
        Err(e) => return eprintln!("hello-world: {e}"),
    }
    if ch.put("Hello World".to_string()).is_ok() {
        println!("hello-world sent: Hello World");
    }
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1) spawns a node on localhost (on any free port: two programs on one host never collide),
    // 2) creates a place on it running `hello_world` from this module,
    // 3) returns the node and the place.
    let (node, pl): (_, RemotePlace<String>) = spawn_node_supervise_place_at(
        "localhost",
        module_path!(),
        "hello_world",
        NodeOptions::new(),
        PlaceOptions::new(),
    )?;
    // The router handles the node and two timers: two seconds after its start a message goes
    // to the place; after six seconds the program ends.
    message_router! {
        &node,
        after_seconds(2) => {
            match pl.put_get("Hello".to_string()) {
                Ok(reply) => println!("message-router received: {reply}"),
                Err(e) => eprintln!("message-router: {e}"),
            }
        },
        after_seconds(6) => {
            std::process::exit(0);
        },
    }
    Ok(())
}
