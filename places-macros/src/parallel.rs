//! The communicator-group forms of dissertation section 3.4.2: `fork_join!`, `cg_for!` and
//! `cg_pipeline!`. Each parses into a small model, is checked, and expands to calls of the
//! runtime's functions (`fork_join`, `Comm::partition`, and the pipeline helpers).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Block, Expr, Ident, Pat, Token, Type};

use crate::errors::Errors;

/// `crate = path,` at the front of any of the three forms.
fn parse_crate_override(input: ParseStream<'_>) -> syn::Result<Option<syn::Path>> {
    if input.peek(Token![crate]) && input.peek2(Token![=]) {
        input.parse::<Token![crate]>()?;
        input.parse::<Token![=]>()?;
        let path = input.parse::<syn::Path>()?;
        input.parse::<Token![,]>()?;
        return Ok(Some(path));
    }
    Ok(None)
}

/// A body block, with an error that says what to write when it is something else.
fn parse_body(input: ParseStream<'_>, form: &str) -> syn::Result<Block> {
    if !input.peek(syn::token::Brace) {
        return Err(input.error(format!("expected the body as a block `{{ .. }}`: `{form}`")));
    }
    input.parse()
}

/// `,` between parts, with an error that shows the whole form.
fn parse_comma(input: ParseStream<'_>, form: &str) -> syn::Result<()> {
    input
        .parse::<Token![,]>()
        .map(drop)
        .map_err(|e| syn::Error::new(e.span(), format!("expected `,`: write `{form}`")))
}

fn end(input: ParseStream<'_>, form: &str) -> syn::Result<()> {
    let _ = input.parse::<Option<Token![,]>>()?;
    if !input.is_empty() {
        return Err(input.error(format!("unexpected tokens after the body: write `{form}`")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// fork_join!

const FORK_JOIN: &str = "fork_join!(np, cg, [name: Type = expr, ..] -> Result, { body })";

/// One parameter of the lifted body: `mut? name: Type (= expr)?`.
struct Param {
    mutability: Option<Token![mut]>,
    name: Ident,
    ty: Option<Type>,
    value: Option<Expr>,
}

struct ForkJoin {
    krate: Option<syn::Path>,
    np: Expr,
    cg: Ident,
    params: Vec<Param>,
    output: Option<Type>,
    body: Block,
}

impl Parse for Param {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mutability = input.parse()?;
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected a parameter name: write `{FORK_JOIN}`"),
            )
        })?;
        let ty = if input.peek(Token![:]) {
            input.parse::<Token![:]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(Param {
            mutability,
            name,
            ty,
            value,
        })
    }
}

impl Parse for ForkJoin {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = parse_crate_override(input)?;
        let np: Expr = input.parse()?;
        parse_comma(input, FORK_JOIN)?;
        let cg: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected the name the body calls its communicator group (e.g. `cg`): `{FORK_JOIN}`"),
            )
        })?;
        parse_comma(input, FORK_JOIN)?;
        if !input.peek(syn::token::Bracket) {
            return Err(input.error(format!(
                "expected the parameter list in brackets, `[]` when there are none: `{FORK_JOIN}`"
            )));
        }
        let content;
        syn::bracketed!(content in input);
        let params = content
            .parse_terminated(Param::parse, Token![,])?
            .into_iter()
            .collect();
        let output = if input.peek(Token![->]) {
            input.parse::<Token![->]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        parse_comma(input, FORK_JOIN)?;
        let body = parse_body(input, FORK_JOIN)?;
        end(input, FORK_JOIN)?;
        Ok(ForkJoin {
            krate,
            np,
            cg,
            params,
            output,
            body,
        })
    }
}

impl ForkJoin {
    fn check(&self) -> syn::Result<()> {
        let mut errors = Errors::default();
        let mut seen: Vec<&Ident> = Vec::new();
        for p in &self.params {
            if p.ty.is_none() {
                errors.error_spanned_by(
                    &p.name,
                    format!(
                        "parameter `{0}` needs a type: write `{0}: Type = ..`; the body is lifted \
                         into a function of its own, whose parameters are typed",
                        p.name
                    ),
                );
            }
            if p.name == self.cg {
                errors.error_spanned_by(
                    &p.name,
                    format!(
                        "parameter `{}` has the name of the communicator group; rename one of them",
                        p.name
                    ),
                );
            }
            if seen.iter().any(|s| **s == p.name) {
                errors.error_spanned_by(&p.name, format!("parameter `{}` is listed twice", p.name));
            }
            seen.push(&p.name);
        }
        errors.finish()
    }

    fn expand(&self) -> TokenStream {
        let krate = crate::crate_path::runtime_path(self.krate.clone());
        let np = &self.np;
        let cg = &self.cg;
        let pats = self.params.iter().map(|p| {
            let (m, n) = (&p.mutability, &p.name);
            quote!(#m #n)
        });
        let tys = self.params.iter().map(|p| &p.ty);
        // `name: Type` alone passes the variable of the same name.
        let values = self.params.iter().map(|p| match &p.value {
            Some(v) => quote!(#v),
            None => {
                let n = &p.name;
                quote!(#n)
            }
        });
        let output = match &self.output {
            Some(t) => quote!(#t),
            None => quote!(()),
        };
        let body = &self.body;
        let body_fn = Ident::new("__places_fork_join_body", Span::mixed_site());
        quote! {
            {
                #[allow(unused_variables, unused_mut)]
                fn #body_fn(#cg: &#krate::Comm, (#(#pats,)*): (#(#tys,)*)) -> #output #body
                #krate::fork_join(#np, (#(#values,)*), #body_fn)
            }
        }
    }
}

pub(crate) fn fork_join(input: TokenStream) -> TokenStream {
    let parsed = syn::parse2::<ForkJoin>(input).and_then(|f| f.check().map(|()| f));
    match parsed {
        Ok(f) => f.expand(),
        Err(e) => e.to_compile_error(),
    }
}

// ---------------------------------------------------------------------------------------------
// cg_for!

const CG_FOR: &str = "cg_for!(cg, i in a..b, { body })";

struct CgFor {
    krate: Option<syn::Path>,
    cg: Expr,
    pat: Pat,
    range: Expr,
    body: Block,
}

impl Parse for CgFor {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = parse_crate_override(input)?;
        let cg: Expr = input.parse()?;
        parse_comma(input, CG_FOR)?;
        let pat = Pat::parse_single(input)?;
        input.parse::<Token![in]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected `in` after the loop variable: `{CG_FOR}`"),
            )
        })?;
        let range: Expr = input.parse()?;
        parse_comma(input, CG_FOR)?;
        let body = parse_body(input, CG_FOR)?;
        end(input, CG_FOR)?;
        Ok(CgFor {
            krate,
            cg,
            pat,
            range,
            body,
        })
    }
}

pub(crate) fn cg_for(input: TokenStream) -> TokenStream {
    match syn::parse2::<CgFor>(input) {
        Ok(f) => {
            let krate = crate::crate_path::runtime_path(f.krate);
            let (cg, pat, range, body) = (&f.cg, &f.pat, &f.range, &f.body);
            // Type errors about the range (not an integer range) point at the range.
            let partition = quote_spanned!(range.span()=>
                #krate::Comm::partition(::core::convert::AsRef::<#krate::Comm>::as_ref(&#cg), #range)
            );
            quote!(for #pat in #partition #body)
        }
        Err(e) => e.to_compile_error(),
    }
}

// ---------------------------------------------------------------------------------------------
// cg_pipeline!

const CG_PIPELINE: &str = "cg_pipeline!(cg, prev, init, { body })";

struct CgPipeline {
    krate: Option<syn::Path>,
    cg: Expr,
    prev: Pat,
    init: Expr,
    body: Block,
}

impl Parse for CgPipeline {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = parse_crate_override(input)?;
        let cg: Expr = input.parse()?;
        parse_comma(input, CG_PIPELINE)?;
        let prev = Pat::parse_single(input)?;
        parse_comma(input, CG_PIPELINE)?;
        let init: Expr = input.parse()?;
        parse_comma(input, CG_PIPELINE)?;
        let body = parse_body(input, CG_PIPELINE)?;
        end(input, CG_PIPELINE)?;
        Ok(CgPipeline {
            krate,
            cg,
            prev,
            init,
            body,
        })
    }
}

impl CgPipeline {
    fn check(&self) -> syn::Result<()> {
        match &self.prev {
            Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => Ok(()),
            other => Err(syn::Error::new_spanned(
                other,
                format!("expected a name for the previous member's value: `{CG_PIPELINE}`"),
            )),
        }
    }

    fn expand(&self) -> TokenStream {
        let krate = crate::crate_path::runtime_path(self.krate.clone());
        let (cg, prev, init, body) = (&self.cg, &self.prev, &self.init, &self.body);
        let comm = Ident::new("__places_cg", Span::mixed_site());
        let out = Ident::new("__places_out", Span::mixed_site());
        quote! {
            {
                let #comm: &#krate::Comm = ::core::convert::AsRef::<#krate::Comm>::as_ref(&#cg);
                let #prev = if #comm.id() == 0 {
                    #init
                } else {
                    #krate::__private::pipeline_recv(#comm)
                };
                let #out = #body;
                #krate::__private::pipeline_send(#comm, &#out);
                #out
            }
        }
    }
}

pub(crate) fn cg_pipeline(input: TokenStream) -> TokenStream {
    let parsed = syn::parse2::<CgPipeline>(input).and_then(|p| p.check().map(|()| p));
    match parsed {
        Ok(p) => p.expand(),
        Err(e) => e.to_compile_error(),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    fn ok(out: proc_macro2::TokenStream) -> String {
        let text = out.to_string();
        assert!(!text.contains("compile_error"), "unexpected error: {text}");
        syn::parse2::<syn::Expr>(out).expect("expansion parses as an expression");
        text
    }

    #[test]
    fn fork_join_lifts_the_body_into_a_typed_function() {
        let text = ok(super::fork_join(quote! {
            np, cg, [n: usize = 900, b: SharedBytes] -> u64, { cg.id() as u64 }
        }));
        assert!(
            text.contains("fn __places_fork_join_body (cg : & :: places :: Comm"),
            "{text}"
        );
        assert!(
            text.contains("(n , b ,) : (usize , SharedBytes ,)"),
            "{text}"
        );
        assert!(text.contains("-> u64"), "{text}");
        assert!(text.contains("(900 , b ,)"), "{text}");
    }

    #[test]
    fn fork_join_reports_every_parameter_error() {
        let text =
            super::fork_join(quote! { 2, cg, [n = 1, cg: u8, m: u8, m: u8], {} }).to_string();
        assert!(text.contains("parameter `n` needs a type"), "{text}");
        assert!(text.contains("name of the communicator group"), "{text}");
        assert!(text.contains("listed twice"), "{text}");
    }

    #[test]
    fn cg_for_and_cg_pipeline_expand() {
        let text = ok(super::cg_for(quote! { cg, i in 0..n, { work(i); } }));
        assert!(text.contains("Comm :: partition"), "{text}");
        let text = ok(super::cg_pipeline(quote! { cg, prev, 0.0, { prev + 1.0 } }));
        assert!(
            text.contains("pipeline_recv") && text.contains("pipeline_send"),
            "{text}"
        );
        let bad = super::cg_pipeline(quote! { cg, (a, b), 0.0, { a } }).to_string();
        assert!(bad.contains("expected a name"), "{bad}");
    }
}
