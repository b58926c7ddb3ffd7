//! Shared fixtures: key files, configs and applications with the auth module.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use modular_auth::{Auth, AuthConfig, AuthModule, KeyConfig};
use modular_core::events::{AttributesReader as _, EventFilter, EventStream};
use modular_core::{Application, ApplicationBuilder};
use serde_json::{Value, json};

/// An HMAC secret long enough for HS512; tests look for it in every output.
pub const SECRET: &str = "s3cr3t-hmac-key-0123456789abcdef0123456789abcdef0123456789abcdef";
/// A second HMAC secret for rotation.
pub const SECRET2: &str = "another-hmac-key-for-rotation-0123456789abcdef";

/// A fixture key file (`rsa.pem`, `ec.pub.pem`, ...).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// An HMAC key config.
pub fn hmac(algorithm: &str, secret: &str) -> KeyConfig {
    KeyConfig {
        algorithm: algorithm.to_owned(),
        secret: Some(secret.to_owned().into()),
        ..KeyConfig::default()
    }
}

/// A key config over a private key fixture.
pub fn private(algorithm: &str, file: &str) -> KeyConfig {
    KeyConfig {
        algorithm: algorithm.to_owned(),
        private_key_file: Some(fixture(file)),
        ..KeyConfig::default()
    }
}

/// A verify-only key config over a public key fixture.
pub fn public(algorithm: &str, file: &str) -> KeyConfig {
    KeyConfig {
        algorithm: algorithm.to_owned(),
        public_key_file: Some(fixture(file)),
        ..KeyConfig::default()
    }
}

/// A config whose ring is `keys`, signing with `signing`.
pub fn config_with(signing: &str, keys: Vec<(&str, KeyConfig)>) -> AuthConfig {
    let mut config = AuthConfig {
        issuer: "https://issuer.test".to_owned(),
        audience: vec!["api".to_owned()],
        signing_key: signing.to_owned(),
        ..AuthConfig::default()
    };
    for (kid, key) in keys {
        config.keys.insert(kid.to_owned(), key);
    }
    // Fast argon2 for tests that do not measure it.
    config.passwords.memory_kib = 256;
    config.passwords.iterations = 1;
    config
}

/// A standalone service signing with `signing` from `keys`.
pub fn auth_with(signing: &str, keys: Vec<(&str, KeyConfig)>) -> Auth {
    Auth::new(config_with(signing, keys)).unwrap()
}

/// The `auth` section as JSON: HS256 key `k1` signing, plus `extra` merged in.
pub fn section(extra: Value) -> Value {
    let mut config = json!({ "auth": {
        "issuer": "https://issuer.test",
        "audience": ["api"],
        "signing_key": "k1",
        "keys": { "k1": { "algorithm": "HS256", "secret": SECRET } },
        "passwords": { "memory_kib": 256, "iterations": 1 },
    } });
    merge(&mut config, extra);
    config
}

/// Merges `extra` into `base`, object by object.
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (slot, value) => *slot = value,
    }
}

/// The test builder with the auth module over `config`.
pub fn builder(config: Value) -> ApplicationBuilder {
    modular_testkit::test_builder()
        .config_defaults(config)
        .module(AuthModule::new())
}

/// A started application over `config` and its auth service.
pub async fn started(config: Value) -> (Application, Auth) {
    let mut app = builder(config).build().await.unwrap();
    app.start().await.unwrap();
    let auth = (*app.services().require::<Auth>().unwrap()).clone();
    (app, auth)
}

/// The build error's text.
pub async fn build_error(builder: ApplicationBuilder) -> String {
    match builder.build().await {
        Ok(mut app) => {
            let _ = app.stop().await;
            panic!("the build succeeded")
        }
        Err(error) => format!("{error:#}"),
    }
}

/// Subscribes to the module's events.
pub fn subscribe(app: &Application) -> EventStream {
    app.events()
        .subscribe_with_capacity(EventFilter::prefix("com.modular.auth."), 1024)
}

/// The next event of `kind` (full type) within 10 s.
pub async fn next_event(events: &mut EventStream, kind: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.recv().await.expect("the bus is open");
            if event.ty() == kind {
                return match event.data() {
                    Some(cloudevents::Data::Json(value)) => value.clone(),
                    _ => Value::Null,
                };
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} within 10s"))
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = match chunk.len() {
            3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
            2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
            _ => u32::from(chunk[0]) << 16,
        };
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Claims valid for the fixtures' issuer and audience, for `sub`.
pub fn claims(sub: &str) -> Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({ "sub": sub, "iss": "https://issuer.test", "aud": "api", "exp": now + 600, "nbf": now - 1, "iat": now, "jti": "t1", "roles": ["user"] })
}
