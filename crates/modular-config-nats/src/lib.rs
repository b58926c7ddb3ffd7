//! Fleet configuration for modular: one change in a NATS JetStream key-value bucket reaches
//! every instance of a service, each applies it through the reload pipeline (trigger
//! `remote`) and writes its ACK or NACK back to the bucket, where `GET /admin/fleet` on any
//! instance shows the whole fleet.
//!
//! # Set up
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use modular_config_nats::{FleetModule, NatsKv, NatsKvOptions};
//! use modular_core::Application;
//!
//! let kv = NatsKv::connect(
//!     NatsKvOptions::new("nats://127.0.0.1:4222", "config", "notes")
//!         .cache_path("/var/cache/notes/fleet.json"),
//! )
//! .await?;
//! let app = Application::builder()
//!     .config_file("config.yaml")     // below the bucket
//!     .config_remote(kv.clone())       // the bucket's keys for service "notes"
//!     .optional_config_file("local.yaml") // above it: instance-local settings win
//!     .module(FleetModule::new(kv))
//!     .with_dynamic_reload()
//!     .build()
//!     .await?;
//! # drop(app);
//! # Ok(()) }
//! ```
//!
//! # Keys
//!
//! In the bucket, for service `notes`:
//! - `notes` holds a whole YAML document (top-level keys are sections);
//! - `notes.<section>.<path>` holds one YAML value at that config path
//!   (`notes.cache.max_items` = `500`), layered over the document;
//! - `_fleet.notes.<instance>` is written by each instance: its latest [`InstanceStatus`].
//!
//! The layer sits where it was added among the files (see
//! [`config_remote`](modular_core::ApplicationBuilder::config_remote)); the environment and
//! runtime overrides stay above it. A key that is not YAML rejects the candidate with its
//! path, the source named `nats://host:port/kv/<bucket>/<service> (revision N)`.
//!
//! # Watching and reloading
//!
//! The [`FleetModule`] watches the bucket (a JetStream ordered consumer), then reads every
//! key of the service, so nothing put in between is missed; changes within `fleet.debounce`
//! are applied together as one version. After each remote reload the instance writes its
//! status: `ack` when the change applied (or changed nothing here), `nack` with the error
//! when it was rejected or failed (the running config stays as it was), and emits the
//! CloudEvent `com.modular.config.fleet.nack` for a NACK. The status is rewritten every
//! `fleet.heartbeat`; `/admin/fleet` leaves out statuses older than `fleet.ttl`. Each
//! version's history entry carries the revision (`source_revisions`).
//!
//! # Start-up and outages
//!
//! [`NatsKv::connect`] waits `connect_timeout` for the server. When it does not answer, the
//! last revision cached at `cache_path` (written 0600, atomically, on every change) serves,
//! and `fleet:config_source` reports degraded; with no cache, the error names the URL
//! (credentials removed). While connected the client reconnects by itself; after a lost
//! connection the module reads every key again, so a change put during the outage is applied
//! on reconnect.
//!
//! # Configuration (`fleet` section)
//!
//! ```yaml
//! fleet:
//!   instance_id: notes-0   # default: host name and process id (static)
//!   debounce: 50ms         # dynamic
//!   heartbeat: 5s          # dynamic
//!   ttl: 20s               # dynamic, must exceed heartbeat
//! ```
//!
//! # Health
//!
//! One report, `fleet:config_source`, optional: `degraded` while the store is unreachable
//! (details: `revision`, `connected`, `from_cache`, `last_contact`, `error`), `healthy` while
//! watching.
//!
//! # Events
//!
//! `com.modular.config.fleet.nack` (instance, service, revision, version, error). The
//! reload pipeline's own events carry `trigger: remote`.
//!
//! # Command line
//!
//! `modular-fleet` (this crate's binary): `put SERVICE FILE`, `set SERVICE PATH VALUE`,
//! `unset SERVICE PATH`, `get SERVICE`, `status SERVICE`; `--url` and `--bucket` (or
//! `MODULAR_FLEET_URL`, `MODULAR_FLEET_BUCKET`).

mod admin;
mod config;
mod error;
mod module;
mod source;
mod status;

pub use admin::FLEET_PATH;
pub use config::FleetConfig;
pub use error::FleetError;
pub use module::{FleetModule, NACK_EVENT};
pub use source::{NatsKv, NatsKvOptions};
pub use status::InstanceStatus;

/// Operator tools shared by the `modular-fleet` binary and tests.
pub mod ops {
    pub use crate::module::fleet_statuses;
    pub use crate::source::{list_keys, open_bucket, redact_url};
}
