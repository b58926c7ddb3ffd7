//! The ACME client (instant-acme): the account, loaded from storage or created (and stored)
//! on first use, and one order from new-order to the downloaded chain.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType as AcmeChallenge,
    ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use tokio::sync::Mutex;

use crate::challenge::{Http01Tokens, TokenGuard};
use crate::config::{ChallengeType, ExternalAccount, KeyType};
use crate::dns::{DnsProvider, DnsRecords};
use crate::error::LetsEncryptError;
use crate::resolver::CertificateResolver;
use crate::storage::{Storage, StoredCertificate};

/// The longest one order may take, from new-order to the downloaded chain.
pub(crate) const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// The CA's side of the module.
pub(crate) struct AcmeClient {
    directory_url: String,
    directory_ca: Option<PathBuf>,
    external_account: Option<ExternalAccount>,
    storage: Storage,
    /// The account once loaded, and the contacts last sent to the CA.
    account: Mutex<Option<(Account, Vec<String>)>>,
}

impl std::fmt::Debug for AcmeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeClient")
            .field("directory_url", &self.directory_url)
            .field("directory_ca", &self.directory_ca)
            .finish_non_exhaustive()
    }
}

/// What one order needs.
#[derive(Clone, Debug)]
pub(crate) struct OrderRequest {
    pub(crate) domains: Vec<String>,
    pub(crate) challenge: ChallengeType,
    /// Where DNS-01 records go (wildcard names, `challenge: dns-01`).
    pub(crate) dns: Option<Arc<dyn DnsProvider>>,
    pub(crate) key_type: KeyType,
    pub(crate) contacts: Vec<String>,
}

impl AcmeClient {
    pub(crate) fn new(
        directory_url: String,
        directory_ca: Option<PathBuf>,
        external_account: Option<ExternalAccount>,
        storage: Storage,
    ) -> Self {
        Self {
            directory_url,
            directory_ca,
            external_account,
            storage,
            account: Mutex::new(None),
        }
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder, LetsEncryptError> {
        crate::certificate::provider()?;
        match &self.directory_ca {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        }
        .map_err(|e| LetsEncryptError::acme("account", e))
    }

    /// The account: cached, or loaded from storage, or created at the CA and stored. The
    /// contacts are brought up to date when they changed.
    async fn account(&self, contacts: &[String]) -> Result<Account, LetsEncryptError> {
        let mut slot = self.account.lock().await;
        if let Some((account, sent)) = slot.as_mut() {
            if sent.as_slice() != contacts {
                let refs: Vec<&str> = contacts.iter().map(String::as_str).collect();
                account
                    .update_contacts(&refs)
                    .await
                    .map_err(|e| LetsEncryptError::acme("account", e))?;
                *sent = contacts.to_vec();
            }
            return Ok(account.clone());
        }
        let path = self.storage.account_path(&self.directory_url);
        let stored = self
            .storage
            .read_account(&self.directory_url)
            .map_err(|e| LetsEncryptError::storage(&path, e))?;
        let account = match stored {
            Some(json) => {
                let credentials: AccountCredentials =
                    serde_json::from_str(&json).map_err(|e| LetsEncryptError::storage(&path, e))?;
                let account = self
                    .builder()?
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| LetsEncryptError::acme("account", e))?;
                // The contact may have changed while the process was down.
                let refs: Vec<&str> = contacts.iter().map(String::as_str).collect();
                if !refs.is_empty() {
                    account
                        .update_contacts(&refs)
                        .await
                        .map_err(|e| LetsEncryptError::acme("account", e))?;
                }
                account
            }
            None => {
                let refs: Vec<&str> = contacts.iter().map(String::as_str).collect();
                let eab = match &self.external_account {
                    Some(eab) => {
                        let key = base64url_decode(eab.hmac_key.expose()).ok_or_else(|| {
                            LetsEncryptError::acme(
                                "account",
                                "external_account.hmac_key is not base64url",
                            )
                        })?;
                        Some(ExternalAccountKey::new(eab.key_id.clone(), &key))
                    }
                    None => None,
                };
                let (account, credentials) = self
                    .builder()?
                    .create(
                        &NewAccount {
                            contact: &refs,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.directory_url.clone(),
                        eab.as_ref(),
                    )
                    .await
                    .map_err(|e| LetsEncryptError::acme("account", e))?;
                let json = serde_json::to_string(&credentials)
                    .map_err(|e| LetsEncryptError::storage(&path, e))?;
                self.storage
                    .write_account(&self.directory_url, &json)
                    .map_err(|e| LetsEncryptError::storage(&path, e))?;
                tracing::info!(
                    module = "letsencrypt",
                    account = account.id(),
                    "ACME account created"
                );
                account
            }
        };
        *slot = Some((account.clone(), contacts.to_vec()));
        Ok(account)
    }

    /// Brings the account's contacts at the CA up to `contacts`.
    pub(crate) async fn update_contacts(
        &self,
        contacts: &[String],
    ) -> Result<(), LetsEncryptError> {
        self.account(contacts).await.map(|_| ())
    }

    /// Orders a certificate for `request.domains`, answers its challenges, and returns the
    /// chain with its new key. DNS-01 records are removed again whatever the outcome.
    pub(crate) async fn order(
        &self,
        request: &OrderRequest,
        tokens: &Http01Tokens,
        resolver: &Arc<CertificateResolver>,
    ) -> Result<StoredCertificate, LetsEncryptError> {
        let mut records = DnsRecords::new(request.dns.clone());
        let result = self
            .run_order(request, tokens, resolver, &mut records)
            .await;
        records.clean().await;
        result
    }

    async fn run_order(
        &self,
        request: &OrderRequest,
        tokens: &Http01Tokens,
        resolver: &Arc<CertificateResolver>,
        records: &mut DnsRecords,
    ) -> Result<StoredCertificate, LetsEncryptError> {
        let account = self.account(&request.contacts).await?;
        let identifiers: Vec<Identifier> = request
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| LetsEncryptError::acme("order", e))?;
        let mut guard = TokenGuard::new(tokens.clone(), Arc::clone(resolver));
        let mut authorizations = order.authorizations();
        while let Some(result) = authorizations.next().await {
            let mut authorization = result.map_err(|e| LetsEncryptError::acme("order", e))?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(LetsEncryptError::acme(
                        "challenge",
                        format!("authorization is {other:?}"),
                    ));
                }
            }
            // A wildcard can only be proven in DNS (RFC 8555 §7.1.3).
            let challenge_type = if authorization.wildcard {
                ChallengeType::Dns01
            } else {
                request.challenge
            };
            let (kind, label) = match challenge_type {
                ChallengeType::Http01 => (AcmeChallenge::Http01, "http-01"),
                ChallengeType::TlsAlpn01 => (AcmeChallenge::TlsAlpn01, "tls-alpn-01"),
                ChallengeType::Dns01 => (AcmeChallenge::Dns01, "dns-01"),
            };
            let mut challenge = authorization.challenge(kind).ok_or_else(|| {
                LetsEncryptError::acme("challenge", format!("the CA offers no {label} challenge"))
            })?;
            let key_authorization = challenge.key_authorization();
            match challenge_type {
                ChallengeType::Http01 => {
                    guard.publish(&challenge.token, key_authorization.as_str());
                }
                ChallengeType::TlsAlpn01 => {
                    let name = challenge.identifier().to_string();
                    guard.publish_alpn(&name, key_authorization.digest().as_ref())?;
                }
                ChallengeType::Dns01 => {
                    let name = challenge.identifier().to_string();
                    records
                        .publish(&name, &key_authorization.dns_value())
                        .await?;
                }
            }
            challenge
                .set_ready()
                .await
                .map_err(|e| LetsEncryptError::acme("challenge", e))?;
        }
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(100))
            .backoff(1.5)
            .timeout(Duration::from_secs(60));
        let status = order
            .poll_ready(&retries)
            .await
            .map_err(|e| LetsEncryptError::acme("challenge", e))?;
        if status != OrderStatus::Ready {
            let detail = order
                .state()
                .error
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_else(|| format!("order is {status:?}"));
            return Err(LetsEncryptError::acme("challenge", detail));
        }
        drop(guard);
        let (key, csr) = csr(&request.domains, request.key_type)?;
        order
            .finalize_csr(&csr)
            .await
            .map_err(|e| LetsEncryptError::acme("finalize", e))?;
        let chain_pem = order
            .poll_certificate(&retries)
            .await
            .map_err(|e| LetsEncryptError::acme("download", e))?;
        Ok(StoredCertificate {
            chain_pem,
            key_pem: key,
        })
    }
}

/// Decodes base64url (RFC 4648 §5, padding optional), as CAs hand out EAB MAC keys.
pub(crate) fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A new key of `key_type` (PEM, PKCS#8) and a CSR for `domains` signed by it (DER).
fn csr(domains: &[String], key_type: KeyType) -> Result<(String, Vec<u8>), LetsEncryptError> {
    let algorithm = match key_type {
        KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
    };
    let key = match key_type {
        KeyType::Rsa2048 => rcgen::KeyPair::generate_rsa_for(algorithm, rcgen::RsaKeySize::_2048),
        _ => rcgen::KeyPair::generate_for(algorithm),
    }
    .map_err(|e| LetsEncryptError::Key(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(domains.to_vec())
        .map_err(|e| LetsEncryptError::Key(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| LetsEncryptError::Key(e.to_string()))?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_decodes_with_and_without_padding() {
        assert_eq!(base64url_decode("aGk").unwrap(), b"hi");
        assert_eq!(base64url_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64url_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert!(base64url_decode("a b").is_none());
    }

    #[test]
    fn every_key_type_yields_a_key_and_a_csr() {
        for key_type in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
            let (key, csr) = csr(&["a.test".to_owned()], key_type).unwrap();
            assert!(key.contains("PRIVATE KEY"), "{key_type:?}");
            assert!(!csr.is_empty());
        }
    }
}
