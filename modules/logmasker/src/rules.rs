//! The compiled rule set: field-name globs, and every value pattern compiled together in one
//! [`RegexSet`] (which says in one pass which patterns occur in a line), each backed by its own
//! [`Regex`] to find and replace the matches.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use metrics::Counter;
use modular_core::config::keyed_hash;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::config::{LogMaskerConfig, MaskRule, Strategy};
use crate::error::LogMaskerError;
use crate::metrics::MaskerSeries;

/// The built-in value patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Builtin {
    /// `Bearer <token>` (the token is masked, the scheme kept).
    Bearer,
    /// The password of a URL's user info (`postgres://user:<password>@host`; only the
    /// password is masked).
    UrlPassword,
    /// A JSON Web Token (`eyJ...`.`eyJ...`.`...`).
    Jwt,
    /// An AWS access key id (`AKIA`, `ASIA`, `ABIA`, `ACCA` and 16 more).
    AwsAccessKey,
    /// A PEM private key block, from `-----BEGIN ... PRIVATE KEY-----` to its end line (or the
    /// end of the value when the block is cut).
    PrivateKey,
    /// A payment card number (13 to 19 digits, optionally in groups), checked against the card
    /// brands' prefixes and lengths and the Luhn checksum.
    CreditCard,
    /// An IBAN, checked with its mod-97 checksum.
    Iban,
    /// An e-mail address.
    Email,
    /// An IPv4 address (opt-in: version strings look like one).
    Ipv4,
    /// An IPv6 address, checked by parsing it (opt-in).
    Ipv6,
}

impl Builtin {
    /// Every built-in, in the order they are listed in errors.
    pub const ALL: [Builtin; 10] = [
        Self::Bearer,
        Self::UrlPassword,
        Self::Jwt,
        Self::AwsAccessKey,
        Self::PrivateKey,
        Self::CreditCard,
        Self::Iban,
        Self::Email,
        Self::Ipv4,
        Self::Ipv6,
    ];

    /// The name used in YAML and in the metrics' `rule` label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::UrlPassword => "url_password",
            Self::Jwt => "jwt",
            Self::AwsAccessKey => "aws_access_key",
            Self::PrivateKey => "private_key",
            Self::CreditCard => "credit_card",
            Self::Iban => "iban",
            Self::Email => "email",
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }

    /// The built-in called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Whether the default rules leave it out.
    pub fn opt_in(self) -> bool {
        matches!(self, Self::Ipv4 | Self::Ipv6)
    }

    /// The fewest characters a masked match has (what `partial` may keep at most half of).
    pub fn shortest(self) -> usize {
        match self {
            Self::Bearer => 8,
            Self::UrlPassword => 1,
            Self::Jwt => 10,
            Self::AwsAccessKey => 20,
            Self::PrivateKey => 40,
            Self::CreditCard => 13,
            Self::Iban => 15,
            Self::Email => 6,
            Self::Ipv4 => 7,
            Self::Ipv6 => 3,
        }
    }

    fn regex(self) -> &'static str {
        match self {
            Self::Bearer => r"(?i:\bbearer)\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})",
            Self::UrlPassword => {
                r#"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@"']*:(?P<secret>[^\s@/"']+)@"#
            }
            Self::Jwt => r"\beyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*",
            Self::AwsAccessKey => r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
            Self::PrivateKey => {
                r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:(?s:.*?)-----END [A-Z0-9 ]*PRIVATE KEY-----|[^\n]*)"
            }
            Self::CreditCard => {
                r"\b(?:\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{1,7}|\d{4}[ -]\d{6}[ -]\d{4,5}|\d{13,19})\b"
            }
            Self::Iban => r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
            Self::Email => r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
            Self::Ipv4 => {
                r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b"
            }
            Self::Ipv6 => r"[0-9A-Fa-f:]*:[0-9A-Fa-f]*:[0-9A-Fa-f:]*",
        }
    }

    /// Whether a regex match really is one (checksums, parsing, boundaries).
    fn accepts(self, haystack: &str, start: usize, end: usize) -> bool {
        let found = &haystack[start..end];
        match self {
            Self::CreditCard => is_card_number(found),
            Self::Iban => is_iban(found),
            Self::Ipv6 => is_ipv6(haystack, start, end),
            _ => true,
        }
    }
}

/// Compiles one value pattern under `size_limit`. Validation (which runs on every reload,
/// whichever section changed) and [`RuleSet::compile`] share what was compiled: a pattern is
/// compiled once per process for each size limit, not once per reload and again in prepare.
pub(crate) fn compile_pattern(regex: &str, size_limit: usize) -> Result<Regex, regex::Error> {
    type Compiled = HashMap<(String, usize), Regex>;
    // Bounded by the patterns configs have held; cleared whole past the bound, which only
    // configs rewritten hundreds of times with new patterns reach.
    const MAX_CACHED: usize = 256;
    static CACHE: OnceLock<Mutex<Compiled>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let key = (regex.to_owned(), size_limit);
    if let Some(compiled) = lock(cache).get(&key) {
        return Ok(compiled.clone());
    }
    // Compiled outside the lock: a large pattern takes milliseconds.
    let compiled = RegexBuilder::new(regex).size_limit(size_limit).build()?;
    let mut cache = lock(cache);
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(key, compiled.clone());
    Ok(compiled)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Brand prefixes and lengths (Visa, Mastercard, Amex, Diners, Discover, JCB, UnionPay,
/// Maestro) and the Luhn checksum: a millisecond timestamp or an order number of the same
/// length is not a card.
fn is_card_number(found: &str) -> bool {
    let digits: Vec<u8> = found
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|d| d - b'0')
        .collect();
    let len = digits.len();
    let prefix = |n: usize| {
        digits
            .iter()
            .take(n)
            .fold(0u32, |acc, d| acc * 10 + u32::from(*d))
    };
    let brand = match digits.first() {
        Some(4) => matches!(len, 13 | 16 | 19),
        Some(5) => (51..=55).contains(&prefix(2)) && len == 16 || prefix(2) == 50 && len >= 12,
        Some(2) => (2221..=2720).contains(&prefix(4)) && len == 16,
        Some(3) => match prefix(2) {
            34 | 37 => len == 15,
            30 | 36 | 38 | 39 => (14..=19).contains(&len),
            35 => (16..=19).contains(&len),
            _ => false,
        },
        Some(6) => (16..=19).contains(&len),
        _ => false,
    };
    brand && luhn(&digits)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The IBAN checksum: the country and check digits moved to the end, letters as 10..35, the
/// number mod 97 is 1.
fn is_iban(found: &str) -> bool {
    let compact: Vec<u8> = found.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rest = 0u32;
    for b in tail.iter().chain(head) {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rest = if value >= 10 {
            (rest * 100 + value) % 97
        } else {
            (rest * 10 + value) % 97
        };
    }
    rest == 1
}

/// A candidate is an IPv6 address when it parses as one, is not the bare `::`, and does not
/// continue a word (`tokio::time`, `core::app` are paths, `12:30:45` a time).
fn is_ipv6(haystack: &str, start: usize, end: usize) -> bool {
    let found = &haystack[start..end];
    let joined = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
    if joined(haystack[..start].chars().next_back()) || joined(haystack[end..].chars().next()) {
        return false;
    }
    found != "::" && found.parse::<std::net::Ipv6Addr>().is_ok()
}

/// What a rule does, resolved from its config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Redact,
    Partial { first: usize, last: usize },
    Hash,
    Drop,
}

impl Action {
    fn from_rule(rule: &MaskRule) -> Self {
        match rule.strategy {
            Strategy::Partial => Self::Partial {
                first: rule.keep_first,
                last: rule.keep_last,
            },
            Strategy::Hash => Self::Hash,
            Strategy::Drop => Self::Drop,
            Strategy::Redact | Strategy::Unknown(_) => Self::Redact,
        }
    }

    /// The masked form of `value` (`Drop` gives the empty string: callers leave the field out).
    pub(crate) fn apply(self, value: &str) -> String {
        match self {
            Self::Redact => REDACTED.to_owned(),
            // Core's key: one key per process for every keyed hash the framework shows.
            Self::Hash => format!("[HASH:{:016x}]", keyed_hash(value)),
            Self::Drop => String::new(),
            Self::Partial { first, last } => {
                let count = value.chars().count();
                let kept = first + last;
                // Never reveal more than is hidden: a short value is redacted whole.
                if kept * 2 > count {
                    return REDACTED.to_owned();
                }
                let mut out = String::with_capacity(value.len());
                out.extend(value.chars().take(first));
                out.extend(std::iter::repeat_n('*', count - kept));
                out.extend(value.chars().skip(count - last));
                out
            }
        }
    }
}

/// The replacement of `redact`: core's, so masked values read like redacted config values.
pub use modular_core::config::REDACTED;

struct FieldRule {
    /// Lowercased glob.
    glob: String,
    /// The glob's first and last bytes when they are literals: most names differ there, so
    /// most rules are ruled out in two comparisons.
    first: Option<u8>,
    last: Option<u8>,
    action: Action,
    counter: Counter,
}

struct PatternRule {
    regex: Regex,
    builtin: Option<Builtin>,
    /// The index of the `secret` group, when only it is masked.
    secret: Option<usize>,
    action: Action,
    counter: Counter,
}

/// One compiled, immutable rule set. Masking a line loads one of these once, so the line is
/// masked entirely under it.
pub struct RuleSet {
    enabled: bool,
    fields: Vec<FieldRule>,
    /// `pairs[first][last / 64] >> (last % 64) & 1`: whether some field rule can match a name
    /// with these lowercased first and last bytes. Most names are ruled out by this one test,
    /// before any rule is tried.
    pairs: Box<[[u64; 4]; 256]>,
    set: RegexSet,
    patterns: Vec<PatternRule>,
    /// The rule count, for health details and events.
    rule_count: usize,
    compiled_size_limit: usize,
    series: MaskerSeries,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("enabled", &self.enabled)
            .field("fields", &self.fields.len())
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

impl RuleSet {
    /// Compiles `config`'s effective rules; an error names the rule's path.
    pub fn compile(config: &LogMaskerConfig) -> Result<Self, LogMaskerError> {
        let rules = config.effective_rules();
        let mut fields = Vec::new();
        let mut patterns = Vec::new();
        let mut sources = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            // Rules past the configured ones are the defaults; their path says so.
            let path = if index < config.rules.len() {
                format!("rules.{index}")
            } else {
                "defaults".to_owned()
            };
            let action = Action::from_rule(rule);
            if let Some(glob) = &rule.field {
                let label = rule.name.clone().unwrap_or_else(|| glob.clone());
                let glob = glob.to_lowercase();
                let literal = |b: Option<&u8>| b.copied().filter(|b| *b != b'*' && *b != b'?');
                fields.push(FieldRule {
                    first: literal(glob.as_bytes().first()),
                    last: literal(glob.as_bytes().last()),
                    glob,
                    action,
                    counter: crate::metrics::values_masked(label),
                });
                continue;
            }
            let (source, builtin, label) = match (&rule.builtin, &rule.regex) {
                (Some(name), _) => {
                    let builtin = Builtin::from_name(name).ok_or_else(|| LogMaskerError::Rule {
                        path: format!("{path}.builtin"),
                        message: format!("unknown built-in pattern `{name}`"),
                    })?;
                    (
                        builtin.regex().to_owned(),
                        Some(builtin),
                        builtin.name().to_owned(),
                    )
                }
                (None, Some(regex)) => (regex.clone(), None, format!("regex_{index}")),
                (None, None) => continue,
            };
            let label = rule.name.clone().unwrap_or(label);
            let regex =
                compile_pattern(&source, config.compiled_size_limit).map_err(
                    |error| match error {
                        regex::Error::CompiledTooBig(limit) => LogMaskerError::Rule {
                            path: "compiled_size_limit".to_owned(),
                            message: format!(
                                "the pattern of {path} does not compile within {limit} bytes"
                            ),
                        },
                        error => LogMaskerError::Rule {
                            path: format!("{path}.regex"),
                            message: format!("invalid regex: {error}"),
                        },
                    },
                )?;
            let secret = regex.capture_names().position(|n| n == Some("secret"));
            sources.push(source);
            patterns.push(PatternRule {
                regex,
                builtin,
                secret,
                action,
                counter: crate::metrics::values_masked(label),
            });
        }
        let pairs = name_pairs(&fields);
        let set = RegexSetBuilder::new(&sources)
            .size_limit(config.compiled_size_limit)
            .build()
            .map_err(|error| LogMaskerError::Rule {
                path: "compiled_size_limit".to_owned(),
                message: format!("the value patterns do not compile together: {error}"),
            })?;
        Ok(Self {
            enabled: config.enabled,
            rule_count: rules.len(),
            compiled_size_limit: config.compiled_size_limit,
            fields,
            pairs,
            set,
            patterns,
            series: MaskerSeries::new(),
        })
    }

    /// A set that masks nothing: only for the default rules failing to compile, which a test
    /// rules out.
    pub(crate) fn unreachable_fallback() -> Self {
        Self {
            enabled: true,
            fields: Vec::new(),
            pairs: Box::new([[0; 4]; 256]),
            set: RegexSet::empty(),
            patterns: Vec::new(),
            rule_count: 0,
            compiled_size_limit: 0,
            series: MaskerSeries::new(),
        }
    }

    /// The size limit the set was compiled under.
    pub fn compiled_size_limit(&self) -> usize {
        self.compiled_size_limit
    }

    /// The masker-wide counters, registered when the set was compiled.
    pub(crate) fn series(&self) -> &MaskerSeries {
        &self.series
    }

    /// Whether masking is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// How many rules the set holds.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// The action of the first field rule matching `name`, if any.
    pub(crate) fn field_action(&self, name: &str) -> Option<Action> {
        if !self.enabled {
            return None;
        }
        let bytes = name.as_bytes();
        let (first, last) = (
            bytes.first().map(u8::to_ascii_lowercase),
            bytes.last().map(u8::to_ascii_lowercase),
        );
        if let (Some(f), Some(l)) = (first, last)
            && self.pairs[usize::from(f)][usize::from(l / 64)] >> (l % 64) & 1 == 0
        {
            return None;
        }
        let rule = self.fields.iter().find(|r| {
            r.first.is_none_or(|b| Some(b) == first)
                && r.last.is_none_or(|b| Some(b) == last)
                && glob_match(&r.glob, name)
        })?;
        rule.counter.increment(1);
        Some(rule.action)
    }

    /// `text` with every value pattern masked, and how many values were.
    pub fn mask_text<'a>(&self, text: &'a str) -> (Cow<'a, str>, usize) {
        let mut out = Cow::Borrowed(text);
        let mut masked = 0;
        if !self.enabled || self.patterns.is_empty() {
            return (out, masked);
        }
        // The common line matches nothing: `is_match` stops at the first match and skips
        // the overlapping search that `matches` runs to find every pattern (about a quarter
        // of the line pass here).
        if !self.set.is_match(text) {
            return (out, masked);
        }
        let matches = self.set.matches(text);
        for index in matches.iter() {
            if let Some(rule) = self.patterns.get(index)
                && let Some((replaced, count)) = rule.replace(&out)
            {
                masked += count;
                rule.counter.increment(count as u64);
                out = Cow::Owned(replaced);
            }
        }
        (out, masked)
    }
}

impl PatternRule {
    /// `text` with this rule's matches masked, or `None` when nothing was.
    fn replace(&self, text: &str) -> Option<(String, usize)> {
        let mut out = String::new();
        let mut last = 0;
        let mut count = 0;
        let mut mask = |found: regex::Match<'_>| {
            let (start, end) = (found.start(), found.end());
            if start == end || self.builtin.is_some_and(|b| !b.accepts(text, start, end)) {
                return;
            }
            out.push_str(&text[last..start]);
            out.push_str(&self.action.apply(found.as_str()));
            last = end;
            count += 1;
        };
        // Capture groups cost a slower engine: only a rule with a `secret` group pays for them.
        match self.secret {
            Some(group) => self
                .regex
                .captures_iter(text)
                // A match whose `secret` group took no part is masked whole.
                .filter_map(|captures| captures.get(group).or_else(|| captures.get(0)))
                .for_each(&mut mask),
            None => self.regex.find_iter(text).for_each(&mut mask),
        }
        if count == 0 {
            return None;
        }
        out.push_str(&text[last..]);
        Some((out, count))
    }
}

/// The (first, last) byte pairs some rule's literal ends allow; a wildcard end allows every
/// byte (ASCII-lowercased, as names are compared).
fn name_pairs(fields: &[FieldRule]) -> Box<[[u64; 4]; 256]> {
    let mut pairs = Box::new([[0u64; 4]; 256]);
    for rule in fields {
        let firsts: Vec<u8> = rule.first.map_or_else(|| (0..=255).collect(), |b| vec![b]);
        for first in firsts {
            let row = &mut pairs[usize::from(first)];
            match rule.last {
                Some(last) => row[usize::from(last / 64)] |= 1 << (last % 64),
                None => *row = [u64::MAX; 4],
            }
        }
    }
    pairs
}

/// `*` (any run) and `?` (one character) over an ASCII-lowercased `name`; `glob` is lowercase.
pub(crate) fn glob_match(glob: &str, name: &str) -> bool {
    let (glob, name) = (glob.as_bytes(), name.as_bytes());
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(c) if *c == b'?' || *c == name[n].to_ascii_lowercase() => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    g = sg + 1;
                    n = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_default_rules_compile() {
        let rules = RuleSet::compile(&LogMaskerConfig::default()).unwrap();
        assert!(rules.rule_count() > 10);
    }

    #[test]
    fn globs_match_case_insensitively() {
        assert!(glob_match("password", "PassWord"));
        assert!(glob_match("*_token", "refresh_token"));
        assert!(glob_match("*_token", "ID_TOKEN"));
        assert!(!glob_match("*_token", "tokens"));
        assert!(glob_match("*secret", "client_secret"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("password", "password2"));
        assert!(glob_match("*a*b*", "xxaxxbxx"));
    }

    #[test]
    fn the_name_pair_test_never_rules_out_a_name_a_rule_matches() {
        let globs = [
            "password",
            "*_token",
            "*secret",
            "a?c",
            "x*",
            "*",
            "?",
            "Auth*Header",
        ];
        let names = [
            "password",
            "PASSWORD",
            "id_token",
            "client_secret",
            "abc",
            "aXc",
            "x",
            "xyz",
            "",
            "q",
            "authorization_header",
            "AUTH_HEADER",
            "user",
            "status",
            "token",
        ];
        for glob in globs {
            let config = LogMaskerConfig {
                defaults: false,
                rules: vec![MaskRule::field(glob, Strategy::Redact)],
                ..LogMaskerConfig::default()
            };
            let rules = RuleSet::compile(&config).unwrap();
            for name in names {
                assert_eq!(
                    rules.field_action(name).is_some(),
                    glob_match(&glob.to_lowercase(), name),
                    "glob {glob} on {name}"
                );
            }
        }
    }

    #[test]
    fn card_numbers_need_a_brand_prefix_and_the_luhn_checksum() {
        assert!(is_card_number("4111111111111111"));
        assert!(is_card_number("4111 1111 1111 1111"));
        assert!(is_card_number("378282246310005"));
        assert!(is_card_number("5555-5555-5555-4444"));
        assert!(!is_card_number("4111111111111112"), "luhn");
        assert!(!is_card_number("1764650000000"), "a millisecond timestamp");
    }

    #[test]
    fn ibans_need_the_mod_97_checksum() {
        assert!(is_iban("GB82WEST12345698765432"));
        assert!(is_iban("DE89 3704 0044 0532 0130 00"));
        assert!(!is_iban("GB82WEST12345698765433"));
    }

    #[test]
    fn partial_never_reveals_more_than_it_hides() {
        let action = Action::Partial { first: 2, last: 2 };
        assert_eq!(action.apply("abcdefgh"), "ab****gh");
        assert_eq!(action.apply("abcdefg"), REDACTED);
    }

    #[test]
    fn hashes_are_stable_within_the_process_and_differ_between_values() {
        assert_eq!(Action::Hash.apply("alice"), Action::Hash.apply("alice"));
        assert_ne!(Action::Hash.apply("alice"), Action::Hash.apply("bob"));
        assert!(Action::Hash.apply("alice").starts_with("[HASH:"));
    }
}
