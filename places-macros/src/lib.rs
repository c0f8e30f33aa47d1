//! **The procedural macros of `places`.** Use them through the `places` crate, which re-exports
//! them; their documentation lives there.

mod crate_path;
mod errors;
mod main_attr;
mod place;

use proc_macro::TokenStream;

/// Registers a function as a place entry, startable by name (`dynamic_place(module, name)`) or by
/// value (`Place::spawn(f)`), locally and on other nodes.
///
/// The function must be `fn NAME(ch: PlaceChannel<S, R>)`, returning `()` or an `i32` exit code;
/// the place sends `S` and receives `R`. The entry is registered under `module_path!()` and `NAME`.
/// `#[place(crate = path)]` names the `places` crate when it is re-exported under another path.
///
/// # Examples
///
/// ```
/// use places::{dynamic_place, place, Place, PlaceChannel};
///
/// #[place]
/// fn echo(ch: PlaceChannel<String>) {
///     while let Ok(s) = ch.get() {
///         ch.put(s).unwrap();
///     }
/// }
///
/// let p: Place<String> = dynamic_place(module_path!(), "echo").unwrap();
/// assert_eq!(p.put_get("hi".into()).unwrap(), "hi");
/// ```
///
/// Equivalent code without the macro: the function is kept as written, and beside it an
/// `inventory::submit!` of a `places::Entry` holding the key, the message types and a trampoline
/// that turns the place's type-erased channel back into `PlaceChannel<S, R>`.
#[proc_macro_attribute]
pub fn place(args: TokenStream, item: TokenStream) -> TokenStream {
    place::place(args.into(), item.into()).into()
}

/// Runs `main` through the places runtime: `#[places::main] fn main() { .. }`.
///
/// It checks the entry registry before the body runs (a key registered twice is reported, naming
/// both definitions, and the program exits with status 2), and it is where node mode will start
/// when the executable is launched as a node. `main` may return anything it could return before.
///
/// # Examples
///
/// ```
/// #[places::main]
/// fn main() {
///     println!("{} cores", places::processor_count());
/// }
/// # main();
/// ```
///
/// Equivalent code without the macro:
///
/// ```
/// fn main() {
///     places::init().expect("places registry");
///     println!("{} cores", places::processor_count());
/// }
/// # main();
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    main_attr::main(args.into(), item.into()).into()
}
