//! The guide chapter's master program (seed 002, Figure 1) on a `localhost` node: a named tuple
//! server and a private bank server on one remote node, and two connections to the tuple server.
//!
//! ```text
//! cargo run --example named_master
//! ```
//!
//! It prints what Racket prints for it: the tuple calls, then the bank calls, and
//! `Hello from define-cast` twice from the server (from the node process, so those two lines may
//! come anywhere among the others):
//!
//! ```text
//! 100
//! 200
//! 100
//! 200
//! 100
//! 200
//! (created user0)
//! (ok 10)
//! (ok 5)
//! Hello from define-cast
//! Hello from define-cast
//! ```
//!
//! (Racket drives this with `message-router` timers; plain calls in the same order stand in
//! until that form exists here.)

use places::{
    connect_to_named_place, create_place_node, supervise_place_at, NodeOptions, PlaceOptions,
    RemotePlace, Routed,
};

#[path = "common/bank.rs"]
mod bank;
#[path = "common/tuple.rs"]
mod tuple;

use bank::{bank_add, bank_new_account, bank_remove, BankRequest, BankResponse};
use tuple::{
    show, tuple_server_get, tuple_server_hello, tuple_server_set, TupleServerRequest,
    TupleServerResponse,
};

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let remote_node = create_place_node("localhost", NodeOptions::new())?;
    let _tuple_place: RemotePlace<
        Routed<TupleServerRequest, TupleServerResponse>,
        TupleServerResponse,
    > = supervise_place_at(
        &remote_node,
        "named_master::tuple",
        "make_tuple_server",
        PlaceOptions::new().named("tuple-server"),
    )?;
    let bank_place: RemotePlace<BankRequest, BankResponse> = supervise_place_at(
        &remote_node,
        "named_master::bank",
        "make_bank",
        PlaceOptions::new(),
    )?;

    // After 2 seconds in Racket:
    let c = connect_to_named_place::<TupleServerRequest, TupleServerResponse>(
        &remote_node,
        "tuple-server",
    )?;
    let d = connect_to_named_place::<TupleServerRequest, TupleServerResponse>(
        &remote_node,
        "tuple-server",
    )?;
    tuple_server_hello(&c)?;
    tuple_server_hello(&d)?;
    println!("{}", tuple_server_set(&c, "user0".into(), 100)?);
    println!("{}", tuple_server_set(&d, "user2".into(), 200)?);
    println!("{}", show(tuple_server_get(&c, "user0".into())?));
    println!("{}", show(tuple_server_get(&d, "user2".into())?));
    println!("{}", show(tuple_server_get(&d, "user0".into())?));
    println!("{}", show(tuple_server_get(&c, "user2".into())?));

    // After 4 seconds in Racket:
    println!("{}", bank_new_account(&bank_place, "user0".into())?);
    println!("{}", bank_add(&bank_place, "user0".into(), 10)?);
    println!("{}", bank_remove(&bank_place, "user0".into(), 5)?);

    // After 8 seconds in Racket: (node-send-exit remote-node). Dropping the node handle ends
    // it after its output has been passed on.
    Ok(())
}
