//! `#[place]`: keep the function, register it as a place entry.

mod expand;
mod parse;

use proc_macro2::TokenStream;

/// The whole attribute: parse and check, then expand; on error, the user's item plus the errors.
pub(crate) fn place(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(args, item.clone()) {
        Ok(entry) => expand::expand(&entry),
        Err(error) => crate::errors::with_fallback(error, item),
    }
}

#[cfg(test)]
mod tests;
