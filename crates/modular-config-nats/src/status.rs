//! [`InstanceStatus`]: what each instance writes to `_fleet.<service>.<instance>`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One instance's latest outcome: the ACK (`status: "ack"`) or NACK (`"nack"`, with the
/// error) of the last remote-triggered reload, or of the version it started on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// The instance id (`fleet.instance_id`).
    pub instance: String,
    /// The service (the key prefix).
    pub service: String,
    /// The KV revision the outcome is about.
    pub revision: Option<String>,
    /// The instance's running config version after it.
    pub version: u64,
    /// `ack` or `nack`.
    pub status: String,
    /// The reload's status (`applied`, `noop`, `rejected`, `failed`, …; `initial` at start).
    pub reload: String,
    /// Why it was not applied (paths and messages; secrets redacted as in reload outcomes).
    pub error: Option<String>,
    /// When the outcome happened.
    pub time: chrono::DateTime<chrono::Utc>,
    /// When the instance last rewrote this key (its heartbeat).
    pub heartbeat: chrono::DateTime<chrono::Utc>,
}

impl InstanceStatus {
    pub(crate) fn new(
        instance: &str,
        service: &str,
        revision: Option<String>,
        version: u64,
        status: &str,
        reload: &str,
        error: Option<String>,
    ) -> Self {
        let now = chrono::Utc::now();
        Self {
            instance: instance.to_owned(),
            service: service.to_owned(),
            revision,
            version,
            status: status.to_owned(),
            reload: reload.to_owned(),
            error,
            time: now,
            heartbeat: now,
        }
    }
}

/// Whether `status` was rewritten within `ttl` of `now`.
pub(crate) fn is_fresh(
    status: &InstanceStatus,
    now: chrono::DateTime<chrono::Utc>,
    ttl: Duration,
) -> bool {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    now.signed_duration_since(status.heartbeat) <= ttl
}
