//! What the macro accepts: a plain struct, and argument values that make sense.

use crate::attr::Args;
use syn::{Error, Fields, Ident, Item, LitStr};

/// The struct the macro is applied to.
pub struct Target {
    pub ident: Ident,
    /// A unit struct is built as is; others through `Default`.
    pub unit: bool,
}

pub fn target(item: &Item) -> syn::Result<Target> {
    let Item::Struct(s) = item else {
        return Err(Error::new_spanned(
            item,
            "#[idp_worker] goes on a struct, e.g. `#[idp_worker] struct App;`",
        ));
    };
    if !s.generics.params.is_empty() || s.generics.where_clause.is_some() {
        return Err(Error::new_spanned(
            &s.generics,
            "#[idp_worker] structs cannot be generic: the Worker and its Durable Object are exported as one concrete type",
        ));
    }
    Ok(Target {
        ident: s.ident.clone(),
        unit: matches!(s.fields, Fields::Unit),
    })
}

fn is_js_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

fn check_prefix(p: &LitStr) -> syn::Result<()> {
    let v = p.value();
    if !v.starts_with('/') || v.ends_with('/') || v.contains(['?', '#', ' ']) {
        return Err(Error::new_spanned(
            p,
            "`prefix` is a path like \"/oauth\": a leading slash, no trailing slash, no query",
        ));
    }
    Ok(())
}

fn check_base_url(u: &LitStr) -> syn::Result<()> {
    match url::Url::parse(&u.value()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(_) => Err(Error::new_spanned(
            u,
            "`base_url` must be an http(s) URL with a host",
        )),
        Err(e) => Err(Error::new_spanned(
            u,
            format!("`base_url` is not a URL: {e}"),
        )),
    }
}

pub fn args(args: &Args) -> syn::Result<()> {
    if let Some(p) = &args.prefix {
        check_prefix(p)?;
    }
    if let Some(u) = &args.base_url {
        check_base_url(u)?;
    }
    for lit in [&args.class, &args.binding].into_iter().flatten() {
        if !is_js_identifier(&lit.value()) {
            return Err(Error::new_spanned(
                lit,
                "must be a JavaScript identifier matching the class_name / binding name in wrangler.toml",
            ));
        }
    }
    for lit in [&args.name, &args.version].into_iter().flatten() {
        if lit.value().trim().is_empty() {
            return Err(Error::new_spanned(lit, "must not be empty"));
        }
    }
    Ok(())
}
