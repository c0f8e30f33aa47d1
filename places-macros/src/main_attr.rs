//! `#[places::main]`: run the program's `main` through the runtime's start-up.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;

use crate::errors::{with_fallback, Errors};

pub(crate) fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse(args, item.clone()) {
        Ok((func, krate)) => expand(&func, &krate),
        Err(e) => with_fallback(e, fallback(item)),
    }
}

/// A plain `fn NAME() {}` stands in for the user's function, so rustc adds no errors of its own
/// about the signature this macro already explained.
fn fallback(item: TokenStream) -> TokenStream {
    match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => {
            let (vis, ident) = (&func.vis, &func.sig.ident);
            quote!(#vis fn #ident() {})
        }
        Err(_) => item,
    }
}

fn parse(args: TokenStream, item: TokenStream) -> syn::Result<(ItemFn, syn::Path)> {
    let mut errors = Errors::default();
    let krate = crate::crate_path::parse_crate_arg(args, "#[places::main]", &mut errors);
    let func: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "`#[places::main]` goes on the program's `fn main() { .. }`",
        )
    })?;
    let sig = &func.sig;
    if let Some(t) = &sig.asyncness {
        errors.error_spanned_by(
            t,
            "`#[places::main]` goes on a plain `fn main`; for an async main, write `#[places::main]` \
             below `#[tokio::main]`, which turns the `async fn` into a plain one first",
        );
    }
    if !sig.inputs.is_empty() {
        errors.error_spanned_by(
            &sig.inputs,
            "`main` takes no parameters; read arguments with `std::env::args()`",
        );
    }
    if !sig.generics.params.is_empty() {
        errors.error_spanned_by(
            &sig.generics,
            "`main` cannot be generic; remove the generic parameters",
        );
    }
    errors.finish()?;
    Ok((func, crate::crate_path::runtime_path(krate)))
}

fn expand(func: &ItemFn, krate: &syn::Path) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    quote! {
        #(#attrs)*
        #vis #sig {
            #krate::__private::run_main(move || #block)
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    #[test]
    fn wraps_the_body_and_keeps_the_signature() {
        let out = super::main(
            quote!(),
            quote! { fn main() -> Result<(), String> { Ok(()) } },
        )
        .to_string();
        assert!(
            out.contains("fn main () -> Result < () , String >"),
            "{out}"
        );
        assert!(out.contains("run_main"), "{out}");
    }

    #[test]
    fn rejects_async_and_parameters_together() {
        let out = super::main(quote!(), quote! { async fn main(x: u8) {} }).to_string();
        assert!(out.contains("below `#[tokio::main]`"), "{out}");
        assert!(out.contains("takes no parameters"), "{out}");
    }
}
