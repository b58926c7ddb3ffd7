//! The security headers middleware: adds `router.security_headers`' headers to every answer
//! that does not already carry them.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, header};

use crate::config::{FrameOptions, SecurityHeadersConfig};
use crate::error::RouterError;

/// The headers to add, computed once per build.
pub(crate) type Headers = Arc<[(HeaderName, HeaderValue)]>;

/// The headers `config` asks for (none when disabled).
pub(crate) fn headers(config: &SecurityHeadersConfig) -> Result<Headers, RouterError> {
    let mut headers = Vec::new();
    if !config.enabled {
        return Ok(headers.into());
    }
    headers.push((
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ));
    match config.frame_options {
        FrameOptions::Deny => {
            headers.push((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")));
        }
        FrameOptions::Sameorigin => headers.push((
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        )),
        FrameOptions::Off => {}
    }
    let invalid = |path: &str, e: http::header::InvalidHeaderValue| RouterError::InvalidValue {
        path: format!("security_headers.{path}"),
        message: e.to_string(),
    };
    if !config.referrer_policy.is_empty() {
        let value = HeaderValue::from_str(&config.referrer_policy)
            .map_err(|e| invalid("referrer_policy", e))?;
        headers.push((header::REFERRER_POLICY, value));
    }
    if let Some(hsts) = config.hsts.header_value() {
        let value = HeaderValue::from_str(&hsts).map_err(|e| invalid("hsts", e))?;
        headers.push((header::STRICT_TRANSPORT_SECURITY, value));
    }
    Ok(headers.into())
}

/// Adds the headers `target` lacks (the answer's layer,
/// [`AnswerLayer`](crate::route_metrics::AnswerLayer), calls this).
pub(crate) fn add_to(headers: &Headers, target: &mut http::HeaderMap) {
    for (name, value) in headers.iter() {
        if !target.contains_key(name) {
            target.insert(name.clone(), value.clone());
        }
    }
}
