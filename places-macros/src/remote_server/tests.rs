use quote::quote;

use super::{define, Flavor};

fn expand(input: proc_macro2::TokenStream, flavor: Flavor) -> String {
    define(input, flavor).to_string()
}

#[test]
fn generates_messages_entry_stubs_and_client() {
    let out = expand(
        quote! {
            pub bank {
                state accounts: Vec<u64> = Vec::new();
                rpc fn new_account(who: String) -> u64 { 0 }
                cast fn hello() {}
            }
        },
        Flavor::Private,
    );
    assert!(!out.contains("compile_error"), "{out}");
    for needle in [
        "pub enum BankCall",
        "NewAccount { # [doc = \"The `who` argument.\"] who : String }",
        "pub enum BankAnswer",
        "Log (:: places :: LogRecord)",
        "pub type BankRequest = :: places :: RpcRequest < BankCall >",
        "pub type BankResponse = :: places :: RpcResponse < BankAnswer >",
        "pub fn make_bank (__places_ch : :: places :: PlaceChannel < BankResponse , BankRequest >)",
        "pub struct BankClient",
        "pub fn bank_new_account",
        "pub fn bank_hello",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in {out}");
    }
    syn::parse2::<syn::File>(define(
        quote! { bank { rpc fn get() -> u8 { 1 } } },
        Flavor::Private,
    ))
    .expect("the expansion parses as items");
}

#[test]
fn the_named_flavor_receives_routed_requests() {
    let out = expand(
        quote! { tuple_server { rpc fn get(k: String) -> u8 { 0 } } },
        Flavor::Named,
    );
    assert!(
        out.contains("Routed < TupleServerRequest , TupleServerResponse >"),
        "{out}"
    );
    assert!(out.contains("fn make_tuple_server"), "{out}");
}

#[test]
fn every_problem_is_reported_and_the_names_still_exist() {
    let out = expand(
        quote! {
            bad {
                state a: u8;
                state b = 1;
                rpc fn dup() {}
                rpc fn dup() {}
                rpc fn new() {}
                rpc fn pat((x, y): (u8, u8)) {}
                cast fn noisy() -> u8 { 1 }
            }
        },
        Flavor::Private,
    );
    for needle in [
        "state `a` needs an initial value",
        "state `b` needs a type",
        "defined twice",
        "is taken by the generated `BadClient::new`",
        "plain names",
        "sends no reply",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in {out}");
    }
    assert!(
        out.contains("type BadRequest")
            && out.contains("enum BadCall")
            && out.contains("struct BadClient"),
        "{out}"
    );
}

#[test]
fn unknown_items_are_named() {
    let out = expand(quote! { s { fn plain() {} } }, Flavor::Private);
    assert!(out.contains("unknown server item `fn`"), "{out}");
}

#[test]
fn raw_identifiers_become_plain_names() {
    let out = expand(
        quote! { r#type { rpc fn r#move(x: u8) -> u8 { x } } },
        Flavor::Private,
    );
    assert!(!out.contains("compile_error"), "{out}");
    assert!(
        out.contains("type TypeRequest") && out.contains("enum TypeCall") && out.contains("Move {"),
        "{out}"
    );
    assert!(
        out.contains("fn make_type") && out.contains("fn type_move"),
        "{out}"
    );
}
