//! DNS-01: the [`DnsProvider`] seam that publishes and removes the `_acme-challenge` TXT
//! records, and the records an order put up, removed whatever way the order ends.

use std::sync::Arc;

use crate::error::LetsEncryptError;

/// Publishes and removes the TXT records of DNS-01 challenges (RFC 8555 §8.4). One record
/// per challenge: a name and its wildcard (`example.com`, `*.example.com`) share
/// `_acme-challenge.example.com` with two values, so a provider adds and removes single
/// records, never the whole set.
///
/// [`Rfc2136Provider`](crate::rfc2136::Rfc2136Provider) is the one this crate ships (BIND,
/// Knot, PowerDNS and any server taking TSIG-signed dynamic updates).
#[async_trait::async_trait]
pub trait DnsProvider: Send + Sync + std::fmt::Debug {
    /// Adds the TXT record `value` at `name` (a fully qualified name without the final dot).
    async fn publish(&self, name: &str, value: &str) -> Result<(), LetsEncryptError>;

    /// Removes the TXT record `value` at `name`, leaving other values there.
    async fn remove(&self, name: &str, value: &str) -> Result<(), LetsEncryptError>;
}

/// The record name of the DNS-01 challenge for `identifier` (`*.` dropped).
pub(crate) fn challenge_name(identifier: &str) -> String {
    let domain = identifier.strip_prefix("*.").unwrap_or(identifier);
    format!("_acme-challenge.{domain}")
}

/// The TXT records one order published, removed by [`Self::clean`].
#[derive(Debug, Default)]
pub(crate) struct DnsRecords {
    provider: Option<Arc<dyn DnsProvider>>,
    published: Vec<(String, String)>,
}

impl DnsRecords {
    pub(crate) fn new(provider: Option<Arc<dyn DnsProvider>>) -> Self {
        Self {
            provider,
            published: Vec::new(),
        }
    }

    /// Publishes the record proving `identifier` with `value`.
    pub(crate) async fn publish(
        &mut self,
        identifier: &str,
        value: &str,
    ) -> Result<(), LetsEncryptError> {
        let provider = self.provider.clone().ok_or_else(|| {
            LetsEncryptError::acme(
                "challenge",
                format!("{identifier} needs dns-01 and no letsencrypt.dns provider is configured"),
            )
        })?;
        let name = challenge_name(identifier);
        provider.publish(&name, value).await?;
        self.published.push((name, value.to_owned()));
        Ok(())
    }

    /// Removes every record published; a failure is logged (a stale TXT record harms
    /// nothing and the next order adds its own).
    pub(crate) async fn clean(&mut self) {
        let Some(provider) = self.provider.clone() else {
            return;
        };
        for (name, value) in self.published.drain(..) {
            if let Err(error) = provider.remove(&name, &value).await {
                tracing::warn!(module = "letsencrypt", record = %name, %error, "cannot remove a dns-01 TXT record");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_and_its_base_name_share_the_challenge_name() {
        assert_eq!(
            challenge_name("*.example.test"),
            "_acme-challenge.example.test"
        );
        assert_eq!(
            challenge_name("example.test"),
            "_acme-challenge.example.test"
        );
    }
}
