//! Reads `#[place(...)] fn NAME(ch: PlaceChannel<S, R>) [-> ()|i32] { .. }` into an [`EntryFn`],
//! reporting every misuse at once.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Item, ItemFn, PathArguments, ReturnType, Type};

use crate::errors::Errors;

/// A checked place entry.
pub(crate) struct EntryFn {
    pub(crate) func: ItemFn,
    /// The type of the channel parameter (or, for a thunk, the returned place), for spans of
    /// generated bound checks.
    pub(crate) channel_ty: Type,
    pub(crate) shape: Shape,
    pub(crate) krate: syn::Path,
}

/// The two kinds of entry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `fn NAME(ch: PlaceChannel<S, R>)`: the runtime starts a place running it.
    Function,
    /// `fn NAME() -> Place<S, R>` (Racket's `#:thunk`): it starts the place itself.
    Thunk,
}

const SHAPE: &str = "fn NAME(ch: PlaceChannel<S, R>)";

pub(crate) fn parse(args: TokenStream, item: TokenStream) -> syn::Result<EntryFn> {
    let mut errors = Errors::default();
    let overridden = crate::crate_path::parse_crate_arg(args, "#[place]", &mut errors);
    let func = match syn::parse2::<Item>(item)? {
        Item::Fn(func) => func,
        other => {
            return Err(syn::Error::new(
                item_keyword_span(&other),
                format!("`#[place]` goes on a function: `{SHAPE}`"),
            ))
        }
    };
    // A function without parameters that returns a place is a thunk entry.
    if func.sig.inputs.is_empty() {
        if let ReturnType::Type(_, ty) = &func.sig.output {
            if is_path_to(ty, "Place") {
                check_qualifiers(&func, &mut errors);
                errors.finish()?;
                return Ok(EntryFn {
                    channel_ty: (**ty).clone(),
                    func,
                    shape: Shape::Thunk,
                    krate: crate::crate_path::runtime_path(overridden),
                });
            }
        }
    }
    let channel_ty = check_signature(&func, &mut errors);
    errors.finish()?;
    Ok(EntryFn {
        func,
        channel_ty: channel_ty.unwrap_or_else(|| syn::parse_quote!(())),
        shape: Shape::Function,
        krate: crate::crate_path::runtime_path(overridden),
    })
}

fn item_keyword_span(item: &Item) -> proc_macro2::Span {
    let tokens = quote::ToTokens::to_token_stream(item);
    // The span of the whole item would underline pages; the first tokens say enough.
    tokens
        .into_iter()
        .find(|t| {
            !matches!(
                t,
                proc_macro2::TokenTree::Punct(_) | proc_macro2::TokenTree::Group(_)
            )
        })
        .map_or_else(proc_macro2::Span::call_site, |t| t.span())
}

/// Checks everything about the signature; returns the channel type when it is one.
fn check_signature(func: &ItemFn, errors: &mut Errors) -> Option<Type> {
    check_qualifiers(func, errors);
    let channel_ty = check_parameter(func, errors);
    check_return(&func.sig.output, errors);
    channel_ty
}

/// What every entry must not be: async, const, unsafe, extern, generic, variadic.
fn check_qualifiers(func: &ItemFn, errors: &mut Errors) {
    let sig = &func.sig;
    if let Some(t) = &sig.asyncness {
        errors.error_spanned_by(
            t,
            "a place entry cannot be `async`: a place runs on its own thread; write a plain `fn` \
             and, for async code inside, await `ch.recv()` in a runtime you build there",
        );
    }
    if let Some(t) = &sig.constness {
        errors.error_spanned_by(t, "a place entry cannot be `const`; remove `const`");
    }
    if let Some(t) = &sig.unsafety {
        errors.error_spanned_by(
            t,
            "a place entry cannot be `unsafe`: it is called by the runtime; remove `unsafe` and use an `unsafe` block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.error_spanned_by(abi, "a place entry cannot have an `extern` ABI; remove it");
    }
    if !sig.generics.params.is_empty() {
        errors.error_spanned_by(
            &sig.generics,
            "a place entry cannot be generic: it is started by name, so its message types must be \
             fixed; remove the generic parameters and write concrete types in `PlaceChannel<S, R>`",
        );
    } else if let Some(w) = &sig.generics.where_clause {
        errors.error_spanned_by(
            w,
            "a place entry cannot have a `where` clause: it is started by name, so its signature \
             must be concrete; remove the `where` clause",
        );
    }
    if let Some(v) = &sig.variadic {
        errors.error_spanned_by(v, format!("a place entry is not variadic: write `{SHAPE}`"));
    }
}

/// `NAME<..>` with 1 or 2 type arguments, possibly with a path in front.
fn is_path_to(ty: &Type, name: &str) -> bool {
    let Type::Path(tp) = ty else { return false };
    if tp.qself.is_some() {
        return false;
    }
    let Some(last) = tp.path.segments.last() else {
        return false;
    };
    if last.ident != name {
        return false;
    }
    match &last.arguments {
        PathArguments::AngleBracketed(args) => {
            (1..=2).contains(&args.args.len())
                && args
                    .args
                    .iter()
                    .all(|a| matches!(a, GenericArgument::Type(_)))
        }
        _ => false,
    }
}

fn check_parameter(func: &ItemFn, errors: &mut Errors) -> Option<Type> {
    let sig = &func.sig;
    let mut params = sig.inputs.iter();
    let (first, extra) = (params.next(), params.next());
    let Some(first) = first else {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!(
                "a place entry takes one parameter, its place channel: `{SHAPE}` \
                 (or, to start the place itself, `fn NAME() -> Place<S, R>`)"
            ),
        ));
        return None;
    };
    // A `self` receiver is its own mistake; counting it as an extra parameter would blame the
    // channel parameter that is right.
    if extra.is_some() && !matches!(first, FnArg::Receiver(_)) {
        let rest: Vec<&FnArg> = sig.inputs.iter().skip(1).collect();
        errors.error_spanned_by(
            quote::quote!(#(#rest),*),
            format!(
                "a place entry takes exactly one parameter, its place channel: `{SHAPE}`; \
                 send other values as messages on the channel"
            ),
        );
    }
    match first {
        FnArg::Receiver(r) => {
            errors.error_spanned_by(
                r,
                format!("a place entry cannot take `self`: write a free function `{SHAPE}`"),
            );
            None
        }
        FnArg::Typed(pt) => {
            if is_place_channel(&pt.ty) {
                Some((*pt.ty).clone())
            } else {
                let alias_hint = if may_be_alias(&pt.ty) {
                    "; `#[place]` reads the type as written and cannot see through a type alias, \
                     so spell out `PlaceChannel<..>`"
                } else {
                    ""
                };
                errors.error_spanned_by(
                    &pt.ty,
                    format!(
                        "the parameter of a place entry must be a place channel, `PlaceChannel<S, R>`, \
                         where the place sends `S` and receives `R` (`PlaceChannel<T>` when both are `T`)\
                         {alias_hint}"
                    ),
                );
                None
            }
        }
    }
}

/// A plain named type other than `PlaceChannel<..>` or a primitive: possibly an alias of a channel.
fn may_be_alias(ty: &Type) -> bool {
    const PRIMITIVES: &[&str] = &[
        "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32",
        "i64", "i128", "isize", "f32", "f64",
    ];
    let Type::Path(tp) = ty else { return false };
    tp.qself.is_none()
        && tp.path.segments.last().is_some_and(|last| {
            last.ident != "PlaceChannel"
                && last.ident != "RmpiChannel"
                && !PRIMITIVES.iter().any(|p| last.ident == p)
        })
}

/// `PlaceChannel<S>` or `PlaceChannel<S, R>`, possibly with a path in front; or RMPI's alias
/// of one, `RmpiChannel<A>` or `RmpiChannel<A, R>` (the types come from the function itself, so
/// an alias that is not a channel still fails to compile, at the parameter).
fn is_place_channel(ty: &Type) -> bool {
    is_path_to(ty, "PlaceChannel") || is_path_to(ty, "RmpiChannel")
}

fn check_return(output: &ReturnType, errors: &mut Errors) {
    let ReturnType::Type(_, ty) = output else {
        return;
    };
    let ok = match &**ty {
        Type::Tuple(t) => t.elems.is_empty(),
        Type::Path(p) => p.qself.is_none() && p.path.is_ident("i32"),
        _ => false,
    };
    if !ok {
        errors.push(syn::Error::new(
            ty.span(),
            "a place entry returns `()` or an exit code `i32` (its completion value); \
             send results to the creator as messages on the channel",
        ));
    }
}
