//! Procedural macros for `idp`. Use them through the `idp` crate
//! (`idp::idp_worker`), which re-exports them and everything the expansion
//! names.

mod attr;
mod check;
mod expand;

use proc_macro::TokenStream;

/// Turns a struct into a Worker with the OAuth identity provider wired in.
///
/// See `idp::idp_worker` for the full documentation.
#[proc_macro_attribute]
pub fn idp_worker(args: TokenStream, item: TokenStream) -> TokenStream {
    let item2: proc_macro2::TokenStream = item.clone().into();
    let result = syn::parse::<attr::Args>(args).and_then(|args| {
        check::args(&args)?;
        let item = syn::parse::<syn::Item>(item)?;
        let target = check::target(&item)?;
        Ok(expand::expand(&args, &target, &item))
    });
    match result {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            // Keep the user's item so one mistake does not cascade.
            let err = e.into_compile_error();
            quote::quote!(#item2 #err).into()
        }
    }
}
