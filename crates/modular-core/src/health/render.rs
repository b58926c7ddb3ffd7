//! HTTP-framework-agnostic renderers of an [`AggregatedHealth`]: the native JSON of
//! `GET /health`, the IETF `application/health+json` format, and the kube-apiserver text of
//! `/readyz`, `/livez` and `/startupz`.
//!
//! Each `render_*` function returns a [`RenderedHealth`] (status code, content type, body) that a
//! router maps onto its response type; the `*_json` functions return the bare JSON value.
//! Every renderer takes `details: bool`, normally [`DetailsPolicy::shows_details`] of the caller's
//! authorization: without details a check shows only its module, component and status.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::types::{AggregatedHealth, HealthReport, HealthStatus, Probe, duration_ms, timestamp};

/// Who sees check messages and details (`health.show_details`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetailsPolicy {
    /// Nobody: every caller sees module, component and status only.
    Never,
    /// Authorized callers (admin token, or a role the auth module grants).
    #[default]
    WhenAuthorized,
    /// Everybody.
    Always,
}

impl DetailsPolicy {
    /// Whether a caller sees messages and details.
    pub const fn shows_details(self, authorized: bool) -> bool {
        match self {
            Self::Never => false,
            Self::WhenAuthorized => authorized,
            Self::Always => true,
        }
    }
}

/// Content type of the native JSON.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Content type of the IETF health check response format.
pub const HEALTH_JSON_CONTENT_TYPE: &str = "application/health+json";
/// Content type of the kube-apiserver text.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// The `Cache-Control` value every health answer carries.
pub const CACHE_CONTROL: &str = "no-store";

/// A rendered answer, ready to be mapped onto any HTTP framework's response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedHealth {
    /// 200, or 503 when the probe fails (404 never comes from here).
    pub status_code: u16,
    /// One of the `*_CONTENT_TYPE` constants.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// One check as native JSON: module, component, status; with details also optional, message,
/// checked_at, observed_since, duration_ms and details.
pub fn report_json(report: &HealthReport, details: bool) -> Value {
    let mut check = Map::new();
    check.insert("module".to_owned(), Value::from(report.module.as_str()));
    check.insert(
        "component".to_owned(),
        Value::from(report.component.as_str()),
    );
    check.insert("status".to_owned(), Value::from(report.status.as_str()));
    if details {
        check.insert("optional".to_owned(), Value::from(report.optional));
        check.insert("message".to_owned(), Value::from(report.message.as_str()));
        check.insert(
            "checked_at".to_owned(),
            Value::from(timestamp::format(&report.checked_at)),
        );
        check.insert(
            "observed_since".to_owned(),
            Value::from(timestamp::format(&report.observed_since)),
        );
        check.insert(
            "duration_ms".to_owned(),
            Value::from(duration_ms::millis(report.duration)),
        );
        check.insert("details".to_owned(), Value::Object(report.details.clone()));
    }
    Value::Object(check)
}

/// The native JSON of `GET /health`, `/health/ready` and `/health/live`: `status`, `readiness`,
/// `liveness`, `startup`, `config_version`, `generated_at` and `checks`.
pub fn native_json(health: &AggregatedHealth, details: bool) -> Value {
    json!({
        "status": health.health.as_str(),
        "readiness": health.readiness.as_str(),
        "liveness": health.liveness.as_str(),
        "startup": health.startup.as_str(),
        "config_version": health.config_version,
        "generated_at": timestamp::format(&health.generated_at),
        "checks": health.reports.iter().map(|r| report_json(r, details)).collect::<Vec<_>>(),
    })
}

/// The native answer for `probe`: the same body for every probe, the status code from the probe.
pub fn render_native(health: &AggregatedHealth, probe: Probe, details: bool) -> RenderedHealth {
    RenderedHealth {
        status_code: health.status_code(probe),
        content_type: JSON_CONTENT_TYPE,
        body: native_json(health, details).to_string(),
    }
}

/// One module's reports (`GET /health/checks/{module}`): `module`, `status` (worst of its
/// reports) and `checks`; `None` when the module has no report.
pub fn module_json(health: &AggregatedHealth, module: &str, details: bool) -> Option<Value> {
    let (status, checks) = module_checks(health, module, details)?;
    Some(json!({ "module": module, "status": status.as_str(), "checks": checks }))
}

/// One module's answer, with the status code from its worst report; `None` (a 404) when the
/// module has no report.
pub fn render_module(
    health: &AggregatedHealth,
    module: &str,
    details: bool,
) -> Option<RenderedHealth> {
    let (status, checks) = module_checks(health, module, details)?;
    Some(RenderedHealth {
        status_code: status.http_status_code(),
        content_type: JSON_CONTENT_TYPE,
        body: json!({ "module": module, "status": status.as_str(), "checks": checks }).to_string(),
    })
}

fn module_checks(
    health: &AggregatedHealth,
    module: &str,
    details: bool,
) -> Option<(HealthStatus, Vec<Value>)> {
    let reports: Vec<&HealthReport> = health.module_reports(module).collect();
    if reports.is_empty() {
        return None;
    }
    let status = HealthStatus::fold(reports.iter().map(|r| r.status));
    Some((
        status,
        reports
            .into_iter()
            .map(|r| report_json(r, details))
            .collect(),
    ))
}

/// The IETF health check response (draft-inadarei-api-health-check): `status` (`pass`, `warn`,
/// `fail`, from `probe`) and `checks` keyed `module:component`, each an array of one object with
/// `componentId` and `status`; with details also `time`, `observedValue`/`observedUnit` (the
/// check's duration in ms), `output` (the message, when not passing) and `details`.
pub fn ietf_json(health: &AggregatedHealth, probe: Probe, details: bool) -> Value {
    let mut checks = Map::new();
    for report in &health.reports {
        let mut check = Map::new();
        check.insert(
            "componentId".to_owned(),
            Value::from(report.component.as_str()),
        );
        check.insert(
            "status".to_owned(),
            Value::from(report.status.ietf_status()),
        );
        if details {
            check.insert(
                "time".to_owned(),
                Value::from(timestamp::format(&report.checked_at)),
            );
            check.insert(
                "observedValue".to_owned(),
                Value::from(duration_ms::millis(report.duration)),
            );
            check.insert("observedUnit".to_owned(), Value::from("ms"));
            if report.status != HealthStatus::Healthy && !report.message.is_empty() {
                check.insert("output".to_owned(), Value::from(report.message.as_str()));
            }
            if !report.details.is_empty() {
                check.insert("details".to_owned(), Value::Object(report.details.clone()));
            }
        }
        let entry = checks
            .entry(report.key())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::Object(check));
        }
    }
    json!({ "status": health.status(probe).ietf_status(), "checks": checks })
}

/// The IETF answer for `probe`.
pub fn render_ietf(health: &AggregatedHealth, probe: Probe, details: bool) -> RenderedHealth {
    RenderedHealth {
        status_code: health.status_code(probe),
        content_type: HEALTH_JSON_CONTENT_TYPE,
        body: ietf_json(health, probe, details).to_string(),
    }
}

/// Whether an `Accept` header asks for `application/health+json` (with a non-zero quality).
pub fn accepts_health_json(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        media.eq_ignore_ascii_case(HEALTH_JSON_CONTENT_TYPE)
            && !parts.any(|param| {
                let param = param.trim();
                param
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            })
    })
}

/// The query of a kube-apiserver style probe: `?verbose` and `?exclude=name` (repeatable).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeQuery {
    /// List every check, not just `ok`, when the probe passes.
    pub verbose: bool,
    /// Check names to skip: `module:component`, a module name (all its components), or one of
    /// the built-in `shutdown` / `started` checks.
    pub exclude: Vec<String>,
}

impl KubeQuery {
    /// Parses a raw query string (without the `?`), percent-decoding values.
    pub fn parse(query: &str) -> Self {
        let mut parsed = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match percent_decode(key).as_str() {
                "verbose" => parsed.verbose = !matches!(value, "false" | "0"),
                "exclude" if !value.is_empty() => parsed.exclude.push(percent_decode(value)),
                _ => {}
            }
        }
        parsed
    }

    /// Turns verbose output on.
    #[must_use]
    pub fn verbose(mut self) -> Self {
        self.verbose = true;
        self
    }

    /// Excludes a check.
    #[must_use]
    pub fn excluding(mut self, name: impl Into<String>) -> Self {
        self.exclude.push(name.into());
        self
    }
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    (Some(high), Some(low)) => {
                        // Two hex digits: at most 0xFF, so the cast is lossless.
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The kube-apiserver text for `probe` (`/readyz`, `/livez`, `/startupz`; [`Probe::Health`]
/// lists every check).
///
/// Passing and not verbose: `ok`. Otherwise one line per check, `[+]name ok` or
/// `[-]name failed: reason` (`reason withheld` without details), excluded checks as
/// `[+]name excluded: ok`, then `readyz check passed` or `readyz check failed`; a failure is
/// always listed in full, as kube-apiserver does. Readiness starts with the built-in `shutdown`
/// check and startup with `started`. Excluded checks do not count toward the status code.
pub fn render_kube(
    health: &AggregatedHealth,
    probe: Probe,
    query: &KubeQuery,
    details: bool,
) -> RenderedHealth {
    let mut lines = String::new();
    let mut failed = false;
    let mut matched = vec![false; query.exclude.len()];
    let mut excluded = |names: &[&str]| {
        let mut any = false;
        for (i, pattern) in query.exclude.iter().enumerate() {
            if names.contains(&pattern.as_str()) {
                matched[i] = true;
                any = true;
            }
        }
        any
    };
    let builtin = match probe {
        Probe::Readiness => Some((
            "shutdown",
            !health.shutting_down,
            "application is shutting down",
        )),
        Probe::Startup => Some(("started", health.started, "application has not started")),
        Probe::Health | Probe::Liveness => None,
    };
    if let Some((name, passing, reason)) = builtin {
        if excluded(&[name]) {
            lines.push_str(&format!("[+]{name} excluded: ok\n"));
        } else if passing {
            lines.push_str(&format!("[+]{name} ok\n"));
        } else {
            failed = true;
            let reason = if details { reason } else { "reason withheld" };
            lines.push_str(&format!("[-]{name} failed: {reason}\n"));
        }
    }
    for report in health.reports.iter().filter(|r| r.probes.includes(probe)) {
        let key = report.key();
        if excluded(&[key.as_str(), report.module.as_str()]) {
            lines.push_str(&format!("[+]{key} excluded: ok\n"));
        } else if report.fails(probe) {
            failed = true;
            let reason = match (details, report.message.is_empty()) {
                (false, _) => "reason withheld",
                (true, true) => report.status.as_str(),
                (true, false) => report.message.as_str(),
            };
            lines.push_str(&format!("[-]{key} failed: {reason}\n"));
        } else {
            let note = match (report.status, report.optional) {
                (HealthStatus::Healthy, _) => String::new(),
                (status, true) => format!(" (optional, {status})"),
                (status, false) => format!(" ({status})"),
            };
            lines.push_str(&format!("[+]{key} ok{note}\n"));
        }
    }
    let unmatched: Vec<String> = query
        .exclude
        .iter()
        .zip(&matched)
        .filter(|(_, hit)| !**hit)
        .map(|(name, _)| format!("{name:?}"))
        .collect();
    if !unmatched.is_empty() {
        lines.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            unmatched.join(",")
        ));
    }
    let name = probe.kube_name();
    let (status_code, body) = if failed {
        (503, format!("{lines}{name} check failed\n"))
    } else if query.verbose {
        (200, format!("{lines}{name} check passed\n"))
    } else {
        (200, "ok".to_owned())
    };
    RenderedHealth {
        status_code,
        content_type: TEXT_CONTENT_TYPE,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_policy_decides_by_authorization() {
        assert!(!DetailsPolicy::Never.shows_details(true));
        assert!(DetailsPolicy::WhenAuthorized.shows_details(true));
        assert!(!DetailsPolicy::WhenAuthorized.shows_details(false));
        assert!(DetailsPolicy::Always.shows_details(false));
    }

    #[test]
    fn kube_query_reads_verbose_and_repeated_decoded_excludes() {
        let query = KubeQuery::parse("verbose&exclude=db%3Aprimary&exclude=cache&other=1");
        assert!(query.verbose);
        assert_eq!(query.exclude, ["db:primary", "cache"]);
        assert_eq!(KubeQuery::parse(""), KubeQuery::default());
        assert_eq!(KubeQuery::parse("exclude=a%2").exclude, ["a%2"]);
    }

    #[test]
    fn accept_negotiation_finds_health_json_unless_refused() {
        assert!(accepts_health_json("application/health+json"));
        assert!(accepts_health_json(
            "text/html, application/Health+JSON;q=0.9"
        ));
        assert!(!accepts_health_json("application/health+json;q=0"));
        assert!(!accepts_health_json("application/json"));
    }
}
