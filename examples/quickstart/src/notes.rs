//! The quickstart's own module: a small notes API on the database and cache services.
//!
//! | request | answer |
//! |---|---|
//! | `POST /notes` with `{"text": "..."}` | `201 {"id": N}`; `400 {"error": ...}` for bad JSON or an empty text (nothing stored) |
//! | `GET /notes/{id}` | `200` and the note, read through the cache: header `x-cache: hit` or `miss`; `404 {"error": ...}` when unknown |
//! | `GET /notes` | `200 {"notes": [...]}`, newest first, at most `notes.list_limit` |
//!
//! The module finds everything it uses in the service registry — the database module's
//! [`DatabaseService`], the cache module's `Arc<dyn Cache>` and core's [`RouteRegistry`] — so it
//! depends on no other module's internals, only on their published services. Its schema is a
//! sqlx migrations directory, [`MIGRATIONS_DIR`] (`examples/quickstart/migrations`), which
//! `main` configures as the `primary` connection's `migrations`: the database module runs it
//! when it opens the pool at start, and again on every pool a reload builds (a changed `url`
//! pointing at another SQLite file gets the schema before it serves).
//!
//! Each note stored emits `com.modular.notes.note.created` (`id`, `bytes`) on the event bus.
//!
//! Cached notes live for the cache's `default_ttl`: edit `cache.default_ttl` while the
//! service runs and the notes cached afterwards expire on the new schedule.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use modular_cache::{Cache, CacheExt as _};
use modular_core::http::RouteRegistry;
use modular_core::{
    BoxError, ConfigHandle, DynamicConfig, FieldError, InitContext, Module, ModuleContext,
};
use modular_database::DatabaseService;
use modular_database::sqlx::{self, SqlitePool};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The module's name, and its configuration section.
pub const MODULE_NAME: &str = "notes";

/// The `notes` section.
///
/// ```yaml
/// notes:
///   data_dir: data          # static; relative to the config file's directory
///   max_text_bytes: 10000   # dynamic
///   list_limit: 100         # dynamic
/// ```
///
/// `max_text_bytes` and `list_limit` are read on every request, so a reload applies to the
/// next request. `data_dir` is static: the SQLite file is opened once at start, and moving it
/// would leave the running service on the old file, so a change is refused with "restart
/// required".
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
}

impl Default for NotesConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            max_text_bytes: 10_000,
            list_limit: 100,
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
        FieldError::collect(errors)
    }
}

/// A stored note.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// Its id, from 1.
    pub id: i64,
    /// What was written.
    pub text: String,
    /// When it was stored (RFC 3339, UTC).
    pub created_at: String,
}

/// A `notes` row: id, text, created_at.
type NoteRow = (i64, String, String);

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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNote {
    text: String,
}

/// The notes' schema as sqlx migrations; `main` configures it as the `primary` connection's
/// `migrations`. Absolute, so it does not depend on the working directory.
pub const MIGRATIONS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");

/// The notes module. Depends on `database` and `cache`.
#[derive(Debug, Default)]
pub struct NotesModule;

impl NotesModule {
    /// A module that reads the `notes` section.
    pub fn new() -> Self {
        Self
    }
}

#[modular_core::async_trait]
impl Module for NotesModule {
    fn name(&self) -> &str {
        MODULE_NAME
    }

    fn dependencies(&self) -> Vec<String> {
        vec!["database".to_owned(), "cache".to_owned()]
    }

    /// Checks the default connection is SQLite and contributes the routes.
    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let config = ctx.config::<NotesConfig>()?;
        let db = ctx.services().require::<DatabaseService>()?;
        let cache = ctx.services().require::<dyn Cache>()?;
        let state = Arc::new(Notes {
            db,
            cache,
            config,
            ctx: ctx.context(),
        });
        // Fails the start early when the default connection is not SQLite.
        state.pool()?;

        let routes = RouteRegistry::shared(ctx.services());
        routes.route(
            MODULE_NAME,
            "/notes",
            get(list_notes)
                .post(create_note)
                .with_state(Arc::clone(&state)),
        );
        routes.route(MODULE_NAME, "/notes/{id}", get(read_note).with_state(state));
        tracing::info!(
            module = MODULE_NAME,
            routes = "POST /notes, GET /notes, GET /notes/{id}",
            "notes ready"
        );
        Ok(())
    }
}

/// What the handlers share.
struct Notes {
    db: Arc<DatabaseService>,
    cache: Arc<dyn Cache>,
    config: ConfigHandle<NotesConfig>,
    ctx: ModuleContext,
}

impl Notes {
    /// The default connection's pool, fetched per unit of work: a reload may replace it.
    fn pool(&self) -> Result<SqlitePool, ApiError> {
        let name = self.db.default_name();
        self.db.sqlite(&name).ok_or_else(|| {
            ApiError::Unavailable(format!(
                "the notes need the default database connection `{name}` to be SQLite"
            ))
        })
    }
}

fn cache_key(id: i64) -> String {
    format!("notes:{id}")
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

async fn create_note(State(notes): State<Arc<Notes>>, body: Bytes) -> Result<Response, ApiError> {
    let text = parse_new_note(&body, notes.config.get().max_text_bytes)?;
    let pool = notes.pool()?;
    let (id,): (i64,) = sqlx::query_as("INSERT INTO notes (text) VALUES (?) RETURNING id")
        .bind(&text)
        .fetch_one(&pool)
        .await
        .map_err(ApiError::database)?;
    notes
        .ctx
        .emit("note.created", json!({ "id": id, "bytes": text.len() }));
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn read_note(
    State(notes): State<Arc<Notes>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::BadRequest(format!("note id must be a positive integer, got {id:?}"))
    })?;
    let key = cache_key(id);
    // A cache that fails is a miss: the database still answers.
    match notes.cache.get_json::<Note>(&key).await {
        Ok(Some(note)) => return Ok(with_cache_header(note, "hit")),
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, key, "cache read failed; reading the database"),
    }
    let pool = notes.pool()?;
    let row: Option<NoteRow> =
        sqlx::query_as("SELECT id, text, created_at FROM notes WHERE id = ?")
            .bind(id)
            .fetch_optional(&pool)
            .await
            .map_err(ApiError::database)?;
    let note = row.map(Note::from).ok_or(ApiError::NotFound(id))?;
    // `None`: the cache's `default_ttl`, as configured now.
    if let Err(error) = notes.cache.set_json(&key, &note, None).await {
        tracing::warn!(%error, key, "cache write failed");
    }
    Ok(with_cache_header(note, "miss"))
}

async fn list_notes(State(notes): State<Arc<Notes>>) -> Result<Response, ApiError> {
    let limit = notes.config.get().list_limit;
    let pool = notes.pool()?;
    let rows: Vec<NoteRow> =
        sqlx::query_as("SELECT id, text, created_at FROM notes ORDER BY id DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&pool)
            .await
            .map_err(ApiError::database)?;
    let list: Vec<Note> = rows.into_iter().map(Note::from).collect();
    Ok(Json(json!({ "notes": list })).into_response())
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
        (status, Json(json!({ "error": self.to_string() }))).into_response()
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
