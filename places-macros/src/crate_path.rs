//! Finds the path of the runtime crate for generated code: `::places` for users of the facade,
//! `::places_core` for users of the core crate alone, or what `crate = path` says.

use proc_macro2::Span;
use proc_macro_crate::{crate_name, FoundCrate};

/// The path generated code uses to reach the runtime: `#path::__private::...`.
pub(crate) fn runtime_path(overridden: Option<syn::Path>) -> syn::Path {
    if let Some(path) = overridden {
        return path;
    }
    for candidate in ["places", "places-core"] {
        match crate_name(candidate) {
            // The facade names itself `places` through `extern crate self as places`, so `::places`
            // works in its own lib, tests, doc tests and examples alike.
            Ok(FoundCrate::Itself) => {
                let ident = syn::Ident::new(&candidate.replace('-', "_"), Span::call_site());
                return syn::parse_quote!(::#ident);
            }
            Ok(FoundCrate::Name(name)) => {
                let ident = syn::Ident::new(&name, Span::call_site());
                return syn::parse_quote!(::#ident);
            }
            Err(_) => continue,
        }
    }
    // Neither is a dependency: the unresolved `::places` path then names the missing crate.
    syn::parse_quote!(::places)
}

/// Parses an attribute's arguments, whose only one is `crate = path`; records an error naming
/// `attr` for anything else.
pub(crate) fn parse_crate_arg(
    args: proc_macro2::TokenStream,
    attr: &str,
    errors: &mut crate::errors::Errors,
) -> Option<syn::Path> {
    use syn::parse::Parser;
    let mut krate = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            krate = Some(meta.value()?.parse::<syn::Path>()?);
            Ok(())
        } else {
            Err(meta.error(format!(
                "unknown `{attr}` argument; the only argument is `crate = path::to::places`"
            )))
        }
    });
    if let Err(e) = parser.parse2(args) {
        errors.push(e);
    }
    krate
}

/// Parses `crate = path` followed by `sep` (`,` or `;`) at the front of a function-like macro's
/// input, if it is there. `sep_text` and `before` complete the error for a missing separator:
/// "write `crate = path{sep_text}` before {before}".
pub(crate) fn parse_crate_override<Sep: syn::parse::Parse>(
    input: syn::parse::ParseStream<'_>,
    sep_text: &str,
    before: &str,
) -> syn::Result<Option<syn::Path>> {
    if !(input.peek(syn::Token![crate]) && input.peek2(syn::Token![=])) {
        return Ok(None);
    }
    input.parse::<syn::Token![crate]>()?;
    input.parse::<syn::Token![=]>()?;
    let path = input.parse::<syn::Path>().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected the path of the `places` crate after `crate =`, such as `::places`",
        )
    })?;
    input.parse::<Sep>().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!(
                "expected `{sep_text}` after `crate = path`: write `crate = path{sep_text}` before {before}"
            ),
        )
    })?;
    Ok(Some(path))
}
