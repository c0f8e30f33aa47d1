//! Checks a server model; every problem is reported at once.

use super::parse::Server;
use crate::errors::Errors;

/// Method names the generated client already uses.
const RESERVED: [&str; 3] = ["new", "with_deadline", "log"];

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
            errors.error_spanned_by(&s.name, format!("state `{name}` is defined twice"));
        }
        seen_state.push(name);
    }
    let mut seen: Vec<(String, String)> = Vec::new();
    for m in &server.methods {
        let name = m.name.to_string();
        let variant = super::expand::camel(&name);
        if RESERVED.contains(&name.as_str()) {
            errors.error_spanned_by(
                &m.name,
                format!("`{name}` is the name of a generated item (the client's `new`, `with_deadline` or the `Log` reply); rename the method"),
            );
        }
        if let Some((first, _)) = seen.iter().find(|(n, v)| *n == name || *v == variant) {
            let what = if *first == name {
                format!("a method named `{name}` is defined twice")
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
                errors.error_spanned_by(&a.name, format!("argument `{an}` is listed twice"));
            }
            args.push(an);
        }
    }
    errors.finish()
}
