//! `crate = path` names the runtime crate for the generated code.

use places::{dynamic_place, Place, PlaceChannel};

#[places::place(crate = ::places)]
fn double(ch: PlaceChannel<u32>) {
    while let Ok(x) = ch.get() {
        if ch.put(2 * x).is_err() {
            return;
        }
    }
}

#[places::main(crate = ::places)]
fn main() {
    let p: Place<u32> = dynamic_place(module_path!(), "double").unwrap();
    assert_eq!(p.put_get(21).unwrap(), 42);
}
