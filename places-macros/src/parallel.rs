//! The communicator-group forms of dissertation section 3.4.2: `fork_join!`, `cg_for!` and
//! `cg_pipeline!`. Each parses into a small model, is checked, and expands to calls of the
//! runtime's functions (`fork_join`, `Comm::partition`, and the pipeline helpers).

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Block, Expr, Ident, Pat, Token, Type};

use crate::errors::Errors;

/// `crate = path,` at the front of any of the three forms.
fn parse_crate_override(input: ParseStream<'_>) -> syn::Result<Option<syn::Path>> {
    crate::crate_path::parse_crate_override::<Token![,]>(input, ",", "the other arguments")
}

/// Fails when the part about to be parsed is missing (the input is at a `,` or at its end), where
/// syn's own error ("expected an expression") would not say which part is meant.
fn not_missing(input: ParseStream<'_>, what: &str, form: &str) -> syn::Result<()> {
    if input.is_empty() || input.peek(Token![,]) {
        return Err(input.error(format!("expected {what}: write `{form}`")));
    }
    Ok(())
}

/// A body block, with an error that says what to write when it is something else.
fn parse_body(input: ParseStream<'_>, form: &str) -> syn::Result<Block> {
    if !input.peek(syn::token::Brace) {
        return Err(input.error(format!(
            "expected the body as a block `{{ .. }}`: write `{form}`"
        )));
    }
    input.parse()
}

/// `,` between parts, with an error that shows the whole form.
fn parse_comma(input: ParseStream<'_>, form: &str) -> syn::Result<()> {
    if input.is_empty() {
        // syn says "unexpected end of input, " first, and spans the whole invocation.
        return Err(input.error(format!("expected `,`: write `{form}`")));
    }
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

/// `tokens`, an expression, respanned to cover `target`: the leading tokens get the span of
/// `target`'s first token and the last one the span of its last, so rustc underlines `target`
/// for an error about the expression (a trait bound a call's callee or arguments do not meet).
/// Only the top level is respanned: the contents of a trailing group keep their spans.
fn spanned_over(tokens: TokenStream, target: &impl ToTokens) -> TokenStream {
    let target: Vec<TokenTree> = target.to_token_stream().into_iter().collect();
    let (Some(first), Some(last)) = (target.first(), target.last()) else {
        return tokens;
    };
    let (first, last) = (first.span(), last.span());
    let mut out: Vec<TokenTree> = tokens.into_iter().collect();
    let n = out.len();
    for (i, tree) in out.iter_mut().enumerate() {
        let span = if i + 1 == n { last } else { first };
        match tree {
            TokenTree::Group(g) => {
                let mut respanned = Group::new(g.delimiter(), g.stream());
                respanned.set_span(span);
                *g = respanned;
            }
            other => other.set_span(span),
        }
    }
    out.into_iter().collect()
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
    /// `nodes = EXPR,`: the members run as places spread over these nodes.
    nodes: Option<Expr>,
    /// Where the invocation is, to name the entry a group over nodes registers.
    at: (usize, usize),
    np: Expr,
    cg: Ident,
    /// The span of `[..]`, where a parameter type that is not a message is reported.
    params_span: Span,
    params: Vec<Param>,
    output: Option<Type>,
    body: Block,
}

impl Parse for Param {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mutability = input.parse()?;
        let name: Ident = input.parse().map_err(|e| {
            // A pattern is reported as a whole, with what to write instead.
            match Pat::parse_single(&input.fork()) {
                Ok(
                    pat @ (Pat::Tuple(_) | Pat::TupleStruct(_) | Pat::Struct(_) | Pat::Slice(_)),
                ) => syn::Error::new_spanned(
                    pat,
                    "expected a parameter name, not a pattern: pass the whole value as \
                     `name: Type = expr` and take it apart inside the body",
                ),
                _ => syn::Error::new(
                    e.span(),
                    "expected a parameter name: write `[name: Type = expr, ..]`",
                ),
            }
        })?;
        let ty = if input.peek(Token![:]) {
            input.parse::<Token![:]>()?;
            if input.is_empty() || input.peek(Token![,]) || input.peek(Token![=]) {
                return Err(input.error(format!(
                    "expected the type of parameter `{name}`: write `{name}: Type = expr`"
                )));
            }
            Some(input.parse()?)
        } else {
            None
        };
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            if input.is_empty() || input.peek(Token![,]) {
                return Err(input.error(format!(
                    "expected the value of parameter `{name}` after `=`; to pass the variable \
                     `{name}` itself, write `{name}: Type` alone"
                )));
            }
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

/// The contents of `[..]`: parameters separated by commas.
fn parse_params(content: ParseStream<'_>) -> syn::Result<Vec<Param>> {
    let mut params = Vec::new();
    while !content.is_empty() {
        params.push(content.parse()?);
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `,` between parameters: write `[name: Type = expr, ..]`",
            )
        })?;
    }
    Ok(params)
}

/// The name the body calls its communicator group: a plain identifier.
fn parse_group_name(input: ParseStream<'_>) -> syn::Result<Ident> {
    let expected = format!(
        "expected a name, such as `cg`, for the communicator group `fork_join!` starts: \
         write `{FORK_JOIN}`"
    );
    if input.peek(syn::token::Bracket) {
        return Err(input.error(format!(
            "expected a name, such as `cg`, for the communicator group before the parameter \
             list: write `{FORK_JOIN}`"
        )));
    }
    let expr: Expr = input
        .parse()
        .map_err(|e| syn::Error::new(e.span(), &expected))?;
    match &expr {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => match p.path.get_ident() {
            Some(name) => Ok(name.clone()),
            None => Err(syn::Error::new_spanned(&expr, expected)),
        },
        _ => Err(syn::Error::new_spanned(&expr, expected)),
    }
}

impl Parse for ForkJoin {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = parse_crate_override(input)?;
        let nodes = if input.peek(syn::Ident) && input.peek2(Token![=]) && !input.peek2(Token![==])
        {
            let key: Ident = input.parse()?;
            if key != "nodes" {
                return Err(syn::Error::new(
                    key.span(),
                    format!("expected `nodes = &[..]` or the number of places: write `{FORK_JOIN}`, or `fork_join!(nodes = &nodes, np, cg, [..] -> Result, {{ body }})` to spread the places over nodes"),
                ));
            }
            input.parse::<Token![=]>()?;
            let nodes: Expr = input.parse()?;
            parse_comma(input, FORK_JOIN)?;
            Some(nodes)
        } else {
            None
        };
        not_missing(input, "the number of places", FORK_JOIN)?;
        let np: Expr = input.parse()?;
        parse_comma(input, FORK_JOIN)?;
        let cg = parse_group_name(input)?;
        parse_comma(input, FORK_JOIN)?;
        if !input.peek(syn::token::Bracket) {
            return Err(input.error(format!(
                "expected the parameter list in brackets, `[]` when there are none: \
                 write `{FORK_JOIN}`"
            )));
        }
        let content;
        let bracket = syn::bracketed!(content in input);
        let params = parse_params(&content)?;
        let output = if input.peek(Token![->]) {
            input.parse::<Token![->]>()?;
            if input.is_empty() || input.peek(Token![,]) || input.peek(syn::token::Brace) {
                return Err(input.error(format!(
                    "expected the result type after `->` (leave out `-> Result` for `()`): \
                     write `{FORK_JOIN}`"
                )));
            }
            Some(input.parse()?)
        } else {
            None
        };
        parse_comma(input, FORK_JOIN)?;
        let body = parse_body(input, FORK_JOIN)?;
        end(input, FORK_JOIN)?;
        Ok(ForkJoin {
            krate,
            nodes,
            at: (0, 0),
            np,
            cg,
            params_span: bracket.span.join(),
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
                errors.error_spanned_by(
                    &p.name,
                    format!(
                        "parameter `{}` is listed twice; remove or rename one of them",
                        p.name
                    ),
                );
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
        let tys: Vec<_> = self.params.iter().map(|p| &p.ty).collect();
        // `name: Type` alone passes the variable of the same name.
        let values = self.params.iter().map(|p| match &p.value {
            Some(v) => quote!(#v),
            None => {
                let n = &p.name;
                quote!(#n)
            }
        });
        // `fork_join`'s generic arguments are written out, spanned on the user's tokens: rustc
        // reports an unmet `Message` bound at the explicit argument, so a result type that is
        // not a message is underlined, and a parameter type that is not one underlines `[..]`
        // (not the whole invocation).
        let output = match &self.output {
            Some(t) => quote!(#t),
            None => quote!(()),
        };
        let mut args_ty = Group::new(Delimiter::Parenthesis, quote!(#(#tys,)*));
        args_ty.set_span(self.params_span);
        let mut args = Group::new(Delimiter::Parenthesis, quote!(#(#values,)*));
        args.set_span(self.params_span);
        let body = &self.body;
        let body_fn = Ident::new("__places_fork_join_body", Span::mixed_site());
        let Some(nodes) = &self.nodes else {
            return quote! {
                {
                    #[allow(unused_variables, unused_mut)]
                    fn #body_fn(#cg: &#krate::Comm, (#(#pats,)*): #args_ty) -> #output #body
                    #krate::fork_join::<#args_ty, #output, _>(#np, #args, #body_fn)
                }
            };
        };
        // Over nodes: the body is also registered as a place entry (named by where the
        // invocation is), so that every node running this program can start it.
        // Line and column, plus a count: invocations that a `macro_rules!` expands share the
        // macro's call site. Every node runs the same executable, so the names agree.
        static SERIAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let entry_name = format!("__places_fork_join_{}_{}_{serial}", self.at.0, self.at.1);
        let entry = Ident::new(&entry_name, Span::call_site());
        let ch = Ident::new("__places_ch", Span::mixed_site());
        quote! {
            {
                #[allow(unused_variables, unused_mut)]
                fn #body_fn(#cg: &#krate::Comm, (#(#pats,)*): #args_ty) -> #output #body
                #[#krate::place(crate = #krate)]
                fn #entry(
                    #ch: #krate::PlaceChannel<
                        ::core::result::Result<#output, #krate::__private::MemberFailure>,
                        (#krate::MeshInvitation, #args_ty),
                    >,
                ) {
                    #krate::__private::fork_join_member_on(#ch, #body_fn)
                }
                #krate::fork_join_on::<#args_ty, #output>(
                    #nodes,
                    #np,
                    #args,
                    ::core::module_path!(),
                    #entry_name,
                )
            }
        }
    }
}

pub(crate) fn fork_join(input: TokenStream, line: usize, column: usize) -> TokenStream {
    let parsed = syn::parse2::<ForkJoin>(input).and_then(|f| f.check().map(|()| f));
    let parsed = parsed.map(|mut f| {
        f.at = (line, column);
        f
    });
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
        not_missing(input, "the communicator group", CG_FOR)?;
        let cg: Expr = input.parse()?;
        if input.peek(Token![in]) {
            return Err(syn::Error::new_spanned(
                &cg,
                format!(
                    "expected the communicator group before the loop variable: write `{CG_FOR}`"
                ),
            ));
        }
        parse_comma(input, CG_FOR)?;
        if input.is_empty() || input.peek(Token![,]) || input.peek(Token![in]) {
            return Err(input.error(format!("expected the loop variable: write `{CG_FOR}`")));
        }
        let pat = Pat::parse_single(input)?;
        if !input.peek(Token![in]) {
            return Err(match &pat {
                // `cg_for!(cg, 0..n, ..)` parses the range as a range pattern.
                Pat::Range(_) => syn::Error::new_spanned(
                    &pat,
                    format!(
                        "expected the loop variable and `in` before the range: write `{CG_FOR}`"
                    ),
                ),
                _ => input.error(format!(
                    "expected `in` after the loop variable: write `{CG_FOR}`"
                )),
            });
        }
        input.parse::<Token![in]>()?;
        not_missing(input, "the range to split, such as `0..n`", CG_FOR)?;
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
            // A `cg` that is not a `Comm` is reported at `cg` ...
            let comm = quote_spanned!(cg.span()=>
                ::core::convert::AsRef::<#krate::Comm>::as_ref(&#cg)
            );
            // ... and a range that is not an integer range at the range, for the bound of
            // `partition` and for its result type alike.
            let partition = spanned_over(quote!(#krate::Comm::partition(#comm, #range)), range);
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

/// `prev` is a name: a pattern there is reported before the parts after it, which a missing
/// `prev` shifts.
fn check_prev(prev: &Pat) -> syn::Result<()> {
    match prev {
        Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => Ok(()),
        Pat::Tuple(_) | Pat::TupleStruct(_) | Pat::Struct(_) | Pat::Slice(_) => {
            Err(syn::Error::new_spanned(
                prev,
                "expected a name, such as `prev`, for the previous member's value, not a pattern: \
                 write `cg_pipeline!(cg, prev, init, { let (a, b) = prev; .. })`",
            ))
        }
        other => Err(syn::Error::new_spanned(
            other,
            format!(
                "expected a name, such as `prev`, for the previous member's value: \
                 write `{CG_PIPELINE}`"
            ),
        )),
    }
}

impl Parse for CgPipeline {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = parse_crate_override(input)?;
        not_missing(input, "the communicator group", CG_PIPELINE)?;
        let cg: Expr = input.parse()?;
        parse_comma(input, CG_PIPELINE)?;
        let prev = Pat::parse_single(input)?;
        check_prev(&prev)?;
        parse_comma(input, CG_PIPELINE)?;
        let init: Expr = input.parse()?;
        if input.is_empty() && matches!(init, Expr::Block(_)) {
            return Err(syn::Error::new_spanned(
                &init,
                format!(
                    "expected the value member 0 starts from before the body: \
                     write `{CG_PIPELINE}`"
                ),
            ));
        }
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
    fn expand(&self) -> TokenStream {
        let krate = crate::crate_path::runtime_path(self.krate.clone());
        let (cg, prev, init, body) = (&self.cg, &self.prev, &self.init, &self.body);
        let comm = Ident::new("__places_cg", Span::mixed_site());
        let out = Ident::new("__places_out", Span::mixed_site());
        // A `cg` that is not a `Comm` is reported at `cg`, a value that is not a message (the
        // bound of the receive) at `init`.
        let as_comm = quote_spanned!(cg.span()=>
            ::core::convert::AsRef::<#krate::Comm>::as_ref(&#cg)
        );
        let recv = spanned_over(quote!(#krate::__private::pipeline_recv(#comm)), init);
        // The value passed on must have the type of the value received: checked here, at the
        // body, rather than found out at run time by the next member.
        let same = Ident::new("__places_same", Span::mixed_site());
        let remember = match prev {
            Pat::Ident(p) => {
                let name = &p.ident;
                quote!(let #same = #krate::__private::SameType::of(&#name);)
            }
            _ => quote!(),
        };
        let check = match prev {
            Pat::Ident(_) => quote_spanned!(body.span()=> #same.check(&#out);),
            _ => quote!(),
        };
        quote! {
            {
                let #comm: &#krate::Comm = #as_comm;
                let #prev = if #comm.id() == 0 {
                    #init
                } else {
                    #recv
                };
                #remember
                let #out = #body;
                #check
                #krate::__private::pipeline_send(#comm, &#out);
                #out
            }
        }
    }
}

pub(crate) fn cg_pipeline(input: TokenStream) -> TokenStream {
    match syn::parse2::<CgPipeline>(input) {
        Ok(p) => p.expand(),
        Err(e) => e.to_compile_error(),
    }
}

#[cfg(test)]
fn fork_join_at(input: TokenStream) -> TokenStream {
    fork_join(input, 1, 1)
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
        let text = ok(super::fork_join_at(quote! {
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
            super::fork_join_at(quote! { 2, cg, [n = 1, cg: u8, m: u8, m: u8], {} }).to_string();
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
