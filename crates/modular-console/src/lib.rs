//! The operator's console of modular: a status page at `GET /admin/ui`, shipped in the
//! binary (one HTML file, one stylesheet, one script, embedded with `include_str!`; no build
//! step, no CDN).
//!
//! # A guided tour
//!
//! Add [`ConsoleModule`] beside the router and the HTTP server, with an admin token (or the
//! auth module's admin role) configured:
//!
//! ```no_run
//! use modular_console::ConsoleModule;
//! use modular_core::Application;
//! use modular_httpserver::HttpServerModule;
//! use modular_router::RouterModule;
//! # async fn demo() -> Result<(), modular_core::Error> {
//! let app = Application::builder()
//!     .config_file("config.yaml")
//!     .module(ConsoleModule::new())
//!     .module(RouterModule::new())
//!     .module(HttpServerModule::new())
//!     .with_dynamic_reload()
//!     .with_health_aggregator()
//!     .build()
//!     .await?;
//! # drop(app);
//! # Ok(()) }
//! ```
//!
//! ```yaml
//! admin:
//!   token: a-long-random-admin-token
//! console:
//!   enabled: true      # dynamic: false answers 404 for the page
//!   poll_interval: 2s  # dynamic: how often the page refreshes
//!   page_size: 50      # dynamic: rows per page of the checks and the history tables
//! ```
//!
//! Open `http://host:port/admin/ui`, paste the admin token into the login form, and the page
//! shows, refreshed every `poll_interval` without a reload of the page:
//!
//! - overall health, readiness, liveness and startup (`GET /health`);
//! - every check with its status, age, time in that status, duration and message, paginated;
//! - the config version, pending restarts and the last rejected reload (`GET /admin/config`);
//! - the history: version, trigger, time, outcome, health-gate verdict and the redacted diff
//!   of each version (`GET /admin/config/history`), paginated, newest first, each earlier
//!   version with a rollback button (`POST /admin/config/rollback/{version}` after a
//!   `confirm()`);
//! - a plan box: a pasted YAML candidate is dry-run (`POST /admin/reload/plan`) and its
//!   outcome shown, every rejection with its key path and source;
//! - a reload button (`POST /admin/reload`).
//!
//! # Access
//!
//! The page itself is a static shell, the same bytes for everyone, so it is served without
//! credentials: a browser navigating to `/admin/ui` has no `Authorization` header to send.
//! Every piece of data it shows comes from an endpoint behind the router's admin guard
//! (`/admin/*`, including the page's own `/admin/ui/settings`) or from `/health`, which shows
//! messages only to an authorized caller. The token typed into the login form is kept in the
//! tab's `sessionStorage` (gone when the tab closes), sent only as `Authorization: Bearer`,
//! never in a URL or query string, and never written into the page. A browser session that
//! the auth module grants the admin role (its cookie) is used as it is, with no form.
//! Secrets appear exactly as the admin endpoints redact them. The page answers with a strict
//! `Content-Security-Policy` (same-origin script, style and fetch only; no framing).
//!
//! # Reload, health, events, metrics
//!
//! Every `console` field is dynamic and read per request. The console has no backend, so it
//! registers no health provider, emits no events of its own and records no metrics beyond the
//! router's per-route series.
//!
//! # Feature flags
//!
//! None.

mod assets;
mod config;
mod error;
mod module;

pub use assets::{PAGE_PATH, SCRIPT_PATH, SETTINGS_PATH, STYLE_PATH};
pub use config::{ConsoleConfig, MAX_PAGE_SIZE, MIN_POLL_INTERVAL};
pub use error::ConsoleError;
pub use module::{ConsoleModule, MODULE_NAME};
