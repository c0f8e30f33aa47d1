//! The entry registry: every `#[place]` function registers itself here at link time, under a key
//! made of its module path and its name, so that [`dynamic_place`] can find it at run time, and
//! so can a remote node running the same executable. Starting an entry (here, on a node, by name
//! or not) goes through one path, `Entry::start_local` / [`Entry::start_remote`], with one
//! type check.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::channel::{raw_pair, remote_channel, PlaceChannel};
use crate::error::SpawnError;
use crate::message::Message;
use crate::place::{Place, PlaceHandle};
use crate::transport::Endpoint;

/// The key a place entry is registered under: the module path of its definition and its name.
///
/// # Examples
///
/// ```
/// use places::EntryKey;
///
/// let key = EntryKey::new("my_app::workers", "fib");
/// assert_eq!(key.to_string(), "my_app::workers::fib");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey {
    module: &'static str,
    name: &'static str,
}

impl EntryKey {
    /// Makes a key from a module path (as `module_path!()` gives it) and a function name.
    pub const fn new(module: &'static str, name: &'static str) -> Self {
        Self { module, name }
    }

    /// The module path part of the key.
    pub const fn module(&self) -> &'static str {
        self.module
    }

    /// The function name part of the key.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl fmt::Display for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.module, self.name)
    }
}

/// A message type as the registry records it: its `TypeId` for the local check and its name for
/// error messages (and, later, for the cross-node handshake).
#[derive(Clone, Copy)]
pub struct TypeInfo {
    id: fn() -> TypeId,
    name: fn() -> &'static str,
}

impl TypeInfo {
    /// The record of type `T`.
    pub const fn of<T: 'static>() -> Self {
        Self {
            id: TypeId::of::<T>,
            name: std::any::type_name::<T>,
        }
    }

    /// The type's `TypeId`.
    pub fn id(&self) -> TypeId {
        (self.id)()
    }

    /// The type's name, as `std::any::type_name` spells it.
    pub fn name(&self) -> &'static str {
        (self.name)()
    }
}

impl fmt::Debug for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The place's end of its first channel, with its type erased so that one registry can hold
/// entries of every message type.
pub type ErasedChannel = Box<dyn Any + Send>;

/// The body of a place, ready to run on its thread; it returns the completion value.
pub type EntryThunk = Box<dyn FnOnce() -> i32 + Send>;

/// Turns an erased channel into the entry's runnable body, or gives the channel back when it is
/// not of the entry's type.
pub type PrepareFn = fn(ErasedChannel) -> Result<EntryThunk, ErasedChannel>;

/// One registered place entry. `#[place]` builds these; users read them through [`entries`].
pub struct Entry {
    key: EntryKey,
    file: &'static str,
    line: u32,
    receives: TypeInfo,
    sends: TypeInfo,
    kind: EntryKind,
}

/// How an entry starts its place.
enum EntryKind {
    /// `fn NAME(ch: PlaceChannel<S, R>)`: the runtime starts a place running it.
    Function {
        make_remote: MakeRemoteFn,
        prepare: PrepareFn,
    },
    /// `fn NAME() -> Place<S, R>` (Racket's `#:thunk`): it starts the place itself.
    Thunk { call: ThunkFn, bridge: BridgeFn },
}

/// Calls a thunk entry; the box holds its `Place<S, R>`.
pub type ThunkFn = fn() -> Box<dyn Any + Send>;

/// Connects the place a thunk returned to a channel on a connection.
pub type BridgeFn = fn(
    Box<dyn Any + Send>,
    Arc<Endpoint>,
    Box<dyn FnOnce(i32) + Send>,
) -> Result<PlaceHandle, SpawnError>;

/// A thunk's place, joined to the connection's endpoint by a relay in each direction.
fn bridge_place<S: Message, R: Message>(
    place: Box<dyn Any + Send>,
    endpoint: Arc<Endpoint>,
    on_finish: Box<dyn FnOnce(i32) + Send>,
) -> Result<PlaceHandle, SpawnError> {
    let key = format!("channel {}", endpoint.id());
    let place = place
        .downcast::<Place<S, R>>()
        .map_err(|_| mismatch(&key, TypeInfo::of::<S>(), TypeInfo::of::<R>(), "?", "?"))?;
    let handle = place.handle();
    crate::transport::relay(place.channel(), endpoint, None, None).map_err(|e| {
        SpawnError::Thread {
            key: key.clone(),
            source: std::io::Error::other(e),
        }
    })?;
    let watch = place.handle();
    std::thread::Builder::new()
        .name(format!("places thunk watcher {key}"))
        .spawn(move || on_finish(watch.wait()))
        .map_err(|source| SpawnError::Thread { key, source })?;
    Ok(handle)
}

fn mismatch(
    key: &str,
    receives: TypeInfo,
    sends: TypeInfo,
    asked_receives: &str,
    asked_sends: &str,
) -> SpawnError {
    SpawnError::TypeMismatch {
        key: key.to_owned(),
        entry_receives: receives.name().to_owned(),
        entry_sends: sends.name().to_owned(),
        asked_receives: asked_receives.to_owned(),
        asked_sends: asked_sends.to_owned(),
    }
}

/// Makes the place's end of a channel whose peer is on another node, for an entry's types.
pub type MakeRemoteFn = fn(Arc<Endpoint>) -> ErasedChannel;

fn make_remote<A: Message, B: Message>(endpoint: Arc<Endpoint>) -> ErasedChannel {
    Box::new(remote_channel::<A, B>(endpoint))
}

impl Entry {
    /// Builds an entry record. Used by the code `#[place]` generates.
    #[doc(hidden)]
    pub const fn new(
        key: EntryKey,
        file: &'static str,
        line: u32,
        types: EntryTypes,
        prepare: PrepareFn,
    ) -> Self {
        Self {
            key,
            file,
            line,
            receives: types.receives,
            sends: types.sends,
            kind: EntryKind::Function {
                make_remote: types.make_remote,
                prepare,
            },
        }
    }

    /// Builds the record of a thunk entry (`fn NAME() -> Place<S, R>`). Used by `#[place]`.
    #[doc(hidden)]
    pub const fn new_thunk(
        key: EntryKey,
        file: &'static str,
        line: u32,
        types: ThunkTypes,
        call: ThunkFn,
    ) -> Self {
        Self {
            key,
            file,
            line,
            receives: types.receives,
            sends: types.sends,
            kind: EntryKind::Thunk {
                call,
                bridge: types.bridge,
            },
        }
    }

    /// Checks that the entry exchanges the messages a caller asks for: it receives the type
    /// named `receives` and sends the type named `sends` (as `std::any::type_name` spells them;
    /// that is all a caller on another node can say).
    ///
    /// # Errors
    ///
    /// [`SpawnError::TypeMismatch`] naming both pairs of types.
    pub fn check_types(&self, receives: &str, sends: &str) -> Result<(), SpawnError> {
        if self.receives.name() == receives && self.sends.name() == sends {
            Ok(())
        } else {
            Err(self.mismatch(receives, sends))
        }
    }

    fn mismatch(&self, receives: &str, sends: &str) -> SpawnError {
        mismatch(
            &self.key.to_string(),
            self.receives,
            self.sends,
            receives,
            sends,
        )
    }

    /// Starts the entry in a new place of this process whose creator sends `S` and receives `R`.
    ///
    /// # Errors
    ///
    /// [`SpawnError::TypeMismatch`] for other message types (checked by type identity, not
    /// only by name), [`SpawnError::Thread`] if no thread can be started.
    pub(crate) fn start_local<S: Message, R: Message>(&self) -> Result<Place<S, R>, SpawnError> {
        let asked = (std::any::type_name::<S>(), std::any::type_name::<R>());
        if self.receives.id() != TypeId::of::<S>() || self.sends.id() != TypeId::of::<R>() {
            return Err(self.mismatch(asked.0, asked.1));
        }
        match self.kind {
            // A thunk entry starts its own place; it is the one the caller gets.
            EntryKind::Thunk { call, .. } => call()
                .downcast::<Place<S, R>>()
                .map(|p| *p)
                .map_err(|_| self.mismatch(asked.0, asked.1)),
            EntryKind::Function { prepare, .. } => {
                let (mine, theirs) = raw_pair::<S, R>();
                let erased: ErasedChannel = Box::new(theirs);
                let thunk = prepare(erased).map_err(|_| self.mismatch(asked.0, asked.1))?;
                crate::place::start(mine, thunk, &self.key.to_string())
            }
        }
    }

    /// The key the entry is registered under.
    pub fn key(&self) -> EntryKey {
        self.key
    }

    /// Where the entry is defined, as `file:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The type of the messages the place receives from its creator.
    pub fn receives(&self) -> TypeInfo {
        self.receives
    }

    /// The type of the messages the place sends to its creator.
    pub fn sends(&self) -> TypeInfo {
        self.sends
    }

    /// Starts the entry in a new place whose channel's peer is on another node, on `endpoint`
    /// (registered by the caller), after checking the caller's message types as
    /// [`check_types`](Self::check_types) does. `on_finish` runs with the place's completion
    /// value once it has ended. Used by the network layer's router.
    ///
    /// # Errors
    ///
    /// [`SpawnError::TypeMismatch`], or [`SpawnError::Thread`] if the operating system cannot
    /// start another thread.
    pub fn start_remote(
        &self,
        receives: &str,
        sends: &str,
        endpoint: Arc<Endpoint>,
        on_finish: Box<dyn FnOnce(i32) + Send>,
    ) -> Result<PlaceHandle, SpawnError> {
        self.check_types(receives, sends)?;
        let (make_remote, prepare) = match self.kind {
            EntryKind::Function {
                make_remote,
                prepare,
            } => (make_remote, prepare),
            // The thunk starts its place; the place's channel is relayed to the connection.
            EntryKind::Thunk { call, bridge } => return bridge(call(), endpoint, on_finish),
        };
        let thunk = prepare(make_remote(endpoint)).map_err(|_| self.mismatch(receives, sends))?;
        crate::place::start_handle(thunk, &self.key.to_string(), Some(on_finish))
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key.to_string())
            .field("location", &self.location())
            .field("receives", &self.receives)
            .field("sends", &self.sends)
            .finish()
    }
}

/// The message types of an entry, read off the entry function's signature.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct EntryTypes {
    receives: TypeInfo,
    sends: TypeInfo,
    make_remote: MakeRemoteFn,
}

impl EntryTypes {
    /// Reads the message types off an entry function `fn(PlaceChannel<A, B>) -> C`: the place sends
    /// `A` and receives `B`.
    pub const fn of<A: Message, B: Message, C>(_entry: fn(PlaceChannel<A, B>) -> C) -> Self {
        Self {
            receives: TypeInfo::of::<B>(),
            sends: TypeInfo::of::<A>(),
            make_remote: make_remote::<A, B>,
        }
    }
}

/// The message types of a thunk entry `fn() -> Place<S, R>`: its creator sends `S` and
/// receives `R`.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct ThunkTypes {
    receives: TypeInfo,
    sends: TypeInfo,
    bridge: BridgeFn,
}

impl ThunkTypes {
    /// Reads the types off the thunk's signature.
    pub const fn of<S: Message, R: Message>(_entry: fn() -> crate::place::Place<S, R>) -> Self {
        Self {
            receives: TypeInfo::of::<S>(),
            sends: TypeInfo::of::<R>(),
            bridge: bridge_place::<S, R>,
        }
    }
}

inventory::collect!(Entry);

enum Slot {
    One(&'static Entry),
    Duplicate(&'static Entry, &'static Entry),
}

/// Entries by module, then by name: two-level so that a lookup by borrowed `&str`s needs no
/// allocation.
struct Registry {
    by_module: HashMap<&'static str, HashMap<&'static str, Slot>>,
}

impl Registry {
    fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.by_module.values().flat_map(|names| names.values())
    }
}

impl Slot {
    fn key(&self) -> EntryKey {
        match self {
            Slot::One(e) | Slot::Duplicate(e, _) => e.key,
        }
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut by_module: HashMap<&'static str, HashMap<&'static str, Slot>> = HashMap::new();
        for entry in inventory::iter::<Entry> {
            by_module
                .entry(entry.key.module)
                .or_default()
                .entry(entry.key.name)
                .and_modify(|slot| {
                    if let Slot::One(first) = *slot {
                        *slot = Slot::Duplicate(first, entry);
                    }
                })
                .or_insert(Slot::One(entry));
        }
        Registry { by_module }
    })
}

/// Every entry registered in this executable, sorted by key.
///
/// # Examples
///
/// ```
/// for entry in places::entries() {
///     println!("{} receives {}", entry.key(), entry.receives().name());
/// }
/// ```
pub fn entries() -> Vec<&'static Entry> {
    let mut all: Vec<&'static Entry> = inventory::iter::<Entry>.into_iter().collect();
    all.sort_by_key(|e| e.key);
    all
}

/// Starts the entry registered under `module::name` in a new place.
///
/// This is Racket's `dynamic-place`: the entry is found at run time, by the key `#[place]`
/// registered it under (`module_path!()` of its definition and its function name). `S` is what
/// the caller sends and the place receives; `R` is what the place sends back.
///
/// # Errors
///
/// - [`SpawnError::UnknownEntry`] if no entry has that key; the error lists the nearest keys.
/// - [`SpawnError::TypeMismatch`] if the entry exchanges other message types; the error names both.
/// - [`SpawnError::Duplicate`] if two definitions claim the key.
/// - [`SpawnError::Thread`] if the operating system cannot start another thread.
///
/// # Examples
///
/// ```
/// use places::{dynamic_place, place, Place, PlaceChannel};
///
/// #[place]
/// pub fn greeter(ch: PlaceChannel<String>) {
///     let name = ch.get().unwrap();
///     ch.put(format!("Hello, {name}")).unwrap();
/// }
///
/// let p: Place<String> = dynamic_place(module_path!(), "greeter").unwrap();
/// assert_eq!(p.put_get("places".into()).unwrap(), "Hello, places");
///
/// let wrong = dynamic_place::<u8, u8>(module_path!(), "greeter");
/// assert!(wrong.unwrap_err().to_string().contains("other messages"));
/// ```
pub fn dynamic_place<S: Message, R: Message>(
    module: &str,
    name: &str,
) -> Result<Place<S, R>, SpawnError> {
    crate::node_mode::refuse_stray();
    lookup(module, name)?.start_local()
}

/// Finds the entry registered under `module::name`.
///
/// # Errors
///
/// [`SpawnError::UnknownEntry`] (with the nearest registered keys) when nothing is registered
/// under the key, [`SpawnError::Duplicate`] when two definitions claim it.
pub fn lookup(module: &str, name: &str) -> Result<&'static Entry, SpawnError> {
    let found = registry()
        .by_module
        .get(module)
        .and_then(|names| names.get(name));
    match found {
        Some(Slot::One(entry)) => Ok(entry),
        Some(Slot::Duplicate(first, second)) => Err(SpawnError::Duplicate {
            key: first.key.to_string(),
            first: first.location(),
            second: second.location(),
        }),
        None => Err(SpawnError::UnknownEntry {
            key: format!("{module}::{name}"),
            nearest: nearest_keys(module, name, 3),
        }),
    }
}

/// The registered keys spelled most like `module::name`, nearest first.
fn nearest_keys(module: &str, name: &str, count: usize) -> Vec<String> {
    let wanted = format!("{module}::{name}");
    let mut scored: Vec<(f64, String)> = registry()
        .slots()
        .map(|slot| {
            let k = slot.key();
            let full = k.to_string();
            // The name counts for more than the module: a right name in the wrong module is the
            // commonest mistake (`module_path!()` of another file).
            let score = strsim::normalized_levenshtein(&wanted, &full)
                .max(strsim::normalized_levenshtein(name, k.name) * 0.9);
            (score, full)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.into_iter().take(count).map(|(_, k)| k).collect()
}

/// Checks the whole registry once, for example at start-up.
///
/// # Errors
///
/// The first [`SpawnError::Duplicate`] found, naming both definitions.
pub fn check_registry() -> Result<(), SpawnError> {
    let mut dups: Vec<&Slot> = registry()
        .slots()
        .filter(|s| matches!(s, Slot::Duplicate(..)))
        .collect();
    dups.sort_by_key(|s| s.key());
    match dups.first() {
        Some(Slot::Duplicate(first, second)) => Err(SpawnError::Duplicate {
            key: first.key.to_string(),
            first: first.location(),
            second: second.location(),
        }),
        _ => crate::procedure::check_procedures(),
    }
}
