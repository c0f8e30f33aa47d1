//! Checks a server model; every problem is reported at once.

use super::parse::Server;
use crate::errors::Errors;

/// Method names the generated client already uses.
const CLIENT_METHODS: [&str; 2] = ["new", "with_deadline"];

/// The response variant that carries `log_to_parent` messages.
const LOG_VARIANT: &str = "Log";

/// Whether an attribute may go on a server declaration (it then applies to the whole server).
pub(crate) fn allowed_on_server(a: &syn::Attribute) -> bool {
    [
        "cfg", "cfg_attr", "doc", "allow", "warn", "deny", "forbid", "expect",
    ]
    .iter()
    .any(|name| a.path().is_ident(name))
}

pub(crate) fn check(server: &Server) -> syn::Result<()> {
    let mut errors = Errors::default();
    for e in &server.errors {
        errors.push(e.clone());
    }
    let mut seen_state: Vec<String> = Vec::new();
    for s in &server.states {
        let name = s.name.to_string();
        if s.ty.is_none() {
            errors.error_spanned_by(
                &s.name,
                format!("state `{name}` needs a type: `state {name}: TYPE = EXPR;`"),
            );
        }
        if s.init.is_none() {
            errors.error_spanned_by(
                &s.name,
                format!("state `{name}` needs an initial value: `state {name}: TYPE = EXPR;`"),
            );
        }
        if seen_state.contains(&name) {
            errors.error_spanned_by(
                &s.name,
                format!("state `{name}` is defined twice; rename or remove one of them"),
            );
        }
        seen_state.push(name);
    }
    for a in &server.attrs {
        let p = a.path();
        let allowed = [
            "cfg", "cfg_attr", "doc", "allow", "warn", "deny", "forbid", "expect",
        ]
        .iter()
        .any(|name| p.is_ident(name));
        if !allowed {
            let shown = quote::ToTokens::to_token_stream(p)
                .to_string()
                .replace(' ', "");
            errors.error_spanned_by(
                a,
                format!(
                    "`#[{shown}]` cannot go on a server declaration: only `#[cfg]`, `#[cfg_attr]`, doc comments and lint attributes (`#[allow]`, ..) can, and they apply to everything the server generates; put other attributes on a method"
                ),
            );
        }
    }
    let mut seen: Vec<(String, String)> = Vec::new();
    for m in &server.methods {
        // As the expansion names things: `r#new` is the method `new`.
        let name = syn::ext::IdentExt::unraw(&m.name).to_string();
        let variant = super::expand::camel(&name);
        if CLIENT_METHODS.contains(&name.as_str()) {
            let client = super::expand::camel(&syn::ext::IdentExt::unraw(&server.name).to_string());
            errors.error_spanned_by(
                &m.name,
                format!("`{name}` is taken by the generated `{client}Client::{name}`; rename the method"),
            );
        } else if variant == LOG_VARIANT {
            errors.error_spanned_by(
                &m.name,
                format!("`{name}` would become the variant `{LOG_VARIANT}`, which carries `log_to_parent` messages; rename the method"),
            );
        }
        if let Some((first, _)) = seen.iter().find(|(n, v)| *n == name || *v == variant) {
            let what = if *first == name {
                format!("a method named `{name}` is defined twice; rename or remove one of them")
            } else {
                format!("`{name}` and `{first}` both become the request variant `{variant}`; rename one of them")
            };
            errors.error_spanned_by(&m.name, what);
        }
        seen.push((name, variant));
        let mut args: Vec<String> = Vec::new();
        for a in &m.args {
            let an = a.name.to_string();
            if args.contains(&an) {
                errors.error_spanned_by(
                    &a.name,
                    format!("argument `{an}` is listed twice; rename one of them"),
                );
            }
            args.push(an);
        }
    }
    errors.finish()
}
