//! `#[procedure]`, `#[procedure(mapper)]`, `#[procedure(reducer)]`: registers a plain function
//! `fn(I) -> O` under its module path and name, so that any node can call it by address.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::errors::{with_fallback, Errors};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Mapper,
    Reducer,
}

pub(crate) fn procedure(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut kind = Kind::Plain;
    let mut krate: Option<syn::Path> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("mapper") {
            kind = Kind::Mapper;
            Ok(())
        } else if meta.path.is_ident("reducer") {
            kind = Kind::Reducer;
            Ok(())
        } else if meta.path.is_ident("crate") {
            krate = Some(meta.value()?.parse::<syn::Path>()?);
            Ok(())
        } else {
            Err(meta.error(
                "unknown `procedure` argument; write `#[procedure]`, `#[procedure(mapper)]` or \
                 `#[procedure(reducer)]` (and optionally `crate = path::to::places`)",
            ))
        }
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, args) {
        errors.push(e);
    }
    let func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let e = syn::Error::new_spanned(
                &item,
                "`#[procedure]` goes on a function `fn NAME(input: I) -> O`",
            );
            return with_fallback(e, item);
        }
    };
    let sig = &func.sig;
    if let Some(a) = &sig.asyncness {
        errors.error_spanned_by(
            a,
            "a procedure cannot be `async`: write a plain `fn NAME(input: I) -> O`",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.error_spanned_by(
            &sig.generics,
            "a procedure cannot be generic: its address names one function with one input and \
             one output type; write a non-generic wrapper and register that",
        );
    }
    let input_ty = match sig.inputs.iter().collect::<Vec<_>>().as_slice() {
        [syn::FnArg::Typed(arg)] => Some((*arg.ty).clone()),
        [syn::FnArg::Receiver(r)] => {
            errors.error_spanned_by(
                r,
                "a procedure is a free function, not a method: write `fn NAME(input: I) -> O`",
            );
            None
        }
        _ => {
            errors.error_spanned_by(
                &sig.inputs,
                "a procedure takes exactly one input: write `fn NAME(input: I) -> O` (use a \
                 tuple or a struct for several values)",
            );
            None
        }
    };
    let output_ty = match &sig.output {
        syn::ReturnType::Type(_, ty) => Some((**ty).clone()),
        syn::ReturnType::Default => {
            errors.error_spanned_by(
                &sig.ident,
                "a procedure returns its output: write `fn NAME(input: I) -> O`",
            );
            None
        }
    };
    if let Err(e) = errors.finish() {
        return with_fallback(e, quote!(#func));
    }
    let (Some(input_ty), Some(output_ty)) = (input_ty, output_ty) else {
        return quote!(#func);
    };
    let krate = crate::crate_path::runtime_path(krate);
    let name = &sig.ident;
    let name_str = name.to_string();
    let span = sig.span();
    let f = quote_spanned!(span=> #name as fn(#input_ty) -> #output_ty);
    let kv = match kind {
        Kind::Plain => quote!(#krate::__private::KvOps::None),
        Kind::Mapper => quote_spanned! {span=>
            #krate::__private::KvOps::Mapper { map_sorted: {
                fn __places_map(input: &[u8]) -> ::core::result::Result<::std::vec::Vec<u8>, #krate::CodecError> {
                    #krate::__private::procedure::map_sorted(input, #f)
                }
                __places_map
            } }
        },
        Kind::Reducer => quote_spanned! {span=>
            #krate::__private::KvOps::Reducer {
                reduce: {
                    fn __places_reduce(input: &[u8]) -> ::core::result::Result<::std::vec::Vec<u8>, #krate::CodecError> {
                        #krate::__private::procedure::reduce_encoded(input, #f)
                    }
                    __places_reduce
                },
                merge: {
                    fn __places_merge(a: &[u8], b: &[u8]) -> ::core::result::Result<::std::vec::Vec<u8>, #krate::CodecError> {
                        #krate::__private::procedure::merge_encoded(a, b, #f)
                    }
                    __places_merge
                },
            }
        },
    };
    quote! {
        #func

        #[doc(hidden)]
        const _: () = {
            fn __places_call_any(
                input: ::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send>,
            ) -> ::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send> {
                #krate::__private::procedure::call_any(input, #f)
            }
            fn __places_call_encoded(
                input: &[u8],
            ) -> ::core::result::Result<::std::vec::Vec<u8>, #krate::CodecError> {
                #krate::__private::procedure::call_encoded(input, #f)
            }
            #krate::__private::inventory::submit! {
                #krate::__private::ProcedureEntry::new::<#input_ty, #output_ty>(
                    #krate::__private::EntryKey::new(::core::module_path!(), #name_str),
                    ::core::file!(),
                    ::core::line!(),
                    __places_call_any,
                    __places_call_encoded,
                    #kv,
                )
            }
        };
    }
}
