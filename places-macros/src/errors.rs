//! Collects every error found in one macro invocation so they are reported together.

use proc_macro2::TokenStream;
use std::fmt::Display;

/// An error collector in the style of serde_derive's `Ctxt`.
#[derive(Default)]
pub(crate) struct Errors {
    errors: Option<syn::Error>,
}

impl Errors {
    /// Records an error spanned on `tokens`.
    pub(crate) fn error_spanned_by<T: quote::ToTokens, M: Display>(
        &mut self,
        tokens: T,
        message: M,
    ) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(error),
            None => self.errors = Some(error),
        }
    }

    /// A checkpoint: the errors so far, if any.
    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        match self.errors {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The tokens of an error plus whatever fallback output keeps callers free of follow-on errors.
pub(crate) fn with_fallback(error: syn::Error, fallback: TokenStream) -> TokenStream {
    let mut out = fallback;
    out.extend(error.to_compile_error());
    out
}
