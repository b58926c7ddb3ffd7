//! Tokens: every algorithm round-trips, and each attack is refused with its own error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use modular_auth::{AuthError, Claims, TokenError};
use serde_json::{Value, json};
use support::*;

fn hs() -> modular_auth::Auth {
    auth_with("hs", vec![("hs", hmac("HS256", SECRET))])
}

fn sign_hs(claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    encode(
        &header,
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[test]
fn every_algorithm_signs_and_verifies_its_own_tokens() {
    for (alg, key) in [
        ("HS256", hmac("HS256", SECRET)),
        ("HS384", hmac("HS384", SECRET)),
        ("HS512", hmac("HS512", SECRET)),
        ("RS256", private("RS256", "rsa.pem")),
        ("ES256", private("ES256", "ec.pem")),
        ("EdDSA", private("EdDSA", "ed.pem")),
    ] {
        let auth = auth_with("k", vec![("k", key)]);
        let token = auth
            .issue_access("ada", &["ops".to_owned()], &["orders:read".to_owned()])
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);
        assert_eq!(header.kid.as_deref(), Some("k"));
        let claims = auth.verify(&token).unwrap();
        assert_eq!(claims.sub, "ada", "{alg}");
        assert!(claims.has_role("ops") && claims.has_permission("orders:read"));
        assert_eq!(claims.iss, "https://issuer.test");
        assert_eq!(claims.aud, ["api"]);
    }
}

#[test]
fn a_public_key_verifies_what_its_private_half_signed() {
    for (alg, private_file, public_file) in [
        ("RS256", "rsa.pem", "rsa.pub.pem"),
        ("ES256", "ec.pem", "ec.pub.pem"),
        ("EdDSA", "ed.pem", "ed.pub.pem"),
    ] {
        let signer = auth_with("k", vec![("k", private(alg, private_file))]);
        let verifier = auth_with(
            "hs",
            vec![
                ("hs", hmac("HS256", SECRET)),
                ("k", public(alg, public_file)),
            ],
        );
        let token = signer.issue_access("ada", &[], &[]).unwrap();
        assert_eq!(verifier.verify(&token).unwrap().sub, "ada", "{alg}");
    }
}

#[test]
fn alg_none_is_refused() {
    let header = b64(br#"{"alg":"none","typ":"JWT","kid":"hs"}"#);
    let payload = b64(claims("mallory").to_string().as_bytes());
    let auth = hs();
    assert_eq!(
        auth.verify(&format!("{header}.{payload}.")),
        Err(TokenError::Malformed)
    );
    let header = b64(br#"{"alg":"None","kid":"hs"}"#);
    assert_eq!(
        auth.verify(&format!("{header}.{payload}.")),
        Err(TokenError::Malformed)
    );
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let auth = auth_with("rsa", vec![("rsa", private("RS256", "rsa.pem"))]);
    let public_pem = std::fs::read(fixture("rsa.pub.pem")).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa".to_owned());
    let forged = encode(
        &header,
        &claims("mallory"),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    assert_eq!(auth.verify(&forged), Err(TokenError::WrongAlgorithm));
}

#[test]
fn an_expired_token_is_refused_past_the_leeway_and_accepted_within_it() {
    let auth = hs();
    let now = jsonwebtoken::get_current_timestamp();
    let mut c = claims("ada");
    c["exp"] = json!(now - 120);
    assert_eq!(
        auth.verify(&sign_hs(&c, Some("hs"))),
        Err(TokenError::Expired)
    );
    // The default leeway is 30s.
    c["exp"] = json!(now - 10);
    assert!(auth.verify(&sign_hs(&c, Some("hs"))).is_ok());
}

#[test]
fn a_token_not_yet_valid_is_refused() {
    let mut c = claims("ada");
    c["nbf"] = json!(jsonwebtoken::get_current_timestamp() + 300);
    assert_eq!(
        hs().verify(&sign_hs(&c, Some("hs"))),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn a_wrong_audience_is_refused() {
    let mut c = claims("ada");
    c["aud"] = json!("another-api");
    assert_eq!(
        hs().verify(&sign_hs(&c, Some("hs"))),
        Err(TokenError::WrongAudience)
    );
    c["aud"] = json!(["x", "api"]);
    assert!(hs().verify(&sign_hs(&c, Some("hs"))).is_ok());
}

#[test]
fn a_wrong_issuer_is_refused() {
    let mut c = claims("ada");
    c["iss"] = json!("https://evil.test");
    assert_eq!(
        hs().verify(&sign_hs(&c, Some("hs"))),
        Err(TokenError::WrongIssuer)
    );
}

#[test]
fn a_missing_required_claim_is_refused() {
    let mut c = claims("ada");
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        hs().verify(&sign_hs(&c, Some("hs"))),
        Err(TokenError::MissingClaim("aud".to_owned()))
    );
}

#[test]
fn a_tampered_payload_is_refused() {
    let auth = hs();
    let token = auth.issue_access("ada", &["user".to_owned()], &[]).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims("ada");
    c["roles"] = json!(["admin"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(c.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(auth.verify(&forged), Err(TokenError::BadSignature));
}

#[test]
fn an_unknown_or_missing_kid_is_refused() {
    let auth = hs();
    assert_eq!(
        auth.verify(&sign_hs(&claims("ada"), Some("nope"))),
        Err(TokenError::UnknownKey)
    );
    assert_eq!(
        auth.verify(&sign_hs(&claims("ada"), None)),
        Err(TokenError::UnknownKey)
    );
    assert_eq!(auth.verify("not.a.jwt"), Err(TokenError::Malformed));
    assert_eq!(auth.verify(""), Err(TokenError::Malformed));
}

#[test]
fn a_token_signed_by_another_key_with_the_same_kid_is_refused() {
    let other = auth_with("hs", vec![("hs", hmac("HS256", SECRET2))]);
    let token = other.issue_access("ada", &[], &[]).unwrap();
    assert_eq!(hs().verify(&token), Err(TokenError::BadSignature));
}

#[tokio::test]
async fn a_refresh_token_is_single_use_and_its_reuse_revokes_the_family() {
    let auth = hs();
    let first = auth.issue("ada", &["ops".to_owned()], &[]).unwrap();
    let second = auth.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(auth.verify(&second.access_token).unwrap().roles, ["ops"]);
    // The stolen copy is used again: refused, and the family is revoked...
    let reused = auth.refresh(&first.refresh_token).await.unwrap_err();
    assert!(
        matches!(reused, AuthError::Token(TokenError::RefreshReused)),
        "{reused:?}"
    );
    // ...so the legitimate holder's newer refresh token stops working too.
    let revoked = auth.refresh(&second.refresh_token).await.unwrap_err();
    assert!(
        matches!(revoked, AuthError::Token(TokenError::RefreshRevoked)),
        "{revoked:?}"
    );
    // Another family is untouched.
    let other = auth.issue("bob", &[], &[]).unwrap();
    assert!(auth.refresh(&other.refresh_token).await.is_ok());
}

#[tokio::test]
async fn access_and_refresh_tokens_are_not_interchangeable() {
    let auth = hs();
    let pair = auth.issue("ada", &[], &[]).unwrap();
    assert_eq!(
        auth.verify(&pair.refresh_token),
        Err(TokenError::WrongType {
            found: "refresh",
            expected: "access"
        })
    );
    let error = auth.refresh(&pair.access_token).await.unwrap_err();
    assert!(matches!(
        error,
        AuthError::Token(TokenError::WrongType {
            found: "access",
            expected: "refresh"
        })
    ));
}

#[tokio::test]
async fn a_revoked_refresh_family_stops_refreshing() {
    let auth = hs();
    let pair = auth.issue("ada", &[], &[]).unwrap();
    auth.revoke_refresh(&pair.refresh_token).await.unwrap();
    assert!(matches!(
        auth.refresh(&pair.refresh_token).await,
        Err(AuthError::Token(TokenError::RefreshRevoked))
    ));
}

#[test]
fn the_jwks_publishes_public_keys_by_kid_and_never_an_hmac_secret() {
    let auth = auth_with(
        "ec",
        vec![
            ("hs", hmac("HS256", SECRET)),
            ("ec", private("ES256", "ec.pem")),
            ("rsa", public("RS256", "rsa.pub.pem")),
            ("ed", private("EdDSA", "ed.pem")),
        ],
    );
    let jwks = auth.jwks();
    let kids: Vec<_> = jwks
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect();
    assert_eq!(kids, ["ec", "ed", "rsa"]);
    let text = serde_json::to_string(&jwks).unwrap();
    assert!(!text.contains(&support::b64(SECRET.as_bytes())) && !text.contains(SECRET));
    // A verifier holding only the JWKS verifies the module's tokens.
    let token = auth.issue_access("ada", &[], &[]).unwrap();
    let jwk = jwks.find("ec").unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
    validation.set_audience(&["api"]);
    let claims = jsonwebtoken::decode::<Claims>(&token, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims.sub, "ada");
}

#[test]
fn token_pairs_and_the_service_do_not_print_secrets_or_tokens() {
    let auth = hs();
    let pair = auth.issue("ada", &[], &[]).unwrap();
    let printed = format!("{pair:?} {auth:?} {:?}", auth.config());
    assert!(!printed.contains(&pair.access_token));
    assert!(!printed.contains(&pair.refresh_token));
    assert!(!printed.contains(SECRET));
}
