//! argon2id password hashing ([`Hasher`]), rehash-on-login, and the password policy.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use modular_core::FieldError;

use crate::config::PasswordConfig;
use crate::error::AuthError;
use crate::service::Auth;

/// The most common passwords (lowercase), refused by the policy when `reject_common` is on.
const COMMON: &[&str] = &[
    "123456",
    "123456789",
    "12345678",
    "password",
    "qwerty",
    "qwerty123",
    "1234567890",
    "111111",
    "1234567",
    "password1",
    "12345",
    "123123",
    "000000",
    "iloveyou",
    "1234",
    "abc123",
    "dragon",
    "monkey",
    "letmein",
    "football",
    "baseball",
    "welcome",
    "admin",
    "login",
    "princess",
    "sunshine",
    "master",
    "shadow",
    "superman",
    "trustno1",
    "passw0rd",
    "password123",
    "qwertyuiop",
    "123qwe",
    "1q2w3e4r",
    "zaq12wsx",
    "changeme",
    "secret",
    "administrator",
    "welcome1",
    "p@ssw0rd",
    "qazwsx",
    "654321",
    "michael",
    "charlie",
    "aa123456",
    "whatever",
    "freedom",
    "hello123",
    "starwars",
    "password1234",
    "correcthorsebatterystaple",
    "letmein123",
    "adminadmin",
];

/// The hasher in force: argon2id with the configured parameters, and the policy.
#[derive(Clone, Debug)]
pub(crate) struct Hasher {
    params: Params,
    policy: PasswordConfig,
}

/// What verifying a password found.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordCheck {
    /// Whether the password matches.
    pub matches: bool,
    /// A new hash with the parameters in force, when the password matched and the stored hash
    /// used other parameters (or another variant): store it in place of the old one.
    pub rehash: Option<String>,
}

impl std::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCheck")
            .field("matches", &self.matches)
            .field("rehash", &self.rehash.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl Hasher {
    pub(crate) fn new(config: &PasswordConfig) -> Result<Self, FieldError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| FieldError::new("passwords", format!("invalid argon2id parameters: {e}")))?;
        Ok(Self {
            params,
            policy: config.clone(),
        })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub(crate) fn hash(&self, password: &str) -> Result<String, AuthError> {
        self.argon2()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Hashing(e.to_string()))
    }

    /// Verifies in constant time (argon2's comparison) and says whether to rehash.
    pub(crate) fn verify(&self, password: &str, stored: &str) -> Result<PasswordCheck, AuthError> {
        let parsed = PasswordHash::new(stored).map_err(|_| AuthError::BadHash)?;
        let matches = self
            .argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        let current = parsed.algorithm.as_str() == "argon2id"
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == self.params.m_cost()
                    && p.t_cost() == self.params.t_cost()
                    && p.p_cost() == self.params.p_cost()
            });
        let rehash = if matches && !current {
            Some(self.hash(password)?)
        } else {
            None
        };
        Ok(PasswordCheck { matches, rehash })
    }

    /// Every policy rule `password` breaks (empty: acceptable).
    pub(crate) fn policy_violations(&self, password: &str) -> Vec<String> {
        let p = &self.policy;
        let mut problems = Vec::new();
        let length = password.chars().count();
        if length < p.min_length {
            problems.push(format!("at least {} characters", p.min_length));
        }
        if length > p.max_length {
            problems.push(format!("at most {} characters", p.max_length));
        }
        let classes = [
            password.chars().any(|c| c.is_lowercase()),
            password.chars().any(|c| c.is_uppercase()),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| !c.is_alphanumeric()),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if classes < usize::from(p.min_classes) {
            problems.push(format!(
                "characters from at least {} of: lowercase, uppercase, digits, symbols",
                p.min_classes
            ));
        }
        if p.reject_common && COMMON.contains(&password.to_lowercase().as_str()) {
            problems.push("not one of the most common passwords".to_owned());
        }
        problems
    }
}

impl Auth {
    /// Checks `password` against the policy and hashes it with argon2id (on a blocking
    /// thread). A weak password is [`AuthError::WeakPassword`] naming every broken rule.
    pub async fn hash_password(&self, password: &str) -> Result<String, AuthError> {
        let hasher = self.state().hasher.clone();
        let problems = hasher.policy_violations(password);
        if !problems.is_empty() {
            return Err(AuthError::WeakPassword(problems));
        }
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hasher.hash(&password))
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))?
    }

    /// Verifies `password` against a stored PHC hash (on a blocking thread), with a rehash
    /// when the parameters in force differ from the hash's.
    pub async fn verify_password(
        &self,
        password: &str,
        stored: &str,
    ) -> Result<PasswordCheck, AuthError> {
        let hasher = self.state().hasher.clone();
        let (password, stored) = (password.to_owned(), stored.to_owned());
        tokio::task::spawn_blocking(move || hasher.verify(&password, &stored))
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))?
    }

    /// The policy rules `password` breaks (empty when it is acceptable).
    pub fn password_policy_violations(&self, password: &str) -> Vec<String> {
        self.state().hasher.policy_violations(password)
    }

    /// Verifies synchronously on this thread (benches; prefer [`Auth::verify_password`]).
    pub fn verify_password_blocking(
        &self,
        password: &str,
        stored: &str,
    ) -> Result<PasswordCheck, AuthError> {
        self.state().hasher.verify(password, stored)
    }
}
