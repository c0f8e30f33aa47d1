//! The distributed places reference's first example, on this machine: start a node on
//! `localhost`, start the `hello_world` place there, send it `Hello`, print its answer.
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
//!
//! (The reference drives this from `message-router` with `after-seconds` timers; that form
//! belongs to a later part of this project, so plain calls stand in for it here.)

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemotePlace};

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
    // 1) Starts a node on localhost (any free port) and connects to it.
    let node = create_place_node("localhost", NodeOptions::new())?;
    // 2) Creates the place on that node, by module path and name.
    let pl: RemotePlace<String> = node.dynamic_place(module_path!(), "hello_world")?;
    // 3) Talks to it as to a local place.
    pl.put("Hello".to_string())?;
    println!("message-router received: {}", pl.get()?);
    let code = pl.wait();
    if code != 0 {
        return Err(format!("hello_world ended with completion value {code}").into());
    }
    node.send_exit();
    Ok(())
}
