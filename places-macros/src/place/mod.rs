//! `#[place]`: keep the function, register it as a place entry.

mod expand;
mod parse;

use proc_macro2::TokenStream;

/// The whole attribute: parse and check, then expand; on error, the user's item plus the errors.
pub(crate) fn place(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(args, item.clone()) {
        Ok(entry) => expand::expand(&entry),
        Err(error) => crate::errors::with_fallback(error, fallback(item)),
    }
}

/// The user's item as it would compile on its own: without `const` (which a place channel
/// parameter cannot satisfy), so that only this macro's errors are reported.
fn fallback(item: TokenStream) -> TokenStream {
    match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(mut func) => {
            func.sig.constness = None;
            quote::ToTokens::into_token_stream(func)
        }
        Err(_) => item,
    }
}

#[cfg(test)]
mod tests;
