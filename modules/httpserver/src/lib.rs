//! The httpserver module of modular: serves the application's router over HTTP or HTTPS, drains
//! gracefully the way Kubernetes needs it, reloads its limits at runtime and rotates its TLS
//! certificate in place.
//!
//! # A guided tour
//!
//! **What it serves.** The server serves core's
//! [`ServedRouter`](modular_core::http::ServedRouter), which the `router` module publishes (the
//! server depends on the module named `router`). Each request takes the router current when
//! it arrives, so a router swapped by a reload never disturbs a request already running.
//!
//! In an application this is `modular_router::RouterModule`; anything named `router` that
//! registers a `ServedRouter` will do, which the example uses to stay self-contained:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use axum::routing::get;
//! use modular_core::http::ServedRouter;
//! use modular_core::{Application, BoxError, InitContext, Module};
//! use modular_httpserver::HttpServerModule;
//!
//! struct Router;
//!
//! #[modular_core::async_trait]
//! impl Module for Router {
//!     fn name(&self) -> &str { "router" }
//!     async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
//!         let routes = axum::Router::new().route("/", get(|| async { "hello" }));
//!         ctx.services().register(Arc::new(ServedRouter::new(routes)));
//!         Ok(())
//!     }
//! }
//!
//! # async fn run() -> Result<(), modular_core::Error> {
//! // config.yaml: `httpserver: { port: 8080, drain_delay: 5s }`
//! Application::builder()
//!     .config_file("config.yaml")
//!     .module(Router)
//!     .module(HttpServerModule::new())
//!     .with_dynamic_reload()
//!     .with_health_aggregator()
//!     .build()
//!     .await?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! **Connections.** hyper (HTTP/1.1 and HTTP/2, by ALPN with TLS) under a connection limit:
//! at `max_connections` the accept loop waits and new clients queue in the listen backlog.
//! Each connection runs with the limits in force when it was accepted — `request_timeout`
//! (`503` when a response is not ready in time), `max_body_size` (`413`),
//! `header_read_timeout` (the connection is closed when a request's headers, the TLS
//! handshake or the HTTP/2 connection preface take longer) and `idle_timeout` (a keep-alive
//! connection with no request for this long is closed gracefully: HTTP/1 by closing it
//! between requests, HTTP/2 with a GOAWAY). On HTTP/2 the frames a client sends between
//! requests (PING, WINDOW_UPDATE, SETTINGS) start no request head, so they never trip the
//! header-read timeout and do not keep the connection from going idle; the protocol is told
//! from the first bytes (ALPN `h2` over TLS, or the preface over cleartext, prior knowledge).
//! Every request carries the client's address as axum's
//! [`ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo) extension, so a handler can take
//! it as an extractor (the reverse proxy puts it into `X-Forwarded-For` and `Forwarded`).
//!
//! **Start and stop order**: the module calls `InitContext::start_after_others`, so it starts
//! after every other module (it never serves a request before the modules that answer it are
//! up) and stops before them (it drains while they are still there), wherever it is
//! registered.
//!
//! **Shutdown**, in order, so load balancers drain the instance before it goes away:
//! 1. readiness turns unhealthy (`HealthAggregator::set_shutting_down`), so `/readyz` answers
//!    503;
//! 2. for `drain_delay` the server keeps accepting and serving; HTTP/1 answers carry
//!    `Connection: close` so keep-alive clients reconnect to an instance that stays;
//! 3. the listener closes: new connections are refused;
//! 4. in-flight requests get up to `shutdown_timeout` to finish; connections still open then
//!    are closed.
//!
//! `drain_delay + shutdown_timeout` must fit in the application's shutdown timeout
//! (`ApplicationBuilder::shutdown_timeout`, 30 s by default), which bounds every module's stop.
//!
//! **TLS** with rustls (aws-lc-rs). The certificate comes from PEM files (`cert_file`,
//! `key_file`) or is generated self-signed for `domains` (rcgen). It is rotated in place: a
//! reload that changes the files or names, or new content in the same files (checked every
//! `watch_interval`, so Kubernetes secret updates are seen), loads the new certificate aside and
//! swaps it into the certificate resolver. Open connections keep their session; the next
//! handshake sees the new certificate. Files that fail to load leave the old certificate
//! serving (and degrade health) until their content changes again.
//!
//! With `tls.source: service` the certificates come from another module instead: the
//! `rustls::server::ResolvesServerCert` it registered in the service registry (core's
//! certificate seam, `modular_core::tls`; the letsencrypt module registers one that answers per
//! SNI name and swaps certificates as it renews them). `tls.service` names a named resolver.
//! The resolver is looked up when the server starts; none registered fails the start with
//! `httpserver.tls.source is service, but no certificate resolver is registered`. The
//! `httpserver:certificate` health component is then the resolver owner's to report.
//!
//! **Mutual TLS.** With `tls.client_ca` (a PEM bundle of CA certificates) the handshake asks
//! for a client certificate and verifies it against that CA: with `client_auth: required` (the
//! default) a client without one, or with one from another CA, is refused; with `optional` a
//! client without one is served and one that sends a certificate must still chain to the CA.
//! The CA is reloadable: a reload that changes `client_ca` or `client_auth`, or new content in
//! the file (seen by the watcher every `watch_interval`), loads it aside and swaps a new TLS
//! configuration in for new handshakes; open connections keep the session they authenticated.
//! A CA file that cannot be loaded fails the build or the reload with
//! `httpserver.tls.client_ca: cannot use <path> as the client CA: ...`, and the CA in force
//! stays (a bad replacement seen by the watcher is logged and ignored until it changes again).
//!
//! ```yaml
//! httpserver:
//!   tls:
//!     enabled: true
//!     cert_file: /etc/tls/tls.crt
//!     key_file: /etc/tls/tls.key
//!     client_ca: /etc/tls/clients-ca.crt
//!     client_auth: required    # or optional
//! ```
//!
//! # Configuration
//!
//! ```yaml
//! httpserver:
//!   host: 0.0.0.0              # static
//!   port: 8443                 # static; 0 picks a free port (see HttpServerHandle::local_addr)
//!   request_timeout: 60s       # 0s: none
//!   header_read_timeout: 10s
//!   idle_timeout: 60s          # 0s: never
//!   max_body_size: 2097152     # bytes
//!   max_connections: 10000
//!   drain_delay: 5s
//!   shutdown_timeout: 20s
//!   tls:
//!     enabled: true            # static
//!     cert_file: /etc/tls/tls.crt
//!     key_file: /etc/tls/tls.key
//!     # domains: [localhost]   # self-signed, when no cert_file
//!     watch_interval: 30s      # 0s: never re-read the files
//!     expiry_warning: 14days
//!     # client_ca: /etc/tls/clients-ca.crt   # mutual TLS (see above)
//!     # client_auth: required  # or optional
//!   health:                    # the health registration
//!     timeout: 500ms           # the check's deadline; > 0s, at most 60s
//!     optional: false          # true: a failing check never fails readiness
//! ```
//!
//! # Dynamic fields
//!
//! Dynamic: the timeouts, `max_body_size` and `max_connections` (applied to connections
//! accepted after the reload; open connections keep theirs), `drain_delay` and
//! `shutdown_timeout` (read at stop), `tls.cert_file`, `tls.key_file`, `tls.domains` (the
//! certificate is rotated; a certificate that cannot be loaded fails the reload, which rolls
//! back the modules applied before), `tls.watch_interval` and `tls.expiry_warning`,
//! `tls.client_ca` and `tls.client_auth` (a new TLS configuration for new handshakes), and
//! `health.timeout` and `health.optional` (the commit replaces the health registration's
//! options).
//!
//! Each of them has a test that reloads it and observes the change on the live server
//! (`tests/server_live_fields.rs` and the conformance kit).
//!
//! Static (restart required): `host` and `port` (the socket is bound once; moving it would
//! drop every connection) and `tls.enabled` (clients would have to switch protocol on the
//! same port).
//!
//! # Health
//!
//! - `httpserver:listener` (readiness): `unhealthy` before start and once the listener has
//!   closed; while serving, each check opens a real TCP connection to the server's own address
//!   and waits until the accept loop has taken it (`unhealthy` when refused or not accepted
//!   before the check's deadline, `health.timeout`, default 500 ms). `degraded` at
//!   `max_connections` and while draining. With `health.optional: true` neither component
//!   counts for readiness (except the drain: readiness still fails while shutting down).
//!   Details: address, scheme, phase, connections, max_connections, in_flight,
//!   accepted_total, requests_total.
//! - `httpserver:certificate` (with TLS, readiness): `unhealthy` once expired or before its
//!   validity starts, `degraded` within `tls.expiry_warning` (14 days) of expiry, or when
//!   changed certificate files could not be loaded; `healthy` otherwise. Details: serial,
//!   subject, not_before, not_after, expires_in_seconds, source, path.
//! - `httpserver:client_ca` (with `tls.client_ca`, readiness): `degraded` while the CA file
//!   holds content the watcher could not load (clients are verified against the previous CA
//!   meanwhile), `healthy` again once a CA loads.
//!
//! # Events
//!
//! | type | data |
//! |---|---|
//! | `com.modular.httpserver.server.started` | `address`, `scheme` |
//! | `com.modular.httpserver.server.stopped` | `address`, `requests_served`, `forced_connections` |
//! | `com.modular.httpserver.tls.reloaded` | `trigger` (`config`, `file`), `serial`, `previous_serial`, `subject`, `not_after`, `source` |
//!
//! # Metrics
//!
//! Through the `metrics` facade, when the application records (`metrics.enabled: true`; see
//! [`metrics`]): `modular_httpserver_connections` (gauge, open connections),
//! `modular_httpserver_requests_in_flight` (gauge) and `modular_httpserver_tls_reloads_total`
//! (counter, `outcome` = `success` or `failure`: certificate rotations and client CA reloads,
//! by config or by the file watcher). No label carries an address or a path.
//!
//! # Feature flags
//!
//! None.

mod config;
mod connection;
mod error;
pub mod metrics;
mod module;
mod server;
mod tls;

pub use config::{
    CertificateSource, ClientAuth, DEFAULT_HEALTH_TIMEOUT, HttpServerConfig, TlsConfig, TlsSource,
};
pub use error::HttpServerError;
pub use module::{HttpServerHandle, HttpServerModule, MODULE_NAME};
pub use tls::{CertificateInfo, hex as serial_hex};
