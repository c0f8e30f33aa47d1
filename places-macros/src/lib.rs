//! **The procedural macros of `places`.** Use them through the `places` crate, which re-exports
//! them; their documentation lives there.

mod crate_path;
mod errors;
mod main_attr;
mod message;
mod parallel;
mod place;
mod procedure;
mod remote_server;
mod spawn_form;

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
/// A function without parameters that returns a `Place<S, R>` is a *thunk* entry (Racket's
/// `#:thunk #t`): starting it calls the function, which starts the place itself (after any
/// set-up of its own), and the caller talks to the place it returns:
///
/// ```
/// use places::{dynamic_place, place, Place, PlaceChannel};
///
/// #[place]
/// fn echo(ch: PlaceChannel<u8>) {
///     while let Ok(b) = ch.get() {
///         let _ = ch.put(b);
///     }
/// }
///
/// #[place]
/// fn start_echo() -> Place<u8> {
///     Place::spawn(echo).unwrap()
/// }
///
/// let p: Place<u8> = dynamic_place(module_path!(), "start_echo").unwrap();
/// assert_eq!(p.put_get(7).unwrap(), 7);
/// ```
///
/// Equivalent code without the macro: the function is kept as written, and beside it an
/// `inventory::submit!` of a `places::Entry` holding the key, the message types and a trampoline
/// that turns the place's type-erased channel back into `PlaceChannel<S, R>`.
#[proc_macro_attribute]
pub fn place(args: TokenStream, item: TokenStream) -> TokenStream {
    place::place(args.into(), item.into()).into()
}

/// Registers a plain function `fn NAME(input: I) -> O` as a procedure under `module_path!()`
/// and `NAME`, so that any node running the program can call it by its address
/// ([`ProcAddr`](../places/struct.ProcAddr.html), made with `places::proc_addr!(NAME)`), as the
/// dissertation's procedure addresses `(list (quote-module-path) 'NAME)` are called.
///
/// `#[procedure(mapper)]` registers a MapReduce mapper, `fn(Vec<(K1, V1)>) -> Vec<(K2, V2)>`
/// with `K2: Ord`, and `#[procedure(reducer)]` a reducer, `fn(Vec<(K, Vec<V>)>) -> Vec<(K,
/// Vec<V>)>` with `K: Ord`; with them the workers sort, coalesce and merge the key-value lists.
/// `crate = path` names the `places` crate when it is re-exported under another path.
///
/// # Examples
///
/// ```
/// #[places::procedure(mapper)]
/// fn words(lines: Vec<(u32, String)>) -> Vec<(String, u64)> {
///     lines
///         .iter()
///         .flat_map(|(_, l)| l.split_whitespace().map(|w| (w.to_string(), 1)))
///         .collect()
/// }
///
/// let addr = places::proc_addr!(words);
/// let out = addr.call(vec![(0, "a b a".into())]).unwrap();
/// assert_eq!(out.len(), 3);
/// ```
#[proc_macro_attribute]
pub fn procedure(args: TokenStream, item: TokenStream) -> TokenStream {
    procedure::procedure(args.into(), item.into()).into()
}

/// Makes a struct or enum a message: derives serde's `Serialize` and `Deserialize` through the
/// copy of serde that `places` carries, so a program needs no serde dependency of its own.
///
/// # Examples
///
/// ```
/// #[places::message]
/// #[derive(Debug, PartialEq)]
/// enum Job {
///     Compile(String),
///     Done,
/// }
///
/// let (a, b) = places::place_channel::<Job, Job>();
/// a.put(Job::Compile("list.rkt".into())).unwrap();
/// assert_eq!(b.get().unwrap(), Job::Compile("list.rkt".into()));
/// ```
///
/// Equivalent code without the macro (with serde as a dependency of your own):
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// enum Job { Compile(String), Done }
/// ```
#[proc_macro_attribute]
pub fn message(args: TokenStream, item: TokenStream) -> TokenStream {
    message::message(args.into(), item.into()).into()
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
/// ```
///
/// Equivalent code without the macro (at the top of `main`):
///
/// ```
/// places::init().expect("places registry");
/// println!("{} cores", places::processor_count());
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    main_attr::main(args.into(), item.into()).into()
}

/// Starts a group of places that run one block, each with its member of a communicator group,
/// and returns their results in rank order (dissertation Figure 3.2).
///
/// ```text
/// fork_join!(np, cg, [name: Type = expr, ..] -> Result, { body })
/// ```
///
/// - `np`: the number of places;
/// - `cg`: the name the body uses for its [`Comm`](../places/struct.Comm.html) (`&Comm`);
/// - the parameters: each `expr` is evaluated once and moved into the form (as into a `move`
///   closure; write `v: Vec<f64> = v.clone()` to keep using `v`), and each place gets a clone of
///   it (`name: Type` alone passes the variable `name`). Nothing else crosses into the places, so
///   the body cannot use other local variables (that is a compile error). A shared vector
///   parameter is shared, not copied;
/// - `-> Result`: the type of the body's value (default `()`).
///
/// The body is lifted into a function of its own: `return` ends that member's body.
/// The whole form is a `Result<Vec<Result>, ForkJoinError>`; a member that panics makes it an
/// error naming that member, and releases the others.
///
/// `fork_join!(nodes = &nodes, np, cg, [..] -> Result, { body })` runs the members as places
/// spread over `nodes` (a slice of `RemoteNode`, member `i` on node `i % len`): the body is also
/// registered as a place entry, so every node running this program can start it, and its
/// parameters and result travel as messages (a shared vector arrives as a copy). `cg_for!`,
/// `cg_pipeline!` and `cg.barrier()` work unchanged; a member that panics or whose node dies
/// makes the form an error naming it, and no member is left running.
///
/// # Examples
///
/// ```
/// use places::{cg_for, fork_join};
///
/// let n = 900u64;
/// let sums = fork_join!(3, cg, [n: u64] -> u64, {
///     let mut s = 0;
///     cg_for!(cg, i in 0..n, { s += i; });
///     s
/// })
/// .unwrap();
/// assert_eq!(sums.iter().sum::<u64>(), (0..900).sum::<u64>());
/// ```
///
/// Equivalent code without the macro:
///
/// ```
/// fn body(cg: &places::Comm, (n,): (u64,)) -> u64 {
///     cg.partition(0..n).sum()
/// }
/// let sums = places::fork_join(3, (900u64,), body).unwrap();
/// # assert_eq!(sums.iter().sum::<u64>(), (0..900).sum::<u64>());
/// ```
#[proc_macro]
pub fn fork_join(input: TokenStream) -> TokenStream {
    let here = proc_macro::Span::call_site();
    parallel::fork_join(input.into(), here.line(), here.column()).into()
}

/// Runs a loop body for this member's block of an integer range (the dissertation's `CGfor`).
///
/// ```text
/// cg_for!(cg, i in a..b, { body })
/// ```
///
/// The range (`a..b` or `a..=b`, any primitive integer type) is cut into `cg.cnt()` contiguous
/// blocks whose lengths differ by at most one; member `k` runs block `k`. 900 iterations over 3
/// members: 0-299, 300-599, 600-899.
///
/// # Examples
///
/// ```
/// let comms = places::Comm::local_group(3);
/// let mut mine = Vec::new();
/// places::cg_for!(comms[1], i in 0..10, { mine.push(i); });
/// assert_eq!(mine, [4, 5, 6]);
/// ```
///
/// Equivalent code without the macro: `for i in cg.partition(a..b) { body }`.
#[proc_macro]
pub fn cg_for(input: TokenStream) -> TokenStream {
    parallel::cg_for(input.into()).into()
}

/// One stage of a pipeline across the members of a group (the dissertation's `CGpipeline`,
/// Figure 3.3).
///
/// ```text
/// cg_pipeline!(cg, prev, init, { body })
/// ```
///
/// Member 0 binds `prev` to `init`; every other member waits for the value of the member before
/// it. The body's value is sent on to the next member (all but the last) and is the value of the
/// form on every member. Wrapped in a loop, it pipelines rows through the members.
///
/// # Panics
///
/// If the previous member is gone or sent another type, or the next member is gone: the
/// pipeline cannot go on (inside `fork_join!`, the group then reports the first failure).
///
/// # Examples
///
/// ```
/// let sums = places::fork_join!(4, cg, [] -> u32, {
///     places::cg_pipeline!(cg, prev, 0u32, { prev + cg.id() as u32 })
/// })
/// .unwrap();
/// assert_eq!(sums, [0, 1, 3, 6]);
/// ```
#[proc_macro]
pub fn cg_pipeline(input: TokenStream) -> TokenStream {
    parallel::cg_pipeline(input.into()).into()
}

/// Defines an RPC server (Racket's `define-remote-server`): state, calls with replies, casts.
///
/// ```text
/// define_remote_server! {
///     [pub] NAME {
///         state NAME: TYPE = EXPR;                 // lives in the server loop
///         rpc fn NAME(ARG: TYPE, ..) -> TYPE { .. } // answers the caller
///         cast fn NAME(ARG: TYPE, ..) { .. }        // answers nothing
///     }
/// }
/// ```
///
/// For a server `bank` it generates:
/// - `BankCall` (a variant per method) and `BankAnswer` (a variant per `rpc`, plus `Log`);
/// - `BankRequest` = `places::RpcRequest<BankCall>` and `BankResponse` =
///   `places::RpcResponse<BankAnswer>`, the messages the server's place receives and sends:
///   every call carries an id that its reply repeats, so a reply that comes after its call gave
///   up is dropped, and threads sharing one destination get their own replies;
/// - `make_bank`, a registered place entry running the server loop: start it with
///   `Place::spawn(make_bank)`, `dynamic_place(module, "make_bank")`, or on a node;
/// - a stub per method, `bank_METHOD(&dest, args..) -> Result<T, RpcError>`, for any
///   destination that is a `Channel<BankRequest, BankResponse>` (a local or remote place);
/// - `BankClient::new(&dest)` with the same methods and `.with_deadline(d)`.
///
/// Bodies can read and change every state item, `return` and use `?` (they end the call, not
/// the server), and call `places::log_to_parent(msg, severity)`. A reply its caller could not
/// decode does not stop the server.
///
/// Attributes written before the server's name apply to the whole server: `#[cfg(..)]`,
/// `#[cfg_attr(..)]` and lint attributes go on every generated item, doc comments on the entry
/// `make_NAME`. Other attributes are an error there (put them on a method).
///
/// # Examples
///
/// ```
/// use places::{define_remote_server, Place};
///
/// define_remote_server! {
///     counter {
///         state total: u64 = 0;
///         rpc fn add(n: u64) -> u64 {
///             total += n;
///             total
///         }
///         cast fn reset() {
///             total = 0;
///         }
///     }
/// }
///
/// let server: Place<CounterRequest, CounterResponse> = Place::spawn(make_counter).unwrap();
/// assert_eq!(counter_add(&server, 2).unwrap(), 2);
/// assert_eq!(CounterClient::new(&server).add(3).unwrap(), 5);
/// counter_reset(&server).unwrap();
/// assert_eq!(counter_add(&server, 1).unwrap(), 1);
/// ```
#[proc_macro]
pub fn define_remote_server(input: TokenStream) -> TokenStream {
    remote_server::define(input.into(), remote_server::Flavor::Private).into()
}

/// Defines an RPC server for a named place (Racket's `define-named-remote-server`): the same
/// items as [`define_remote_server!`], but the entry `make_NAME` receives `Routed` requests,
/// so it serves any number of connections from `connect_to_named_place` at once, each getting
/// its own replies. Start it with `supervise_place_at(&node, module, "make_NAME",
/// PlaceOptions::new().named("..."))`.
#[proc_macro]
pub fn define_named_remote_server(input: TokenStream) -> TokenStream {
    remote_server::define(input.into(), remote_server::Flavor::Named).into()
}

/// Starts a place running a block (Racket's `place` form): `spawn!(ch: PlaceChannel<S, R> => { .. })`
/// evaluates to `Result<Place<R, S>, SpawnError>`.
///
/// The block is lifted into a registered entry of its own (`#[place]`), so, as in Racket, it can
/// use its channel `ch`, items and other functions, but not the enclosing function's local
/// variables (a compile error); values it needs come as messages.
///
/// # Examples
///
/// ```
/// use places::{spawn, Place, PlaceChannel};
///
/// fn fib(n: u64) -> u64 {
///     if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
/// }
///
/// let p: Place<u64> = spawn!(ch: PlaceChannel<u64> => {
///     let n = ch.get().unwrap();
///     ch.put(fib(n)).unwrap();
/// })
/// .unwrap();
/// assert_eq!(p.put_get(20).unwrap(), 6765);
/// ```
#[proc_macro]
pub fn spawn(input: TokenStream) -> TokenStream {
    let here = proc_macro::Span::call_site();
    spawn_form::spawn(input.into(), here.line(), here.column()).into()
}
