//! serde's `rename_all` rules, applied to field names exactly as serde applies them, so a
//! field path is the key a user writes in YAML.

/// One `#[serde(rename_all = "...")]` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenameRule {
    /// `lowercase`
    Lower,
    /// `UPPERCASE`
    Upper,
    /// `PascalCase`
    Pascal,
    /// `camelCase`
    Camel,
    /// `snake_case`
    Snake,
    /// `SCREAMING_SNAKE_CASE`
    ScreamingSnake,
    /// `kebab-case`
    Kebab,
    /// `SCREAMING-KEBAB-CASE`
    ScreamingKebab,
}

impl RenameRule {
    /// The rule serde names `name`, if any.
    pub fn from_serde_name(name: &str) -> Option<Self> {
        Some(match name {
            "lowercase" => Self::Lower,
            "UPPERCASE" => Self::Upper,
            "PascalCase" => Self::Pascal,
            "camelCase" => Self::Camel,
            "snake_case" => Self::Snake,
            "SCREAMING_SNAKE_CASE" => Self::ScreamingSnake,
            "kebab-case" => Self::Kebab,
            "SCREAMING-KEBAB-CASE" => Self::ScreamingKebab,
            _ => return None,
        })
    }

    /// Renames a struct field (written in snake_case, as Rust fields are).
    pub fn apply_to_field(self, field: &str) -> String {
        match self {
            // serde leaves field names alone for these: they are snake_case already.
            Self::Lower | Self::Snake => field.to_owned(),
            Self::Upper | Self::ScreamingSnake => field.to_ascii_uppercase(),
            Self::Pascal => {
                let mut pascal = String::with_capacity(field.len());
                let mut capitalize = true;
                for ch in field.chars() {
                    if ch == '_' {
                        capitalize = true;
                    } else if capitalize {
                        pascal.push(ch.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        pascal.push(ch);
                    }
                }
                pascal
            }
            Self::Camel => {
                let pascal = Self::Pascal.apply_to_field(field);
                let mut chars = pascal.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => pascal,
                }
            }
            Self::Kebab => field.replace('_', "-"),
            Self::ScreamingKebab => field.to_ascii_uppercase().replace('_', "-"),
        }
    }
}

/// Every rule name serde accepts, for error messages.
pub const RULE_NAMES: &str = "lowercase, UPPERCASE, PascalCase, camelCase, snake_case, \
                              SCREAMING_SNAKE_CASE, kebab-case, SCREAMING-KEBAB-CASE";

#[cfg(test)]
mod tests {
    use super::RenameRule;

    #[test]
    fn every_rule_renames_a_field_as_serde_does() {
        let cases = [
            ("lowercase", "max_conns"),
            ("UPPERCASE", "MAX_CONNS"),
            ("PascalCase", "MaxConns"),
            ("camelCase", "maxConns"),
            ("snake_case", "max_conns"),
            ("SCREAMING_SNAKE_CASE", "MAX_CONNS"),
            ("kebab-case", "max-conns"),
            ("SCREAMING-KEBAB-CASE", "MAX-CONNS"),
        ];
        for (rule, expected) in cases {
            let rule = RenameRule::from_serde_name(rule)
                .unwrap_or_else(|| panic!("{rule} is a serde rule"));
            assert_eq!(rule.apply_to_field("max_conns"), expected, "{rule:?}");
        }
    }

    #[test]
    fn single_word_fields_keep_their_letters() {
        assert_eq!(RenameRule::Camel.apply_to_field("url"), "url");
        assert_eq!(RenameRule::Pascal.apply_to_field("url"), "Url");
        assert_eq!(RenameRule::Kebab.apply_to_field("url"), "url");
    }

    #[test]
    fn unknown_rule_names_are_not_rules() {
        assert_eq!(RenameRule::from_serde_name("camelcase"), None);
        assert_eq!(RenameRule::from_serde_name("Train-Case"), None);
    }
}
