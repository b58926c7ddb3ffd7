//! Auth benchmarks (issue 19), side by side in one run:
//! - `auth/verify_hs256/raw`: jsonwebtoken doing the work a verifier of kid-tagged tokens
//!   does: `decode_header`, then `decode::<Claims>` with the key and a `Validation` (exp, nbf,
//!   iss, aud, the one algorithm);
//! - `auth/verify_hs256/module`: the same token through the module's service
//!   (`Auth::verify`: the `ArcSwap` load of the key ring, the lookup by `kid`, the algorithm
//!   check, the same decode, the token-type check); target ≤ 1.1x raw;
//! - `auth/verify_es256/raw` and `/module`: the same with an ES256 (P-256) key;
//! - `auth/argon2id_verify/raw` and `/module`: one password verification at the OWASP
//!   defaults (m=19 MiB, t=2, p=1), the `argon2` crate directly and through
//!   `Auth::verify_password_blocking`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use modular_auth::{Auth, AuthModule, Claims};
use serde_json::json;

const SECRET: &str = "bench-hmac-secret-0123456789abcdef0123456789abcdef";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../modules/auth/tests/fixtures")
        .join(name)
}

fn module(runtime: &tokio::runtime::Runtime, signing: &str) -> (modular_core::Application, Auth) {
    runtime.block_on(async {
        let app = modular_core::Application::builder()
            .env_prefix(None)
            .handle_signals(false)
            .config_defaults(json!({ "auth": {
                "issuer": "https://issuer.test",
                "audience": ["api"],
                "signing_key": signing,
                "keys": {
                    "hs": { "algorithm": "HS256", "secret": SECRET },
                    "ec": { "algorithm": "ES256", "private_key_file": fixture("ec.pem") },
                },
            } }))
            .module(AuthModule::new())
            .build()
            .await
            .unwrap();
        let auth = (*app.services().require::<Auth>().unwrap()).clone();
        (app, auth)
    })
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_nbf = true;
    v.leeway = 30;
    v.set_issuer(&["https://issuer.test"]);
    v.set_audience(&["api"]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

fn raw_verify(token: &str, key: &DecodingKey, validation: &Validation) -> Claims {
    let header = decode_header(token).unwrap();
    assert!(header.kid.is_some());
    decode::<Claims>(token, key, validation).unwrap().claims
}

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (name, signing, alg) in [
        ("verify_hs256", "hs", Algorithm::HS256),
        ("verify_es256", "ec", Algorithm::ES256),
    ] {
        let (app, auth) = module(&runtime, signing);
        let token = auth
            .issue_access("ada", &["ops".to_owned()], &["orders:read".to_owned()])
            .unwrap();
        let key = match alg {
            Algorithm::HS256 => DecodingKey::from_secret(SECRET.as_bytes()),
            _ => DecodingKey::from_jwk(auth.jwks().find("ec").unwrap()).unwrap(),
        };
        let validation = validation(alg);
        assert_eq!(
            raw_verify(&token, &key, &validation),
            auth.verify(&token).unwrap()
        );
        let mut group = c.benchmark_group(format!("auth/{name}"));
        group.bench_function("raw", |b| {
            b.iter(|| raw_verify(std::hint::black_box(&token), &key, &validation))
        });
        group.bench_function("module", |b| {
            b.iter(|| auth.verify(std::hint::black_box(&token)).unwrap())
        });
        group.finish();
        drop(app);
    }
}

fn argon2id(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, auth) = module(&runtime, "hs");
    let password = "Correct-Horse-Battery-42";
    let argon = argon2::Argon2::default();
    let stored = argon
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    let check = auth.verify_password_blocking(password, &stored).unwrap();
    assert!(check.matches && check.rehash.is_none());
    let mut group = c.benchmark_group("auth/argon2id_verify");
    group.sample_size(10);
    group.bench_function("raw", |b| {
        b.iter(|| {
            let parsed = PasswordHash::new(&stored).unwrap();
            argon.verify_password(password.as_bytes(), &parsed).is_ok()
        })
    });
    group.bench_function("module", |b| {
        b.iter(|| {
            auth.verify_password_blocking(password, &stored)
                .unwrap()
                .matches
        })
    });
    group.finish();
    drop(app);
}

criterion_group!(benches, verify, argon2id);
criterion_main!(benches);
