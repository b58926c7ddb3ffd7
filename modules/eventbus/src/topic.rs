//! Topics and subscription patterns: dot-separated tokens, `*` for exactly one token and `>`
//! for one or more trailing tokens (the NATS syntax, which the other engines follow).

use std::fmt;

/// A parsed subscription or routing pattern, such as `orders.*` or `orders.>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Token {
    Literal(String),
    One,
    Tail,
}

impl Pattern {
    /// Parses `text`; the error says what is wrong without repeating more than the pattern.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        let parts: Vec<&str> = text.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let token = match *part {
                "" => {
                    return Err(format!(
                        "`{text}` has an empty token (two dots, or a leading or trailing dot)"
                    ));
                }
                "*" => Token::One,
                ">" if i + 1 == parts.len() => Token::Tail,
                ">" => return Err(format!("`{text}`: `>` may only be the last token")),
                literal if literal.contains(['*', '>']) => {
                    return Err(format!(
                        "`{text}`: wildcards must be a whole token (`orders.*`), got `{literal}`"
                    ));
                }
                literal if literal.chars().any(|c| c.is_whitespace()) => {
                    return Err(format!("`{text}` contains whitespace"));
                }
                literal => Token::Literal(literal.to_owned()),
            };
            tokens.push(token);
        }
        Ok(Self {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has a wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.tokens.iter().any(|t| !matches!(t, Token::Literal(_)))
    }

    /// Whether `topic` (a concrete topic, no wildcards) matches.
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('.');
        for token in &self.tokens {
            match token {
                Token::Tail => return parts.next().is_some_and(|p| !p.is_empty()),
                Token::One => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                Token::Literal(l) => match parts.next() {
                    Some(p) if p == l => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }

    /// Whether every topic `other` can match is matched by `self` too (used to route a
    /// subscription pattern to an engine).
    pub fn covers(&self, other: &Pattern) -> bool {
        let mut theirs = other.tokens.iter();
        for token in &self.tokens {
            match (token, theirs.next()) {
                (Token::Tail, Some(_)) => return true,
                (Token::One, Some(Token::Literal(_) | Token::One)) => {}
                (Token::Literal(a), Some(Token::Literal(b))) if a == b => {}
                _ => return false,
            }
        }
        theirs.next().is_none()
    }
}

impl Pattern {
    /// Whether some topic matches both `self` and `other`.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn intersects(&self, other: &Pattern) -> bool {
        fn go(a: &[Token], b: &[Token]) -> bool {
            match (a.split_first(), b.split_first()) {
                (None, None) => true,
                (Some((Token::Tail, _)), Some(_)) | (Some(_), Some((Token::Tail, _))) => true,
                (Some((x, a_rest)), Some((y, b_rest))) => {
                    let token_meets = match (x, y) {
                        (Token::Literal(l), Token::Literal(r)) => l == r,
                        _ => true,
                    };
                    token_meets && go(a_rest, b_rest)
                }
                _ => false,
            }
        }
        go(&self.tokens, &other.tokens)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks a concrete topic (what `publish` takes): tokens without wildcards.
pub fn check_topic(topic: &str) -> Result<(), String> {
    let pattern = Pattern::parse(topic)?;
    if pattern.is_wildcard() {
        return Err(format!(
            "`{topic}` is a pattern: publish to a concrete topic"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_star_matches_exactly_one_token() {
        assert!(p("orders.*").matches("orders.created"));
        assert!(!p("orders.*").matches("orders.created.eu"));
        assert!(!p("orders.*").matches("orders"));
        assert!(p("*.created").matches("orders.created"));
    }

    #[test]
    fn a_tail_matches_one_or_more_tokens() {
        assert!(p("orders.>").matches("orders.created"));
        assert!(p("orders.>").matches("orders.created.eu"));
        assert!(!p("orders.>").matches("orders"));
        assert!(!p("orders.>").matches("invoices.created"));
    }

    #[test]
    fn literals_match_themselves_only() {
        assert!(p("orders.created").matches("orders.created"));
        assert!(!p("orders.created").matches("orders.deleted"));
    }

    #[test]
    fn bad_wildcards_are_refused() {
        assert!(Pattern::parse("orders.>.eu").is_err());
        assert!(Pattern::parse("orders.cr*").is_err());
        assert!(Pattern::parse("orders..x").is_err());
        assert!(Pattern::parse("").is_err());
        assert!(check_topic("orders.*").is_err());
        assert!(check_topic("orders.created").is_ok());
    }

    #[test]
    fn covering_patterns_route_subscriptions() {
        assert!(p("orders.>").covers(&p("orders.*")));
        assert!(p("orders.*").covers(&p("orders.created")));
        assert!(!p("orders.*").covers(&p("orders.>")));
        assert!(p(">").covers(&p("anything.>")));
        assert!(!p("orders.created").covers(&p("orders.*")));
    }

    #[test]
    fn overlapping_patterns_intersect() {
        assert!(p(">").intersects(&p("metrics.*")));
        assert!(p("metrics.*").intersects(&p("*.cpu")));
        assert!(p("a.>").intersects(&p("*.b.c")));
        assert!(!p("metrics.*").intersects(&p("orders.*")));
        assert!(!p("a.*").intersects(&p("a.b.c")));
        assert!(!p("a.>").intersects(&p("a")));
    }
}
