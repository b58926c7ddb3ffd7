//! [`Table`]: the compiled routing table (routes, pools, balancers) that one reload builds
//! aside and swaps in whole.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http::{HeaderName, HeaderValue, Method};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{Availability, Backend};
use crate::config::{
    Balance, BreakerConfig, HealthCheckConfig, OutlierConfig, PoolConfig, Protocol,
    ReverseProxyConfig, RouteConfig, normalize_prefix, parse_backend_url,
};
use crate::error::ReverseProxyError;
use crate::metrics::{self as m, RequestSeries};

/// Routes and pools of one config version.
#[derive(Debug)]
pub struct Table {
    pub(crate) routes: Vec<Route>,
    pub(crate) pools: HashMap<String, Arc<Pool>>,
    pub(crate) retry_budget: f64,
    /// Cancels this table's health checkers when a newer table replaces it.
    pub(crate) checkers: CancellationToken,
}

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    /// The metric label (the route's `name`, or its prefix).
    label: String,
    pub(crate) prefix: String,
    pub(crate) host: Option<String>,
    pub(crate) methods: Vec<Method>,
    pub(crate) pool: Arc<Pool>,
    pub(crate) strip_prefix: bool,
    pub(crate) rewrite: Option<String>,
    pub(crate) timeout: std::time::Duration,
    pub(crate) add_headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) remove_headers: Vec<HeaderName>,
    pub(crate) retries: u32,
    pub(crate) retry_on: Vec<u16>,
    /// `requests_total` per backend of the pool (same index), registered once.
    pub(crate) series: Vec<RequestSeries>,
    /// `requests_total` with `backend="none"` (no backend answered).
    pub(crate) unanswered: RequestSeries,
    pub(crate) retries_series: metrics::Counter,
    pub(crate) retries_denied_series: metrics::Counter,
    /// The mirror's pool, share, body bound and comparison.
    pub(crate) shadow: Option<crate::shadow::Shadow>,
    pub(crate) shadow_series: [metrics::Counter; 6],
    /// Set for a composite route: the request fans out to its parts instead of `pool`.
    pub(crate) composite: Option<Arc<crate::composite::Composite>>,
}

/// One pool of one config version; its backends may be shared with the previous version.
#[derive(Debug)]
pub struct Pool {
    pub(crate) name: String,
    pub(crate) backends: Vec<Arc<Backend>>,
    weights: Vec<u32>,
    balance: Balance,
    hash_header: Option<HeaderName>,
    hash_cookie: Option<String>,
    pub(crate) protocol: Protocol,
    /// The TLS client of its `https://` backends (none when it has none).
    pub(crate) tls: Option<Arc<crate::tls::PoolTls>>,
    /// Some backend is `https://`.
    pub(crate) https: bool,
    pub(crate) health_check: Option<HealthCheckConfig>,
    pub(crate) outlier: OutlierConfig,
    pub(crate) breaker: BreakerConfig,
    pub(crate) optional: bool,
    /// `upstream_duration_seconds` of this pool, registered once.
    pub(crate) upstream_seconds: metrics::Histogram,
    cursor: AtomicUsize,
    /// Smooth weighted round robin's current weights.
    smooth: Mutex<Vec<i64>>,
    /// The hash ring: (point, backend index), sorted.
    ring: Vec<(u64, usize)>,
}

/// Virtual nodes per unit of weight on the hash ring.
const RING_POINTS: u32 = 64;

impl Table {
    /// Compiles `config`, keeping the backends of `previous` whose pool and URL stay.
    pub fn build(
        config: &ReverseProxyConfig,
        previous: Option<&Table>,
    ) -> Result<Self, ReverseProxyError> {
        let mut pools = HashMap::new();
        for (name, pool) in &config.pools {
            let old = previous.and_then(|t| t.pools.get(name));
            pools.insert(name.clone(), Arc::new(Pool::build(name, pool, old)?));
        }
        let mut routes = Vec::new();
        for (index, route) in config.routes.iter().enumerate() {
            routes.push(Route::build(index, route, &pools)?);
        }
        // Longest prefix first; a route with a host before one without, then with methods
        // before one without; otherwise the config's order.
        routes.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then_with(|| b.host.is_some().cmp(&a.host.is_some()))
                .then_with(|| b.methods.is_empty().cmp(&a.methods.is_empty()).reverse())
        });
        Ok(Self {
            routes,
            pools,
            retry_budget: config.retry_budget,
            checkers: CancellationToken::new(),
        })
    }

    /// The route for a request, if any.
    pub fn route(&self, method: &Method, host: Option<&str>, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(method, host, path))
    }

    /// The routes, in matching order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The retry budget (a fraction of recent requests).
    pub fn retry_budget(&self) -> f64 {
        self.retry_budget
    }

    /// The distinct path prefixes, for the route registry.
    pub fn prefixes(&self) -> Vec<String> {
        let mut prefixes: Vec<String> = self.routes.iter().map(|r| r.prefix.clone()).collect();
        prefixes.sort();
        prefixes.dedup();
        prefixes
    }

    /// Every backend of every pool.
    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.pools.values().flat_map(|p| p.backends.iter())
    }
}

impl Route {
    fn build(
        index: usize,
        config: &RouteConfig,
        pools: &HashMap<String, Arc<Pool>>,
    ) -> Result<Self, ReverseProxyError> {
        let invalid = |path: String, message: String| ReverseProxyError::Invalid {
            path: format!("routes.{index}.{path}"),
            message,
        };
        let composite = match &config.composite {
            Some(composite) => Some(Arc::new(crate::composite::Composite::build(
                index,
                composite,
                config.label(),
                config.timeout,
                pools,
            )?)),
            None => None,
        };
        // A composite route is labelled with its first part's pool.
        let pool = match composite.as_ref().and_then(|c| c.first_pool()) {
            Some(pool) => Arc::clone(pool),
            None => pools
                .get(&config.pool)
                .cloned()
                .ok_or_else(|| invalid("pool".into(), format!("unknown pool `{}`", config.pool)))?,
        };
        let mut methods = Vec::new();
        for method in &config.matches.methods {
            methods.push(
                Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                    .map_err(|e| invalid("match.methods".into(), e.to_string()))?,
            );
        }
        let mut add_headers = Vec::new();
        for (name, value) in &config.add_headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| invalid(format!("add_headers.{name}"), e.to_string()))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| invalid(format!("add_headers.{name}"), e.to_string()))?;
            add_headers.push((header, value));
        }
        let mut remove_headers = Vec::new();
        for name in &config.remove_headers {
            remove_headers.push(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| invalid("remove_headers".into(), e.to_string()))?,
            );
        }
        let shadow = match &config.shadow {
            None => None,
            Some(shadow) => Some(crate::shadow::Shadow {
                pool: pools.get(&shadow.pool).cloned().ok_or_else(|| {
                    invalid(
                        "shadow.pool".into(),
                        format!("unknown pool `{}`", shadow.pool),
                    )
                })?,
                share: (shadow.percent / 100.0).clamp(0.0, 1.0),
                max_body: shadow.max_body_bytes,
                compare_body: shadow.compare_body,
            }),
        };
        let label = config.label();
        let series = pool
            .backends
            .iter()
            .map(|b| RequestSeries::new(label, &pool.name, b.label()))
            .collect();
        Ok(Self {
            composite,
            shadow_series: m::shadow_series(label),
            shadow,
            series,
            unanswered: RequestSeries::new(label, &pool.name, "none"),
            retries_series: m::route_counter(m::RETRIES, label),
            retries_denied_series: m::route_counter(m::RETRIES_DENIED, label),
            label: label.to_owned(),
            prefix: normalize_prefix(&config.matches.prefix),
            host: config.matches.host.as_ref().map(|h| h.to_ascii_lowercase()),
            methods,
            pool,
            strip_prefix: config.strip_prefix,
            rewrite: config.rewrite.clone(),
            timeout: config.timeout,
            add_headers,
            remove_headers,
            retries: config.retries,
            retry_on: config.retry_on.clone(),
        })
    }

    fn matches(&self, method: &Method, host: Option<&str>, path: &str) -> bool {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        if let Some(want) = &self.host {
            let Some(host) = host else { return false };
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            if !host.eq_ignore_ascii_case(want) {
                return false;
            }
        }
        prefix_matches(&self.prefix, path)
    }

    /// Its metric label: its `name`, or its prefix as written.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The text of the `504` a request gets when `backend` did not answer in time.
    pub(crate) fn timed_out(&self, backend: &Backend) -> String {
        format!(
            "backend {} did not answer within {:?}\n",
            backend.label(),
            self.timeout
        )
    }

    /// The path sent upstream for `path` (which the route matched).
    pub fn upstream_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        use std::borrow::Cow;
        if self.rewrite.is_none() && !self.strip_prefix || self.prefix == "/" {
            return Cow::Borrowed(path);
        }
        let rest = &path[self.prefix.len()..];
        let base = self.rewrite.as_deref().unwrap_or("/");
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let mut out = String::with_capacity(base.len() + rest.len() + 1);
        out.push_str(base);
        if !out.ends_with('/') && !rest.is_empty() {
            out.push('/');
        }
        out.push_str(rest);
        Cow::Owned(out)
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Pool {
    fn build(
        name: &str,
        config: &PoolConfig,
        previous: Option<&Arc<Pool>>,
    ) -> Result<Self, ReverseProxyError> {
        let mut backends = Vec::new();
        let mut weights = Vec::new();
        for (index, backend) in config.backends.iter().enumerate() {
            let url =
                parse_backend_url(&backend.url).map_err(|message| ReverseProxyError::Invalid {
                    path: format!("pools.{name}.backends.{index}.url"),
                    message,
                })?;
            let kept = previous.and_then(|p| {
                p.backends
                    .iter()
                    .find(|b| b.authority == url.authority && b.https == url.https)
                    .cloned()
            });
            backends.push(kept.unwrap_or_else(|| {
                let mut fresh = Backend::new(name, url.authority);
                fresh.https = url.https;
                Arc::new(fresh)
            }));
            weights.push(backend.weight.max(1));
        }
        let mut ring = Vec::new();
        if config.balance == Balance::ConsistentHash {
            for (index, backend) in backends.iter().enumerate() {
                for point in 0..RING_POINTS * weights[index] {
                    ring.push((hash_of(&(backend.label(), point)), index));
                }
            }
            ring.sort_unstable();
        }
        let https = backends.iter().any(|b| b.https);
        let tls = if https || config.tls.is_some() {
            Some(crate::tls::PoolTls::build(
                name,
                config.tls.as_ref(),
                config.protocol,
                previous.and_then(|p| p.tls.as_ref()),
            )?)
        } else {
            None
        };
        let hash_header = config
            .hash_header
            .as_ref()
            .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok());
        Ok(Self {
            name: name.to_owned(),
            smooth: Mutex::new(vec![0; backends.len()]),
            backends,
            weights,
            balance: config.balance.clone(),
            hash_header,
            hash_cookie: config.hash_cookie.clone(),
            protocol: config.protocol,
            tls,
            https,
            health_check: config.health_check.clone(),
            outlier: config.outlier.clone(),
            breaker: config.breaker.clone(),
            optional: config.optional,
            upstream_seconds: m::upstream_seconds(name),
            cursor: AtomicUsize::new(0),
            ring,
        })
    }

    /// Chooses a backend for a request with `headers`, skipping those in `exclude` (already
    /// tried) and every unavailable one. A backend whose breaker trial is due is chosen only
    /// when its trial can be claimed.
    pub fn choose(
        &self,
        headers: &http::HeaderMap,
        exclude: &[usize],
        now: Instant,
    ) -> Option<usize> {
        let n = self.backends.len();
        let usable = |i: usize| -> bool {
            if exclude.contains(&i) {
                return false;
            }
            match self.backends[i].availability(now) {
                Availability::Available => true,
                Availability::Trial => self.backends[i].claim_trial(now),
                Availability::Unavailable => false,
            }
        };
        match self.balance {
            Balance::ConsistentHash => {
                if let Some(key) = self.hash_key(headers) {
                    let point = hash_of(&key);
                    let start = self.ring.partition_point(|(p, _)| *p < point);
                    for offset in 0..self.ring.len() {
                        let (_, index) = self.ring[(start + offset) % self.ring.len()];
                        if usable(index) {
                            return Some(index);
                        }
                    }
                    return None;
                }
                self.round_robin(n, usable)
            }
            Balance::Weighted => self.smooth_weighted(now, exclude, usable),
            Balance::LeastOutstanding => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                let mut best: Option<(usize, usize)> = None;
                for offset in 0..n {
                    let i = (start + offset) % n;
                    if exclude.contains(&i)
                        || self.backends[i].availability(now) == Availability::Unavailable
                    {
                        continue;
                    }
                    let load = self.backends[i].outstanding();
                    if best.is_none_or(|(_, l)| load < l) {
                        best = Some((i, load));
                    }
                }
                let (i, _) = best?;
                if usable(i) {
                    Some(i)
                } else {
                    self.round_robin(n, usable)
                }
            }
            Balance::RoundRobin | Balance::Unknown(_) => self.round_robin(n, usable),
        }
    }

    fn round_robin(&self, n: usize, mut usable: impl FnMut(usize) -> bool) -> Option<usize> {
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|o| (start + o) % n).find(|&i| usable(i))
    }

    /// nginx's smooth weighted round robin over the available backends.
    fn smooth_weighted(
        &self,
        now: Instant,
        exclude: &[usize],
        mut usable: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let chosen = {
            let mut current = self.smooth.lock().unwrap_or_else(PoisonError::into_inner);
            let mut total = 0i64;
            let mut best: Option<usize> = None;
            for i in 0..self.backends.len() {
                if exclude.contains(&i)
                    || self.backends[i].availability(now) == Availability::Unavailable
                {
                    continue;
                }
                let weight = i64::from(self.weights[i]);
                current[i] += weight;
                total += weight;
                if best.is_none_or(|b| current[i] > current[b]) {
                    best = Some(i);
                }
            }
            let best = best?;
            current[best] -= total;
            best
        };
        if usable(chosen) {
            Some(chosen)
        } else {
            self.round_robin(self.backends.len(), usable)
        }
    }

    fn hash_key(&self, headers: &http::HeaderMap) -> Option<Vec<u8>> {
        if let Some(name) = &self.hash_header {
            return headers.get(name).map(|v| v.as_bytes().to_vec());
        }
        let cookie = self.hash_cookie.as_deref()?;
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == cookie)
            .map(|(_, value)| value.as_bytes().to_vec())
    }

    /// The text of the `503` a request gets when none of the pool's backends takes it, and
    /// its `Retry-After` in seconds.
    pub(crate) fn unavailable(&self, now: Instant) -> (String, u64) {
        (
            format!("pool `{}` has no healthy backend\n", self.name),
            self.retry_after(now).as_secs().max(1),
        )
    }

    /// When the soonest unavailable backend may take requests again (for `Retry-After`).
    pub fn retry_after(&self, now: Instant) -> std::time::Duration {
        self.backends
            .iter()
            .filter_map(|b| b.retry_after(now))
            .min()
            .unwrap_or_else(|| {
                self.health_check
                    .as_ref()
                    .map_or(std::time::Duration::from_secs(1), |c| c.interval)
            })
    }
}

fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    // A fixed-key hasher, so the ring (and so each key's backend) is the same in every
    // process of a fleet and across reloads.
    let mut hasher = std::hash::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/users"));
        assert!(!prefix_matches("/api", "/apis"));
        assert!(prefix_matches("/", "/anything"));
    }
}
