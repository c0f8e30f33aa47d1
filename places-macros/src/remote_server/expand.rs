//! Generates, for a server `bank`: `BankRequest` and `BankResponse` (messages), the entry
//! `make_bank` (a registered place), a stub `bank_METHOD(&dest, args..)` per method, and the
//! typed client `BankClient`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::Ident;

use super::parse::{Method, MethodKind, Server};
use super::Flavor;

/// `new_account` -> `NewAccount`.
pub(crate) fn camel(snake: &str) -> String {
    snake
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

struct Names {
    call: Ident,
    reply: Ident,
    request: Ident,
    response: Ident,
    client: Ident,
    entry: Ident,
}

fn names(server: &Server) -> Names {
    let base = camel(&syn::ext::IdentExt::unraw(&server.name).to_string());
    let span = server.name.span();
    Names {
        call: Ident::new(&format!("{base}Call"), span),
        reply: Ident::new(&format!("{base}Answer"), span),
        request: Ident::new(&format!("{base}Request"), span),
        response: Ident::new(&format!("{base}Response"), span),
        client: Ident::new(&format!("{base}Client"), span),
        entry: format_ident!("make_{}", syn::ext::IdentExt::unraw(&server.name)),
    }
}

fn variant(m: &Method) -> Ident {
    Ident::new(
        &camel(&syn::ext::IdentExt::unraw(&m.name).to_string()),
        m.name.span(),
    )
}

/// The message enums, shared by the full expansion and the fallback.
fn messages(server: &Server, krate: &syn::Path, n: &Names) -> TokenStream {
    let vis = &server.vis;
    let serde = quote!(#krate::__private::serde);
    let serde_str = serde.to_string().replace(' ', "");
    let sname = server.name.to_string();
    let req_variants = server.methods.iter().map(|m| {
        let v = variant(m);
        let fields = m.args.iter().map(|a| {
            let (an, at) = (&a.name, &a.ty);
            let doc = format!("The `{an}` argument.");
            quote!(#[doc = #doc] #an: #at)
        });
        let doc = format!("A call of `{}`.", m.name);
        quote!(#[doc = #doc] #v { #(#fields),* })
    });
    let resp_variants = server.methods.iter().filter_map(|m| match &m.kind {
        MethodKind::Rpc { output } => {
            let v = variant(m);
            let doc = format!("The reply of `{}`.", m.name);
            Some(quote!(#[doc = #doc] #v(#output)))
        }
        MethodKind::Cast => None,
    });
    let (call, reply, req, resp) = (&n.call, &n.reply, &n.request, &n.response);
    let call_doc = format!("A call of the `{sname}` server.");
    let reply_doc = format!("An answer (or a log message) of the `{sname}` server.");
    let req_doc = format!(
        "A call to the `{sname}` server as it travels, with the id its reply carries: the messages a `{sname}` server's place receives."
    );
    let resp_doc = format!(
        "A reply of the `{sname}` server as it travels, with the id of the call it answers: the messages a `{sname}` server's place sends."
    );
    quote! {
        #[doc = #call_doc]
        #[derive(#serde::Serialize, #serde::Deserialize)]
        #[serde(crate = #serde_str)]
        #[allow(dead_code)]
        #vis enum #call {
            #(#req_variants,)*
        }

        #[doc = #reply_doc]
        #[derive(#serde::Serialize, #serde::Deserialize)]
        #[serde(crate = #serde_str)]
        #[allow(dead_code)]
        #vis enum #reply {
            #(#resp_variants,)*
            /// A message of `log_to_parent` from a method body.
            Log(#krate::LogRecord),
        }

        #[doc = #req_doc]
        #[allow(dead_code)]
        #vis type #req = #krate::RpcRequest<#call>;

        #[doc = #resp_doc]
        #[allow(dead_code)]
        #vis type #resp = #krate::RpcResponse<#reply>;
    }
}

/// The generated items of a definition that has errors, with every method body replaced and
/// every invalid piece left out, so that its uses elsewhere cause no further errors: only the
/// macro's own errors are reported.
pub(crate) fn fallback(server: &Server, flavor: Flavor) -> TokenStream {
    let mut clean = server.clone();
    clean.attrs.retain(super::check::allowed_on_server);
    clean.states.retain(|s| s.ty.is_some() && s.init.is_some());
    let mut variants: Vec<String> = vec!["Log".to_owned()];
    clean.methods.retain(|m| {
        let v = variant(m).to_string();
        let keep = !variants.contains(&v)
            && !["new", "with_deadline"]
                .contains(&syn::ext::IdentExt::unraw(&m.name).to_string().as_str());
        variants.push(v);
        keep
    });
    for m in &mut clean.methods {
        let mut names: Vec<String> = Vec::new();
        m.args.retain(|a| {
            let n = a.name.to_string();
            let keep = !names.contains(&n);
            names.push(n);
            keep
        });
        m.body = syn::parse_quote!({
            ::core::unreachable!("not compiled: the server definition has errors")
        });
    }
    expand(&clean, flavor)
}

pub(crate) fn expand(server: &Server, flavor: Flavor) -> TokenStream {
    let krate = crate::crate_path::runtime_path(server.krate.clone());
    let n = names(server);
    let vis = &server.vis;
    let attrs = &server.attrs[..];
    let sname = server.name.to_string();
    let (req, resp, client, entry) = (&n.request, &n.response, &n.client, &n.entry);
    let (call_ty, reply_ty) = (&n.call, &n.reply);
    let msgs = messages(server, &krate, &n);

    let states = server.states.iter().map(|s| {
        let (sn, st, si) = (&s.name, &s.ty, &s.init);
        quote!(#[allow(unused_mut)] let mut #sn: #st = #si;)
    });

    // The server loop's arms: each body runs in a closure of its own, so `return` and `?`
    // end that call, not the server.
    let reply_to = Ident::new("__places_reply", Span::mixed_site());
    // The entry's channel and a request's route get names no state item or argument can shadow.
    let ch = Ident::new("__places_ch", Span::mixed_site());
    let route = Ident::new("__places_route", Span::mixed_site());
    let call_id = Ident::new("__places_id", Span::mixed_site());
    let arms = server.methods.iter().map(|m| {
        let v = variant(m);
        let fields = m.args.iter().map(|a| &a.name);
        let body = &m.body;
        match &m.kind {
            MethodKind::Rpc { output } => quote! {
                #call_ty::#v { #(#fields),* } => {
                    let __places_out: #output = (|| -> #output #body)();
                    if !#reply_to(#call_id, #reply_ty::#v(__places_out)) {
                        break;
                    }
                }
            },
            MethodKind::Cast => quote! {
                #call_ty::#v { #(#fields),* } => {
                    (|| #body)();
                }
            },
        }
    });

    let entry_doc = format!(
        "The `{sname}` server's entry: start it with `dynamic_place`/`supervise_place_at` by the name `make_{sname}`."
    );
    let server_fn = match flavor {
        Flavor::Private => quote! {
            #[doc = #entry_doc]
            #[#krate::place(crate = #krate)]
            #vis fn #entry(#ch: #krate::PlaceChannel<#resp, #req>) {
                #(#states)*
                #krate::__private::rpc::with_server_log(
                    {
                        let log = #ch.sender();
                        move |record| {
                            let _ = log.put(#krate::RpcResponse { id: 0, reply: #reply_ty::Log(record) });
                        }
                    },
                    || {
                        // Replies go back on the one channel; a creator that is gone ends the server.
                        let #reply_to = |#call_id: u64, r: #reply_ty| {
                            ::core::matches!(
                                #ch.put(#krate::RpcResponse { id: #call_id, reply: r }),
                                ::core::result::Result::Ok(())
                                    | ::core::result::Result::Err(#krate::ChannelError::Dropped { .. })
                            )
                        };
                        loop {
                            let (#call_id, __places_request) = match #ch.get() {
                                ::core::result::Result::Ok(#krate::RpcRequest { id, call }) => (id, call),
                                // A caller could not decode an earlier reply: the server goes on.
                                ::core::result::Result::Err(#krate::ChannelError::Dropped { .. }) => continue,
                                ::core::result::Result::Err(_) => break,
                            };
                            match __places_request {
                                #(#arms)*
                            }
                        }
                    },
                );
            }
        },
        Flavor::Named => quote! {
            #[doc = #entry_doc]
            #[#krate::place(crate = #krate)]
            #vis fn #entry(#ch: #krate::PlaceChannel<#resp, #krate::Routed<#req, #resp>>) {
                #(#states)*
                #krate::__private::rpc::with_server_log(
                    {
                        let log = #ch.sender();
                        move |record| {
                            let _ = log.put(#krate::RpcResponse { id: 0, reply: #reply_ty::Log(record) });
                        }
                    },
                    || {
                        loop {
                            let (#call_id, __places_request, #route) = match #ch.get() {
                                ::core::result::Result::Ok(#krate::Routed {
                                    msg: #krate::RpcRequest { id, call },
                                    reply,
                                }) => (id, call, reply),
                                ::core::result::Result::Err(#krate::ChannelError::Dropped { .. }) => continue,
                                ::core::result::Result::Err(_) => break,
                            };
                            // A client that left misses its reply; the others are still served.
                            let #reply_to = |#call_id: u64, r: #reply_ty| {
                                let _ = #route.put(#krate::RpcResponse { id: #call_id, reply: r });
                                true
                            };
                            match __places_request {
                                #(#arms)*
                            }
                        }
                    },
                );
            }
        },
    };

    let client_methods = server.methods.iter().map(|m| {
        let v = variant(m);
        let mname = &m.name;
        let mattrs = &m.attrs;
        let params = m.args.iter().map(|a| {
            let (an, at) = (&a.name, &a.ty);
            quote!(#an: #at)
        });
        let fields = m.args.iter().map(|a| &a.name);
        let call = format!("{sname}::{mname}");
        match &m.kind {
            MethodKind::Rpc { output } => quote! {
                #(#mattrs)*
                #[doc = ""]
                #[doc = "# Errors"]
                #[doc = ""]
                #[doc = "[`RpcError`](places::RpcError) when the server is gone or the deadline passes."]
                pub fn #mname(&self, #(#params),*) -> ::core::result::Result<#output, #krate::RpcError> {
                    #krate::__private::rpc::call(
                        self.dest,
                        #call,
                        #call_ty::#v { #(#fields),* },
                        self.deadline,
                        |r| match r {
                            #reply_ty::#v(v) => #krate::__private::Reply::Value(v),
                            #reply_ty::Log(l) => #krate::__private::Reply::Log(l),
                            #[allow(unreachable_patterns)]
                            _ => #krate::__private::Reply::Other,
                        },
                    )
                }
            },
            MethodKind::Cast => quote! {
                #(#mattrs)*
                #[doc = ""]
                #[doc = "# Errors"]
                #[doc = ""]
                #[doc = "[`RpcError`](places::RpcError) when the server is gone."]
                pub fn #mname(&self, #(#params),*) -> ::core::result::Result<(), #krate::RpcError> {
                    #krate::__private::rpc::cast(self.dest, #call_ty::#v { #(#fields),* })
                }
            },
        }
    });

    let dest = Ident::new("__places_dest", Span::mixed_site());
    let stubs = server.methods.iter().map(|m| {
        let mname = &m.name;
        let stub = format_ident!(
            "{}_{}",
            syn::ext::IdentExt::unraw(&server.name),
            syn::ext::IdentExt::unraw(&m.name)
        );
        let params: Vec<TokenStream> = m
            .args
            .iter()
            .map(|a| {
                let (an, at) = (&a.name, &a.ty);
                quote!(#an: #at)
            })
            .collect();
        let fields = m.args.iter().map(|a| &a.name);
        let output = match &m.kind {
            MethodKind::Rpc { output } => quote!(#output),
            MethodKind::Cast => quote!(()),
        };
        let doc = format!(
            "Calls `{mname}` on the `{sname}` server at `dest` (Racket's `{sname}-{mname}`)."
        );
        quote! {
            #[doc = #doc]
            #[doc = ""]
            #[doc = "# Errors"]
            #[doc = ""]
            #[doc = "[`RpcError`](places::RpcError) when the server is gone."]
            #[allow(dead_code)]
            #vis fn #stub<__PlacesC: #krate::Channel<#req, #resp> + ?::core::marker::Sized>(
                #dest: &__PlacesC,
                #(#params),*
            ) -> ::core::result::Result<#output, #krate::RpcError> {
                #client::new(#dest).#mname(#(#fields),*)
            }
        }
    });

    let client_doc = format!(
        "A typed client of the `{sname}` server over any channel to it (a local or remote place, or a named-place connection)."
    );
    let items = quote! {
        #msgs

        #server_fn

        #[doc = #client_doc]
        #[allow(dead_code)]
        #vis struct #client<'a, C: ?::core::marker::Sized> {
            dest: &'a C,
            deadline: ::core::option::Option<::core::time::Duration>,
        }

        #[allow(dead_code)]
        impl<'a, C: #krate::Channel<#req, #resp> + ?::core::marker::Sized> #client<'a, C> {
            /// A client of the server at `dest`, without a deadline.
            pub fn new(dest: &'a C) -> Self {
                Self { dest, deadline: ::core::option::Option::None }
            }

            /// The same client, whose calls give up after `deadline` with `RpcError::Deadline`.
            pub fn with_deadline(mut self, deadline: ::core::time::Duration) -> Self {
                self.deadline = ::core::option::Option::Some(deadline);
                self
            }

            #(#client_methods)*
        }

        #(#stubs)*
    };
    spread_attributes(items, attrs, entry)
}

/// Puts the attributes written on the server declaration where they mean what they say: `cfg`,
/// `cfg_attr` and lint attributes on every generated item (so a `#[cfg(..)]` takes the whole
/// server in or out), doc comments on the entry `make_NAME`, which stands for the server.
/// (`check` has refused every other attribute.)
fn spread_attributes(items: TokenStream, attrs: &[syn::Attribute], entry: &Ident) -> TokenStream {
    if attrs.is_empty() {
        return items;
    }
    let Ok(mut file) = syn::parse2::<syn::File>(items.clone()) else {
        return items;
    };
    let (docs, everywhere): (Vec<_>, Vec<_>) = attrs
        .iter()
        .cloned()
        .partition(|a| a.path().is_ident("doc"));
    for item in &mut file.items {
        let (item_attrs, is_entry) = match item {
            syn::Item::Fn(f) => {
                let is_entry = f.sig.ident == *entry;
                (&mut f.attrs, is_entry)
            }
            syn::Item::Enum(i) => (&mut i.attrs, false),
            syn::Item::Struct(i) => (&mut i.attrs, false),
            syn::Item::Impl(i) => (&mut i.attrs, false),
            syn::Item::Type(i) => (&mut i.attrs, false),
            syn::Item::Const(i) => (&mut i.attrs, false),
            syn::Item::Static(i) => (&mut i.attrs, false),
            syn::Item::Mod(i) => (&mut i.attrs, false),
            syn::Item::Use(i) => (&mut i.attrs, false),
            syn::Item::Macro(i) => (&mut i.attrs, false),
            syn::Item::Trait(i) => (&mut i.attrs, false),
            _ => continue,
        };
        let mut front = everywhere.clone();
        if is_entry {
            front.extend(docs.iter().cloned());
        }
        front.append(item_attrs);
        *item_attrs = front;
    }
    quote!(#file)
}
