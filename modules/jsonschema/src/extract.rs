//! [`ValidatedJson`]: an axum extractor that checks a request body against a named schema
//! before deserializing it, and [`SchemaRejection`], its stable error answers.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::schemas::{JsonSchemas, SchemaError};

/// The schema a request body type is checked against, by name (a key of
/// `jsonschema.schemas.files`, or a file name in `jsonschema.schemas.dir`).
///
/// ```
/// # use modular_jsonschema::SchemaName;
/// #[derive(serde::Deserialize)]
/// struct Note { title: String }
///
/// impl SchemaName for Note {
///     const SCHEMA: &'static str = "note";
/// }
/// ```
pub trait SchemaName {
    /// The schema's name.
    const SCHEMA: &'static str;
}

/// A JSON request body valid against `T`'s schema ([`SchemaName`]), deserialized as `T`.
///
/// The schema set comes from the handler's state (`JsonSchemas: FromRef<S>`): give the route
/// the service with `with_state`, or hold it in your own state type with a `FromRef` impl.
///
/// ```
/// use axum::routing::post;
/// use modular_jsonschema::{JsonSchemas, SchemaName, ValidatedJson};
///
/// #[derive(serde::Deserialize)]
/// struct Note { title: String }
/// impl SchemaName for Note { const SCHEMA: &'static str = "note"; }
///
/// async fn create(ValidatedJson(note): ValidatedJson<Note>) -> String {
///     note.title
/// }
///
/// fn route(schemas: JsonSchemas) -> axum::routing::MethodRouter {
///     post(create).with_state(schemas)
/// }
/// ```
///
/// Answers (the body is JSON, or `application/problem+json` (RFC 9457) when the request's
/// `Accept` names it), each with `error` (or `detail`) saying why:
///
/// | status | when |
/// |---|---|
/// | 415 | the `Content-Type` is not JSON (`application/json` or `*/*+json`) |
/// | 400 | the body is not JSON |
/// | 422 | the body violates the schema: `schema` and `errors`, each with `instance_path` (a JSON pointer), `schema_path` and `message`; or it is valid but does not deserialize as `T` |
/// | 500 | no schema of that name is loaded |
#[derive(Clone, Debug)]
pub struct ValidatedJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidatedJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + SchemaName,
    JsonSchemas: FromRef<S>,
{
    type Rejection = SchemaRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let problem = wants_problem(req.headers());
        let reject = |kind: RejectionKind| SchemaRejection { kind, problem };
        if !is_json(req.headers()) {
            return Err(reject(RejectionKind::UnsupportedMediaType));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| reject(RejectionKind::Body(e.status(), e.body_text())))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| reject(RejectionKind::NotJson(e.to_string())))?;
        let schemas = JsonSchemas::from_ref(state);
        let Some(schema) = schemas.get(T::SCHEMA) else {
            return Err(reject(RejectionKind::UnknownSchema(T::SCHEMA)));
        };
        schema.validate(&value).map_err(|errors| {
            reject(RejectionKind::Invalid {
                schema: T::SCHEMA,
                errors,
            })
        })?;
        serde_json::from_value(value)
            .map(ValidatedJson)
            .map_err(|e| reject(RejectionKind::Mismatch(T::SCHEMA, e.to_string())))
    }
}

/// Why [`ValidatedJson`] refused a request; renders the answer documented there.
#[derive(Debug)]
pub struct SchemaRejection {
    kind: RejectionKind,
    problem: bool,
}

#[derive(Debug)]
enum RejectionKind {
    UnsupportedMediaType,
    Body(StatusCode, String),
    NotJson(String),
    UnknownSchema(&'static str),
    Invalid {
        schema: &'static str,
        errors: Vec<SchemaError>,
    },
    Mismatch(&'static str, String),
}

impl SchemaRejection {
    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        match &self.kind {
            RejectionKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RejectionKind::Body(status, _) => *status,
            RejectionKind::NotJson(_) => StatusCode::BAD_REQUEST,
            RejectionKind::UnknownSchema(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RejectionKind::Invalid { .. } | RejectionKind::Mismatch(..) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
        }
    }

    /// The schema violations, when the body violated its schema.
    pub fn errors(&self) -> &[SchemaError] {
        match &self.kind {
            RejectionKind::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }

    fn message(&self) -> String {
        match &self.kind {
            RejectionKind::UnsupportedMediaType => {
                "expected a request body with Content-Type: application/json".to_owned()
            }
            RejectionKind::Body(_, text) => text.clone(),
            RejectionKind::NotJson(e) => format!("request body is not valid JSON: {e}"),
            RejectionKind::UnknownSchema(name) => format!("no schema named \"{name}\" is loaded"),
            RejectionKind::Invalid { schema, .. } => {
                format!("request body does not match schema \"{schema}\"")
            }
            RejectionKind::Mismatch(schema, e) => {
                format!("request body matches schema \"{schema}\" but not the handler's type: {e}")
            }
        }
    }

    fn schema(&self) -> Option<&'static str> {
        match &self.kind {
            RejectionKind::Invalid { schema, .. } | RejectionKind::Mismatch(schema, _) => {
                Some(schema)
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for SchemaRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for SchemaRejection {}

impl IntoResponse for SchemaRejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = if self.problem {
            json!({
                "type": "about:blank",
                "title": status.canonical_reason().unwrap_or("error"),
                "status": status.as_u16(),
                "detail": self.message(),
            })
        } else {
            json!({ "error": self.message() })
        };
        if let Some(schema) = self.schema() {
            body["schema"] = json!(schema);
        }
        if let RejectionKind::Invalid { errors, .. } = &self.kind {
            body["errors"] = json!(errors);
        }
        let content_type = if self.problem {
            "application/problem+json"
        } else {
            "application/json"
        };
        let mut response = (status, body.to_string()).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn wants_problem(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/problem+json"))
        })
}
