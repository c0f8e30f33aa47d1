//! `define_remote_server!` and `define_named_remote_server!`: parse into a model, check it,
//! expand into request/response enums, the server entry, stubs and a typed client.

mod check;
mod expand;
mod parse;

use proc_macro2::TokenStream;
use syn::parse::Parser;

/// Which of the two forms.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// A private server: requests come on its own channel.
    Private,
    /// A named server: requests come from connections, each with its reply route.
    Named,
}

impl Flavor {
    /// The macro's name, as messages show it.
    pub(crate) fn macro_name(self) -> &'static str {
        match self {
            Flavor::Private => "define_remote_server!",
            Flavor::Named => "define_named_remote_server!",
        }
    }
}

pub(crate) fn define(input: TokenStream, flavor: Flavor) -> TokenStream {
    let parser = |input: syn::parse::ParseStream<'_>| parse::Server::parse(input, flavor);
    let server = match parser.parse2(input) {
        Ok(s) => s,
        Err(e) => return e.to_compile_error(),
    };
    match check::check(&server) {
        Ok(()) => expand::expand(&server, flavor),
        // The generated items still appear (without bodies that could cascade), so that callers
        // see only this error, not a flood of "cannot find `BankClient`".
        Err(e) => {
            let mut out = expand::fallback(&server, flavor);
            out.extend(e.to_compile_error());
            out
        }
    }
}

#[cfg(test)]
mod tests;
