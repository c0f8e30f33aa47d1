//! Generates the entry's registration beside the unchanged function.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::parse::{EntryFn, Shape};

pub(crate) fn expand(entry: &EntryFn) -> TokenStream {
    let func = &entry.func;
    let name = &func.sig.ident;
    let name_str = name.to_string();
    let krate = &entry.krate;
    // Bound errors (a message type that is not `Serialize`, ...) point at the channel type.
    let ty_span = entry.channel_ty.span();
    let mut name_at_ty = name.clone();
    name_at_ty.set_span(ty_span);
    // Only `EntryTypes::of` carries the `Message` bounds, so a bad type is reported once per
    // missing trait, not once per use.
    let types = quote_spanned!(ty_span=> #krate::__private::EntryTypes::of(#name_at_ty));
    let prepare =
        quote_spanned!(ty_span=> #krate::__private::prepare_entry(__places_ch, #name_at_ty));
    let line = quote_spanned!(name.span()=> ::core::line!());
    if entry.shape == Shape::Thunk {
        let types = quote_spanned!(ty_span=> #krate::__private::ThunkTypes::of(#name_at_ty));
        return quote! {
            #func

            #[doc(hidden)]
            const _: () = {
                fn __places_call() -> ::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send> {
                    ::std::boxed::Box::new(#name())
                }
                #krate::__private::inventory::submit! {
                    #krate::__private::Entry::new_thunk(
                        #krate::__private::EntryKey::new(::core::module_path!(), #name_str),
                        ::core::file!(),
                        #line,
                        #types,
                        __places_call,
                    )
                }
            };
        };
    }
    quote! {
        #func

        #[doc(hidden)]
        const _: () = {
            fn __places_prepare(
                __places_ch: #krate::__private::ErasedChannel,
            ) -> ::core::result::Result<#krate::__private::EntryThunk, #krate::__private::ErasedChannel> {
                #prepare
            }
            #krate::__private::inventory::submit! {
                #krate::__private::Entry::new(
                    #krate::__private::EntryKey::new(::core::module_path!(), #name_str),
                    ::core::file!(),
                    #line,
                    #types,
                    __places_prepare,
                )
            }
        };
    }
}
