//! [`HttpClientError`]: what the httpclient module reports.

use std::error::Error as _;
use std::fmt::Write as _;

use modular_core::FieldError;
use reqwest::Method;

/// Everything that can go wrong building the client or sending a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpClientError {
    /// The configuration is invalid (only raised where no reload pipeline validated it first,
    /// as with [`HttpClient::new`](crate::HttpClient::new)).
    #[error("invalid httpclient configuration: {}", list(errors))]
    InvalidConfig {
        /// Every problem, with its path relative to the section.
        errors: Vec<FieldError>,
    },
    /// The configuration could not be turned into a client (validation catches almost every
    /// case first; this is what is left, such as a TLS backend that fails to start).
    #[error("could not build the http client: {}", chain(source))]
    Build {
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// A setting names an invalid header.
    #[error("invalid header `{name}` in {field}: {reason}")]
    InvalidHeader {
        /// The config field (`default_headers`, `user_agent`, `verbose.redact_headers`).
        field: &'static str,
        /// The header name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A TLS file (`tls.ca_files`, `tls.client_cert_file`, `tls.client_key_file`) could not be
    /// read or holds no usable certificate or key. The message names the file, never its
    /// contents.
    #[error("cannot use {field} `{}`: {reason}", path.display())]
    TlsFile {
        /// The config field, relative to the section (`tls.ca_files.0`).
        field: String,
        /// The file.
        path: std::path::PathBuf,
        /// Why it is unusable.
        reason: String,
    },
    /// The request named a URL that cannot be used: a relative one on a client without
    /// `base_url`, or one that does not parse.
    #[error("invalid request url: {reason}")]
    InvalidUrl {
        /// Why (the URL itself is not repeated: it may carry a token).
        reason: String,
    },
    /// The named client was removed by a reload after this handle was taken.
    #[error("no http client is named `{name}` (removed from `httpclient.clients` by a reload)")]
    UnknownClient {
        /// The name.
        name: String,
    },
    /// The request could not be built (an invalid URL, a body that failed to serialize).
    #[error("invalid request: {}", chain(source))]
    InvalidRequest {
        /// What reqwest reported.
        #[source]
        source: reqwest::Error,
    },
    /// Sending failed, after every retry the policy allowed.
    #[error("{method} {url} failed after {attempts} attempt{}: {}", plural(*attempts), chain(source))]
    Request {
        /// The request method.
        method: Method,
        /// The request URL, without its userinfo (user name and password).
        url: String,
        /// Attempts made (1 when the request was not retried).
        attempts: u32,
        /// The last attempt's error.
        #[source]
        source: reqwest::Error,
    },
    /// A reload hook was called without the `httpclient` section.
    #[error("reload of `{module}` carried no httpclient configuration")]
    MissingSection {
        /// The module being reloaded.
        module: String,
    },
}

impl HttpClientError {
    /// Whether the request failed because a timeout passed (request, connect or body read).
    pub fn is_timeout(&self) -> bool {
        self.reqwest().is_some_and(reqwest::Error::is_timeout)
    }

    /// Whether the request failed because no connection could be made.
    pub fn is_connect(&self) -> bool {
        self.reqwest().is_some_and(reqwest::Error::is_connect)
    }

    /// The underlying reqwest error, when there is one.
    pub fn reqwest(&self) -> Option<&reqwest::Error> {
        match self {
            Self::Build { source }
            | Self::InvalidRequest { source }
            | Self::Request { source, .. } => Some(source),
            Self::InvalidConfig { .. }
            | Self::InvalidHeader { .. }
            | Self::TlsFile { .. }
            | Self::InvalidUrl { .. }
            | Self::UnknownClient { .. }
            | Self::MissingSection { .. } => None,
        }
    }
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// An error and its sources, `outer: inner: innermost`.
///
/// reqwest's own messages are terse ("error sending request"); the cause that tells a user what
/// happened ("connection refused", "operation timed out") sits further down the chain.
pub(crate) fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and reqwest sometimes repeat their source's message in their own.
        if !text.ends_with(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}
