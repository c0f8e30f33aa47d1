//! The expansions use absolute paths only: they compile without the prelude and with local items
//! that shadow the names they could otherwise pick up.
#![no_implicit_prelude]

// Shadows that a relative `Result`, `Ok`, `Box` or `inventory` in an expansion would pick up.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
mod inventory {}
#[allow(dead_code)]
mod core {}

#[::places::place]
fn echo(ch: ::places::PlaceChannel<::std::string::String>) {
    while let ::std::result::Result::Ok(s) = ch.get() {
        if ch.put(s).is_err() {
            return;
        }
    }
}

#[::places::place]
fn exit_code(ch: ::places::PlaceChannel<u8, ::std::vec::Vec<u8>>) -> i32 {
    let _ = ch;
    3
}

#[::places::main]
fn main() {
    let p: ::places::Place<::std::string::String> = ::places::Place::spawn(echo).unwrap();
    p.put(::std::borrow::ToOwned::to_owned("hi")).unwrap();
    ::std::assert_eq!(p.get().unwrap(), "hi");
    let _ = exit_code;
}
