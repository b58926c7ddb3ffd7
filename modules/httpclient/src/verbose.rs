//! Verbose request and response logging with header redaction and body truncation.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use reqwest::header::{
    AUTHORIZATION, COOKIE, HeaderMap, HeaderName, PROXY_AUTHORIZATION, SET_COOKIE,
};
use reqwest::{Method, Request, Response, ResponseBuilderExt as _, Url};

use crate::config::VerboseConfig;
use crate::error::HttpClientError;

/// The `tracing` target of every verbose log event.
pub const VERBOSE_TARGET: &str = "modular_httpclient::verbose";

/// What replaces a redacted header value (the same marker as every other redaction).
pub use modular_core::config::REDACTED;

/// Headers whose values are never logged, whatever the configuration says.
const ALWAYS_REDACTED: [HeaderName; 4] = [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE, SET_COOKIE];

/// The logging half of one client snapshot, prepared once per (re)build.
#[derive(Clone, Debug)]
pub(crate) struct Verbose {
    pub(crate) enabled: bool,
    redact: Vec<HeaderName>,
    max_body_bytes: usize,
}

impl Verbose {
    pub(crate) fn new(config: &VerboseConfig) -> Result<Self, HttpClientError> {
        let mut redact = ALWAYS_REDACTED.to_vec();
        for name in &config.redact_headers {
            let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|error| {
                HttpClientError::InvalidHeader {
                    field: "verbose.redact_headers",
                    name: name.clone(),
                    reason: error.to_string(),
                }
            })?;
            if !redact.contains(&parsed) {
                redact.push(parsed);
            }
        }
        Ok(Self {
            enabled: config.enabled,
            redact,
            max_body_bytes: config.max_body_bytes,
        })
    }

    fn headers<'a>(
        &'a self,
        own: &'a HeaderMap,
        defaults: Option<&'a HeaderMap>,
    ) -> ShownHeaders<'a> {
        ShownHeaders {
            own,
            defaults,
            redact: &self.redact,
        }
    }

    /// Logs a request about to be sent: its own headers plus the client's defaults that it does
    /// not override (the ones that will go on the wire), redacted, and its body prefix.
    pub(crate) fn log_request(&self, request: &Request, defaults: &HeaderMap, attempt: u32) {
        let body = match request.body() {
            None => BodyShown::None,
            Some(body) => match body.as_bytes() {
                Some(bytes) => BodyShown::Bytes {
                    bytes,
                    total: bytes.len() as u64,
                    limit: self.max_body_bytes,
                },
                None => BodyShown::Streaming,
            },
        };
        tracing::info!(
            target: VERBOSE_TARGET,
            method = %request.method(),
            url = %display_url(request.url()),
            attempt,
            headers = %self.headers(request.headers(), Some(defaults)),
            body = %body,
            "http request"
        );
    }

    /// Logs a response's head now and its body prefix once the body has been read or dropped;
    /// the body is passed through as it streams, never buffered.
    pub(crate) fn log_response(
        &self,
        method: &Method,
        response: Response,
        elapsed: Duration,
        attempt: u32,
    ) -> Response {
        let url = display_url(response.url());
        tracing::info!(
            target: VERBOSE_TARGET,
            method = %method,
            url = %url,
            attempt,
            status = response.status().as_u16(),
            version = ?response.version(),
            elapsed_ms = elapsed.as_millis() as u64,
            headers = %self.headers(response.headers(), None),
            "http response"
        );
        if self.max_body_bytes == 0 {
            return response;
        }
        let original_url = response.url().clone();
        let status = response.status().as_u16();
        let (mut parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
        // The URL lives beside the parts in a reqwest response; carry it over so
        // `Response::url` still answers the real one.
        if let Ok(carrier) = http::Response::builder().url(original_url).body(()) {
            parts.extensions.extend(carrier.into_parts().0.extensions);
        }
        let logged = LoggedBody {
            inner: body,
            method: method.clone(),
            url,
            status,
            limit: self.max_body_bytes,
            prefix: Vec::new(),
            total: 0,
            ended: false,
            failed: false,
        };
        Response::from(http::Response::from_parts(
            parts,
            reqwest::Body::wrap(logged),
        ))
    }
}

/// A URL as it may be logged or put in an error: without its userinfo (user name and
/// password), and with every query value replaced by `[REDACTED]` (the keys stay, so
/// `?page=[REDACTED]&token=[REDACTED]` still says which parameters were sent; a token in a
/// query string is common and must never reach a log line).
pub fn display_url(url: &Url) -> String {
    let plain = url.username().is_empty() && url.password().is_none() && url.query().is_none();
    if plain {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Only URLs that cannot have userinfo refuse these, and this one has some.
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    if let Some(query) = url.query() {
        shown.set_query(Some(&modular_core::config::redact_query(query)));
    }
    shown.to_string()
}

/// A URL as it may appear in an event or a health report: scheme, host, port and path only,
/// without userinfo, query (which often carries tokens) or fragment.
pub fn event_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Headers as `{name: value, ...}` with redacted values replaced.
struct ShownHeaders<'a> {
    own: &'a HeaderMap,
    defaults: Option<&'a HeaderMap>,
    redact: &'a [HeaderName],
}

impl fmt::Display for ShownHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let defaults = self
            .defaults
            .into_iter()
            .flat_map(HeaderMap::iter)
            .filter(|(name, _)| !self.own.contains_key(*name));
        let mut first = true;
        f.write_str("{")?;
        for (name, value) in self.own.iter().chain(defaults) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            let shown = if self.redact.contains(name) {
                REDACTED
            } else {
                value.to_str().unwrap_or("<non-ascii value>")
            };
            write!(f, "{name}: {shown}")?;
        }
        f.write_str("}")
    }
}

/// A body as it may be logged: its first bytes as text, or a note of what it is.
enum BodyShown<'a> {
    None,
    Streaming,
    Bytes {
        bytes: &'a [u8],
        total: u64,
        limit: usize,
    },
}

impl fmt::Display for BodyShown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::None => f.write_str("<none>"),
            Self::Streaming => f.write_str("<streaming body, not logged>"),
            Self::Bytes {
                total, limit: 0, ..
            } => write!(f, "<{total} bytes, not logged>"),
            Self::Bytes {
                bytes,
                total,
                limit,
            } => {
                let cut = &bytes[..bytes.len().min(limit)];
                let text = match std::str::from_utf8(cut) {
                    Ok(text) => text,
                    // The cut split a character: show what comes before it.
                    Err(error) if error.error_len().is_none() => {
                        std::str::from_utf8(&cut[..error.valid_up_to()]).unwrap_or_default()
                    }
                    Err(_) => return write!(f, "<{total} bytes of binary data>"),
                };
                f.write_str(text)?;
                let shown = text.len() as u64;
                if shown < total {
                    write!(f, "... ({} more bytes)", total - shown)?;
                }
                Ok(())
            }
        }
    }
}

/// A response body that keeps its first bytes and logs them once read or dropped.
struct LoggedBody {
    inner: reqwest::Body,
    method: Method,
    url: String,
    status: u16,
    limit: usize,
    prefix: Vec<u8>,
    total: u64,
    ended: bool,
    failed: bool,
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.total += data.len() as u64;
                    let room = this.limit.saturating_sub(this.prefix.len());
                    this.prefix.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Poll::Ready(Some(Err(_))) => this.failed = true,
            Poll::Ready(None) => this.ended = true,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let read = if self.failed {
            "failed"
        } else if self.ended || self.inner.is_end_stream() {
            "complete"
        } else {
            "not read to the end"
        };
        let body = BodyShown::Bytes {
            bytes: &self.prefix,
            total: self.total,
            limit: self.limit,
        };
        tracing::info!(
            target: VERBOSE_TARGET,
            method = %self.method,
            url = %self.url,
            status = self.status,
            bytes = self.total,
            read = %read,
            body = %body,
            "http response body"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn verbose(extra: &[&str], limit: usize) -> Verbose {
        Verbose::new(&VerboseConfig {
            enabled: true,
            redact_headers: extra.iter().map(|s| (*s).to_owned()).collect(),
            max_body_bytes: limit,
        })
        .unwrap()
    }

    #[test]
    fn sensitive_and_configured_headers_are_redacted() {
        let v = verbose(&["X-Api-Key"], 16);
        let mut own = HeaderMap::new();
        own.insert(AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        own.insert("x-api-key", HeaderValue::from_static("k-123"));
        own.insert("accept", HeaderValue::from_static("text/plain"));
        let mut defaults = HeaderMap::new();
        defaults.insert(COOKIE, HeaderValue::from_static("session=abc"));
        defaults.insert("accept", HeaderValue::from_static("overridden"));
        let shown = v.headers(&own, Some(&defaults)).to_string();
        assert_eq!(
            shown,
            "{authorization: [REDACTED], x-api-key: [REDACTED], accept: text/plain, cookie: [REDACTED]}"
        );
    }

    #[test]
    fn bodies_are_cut_at_the_limit_and_on_a_character_boundary() {
        let show = |bytes: &[u8], limit| {
            BodyShown::Bytes {
                bytes,
                total: bytes.len() as u64,
                limit,
            }
            .to_string()
        };
        assert_eq!(show(b"hello", 16), "hello");
        assert_eq!(show(b"hello world", 5), "hello... (6 more bytes)");
        // "é" is two bytes; a cut after its first byte drops it whole.
        assert_eq!(show("abé".as_bytes(), 3), "ab... (2 more bytes)");
        assert_eq!(show(&[0xff, 0xfe, 0x00], 16), "<3 bytes of binary data>");
        assert_eq!(show(b"secret", 0), "<6 bytes, not logged>");
    }

    #[test]
    fn passwords_never_reach_the_log() {
        let url = Url::parse("http://user:hunter2@example.com/path?q=1").unwrap();
        assert_eq!(display_url(&url), "http://example.com/path?q=[REDACTED]");
        let tokens = Url::parse("http://example.com/p?token=s3cr3t&flag&page=2").unwrap();
        assert_eq!(
            display_url(&tokens),
            "http://example.com/p?token=[REDACTED]&flag&page=[REDACTED]"
        );
        let user_only = Url::parse("http://token-as-user@example.com/").unwrap();
        assert_eq!(display_url(&user_only), "http://example.com/");
        let plain = Url::parse("http://example.com/").unwrap();
        assert_eq!(display_url(&plain), "http://example.com/");
    }

    #[test]
    fn event_urls_keep_the_path_only() {
        let url =
            Url::parse("https://user:hunter2@example.com:8443/health?token=t0k#frag").unwrap();
        assert_eq!(event_url(&url), "https://example.com:8443/health");
        let plain = Url::parse("http://example.com/a/b").unwrap();
        assert_eq!(event_url(&plain), "http://example.com/a/b");
    }
}
