//! Command templates for cluster schedulers (`srun -w {host} {exe} {args}`).

/// Fills `{host}`, `{exe}` and `{args}` in `template` in one pass: each placeholder found in the
/// template is replaced by its (already shell-quoted) text, and the text substituted is never
/// read for placeholders again, so an argument that contains `{exe}` or quotes stays an argument.
pub(crate) fn fill(template: &str, host: &str, exe: &str, args: &str) -> String {
    let mut out = String::with_capacity(template.len() + host.len() + exe.len() + args.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (text, used) = [("{host}", host), ("{exe}", exe), ("{args}", args)]
            .into_iter()
            .find(|(p, _)| tail.starts_with(p))
            .map_or(("{", 1), |(p, t)| (t, p.len()));
        out.push_str(text);
        rest = &tail[used..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn each_placeholder_is_filled_once_and_substitutions_are_not_read_again() {
        assert_eq!(
            fill("srun -w {host} {exe} {args}", "h", "'/bin/x'", "'a'"),
            "srun -w h '/bin/x' 'a'"
        );
        // An argument that looks like a placeholder stays as it is.
        assert_eq!(
            fill("{args} {exe}", "'{exe}'", "E", "'{host}'"),
            "'{host}' E"
        );
        // Unknown braces pass through.
        assert_eq!(fill("a {b} {host", "h", "e", "x"), "a {b} {host");
    }
}
