//! Folding reports into an [`AggregatedHealth`]: sort, carry `observed_since` over, compute the
//! probes, and list what changed since the previous answer.

use std::cmp::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::types::{AggregatedHealth, HealthReport, HealthStatus, Probe};

/// The application state the probes depend on besides the reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    pub(crate) started: bool,
    pub(crate) shutting_down: bool,
    pub(crate) config_version: u64,
}

/// A status change between two answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// The probe, or `None` for a component.
    pub(crate) probe: Option<Probe>,
    /// `module:component` for a component change.
    pub(crate) component: Option<String>,
    pub(crate) previous: HealthStatus,
    pub(crate) current: HealthStatus,
}

fn key_order(a: &HealthReport, b: &HealthReport) -> Ordering {
    a.module
        .cmp(&b.module)
        .then_with(|| a.component.cmp(&b.component))
}

/// Folds `reports` (already stamped) into an answer. With a `previous` answer, a component
/// whose status did not change keeps its `observed_since`, and the changes are returned.
pub(crate) fn fold(
    mut reports: Vec<HealthReport>,
    previous: Option<&AggregatedHealth>,
    flags: &Flags,
    generated_at: DateTime<Utc>,
    duration: Duration,
    evaluation: u64,
) -> (AggregatedHealth, Vec<Change>) {
    // Provider results arrive in registration-name order, which is usually module order
    // already: checking first saves the sort's copies of every report.
    if !reports.is_sorted_by(|a, b| key_order(a, b) != Ordering::Greater) {
        reports.sort_by(key_order);
    }

    let mut changes = Vec::new();
    if let Some(previous) = previous {
        // Both lists are sorted by the same key: a merge join pairs each component with its
        // previous report without hashing.
        let mut old = previous.reports.iter().peekable();
        for report in &mut reports {
            while old
                .peek()
                .is_some_and(|o| key_order(o, report) == Ordering::Less)
            {
                old.next();
            }
            let Some(before) = old.next_if(|o| key_order(o, report) == Ordering::Equal) else {
                continue;
            };
            if before.status == report.status {
                report.observed_since = before.observed_since;
            } else {
                changes.push(Change {
                    probe: None,
                    component: Some(report.key()),
                    previous: before.status,
                    current: report.status,
                });
            }
        }
    }

    let fold_probe = |probe: Probe| {
        HealthStatus::fold(
            reports
                .iter()
                .filter(|r| r.counts_for(probe))
                .map(|r| r.status),
        )
    };
    let health = fold_probe(Probe::Health);
    let readiness = if flags.shutting_down {
        HealthStatus::Unhealthy
    } else {
        fold_probe(Probe::Readiness)
    };
    let liveness = fold_probe(Probe::Liveness);
    let startup = if flags.started {
        fold_probe(Probe::Startup)
    } else {
        HealthStatus::Unhealthy
    };

    let aggregated = AggregatedHealth {
        health,
        readiness,
        liveness,
        startup,
        config_version: flags.config_version,
        generated_at,
        reports,
        duration,
        started: flags.started,
        shutting_down: flags.shutting_down,
        evaluation,
    };
    if let Some(previous) = previous {
        let probe_changes = Probe::ALL.into_iter().filter_map(|probe| {
            let (before, now) = (previous.status(probe), aggregated.status(probe));
            (before != now).then_some(Change {
                probe: Some(probe),
                component: None,
                previous: before,
                current: now,
            })
        });
        // Probes first, then components in report order.
        let component_changes = std::mem::take(&mut changes);
        changes.extend(probe_changes);
        changes.extend(component_changes);
    }
    (aggregated, changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Probes;

    fn flags() -> Flags {
        Flags {
            started: true,
            shutting_down: false,
            config_version: 1,
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::seconds(seconds)
    }

    fn report(module: &str, component: &str, status: HealthStatus, checked: i64) -> HealthReport {
        HealthReport::new(module, component, status).with_checked_at(at(checked))
    }

    #[test]
    fn reports_are_sorted_by_module_then_component() {
        let reports = vec![
            report("db", "replica", HealthStatus::Healthy, 0),
            report("cache", "redis", HealthStatus::Healthy, 0),
            report("db", "primary", HealthStatus::Healthy, 0),
        ];
        let (health, _) = fold(reports, None, &flags(), at(0), Duration::ZERO, 1);
        let keys: Vec<String> = health.reports.iter().map(HealthReport::key).collect();
        assert_eq!(keys, ["cache:redis", "db:primary", "db:replica"]);
    }

    #[test]
    fn optional_failures_fail_health_but_no_probe() {
        let reports = vec![
            report("db", "primary", HealthStatus::Healthy, 0).with_probes(Probes::ALL),
            report("cache", "redis", HealthStatus::Unhealthy, 0)
                .with_optional(true)
                .with_probes(Probes::ALL),
        ];
        let (health, _) = fold(reports, None, &flags(), at(0), Duration::ZERO, 1);
        assert_eq!(health.health, HealthStatus::Unhealthy);
        assert_eq!(health.readiness, HealthStatus::Healthy);
        assert_eq!(health.liveness, HealthStatus::Healthy);
        assert_eq!(health.startup, HealthStatus::Healthy);
    }

    #[test]
    fn probes_only_fold_the_reports_registered_for_them() {
        let reports = vec![
            report("db", "primary", HealthStatus::Unhealthy, 0).with_probes(Probes::READINESS),
            report("app", "loop", HealthStatus::Degraded, 0).with_probes(Probes::LIVENESS),
        ];
        let (health, _) = fold(reports, None, &flags(), at(0), Duration::ZERO, 1);
        assert_eq!(health.readiness, HealthStatus::Unhealthy);
        assert_eq!(health.liveness, HealthStatus::Degraded);
        assert_eq!(health.startup, HealthStatus::Healthy);
    }

    #[test]
    fn shutting_down_fails_readiness_and_not_started_fails_startup() {
        let reports = vec![report("db", "primary", HealthStatus::Healthy, 0)];
        let flags = Flags {
            started: false,
            shutting_down: true,
            config_version: 0,
        };
        let (health, _) = fold(reports, None, &flags, at(0), Duration::ZERO, 1);
        assert_eq!(health.health, HealthStatus::Healthy);
        assert_eq!(health.readiness, HealthStatus::Unhealthy);
        assert_eq!(health.startup, HealthStatus::Unhealthy);
    }

    #[test]
    fn unchanged_components_keep_observed_since_and_changed_ones_restart_it() {
        let first = vec![
            report("db", "primary", HealthStatus::Healthy, 10),
            report("db", "replica", HealthStatus::Healthy, 10),
        ];
        let (previous, changes) = fold(first, None, &flags(), at(10), Duration::ZERO, 1);
        assert!(changes.is_empty());
        let second = vec![
            report("db", "primary", HealthStatus::Healthy, 20),
            report("db", "replica", HealthStatus::Unhealthy, 20),
            report("db", "witness", HealthStatus::Unhealthy, 20),
        ];
        let (next, changes) = fold(second, Some(&previous), &flags(), at(20), Duration::ZERO, 2);
        assert_eq!(next.reports[0].observed_since, at(10));
        assert_eq!(next.reports[1].observed_since, at(20));
        assert_eq!(next.reports[2].observed_since, at(20));
        assert_eq!(
            changes,
            vec![
                Change {
                    probe: Some(Probe::Health),
                    component: None,
                    previous: HealthStatus::Healthy,
                    current: HealthStatus::Unhealthy,
                },
                Change {
                    probe: Some(Probe::Readiness),
                    component: None,
                    previous: HealthStatus::Healthy,
                    current: HealthStatus::Unhealthy,
                },
                Change {
                    probe: None,
                    component: Some("db:replica".to_owned()),
                    previous: HealthStatus::Healthy,
                    current: HealthStatus::Unhealthy,
                },
            ]
        );
    }
}
