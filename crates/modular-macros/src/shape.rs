//! Which diff helper a field needs, read from the syntax of its type.
//!
//! A derive sees tokens, not resolved types, so the choice goes by the last path segment:
//! `Secret<T>`, `Option<Secret<T>>`, `Option<T>`, `HashMap<..>` / `BTreeMap<..>`, or anything
//! else (a leaf compared as a whole, `Vec<T>` included).

use syn::{GenericArgument, PathArguments, PathSegment, Type};

/// The syntactic shape of a field type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Compared as a whole with `PartialEq`.
    Leaf,
    /// `Secret<T>`.
    Secret,
    /// `Option<Secret<T>>`.
    OptionSecret,
    /// `Option<T>`.
    Option,
    /// `HashMap<K, V>` or `BTreeMap<K, V>`.
    Map,
}

impl Shape {
    /// The shape of `ty`.
    pub fn of(ty: &Type) -> Self {
        let Some(segment) = last_segment(ty) else {
            return Self::Leaf;
        };
        match segment.ident.to_string().as_str() {
            "Secret" => Self::Secret,
            "HashMap" | "BTreeMap" => Self::Map,
            "Option" => match single_type_argument(segment) {
                Some(inner) if last_segment(inner).is_some_and(|s| s.ident == "Secret") => {
                    Self::OptionSecret
                }
                Some(_) => Self::Option,
                None => Self::Leaf,
            },
            _ => Self::Leaf,
        }
    }

    /// The type a `#[config(nested)]` field of this shape diffs field by field: the field type
    /// itself, the `T` of `Option<T>`, or the value type of a map.
    pub fn nested_type(self, ty: &Type) -> &Type {
        let Some(segment) = last_segment(ty) else {
            return ty;
        };
        let inner = match self {
            Self::Option => single_type_argument(segment),
            Self::Map => type_arguments(segment).last(),
            _ => None,
        };
        inner.unwrap_or(ty)
    }

    /// The element type of a `Vec<T>` (a leaf compared as a whole, whose elements may still
    /// need redacting by their own type's rules).
    pub fn vec_element(ty: &Type) -> Option<&Type> {
        let segment = last_segment(ty)?;
        if segment.ident != "Vec" {
            return None;
        }
        single_type_argument(segment)
    }

    /// Whether the field holds a `Secret<T>`.
    pub fn is_secret(self) -> bool {
        matches!(self, Self::Secret | Self::OptionSecret)
    }
}

/// The last segment of a plain path type, looking through parentheses and the invisible groups
/// `macro_rules!` wraps around `$ty`.
fn last_segment(ty: &Type) -> Option<&PathSegment> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

fn type_arguments(segment: &PathSegment) -> impl Iterator<Item = &Type> {
    let args = match &segment.arguments {
        PathArguments::AngleBracketed(args) => Some(args.args.iter()),
        _ => None,
    };
    args.into_iter().flatten().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    })
}

fn single_type_argument(segment: &PathSegment) -> Option<&Type> {
    let mut types = type_arguments(segment);
    match (types.next(), types.next()) {
        (Some(ty), None) => Some(ty),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Shape;
    use syn::{Type, parse_quote};

    fn shape(ty: Type) -> Shape {
        Shape::of(&ty)
    }

    #[test]
    fn shapes_follow_the_last_path_segment() {
        assert_eq!(shape(parse_quote!(u32)), Shape::Leaf);
        assert_eq!(shape(parse_quote!(Vec<String>)), Shape::Leaf);
        assert_eq!(shape(parse_quote!(std::time::Duration)), Shape::Leaf);
        assert_eq!(shape(parse_quote!(Secret<String>)), Shape::Secret);
        assert_eq!(
            shape(parse_quote!(modular_core::Secret<String>)),
            Shape::Secret
        );
        assert_eq!(shape(parse_quote!(Option<u16>)), Shape::Option);
        assert_eq!(shape(parse_quote!(Option<Vec<u8>>)), Shape::Option);
        assert_eq!(
            shape(parse_quote!(Option<Secret<String>>)),
            Shape::OptionSecret
        );
        assert_eq!(
            shape(parse_quote!(std::option::Option<crate::Secret<String>>)),
            Shape::OptionSecret
        );
        assert_eq!(shape(parse_quote!(HashMap<String, u32>)), Shape::Map);
        assert_eq!(
            shape(parse_quote!(std::collections::BTreeMap<String, Pool>)),
            Shape::Map
        );
    }

    #[test]
    fn parentheses_and_odd_types_are_seen_through_or_treated_as_leaves() {
        assert_eq!(shape(parse_quote!((Option<u8>))), Shape::Option);
        assert_eq!(shape(parse_quote!((u8, u16))), Shape::Leaf);
        assert_eq!(shape(parse_quote!([u8; 4])), Shape::Leaf);
        assert_eq!(shape(parse_quote!(<T as Trait>::Option)), Shape::Leaf);
    }

    #[test]
    fn nested_type_is_the_option_payload_or_the_map_value() {
        let option: Type = parse_quote!(Option<Retry>);
        let map: Type = parse_quote!(HashMap<String, Pool>);
        let leaf: Type = parse_quote!(Retry);
        assert_eq!(Shape::Option.nested_type(&option), &parse_quote!(Retry));
        assert_eq!(Shape::Map.nested_type(&map), &parse_quote!(Pool));
        assert_eq!(Shape::Leaf.nested_type(&leaf), &leaf);
    }

    #[test]
    fn vec_element_is_the_item_type_of_a_vec_only() {
        let vec: Type = parse_quote!(std::vec::Vec<Retry>);
        assert_eq!(Shape::vec_element(&vec), Some(&parse_quote!(Retry)));
        assert_eq!(Shape::vec_element(&parse_quote!(Retry)), None);
        assert_eq!(Shape::vec_element(&parse_quote!(Option<Retry>)), None);
    }

    #[test]
    fn only_secrets_are_secret() {
        assert!(Shape::Secret.is_secret());
        assert!(Shape::OptionSecret.is_secret());
        assert!(!Shape::Option.is_secret());
        assert!(!Shape::Leaf.is_secret());
    }
}
