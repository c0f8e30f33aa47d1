//! Procedure addresses: plain functions `fn(Input) -> Output` registered by `#[procedure]`
//! under their module path and name (the dissertation's `(list (quote-module-path) 'mapper)`),
//! so that any node running the same program can call them by address.
//!
//! An address ([`ProcAddr`]) is a small serializable value: two strings, and the input and
//! output types in its type, which [`ProcAddr::check`] compares with the registered function's
//! before any work is sent. `#[procedure(mapper)]` and `#[procedure(reducer)]` also register
//! the key-value operations a MapReduce worker runs on encoded data: sorting and coalescing a
//! mapper's output, and merging two reduced lists.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::codec::{self, Packed};
use crate::error::CodecError;
use crate::message::Message;
use crate::registry::{EntryKey, TypeInfo};

/// What a procedure was registered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcedureKind {
    /// `#[procedure]`: any `fn(I) -> O`.
    Plain,
    /// `#[procedure(mapper)]`: `fn(Vec<(K1, V1)>) -> Vec<(K2, V2)>` with `K2: Ord`.
    Mapper,
    /// `#[procedure(reducer)]`: `fn(Vec<(K, Vec<V>)>) -> Vec<(K, Vec<V>)>` with `K: Ord`.
    Reducer,
}

impl fmt::Display for ProcedureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProcedureKind::Plain => "procedure",
            ProcedureKind::Mapper => "mapper",
            ProcedureKind::Reducer => "reducer",
        })
    }
}

/// Calls a procedure on a moved value (the box holds its input; the result's box its output).
pub type AnyCall = fn(Box<dyn Any + Send>) -> Box<dyn Any + Send>;
/// Calls a procedure on encoded input and encodes its output (what another node sends).
pub type EncodedCall = fn(&[u8]) -> Result<Vec<u8>, CodecError>;
/// Merges two encoded reduced lists and reduces the result (a reducer's merge).
pub type EncodedMerge = fn(&[u8], &[u8]) -> Result<Vec<u8>, CodecError>;

/// The key-value operations a mapper or reducer registers.
#[derive(Clone, Copy)]
pub enum KvOps {
    /// None: a plain procedure.
    None,
    /// A mapper's: map, then sort by key and coalesce equal keys' values.
    Mapper {
        /// Encoded input to encoded `Vec<(K, Vec<V>)>`, sorted by key.
        map_sorted: EncodedCall,
    },
    /// A reducer's: reduce one sorted list, and merge two.
    Reducer {
        /// Reduces an encoded sorted list.
        reduce: EncodedCall,
        /// Merges two encoded sorted lists key by key, then reduces.
        merge: EncodedMerge,
    },
}

/// One registered procedure; `#[procedure]` builds these.
pub struct ProcedureEntry {
    key: EntryKey,
    file: &'static str,
    line: u32,
    input: TypeInfo,
    output: TypeInfo,
    call: AnyCall,
    encoded: EncodedCall,
    /// Unpacks an input (an `I`, boxed).
    unpack: fn(Packed) -> Result<Box<dyn Any + Send>, CodecError>,
    /// Packs an output (a boxed `O`).
    pack: fn(Box<dyn Any + Send>) -> Result<Packed, CodecError>,
    kv: KvOps,
}

impl ProcedureEntry {
    /// An entry for the function `key` that takes `I` and returns `O` (what `#[procedure]`
    /// generates).
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn new<I: Message, O: Message>(
        key: EntryKey,
        file: &'static str,
        line: u32,
        call: AnyCall,
        encoded: EncodedCall,
        kv: KvOps,
    ) -> Self {
        Self {
            key,
            file,
            line,
            input: TypeInfo::of::<I>(),
            output: TypeInfo::of::<O>(),
            call,
            encoded,
            unpack: support::unpack_any::<I>,
            pack: support::pack_any::<O>,
            kv,
        }
    }

    /// Its module path and name.
    pub fn key(&self) -> EntryKey {
        self.key
    }

    /// What it was registered as.
    pub fn kind(&self) -> ProcedureKind {
        match self.kv {
            KvOps::None => ProcedureKind::Plain,
            KvOps::Mapper { .. } => ProcedureKind::Mapper,
            KvOps::Reducer { .. } => ProcedureKind::Reducer,
        }
    }

    /// Its input type's name.
    pub fn input(&self) -> &'static str {
        self.input.name()
    }

    /// Its output type's name.
    pub fn output(&self) -> &'static str {
        self.output.name()
    }

    /// Calls it on encoded input, returning its encoded output. Input is read with
    /// [`codec::decode_with_raw`] (so both [`codec::encode`] and [`codec::encode_with_raw`]
    /// bytes are taken) and output written with [`codec::encode_with_raw`].
    ///
    /// # Errors
    ///
    /// [`CodecError`] when the input does not decode as the procedure's input type.
    pub fn call_encoded(&self, input: &[u8]) -> Result<Vec<u8>, CodecError> {
        (self.encoded)(input)
    }

    /// Calls it on a packed input, returning its packed output: a numeric or byte vector is
    /// neither copied in nor out (see [`Packed`]).
    ///
    /// # Errors
    ///
    /// [`CodecError`] when the input does not hold the procedure's input type.
    pub fn call_packed(&self, input: Packed) -> Result<Packed, CodecError> {
        (self.pack)((self.call)((self.unpack)(input)?))
    }

    /// The key-value operations of a mapper or reducer.
    pub fn kv(&self) -> KvOps {
        self.kv
    }

    /// Where it is defined, `file:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

impl fmt::Debug for ProcedureEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcedureEntry")
            .field("key", &self.key.to_string())
            .field("kind", &self.kind())
            .field("input", &self.input())
            .field("output", &self.output())
            .field("at", &self.location())
            .finish()
    }
}

inventory::collect!(ProcedureEntry);

fn procedures() -> &'static BTreeMap<EntryKey, &'static ProcedureEntry> {
    static TABLE: OnceLock<BTreeMap<EntryKey, &'static ProcedureEntry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        // A key registered twice keeps its first entry; `check_procedures` reports the clash.
        let mut t = BTreeMap::new();
        for e in inventory::iter::<ProcedureEntry> {
            t.entry(e.key).or_insert(e);
        }
        t
    })
}

/// The first key two procedures are registered under, as [`SpawnError::Duplicate`]
/// (part of [`check_registry`](crate::check_registry), which `#[places::main]` runs).
pub(crate) fn check_procedures() -> Result<(), crate::SpawnError> {
    let mut seen: BTreeMap<EntryKey, &'static ProcedureEntry> = BTreeMap::new();
    for e in inventory::iter::<ProcedureEntry> {
        if let Some(first) = seen.insert(e.key, e) {
            return Err(crate::SpawnError::Duplicate {
                key: e.key.to_string(),
                first: first.location(),
                second: e.location(),
            });
        }
    }
    Ok(())
}

/// Every registered procedure, by key.
pub fn procedure_entries() -> impl Iterator<Item = &'static ProcedureEntry> {
    procedures().values().copied()
}

/// The procedure registered as `module::name`, whatever its types (what a worker that got an
/// address over the network looks up; the sender checked the types).
pub fn lookup_procedure(module: &str, name: &str) -> Option<&'static ProcedureEntry> {
    procedures()
        .iter()
        .find(|(k, _)| k.module() == module && k.name() == name)
        .map(|(_, e)| *e)
}

/// Why a procedure address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcError {
    /// No procedure is registered at the address.
    #[error("no procedure is registered at `{address}` (register it with #[places::procedure])")]
    Unknown {
        /// The address, `module::name`.
        address: String,
    },
    /// The procedure takes or returns other types than the address says.
    #[error(
        "procedure `{address}` is `fn({found_input}) -> {found_output}`, \
         but it is used as `fn({expected_input}) -> {expected_output}`"
    )]
    Types {
        /// The address.
        address: String,
        /// The input type the caller expects.
        expected_input: String,
        /// The output type the caller expects.
        expected_output: String,
        /// The registered input type.
        found_input: String,
        /// The registered output type.
        found_output: String,
    },
    /// The procedure is registered as another kind than it is used as.
    #[error("procedure `{address}` is registered as a {found}, but it is used as a {expected}: write #[places::procedure({expected})]")]
    Kind {
        /// The address.
        address: String,
        /// The kind the caller needs.
        expected: ProcedureKind,
        /// The kind it was registered as.
        found: ProcedureKind,
    },
}

/// The address of a procedure that takes `I` and returns `O`: its module path and name. It is
/// small and serializable, so it travels to other nodes, which find the procedure in their
/// copy of the program.
///
/// # Examples
///
/// ```
/// #[places::procedure]
/// fn double(x: u64) -> u64 {
///     2 * x
/// }
///
/// // `proc_addr!(double)` takes the address of `double` in this module, typed by it.
/// let addr = places::proc_addr!(double);
/// assert_eq!(addr.to_string(), format!("{}::double", module_path!()));
/// assert_eq!(addr.call(21).unwrap(), 42);
///
/// // An address typed otherwise is refused before anything is called.
/// let wrong: places::ProcAddr<String, u64> = places::ProcAddr::new(module_path!(), "double");
/// assert!(wrong.check().unwrap_err().to_string().contains("fn(u64) -> u64"));
/// ```
#[derive(Serialize, Deserialize)]
pub struct ProcAddr<I, O> {
    module: String,
    name: String,
    #[serde(skip)]
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for ProcAddr<I, O> {
    fn clone(&self) -> Self {
        Self {
            module: self.module.clone(),
            name: self.name.clone(),
            _types: PhantomData,
        }
    }
}

impl<I, O> fmt::Debug for ProcAddr<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProcAddr({}::{})", self.module, self.name)
    }
}

impl<I, O> fmt::Display for ProcAddr<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.module, self.name)
    }
}

impl<I: Message, O: Message> ProcAddr<I, O> {
    /// The address of the procedure `name` in the module `module` (as `module_path!()` spells
    /// it). Nothing is looked up yet; [`check`](Self::check) does.
    pub fn new(module: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            module: module.into(),
            name: name.into(),
            _types: PhantomData,
        }
    }

    /// The address of `f`, named `name` in `module`, typed by `f` (what `proc_addr!(f)`
    /// expands to).
    #[doc(hidden)]
    pub fn of(module: &str, name: &str, _f: fn(I) -> O) -> Self {
        Self::new(module, name)
    }

    /// The module path.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registered procedure, after checking that it exists and takes `I` and returns `O`.
    ///
    /// # Errors
    ///
    /// [`ProcError::Unknown`], [`ProcError::Types`] naming the address and both types.
    pub fn check(&self) -> Result<&'static ProcedureEntry, ProcError> {
        let entry =
            lookup_procedure(&self.module, &self.name).ok_or_else(|| ProcError::Unknown {
                address: self.to_string(),
            })?;
        if entry.input.id() != TypeId::of::<I>() || entry.output.id() != TypeId::of::<O>() {
            return Err(ProcError::Types {
                address: self.to_string(),
                expected_input: std::any::type_name::<I>().to_owned(),
                expected_output: std::any::type_name::<O>().to_owned(),
                found_input: entry.input().to_owned(),
                found_output: entry.output().to_owned(),
            });
        }
        Ok(entry)
    }

    /// [`check`](Self::check), and that it was registered as `kind`.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check), and [`ProcError::Kind`].
    pub fn check_kind(&self, kind: ProcedureKind) -> Result<&'static ProcedureEntry, ProcError> {
        let entry = self.check()?;
        if entry.kind() != kind {
            return Err(ProcError::Kind {
                address: self.to_string(),
                expected: kind,
                found: entry.kind(),
            });
        }
        Ok(entry)
    }

    /// Calls the procedure here, on `input`.
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    pub fn call(&self, input: I) -> Result<O, ProcError> {
        let entry = self.check()?;
        let out = (entry.call)(Box::new(input));
        Ok(*out
            .downcast::<O>()
            .unwrap_or_else(|_| unreachable!("the entry's output type was checked")))
    }
}

/// What `#[procedure]` expansions call: typed shims over the user's function.
#[doc(hidden)]
pub mod support {
    use super::*;

    /// Calls `f` on a boxed `I`.
    pub fn call_any<I: Message, O: Message>(
        input: Box<dyn Any + Send>,
        f: fn(I) -> O,
    ) -> Box<dyn Any + Send> {
        match input.downcast::<I>() {
            Ok(i) => Box::new(f(*i)),
            Err(_) => unreachable!("a procedure's input type is checked before it is called"),
        }
    }

    /// Unpacks an `I`, boxed.
    pub fn unpack_any<I: Message>(input: Packed) -> Result<Box<dyn Any + Send>, CodecError> {
        Ok(Box::new(input.unpack::<I>()?))
    }

    /// Packs a boxed `O`.
    pub fn pack_any<O: Message>(output: Box<dyn Any + Send>) -> Result<Packed, CodecError> {
        match output.downcast::<O>() {
            Ok(o) => Packed::pack(*o),
            Err(_) => unreachable!("a procedure's call returns its output type"),
        }
    }

    /// Decodes an `I`, calls `f`, encodes the `O` (both with [`codec::decode_with_raw`] and
    /// [`codec::encode_with_raw`], so that numeric vectors pass as raw bytes).
    pub fn call_encoded<I: Message, O: Message>(
        input: &[u8],
        f: fn(I) -> O,
    ) -> Result<Vec<u8>, CodecError> {
        codec::encode_with_raw(&f(codec::decode_with_raw::<I>(input)?))
    }

    /// Sorts key-value pairs by key (stably) and coalesces equal keys' values, in order:
    /// `[("house",1),("car",1),("house",1)]` becomes `[("car",[1]),("house",[1,1])]`.
    pub fn coalesce<K: Ord, V>(mut kvs: Vec<(K, V)>) -> Vec<(K, Vec<V>)> {
        kvs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(K, Vec<V>)> = Vec::new();
        for (k, v) in kvs {
            match out.last_mut() {
                Some((last, vs)) if *last == k => vs.push(v),
                _ => out.push((k, vec![v])),
            }
        }
        out
    }

    /// Merges two lists sorted by key: equal keys' values are concatenated (the left's first).
    pub fn merge_sorted<K: Ord, V>(a: Vec<(K, Vec<V>)>, b: Vec<(K, Vec<V>)>) -> Vec<(K, Vec<V>)> {
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                    std::cmp::Ordering::Less => a.next(),
                    std::cmp::Ordering::Greater => b.next(),
                    std::cmp::Ordering::Equal => {
                        let (k, mut vs) = a.next().unwrap_or_else(|| unreachable!("peeked"));
                        let (_, more) = b.next().unwrap_or_else(|| unreachable!("peeked"));
                        vs.extend(more);
                        Some((k, vs))
                    }
                },
            };
            out.extend(next);
        }
        out
    }

    /// A list of key-value pairs, `Vec<(K, V)>`: what mappers take and return.
    #[diagnostic::on_unimplemented(
        message = "a mapper takes and returns key-value lists `Vec<(K, V)>`, not `{Self}`",
        label = "not a `Vec<(K, V)>`",
        note = "write `#[procedure(mapper)] fn NAME(input: Vec<(K1, V1)>) -> Vec<(K2, V2)>` with `K2: Ord`, or use a plain `#[procedure]`"
    )]
    pub trait KeyValues: Message {
        /// The key type.
        type K: Message;
        /// The value type.
        type V: Message;
        /// The pairs.
        fn into_pairs(self) -> Vec<(Self::K, Self::V)>;
    }

    impl<K: Message, V: Message> KeyValues for Vec<(K, V)> {
        type K = K;
        type V = V;
        fn into_pairs(self) -> Vec<(K, V)> {
            self
        }
    }

    /// A sorted list of keys with their values, `Vec<(K, Vec<V>)>`: what reducers take and
    /// return.
    #[diagnostic::on_unimplemented(
        message = "a reducer takes and returns `Vec<(K, Vec<V>)>` with `K: Ord`, not `{Self}`",
        label = "not a `Vec<(K, Vec<V>)>` with an `Ord` key",
        note = "write `#[procedure(reducer)] fn NAME(input: Vec<(K, Vec<V>)>) -> Vec<(K, Vec<V>)>`, or use a plain `#[procedure]`"
    )]
    pub trait Grouped: Message + From<Vec<(Self::K, Vec<Self::V>)>> {
        /// The key type.
        type K: Message + Ord;
        /// The value type.
        type V: Message;
        /// The groups.
        fn into_groups(self) -> Vec<(Self::K, Vec<Self::V>)>;
    }

    impl<K: Message + Ord, V: Message> Grouped for Vec<(K, Vec<V>)> {
        type K = K;
        type V = V;
        fn into_groups(self) -> Vec<(K, Vec<V>)> {
            self
        }
    }

    /// The keys a mapper returns must be ordered, to be sorted.
    #[diagnostic::on_unimplemented(
        message = "a mapper's output keys are sorted, so `{Self}` must be `Ord`",
        note = "return `Vec<(K, V)>` with a key type that is `Ord` (`String`, integers, tuples of them, ...)"
    )]
    pub trait SortableKey: Ord {}
    impl<K: Ord> SortableKey for K {}

    /// A mapper's sorted map on encoded input.
    pub fn map_sorted<I: KeyValues, O: KeyValues>(
        input: &[u8],
        f: fn(I) -> O,
    ) -> Result<Vec<u8>, CodecError>
    where
        O::K: SortableKey,
    {
        codec::encode(&coalesce(f(codec::decode(input)?).into_pairs()))
    }

    /// A reducer on an encoded sorted list.
    pub fn reduce_encoded<I: Grouped, O: Grouped>(
        input: &[u8],
        f: fn(I) -> O,
    ) -> Result<Vec<u8>, CodecError> {
        codec::encode(&f(codec::decode(input)?))
    }

    /// A reducer's merge of two encoded sorted lists.
    pub fn merge_encoded<G: Grouped>(
        a: &[u8],
        b: &[u8],
        f: fn(G) -> G,
    ) -> Result<Vec<u8>, CodecError> {
        let a: G = codec::decode(a)?;
        let b: G = codec::decode(b)?;
        let merged = merge_sorted(a.into_groups(), b.into_groups());
        codec::encode(&f(G::from(merged)))
    }
}

#[cfg(test)]
mod tests {
    use super::support::*;

    #[test]
    fn coalescing_sorts_by_key_and_keeps_value_order() {
        let kvs = vec![("house", 1), ("car", 1), ("house", 2)];
        assert_eq!(coalesce(kvs), vec![("car", vec![1]), ("house", vec![1, 2])]);
        assert!(coalesce(Vec::<(u8, u8)>::new()).is_empty());
    }

    #[test]
    fn merging_two_sorted_lists_joins_equal_keys() {
        let a = vec![("a", vec![1]), ("c", vec![3])];
        let b = vec![("b", vec![2]), ("c", vec![4, 5]), ("d", vec![6])];
        assert_eq!(
            merge_sorted(a, b),
            vec![
                ("a", vec![1]),
                ("b", vec![2]),
                ("c", vec![3, 4, 5]),
                ("d", vec![6])
            ]
        );
    }
}
