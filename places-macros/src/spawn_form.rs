//! `spawn!(ch: PlaceChannel<S, R> => { body })`: Racket's `place` form. The body is lifted into a
//! registered entry of its own (named after where the form stands), so it runs in a new place
//! locally and could be started by name on a node; it can use only `ch` and items, never the
//! enclosing function's locals (a compile error, as in Racket).

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Block, Ident, Token, Type};

const FORM: &str = "spawn!(ch: PlaceChannel<S, R> => { body })";

struct SpawnForm {
    krate: Option<syn::Path>,
    ch: Ident,
    ty: Type,
    body: Block,
}

impl Parse for SpawnForm {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = crate::crate_path::parse_crate_override::<Token![,]>(
            input,
            ",",
            "the other arguments",
        )?;
        let ch: Ident = input.parse().map_err(|e| {
            syn::Error::new(e.span(), format!("expected the channel's name: `{FORM}`"))
        })?;
        input.parse::<Token![:]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected `:` and the channel's type (the body becomes a function of its own): `{FORM}`"),
            )
        })?;
        let ty: Type = input.parse()?;
        input.parse::<Token![=>]>().map_err(|e| {
            syn::Error::new(e.span(), format!("expected `=>` before the body: `{FORM}`"))
        })?;
        if !input.peek(syn::token::Brace) {
            return Err(input.error(format!("expected the body as a block `{{ .. }}`: `{FORM}`")));
        }
        let body: Block = input.parse()?;
        if !input.is_empty() {
            return Err(input.error(format!("unexpected tokens after the body: `{FORM}`")));
        }
        Ok(SpawnForm {
            krate,
            ch,
            ty,
            body,
        })
    }
}

/// `line` and `column` of the form make the lifted entry's name, unique in its module and the
/// same in every process running this executable.
pub(crate) fn spawn(input: TokenStream, line: usize, column: usize) -> TokenStream {
    let form = match syn::parse2::<SpawnForm>(input) {
        Ok(f) => f,
        Err(e) => return e.to_compile_error(),
    };
    let krate = crate::crate_path::runtime_path(form.krate);
    let entry = Ident::new(
        &format!("__places_lifted_{line}_{column}"),
        Span::call_site(),
    );
    let (ch, ty, body) = (&form.ch, &form.ty, &form.body);
    let krate_tokens = quote!(#krate);
    quote! {
        {
            #[#krate::place(crate = #krate_tokens)]
            fn #entry(#ch: #ty) #body
            #krate::Place::spawn(#entry)
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    #[test]
    fn lifts_the_body_into_a_named_entry() {
        let out = super::spawn(
            quote! { ch: PlaceChannel<u64> => { let _ = ch.get(); } },
            12,
            5,
        )
        .to_string();
        assert!(
            out.contains("fn __places_lifted_12_5 (ch : PlaceChannel < u64 >)"),
            "{out}"
        );
        assert!(
            out.contains(":: places :: place (crate = :: places)"),
            "{out}"
        );
        assert!(
            out.contains(":: places :: Place :: spawn (__places_lifted_12_5)"),
            "{out}"
        );
    }

    #[test]
    fn says_what_to_write() {
        let out = super::spawn(quote! { ch => { } }, 1, 1).to_string();
        assert!(out.contains("expected `:` and the channel's type"), "{out}");
        let out = super::spawn(quote! { ch: PlaceChannel<u8> => 5 }, 1, 1).to_string();
        assert!(out.contains("expected the body as a block"), "{out}");
    }
}
