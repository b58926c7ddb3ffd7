//! [`KeyRing`]: the configured signing and verification keys, parsed once, looked up by `kid`.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use modular_core::FieldError;
use tokio::time::Instant;

use crate::config::{AuthConfig, KeyConfig};

/// The algorithms a key may name.
pub const ALGORITHMS: &[&str] = &["HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA"];

/// One parsed key.
pub(crate) struct LoadedKey {
    pub(crate) kid: String,
    pub(crate) algorithm: Algorithm,
    pub(crate) encoding: Option<EncodingKey>,
    pub(crate) decoding: DecodingKey,
    /// Accepts only this key's algorithm.
    pub(crate) validation: Validation,
    /// The public JWK (asymmetric keys only: an HMAC secret is never published).
    pub(crate) jwk: Option<Jwk>,
    /// When the reload that retired it committed (a retired key verifies until
    /// `retired_at + rotation_overlap`).
    pub(crate) retired_at: Option<Instant>,
    pub(crate) not_after: Option<u64>,
}

impl fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("signs", &self.encoding.is_some())
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Every key, by `kid`, and the one that signs.
#[derive(Debug)]
pub struct KeyRing {
    pub(crate) keys: HashMap<String, LoadedKey>,
    pub(crate) signing: String,
    pub(crate) overlap: Duration,
    pub(crate) jwks: JwkSet,
}

/// Why a key cannot be used: a path below `keys.<kid>` and a message without the secret.
type Problem = FieldError;

fn algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

fn min_hmac_len(algorithm: Algorithm) -> Option<usize> {
    match algorithm {
        Algorithm::HS256 => Some(32),
        Algorithm::HS384 => Some(48),
        Algorithm::HS512 => Some(64),
        _ => None,
    }
}

fn read(path: &std::path::Path, field: String) -> Result<Vec<u8>, Problem> {
    std::fs::read(path)
        .map_err(|e| FieldError::new(field, format!("cannot read {}: {e}", path.display())))
}

/// Parses one key; `retired_at` is carried by the caller.
fn load(kid: &str, config: &KeyConfig, auth: &AuthConfig) -> Result<LoadedKey, Vec<Problem>> {
    let base = format!("keys.{kid}");
    let Some(alg) = algorithm(&config.algorithm) else {
        return Err(vec![FieldError::new(
            format!("{base}.algorithm"),
            format!(
                "unknown algorithm \"{}\", expected one of {}",
                config.algorithm,
                ALGORITHMS.join(", ")
            ),
        )]);
    };
    let mut validation = Validation::new(alg);
    validation.validate_nbf = true;
    validation.leeway = auth.leeway.as_secs();
    validation.set_issuer(&[&auth.issuer]);
    validation.set_audience(&auth.audience);
    validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let (encoding, decoding, jwk) = if let Some(min) = min_hmac_len(alg) {
        if config.private_key_file.is_some() || config.public_key_file.is_some() {
            return Err(vec![FieldError::new(
                format!("{base}.private_key_file"),
                format!(
                    "{} is an HMAC algorithm: give `secret`, not key files",
                    config.algorithm
                ),
            )]);
        }
        let Some(secret) = &config.secret else {
            return Err(vec![FieldError::new(
                format!("{base}.secret"),
                format!("{} needs a secret", config.algorithm),
            )]);
        };
        let bytes = secret.expose().as_bytes();
        if bytes.len() < min {
            return Err(vec![FieldError::new(
                format!("{base}.secret"),
                format!(
                    "too short for {}: {} bytes, needs at least {min}",
                    config.algorithm,
                    bytes.len()
                ),
            )]);
        }
        (
            Some(EncodingKey::from_secret(bytes)),
            DecodingKey::from_secret(bytes),
            None,
        )
    } else {
        if config.secret.is_some() {
            return Err(vec![FieldError::new(
                format!("{base}.secret"),
                format!(
                    "{} is not an HMAC algorithm: give private_key_file or public_key_file",
                    config.algorithm
                ),
            )]);
        }
        let malformed = |field: &str, path: &std::path::Path, e: jsonwebtoken::errors::Error| {
            vec![FieldError::new(
                format!("{base}.{field}"),
                format!(
                    "{}: not a {} PEM key: {e}",
                    path.display(),
                    config.algorithm
                ),
            )]
        };
        let encoding = match &config.private_key_file {
            Some(path) => {
                let pem = read(path, format!("{base}.private_key_file")).map_err(|e| vec![e])?;
                let key = match alg {
                    Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
                    Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
                    _ => EncodingKey::from_ed_pem(&pem),
                }
                .map_err(|e| malformed("private_key_file", path, e))?;
                Some(key)
            }
            None => None,
        };
        let public = match &config.public_key_file {
            Some(path) => {
                let pem = read(path, format!("{base}.public_key_file")).map_err(|e| vec![e])?;
                let key = match alg {
                    Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                    Algorithm::ES256 => DecodingKey::from_ec_pem(&pem),
                    _ => DecodingKey::from_ed_pem(&pem),
                }
                .map_err(|e| malformed("public_key_file", path, e))?;
                Some(key)
            }
            None => None,
        };
        let Some(jwk) = (match (&encoding, &public) {
            (_, Some(public)) => Jwk::from_decoding_key(public, Some(alg)).ok(),
            (Some(private), None) => Jwk::from_encoding_key(private, alg).ok(),
            (None, None) => {
                return Err(vec![FieldError::new(
                    format!("{base}.private_key_file"),
                    format!(
                        "{} needs private_key_file or public_key_file",
                        config.algorithm
                    ),
                )]);
            }
        }) else {
            return Err(vec![FieldError::new(
                format!("{base}.private_key_file"),
                format!(
                    "the {} key's public half cannot be derived",
                    config.algorithm
                ),
            )]);
        };
        let decoding = match public {
            Some(public) => public,
            None => DecodingKey::from_jwk(&jwk).map_err(|e| {
                vec![FieldError::new(
                    format!("{base}.private_key_file"),
                    format!(
                        "the {} key's public half cannot be used: {e}",
                        config.algorithm
                    ),
                )]
            })?,
        };
        let mut jwk = jwk;
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = key_algorithm(alg);
        (encoding, decoding, Some(jwk))
    };
    Ok(LoadedKey {
        kid: kid.to_owned(),
        algorithm: alg,
        encoding,
        decoding,
        validation,
        jwk,
        retired_at: None,
        not_after: config.not_after,
    })
}

fn key_algorithm(alg: Algorithm) -> Option<KeyAlgorithm> {
    Some(match alg {
        Algorithm::RS256 => KeyAlgorithm::RS256,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        Algorithm::EdDSA => KeyAlgorithm::EdDSA,
        _ => return None,
    })
}

impl KeyRing {
    /// Checks the keys of `config` as [`KeyRing::build`] would, for validation.
    pub(crate) fn check(config: &AuthConfig) -> Result<(), Vec<Problem>> {
        Self::build(config, None).map(|_| ())
    }

    /// Parses every key of `config`; a key already retired in `previous` keeps its
    /// retirement time, a newly retired one is retired now.
    pub(crate) fn build(
        config: &AuthConfig,
        previous: Option<&KeyRing>,
    ) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut keys = HashMap::new();
        let now = Instant::now();
        for (kid, key_config) in &config.keys {
            match load(kid, key_config, config) {
                Ok(mut key) => {
                    if key_config.retired {
                        key.retired_at = Some(
                            previous
                                .and_then(|p| p.keys.get(kid))
                                .and_then(|k| k.retired_at)
                                .unwrap_or(now),
                        );
                    }
                    keys.insert(kid.clone(), key);
                }
                Err(e) => problems.extend(e),
            }
        }
        match config.keys.get(&config.signing_key) {
            _ if config.signing_key.is_empty() => problems.push(FieldError::new(
                "signing_key",
                "must name the key that signs new tokens",
            )),
            None => problems.push(FieldError::new(
                "signing_key",
                format!(
                    "no key \"{}\" in keys (have: {})",
                    config.signing_key,
                    config.keys.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )),
            Some(k) if k.retired => problems.push(FieldError::new(
                "signing_key",
                format!("key \"{}\" is retired and cannot sign", config.signing_key),
            )),
            Some(_) => {
                if keys
                    .get(&config.signing_key)
                    .is_some_and(|k| k.encoding.is_none())
                {
                    problems.push(FieldError::new(
                        format!("keys.{}.private_key_file", config.signing_key),
                        "the signing key needs a private key",
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut jwks: Vec<Jwk> = keys.values().filter_map(|k| k.jwk.clone()).collect();
        jwks.sort_by(|a, b| a.common.key_id.cmp(&b.common.key_id));
        Ok(Self {
            keys,
            signing: config.signing_key.clone(),
            overlap: config.rotation_overlap,
            jwks: JwkSet { keys: jwks },
        })
    }

    /// The key that signs.
    pub(crate) fn signing(&self) -> Option<&LoadedKey> {
        self.keys.get(&self.signing)
    }

    /// The key `kid` names, when it still verifies.
    #[inline]
    pub(crate) fn verifying(&self, kid: &str) -> Result<&LoadedKey, crate::TokenError> {
        let key = self.keys.get(kid).ok_or(crate::TokenError::UnknownKey)?;
        if let Some(retired) = key.retired_at
            && retired.elapsed() >= self.overlap
        {
            return Err(crate::TokenError::RetiredKey);
        }
        Ok(key)
    }

    /// The public keys as a JWK set (`/.well-known/jwks.json`), retired keys included while
    /// they verify.
    pub fn jwks(&self) -> JwkSet {
        let keys = self
            .jwks
            .keys
            .iter()
            .filter(|jwk| {
                jwk.common
                    .key_id
                    .as_deref()
                    .is_some_and(|kid| self.verifying(kid).is_ok())
            })
            .cloned()
            .collect();
        JwkSet { keys }
    }

    /// The signing key's `kid`.
    pub fn signing_kid(&self) -> &str {
        &self.signing
    }

    /// Every `kid`, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.keys.keys().cloned().collect();
        kids.sort();
        kids
    }
}
