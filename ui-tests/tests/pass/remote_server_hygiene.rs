//! `define_remote_server!` and `define_named_remote_server!` expand to absolute paths only: they
//! compile without the prelude, beside local items that shadow the names an expansion could
//! otherwise pick up, and with the `crate = ::places` override.
#![no_implicit_prelude]

// Shadows that a relative `Result`, `Ok`, `Err`, `Option`, `Some`, `None`, `Box`, `Vec`, `Sized`,
// `core`, `serde` or `places` in an expansion would pick up.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Err;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Some;
#[allow(dead_code)]
struct None;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct Sized;
#[allow(dead_code)]
mod core {}
#[allow(dead_code)]
mod serde {}
#[allow(dead_code)]
mod places {}

::places::define_remote_server! {
    crate = ::places;
    bank {
        state accounts: ::std::vec::Vec<u64> = ::std::vec::Vec::new();
        state casts: u32 = 0;
        /// Opens an account with `deposit` in it and returns its number.
        rpc fn open(deposit: u64) -> usize {
            accounts.push(deposit);
            accounts.len() - 1
        }
        rpc fn balance(account: usize) -> ::std::option::Option<u64> {
            accounts.get(account).copied()
        }
        /// Takes `amount` out of `account`; `return` and `?` end the call, not the server.
        rpc fn withdraw(
            account: usize,
            amount: u64,
        ) -> ::std::result::Result<u64, ::std::string::String> {
            let a = accounts
                .get_mut(account)
                .ok_or_else(|| ::std::borrow::ToOwned::to_owned("no such account"))?;
            if *a < amount {
                return ::std::result::Result::Err(::std::borrow::ToOwned::to_owned(
                    "insufficient funds",
                ));
            }
            *a -= amount;
            ::std::result::Result::Ok(*a)
        }
        rpc fn casts() -> u32 {
            casts
        }
        cast fn add_interest(account: usize, percent: u64) {
            casts += 1;
            if let ::std::option::Option::Some(a) = accounts.get_mut(account) {
                *a += *a * percent / 100;
            }
        }
    }
}

// Only compiled: starting a named server takes a node.
::places::define_named_remote_server! {
    tuple_server {
        state tuples: ::std::collections::BTreeMap<::std::string::String, i64> =
            ::std::collections::BTreeMap::new();
        rpc fn set(k: ::std::string::String, v: i64) {
            tuples.insert(k, v);
        }
        rpc fn get(k: ::std::string::String) -> ::std::option::Option<i64> {
            tuples.get(&k).copied()
        }
        cast fn clear() {
            tuples.clear();
        }
    }
}

#[::places::main]
fn main() {
    let server: ::places::Place<BankRequest, BankResponse> =
        ::places::Place::spawn(make_bank).unwrap();
    ::std::assert_eq!(bank_open(&server, 100).unwrap(), 0);
    ::std::assert_eq!(bank_open(&server, 7).unwrap(), 1);
    bank_add_interest(&server, 0, 10).unwrap();
    ::std::assert_eq!(
        bank_balance(&server, 0).unwrap(),
        ::std::option::Option::Some(110)
    );

    let client = BankClient::new(&server).with_deadline(::std::time::Duration::from_secs(10));
    client.add_interest(1, 100).unwrap();
    ::std::assert_eq!(client.balance(1).unwrap(), ::std::option::Option::Some(14));
    ::std::assert_eq!(client.balance(2).unwrap(), ::std::option::Option::None);
    ::std::assert_eq!(client.casts().unwrap(), 2);
    ::std::assert_eq!(
        client.withdraw(1, 4).unwrap(),
        ::std::result::Result::Ok(10)
    );
    ::std::assert_eq!(
        bank_withdraw(&server, 1, 11).unwrap(),
        ::std::result::Result::Err(::std::borrow::ToOwned::to_owned("insufficient funds"))
    );
    ::std::assert_eq!(
        bank_withdraw(&server, 5, 1).unwrap(),
        ::std::result::Result::Err(::std::borrow::ToOwned::to_owned("no such account"))
    );
    ::std::assert_eq!(
        bank_balance(&server, 1).unwrap(),
        ::std::option::Option::Some(10)
    );

    // Only compiled: a named server runs on a node (`supervise_place_at`).
    type TupleDest = ::places::Place<TupleServerRequest, TupleServerResponse>;
    let _ = make_tuple_server;
    let _ = tuple_server_set::<TupleDest>;
    let _ = tuple_server_get::<TupleDest>;
    let _ = tuple_server_clear::<TupleDest>;
    let _ = TupleServerClient::<TupleDest>::new;
}
