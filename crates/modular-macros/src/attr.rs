//! Reading `#[config(..)]` and the `#[serde(..)]` keys that decide field paths.
//!
//! `#[config(..)]` is ours, so it is strict: an unknown or repeated flag is an error spanned on
//! the offending token. `#[serde(..)]` belongs to serde, which reports its own mistakes, so it
//! is read leniently: only the keys that change a field's path or presence are looked at.

use proc_macro2::{Span, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Attribute, ExprPath, LitStr, Token};

use crate::case::{RULE_NAMES, RenameRule};

/// What a struct's own attributes say.
#[derive(Debug, Default)]
pub struct ContainerAttrs {
    /// `#[config(dynamic)]`: every field is dynamic.
    pub dynamic: bool,
    /// `#[config(validate = "path::to::fn")]`.
    pub validate: Option<ExprPath>,
    /// `#[serde(rename_all = "...")]`.
    pub rename_all: Option<RenameRule>,
    /// `#[serde(deny_unknown_fields)]`: a misspelled key is an error.
    pub deny_unknown_fields: bool,
    /// `#[config(allow_unknown_fields)]`: the explicit opt-out of the rule above.
    pub allow_unknown_fields: Option<Span>,
}

/// What a field's attributes say. Flags keep the span of the token that set them.
#[derive(Debug, Default)]
pub struct FieldAttrs {
    pub dynamic: Option<Span>,
    pub sensitive: Option<Span>,
    pub nested: Option<Span>,
    /// `#[serde(rename = "...")]` (the serialize name when it differs from the deserialize one).
    pub rename: Option<String>,
    /// `#[serde(skip)]` or `#[serde(skip_deserializing)]`: configuration never sets it.
    pub skip: bool,
    /// `#[serde(flatten)]`, which the derive rejects.
    pub flatten: Option<Span>,
    /// The function serde serializes the field with: `m::serialize` for `#[serde(with = "m")]`,
    /// `f` for `#[serde(serialize_with = "f")]`. A change's values then use it, so they are
    /// the field's serde form (`"10s"` for a humantime duration).
    pub serialize_with: Option<ExprPath>,
}

const FIELD_FLAGS: &str = "dynamic, sensitive, nested";
const CONTAINER_FLAGS: &str = "dynamic, validate, allow_unknown_fields";

/// Collects several errors so one compile shows every mistake, not just the first.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Reads the struct-level attributes.
pub fn container(attrs: &[Attribute]) -> syn::Result<ContainerAttrs> {
    let mut out = ContainerAttrs::default();
    let mut dynamic = None;
    let mut allow_unknown = None;
    let mut errors = Errors::default();
    for attr in attrs {
        if attr.path().is_ident("config") {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("dynamic") {
                    set_flag(&meta, "dynamic", &mut dynamic, &mut errors)?;
                } else if meta.path.is_ident("allow_unknown_fields") {
                    set_flag(
                        &meta,
                        "allow_unknown_fields",
                        &mut allow_unknown,
                        &mut errors,
                    )?;
                } else if meta.path.is_ident("validate") {
                    let path = parse_validate(&meta)?;
                    if out.validate.is_some() {
                        errors.push(syn::Error::new_spanned(
                            &meta.path,
                            "duplicate config attribute `validate`",
                        ));
                    }
                    out.validate = Some(path);
                } else {
                    errors.push(unknown(&meta, " on a struct", CONTAINER_FLAGS));
                    skip_value(meta.input)?;
                }
                Ok(())
            });
            if let Err(error) = parsed {
                errors.push(error);
            }
        } else if attr.path().is_ident("serde") {
            // Lenient: serde reports malformed serde attributes itself.
            let _ = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename_all") {
                    if let Some(lit) = serialize_name(&meta)? {
                        match RenameRule::from_serde_name(&lit.value()) {
                            Some(rule) => out.rename_all = Some(rule),
                            None => errors.push(syn::Error::new(
                                lit.span(),
                                format!(
                                    "unknown rename_all rule `{}`, expected one of: {RULE_NAMES}",
                                    lit.value()
                                ),
                            )),
                        }
                    }
                } else if meta.path.is_ident("deny_unknown_fields") {
                    out.deny_unknown_fields = true;
                    skip_value(meta.input)?;
                } else {
                    skip_value(meta.input)?;
                }
                Ok(())
            });
        }
    }
    errors.finish()?;
    out.dynamic = dynamic.is_some();
    out.allow_unknown_fields = allow_unknown;
    Ok(out)
}

/// Reads one field's attributes.
pub fn field(attrs: &[Attribute]) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    let mut errors = Errors::default();
    for attr in attrs {
        if attr.path().is_ident("config") {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("dynamic") {
                    set_flag(&meta, "dynamic", &mut out.dynamic, &mut errors)
                } else if meta.path.is_ident("sensitive") {
                    set_flag(&meta, "sensitive", &mut out.sensitive, &mut errors)
                } else if meta.path.is_ident("nested") {
                    set_flag(&meta, "nested", &mut out.nested, &mut errors)
                } else {
                    errors.push(unknown(&meta, "", FIELD_FLAGS));
                    skip_value(meta.input)
                }
            });
            if let Err(error) = parsed {
                errors.push(error);
            }
        } else if attr.path().is_ident("serde") {
            let _ = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    if let Some(lit) = serialize_name(&meta)? {
                        out.rename = Some(lit.value());
                    }
                } else if meta.path.is_ident("skip") || meta.path.is_ident("skip_deserializing") {
                    out.skip = true;
                    skip_value(meta.input)?;
                } else if meta.path.is_ident("flatten") {
                    out.flatten = Some(path_span(&meta));
                    skip_value(meta.input)?;
                } else if meta.path.is_ident("with") {
                    let module = parse_path_value(&meta)?;
                    let span = module.span();
                    let mut path = module;
                    path.path
                        .segments
                        .push(syn::PathSegment::from(syn::Ident::new("serialize", span)));
                    out.serialize_with = Some(path);
                } else if meta.path.is_ident("serialize_with") {
                    out.serialize_with = Some(parse_path_value(&meta)?);
                } else {
                    skip_value(meta.input)?;
                }
                Ok(())
            });
        }
    }
    errors.finish()?;
    Ok(out)
}

/// A bare flag such as `dynamic`: no value, at most once.
fn set_flag(
    meta: &ParseNestedMeta<'_>,
    name: &str,
    slot: &mut Option<Span>,
    errors: &mut Errors,
) -> syn::Result<()> {
    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        errors.push(syn::Error::new(
            meta.input.span(),
            format!("config attribute `{name}` takes no value, write `#[config({name})]`"),
        ));
        return skip_value(meta.input);
    }
    if slot.is_some() {
        errors.push(syn::Error::new_spanned(
            &meta.path,
            format!("duplicate config attribute `{name}`"),
        ));
    }
    *slot = Some(path_span(meta));
    Ok(())
}

/// `validate = "path::to::fn"` (a bare path is accepted too).
fn parse_validate(meta: &ParseNestedMeta<'_>) -> syn::Result<ExprPath> {
    let value = meta.value()?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        // The parsed path carries the literal's span, so a wrong function points at the string.
        lit.parse::<ExprPath>().map_err(|_| {
            syn::Error::new(
                lit.span(),
                "`validate` expects the path of a function, like \"Self::check\"",
            )
        })
    } else {
        value.parse()
    }
}

/// `key = "path::to::item"` (serde's `with` and `serialize_with`); serde reports a malformed
/// one itself.
fn parse_path_value(meta: &ParseNestedMeta<'_>) -> syn::Result<ExprPath> {
    let lit: LitStr = meta.value()?.parse()?;
    lit.parse::<ExprPath>()
}

/// `key = "name"` or `key(serialize = "name", deserialize = "..")`: the serialize name, which is
/// what `serde_json::to_value` (and so every diff path) uses.
fn serialize_name(meta: &ParseNestedMeta<'_>) -> syn::Result<Option<LitStr>> {
    if meta.input.peek(Token![=]) {
        return Ok(Some(meta.value()?.parse()?));
    }
    let mut name = None;
    if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| {
            if inner.path.is_ident("serialize") {
                name = Some(inner.value()?.parse()?);
            } else {
                skip_value(inner.input)?;
            }
            Ok(())
        })?;
    }
    Ok(name)
}

/// `place` is empty for a field and ` on a struct` for the struct itself.
fn unknown(meta: &ParseNestedMeta<'_>, place: &str, expected: &str) -> syn::Error {
    let name = meta
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::");
    syn::Error::new_spanned(
        &meta.path,
        format!("unknown config attribute `{name}`{place}, expected one of: {expected}"),
    )
}

fn path_span(meta: &ParseNestedMeta<'_>) -> Span {
    meta.path
        .segments
        .first()
        .map_or_else(Span::call_site, |s| s.ident.span())
}

/// Consumes the rest of one `key ...` entry, up to the next comma.
fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}
