//! The bank server of the distributed places reference (`define-remote-server`): a private RPC
//! server with state, run here in a local place and then on a `localhost` node, with the same
//! stubs talking to both.
//!
//! ```text
//! cargo run --example bank
//! ```
//!
//! It prints, for the local place and then for the node:
//!
//! ```text
//! local: (created user0) (ok 10) (ok 5) (insufficient-funds 5) (invalid-account nobody)
//! node: (created user0) (ok 10) (ok 5) (insufficient-funds 5) (invalid-account nobody)
//! ```

use places::prelude::*;
use places::{create_place_node, Channel, NodeOptions, RemotePlace, RpcError};

#[path = "common/bank.rs"]
mod bank;

use bank::{bank_add, bank_new_account, bank_remove, BankRequest, BankResponse};

/// The reference's session against any bank, local or remote.
fn session<C: Channel<BankRequest, BankResponse>>(dest: &C) -> Result<String, RpcError> {
    let replies = [
        bank_new_account(dest, "user0".into())?,
        bank_add(dest, "user0".into(), 10)?,
        bank_remove(dest, "user0".into(), 5)?,
        bank_remove(dest, "user0".into(), 50)?,
        bank_add(dest, "nobody".into(), 1)?,
    ];
    Ok(replies.map(|r| r.to_string()).join(" "))
}

#[places::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let local: Place<BankRequest, BankResponse> = Place::spawn(bank::make_bank)?;
    println!("local: {}", session(&local)?);

    let node = create_place_node("localhost", NodeOptions::new())?;
    let remote: RemotePlace<BankRequest, BankResponse> =
        node.dynamic_place("bank::bank", "make_bank")?;
    println!("node: {}", session(&remote)?);
    Ok(())
}
