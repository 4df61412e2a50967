//! Parsing `#[idp_worker(...)]` arguments into a typed value.

use syn::parse::{Parse, ParseStream};
use syn::{LitBool, LitStr, Token};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(version);
    syn::custom_keyword!(prefix);
    syn::custom_keyword!(class);
    syn::custom_keyword!(binding);
    syn::custom_keyword!(base_url);
    syn::custom_keyword!(allow_insecure_loopback);
}

/// The macro's arguments; every one is optional.
#[derive(Default)]
pub struct Args {
    pub name: Option<LitStr>,
    pub version: Option<LitStr>,
    pub prefix: Option<LitStr>,
    pub class: Option<LitStr>,
    pub binding: Option<LitStr>,
    pub base_url: Option<LitStr>,
    pub allow_insecure_loopback: Option<LitBool>,
}

fn set<T: syn::spanned::Spanned>(slot: &mut Option<T>, value: T, key: &str) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            value.span(),
            format!("`{key}` is given twice; keep one"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let look = input.lookahead1();
            macro_rules! string_arg {
                ($kw:ident, $field:ident) => {
                    if look.peek(kw::$kw) {
                        input.parse::<kw::$kw>()?;
                        input.parse::<Token![=]>()?;
                        let v: LitStr = input.parse()?;
                        set(&mut args.$field, v, stringify!($field))?;
                        if !input.is_empty() {
                            input.parse::<Token![,]>()?;
                        }
                        continue;
                    }
                };
            }
            string_arg!(name, name);
            string_arg!(version, version);
            string_arg!(prefix, prefix);
            string_arg!(class, class);
            string_arg!(binding, binding);
            string_arg!(base_url, base_url);
            if look.peek(kw::allow_insecure_loopback) {
                input.parse::<kw::allow_insecure_loopback>()?;
                input.parse::<Token![=]>()?;
                let v: LitBool = input.parse()?;
                set(
                    &mut args.allow_insecure_loopback,
                    v,
                    "allow_insecure_loopback",
                )?;
                if !input.is_empty() {
                    input.parse::<Token![,]>()?;
                }
                continue;
            }
            return Err(look.error());
        }
        Ok(args)
    }
}
