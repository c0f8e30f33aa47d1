//! The model of a server definition, read straight from the tokens:
//!
//! ```text
//! [crate = path;] #[attrs] [vis] NAME {
//!     state NAME: TYPE = EXPR;
//!     #[attrs] rpc fn NAME(ARG: TYPE, ..) [-> TYPE] BLOCK
//!     #[attrs] cast fn NAME(ARG: TYPE, ..) BLOCK
//! }
//! ```

use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Block, Expr, FnArg, Ident, Pat, ReturnType, Token, Type, Visibility};

use super::Flavor;

/// A whole server.
#[derive(Clone)]
pub(crate) struct Server {
    pub(crate) krate: Option<syn::Path>,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    pub(crate) states: Vec<State>,
    pub(crate) methods: Vec<Method>,
    /// Problems found while reading items, reported with the checks.
    pub(crate) errors: Vec<syn::Error>,
}

/// `state NAME: TYPE = EXPR;`
#[derive(Clone)]
pub(crate) struct State {
    pub(crate) name: Ident,
    pub(crate) ty: Option<Type>,
    pub(crate) init: Option<Expr>,
}

/// The two kinds of method.
#[derive(Clone)]
pub(crate) enum MethodKind {
    /// Answers with the body's value.
    Rpc { output: Box<Type> },
    /// Answers nothing.
    Cast,
}

/// `rpc fn` or `cast fn`.
#[derive(Clone)]
pub(crate) struct Method {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) kind: MethodKind,
    pub(crate) name: Ident,
    pub(crate) args: Vec<Arg>,
    pub(crate) body: Block,
}

/// One argument.
#[derive(Clone)]
pub(crate) struct Arg {
    pub(crate) name: Ident,
    pub(crate) ty: Type,
}

impl Server {
    /// Reads one server; messages name the macro of `flavor`.
    pub(crate) fn parse(input: ParseStream<'_>, flavor: Flavor) -> syn::Result<Self> {
        let mac = flavor.macro_name();
        let krate = crate::crate_path::parse_crate_override::<Token![;]>(input, ";", "the server")?;
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected the server's name: `{mac} {{ bank {{ .. }} }}`"),
            )
        })?;
        if !input.peek(syn::token::Brace) {
            return Err(input.error(format!(
                "expected the server's items in braces after its name: `{name} {{ state ..; rpc fn ..; cast fn .. }}`"
            )));
        }
        let content;
        syn::braced!(content in input);
        let mut server = Server {
            krate,
            attrs,
            vis,
            name,
            states: Vec::new(),
            methods: Vec::new(),
            errors: Vec::new(),
        };
        while !content.is_empty() {
            parse_item(&content, &mut server)?;
        }
        if !input.is_empty() {
            return Err(input.error(format!(
                "expected one server per `{mac}`; write each server in a `{mac}` of its own"
            )));
        }
        Ok(server)
    }
}

/// The name of a state item or method; a keyword there is named as such.
fn item_name(input: ParseStream<'_>, what: &str, form: &str) -> syn::Result<Ident> {
    input.parse::<Ident>().map_err(|e| {
        let message = match input.fork().call(<Ident as syn::ext::IdentExt>::parse_any) {
            Ok(k) => format!("`{k}` is a keyword and cannot name {what}; choose another name"),
            Err(_) => format!("expected the name of {what}: `{form}`"),
        };
        syn::Error::new(e.span(), message)
    })
}

fn parse_item(input: ParseStream<'_>, server: &mut Server) -> syn::Result<()> {
    let attrs = input.call(Attribute::parse_outer)?;
    let keyword: Ident = match input.call(syn::ext::IdentExt::parse_any) {
        Ok(k) => k,
        Err(e) => {
            return Err(syn::Error::new(
                e.span(),
                "expected `state NAME: TYPE = EXPR;`, `rpc fn NAME(..) -> T { .. }` or `cast fn NAME(..) { .. }`",
            ))
        }
    };
    match keyword.to_string().as_str() {
        "state" => {
            if let Ok(m) = input.parse::<Token![mut]>() {
                return Err(syn::Error::new(
                    m.span,
                    "state items are always mutable; remove `mut`",
                ));
            }
            let name = item_name(input, "a state item", "state NAME: TYPE = EXPR;")?;
            let ty = if input.peek(Token![:]) {
                input.parse::<Token![:]>()?;
                Some(input.parse()?)
            } else {
                None
            };
            let init = if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                Some(input.parse()?)
            } else {
                None
            };
            input.parse::<Token![;]>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected `;` after the state item: `state NAME: TYPE = EXPR;`",
                )
            })?;
            server.states.push(State { name, ty, init });
        }
        "rpc" | "cast" => {
            input.parse::<Token![fn]>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("expected `fn` after `{keyword}`: `{keyword} fn NAME(..)`"),
                )
            })?;
            let name = item_name(input, "a method", &format!("{keyword} fn NAME(..)"))?;
            let generics: syn::Generics = input.parse()?;
            if !generics.params.is_empty() {
                server.errors.push(syn::Error::new_spanned(
                    &generics,
                    "a server method cannot be generic: its arguments and reply travel in the request and response enums; use concrete types",
                ));
            }
            if !input.peek(syn::token::Paren) {
                return Err(input.error(format!(
                    "expected the arguments in parentheses: `{keyword} fn {name}(ARG: TYPE, ..)`"
                )));
            }
            let content;
            let paren = syn::parenthesized!(content in input);
            let inputs = content.parse_terminated(FnArg::parse, Token![,])?;
            let output: ReturnType = input.parse()?;
            if !input.peek(syn::token::Brace) {
                return Err(input.error(format!(
                    "expected the method's body: `{keyword} fn {name}(..) {{ .. }}`"
                )));
            }
            let body: Block = input.parse()?;
            let mut args = Vec::new();
            for arg in inputs {
                match arg {
                    FnArg::Receiver(r) => server.errors.push(syn::Error::new_spanned(
                        r,
                        "a server method takes no `self`; remove it and use the `state` items by name",
                    )),
                    FnArg::Typed(pt) => match *pt.pat {
                        Pat::Ident(ref pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                            if let Some(m) = &pi.mutability {
                                let n = &pi.ident;
                                server.errors.push(syn::Error::new_spanned(
                                    m,
                                    format!("a server method's arguments cannot be `mut`; remove it and write `let mut {n} = {n};` in the body"),
                                ));
                            }
                            args.push(Arg {
                                name: pi.ident.clone(),
                                ty: (*pt.ty).clone(),
                            });
                        }
                        ref other => server.errors.push(syn::Error::new_spanned(
                            other,
                            "arguments of a server method are plain names (`who: String`); take patterns apart inside the body",
                        )),
                    },
                }
            }
            let _ = paren;
            let kind = if keyword == "rpc" {
                MethodKind::Rpc {
                    output: match output {
                        ReturnType::Default => Box::new(syn::parse_quote!(())),
                        ReturnType::Type(_, t) => t,
                    },
                }
            } else {
                if let ReturnType::Type(arrow, t) = &output {
                    server.errors.push(syn::Error::new_spanned(
                        quote::quote!(#arrow #t),
                        "a `cast` sends no reply, so it has no return type; remove it, or make it an `rpc`",
                    ));
                }
                MethodKind::Cast
            };
            server.methods.push(Method {
                attrs,
                kind,
                name,
                args,
                body,
            });
        }
        other => {
            return Err(syn::Error::new(
                keyword.span(),
                format!("unknown server item `{other}`; expected `state`, `rpc fn` or `cast fn`"),
            ))
        }
    }
    Ok(())
}
