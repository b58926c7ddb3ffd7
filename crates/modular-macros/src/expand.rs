//! The derive itself: `expand` turns a struct into an `impl DynamicConfig`.
//!
//! The generated `diff_into` is, per field, an inline `!=` guarding one helper call. An unchanged
//! field costs one `PartialEq` and no call (the helpers are too large for the optimizer to
//! inline, so the guard is what keeps "no change" at a few nanoseconds), and nothing is
//! allocated until a field differs. The helpers live in `modular_core::config::diff::__private`;
//! this file only decides which one each field needs.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Field, Fields, Ident, Type};

use crate::attr::{self, ContainerAttrs, Errors};
use crate::shape::Shape;

/// Expands `#[derive(DynamicConfig)]` on `input`.
///
/// Errors carry the span of the offending token: the `enum` keyword, the unknown flag, the
/// field type that cannot be `nested`.
pub fn expand(input: DeriveInput) -> syn::Result<TokenStream> {
    let fields = named_fields(&input)?;

    let mut errors = Errors::default();
    let container = match attr::container(&input.attrs) {
        Ok(container) => {
            // Only with the struct's attributes read: a broken `#[config(..)]` is reported
            // by itself, not as a missing `deny_unknown_fields` too.
            if let Err(error) = unknown_fields_rule(&input, &container) {
                errors.push(error);
            }
            container
        }
        Err(error) => {
            errors.push(error);
            ContainerAttrs::default()
        }
    };
    let mut specs = Vec::with_capacity(fields.len());
    for field in fields {
        match FieldSpec::read(field, &container) {
            Ok(Some(spec)) => specs.push(spec),
            Ok(None) => {}
            Err(error) => errors.push(error),
        }
    }
    errors.finish()?;

    Ok(generate(&input, &container, &specs))
}

/// One field the diff looks at, with everything code generation needs.
struct FieldSpec<'a> {
    ident: &'a Ident,
    ty: &'a Type,
    /// The serde name: the path segment a change reports.
    name: String,
    shape: Shape,
    /// Set on the field or on the whole struct.
    dynamic: bool,
    sensitive: bool,
    nested: bool,
    /// Serde's serialize function for the field (`#[serde(with)]`, `serialize_with`).
    serialize_with: Option<syn::ExprPath>,
}

impl<'a> FieldSpec<'a> {
    /// `None` for a field serde never reads from configuration.
    fn read(field: &'a Field, container: &ContainerAttrs) -> syn::Result<Option<Self>> {
        let attrs = attr::field(&field.attrs)?;
        if attrs.skip {
            return Ok(None);
        }
        let Some(ident) = field.ident.as_ref() else {
            // `named_fields` only lets named fields through.
            return Err(syn::Error::new_spanned(
                field,
                "DynamicConfig needs named fields",
            ));
        };
        if let Some(span) = attrs.flatten {
            return Err(syn::Error::new(
                span,
                "DynamicConfig does not support `#[serde(flatten)]`: field paths would not match the serde keys; \
                 declare the fields directly or keep the field as `#[config(nested)]` without flatten",
            ));
        }
        let shape = Shape::of(&field.ty);
        if let (Some(span), true) = (attrs.nested, shape.is_secret()) {
            return Err(syn::Error::new(
                span,
                "`nested` cannot be used on a `Secret` field: a secret is compared as a whole and reported by fingerprint",
            ));
        }
        let plain = ident.unraw().to_string();
        let name = match (attrs.rename, container.rename_all) {
            (Some(rename), _) => rename,
            (None, Some(rule)) => rule.apply_to_field(&plain),
            (None, None) => plain,
        };
        Ok(Some(Self {
            ident,
            ty: &field.ty,
            name,
            shape,
            dynamic: container.dynamic || attrs.dynamic.is_some(),
            sensitive: attrs.sensitive.is_some(),
            nested: attrs.nested.is_some(),
            serialize_with: attrs.serialize_with,
        }))
    }

    fn diff_helper(&self) -> &'static str {
        if self.serialize_with.is_some() && !self.nested && !self.shape.is_secret() {
            // Serde serializes the whole field through the function, so the field is compared
            // and reported whole (a map too), its values in that serde form.
            return match self.shape {
                Shape::Option => "option_as",
                _ => "leaf_as",
            };
        }
        match (self.shape, self.nested) {
            (Shape::Secret, _) => "secret",
            (Shape::OptionSecret, _) => "option_secret",
            (Shape::Option, false) => "option",
            (Shape::Option, true) => "option_nested",
            (Shape::Map, false) => "map",
            (Shape::Map, true) => "map_nested",
            (Shape::Leaf, false) => "leaf",
            (Shape::Leaf, true) => "nested",
        }
    }

    fn validate_helper(&self) -> Option<&'static str> {
        if !self.nested {
            return None;
        }
        Some(match self.shape {
            Shape::Option => "validate_option_nested",
            Shape::Map => "validate_map_nested",
            _ => "validate_nested",
        })
    }

    /// Where errors in this field's generated code are reported: on the field type (for a
    /// nested `Option<T>` or map, on `T` or the value type), so a type that lacks `PartialEq`,
    /// `Serialize` or `DynamicConfig` is pointed at. Name resolution stays at the call site,
    /// so `self` and the method's parameters resolve even when the struct comes out of a
    /// `macro_rules!`.
    fn error_span(&self) -> Span {
        let ty = self.nested_type().unwrap_or(self.ty);
        Span::call_site().located_at(ty.span())
    }

    /// The field name, located at `span`.
    fn ident_at(&self, span: Span) -> Ident {
        let mut ident = self.ident.clone();
        ident.set_span(ident.span().located_at(span));
        ident
    }

    /// For a nested field, a trait-bound assertion on the field, located on its type. It runs
    /// before the helper call in each generated method: rustc then reports the unsatisfied
    /// bound once, on the field type, as "the trait bound `X: DynamicConfig` is not
    /// satisfied", and drops the helper call's duplicate (same span, same predicate).
    fn nested_check(&self) -> Option<TokenStream> {
        let assert = assert_fn_name(self.shape)?;
        if !self.nested {
            return None;
        }
        let span = self.error_span();
        let assert = Ident::new(assert, span);
        let field = self.ident_at(span);
        Some(quote_spanned! {span=> #assert(&self.#field); })
    }

    /// The type the compile-time probe asks about (does it derive `DynamicConfig`?), and
    /// whether the field holds one value of it or entries (a map's values, a `Vec`'s items).
    /// `None` for a secret, which is redacted whole.
    fn probe(&self) -> Option<(&'a Type, Probed)> {
        match self.shape {
            Shape::Secret | Shape::OptionSecret => None,
            Shape::Option => Some((self.shape.nested_type(self.ty), Probed::Value)),
            Shape::Map => Some((self.shape.nested_type(self.ty), Probed::Entries)),
            Shape::Leaf => Some(match Shape::vec_element(self.ty) {
                Some(item) => (item, Probed::Entries),
                None => (self.ty, Probed::Value),
            }),
        }
    }

    /// How a changed value of this field is redacted when shown: by its type's rules when
    /// the type derives `DynamicConfig` (`None` otherwise, decided at compile time).
    fn redactor(&self, core: &TokenStream) -> TokenStream {
        let Some((ty, probed)) = self.probe() else {
            return quote!(::core::option::Option::None);
        };
        // A map's changes are per entry, so each value is one `T`; a `Vec` changes whole.
        let method = match (self.shape, probed) {
            (Shape::Leaf, Probed::Entries) => quote!(elements_redactor),
            _ => quote!(redactor),
        };
        quote!((&#core::diff::__private::Probe::<#ty>::new()).#method())
    }

    /// The type that must implement `DynamicConfig` for `nested` to work.
    fn nested_type(&self) -> Option<&'a Type> {
        self.nested.then(|| self.shape.nested_type(self.ty))
    }
}

/// A struct with named fields must reject unknown keys, so a typo in the YAML is an error
/// instead of a silently ignored key: `#[serde(deny_unknown_fields)]`, or the explicit
/// opt-out `#[config(allow_unknown_fields)]`. A unit struct has no keys to misspell (serde
/// reads it from `null` only), and enums are rejected before this.
fn unknown_fields_rule(input: &DeriveInput, container: &ContainerAttrs) -> syn::Result<()> {
    let Data::Struct(data) = &input.data else {
        return Ok(());
    };
    if matches!(data.fields, Fields::Unit) {
        return Ok(());
    }
    let ident = &input.ident;
    match (
        container.deny_unknown_fields,
        container.allow_unknown_fields,
    ) {
        (true, None) | (false, Some(_)) => Ok(()),
        (true, Some(span)) => Err(syn::Error::new(
            span,
            format!(
                "`#[config(allow_unknown_fields)]` contradicts `#[serde(deny_unknown_fields)]` on `{ident}`: keep one"
            ),
        )),
        (false, None) => Err(syn::Error::new(
            ident.span(),
            format!(
                "`{ident}` needs `#[serde(deny_unknown_fields)]` so a misspelled key is an error, not silently ignored; \
                 add it, or opt out explicitly with `#[config(allow_unknown_fields)]`"
            ),
        )),
    }
}

/// What a field holds of the type its probe asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probed {
    /// One value (`T`, `Option<T>`).
    Value,
    /// Entries: a map's values or a `Vec`'s items.
    Entries,
}

/// The named fields of a struct (none for a unit struct); anything else is an error spanned on
/// the keyword or the field list that makes it unsupported.
fn named_fields(input: &DeriveInput) -> syn::Result<Vec<&Field>> {
    match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => Ok(named.named.iter().collect()),
            Fields::Unit => Ok(Vec::new()),
            Fields::Unnamed(unnamed) => Err(syn::Error::new(
                unnamed.paren_token.span.join(),
                "DynamicConfig can only be derived for structs with named fields: field paths are the field names",
            )),
        },
        Data::Enum(data) => Err(syn::Error::new(
            data.enum_token.span,
            "DynamicConfig can only be derived for structs with named fields, not enums: \
             keep the enum as a plain field, compared as a whole",
        )),
        Data::Union(data) => Err(syn::Error::new(
            data.union_token.span,
            "DynamicConfig can only be derived for structs with named fields, not unions",
        )),
    }
}

fn generate(
    input: &DeriveInput,
    container: &ContainerAttrs,
    specs: &[FieldSpec<'_>],
) -> TokenStream {
    let core = quote!(::modular_core::config);
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();

    let infos = specs.iter().map(|spec| {
        let name = &spec.name;
        let dynamic = spec.dynamic;
        let secret = spec.shape.is_secret();
        // A secret is redacted everywhere, as a change of it reports `sensitive: true`.
        let sensitive = spec.sensitive || secret;
        let nested = spec.nested;
        quote! {
            #core::FieldInfo { name: #name, dynamic: #dynamic, sensitive: #sensitive, secret: #secret, nested: #nested }
        }
    });

    let diffs = specs.iter().map(|spec| {
        let name = &spec.name;
        let dynamic = spec.dynamic;
        let sensitive = spec.sensitive;
        let span = spec.error_span();
        let field = spec.ident_at(span);
        let helper = Ident::new(spec.diff_helper(), span);
        let check = spec.nested_check();
        let redact = spec.redactor(&core);
        // `serialize(value, serde_json's value serializer)`: the field's serde form.
        let serialize = match (&spec.serialize_with, spec.diff_helper()) {
            (Some(path), "leaf_as" | "option_as") => quote! {
                , |value| #core::diff::__private::json_form(#path(value, #core::diff::__private::JsonSerializer))
            },
            _ => TokenStream::new(),
        };
        quote_spanned! {span=>
            #check
            if self.#field != new.#field {
                ::modular_core::config::diff::__private::#helper(
                    &self.#field,
                    &new.#field,
                    #name,
                    ::modular_core::config::diff::__private::Flags {
                        dynamic: #dynamic,
                        sensitive: #sensitive,
                        redact: #redact,
                    },
                    ctx,
                    out
                    #serialize
                );
            }
        }
    });

    let (new, ctx, out) = if specs.is_empty() {
        (
            format_ident!("_new"),
            format_ident!("_ctx"),
            format_ident!("_out"),
        )
    } else {
        (
            format_ident!("new"),
            format_ident!("ctx"),
            format_ident!("out"),
        )
    };

    let validate = validate_fn(container, specs, &core);
    let redact = redact_fn(specs, &core);
    let assert_fns = assert_fns(specs, &core);

    quote! {
        const _: () = {
            // The compile-time probe's two answers; see `__private::Probe`.
            #[allow(unused_imports)]
            use #core::diff::__private::{
                BoundedDuration as _, BoundedPlain as _, ProbeConfig as _, ProbePlain as _,
            };

            #assert_fns

            #[automatically_derived]
            impl #impl_generics #core::DynamicConfig for #ident #ty_generics #where_clause {
                const FIELDS: &'static [#core::FieldInfo] = &[#(#infos),*];

                #[inline]
                fn diff_into(
                    &self,
                    #new: &Self,
                    #ctx: #core::DiffContext<'_>,
                    #out: &mut ::std::vec::Vec<#core::ConfigChange>,
                ) {
                    #(#diffs)*
                }

                #validate

                #redact
            }
        };
    }
}

/// `redact_json` and `is_sensitive_path`: this struct's own sensitive fields (the trait's
/// default), then the fields whose type derives `DynamicConfig`, marked `nested` or not (the
/// probe decides at compile time; a plain type adds nothing). Nothing is generated when no
/// field can hold a config type, so the trait's defaults apply.
fn redact_fn(specs: &[FieldSpec<'_>], core: &TokenStream) -> TokenStream {
    let mut redact = Vec::new();
    let mut sensitive = Vec::new();
    for spec in specs {
        let name = &spec.name;
        if spec.nested {
            let Some(ty) = spec.nested_type() else {
                continue;
            };
            let (redact_helper, sensitive_helper) = match spec.shape {
                Shape::Map => (quote!(redact_map_nested), quote!(sensitive_map_nested)),
                _ => (quote!(redact_nested), quote!(sensitive_nested)),
            };
            redact.push(quote! { #core::diff::__private::#redact_helper::<#ty>(json, #name); });
            sensitive
                .push(quote! { || #core::diff::__private::#sensitive_helper::<#ty>(path, #name) });
        } else if !spec.sensitive
            && let Some((ty, probed)) = spec.probe()
        {
            let (redact_method, sensitive_method) = match probed {
                Probed::Value => (quote!(redact_field), quote!(sensitive_field)),
                Probed::Entries => (quote!(redact_entries), quote!(sensitive_entries)),
            };
            let probe = quote!((&#core::diff::__private::Probe::<#ty>::new()));
            redact.push(quote! { #probe.#redact_method(json, #name); });
            sensitive.push(quote! { || #probe.#sensitive_method(path, #name) });
        }
    }
    if redact.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn redact_json(json: &mut #core::diff::__private::JsonValue) {
            #core::diff::__private::redact_fields(json, <Self as #core::DynamicConfig>::FIELDS);
            #(#redact)*
        }

        fn is_sensitive_path(path: &[&str]) -> bool {
            #core::diff::__private::sensitive_field(path, <Self as #core::DynamicConfig>::FIELDS)
                #(#sensitive)*
        }
    }
}

/// The assertion function a nested field of this shape is checked with.
fn assert_fn_name(shape: Shape) -> Option<&'static str> {
    match shape {
        Shape::Leaf => Some("__assert_dynamic_config"),
        Shape::Option => Some("__assert_dynamic_config_option"),
        Shape::Map => Some("__assert_dynamic_config_map"),
        Shape::Secret | Shape::OptionSecret => None,
    }
}

/// The assertion functions the nested fields use, each defined once.
fn assert_fns(specs: &[FieldSpec<'_>], core: &TokenStream) -> TokenStream {
    let used = |shape: Shape| specs.iter().any(|spec| spec.nested && spec.shape == shape);
    let mut out = TokenStream::new();
    if used(Shape::Leaf) {
        out.extend(quote! {
            #[inline(always)]
            fn __assert_dynamic_config<T: ?::core::marker::Sized + #core::DynamicConfig>(_: &T) {}
        });
    }
    if used(Shape::Option) {
        out.extend(quote! {
            #[inline(always)]
            fn __assert_dynamic_config_option<T: #core::DynamicConfig>(_: &::core::option::Option<T>) {}
        });
    }
    if used(Shape::Map) {
        out.extend(quote! {
            #[inline(always)]
            fn __assert_dynamic_config_map<M: #core::diff::__private::StringKeyedMap>(_: &M)
            where
                M::Value: #core::DynamicConfig,
            {
            }
        });
    }
    out
}

/// `validate_into`: the user's hook first, then every nested field under its own prefix.
/// Nothing is generated when there is neither, so the trait's empty default applies.
fn validate_fn(
    container: &ContainerAttrs,
    specs: &[FieldSpec<'_>],
    core: &TokenStream,
) -> TokenStream {
    let hook = container.validate.as_ref().map(|path| {
        // Located on the path string, so a function with the wrong signature is reported there.
        let span = Span::call_site().located_at(path.span());
        quote_spanned! {span=>
            let hook: ::core::result::Result<(), ::std::vec::Vec<#core::FieldError>> = #path(self);
            ::modular_core::config::diff::__private::validate_hook(hook, prefix, out);
        }
    });
    let nested: Vec<TokenStream> = specs
        .iter()
        .filter_map(|spec| {
            let span = spec.error_span();
            let helper = Ident::new(spec.validate_helper()?, span);
            let field = spec.ident_at(span);
            let name = &spec.name;
            let check = spec.nested_check();
            Some(quote_spanned! {span=>
                #check
                ::modular_core::config::diff::__private::#helper(&self.#field, #name, prefix, out);
            })
        })
        .collect();
    // Every duration a field holds is checked against `MAX_DURATION` (the autoref check
    // does nothing for other types, at compile time).
    let bounds: Vec<TokenStream> = specs
        .iter()
        .filter(|spec| !spec.shape.is_secret())
        .map(|spec| {
            let field = spec.ident;
            let name = &spec.name;
            quote! {
                (&#core::diff::__private::Bounded(&self.#field)).check_bounds(#name, prefix, out);
            }
        })
        .collect();
    if hook.is_none() && nested.is_empty() && bounds.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn validate_into(
            &self,
            prefix: ::core::option::Option<&str>,
            out: &mut ::std::vec::Vec<#core::FieldError>,
        ) {
            #(#bounds)*
            #hook
            #(#nested)*
        }
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::{TokenStream, TokenTree};
    use syn::{DeriveInput, parse_quote};

    use super::expand;

    /// `input` with `#[serde(deny_unknown_fields)]` added unless it says something about unknown
    /// fields already (the rule has its own tests).
    fn strict(mut input: DeriveInput) -> DeriveInput {
        let text = quote::quote!(#input).to_string();
        if !text.contains("unknown_fields") {
            input
                .attrs
                .push(syn::parse_quote!(#[serde(deny_unknown_fields)]));
        }
        input
    }

    fn expanded(input: DeriveInput) -> TokenStream {
        match expand(strict(input)) {
            Ok(tokens) => tokens,
            Err(error) => panic!("expected an expansion, got: {error}"),
        }
    }

    /// Every message of the (possibly combined) error.
    fn errors(input: DeriveInput) -> Vec<String> {
        match expand(strict(input)) {
            Ok(tokens) => panic!("expected an error, got: {tokens}"),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    /// The `__private` functions the expansion calls, in order.
    fn helpers(tokens: TokenStream) -> Vec<String> {
        let mut out = Vec::new();
        collect_helpers(tokens, &mut out);
        out
    }

    fn collect_helpers(tokens: TokenStream, out: &mut Vec<String>) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Group(group) => collect_helpers(group.stream(), out),
                TokenTree::Ident(ident) if ident == "__private" => {
                    // `__private` `:` `:` `helper` `( .. )`
                    if let (Some(TokenTree::Ident(helper)), Some(TokenTree::Group(args))) =
                        (tokens.get(i + 3), tokens.get(i + 4))
                        && args.delimiter() == proc_macro2::Delimiter::Parenthesis
                        // `Bounded(..)` is a tuple struct, not a helper.
                        && !helper.to_string().starts_with(char::is_uppercase)
                    {
                        out.push(helper.to_string());
                    }
                }
                _ => {}
            }
        }
    }

    /// The `FieldInfo { .. }` entries of `FIELDS`, as compact strings.
    fn field_infos(tokens: &TokenStream) -> Vec<String> {
        let text = tokens.to_string().replace(' ', "");
        text.split("::modular_core::config::FieldInfo{")
            .skip(1)
            .map(|rest| rest.split('}').next().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn each_field_gets_the_helper_its_type_and_flags_call_for() {
        let tokens = expanded(parse_quote! {
            struct Pool {
                max_conns: u32,
                hosts: Vec<String>,
                url: Secret<String>,
                replica_url: Option<Secret<String>>,
                timeout_ms: Option<u64>,
                labels: HashMap<String, String>,
                #[config(nested)] retry: Retry,
                #[config(nested)] fallback: Option<Retry>,
                #[config(nested)] replicas: BTreeMap<String, Retry>,
            }
        });
        let diff_helpers: Vec<String> = helpers(tokens)
            .into_iter()
            .filter(|h| {
                !h.starts_with("validate")
                    && !h.starts_with("redact")
                    && !h.starts_with("sensitive")
            })
            .collect();
        assert_eq!(
            diff_helpers,
            [
                "leaf",
                "leaf",
                "secret",
                "option_secret",
                "option",
                "map",
                "nested",
                "option_nested",
                "map_nested"
            ]
        );
    }

    #[test]
    fn fields_table_lists_serde_names_and_flags_in_declaration_order() {
        let tokens = expanded(parse_quote! {
            #[serde(rename_all = "camelCase")]
            struct Pool {
                #[config(dynamic)] max_conns: u32,
                #[serde(rename = "URL")] url: Secret<String>,
                #[config(sensitive)] password_hint: String,
                #[config(nested, dynamic)] retry_policy: Retry,
                #[serde(skip)] cache: Vec<u8>,
                r#type: String,
            }
        });
        assert_eq!(
            field_infos(&tokens),
            [
                r#"name:"maxConns",dynamic:true,sensitive:false,secret:false,nested:false"#,
                r#"name:"URL",dynamic:false,sensitive:true,secret:true,nested:false"#,
                r#"name:"passwordHint",dynamic:false,sensitive:true,secret:false,nested:false"#,
                r#"name:"retryPolicy",dynamic:true,sensitive:false,secret:false,nested:true"#,
                r#"name:"type",dynamic:false,sensitive:false,secret:false,nested:false"#,
            ]
        );
    }

    #[test]
    fn struct_level_dynamic_makes_every_field_dynamic() {
        let tokens = expanded(parse_quote! {
            #[config(dynamic)]
            struct Retry { max_attempts: u32, backoff_ms: u64 }
        });
        let infos = field_infos(&tokens);
        assert_eq!(infos.len(), 2);
        assert!(
            infos.iter().all(|info| info.contains("dynamic:true")),
            "{infos:?}"
        );
        let text = tokens.to_string().replace(' ', "");
        assert_eq!(
            text.matches("Flags{dynamic:true,sensitive:false,").count(),
            2,
            "{text}"
        );
    }

    #[test]
    fn serde_rename_with_separate_serialize_name_uses_the_serialize_name() {
        let tokens = expanded(parse_quote! {
            struct Pool {
                #[serde(default, rename(deserialize = "max", serialize = "maximum"), alias = "m")]
                max_conns: u32,
            }
        });
        assert_eq!(
            field_infos(&tokens)[0],
            r#"name:"maximum",dynamic:false,sensitive:false,secret:false,nested:false"#
        );
    }

    #[test]
    fn validate_hook_runs_before_nested_validation() {
        let tokens = expanded(parse_quote! {
            #[config(validate = "Self::check")]
            struct Pool { #[config(nested)] retry: Retry, max_conns: u32 }
        });
        let validation: Vec<String> = helpers(tokens)
            .into_iter()
            .filter(|h| h.starts_with("validate"))
            .collect();
        assert_eq!(validation, ["validate_hook", "validate_nested"]);
    }

    #[test]
    fn validate_into_is_left_to_the_default_without_fields() {
        let tokens = expanded(parse_quote! { struct Empty; });
        assert!(!tokens.to_string().contains("validate_into"));
    }

    #[test]
    fn every_field_but_a_secret_has_its_durations_bounded() {
        let text = expanded(parse_quote! {
            struct Pool { timeout: Duration, url: Secret<String>, idle: Option<Duration> }
        })
        .to_string()
        .replace(' ', "");
        assert_eq!(text.matches(".check_bounds(").count(), 2, "{text}");
        assert!(text.contains("Bounded(&self.timeout)"), "{text}");
        assert!(text.contains("Bounded(&self.idle)"), "{text}");
    }

    #[test]
    fn nested_map_and_option_validate_every_entry() {
        let tokens = expanded(parse_quote! {
            struct Pool {
                #[config(nested)] fallback: Option<Retry>,
                #[config(nested)] replicas: HashMap<String, Retry>,
            }
        });
        let validation: Vec<String> = helpers(tokens)
            .into_iter()
            .filter(|h| h.starts_with("validate"))
            .collect();
        assert_eq!(
            validation,
            ["validate_option_nested", "validate_map_nested"]
        );
    }

    #[test]
    fn nested_fields_are_asserted_to_implement_the_trait() {
        let text = expanded(parse_quote! {
            struct Pool {
                #[config(nested)] retry: Retry,
                #[config(nested)] fallback: Option<Retry>,
                #[config(nested)] replicas: HashMap<String, Retry>,
            }
        })
        .to_string();
        for assert in [
            "__assert_dynamic_config (",
            "__assert_dynamic_config_option (",
            "__assert_dynamic_config_map (",
        ] {
            // Called once in `diff_into` and once in `validate_into`.
            assert_eq!(text.matches(assert).count(), 2, "{assert} in {text}");
        }
    }

    #[test]
    fn a_struct_without_fields_expands_without_unused_parameters() {
        let text = expanded(parse_quote! { struct Empty; }).to_string();
        assert!(text.contains("_new : & Self"), "{text}");
        assert!(
            text.contains("FIELDS : & 'static [:: modular_core :: config :: FieldInfo] = & []"),
            "{text}"
        );
    }

    #[test]
    fn a_struct_must_deny_unknown_fields_or_opt_out_explicitly() {
        let missing = match expand(parse_quote! { struct Pool { max_conns: u32 } }) {
            Ok(tokens) => panic!("expected an error, got: {tokens}"),
            Err(error) => error.to_string(),
        };
        assert_eq!(
            missing,
            "`Pool` needs `#[serde(deny_unknown_fields)]` so a misspelled key is an error, not silently ignored; \
             add it, or opt out explicitly with `#[config(allow_unknown_fields)]`"
        );
        assert!(
            expand(parse_quote! {
                #[serde(default, deny_unknown_fields)]
                struct Pool { max_conns: u32 }
            })
            .is_ok()
        );
        assert!(
            expand(parse_quote! {
                #[config(allow_unknown_fields)]
                struct Pool { max_conns: u32 }
            })
            .is_ok()
        );
        assert!(
            expand(parse_quote! { struct Empty; }).is_ok(),
            "a unit struct has no keys"
        );
        let both = errors(parse_quote! {
            #[config(allow_unknown_fields)]
            #[serde(deny_unknown_fields)]
            struct Pool { max_conns: u32 }
        });
        assert!(both[0].contains("contradicts"), "{both:?}");
    }

    #[test]
    fn generics_are_carried_onto_the_impl() {
        let text = expanded(parse_quote! {
            struct Wrapper<T: Clone> where T: PartialEq { value: T }
        })
        .to_string();
        assert!(text.contains("impl < T : Clone > :: modular_core :: config :: DynamicConfig for Wrapper < T > where T : PartialEq"), "{text}");
    }

    #[test]
    fn enums_unions_and_tuple_structs_are_rejected() {
        let enum_errors = errors(parse_quote! { enum Mode { Fast, Safe } });
        assert_eq!(enum_errors.len(), 1);
        assert!(enum_errors[0].starts_with(
            "DynamicConfig can only be derived for structs with named fields, not enums"
        ));
        let union_errors = errors(parse_quote! { union Bits { a: u32, b: f32 } });
        assert!(union_errors[0].contains("not unions"), "{union_errors:?}");
        let tuple_errors = errors(parse_quote! { struct Port(u16); });
        assert!(
            tuple_errors[0].contains("structs with named fields"),
            "{tuple_errors:?}"
        );
    }

    #[test]
    fn unknown_and_misspelled_flags_name_the_token_and_the_choices() {
        assert_eq!(
            errors(parse_quote! { struct Pool { #[config(dynamc)] max_conns: u32 } }),
            ["unknown config attribute `dynamc`, expected one of: dynamic, sensitive, nested"]
        );
        assert_eq!(
            errors(parse_quote! { #[config(sensitive)] struct Pool { max_conns: u32 } }),
            [
                "unknown config attribute `sensitive` on a struct, expected one of: dynamic, validate, allow_unknown_fields"
            ]
        );
        assert_eq!(
            errors(parse_quote! { struct Pool { #[config(validate = "f")] max_conns: u32 } }),
            ["unknown config attribute `validate`, expected one of: dynamic, sensitive, nested"]
        );
    }

    #[test]
    fn every_attribute_mistake_is_reported_in_one_pass() {
        let messages = errors(parse_quote! {
            #[config(dynamic, foo)]
            struct Pool {
                #[config(dynamic, dynamic)] max_conns: u32,
                #[config(sensitive = true)] password: String,
                #[config(bar)] min_conns: u32,
            }
        });
        assert_eq!(
            messages,
            [
                "unknown config attribute `foo` on a struct, expected one of: dynamic, validate, allow_unknown_fields",
                "duplicate config attribute `dynamic`",
                "config attribute `sensitive` takes no value, write `#[config(sensitive)]`",
                "unknown config attribute `bar`, expected one of: dynamic, sensitive, nested",
            ]
        );
    }

    #[test]
    fn flatten_and_nested_secrets_are_rejected() {
        let flatten = errors(parse_quote! { struct Pool { #[serde(flatten)] common: Common } });
        assert!(
            flatten[0].contains("does not support `#[serde(flatten)]`"),
            "{flatten:?}"
        );
        let secret = errors(parse_quote! { struct Pool { #[config(nested)] url: Secret<String> } });
        assert!(
            secret[0].starts_with("`nested` cannot be used on a `Secret` field"),
            "{secret:?}"
        );
    }

    #[test]
    fn bad_rename_all_and_validate_values_are_rejected() {
        let rule = errors(
            parse_quote! { #[serde(rename_all = "camelcase")] struct Pool { max_conns: u32 } },
        );
        assert!(
            rule[0].starts_with("unknown rename_all rule `camelcase`, expected one of: lowercase"),
            "{rule:?}"
        );
        let validate = errors(
            parse_quote! { #[config(validate = "not a path")] struct Pool { max_conns: u32 } },
        );
        assert!(
            validate[0].starts_with("`validate` expects the path of a function"),
            "{validate:?}"
        );
    }

    #[test]
    fn serde_with_and_serialize_with_fields_are_reported_in_their_serde_form() {
        let tokens = expanded(parse_quote! {
            struct Pool {
                #[serde(with = "humantime_serde")] timeout: Duration,
                #[serde(with = "humantime_serde")] idle: Option<Duration>,
                #[serde(serialize_with = "crate::upper")] mode: String,
                #[serde(with = "pairs")] labels: HashMap<String, String>,
                plain: Duration,
            }
        });
        let text = tokens.to_string().replace(' ', "");
        assert!(text.contains("humantime_serde::serialize(value,"), "{text}");
        assert!(text.contains("crate::upper(value,"), "{text}");
        let diff_helpers: Vec<String> = helpers(tokens)
            .into_iter()
            .filter(|h| !h.starts_with("redact") && !h.starts_with("sensitive") && h != "json_form")
            .collect();
        assert_eq!(
            diff_helpers,
            ["leaf_as", "option_as", "leaf_as", "leaf_as", "leaf"]
        );
    }

    #[test]
    fn other_serde_attributes_are_ignored() {
        let tokens = expanded(parse_quote! {
            #[serde(deny_unknown_fields, bound(serialize = "T: Serialize"), default)]
            struct Pool {
                #[serde(with = "humantime_serde", default = "default_timeout", skip_serializing_if = "is_zero")]
                timeout: Duration,
                #[serde(skip_deserializing)]
                computed: u32,
            }
        });
        assert_eq!(field_infos(&tokens).len(), 1);
        let diff_helpers: Vec<String> = helpers(tokens)
            .into_iter()
            .filter(|h| !h.starts_with("redact") && !h.starts_with("sensitive") && h != "json_form")
            .collect();
        assert_eq!(diff_helpers, ["leaf_as"], "`with` decides the serde form");
    }
}
