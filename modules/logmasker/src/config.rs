//! [`LogMaskerConfig`]: the `logmasker` section; every field reloads at runtime.

use modular_core::{DynamicConfig, FieldError};
use serde::{Deserialize, Serialize};

use crate::rules::{Builtin, compile_pattern};

/// The `logmasker` configuration section. Every field is dynamic: a reload compiles the new
/// rule set aside and swaps it in whole, so the next line is masked entirely under it.
///
/// | field | dynamic | what |
/// |---|---|---|
/// | `enabled` | yes | `false` writes lines unmasked (the layer stays installed) |
/// | `defaults` | yes | include the default rules (common secret field names, every built-in pattern but the IP addresses, all `redact`) after `rules` |
/// | `rules` | yes | field-name rules, built-in patterns and custom regexes, each with a strategy |
/// | `compiled_size_limit` | yes | the most memory (bytes) the compiled value patterns may take together |
/// | `health.optional` | yes | whether a degraded masker leaves readiness alone (default `true`) |
///
/// ```yaml
/// logmasker:
///   enabled: true
///   defaults: true
///   rules:
///     - field: "*_token"        # glob over field names, case-insensitive
///       strategy: hash          # keyed, stable within the process
///     - field: session_id
///       strategy: drop          # the field is not written at all
///     - builtin: credit_card    # bearer, url_password, jwt, aws_access_key, private_key, credit_card, iban, email, ipv4, ipv6
///       strategy: partial
///       keep_last: 4
///     - builtin: ipv4           # opt-in
///     - regex: "ORD-[0-9]{8}"
///       name: order_id          # the `rule` label of the metrics
///       strategy: redact
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic, validate = "Self::validate_config")]
pub struct LogMaskerConfig {
    /// Whether lines are masked at all.
    pub enabled: bool,
    /// Whether the default rules ([`default_rules`]) follow `rules`.
    pub defaults: bool,
    /// The rules, in order: for a field name the first matching field rule wins; a built-in
    /// listed here replaces its default rule.
    pub rules: Vec<MaskRule>,
    /// The most bytes the compiled value patterns may take (the regex size limit of the set).
    pub compiled_size_limit: usize,
    /// Health registration.
    #[config(nested)]
    pub health: LogMaskerHealthConfig,
}

/// `logmasker.health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(dynamic)]
pub struct LogMaskerHealthConfig {
    /// Whether a degraded masker leaves readiness alone.
    pub optional: bool,
}

impl Default for LogMaskerHealthConfig {
    fn default() -> Self {
        Self { optional: true }
    }
}

/// One rule: exactly one of `field`, `builtin` or `regex`, and a strategy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRule {
    /// A field name, or a glob over field names (`*` any run, `?` one character),
    /// matched case-insensitively, in events and spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A built-in value pattern, by name (see [`Builtin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// A custom value pattern (Rust regex syntax); when it has a group named `secret`, only
    /// that group is masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The rule's name in metrics; defaults to the field glob, the built-in's name, or
    /// `regex_<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What happens to what the rule matches.
    #[serde(default)]
    pub strategy: Strategy,
    /// `partial`: characters kept at the start.
    #[serde(default)]
    pub keep_first: usize,
    /// `partial`: characters kept at the end.
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
}

fn default_keep_last() -> usize {
    4
}

impl MaskRule {
    /// A field rule with `strategy`.
    pub fn field(glob: &str, strategy: Strategy) -> Self {
        Self {
            field: Some(glob.to_owned()),
            ..Self::empty(strategy)
        }
    }

    /// A built-in pattern rule with `strategy`.
    pub fn builtin(builtin: Builtin, strategy: Strategy) -> Self {
        Self {
            builtin: Some(builtin.name().to_owned()),
            ..Self::empty(strategy)
        }
    }

    /// A custom regex rule with `strategy`.
    pub fn regex(regex: &str, strategy: Strategy) -> Self {
        Self {
            regex: Some(regex.to_owned()),
            ..Self::empty(strategy)
        }
    }

    /// This rule with `partial` keeping `first` and `last` characters.
    pub fn keeping(mut self, first: usize, last: usize) -> Self {
        self.strategy = Strategy::Partial;
        self.keep_first = first;
        self.keep_last = last;
        self
    }

    fn empty(strategy: Strategy) -> Self {
        Self {
            field: None,
            builtin: None,
            regex: None,
            name: None,
            strategy,
            keep_first: 0,
            keep_last: default_keep_last(),
        }
    }
}

/// What a rule does to the value it matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
#[non_exhaustive]
pub enum Strategy {
    /// Replaced by `[REDACTED]`.
    #[default]
    Redact,
    /// The first `keep_first` and last `keep_last` characters are kept, the rest becomes `*`;
    /// a value too short to mask more than it keeps is redacted whole.
    Partial,
    /// Replaced by `[HASH:<16 hex>]`, a SipHash keyed with a random per-process key: equal
    /// values give equal hashes within a process (so they correlate), and nothing outside it
    /// can recompute them.
    Hash,
    /// Field rules only: the field is not written.
    Drop,
    /// A name that is not a strategy; validation rejects it with its path.
    Unknown(String),
}

impl Strategy {
    /// The strategy's name as written in YAML.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Redact => "redact",
            Self::Partial => "partial",
            Self::Hash => "hash",
            Self::Drop => "drop",
            Self::Unknown(name) => name,
        }
    }
}

impl From<String> for Strategy {
    fn from(name: String) -> Self {
        match name.as_str() {
            "redact" => Self::Redact,
            "partial" => Self::Partial,
            "hash" => Self::Hash,
            "drop" => Self::Drop,
            _ => Self::Unknown(name),
        }
    }
}

impl From<Strategy> for String {
    fn from(strategy: Strategy) -> Self {
        strategy.as_str().to_owned()
    }
}

/// The default regex size limit of the compiled value patterns: 16 MiB.
pub const DEFAULT_COMPILED_SIZE_LIMIT: usize = 16 << 20;

impl Default for LogMaskerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            defaults: true,
            rules: Vec::new(),
            compiled_size_limit: DEFAULT_COMPILED_SIZE_LIMIT,
            health: LogMaskerHealthConfig::default(),
        }
    }
}

/// The field names masked by default (`redact`), matched case-insensitively.
pub const DEFAULT_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "*secret",
    "token",
    "*_token",
    "api_key",
    "apikey",
    "*_api_key",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "private_key",
    "credentials",
];

/// The default rules: [`DEFAULT_FIELDS`] and every built-in pattern except the opt-in IP
/// addresses, all `redact`.
pub fn default_rules() -> Vec<MaskRule> {
    let fields = DEFAULT_FIELDS
        .iter()
        .map(|glob| MaskRule::field(glob, Strategy::Redact));
    let builtins = Builtin::ALL
        .iter()
        .filter(|b| !b.opt_in())
        .map(|b| MaskRule::builtin(*b, Strategy::Redact));
    fields.chain(builtins).collect()
}

impl LogMaskerConfig {
    /// The rules in effect: `rules`, then (with `defaults`) the default rules whose built-in
    /// `rules` does not name.
    pub fn effective_rules(&self) -> Vec<MaskRule> {
        let mut rules = self.rules.clone();
        if self.defaults {
            let named: Vec<&str> = self
                .rules
                .iter()
                .filter_map(|r| r.builtin.as_deref())
                .collect();
            rules.extend(
                default_rules()
                    .into_iter()
                    .filter(|r| r.builtin.as_deref().is_none_or(|b| !named.contains(&b))),
            );
        }
        rules
    }

    /// Every problem the section has, each with its path (`rules.2.regex`, ...).
    pub fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.compiled_size_limit == 0 {
            errors.push(FieldError::new("compiled_size_limit", "must be > 0, got 0"));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            validate_rule(index, rule, self.compiled_size_limit, &mut errors);
        }
        FieldError::collect(errors)
    }
}

fn validate_rule(index: usize, rule: &MaskRule, size_limit: usize, errors: &mut Vec<FieldError>) {
    let path = |key: &str| format!("rules.{index}.{key}");
    let kinds = [&rule.field, &rule.builtin, &rule.regex]
        .iter()
        .filter(|k| k.is_some())
        .count();
    if kinds != 1 {
        errors.push(FieldError::new(
            format!("rules.{index}"),
            format!("needs exactly one of `field`, `builtin` or `regex`, got {kinds}"),
        ));
        return;
    }
    // The shortest value the rule can match, when the rule knows it.
    let mut shortest = None;
    if let Some(glob) = &rule.field
        && glob.trim().is_empty()
    {
        errors.push(FieldError::new(path("field"), "must not be empty"));
    }
    if let Some(name) = &rule.builtin {
        match Builtin::from_name(name) {
            Some(builtin) => shortest = Some(builtin.shortest()),
            None => errors.push(FieldError::new(
                path("builtin"),
                format!(
                    "unknown built-in pattern `{name}`, expected one of {}",
                    Builtin::ALL.map(Builtin::name).join(", ")
                ),
            )),
        }
    }
    if let Some(regex) = &rule.regex {
        // Under the configured limit, so a pattern too big for it is rejected here with its
        // path (a zero limit is reported on its own).
        match compile_pattern(regex, size_limit.max(1)) {
            Ok(_) => {}
            Err(regex::Error::CompiledTooBig(limit)) => errors.push(FieldError::new(
                path("regex"),
                format!("the pattern does not compile within compiled_size_limit ({limit} bytes)"),
            )),
            Err(error) => errors.push(FieldError::new(
                path("regex"),
                format!("invalid regex: {error}"),
            )),
        }
    }
    match &rule.strategy {
        Strategy::Unknown(name) => errors.push(FieldError::new(
            path("strategy"),
            format!("unknown strategy `{name}`, expected redact, partial, hash or drop"),
        )),
        Strategy::Drop if rule.field.is_none() => errors.push(FieldError::new(
            path("strategy"),
            "`drop` removes a field, so it needs a field rule; a value pattern can redact, partial or hash",
        )),
        Strategy::Partial => {
            let kept = rule.keep_first + rule.keep_last;
            if kept == 0 {
                errors.push(FieldError::new(
                    path("keep_last"),
                    "`partial` keeping nothing is `redact`: keep_first + keep_last must be > 0",
                ));
            } else if let Some(shortest) = shortest
                && kept * 2 > shortest
            {
                errors.push(FieldError::new(
                    path("keep_last"),
                    format!(
                        "`partial` would keep more characters than it masks: keep_first + keep_last = {kept}, and a match can be as short as {shortest} characters (keep at most {})",
                        shortest / 2
                    ),
                ));
            }
        }
        _ => {}
    }
}
