//! The tuple server of the guide chapter (`define-named-remote-server`): a named place on a
//! `localhost` node; two connections share its table, each getting its own replies.
//!
//! ```text
//! cargo run --example tuple_server
//! ```
//!
//! It prints (the `Hello from define-cast` line comes from the node process):
//!
//! ```text
//! Hello from define-cast
//! set a 1 -> 1
//! set b 2 -> 2
//! get a (other connection) -> 1
//! get c -> #f
//! ```

use places::{
    connect_to_named_place, create_place_node, supervise_place_at, NodeOptions, PlaceOptions,
};

#[path = "common/tuple.rs"]
mod tuple;

use tuple::{
    show, tuple_server_get, tuple_server_hello, tuple_server_set, TupleServerRequest,
    TupleServerResponse,
};

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let node = create_place_node("localhost", NodeOptions::new())?;
    let _server: places::RemotePlace<
        places::Routed<TupleServerRequest, TupleServerResponse>,
        TupleServerResponse,
    > = supervise_place_at(
        &node,
        "tuple_server::tuple",
        "make_tuple_server",
        PlaceOptions::new().named("tuple-server"),
    )?;
    let c =
        connect_to_named_place::<TupleServerRequest, TupleServerResponse>(&node, "tuple-server")?;
    let d =
        connect_to_named_place::<TupleServerRequest, TupleServerResponse>(&node, "tuple-server")?;
    tuple_server_hello(&c)?;
    // A call after the cast: its reply shows the cast has been handled.
    println!("set a 1 -> {}", tuple_server_set(&c, "a".into(), 1)?);
    println!("set b 2 -> {}", tuple_server_set(&d, "b".into(), 2)?);
    println!(
        "get a (other connection) -> {}",
        show(tuple_server_get(&d, "a".into())?)
    );
    println!("get c -> {}", show(tuple_server_get(&c, "c".into())?));
    Ok(())
}
