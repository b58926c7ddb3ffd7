//! The logmasker module of modular: masks secrets and personal data in every log line inside
//! the `tracing-subscriber` pipeline, so no caller has to remember to, with rules reloaded live.
//!
//! # A guided tour
//!
//! A [`Masker`] holds the live, compiled rule set. Its pieces go into the subscriber's `fmt`
//! layer, so every event (message, fields, and the fields of the spans it is in) passes
//! through it before a byte is written; [`LogMaskerModule`] loads the `logmasker` section into
//! the same masker and reloads it.
//!
//! ```
//! use modular_logmasker::Masker;
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! let masker = Masker::new(); // the default rules until the module loads the section
//! let subscriber = tracing_subscriber::registry().with(masker.layer(std::io::stdout));
//! tracing::subscriber::with_default(subscriber, || {
//!     // ... INFO login user="bob" password=[REDACTED] from [REDACTED]
//!     tracing::info!(user = "bob", password = "hunter2", "login from alice@example.com");
//! });
//! assert_eq!(masker.mask("card 4111 1111 1111 1111"), "card [REDACTED]");
//! ```
//!
//! An application installs the global subscriber with [`install`] (text to stdout over
//! [`Masker::global`], `RUST_LOG` filtering) and adds [`LogMaskerModule::new`], which
//! configures that same masker:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let _masker = modular_logmasker::install()?;
//! let app = modular_core::Application::builder()
//!     .module(modular_logmasker::LogMaskerModule::new())
//!     .build()
//!     .await?;
//! # let _ = app; Ok(()) }
//! ```
//!
//! For a subscriber of your own, [`Masker::layer`] (text) and [`Masker::json_layer`] (JSON)
//! return a ready `fmt::Layer`; or compose the pieces:
//!
//! ```
//! # use tracing_subscriber::layer::SubscriberExt as _;
//! # let masker = modular_logmasker::Masker::new();
//! let layer = tracing_subscriber::fmt::layer()
//!     .fmt_fields(masker.fields())                                      // field-name rules
//!     .event_format(masker.format(tracing_subscriber::fmt::format().compact())) // the line
//!     .with_writer(masker.counting_writer(std::io::stderr));            // dropped lines
//! let _subscriber = tracing_subscriber::registry().with(layer);
//! ```
//!
//! # How a line is masked
//!
//! - [`MaskingFormat`] (the event formatter wrapper) loads the live rule set **once per line**,
//!   formats the line aside with the inner formatter, then masks it and writes it. The same
//!   loaded set serves the field formatter during that line, so a line is never half under
//!   old and half under new rules.
//! - [`MaskingFields`] (the field formatter) applies **field-name rules** to event and span
//!   fields while they are formatted: the value is redacted, partly kept, hashed, or the field
//!   left out (`drop`).
//! - The **value patterns** (built-ins and custom regexes, compiled together in one
//!   `RegexSet`) then run over the whole formatted text line: message, fields, span fields.
//!   For JSON lines ([`Masker::json_format`]) the line is parsed back; keys matching field
//!   rules are masked or removed at any depth (`fields`, `span`, `spans`), and every string
//!   value is pattern-masked.
//! - [`MaskingWriter`] wraps the `MakeWriter`: it counts lines the writer fails to write
//!   (dropped, reported by health and metrics) and, from [`Masker::writer`], masks value
//!   patterns itself for formatters other than [`MaskingFormat`].
//!
//! Span fields are formatted when they are recorded, so field-name rules on them are those
//! live at that moment; value patterns run again on every line under that line's set.
//! ANSI colours are not written through the masker (they would split the text patterns see).
//!
//! # Configuration
//!
//! The `logmasker` section ([`LogMaskerConfig`]); every field is dynamic:
//!
//! ```yaml
//! logmasker:
//!   enabled: true            # false: lines are written unmasked
//!   defaults: true           # the default rules (below) follow `rules`
//!   compiled_size_limit: 16777216   # bytes the compiled patterns may take together
//!   rules:
//!     - field: "*_token"     # exact name or glob (* and ?), case-insensitive
//!       strategy: hash       # redact (default) | partial | hash | drop
//!     - field: session_id
//!       strategy: drop       # field rules only: the field is left out
//!     - builtin: credit_card # replaces the default credit_card rule
//!       strategy: partial
//!       keep_first: 0
//!       keep_last: 4         # default 4
//!     - builtin: ipv4        # opt-in
//!     - regex: "order=(?P<secret>ORD-[0-9]{6})"   # only the `secret` group is masked
//!       name: order_id       # the metrics' `rule` label
//!   health:
//!     optional: true
//! ```
//!
//! Built-ins ([`Builtin`]): `bearer` (the token after `Bearer`), `url_password` (the password
//! of a URL's user info, `postgres://user:[REDACTED]@host`), `jwt`, `aws_access_key`,
//! `private_key` (a PEM block, or from its `BEGIN` line to the end of a cut value),
//! `credit_card` (brand prefixes and lengths plus the Luhn check, so timestamps and ids of the
//! same length stay), `iban` (mod-97 check), `email`, and opt-in `ipv4` (version strings look
//! like one) and `ipv6` (parsed, and never part of a word such as `tokio::time`).
//! The default rules ([`default_rules`]): the field names in [`DEFAULT_FIELDS`] and every
//! built-in but the IP addresses, all `redact`.
//!
//! Strategies ([`Strategy`]): `redact` writes `[REDACTED]`; `partial` keeps `keep_first` and
//! `keep_last` characters and stars the rest (a value too short to hide more than it keeps is
//! redacted whole); `hash` writes `[HASH:<16 hex>]`, a SipHash under a key drawn at random
//! once per process, so equal values correlate within a process and cannot be recomputed
//! outside it; `drop` leaves the field out.
//!
//! Rejected with their path (`logmasker.rules.<i>.<key>`): a regex that does not compile
//! (with the regex crate's error), an unknown strategy or built-in, a rule with none or
//! several of `field` / `builtin` / `regex`, `drop` on a value pattern, `partial` keeping
//! nothing, and `partial` keeping more characters than it masks on a built-in (keep at most
//! half of its shortest match); unknown keys.
//!
//! # Reload
//!
//! `prepare` compiles the whole new rule set aside; it fails (the reload is `failed`, event
//! `rules.rejected`, `last_rejection` in the health details; health itself stays as it was,
//! since the running set is current) when the patterns do not compile together within
//! `compiled_size_limit`, and the running set keeps masking. `commit` swaps the
//! `Arc<RuleSet>` behind an `ArcSwap`; an aborted reload drops the prepared set.
//!
//! # Health
//!
//! One report, component `rules`, registered optional by default (`health.optional`):
//! `degraded` when the writer dropped lines since the previous check (failed writes, and
//! counters added with [`Masker::track_dropped`], such as a non-blocking writer's);
//! otherwise `healthy`. A rejected reload leaves the running set current, so it shows in the
//! details, not the status.
//! Details: `rules`, `enabled`, `lines_masked`, `values_masked`, `dropped_lines`,
//! `dropped_since_last_check`, `rejected_reloads`, `last_rejection`.
//!
//! # Events
//!
//! | type | data |
//! |---|---|
//! | `com.modular.logmasker.rules.reloaded` | `version`, `fields`, `rules`, `enabled` |
//! | `com.modular.logmasker.rules.rejected` | `version`, `fields`, `error` (path and reason) |
//!
//! # Metrics
//!
//! See [`metrics`]: `modular_logmasker_lines_masked_total`,
//! `modular_logmasker_values_masked_total{rule}`, `modular_logmasker_dropped_lines_total`.
//!
//! # Features
//!
//! None: the crate always builds the text and JSON integrations.

mod config;
mod error;
mod masker;
pub mod metrics;
mod module;
mod rules;

pub use config::{
    DEFAULT_COMPILED_SIZE_LIMIT, DEFAULT_FIELDS, LogMaskerConfig, LogMaskerHealthConfig, MaskRule,
    Strategy, default_rules,
};
pub use error::LogMaskerError;
pub use masker::{
    Masker, MaskerStats, MaskingFields, MaskingFormat, MaskingLine, MaskingWriter, PreparedRules,
};
pub use module::LogMaskerModule;
pub use rules::{Builtin, REDACTED, RuleSet};

/// Installs the global subscriber: `RUST_LOG` filtering (default `info`) and the masked text
/// layer over [`Masker::global`] writing to stdout. Returns the masker (which
/// [`LogMaskerModule::new`] configures from the `logmasker` section).
pub fn install() -> Result<Masker, tracing_subscriber::util::TryInitError> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let masker = Masker::global().clone();
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing_subscriber::filter::LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::registry()
        .with(filter)
        .with(masker.layer(std::io::stdout))
        .try_init()?;
    Ok(masker)
}
