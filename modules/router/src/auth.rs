//! Bearer-token checks for `/admin/*` and for health details, in constant time.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use modular_core::Secret;
use subtle::ConstantTimeEq;

/// What a request's credentials amount to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// No token is configured: the admin endpoints do not exist.
    Disabled,
    /// No bearer token in the request (`401`).
    Missing,
    /// A bearer token that is not the configured one (`403`).
    Denied,
    /// The configured token.
    Granted,
}

/// Checks the request's `Authorization: Bearer <token>` against `token`.
pub(crate) fn check(headers: &HeaderMap, token: &Secret<String>) -> Access {
    let expected = token.expose().as_bytes();
    if expected.is_empty() {
        return Access::Disabled;
    }
    match bearer(headers) {
        None => Access::Missing,
        Some(given) if tokens_match(given, expected) => Access::Granted,
        Some(_) => Access::Denied,
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first().is_none_or(|b| *b != b' ') {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Compares in time that depends only on the configured token's length, never on where the
/// given token first differs (nor on its length, beyond equal-or-not, which both branches
/// hide by doing the same work).
fn tokens_match(given: &[u8], expected: &[u8]) -> bool {
    if given.len() == expected.len() {
        given.ct_eq(expected).into()
    } else {
        // Same work as a comparison of equal lengths, so a length mismatch answers no faster.
        let _ = std::hint::black_box(expected.ct_eq(std::hint::black_box(expected)));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers
    }

    fn token() -> Secret<String> {
        Secret::new("0123456789abcdef".to_owned())
    }

    #[test]
    fn the_configured_token_is_granted_whatever_the_scheme_case() {
        assert_eq!(
            check(&headers("Bearer 0123456789abcdef"), &token()),
            Access::Granted
        );
        assert_eq!(
            check(&headers("bearer  0123456789abcdef "), &token()),
            Access::Granted
        );
    }

    #[test]
    fn other_tokens_are_denied_and_missing_ones_reported_missing() {
        assert_eq!(
            check(&headers("Bearer 0123456789abcdeX"), &token()),
            Access::Denied
        );
        assert_eq!(check(&headers("Bearer 0123"), &token()), Access::Denied);
        assert_eq!(
            check(&headers("Basic dXNlcjpwYXNz"), &token()),
            Access::Missing
        );
        assert_eq!(check(&headers("Bearer "), &token()), Access::Missing);
        assert_eq!(check(&HeaderMap::new(), &token()), Access::Missing);
    }

    #[test]
    fn without_a_configured_token_access_is_disabled() {
        let empty = Secret::new(String::new());
        assert_eq!(check(&headers("Bearer anything"), &empty), Access::Disabled);
    }
}
