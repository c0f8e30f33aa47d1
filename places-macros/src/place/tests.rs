use quote::quote;

use super::place;

fn expand_ok(item: proc_macro2::TokenStream) -> syn::File {
    let out = place(quote!(), item);
    let text = out.to_string();
    assert!(!text.contains("compile_error"), "unexpected error: {text}");
    syn::parse2(out).expect("expansion parses as items")
}

#[test]
fn keeps_the_function_and_registers_it() {
    let file = expand_ok(quote! {
        fn hello(ch: PlaceChannel<String>) { let _ = ch; }
    });
    assert_eq!(
        file.items.len(),
        2,
        "the function and one registration block"
    );
    assert!(matches!(&file.items[0], syn::Item::Fn(f) if f.sig.ident == "hello"));
    let text = quote::ToTokens::to_token_stream(&file.items[1]).to_string();
    assert!(text.contains("inventory :: submit"), "{text}");
    assert!(text.contains("\"hello\""), "{text}");
}

#[test]
fn accepts_exit_codes_and_paths() {
    expand_ok(quote! { fn a(ch: places::PlaceChannel<u8, u16>) -> i32 { 0 } });
    expand_ok(quote! { fn b(_: PlaceChannel<u8>) -> () {} });
    expand_ok(quote! { pub(crate) fn c(mut ch: PlaceChannel<Vec<u8>, (u8, String)>) {} });
    expand_ok(quote! { fn d(ch: places::rmpi::RmpiChannel<Vec<f64>, u64>) {} });
}

#[test]
fn reports_every_error_at_once() {
    let out = place(
        quote!(),
        quote! { async unsafe fn bad<T>(a: u8, b: u8) -> String { String::new() } },
    )
    .to_string();
    for needle in [
        "`async`",
        "`unsafe`",
        "generic",
        "one parameter",
        "place channel",
        "returns",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in {out}");
    }
    // The fallback keeps the user's function so callers see no follow-on errors.
    assert!(out.contains("fn bad"), "{out}");
}

#[test]
fn the_crate_argument_overrides_the_path() {
    let out = place(
        quote!(crate = ::my::places),
        quote! { fn e(ch: PlaceChannel<u8>) {} },
    )
    .to_string();
    assert!(out.contains(":: my :: places :: __private"), "{out}");
    let bad = place(quote!(krate = x), quote! { fn e(ch: PlaceChannel<u8>) {} }).to_string();
    assert!(bad.contains("unknown `#[place]` argument"), "{bad}");
}

#[test]
fn a_where_clause_alone_is_named_as_such() {
    let out = place(
        quote!(),
        quote! { fn w(ch: PlaceChannel<u8>) where u8: Copy {} },
    )
    .to_string();
    assert!(out.contains("cannot have a `where` clause"), "{out}");
    assert!(!out.contains("cannot be generic"), "{out}");
}

#[test]
fn a_named_non_channel_type_gets_the_alias_hint() {
    let alias = place(quote!(), quote! { fn a(ch: Chan) {} }).to_string();
    assert!(alias.contains("type alias"), "{alias}");
    let byte = place(quote!(), quote! { fn b(x: u8) {} }).to_string();
    assert!(
        byte.contains("must be a place channel") && !byte.contains("type alias"),
        "{byte}"
    );
}
