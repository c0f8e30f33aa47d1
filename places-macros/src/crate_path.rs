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
