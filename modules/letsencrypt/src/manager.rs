//! The certificates and the renewal task.
//!
//! Every configured certificate has a state: what is served (if anything), what the config
//! asks it to cover, when to look at it next, and how its last attempt went. One owned task
//! looks at every certificate whose time has come: one that is missing, does not cover its
//! configured domains, or is within `renew_before` of its expiry is ordered (at most one order
//! per certificate at a time; different certificates are ordered concurrently). A success is
//! stored, swapped into the resolver and looked at again when its renewal window opens (or
//! after `check_interval` when it opens at once, as with a `renew_before` longer than the
//! certificate's life); a failure is retried after a backoff with jitter. A reload commit and
//! [`LetsEncrypt::renew`] wake the task.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use modular_core::ModuleContext;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::acme::{AcmeClient, ORDER_TIMEOUT, OrderRequest};
use crate::certificate::Issued;
use crate::challenge::Http01Tokens;
use crate::config::{LetsEncryptConfig, RetryConfig};
use crate::error::LetsEncryptError;
use crate::resolver::{CertificateResolver, Table};
use crate::storage::Storage;

/// The module's service: the resolver, each certificate's status, and a way to renew now.
/// Registered in the service registry as `LetsEncrypt`.
#[derive(Clone, Debug)]
pub struct LetsEncrypt {
    pub(crate) inner: Arc<Inner>,
}

/// What one certificate looks like now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CertificateStatus {
    /// The configured name.
    pub name: String,
    /// The configured domains.
    pub domains: Vec<String>,
    /// The served certificate's names (empty before the first issuance).
    pub names: Vec<String>,
    /// The served certificate's serial, lowercase hex.
    pub serial: Option<String>,
    /// The served certificate's issuer.
    pub issuer: Option<String>,
    /// The served certificate's start of validity.
    pub not_before: Option<DateTime<Utc>>,
    /// The served certificate's expiry.
    pub not_after: Option<DateTime<Utc>>,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// The last attempt's error, cleared by a success.
    pub last_error: Option<String>,
    /// Issuances and renewals that succeeded in this process.
    pub issued_total: u64,
    /// Whether an order is running.
    pub ordering: bool,
}

pub(crate) struct Inner {
    pub(crate) resolver: Arc<CertificateResolver>,
    pub(crate) tokens: Http01Tokens,
    storage: Storage,
    acme: AcmeClient,
    /// The committed config (set at init and by every reload commit).
    config: ArcSwap<LetsEncryptConfig>,
    states: Mutex<BTreeMap<String, CertState>>,
    wake: Notify,
    pub(crate) started_at: DateTime<Utc>,
    /// The contacts the account holds at the CA, once known.
    contacts_sent: Mutex<Option<Vec<String>>>,
    /// Certificates [`LetsEncrypt::renew`] asked for.
    forced: Mutex<Vec<String>>,
    /// Self-signed fallbacks by certificate, with the domains they were made for.
    fallbacks: Mutex<BTreeMap<String, Fallback>>,
}

/// A self-signed fallback: the domains it was made for and its key.
type Fallback = (Vec<String>, Arc<rustls::sign::CertifiedKey>);

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("storage", &self.storage)
            .field("acme", &self.acme)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct CertState {
    pub(crate) domains: Vec<String>,
    pub(crate) issued: Option<Issued>,
    pub(crate) ordering: bool,
    pub(crate) failures: u32,
    pub(crate) last_error: Option<String>,
    pub(crate) issued_total: u64,
    next_check: Instant,
    /// The serial an `expiring` event was sent for.
    expiring_sent: Option<String>,
}

impl CertState {
    fn new(domains: Vec<String>, issued: Option<Issued>) -> Self {
        Self {
            domains,
            issued,
            ordering: false,
            failures: 0,
            last_error: None,
            issued_total: 0,
            next_check: Instant::now(),
            expiring_sent: None,
        }
    }
}

/// Why a certificate needs an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// Never issued (or the stored one is unusable).
    Missing,
    /// It does not cover every configured domain.
    Domains,
    /// It is within `renew_before` of its expiry.
    Renewal,
}

/// What `cert` needs at `now` under `renew_before`, if anything.
pub(crate) fn need(state: &CertState, renew_before: Duration, now: DateTime<Utc>) -> Option<Need> {
    let Some(issued) = &state.issued else {
        return Some(Need::Missing);
    };
    if !issued.covers(&state.domains) {
        return Some(Need::Domains);
    }
    (now >= renewal_at(issued, renew_before)).then_some(Need::Renewal)
}

/// When `issued` enters its renewal window.
pub(crate) fn renewal_at(issued: &Issued, renew_before: Duration) -> DateTime<Utc> {
    let before = chrono::Duration::from_std(renew_before).unwrap_or(chrono::Duration::MAX);
    issued
        .not_after
        .checked_sub_signed(before)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The delay before retry number `failures` (1 for the first): `initial` doubled per further
/// failure, capped at `max`, times `jitter` (drawn in 0.8..1.2).
pub(crate) fn backoff(failures: u32, retry: &RetryConfig, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    let base = retry
        .initial
        .checked_mul(1u32 << doublings.min(31))
        .unwrap_or(retry.max)
        .min(retry.max);
    base.mul_f64(jitter.clamp(0.5, 1.5))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Loads every configured certificate from storage; unusable files count as missing.
pub(crate) fn load_states(
    storage: &Storage,
    config: &LetsEncryptConfig,
) -> BTreeMap<String, CertState> {
    config
        .certificates
        .iter()
        .map(|(name, certificate)| {
            (
                name.clone(),
                CertState::new(certificate.domains.clone(), load_stored(storage, name)),
            )
        })
        .collect()
}

/// The stored certificate `name`, when it is there and usable.
pub(crate) fn load_stored(storage: &Storage, name: &str) -> Option<Issued> {
    match storage.read_certificate(name) {
        Ok(Some(stored)) => match Issued::parse(name, &stored) {
            Ok(issued) => Some(issued),
            Err(error) => {
                tracing::warn!(module = "letsencrypt", certificate = name, %error, "stored certificate unusable, ordering a new one");
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(module = "letsencrypt", certificate = name, %error, "cannot read the stored certificate");
            None
        }
    }
}

/// A prepared reload's certificate states for names the running set lacks.
pub(crate) type Loaded = BTreeMap<String, Option<Issued>>;

enum Job {
    Order {
        name: String,
        renewal: bool,
        result: Result<Issued, LetsEncryptError>,
    },
    Contacts(Vec<String>, Result<(), LetsEncryptError>),
}

impl LetsEncrypt {
    pub(crate) fn new(
        config: LetsEncryptConfig,
        storage: Storage,
        states: BTreeMap<String, CertState>,
    ) -> Self {
        let acme = AcmeClient::new(
            config.directory_url.clone(),
            config.directory_ca.clone(),
            config.external_account.clone(),
            storage.clone(),
        );
        let inner = Arc::new(Inner {
            resolver: Arc::new(CertificateResolver::new()),
            tokens: Http01Tokens::default(),
            storage,
            acme,
            config: ArcSwap::from_pointee(config),
            states: Mutex::new(states),
            wake: Notify::new(),
            started_at: Utc::now(),
            contacts_sent: Mutex::new(None),
            forced: Mutex::new(Vec::new()),
            fallbacks: Mutex::new(BTreeMap::new()),
        });
        let this = Self { inner };
        this.publish_table();
        this
    }

    /// The SNI resolver.
    pub fn resolver(&self) -> Arc<CertificateResolver> {
        Arc::clone(&self.inner.resolver)
    }

    /// Every configured certificate's status, by name.
    pub fn certificates(&self) -> Vec<CertificateStatus> {
        lock(&self.inner.states)
            .iter()
            .map(|(name, state)| status(name, state))
            .collect()
    }

    /// Certificate `name`'s status.
    pub fn certificate(&self, name: &str) -> Option<CertificateStatus> {
        lock(&self.inner.states)
            .get(name)
            .map(|state| status(name, state))
    }

    /// Orders certificate `name` again now, whatever its expiry (an order already running
    /// is not doubled). Returns whether the name is configured.
    pub fn renew(&self, name: &str) -> bool {
        let mut states = lock(&self.inner.states);
        let Some(state) = states.get_mut(name) else {
            return false;
        };
        state.next_check = Instant::now();
        drop(states);
        lock(&self.inner.forced).push(name.to_owned());
        self.inner.wake.notify_one();
        true
    }

    /// When certificate `name` enters its renewal window under the running `renew_before`
    /// (`None` before its first issuance).
    pub fn renewal_at(&self, name: &str) -> Option<DateTime<Utc>> {
        let renew_before = self.config().renew_before;
        lock(&self.inner.states)
            .get(name)?
            .issued
            .as_ref()
            .map(|issued| renewal_at(issued, renew_before))
    }

    /// The account contacts the CA holds, once the account was used.
    pub fn account_contacts(&self) -> Option<Vec<String>> {
        lock(&self.inner.contacts_sent).clone()
    }

    pub(crate) fn config(&self) -> Arc<LetsEncryptConfig> {
        self.inner.config.load_full()
    }

    pub(crate) fn with_states<R>(&self, f: impl FnOnce(&BTreeMap<String, CertState>) -> R) -> R {
        f(&lock(&self.inner.states))
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Rebuilds the resolver's table from every unexpired certificate, with the self-signed
    /// fallback of each certificate that has none when `self_signed_fallback` is on.
    fn publish_table(&self) {
        let now = Utc::now();
        let fallback = self.config().self_signed_fallback;
        let states = lock(&self.inner.states);
        let mut fallbacks = lock(&self.inner.fallbacks);
        fallbacks.retain(|name, (domains, _)| {
            fallback
                && states.get(name).is_some_and(|state| {
                    state.domains == *domains
                        && state.issued.as_ref().is_none_or(|i| i.not_after <= now)
                })
        });
        if fallback {
            for (name, state) in states.iter() {
                if state.issued.as_ref().is_some_and(|i| i.not_after > now)
                    || fallbacks.contains_key(name)
                {
                    continue;
                }
                match crate::certificate::self_signed(&state.domains) {
                    Ok(key) => {
                        fallbacks.insert(name.clone(), (state.domains.clone(), key));
                    }
                    Err(error) => {
                        tracing::warn!(module = "letsencrypt", certificate = %name, %error, "cannot make the self-signed fallback");
                    }
                }
            }
        }
        // Issued certificates come last, so they win a name a fallback also holds.
        let table = Table::build(
            fallbacks
                .values()
                .map(|(domains, key)| (domains.as_slice(), key))
                .chain(
                    states
                        .values()
                        .filter_map(|s| s.issued.as_ref())
                        .filter(|issued| issued.not_after > now)
                        .map(|issued| (issued.names.as_slice(), &issued.key)),
                ),
        );
        drop(fallbacks);
        drop(states);
        self.inner.resolver.publish(table);
    }

    /// Reload commit: the new config, the certificate set brought in line with it (new names
    /// with what `loaded` found in storage, removed names dropped), every certificate looked
    /// at again now.
    pub(crate) fn commit(&self, config: LetsEncryptConfig, mut loaded: Loaded) {
        {
            let previous = self.config();
            // Every certificate's renewal time moves with these; otherwise only a new or
            // changed certificate is looked at now (a reload does not cut a backoff short).
            let all = previous.renew_before != config.renew_before
                || previous.check_interval != config.check_interval
                || previous.retry != config.retry;
            let mut states = lock(&self.inner.states);
            states.retain(|name, _| config.certificates.contains_key(name));
            let now = Instant::now();
            for (name, certificate) in &config.certificates {
                let state = states.entry(name.clone()).or_insert_with(|| {
                    CertState::new(certificate.domains.clone(), loaded.remove(name).flatten())
                });
                if all || state.domains != certificate.domains || state.issued.is_none() {
                    state.next_check = now;
                }
                state.domains = certificate.domains.clone();
            }
        }
        lock(&self.inner.forced).retain(|name| config.certificates.contains_key(name));
        self.inner.config.store(Arc::new(config));
        self.publish_table();
        self.inner.wake.notify_one();
    }

    /// The renewal task, until `ctx` is cancelled.
    pub(crate) async fn run(self, ctx: ModuleContext) {
        let mut jobs: JoinSet<Job> = JoinSet::new();
        let cancel = ctx.cancellation().clone();
        loop {
            let next = self.round(&ctx, &mut jobs);
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep_until(next) => {}
                Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                    if let Ok(job) = done {
                        self.finish(&ctx, job);
                    }
                }
            }
        }
        jobs.shutdown().await;
    }

    /// Starts the orders that are due; returns when to look again.
    fn round(&self, ctx: &ModuleContext, jobs: &mut JoinSet<Job>) -> Instant {
        let config = self.config();
        let now = Instant::now();
        let wall = Utc::now();
        // A forced renewal of a certificate whose order is running waits for the next round.
        let forced: Vec<String> = lock(&self.inner.forced).clone();
        let mut consumed: Vec<String> = Vec::new();
        let mut next = now + config.check_interval;
        let mut orders = Vec::new();
        let mut expiring = Vec::new();
        {
            let mut states = lock(&self.inner.states);
            for (name, state) in states.iter_mut() {
                if state.ordering {
                    continue;
                }
                // A forced renewal is due now, whenever the next check: one that waited for a
                // running order would otherwise wait for the check that order's success
                // scheduled (an hour by default).
                if state.next_check > now && !forced.contains(name) {
                    next = next.min(state.next_check);
                    continue;
                }
                if forced.contains(name) {
                    consumed.push(name.clone());
                }
                let need = need(state, config.renew_before, wall)
                    .or_else(|| forced.contains(name).then_some(Need::Renewal));
                match need {
                    Some(need) => {
                        if need == Need::Renewal
                            && let Some(issued) = &state.issued
                            && state.expiring_sent.as_deref() != Some(issued.serial.as_str())
                        {
                            state.expiring_sent = Some(issued.serial.clone());
                            expiring.push((name.clone(), issued.not_after));
                        }
                        state.ordering = true;
                        orders.push((
                            name.clone(),
                            state.domains.clone(),
                            need != Need::Missing || state.issued.is_some(),
                        ));
                    }
                    None => {
                        let opens = state
                            .issued
                            .as_ref()
                            .map(|issued| renewal_at(issued, config.renew_before) - wall)
                            .and_then(|d| d.to_std().ok())
                            .unwrap_or(config.check_interval);
                        state.next_check = now + opens.min(config.check_interval);
                        next = next.min(state.next_check);
                    }
                }
            }
        }
        lock(&self.inner.forced).retain(|name| !consumed.contains(name));
        for (name, not_after) in expiring {
            ctx.emit(
                "certificate.expiring",
                json!({
                    "certificate": name,
                    "not_after": not_after.to_rfc3339(),
                    "days_left": (not_after - wall).num_days(),
                }),
            );
        }
        let contacts = config.contacts();
        let dns: Option<Arc<dyn crate::dns::DnsProvider>> = match &config.dns {
            Some(dns) if !orders.is_empty() => match crate::rfc2136::Rfc2136Provider::new(dns) {
                Ok(provider) => Some(Arc::new(provider)),
                Err(error) => {
                    tracing::warn!(module = "letsencrypt", %error, "dns provider unusable");
                    None
                }
            },
            _ => None,
        };
        if lock(&self.inner.contacts_sent)
            .as_ref()
            .is_some_and(|sent| *sent != contacts)
            && orders.is_empty()
        {
            let inner = Arc::clone(&self.inner);
            let contacts = contacts.clone();
            jobs.spawn(async move {
                let result = inner.acme.update_contacts(&contacts).await;
                Job::Contacts(contacts, result)
            });
        }
        for (name, domains, renewal) in orders {
            let request = OrderRequest {
                domains,
                challenge: config.challenge,
                dns: dns.clone(),
                key_type: config.key_type,
                contacts: contacts.clone(),
            };
            let inner = Arc::clone(&self.inner);
            tracing::info!(module = "letsencrypt", certificate = %name, domains = ?request.domains, renewal, "ordering a certificate");
            jobs.spawn(async move {
                let result = order(&inner, &name, &request).await;
                Job::Order {
                    name,
                    renewal,
                    result,
                }
            });
        }
        next
    }

    /// Records a finished job.
    fn finish(&self, ctx: &ModuleContext, job: Job) {
        let (name, renewal, result) = match job {
            Job::Contacts(contacts, result) => {
                if result.is_ok() {
                    *lock(&self.inner.contacts_sent) = Some(contacts);
                }
                return;
            }
            Job::Order {
                name,
                renewal,
                result,
            } => (name, renewal, result),
        };
        let config = self.config();
        let now = Instant::now();
        let mut states = lock(&self.inner.states);
        let Some(state) = states.get_mut(&name) else {
            // Removed by a reload while its order ran.
            return;
        };
        state.ordering = false;
        match result {
            Ok(issued) => {
                state.failures = 0;
                state.last_error = None;
                state.issued_total += 1;
                // Domains changed while it ran: look again at once.
                state.next_check = if issued.covers(&state.domains) {
                    now + config.check_interval.min(
                        (renewal_at(&issued, config.renew_before) - Utc::now())
                            .to_std()
                            .unwrap_or(config.check_interval),
                    )
                } else {
                    now
                };
                let data = json!({
                    "certificate": name,
                    "domains": issued.names,
                    "serial": issued.serial,
                    "not_after": issued.not_after.to_rfc3339(),
                });
                crate::metrics::issued(&name, renewal, &issued);
                state.issued = Some(issued);
                drop(states);
                *lock(&self.inner.contacts_sent) = Some(config.contacts());
                self.publish_table();
                let verb = if renewal {
                    "certificate.renewed"
                } else {
                    "certificate.issued"
                };
                tracing::info!(module = "letsencrypt", certificate = %name, "certificate {}", if renewal { "renewed" } else { "issued" });
                ctx.emit(verb, data);
            }
            Err(error) => {
                state.failures += 1;
                let jitter = rand::random_range(0.8..1.2);
                let delay = backoff(state.failures, &config.retry, jitter);
                state.next_check = now + delay;
                let message = error.to_string();
                state.last_error = Some(message.clone());
                let attempt = state.failures;
                drop(states);
                crate::metrics::failed(&name);
                tracing::warn!(module = "letsencrypt", certificate = %name, attempt, retry_in_ms = delay.as_millis() as u64, error = %message, "certificate order failed");
                ctx.emit(
                    "certificate.renewal_failed",
                    json!({
                        "certificate": name,
                        "error": message,
                        "attempt": attempt,
                        "retry_in_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    }),
                );
            }
        }
    }
}

/// One order under [`ORDER_TIMEOUT`], stored and parsed.
async fn order(
    inner: &Inner,
    name: &str,
    request: &OrderRequest,
) -> Result<Issued, LetsEncryptError> {
    let stored = tokio::time::timeout(
        ORDER_TIMEOUT,
        inner.acme.order(request, &inner.tokens, &inner.resolver),
    )
    .await
    .map_err(|_| {
        LetsEncryptError::acme("order", format!("no certificate within {ORDER_TIMEOUT:?}"))
    })??;
    let issued = Issued::parse(name, &stored)?;
    inner
        .storage
        .write_certificate(name, &stored)
        .map_err(|e| LetsEncryptError::storage(inner.storage.chain_path(name), e))?;
    Ok(issued)
}

fn status(name: &str, state: &CertState) -> CertificateStatus {
    CertificateStatus {
        name: name.to_owned(),
        domains: state.domains.clone(),
        names: state
            .issued
            .as_ref()
            .map(|i| i.names.clone())
            .unwrap_or_default(),
        serial: state.issued.as_ref().map(|i| i.serial.clone()),
        issuer: state.issued.as_ref().map(|i| i.issuer.clone()),
        not_before: state.issued.as_ref().map(|i| i.not_before),
        not_after: state.issued.as_ref().map(|i| i.not_after),
        failures: state.failures,
        last_error: state.last_error.clone(),
        issued_total: state.issued_total,
        ordering: state.ordering,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CertificateConfig;
    use crate::storage::StoredCertificate;

    /// A manager over one issued certificate `web` (self-signed, valid for years).
    fn manager(config: &LetsEncryptConfig) -> (LetsEncrypt, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let generated = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).unwrap();
        let stored = StoredCertificate {
            chain_pem: generated.cert.pem(),
            key_pem: generated.signing_key.serialize_pem(),
        };
        let issued = Issued::parse("web", &stored).unwrap();
        let mut states = BTreeMap::new();
        states.insert(
            "web".to_owned(),
            CertState::new(vec!["a.test".to_owned()], Some(issued)),
        );
        (LetsEncrypt::new(config.clone(), storage, states), dir)
    }

    fn next_check(le: &LetsEncrypt) -> Instant {
        le.with_states(|states| states["web"].next_check)
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_of_the_renewal_timing_looks_at_every_certificate_again_at_once() {
        let mut config = LetsEncryptConfig::default();
        config.certificates.insert(
            "web".to_owned(),
            CertificateConfig {
                domains: vec!["a.test".to_owned()],
            },
        );
        let (le, _dir) = manager(&config);
        let later = Instant::now() + Duration::from_secs(3600);
        le.inner
            .states
            .lock()
            .unwrap()
            .get_mut("web")
            .unwrap()
            .next_check = later;

        // Unrelated to the renewal timing (the challenge type): the next check stays.
        let mut challenge = config.clone();
        challenge.challenge = crate::config::ChallengeType::Dns01;
        tokio::time::advance(Duration::from_secs(1)).await;
        le.commit(challenge.clone(), Loaded::new());
        assert_eq!(next_check(&le), later);
        assert_eq!(le.config().challenge, crate::config::ChallengeType::Dns01);

        for change in [
            |c: &mut LetsEncryptConfig| c.check_interval = Duration::from_secs(60),
            |c: &mut LetsEncryptConfig| c.retry.initial = Duration::from_secs(5),
            |c: &mut LetsEncryptConfig| c.renew_before = Duration::from_secs(86_400),
        ] {
            le.inner
                .states
                .lock()
                .unwrap()
                .get_mut("web")
                .unwrap()
                .next_check = later;
            let mut changed = le.config().as_ref().clone();
            change(&mut changed);
            tokio::time::advance(Duration::from_secs(1)).await;
            le.commit(changed, Loaded::new());
            assert_eq!(next_check(&le), Instant::now(), "looked at now");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let retry = RetryConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        assert_eq!(backoff(1, &retry, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(2, &retry, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(4, &retry, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(5, &retry, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(500, &retry, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(2, &retry, 0.8), Duration::from_millis(1600));
        assert_eq!(backoff(2, &retry, 1.2), Duration::from_millis(2400));
    }
}
