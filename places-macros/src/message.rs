//! `#[places::message]`: derive serde's traits through the runtime's re-export, so that users
//! need no serde dependency of their own.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Item;

use crate::errors::Errors;

pub(crate) fn message(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let krate = crate::crate_path::parse_crate_arg(args, "#[places::message]", &mut errors);
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(_) | Item::Enum(_)) => {}
        Ok(other) => errors.error_spanned_by(
            first_tokens(&other),
            "`#[places::message]` goes on a struct or an enum, the types sent on place channels",
        ),
        Err(e) => errors.push(e),
    }
    if let Err(e) = errors.finish() {
        return crate::errors::with_fallback(e, item);
    }
    let krate = crate::crate_path::runtime_path(krate);
    let serde = quote!(#krate::__private::serde);
    let serde_str = serde.to_string().replace(' ', "");
    quote! {
        #[derive(#serde::Serialize, #serde::Deserialize)]
        #[serde(crate = #serde_str)]
        #item
    }
}

/// The item's visibility and keyword, enough to point at.
fn first_tokens(item: &Item) -> TokenStream {
    quote::ToTokens::to_token_stream(item)
        .into_iter()
        .take_while(|t| !matches!(t, proc_macro2::TokenTree::Group(_)))
        .take(3)
        .collect()
}

#[cfg(test)]
mod tests {
    use quote::quote;

    #[test]
    fn derives_through_the_reexport() {
        let out = super::message(quote!(), quote! { enum Job { Run(u32), Done } }).to_string();
        assert!(
            out.contains(":: places :: __private :: serde :: Serialize"),
            "{out}"
        );
        assert!(
            out.contains("crate = \"::places::__private::serde\""),
            "{out}"
        );
    }

    #[test]
    fn rejects_functions_and_unknown_arguments() {
        let out = super::message(quote!(), quote! { fn f() {} }).to_string();
        assert!(out.contains("goes on a struct or an enum"), "{out}");
        let out = super::message(quote!(serde), quote! { struct S; }).to_string();
        assert!(
            out.contains("unknown `#[places::message]` argument"),
            "{out}"
        );
    }
}
