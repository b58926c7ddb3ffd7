//! # modular-reverseproxy
//!
//! The `reverseproxy` module: routes requests by path prefix, host and method to named pools
//! of backends, balanced round robin, weighted, by fewest requests in flight or by a
//! consistent hash of a header or cookie; backends are health-checked actively (with
//! hysteresis) and passively (outlier ejection), each behind a circuit breaker that really
//! half-opens. Idempotent requests without a body are retried on connect errors and
//! configured statuses to another backend, within a retry budget. Bodies stream both ways
//! (nothing is buffered); `Upgrade` (WebSocket) connections are spliced through. The whole
//! table reloads live: built aside, swapped in one `ArcSwap` store.
//!
//! HTTP/1.1 backends are reached over a pool of keep-alive connections per backend, each
//! driven by the request using it (no connection task, no channel hop per request);
//! upgrades and h2c use hyper-util's pooled client, and so do `https://` backends (below). The client's address (the HTTP server's
//! `ConnectInfo<SocketAddr>`) is appended to `X-Forwarded-For` and named in `Forwarded`.
//!
//! It serves through the router module: the module contributes one catch-all route per
//! distinct prefix to the core [`RouteRegistry`](modular_core::http::RouteRegistry), and the
//! handler routes with the live table.
//!
//! ```yaml
//! reverseproxy:
//!   retry_budget: 0.2
//!   routes:
//!     - match: { prefix: /api/, host: api.test, methods: [GET, POST] }
//!       pool: api
//!       strip_prefix: true        # /api/users goes out as /users (or `rewrite: /v2/`)
//!       timeout: 5s               # until the response headers, retries included
//!       retries: 2
//!       retry_on: [502, 503, 504]
//!       add_headers: { x-gateway: modular }
//!       remove_headers: [x-internal]
//!       shadow: { pool: api_next, percent: 10, max_body_bytes: 65536, compare_body: true }
//!   pools:
//!     api:
//!       balance: round_robin      # weighted | least_outstanding | consistent_hash
//!       # hash_header: x-user     # or hash_cookie: session, for consistent_hash
//!       protocol: http1           # or h2c, or h2 (ALPN over TLS)
//!       backends:
//!         - { url: "http://127.0.0.1:9001", weight: 2 }
//!         - { url: "http://127.0.0.1:9002" }
//!       # tls: { ca_file: /etc/modular/backends-ca.pem, server_name: api.internal,
//!       #        client_cert_file: gw.crt, client_key_file: gw.key }
//!       health_check:
//!         { path: /health, interval: 5s, jitter: 500ms, timeout: 1s,
//!           expected_statuses: [200], unhealthy_threshold: 3, healthy_threshold: 2 }
//!       outlier: { consecutive_failures: 5, base_ejection: 10s, max_ejection: 5m }
//!       breaker: { failures: 3, open_for: 5s }
//!       optional: false
//! ```
//!
//! ## Dynamic fields
//!
//! Every field is dynamic (see [`ReverseProxyConfig`]). A reload builds the new table aside:
//! a backend whose pool and URL stay keeps its health, breaker and counters; a new backend
//! starts up; a removed one gets no new request and is dropped when its last request ends.
//! Requests already running finish on the table and backend they started on. A reload
//! with a route to an unknown pool, a backend URL without scheme or host, a weight of 0, a
//! duplicate route match or an unknown balancing mode is rejected with its path, and the
//! running table stays.
//!
//! ## Health
//!
//! One report per pool, component `pool.<name>`: `healthy` when every backend takes
//! requests, `degraded` when some are down, ejected or open, `unhealthy` when none is (an
//! `optional` pool is `degraded` at worst). Details per backend: `state`, `breaker`,
//! `last_check`, `last_error`, `outstanding`, `requests`, `ejections`. The registration's
//! optionality is `reverseproxy.health.optional`.
//!
//! ## Events
//!
//! `com.modular.reverseproxy.backend.up`, `.backend.down` (active checks, with `pool` and
//! `backend`), `.backend.ejected` (outlier detection, with `ejected_ms`), and
//! `.table.reloaded` (with `version` and `fields`).
//!
//! ## Metrics
//!
//! `modular_reverseproxy_requests_total` (route, pool, backend, status class),
//! `modular_reverseproxy_upstream_duration_seconds` (pool),
//! `modular_reverseproxy_retries_total` and `_retries_denied_total` (route),
//! `modular_reverseproxy_breaker_state`, `_backend_up` and `_active_requests` (pool, backend),
//! `modular_reverseproxy_shadow_total` (route, result: match, mismatch, body_mismatch,
//! failed, skipped, too_large), `modular_reverseproxy_composite_parts_total` (route, part,
//! result: ok, empty, failed, timeout).
//!
//! ## Shadow traffic
//!
//! A route's `shadow: { pool, percent, max_body_bytes, compare_body }` ([`ShadowConfig`])
//! mirrors that share of its requests to a second pool once the client's answer has its
//! status: in the background (it never changes the client's answer), at most
//! [`SHADOW_IN_FLIGHT`] at once (beyond that a mirror is skipped and counted), under the
//! route's timeout. A request body streams to the primary as it arrives while a tee keeps
//! its frames (shared `Bytes`, up to `max_body_bytes`, 64 KiB by default) for the mirror; a
//! body declared or found larger is not mirrored and counted `too_large`. The mirror's status
//! is compared with the client's; with `compare_body` the two response bodies are compared
//! by SHA-256, each hashed as it streams (a difference counts `body_mismatch`). Counted in
//! [`Proxy::shadow_stats`] and the metric. Upgrades are never mirrored. Dynamic like every
//! other field.
//!
//! ## Composite routes
//!
//! A route with `composite` ([`CompositeConfig`]) instead of `pool` sends the request (no
//! body: one with a body gets `413`) to every part's pool at once, each part under its own
//! timeout and without retries. `mode: merge` answers one JSON object with each part's JSON
//! body under its name; a failed part (no answer, not 2xx, not JSON, above
//! `max_part_bytes`, timed out) fails the answer (`502`, `504` for a timeout), is left out or
//! is `null` (`on_part_failure: fail | omit | null`); an empty 2xx body follows `on_empty`.
//! `mode: first_success` streams the first 2xx part (`x-composite-part` names it) and
//! cancels the others. Counted in [`COMPOSITE_PARTS`].
//!
//! ```yaml
//! routes:
//!   - match: { prefix: /dashboard }
//!     composite:
//!       mode: merge
//!       on_part_failure: omit
//!       parts:
//!         user:   { pool: users, path: /users/me, timeout: 500ms }
//!         orders: { pool: orders }
//! ```
//!
//! ## TLS to backends
//!
//! `https://` backends are reached with rustls (aws-lc-rs) through a pooled client per pool,
//! built from `pools.<name>.tls` ([`PoolTlsConfig`]): `ca_file` (PEM bundle trusted instead
//! of the platform roots), `server_name` (verified and sent as SNI instead of the URL's
//! host), `client_cert_file` + `client_key_file` (presented to backends that ask). ALPN
//! offers `h2` when the pool's `protocol` is `h2` and `http/1.1` otherwise. A handshake
//! failure (an unknown issuer, a name mismatch) is a connect error: `502`, counted against
//! the backend's breaker and outlier detection, and a failed health check. The files are
//! read when the table is built; a reload of the section with changed contents or
//! settings builds a new client aside and swaps it in with the table (an in-place rotated
//! CA file takes effect at the next reload of the section; nothing watches the files).
//! A missing or unusable file is refused with its key path (`pools.<name>.tls.ca_file`).
//!
//! ## Features
//!
//! None.

mod backend;
mod budget;
mod checker;
mod composite;
pub mod config;
mod error;
mod exchange;
mod fast;
mod metrics;
mod module;
mod proxy;
mod shadow;
mod table;
mod tls;
mod tls_watch;
mod upstream;

pub use backend::{Availability, Backend, Breaker, Outcome, Transition};
pub use budget::RetryBudget;
pub use composite::COMPOSITE_PARTS;
pub use config::{
    BackendConfig, Balance, BreakerConfig, CompositeConfig, CompositeMode, CompositePart,
    HealthCheckConfig, OutlierConfig, PoolConfig, PoolTlsConfig, Protocol, ReverseProxyConfig,
    RouteConfig, RouteMatch, SHADOW_IN_FLIGHT, ShadowConfig,
};
pub use error::ReverseProxyError;
pub use module::ReverseProxyModule;
pub use proxy::{ListenerStats, Proxy};
pub use shadow::ShadowStats;
pub use table::{Pool, Route, Table};
