use proc_macro2::TokenStream;

pub fn expand(input: syn::DeriveInput) -> syn::Result<TokenStream> {
    Err(syn::Error::new_spanned(input.ident, "DynamicConfig derive is not written yet"))
}
