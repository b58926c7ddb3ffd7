//! The quickstart's own module: a small notes API on the database, cache and HTTP client
//! services.
//!
//! | request | answer |
//! |---|---|
//! | `POST /notes` with `{"text": "..."}` | `201 {"id": N}`; `400 {"error": ...}` for bad JSON or an empty text (nothing stored) |
//! | `GET /notes/{id}` | `200` and the note, read through the cache: header `x-cache: hit` or `miss`; `404 {"error": ...}` when unknown |
//! | `GET /notes` | `200 {"notes": [...]}`, newest first, at most `notes.list_limit` |
//!
//! The module finds everything it uses in the service registry — the database module's
//! [`DatabaseService`], the cache module's `Arc<dyn Cache>`, the httpclient module's
//! [`HttpClient`] and core's [`RouteRegistry`] — so it depends on no other module's internals,
//! only on their published services.
//!
//! # Databases
//!
//! The notes live on the database module's default connection, SQLite by default, PostgreSQL
//! or MariaDB / MySQL when the quickstart is built with the `postgres` or `mysql` feature and
//! the URL points there ([`store`] holds the SQL of each driver). The schema is a
//! sqlx migrations directory per driver under [`MIGRATIONS_DIR`]
//! (`examples/quickstart/migrations/{sqlite,postgres,mysql}`); `main` configures the one of the
//! URL's driver as the `primary` connection's `migrations`, so the database module runs it when
//! it opens the pool at start, and again on every pool a reload builds (a changed `url`
//! pointing at another database gets the schema before it serves).
//!
//! # The cache follows the database
//!
//! Notes are cached under `notes:<database>:<id>`, where `<database>` is a hash of which
//! database the pool reads (driver, host, port and database name, or the SQLite file; never
//! credentials). A reload that points the connection at another database therefore never
//! serves the old database's rows, not even for the moment after the swap: ids restart on a new
//! database, and `GET /notes/1` answers the new database's note 1 or `404`. And every pool swap
//! of the default connection (followed through its live handle,
//! `registry.live::<sqlx::SqlitePool>(name)` and the other drivers' pool types) clears the
//! cache, so the rows of the database left behind do not stay cached either. The quickstart's
//! cache holds nothing but notes; an application sharing its cache with other data would delete
//! its own keys instead.
//!
//! # Webhook
//!
//! With `notes.webhook_url` set, every note stored is posted there as JSON
//! (`{"event": "note.created", "note": {"id", "text", "created_at"}}`) through the httpclient
//! module, after the `201` is answered: a webhook that is down or slow never fails or delays
//! note creation, and its failures are logged (`webhook delivery failed`, the URL without its
//! query values). Watch the upstream with an `httpclient.health_probe` entry; with
//! `optional: true` an outage shows as degraded without failing readiness.
//!
//! # Health
//!
//! The module reports `notes:table`, counted for readiness: healthy while a query of the
//! `notes` table on the default connection answers within [`HEALTH_QUERY_TIMEOUT`]; unhealthy
//! (with the database's error) when the connection is gone or the table cannot be read, so an
//! instance that cannot serve notes is taken out of rotation. It recovers by itself.
//!
//! # Events
//!
//! Each note stored emits `com.modular.notes.note.created` (`id`, `bytes`) on the event bus.
//!
//! Cached notes live for the cache's `default_ttl`: edit `cache.default_ttl` while the
//! service runs and the notes cached afterwards expire on the new schedule.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use modular_cache::{Cache, CacheExt as _};
use modular_core::health::{
    HealthContext, HealthError, HealthProvider, HealthReport, HealthStatus, ProviderOptions,
};
use modular_core::http::RouteRegistry;
use modular_core::{
    BoxError, ConfigHandle, DynamicConfig, FieldError, InitContext, Module, ModuleContext, Secret,
    ServiceRegistry,
};
use modular_database::{DatabaseService, DbPool, sqlx};
use modular_httpclient::HttpClient;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::store::{self, NoteRow};

/// The module's name, and its configuration section.
pub const MODULE_NAME: &str = "notes";

/// The deadline of the health check's query of the `notes` table.
pub const HEALTH_QUERY_TIMEOUT: Duration = Duration::from_secs(1);

/// The `notes` section.
///
/// ```yaml
/// notes:
///   data_dir: data          # static; relative to the config file's directory
///   max_text_bytes: 10000   # dynamic
///   list_limit: 100         # dynamic
///   webhook_url: ""         # dynamic, secret; empty: no webhook
/// ```
///
/// `max_text_bytes`, `list_limit` and `webhook_url` are read on every request, so a reload
/// applies to the next request. `data_dir` is static: the SQLite file is opened once at start,
/// and moving it would leave the running service on the old file, so a change is refused with
/// "restart required".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, DynamicConfig)]
#[serde(deny_unknown_fields, default)]
#[config(validate = "Self::validate_config")]
pub struct NotesConfig {
    /// The directory of the SQLite file `notes.db`, created when missing. A relative path is
    /// relative to the config file's directory.
    pub data_dir: PathBuf,
    /// The longest note accepted, in bytes of UTF-8 (default 10000).
    #[config(dynamic)]
    pub max_text_bytes: usize,
    /// How many notes `GET /notes` answers at most (default 100).
    #[config(dynamic)]
    pub list_limit: u32,
    /// An `http://` or `https://` URL every new note is posted to; empty (the default): none.
    /// A secret, as webhook URLs often carry a token: shown as `[REDACTED]`, never logged.
    #[config(dynamic)]
    pub webhook_url: Secret<String>,
}

impl Default for NotesConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            max_text_bytes: 10_000,
            list_limit: 100,
            webhook_url: Secret::default(),
        }
    }
}

impl NotesConfig {
    fn validate_config(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.data_dir.as_os_str().is_empty() {
            errors.push(FieldError::new("data_dir", "must not be empty"));
        }
        if self.max_text_bytes == 0 {
            errors.push(FieldError::new("max_text_bytes", "must be > 0, got 0"));
        }
        if self.list_limit == 0 {
            errors.push(FieldError::new("list_limit", "must be > 0, got 0"));
        }
        let webhook = self.webhook_url.expose();
        if !webhook.is_empty() && !is_http_url(webhook) {
            // Never the URL itself: it may hold a token.
            errors.push(FieldError::new(
                "webhook_url",
                "must be an http:// or https:// URL with a host, or empty",
            ));
        }
        FieldError::collect(errors)
    }
}

fn is_http_url(url: &str) -> bool {
    url.parse::<Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|host| !host.is_empty())
    })
}

/// A stored note.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Note {
    /// Its id, from 1.
    pub id: i64,
    /// What was written.
    pub text: String,
    /// When it was stored (RFC 3339, UTC, milliseconds).
    pub created_at: String,
}

impl From<NoteRow> for Note {
    fn from((id, text, created_at): NoteRow) -> Self {
        Self {
            id,
            text,
            created_at,
        }
    }
}

/// The body of `POST /notes`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewNote {
    /// The note; not blank, at most `notes.max_text_bytes` bytes.
    text: String,
}

/// The answer of `POST /notes`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Created {
    /// The new note's id.
    id: i64,
}

/// The answer of `GET /notes`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct NoteList {
    /// The latest notes, newest first, at most `notes.list_limit`.
    notes: Vec<Note>,
}

/// An error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ErrorBody {
    /// What went wrong.
    error: String,
}

/// The notes API's OpenAPI description, merged into the application's
/// `GET /admin/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create_note, list_notes, read_note),
    components(schemas(Note, NewNote, Created, NoteList, ErrorBody))
)]
struct NotesApi;

/// The notes' schemas as sqlx migrations, one directory per driver (`sqlite`, `postgres`,
/// `mysql`); `main` configures the URL's one as the `primary` connection's `migrations`.
/// Absolute, so it does not depend on the working directory.
pub const MIGRATIONS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");

/// The notes module. Depends on `database`, `cache` and `httpclient`.
#[derive(Debug, Default)]
pub struct NotesModule {
    notes: OnceLock<Arc<Notes>>,
}

impl NotesModule {
    /// A module that reads the `notes` section.
    pub fn new() -> Self {
        Self::default()
    }
}

#[modular_core::async_trait]
impl Module for NotesModule {
    fn name(&self) -> &str {
        MODULE_NAME
    }

    fn dependencies(&self) -> Vec<String> {
        vec![
            "database".to_owned(),
            "cache".to_owned(),
            "httpclient".to_owned(),
        ]
    }

    /// Checks the default connection's driver is compiled in, contributes the routes and
    /// registers the health check.
    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config = ctx.config::<NotesConfig>()?;
        let db = ctx.services().require::<DatabaseService>()?;
        let cache = ctx.services().require::<dyn Cache>()?;
        let http = ctx.services().require::<HttpClient>()?;
        let state = Arc::new(Notes {
            db,
            cache,
            http,
            config,
            ctx: ctx.context(),
        });
        // Fails the start early when this build has no queries for the connection's driver.
        let pool = state.pool()?;
        if !store::supports(pool.driver()) {
            return Err(store::unsupported_message(pool.driver()).into());
        }

        let routes = RouteRegistry::shared(ctx.services());
        routes.route(
            MODULE_NAME,
            "/notes",
            get(list_notes)
                .post(create_note)
                .with_state(Arc::clone(&state)),
        );
        routes.route(
            MODULE_NAME,
            "/notes/{id}",
            get(read_note).with_state(Arc::clone(&state)),
        );
        routes.document(MODULE_NAME, <NotesApi as utoipa::OpenApi>::openapi());
        ctx.register_health_provider(
            MODULE_NAME,
            Arc::new(NotesHealth(Arc::clone(&state))),
            ProviderOptions {
                timeout: HEALTH_QUERY_TIMEOUT + Duration::from_millis(500),
                ..ProviderOptions::default()
            },
        );
        let _ = self.notes.set(state);
        tracing::info!(
            module = MODULE_NAME,
            driver = %pool.driver(),
            routes = "POST /notes, GET /notes, GET /notes/{id}",
            "notes ready"
        );
        Ok(())
    }

    /// Follows the default connection's pool swaps: each one clears the cached notes.
    async fn start(&self, ctx: &ModuleContext) -> Result<(), BoxError> {
        let Some(notes) = self.notes.get().map(Arc::clone) else {
            return Ok(());
        };
        let name = notes.db.default_name();
        let pool = notes.pool()?;
        let Some(swaps) = pool_swaps(ctx.services(), &name, &pool) else {
            tracing::warn!(connection = %name, "no live handle for the notes' connection; the cache will not be cleared on pool swaps");
            return Ok(());
        };
        let cancel = ctx.cancellation().clone();
        ctx.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = clear_on_swaps(notes, swaps) => {}
            }
        });
        Ok(())
    }
}

/// The generations of connection `name`'s pool, from its live handle (one type per driver).
fn pool_swaps(
    services: &ServiceRegistry,
    name: &str,
    pool: &DbPool,
) -> Option<watch::Receiver<u64>> {
    match pool {
        #[cfg(feature = "postgres")]
        DbPool::Postgres(_) => services.live::<sqlx::PgPool>(name).map(|l| l.subscribe()),
        #[cfg(feature = "mysql")]
        DbPool::MySql(_) => services
            .live::<sqlx::MySqlPool>(name)
            .map(|l| l.subscribe()),
        DbPool::Sqlite(_) => services
            .live::<sqlx::SqlitePool>(name)
            .map(|l| l.subscribe()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Clears the cache after every pool swap, until the live handle goes away.
async fn clear_on_swaps(notes: Arc<Notes>, mut swaps: watch::Receiver<u64>) {
    while swaps.changed().await.is_ok() {
        let generation = *swaps.borrow_and_update();
        match notes.cache.clear().await {
            Ok(()) => tracing::info!(
                module = MODULE_NAME,
                generation,
                "database pool swapped; cached notes cleared"
            ),
            // The new database's rows are cached under another key (see the module docs), so a
            // failed clear leaves only unreachable entries behind, until their TTL.
            Err(error) => tracing::warn!(
                module = MODULE_NAME,
                generation,
                %error,
                "database pool swapped; clearing the cached notes failed"
            ),
        }
    }
}

/// What the handlers share.
struct Notes {
    db: Arc<DatabaseService>,
    cache: Arc<dyn Cache>,
    http: Arc<HttpClient>,
    config: ConfigHandle<NotesConfig>,
    ctx: ModuleContext,
}

impl std::fmt::Debug for Notes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notes")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Notes {
    /// The default connection's pool, fetched per unit of work: a reload may replace it.
    fn pool(&self) -> Result<DbPool, ApiError> {
        self.db.default_pool().ok_or_else(|| {
            ApiError::Unavailable(format!(
                "the default database connection `{}` is not configured",
                self.db.default_name()
            ))
        })
    }

    /// Posts `note` to the webhook, if one is configured, in a task of its own.
    fn notify(&self, note: &Note) {
        let url = self.config.get().webhook_url.expose().clone();
        if url.is_empty() {
            return;
        }
        let http = Arc::clone(&self.http);
        let payload = json!({ "event": "note.created", "note": note });
        let id = note.id;
        self.ctx.spawn(async move {
            match http.post(url).json(&payload).send().await {
                Ok(response) if response.status().is_success() => {
                    tracing::debug!(module = MODULE_NAME, id, status = %response.status(), "webhook delivered");
                }
                Ok(response) => tracing::warn!(
                    module = MODULE_NAME,
                    id,
                    status = %response.status(),
                    "webhook delivery failed"
                ),
                // The client's errors carry the URL with its query values redacted.
                Err(error) => {
                    tracing::warn!(module = MODULE_NAME, id, %error, "webhook delivery failed");
                }
            }
        });
    }
}

/// The cache key of note `id` read from `pool`'s database.
fn cache_key(pool: &DbPool, id: i64) -> String {
    format!("notes:{}:{id}", store::namespace(pool))
}

/// Checks a `POST /notes` body: JSON `{"text": "..."}` with a text that is not blank and not
/// longer than `max_bytes`.
fn parse_new_note(body: &[u8], max_bytes: usize) -> Result<String, ApiError> {
    let note: NewNote = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    if note.text.trim().is_empty() {
        return Err(ApiError::BadRequest("text must not be empty".to_owned()));
    }
    if note.text.len() > max_bytes {
        return Err(ApiError::BadRequest(format!(
            "text must be at most {max_bytes} bytes, got {}",
            note.text.len()
        )));
    }
    Ok(note.text)
}

/// The note's first 200 characters, for the log.
fn preview(text: &str) -> &str {
    text.char_indices()
        .nth(200)
        .map_or(text, |(end, _)| &text[..end])
}

/// Now, as the notes store it: RFC 3339 in UTC with milliseconds (`2026-11-25T17:56:19.653Z`).
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[utoipa::path(
    post,
    path = "/notes",
    tag = "notes",
    summary = "Write a note",
    request_body = NewNote,
    responses(
        (status = 201, description = "stored", body = Created),
        (status = 400, description = "not a JSON note, blank, or too long", body = ErrorBody),
        (status = 500, description = "the database failed", body = ErrorBody),
        (status = 503, description = "the database is not available", body = ErrorBody),
    ),
)]
async fn create_note(State(notes): State<Arc<Notes>>, body: Bytes) -> Result<Response, ApiError> {
    let text = parse_new_note(&body, notes.config.get().max_text_bytes)?;
    let pool = notes.pool()?;
    let created_at = now_rfc3339();
    let id = store::insert(&pool, &text, &created_at)
        .await
        .map_err(ApiError::database)?;
    // User content in a log line, as real services write it: the log masker keeps the
    // personal data in it (e-mail addresses, card numbers, tokens) out of the log.
    tracing::debug!(module = MODULE_NAME, id, text = %preview(&text), "note created");
    notes
        .ctx
        .emit("note.created", json!({ "id": id, "bytes": text.len() }));
    notes.notify(&Note {
        id,
        text,
        created_at,
    });
    Ok((StatusCode::CREATED, Json(Created { id })).into_response())
}

#[utoipa::path(
    get,
    path = "/notes/{id}",
    tag = "notes",
    summary = "Read a note",
    description = "Through the cache: `x-cache: hit` or `miss`.",
    params(("id" = i64, Path, description = "the note's id, from 1")),
    responses(
        (status = 200, description = "the note", body = Note),
        (status = 400, description = "the id is not a positive integer", body = ErrorBody),
        (status = 404, description = "no such note", body = ErrorBody),
        (status = 500, description = "the database failed", body = ErrorBody),
        (status = 503, description = "the database is not available", body = ErrorBody),
    ),
)]
async fn read_note(
    State(notes): State<Arc<Notes>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::BadRequest(format!("note id must be a positive integer, got {id:?}"))
    })?;
    // The pool first: the key names its database, so a swapped pool never reads the rows
    // another database cached.
    let pool = notes.pool()?;
    let key = cache_key(&pool, id);
    // A cache that fails is a miss: the database still answers.
    match notes.cache.get_json::<Note>(&key).await {
        Ok(Some(note)) => return Ok(with_cache_header(note, "hit")),
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, key, "cache read failed; reading the database"),
    }
    let row = store::find(&pool, id).await.map_err(ApiError::database)?;
    let note = row.map(Note::from).ok_or(ApiError::NotFound(id))?;
    // `None`: the cache's `default_ttl`, as configured now.
    if let Err(error) = notes.cache.set_json(&key, &note, None).await {
        tracing::warn!(%error, key, "cache write failed");
    }
    Ok(with_cache_header(note, "miss"))
}

#[utoipa::path(
    get,
    path = "/notes",
    tag = "notes",
    summary = "The latest notes",
    responses(
        (status = 200, description = "the latest notes", body = NoteList),
        (status = 500, description = "the database failed", body = ErrorBody),
        (status = 503, description = "the database is not available", body = ErrorBody),
    ),
)]
async fn list_notes(State(notes): State<Arc<Notes>>) -> Result<Response, ApiError> {
    let limit = notes.config.get().list_limit;
    let pool = notes.pool()?;
    let rows = store::latest(&pool, limit)
        .await
        .map_err(ApiError::database)?;
    let list: Vec<Note> = rows.into_iter().map(Note::from).collect();
    Ok(Json(NoteList { notes: list }).into_response())
}

/// `notes:table`: the `notes` table answers a query on the default connection.
#[derive(Debug)]
struct NotesHealth(Arc<Notes>);

#[modular_core::async_trait]
impl HealthProvider for NotesHealth {
    async fn health_check(&self, ctx: &HealthContext) -> Result<Vec<HealthReport>, HealthError> {
        let report = HealthReport::healthy(MODULE_NAME, "table");
        let pool = match self.0.pool() {
            Ok(pool) => pool,
            Err(error) => {
                return Ok(vec![
                    report
                        .with_status(HealthStatus::Unhealthy)
                        .with_message(error.to_string()),
                ]);
            }
        };
        let report = report.with_detail("driver", pool.driver().as_str());
        // Within the aggregator's deadline, so the report names the timeout itself.
        let deadline = HEALTH_QUERY_TIMEOUT.min(ctx.remaining());
        let started = Instant::now();
        let outcome = tokio::time::timeout(deadline, store::probe(&pool)).await;
        let report = report.with_duration(started.elapsed());
        let report = match outcome {
            Ok(Ok(())) => report.with_message("ok"),
            Ok(Err(error)) => report
                .with_status(HealthStatus::Unhealthy)
                .with_message(format!("the notes table cannot be read: {error}")),
            Err(_) => report
                .with_status(HealthStatus::Unhealthy)
                .with_message(format!(
                    "the notes table did not answer within {deadline:?}"
                )),
        };
        Ok(vec![report])
    }
}

fn with_cache_header(note: Note, outcome: &'static str) -> Response {
    let mut response = Json(note).into_response();
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(outcome));
    response
}

/// An error answer: its status and `{"error": "..."}`.
#[derive(Debug)]
enum ApiError {
    BadRequest(String),
    NotFound(i64),
    Unavailable(String),
    Internal,
}

impl ApiError {
    fn database(error: sqlx::Error) -> Self {
        tracing::error!(%error, "notes: database query failed");
        Self::Internal
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadRequest(message) | Self::Unavailable(message) => f.write_str(message),
            Self::NotFound(id) => write!(f, "note {id} not found"),
            Self::Internal => f.write_str("internal error; see the service log"),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_request(result: Result<String, ApiError>) -> String {
        match result {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn a_note_needs_json_with_a_non_blank_text() {
        assert_eq!(
            parse_new_note(br#"{"text":"buy milk"}"#, 100)
                .ok()
                .as_deref(),
            Some("buy milk")
        );
        assert!(bad_request(parse_new_note(b"{not json", 100)).starts_with("invalid JSON body"));
        assert!(
            bad_request(parse_new_note(br#"{"txt":"x"}"#, 100)).starts_with("invalid JSON body")
        );
        assert_eq!(
            bad_request(parse_new_note(br#"{"text":"  "}"#, 100)),
            "text must not be empty"
        );
        assert_eq!(
            bad_request(parse_new_note(br#"{"text":"abcdef"}"#, 5)),
            "text must be at most 5 bytes, got 6"
        );
    }

    #[test]
    fn a_webhook_url_must_be_http_and_is_never_echoed() {
        for (url, ok) in [
            ("", true),
            ("http://127.0.0.1:9000/hook", true),
            ("https://hooks.example.com/notes?token=s3cret", true),
            ("ftp://hooks.example.com/", false),
            ("hooks.example.com/s3cret", false),
            ("http:///s3cret", false),
        ] {
            let config = NotesConfig {
                webhook_url: Secret::new(url.to_owned()),
                ..NotesConfig::default()
            };
            let errors: Vec<String> = config
                .validate_config()
                .err()
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(errors.is_empty(), ok, "{url}: {errors:?}");
            assert!(
                errors
                    .iter()
                    .all(|e| e.starts_with("webhook_url: ") && !e.contains("s3cret")),
                "{errors:?}"
            );
        }
    }

    #[test]
    fn created_at_is_rfc3339_utc_with_milliseconds() {
        let now = now_rfc3339();
        assert_eq!(now.len(), "2026-11-25T17:56:19.653Z".len(), "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[19] == b'.', "{now}");
    }

    #[test]
    fn zero_limits_are_rejected_with_their_paths() {
        let config = NotesConfig {
            max_text_bytes: 0,
            list_limit: 0,
            ..NotesConfig::default()
        };
        let errors = config.validate_config().err().unwrap_or_default();
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "max_text_bytes: must be > 0, got 0",
                "list_limit: must be > 0, got 0"
            ]
        );
        assert!(NotesConfig::default().validate_config().is_ok());
    }
}
