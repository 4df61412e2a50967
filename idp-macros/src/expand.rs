//! Code generation. Everything is named through `::idp::__private`, so the
//! user's crate needs no dependency but `idp`, and the generated items sit in
//! `const _: () = { ... };` so they add no names to the user's module.

use crate::attr::Args;
use crate::check::Target;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Item;

pub fn expand(args: &Args, target: &Target, item: &Item) -> TokenStream {
    let ident = &target.ident;
    let class = args
        .class
        .as_ref()
        .map_or_else(|| "OAuthProviders".to_owned(), syn::LitStr::value);
    let build = if target.unit {
        quote!(#ident)
    } else {
        quote_spanned!(ident.span()=> <#ident as ::core::default::Default>::default())
    };
    // Points at the struct when the trait is missing; the trait's
    // `on_unimplemented` note says what to write.
    let requires = quote_spanned! {ident.span()=>
        fn __idp_requires_idp_worker<T: ::idp::workers::IdpWorker>() {}
        let _ = __idp_requires_idp_worker::<#ident>;
    };
    let config = config(args, &class);
    let object = object(ident, &class);
    let entry = entry();
    quote! {
        #item

        const _: () = {
            // The wasm-bindgen expansion names `wasm_bindgen` relatively.
            use ::idp::__private::worker::wasm_bindgen;
            use ::idp::__private::worker::wasm_bindgen::prelude::wasm_bindgen;

            const _: fn() = || { #requires };

            #config

            #[allow(dead_code)]
            fn __idp_app() -> #ident {
                #build
            }

            #object

            #entry
        };
    }
}

/// `__idp_config()`: the configuration the attribute's arguments give.
fn config(args: &Args, class: &str) -> TokenStream {
    let lit = |v: &Option<syn::LitStr>, default: TokenStream| match v {
        Some(l) => quote!(#l),
        None => default,
    };
    let name = lit(&args.name, quote!(::core::env!("CARGO_PKG_NAME")));
    let version = lit(&args.version, quote!(::core::env!("CARGO_PKG_VERSION")));
    let prefix = lit(&args.prefix, quote!("/oauth"));
    let binding = args
        .binding
        .as_ref()
        .map_or_else(|| class.to_owned(), syn::LitStr::value);
    let allow = args
        .allow_insecure_loopback
        .as_ref()
        .is_some_and(|b| b.value);
    let base_url = args.base_url.as_ref().map(|u| {
        quote! {
            let config = config.base_url(
                ::idp::__private::url::Url::parse(#u).expect("base_url was checked when the macro expanded"),
            );
        }
    });
    quote! {
        #[allow(dead_code)]
        fn __idp_config() -> ::idp::workers::Config {
            let config = ::idp::workers::Config::new(#name, #version)
                .prefix(#prefix)
                .binding(#binding)
                .allow_insecure_loopback(#allow);
            #base_url
            config
        }
    }
}

/// The Durable Object class `class` (kept out of the Worker's script of a
/// split deployment).
fn object(ident: &syn::Ident, class: &str) -> TokenStream {
    let wb = quote!(::idp::__private::worker::wasm_bindgen);
    let wbf = quote!(::idp::__private::worker::wasm_bindgen_futures);
    let js = quote!(::idp::__private::worker::js_sys);
    let sys = quote!(::idp::__private::worker::worker_sys);
    quote! {
        ::idp::__idp_objects! {
            /// The Durable Object class holding each user's credentials.
            #[wasm_bindgen(js_name = #class, wasm_bindgen = #wb)]
            pub struct __IdpProvidersObject {
                inner: ::idp::workers::ProvidersObject<::idp::workers::AppHook<#ident>>,
            }

            #[wasm_bindgen(js_class = #class, wasm_bindgen = #wb, wasm_bindgen_futures = #wbf, js_sys = #js)]
            impl __IdpProvidersObject {
                #[wasm_bindgen(constructor)]
                pub fn new(
                    state: #sys::DurableObjectState,
                    env: ::idp::__private::worker::Env,
                ) -> Self {
                    Self {
                        inner: ::idp::workers::ProvidersObject::new(
                            ::idp::__private::worker::durable::State::from(state),
                            env,
                            ::idp::workers::AppHook(__idp_app()),
                        ),
                    }
                }

                #[wasm_bindgen(js_name = fetch)]
                pub async fn fetch(
                    &self,
                    req: #sys::web_sys::Request,
                ) -> ::core::result::Result<#wb::JsValue, #wb::JsValue> {
                    ::idp::__private::object_fetch(&self.inner, req).await
                }

                #[wasm_bindgen(js_name = alarm)]
                pub async fn alarm(&self) -> ::core::result::Result<#wb::JsValue, #wb::JsValue> {
                    ::idp::__private::object_alarm(&self.inner).await
                }
            }
        }
    }
}

/// The Worker's fetch entry point (kept out of the objects' script of a
/// split deployment).
fn entry() -> TokenStream {
    let wb = quote!(::idp::__private::worker::wasm_bindgen);
    let wbf = quote!(::idp::__private::worker::wasm_bindgen_futures);
    let js = quote!(::idp::__private::worker::js_sys);
    let sys = quote!(::idp::__private::worker::worker_sys);
    quote! {
        ::idp::__idp_entry! {
            /// The Worker's fetch entry point.
            #[wasm_bindgen(js_name = fetch, wasm_bindgen = #wb, wasm_bindgen_futures = #wbf, js_sys = #js)]
            pub async fn __idp_worker_fetch(
                req: #sys::web_sys::Request,
                env: ::idp::__private::worker::Env,
                ctx: #sys::Context,
            ) -> ::core::result::Result<#wb::JsValue, #wb::JsValue> {
                ::idp::__private::serve(__idp_app(), __idp_config(), req, env, ctx).await
            }
        }
    }
}
