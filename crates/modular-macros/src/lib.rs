//! `#[derive(DynamicConfig)]` for modular. See `modular_core::config::DynamicConfig`.
use proc_macro::TokenStream;

mod expand;

/// Derives `modular_core::DynamicConfig`: a field-by-field diff, a static field table and
/// an optional validation hook.
#[proc_macro_derive(DynamicConfig, attributes(config))]
pub fn derive_dynamic_config(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::expand(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
