//! Places' hello world: dissertation Figure 4.1, on this machine.
//!
//! The main thread starts the registered entry `hello_world` by module path and name, sends it
//! `Hello`, and prints the reply. Run it with:
//!
//! ```text
//! cargo run --example hello_world
//! ```
//!
//! It prints (the last two lines come from two places at once, in either order):
//!
//! ```text
//! hello-world received: Hello
//! hello-world sent: Hello World
//! main received: Hello World
//! ```

use places::prelude::*;

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
    let p: Place<String> = dynamic_place(module_path!(), "hello_world")?;
    p.put("Hello".to_string())?;
    println!("main received: {}", p.get()?);
    let code = p.wait();
    if code != 0 {
        return Err(format!("hello_world ended with completion value {code}").into());
    }
    Ok(())
}
