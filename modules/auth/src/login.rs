//! Password logins with failed-login throttling per account and per client address, counted
//! in the key-value store (fixed windows of `throttle.window`).

use std::net::IpAddr;

use crate::error::AuthError;
use crate::service::Auth;

/// A hash of a throwaway password at the default parameters, verified against when the
/// account is unknown so an unknown account takes as long as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2k3lLG8rIQ4R3pQ1sVTS1HMPzaXUovWE0sJ3t3M4tQk";

/// One login attempt. The application looks the account up and passes its stored hash
/// (`None` for an unknown account).
#[derive(Clone, Copy)]
pub struct LoginAttempt<'a> {
    /// The account name as typed.
    pub account: &'a str,
    /// The password as typed.
    pub password: &'a str,
    /// The stored argon2 hash, `None` when no such account exists.
    pub stored_hash: Option<&'a str>,
    /// The client's address, when known.
    pub client: Option<IpAddr>,
}

impl std::fmt::Debug for LoginAttempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginAttempt")
            .field("account", &self.account)
            .field("password", &"[REDACTED]")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// A successful login.
#[derive(Clone, Debug)]
pub struct LoginSuccess {
    /// The check; `rehash` is the new hash to store when the parameters changed.
    pub check: crate::PasswordCheck,
}

fn account_key(account: &str) -> String {
    format!("auth:throttle:account:{}", account.to_lowercase())
}

fn client_key(client: IpAddr) -> String {
    format!("auth:throttle:client:{client}")
}

impl Auth {
    /// Verifies a login: refused while the account or the client is throttled; a failure
    /// counts against both; a success clears the account's count. Emits
    /// `login.succeeded` / `login.failed` / `login.throttled` (account and client only, never
    /// the password).
    pub async fn login(&self, attempt: LoginAttempt<'_>) -> Result<LoginSuccess, AuthError> {
        let config = self.config();
        let throttle = &config.throttle;
        let store = self.store();
        let account_key = account_key(attempt.account);
        let client = attempt.client.map(|c| c.to_string());
        let over = |value: Option<Vec<u8>>, max: u32| {
            value
                .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
                .is_some_and(|n| n >= u64::from(max))
        };
        let mut scope = None;
        if over(
            store.get(&account_key).await?,
            throttle.max_failures_per_account,
        ) {
            scope = Some("account");
        } else if let Some(ip) = attempt.client
            && over(
                store.get(&client_key(ip)).await?,
                throttle.max_failures_per_client,
            )
        {
            scope = Some("client");
        }
        if let Some(scope) = scope {
            self.inner.metrics.throttled(scope);
            self.inner.metrics.login("throttled");
            self.emit(
                "login.throttled",
                serde_json::json!({ "account": attempt.account, "client": client, "scope": scope }),
            );
            return Err(AuthError::Throttled { scope });
        }
        let check = match attempt.stored_hash {
            Some(stored) => self.verify_password(attempt.password, stored).await?,
            None => {
                // Same work as a wrong password: no account enumeration by timing.
                let _ = self.verify_password(attempt.password, DUMMY_HASH).await;
                crate::PasswordCheck {
                    matches: false,
                    rehash: None,
                }
            }
        };
        if !check.matches {
            store
                .increment(&account_key, 1, Some(throttle.window))
                .await?;
            if let Some(ip) = attempt.client {
                store
                    .increment(&client_key(ip), 1, Some(throttle.window))
                    .await?;
            }
            self.inner.metrics.login("failed");
            tracing::info!(module = "auth", account = attempt.account, "login failed");
            self.emit(
                "login.failed",
                serde_json::json!({ "account": attempt.account, "client": client, "reason": "invalid_credentials" }),
            );
            return Err(AuthError::InvalidCredentials);
        }
        store.delete(&account_key).await?;
        self.inner.metrics.login("succeeded");
        self.emit(
            "login.succeeded",
            serde_json::json!({ "account": attempt.account, "client": client, "rehashed": check.rehash.is_some() }),
        );
        Ok(LoginSuccess { check })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_parses_so_an_unknown_account_costs_a_full_verification() {
        let parsed = argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH);
        assert!(parsed.is_ok(), "{parsed:?}");
        let hasher = crate::passwords::Hasher::new(&crate::PasswordConfig::default());
        let check = hasher.map(|h| h.verify("anything", DUMMY_HASH).map(|c| c.matches));
        assert!(matches!(check, Ok(Ok(false))));
    }
}
