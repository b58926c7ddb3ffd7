//! Remote `$ref`: documents on allow-listed hosts are fetched before the set is compiled
//! (compiling stays synchronous and never touches the network); every other remote `$ref`
//! is refused when the set compiles.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::error::JsonSchemaError;
use crate::loader::{self, SchemaFile};

/// The most remote documents one set may pull in (a guard against a reference loop across
/// ever new URLs).
const MAX_DOCUMENTS: usize = 64;

/// `text` with the user info of every URL in it (`https://user:pass@host`) replaced by
/// `[REDACTED]`: a `$ref` may carry credentials, and errors, events and logs must not.
pub(crate) fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str(modular_core::config::REDACTED);
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The `host[:port]` of an `http(s)://` URI.
pub(crate) fn host_of(uri: &str) -> Option<String> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether `host` (`name` or `name:port`) is allowed: listed as it is, or listed by name
/// without a port.
pub(crate) fn allowed(host: &str, allowed_hosts: &[String]) -> bool {
    let name = host.split(':').next().unwrap_or(host);
    allowed_hosts
        .iter()
        .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(name))
}

/// Every remote document the set's `$ref`s reach on allowed hosts (and the ones those
/// reach), by URL without fragment.
pub(crate) async fn prefetch(
    files: &[SchemaFile],
    allowed_hosts: &[String],
    timeout: Duration,
) -> Result<BTreeMap<String, Value>, JsonSchemaError> {
    let mut fetched = BTreeMap::new();
    if allowed_hosts.is_empty() {
        return Ok(fetched);
    }
    let mut queue: VecDeque<(String, usize)> = VecDeque::new();
    for (index, file) in files.iter().enumerate() {
        for url in remote_refs(&file.document) {
            queue.push_back((url, index));
        }
    }
    if queue.is_empty() {
        return Ok(fetched);
    }
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| compile_error(&files[0], format!("cannot build the HTTP client: {e}")))?;
    while let Some((url, origin)) = queue.pop_front() {
        if fetched.contains_key(&url) {
            continue;
        }
        let Some(host) = host_of(&url) else { continue };
        if !allowed(&host, allowed_hosts) {
            continue;
        }
        if fetched.len() >= MAX_DOCUMENTS {
            return Err(compile_error(
                &files[origin],
                format!("more than {MAX_DOCUMENTS} remote documents referenced"),
            ));
        }
        let document = fetch(&client, &url)
            .await
            .map_err(|e| compile_error(&files[origin], format!("cannot fetch $ref {url}: {e}")))?;
        for next in remote_refs(&document) {
            queue.push_back((next, origin));
        }
        fetched.insert(url, document);
    }
    Ok(fetched)
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    let text = response.text().await.map_err(|e| e.to_string())?;
    let path = url.split(['?', '#']).next().unwrap_or(url);
    loader::parse_document(Path::new(path), &text)
}

fn compile_error(file: &SchemaFile, message: String) -> JsonSchemaError {
    JsonSchemaError::Compile {
        path: file.path.clone(),
        file: file.file.display().to_string(),
        message: redact_userinfo(&message),
    }
}

/// The absolute `http(s)://` URLs (without fragment) of every `$ref` in `document`.
fn remote_refs(document: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![document];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref")
                    && host_of(reference).is_some()
                {
                    let url = reference.split('#').next().unwrap_or(reference);
                    found.push(url.to_owned());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::{allowed, host_of, redact_userinfo};

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_userinfo("cannot fetch https://ada:hunter2@h.example:8/a.json#/x: boom"),
            "cannot fetch https://[REDACTED]@h.example:8/a.json#/x: boom"
        );
        assert_eq!(
            redact_userinfo("file:///a/b.json and http://h/x"),
            "file:///a/b.json and http://h/x"
        );
    }

    #[test]
    fn a_host_is_allowed_by_name_or_by_name_and_port() {
        assert_eq!(
            host_of("https://u:p@Schemas.Example.com:8443/a.json#/x").as_deref(),
            Some("schemas.example.com:8443")
        );
        assert!(allowed(
            "schemas.example.com:8443",
            &["schemas.example.com".to_owned()]
        ));
        assert!(allowed("127.0.0.1:9", &["127.0.0.1:9".to_owned()]));
        assert!(!allowed("127.0.0.1:9", &["127.0.0.1:10".to_owned()]));
        assert!(!allowed("evil.example.com", &["example.com".to_owned()]));
        assert_eq!(host_of("file:///a.json"), None);
    }
}
