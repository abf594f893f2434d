//! Per-tenant and process figures for `serve`, exposed with `prometheus-client`
//! in the OpenMetrics text format, and the health verdict behind `/healthz`,
//! which is ours.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use harness_audit_core::event::Reason;

use crate::engine::PassSummary;
use crate::engine::error::{RunError, SandboxError};
use crate::time::now_ms;

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label value, escaped as the exposition format requires: the library
/// writes label values as given, and a tenant id is the operator's text.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord)]
struct Escaped(String);

impl EncodeLabelValue for Escaped {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: Escaped,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    tenant: Escaped,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuarantineLabels {
    tenant: Escaped,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    tenant: Escaped,
    limit: &'static str,
}

/// What the health verdict and the derived gauges need about one tenant.
#[derive(Debug, Clone, Default)]
struct TenantState {
    interval: Duration,
    newest_event_ms: Option<u64>,
    last_success_ms: Option<u64>,
    last_error: Option<&'static str>,
    consecutive_failures: u32,
    error_kinds: BTreeSet<&'static str>,
    limits_hit: BTreeSet<&'static str>,
}

/// The families of the registry, by tenant.
#[derive(Debug, Default)]
struct Families {
    events: Family<TenantLabel, Counter>,
    objects: Family<TenantLabel, Counter>,
    pages: Family<TenantLabel, Counter>,
    retries: Family<TenantLabel, Counter>,
    count_requests: Family<TenantLabel, Counter>,
    late_events: Family<TenantLabel, Counter>,
    passes: Family<TenantLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    limits: Family<LimitLabels, Counter>,
    quarantined: Family<QuarantineLabels, Counter>,
    unreconciled: Family<TenantLabel, Gauge>,
    seconds_behind: Family<TenantLabel, Gauge>,
    last_success: Family<TenantLabel, Gauge>,
    consecutive_failures: Family<TenantLabel, Gauge>,
    backoff: Family<TenantLabel, Gauge>,
    running: Family<TenantLabel, Gauge>,
    interval: Family<TenantLabel, Gauge>,
}

impl Families {
    fn counters(&self) -> [&Family<TenantLabel, Counter>; 7] {
        [
            &self.events,
            &self.objects,
            &self.pages,
            &self.retries,
            &self.count_requests,
            &self.late_events,
            &self.passes,
        ]
    }

    /// Gauges every tenant has from its registration on.
    fn gauges_from_start(&self) -> [&Family<TenantLabel, Gauge>; 4] {
        [
            &self.consecutive_failures,
            &self.backoff,
            &self.running,
            &self.interval,
        ]
    }

    /// Gauges a tenant has once a pass made them known: no gap or lag is
    /// claimed for a tenant that never finished one.
    fn gauges_once_known(&self) -> [&Family<TenantLabel, Gauge>; 3] {
        [&self.unreconciled, &self.seconds_behind, &self.last_success]
    }
}

/// Figures of every tenant served.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Families,
    tenants_gauge: Gauge,
    uptime: Gauge,
    resident: Gauge,
    instantiate: Histogram,
    started: Instant,
    started_ms: u64,
    tenants: Mutex<BTreeMap<String, TenantState>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let families = Families::default();
        let mut registry = Registry::with_prefix("harness_audit");
        let f = &families;
        registry.register("events_written", "Events stored", f.events.clone());
        registry.register("objects_written", "Objects created", f.objects.clone());
        registry.register("pages", "Pages read from Harness", f.pages.clone());
        registry.register("retries", "Requests retried", f.retries.clone());
        registry.register(
            "count_requests",
            "Hours checked against Harness's count (one request each)",
            f.count_requests.clone(),
        );
        registry.register(
            "late_events",
            "Events found by re-reading an hour: visible only after their window was read",
            f.late_events.clone(),
        );
        registry.register(
            "unreconciled_events",
            "Events Harness counted at each hour's last check that it never returned (see `harness-audit ledger`)",
            f.unreconciled.clone(),
        );
        registry.register(
            "passes",
            "Passes finished, successful or not",
            f.passes.clone(),
        );
        registry.register("errors", "Failed passes by cause", f.errors.clone());
        registry.register(
            "quarantined_events",
            "Events kept byte for byte in the quarantine because the component could not read or shape them, by reason",
            f.quarantined.clone(),
        );
        registry.register(
            "limit_exceeded",
            "Passes stopped by a limit or quota, by the setting (or contract field) that sets it",
            f.limits.clone(),
        );
        registry.register(
            "seconds_behind",
            "Seconds between now and the newest event stored",
            f.seconds_behind.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When the last successful pass ended (Unix time)",
            f.last_success.clone(),
        );
        registry.register(
            "consecutive_failures",
            "Failed passes since the last success",
            f.consecutive_failures.clone(),
        );
        registry.register(
            "backoff_seconds",
            "Current wait before the next pass after failures (0 when healthy)",
            f.backoff.clone(),
        );
        registry.register("pass_running", "1 while a pass runs", f.running.clone());
        registry.register(
            "interval_seconds",
            "Seconds between the tenant's passes when they succeed (its `interval_secs`)",
            f.interval.clone(),
        );
        let tenants_gauge = Gauge::default();
        registry.register("tenants", "Tenants served", tenants_gauge.clone());
        let started_ms = now_ms();
        let start: Gauge = Gauge::default();
        start.set(gauge_value(started_ms / 1000));
        registry.register(
            "process_start_time_seconds",
            "Process start (Unix time)",
            start,
        );
        let uptime = Gauge::default();
        registry.register(
            "process_uptime_seconds",
            "Seconds since start",
            uptime.clone(),
        );
        let resident = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident set size (Linux)",
            resident.clone(),
        );
        // 10 us to about 20 s, each bucket 1.5 times the last.
        let instantiate = Histogram::new(exponential_buckets(1e-5, 1.5, 36));
        registry.register(
            "instantiate_seconds",
            "Component instantiation time per pass",
            instantiate.clone(),
        );
        Self {
            registry,
            families,
            tenants_gauge,
            uptime,
            resident,
            instantiate,
            started: Instant::now(),
            started_ms,
            tenants: Mutex::new(BTreeMap::new()),
        }
    }
}

/// `/healthz`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Every tenant succeeded within its allowance.
    pub healthy: bool,
    /// One line per tenant.
    pub report: String,
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Metrics {
    fn label(id: &str) -> TenantLabel {
        TenantLabel {
            tenant: Escaped(id.to_owned()),
        }
    }

    fn with(&self, id: &str, f: impl FnOnce(&mut TenantState)) {
        let mut tenants = self
            .tenants
            .lock()
            .expect("no panic while holding the lock");
        f(tenants.entry(id.to_owned()).or_default());
        self.tenants_gauge.set(gauge_value(tenants.len() as u64));
    }

    /// Starts tracking `id`, or updates its interval.
    pub fn register(&self, id: &str, interval: Duration) {
        self.with(id, |t| t.interval = interval);
        let label = Self::label(id);
        let f = &self.families;
        // Every per-tenant counter exists from the start, at zero.
        for family in f.counters() {
            drop(family.get_or_create(&label));
        }
        for family in f.gauges_from_start() {
            drop(family.get_or_create(&label));
        }
        f.interval
            .get_or_create(&label)
            .set(gauge_value(interval.as_secs()));
        for reason in Reason::ALL {
            drop(
                f.quarantined
                    .get_or_create(&Self::quarantine_label(id, reason.name())),
            );
        }
    }

    fn quarantine_label(id: &str, reason: &'static str) -> QuarantineLabels {
        QuarantineLabels {
            tenant: Escaped(id.to_owned()),
            reason,
        }
    }

    /// Stops tracking `id` (removed from the tenant file).
    pub fn remove(&self, id: &str) {
        let mut tenants = self
            .tenants
            .lock()
            .expect("no panic while holding the lock");
        let Some(state) = tenants.remove(id) else {
            return;
        };
        self.tenants_gauge.set(gauge_value(tenants.len() as u64));
        let label = Self::label(id);
        let f = &self.families;
        for family in f.counters() {
            family.remove(&label);
        }
        for family in f
            .gauges_from_start()
            .into_iter()
            .chain(f.gauges_once_known())
        {
            family.remove(&label);
        }
        for reason in Reason::ALL {
            f.quarantined
                .remove(&Self::quarantine_label(id, reason.name()));
        }
        for kind in state.error_kinds {
            f.errors.remove(&ErrorLabels {
                tenant: label.tenant.clone(),
                kind,
            });
        }
        for limit in state.limits_hit {
            f.limits.remove(&LimitLabels {
                tenant: label.tenant.clone(),
                limit,
            });
        }
    }

    /// A pass of `id` began.
    pub fn pass_started(&self, id: &str) {
        self.families.running.get_or_create(&Self::label(id)).set(1);
    }

    /// A pass of `id` succeeded.
    pub fn pass_succeeded(&self, id: &str, summary: &PassSummary) {
        self.instantiate.observe(summary.instantiate.as_secs_f64());
        let label = Self::label(id);
        let f = &self.families;
        f.running.get_or_create(&label).set(0);
        f.passes.get_or_create(&label).inc();
        f.events.get_or_create(&label).inc_by(summary.stored.events);
        f.objects
            .get_or_create(&label)
            .inc_by(summary.stored.objects);
        for (reason, events) in &summary.stored.quarantined {
            f.quarantined
                .get_or_create(&Self::quarantine_label(id, reason))
                .inc_by(*events);
        }
        f.pages.get_or_create(&label).inc_by(summary.pages);
        f.retries.get_or_create(&label).inc_by(summary.retries);
        f.count_requests
            .get_or_create(&label)
            .inc_by(summary.count_requests);
        f.late_events
            .get_or_create(&label)
            .inc_by(summary.late_events);
        f.unreconciled
            .get_or_create(&label)
            .set(gauge_value(summary.unreconciled_events));
        f.consecutive_failures.get_or_create(&label).set(0);
        f.backoff.get_or_create(&label).set(0);
        let now = now_ms();
        f.last_success
            .get_or_create(&label)
            .set(gauge_value(now / 1000));
        self.with(id, |t| {
            t.newest_event_ms = summary.watermark_ms.or(t.newest_event_ms);
            t.last_success_ms = Some(now);
            t.consecutive_failures = 0;
        });
    }

    /// A pass of `id` failed; the next one waits `backoff`.
    pub fn pass_failed(&self, id: &str, error: &RunError, backoff: Duration) {
        let label = Self::label(id);
        let f = &self.families;
        f.running.get_or_create(&label).set(0);
        f.passes.get_or_create(&label).inc();
        f.errors
            .get_or_create(&ErrorLabels {
                tenant: label.tenant.clone(),
                kind: error.kind(),
            })
            .inc();
        f.backoff
            .get_or_create(&label)
            .set(gauge_value(backoff.as_secs()));
        let limit = match error {
            RunError::Sandbox(SandboxError::LimitExceeded { setting, .. }) => Some(*setting),
            _ => None,
        };
        if let Some(limit) = limit {
            f.limits
                .get_or_create(&LimitLabels {
                    tenant: label.tenant.clone(),
                    limit,
                })
                .inc();
        }
        let mut failures = 0;
        self.with(id, |t| {
            t.limits_hit.extend(limit);
            t.error_kinds.insert(error.kind());
            t.last_error = Some(error.kind());
            t.consecutive_failures += 1;
            failures = t.consecutive_failures;
        });
        f.consecutive_failures
            .get_or_create(&label)
            .set(i64::from(failures));
    }

    /// Whether every tenant succeeded within `intervals` of its interval. A
    /// tenant that has not succeeded yet is measured from the process start.
    pub fn health(&self, intervals: u32) -> Health {
        let now = now_ms();
        let tenants = self
            .tenants
            .lock()
            .expect("no panic while holding the lock");
        let mut healthy = true;
        let mut report = String::new();
        for (id, t) in tenants.iter() {
            let allowance = u64::try_from((t.interval * intervals).as_millis()).unwrap_or(u64::MAX);
            let since = t.last_success_ms.unwrap_or(self.started_ms);
            let ok =
                now.saturating_sub(since) <= allowance && t.consecutive_failures < intervals.max(1);
            healthy &= ok;
            let _ = writeln!(
                report,
                "{id}: {} (last success {}, consecutive failures {}{})",
                if ok { "ok" } else { "failing" },
                t.last_success_ms
                    .map_or_else(|| "never".to_owned(), crate::time::rfc3339_ms),
                t.consecutive_failures,
                t.last_error
                    .filter(|_| t.consecutive_failures > 0)
                    .map_or_else(String::new, |e| format!(", last error {e}"))
            );
        }
        Health { healthy, report }
    }

    /// The OpenMetrics text exposition (see [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let now = now_ms();
        {
            let tenants = self
                .tenants
                .lock()
                .expect("no panic while holding the lock");
            for (id, t) in tenants.iter() {
                if let Some(newest) = t.newest_event_ms {
                    self.families
                        .seconds_behind
                        .get_or_create(&Self::label(id))
                        .set(gauge_value(now.saturating_sub(newest) / 1000));
                }
            }
        }
        self.uptime
            .set(gauge_value(self.started.elapsed().as_secs()));
        if let Some(rss) = resident_bytes() {
            self.resident.set(gauge_value(rss));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Resident set size from `/proc/self/status` (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::pipeline::PipelineStats;

    #[test]
    fn passes_show_in_the_exposition_and_the_health_verdict() {
        let metrics = Metrics::default();
        metrics.register("good", Duration::from_secs(60));
        metrics.register("bad\"one", Duration::from_secs(60));
        let summary = PassSummary {
            stored: PipelineStats {
                events: 120,
                objects: 2,
                quarantined: [("not-json", 3), ("timestamp", 1)].into(),
                quarantine_objects: 1,
                already_present: 0,
                digests: 1,
            },
            pages: 3,
            watermark_ms: Some(now_ms() - 30_000),
            count_requests: 48,
            late_events: 4,
            unreconciled_events: 7,
            ..PassSummary::default()
        };
        metrics.pass_succeeded("good", &summary);
        let err = RunError::from(crate::engine::error::HarnessError::Unauthorized {
            failure: "HTTP 401".into(),
            account: "acct".into(),
        });
        metrics.pass_failed("bad\"one", &err, Duration::from_secs(30));
        let over = RunError::limit("MAX_PASS_MIB", "over".into());
        metrics.pass_failed("bad\"one", &over, Duration::from_secs(30));
        metrics.pass_failed("bad\"one", &err, Duration::from_secs(60));

        let text = metrics.render();
        for line in [
            "harness_audit_events_written_total{tenant=\"good\"} 120",
            "harness_audit_objects_written_total{tenant=\"good\"} 2",
            "harness_audit_errors_total{tenant=\"bad\\\"one\",kind=\"unauthorized\"} 2",
            "harness_audit_errors_total{tenant=\"bad\\\"one\",kind=\"limit\"} 1",
            "harness_audit_limit_exceeded_total{tenant=\"bad\\\"one\",limit=\"MAX_PASS_MIB\"} 1",
            "harness_audit_backoff_seconds{tenant=\"bad\\\"one\"} 60",
            "harness_audit_consecutive_failures{tenant=\"bad\\\"one\"} 3",
            "harness_audit_tenants 2",
            "harness_audit_interval_seconds{tenant=\"good\"} 60",
            "harness_audit_count_requests_total{tenant=\"good\"} 48",
            "harness_audit_late_events_total{tenant=\"good\"} 4",
            "harness_audit_unreconciled_events{tenant=\"good\"} 7",
            "harness_audit_quarantined_events_total{tenant=\"good\",reason=\"not-json\"} 3",
            "harness_audit_quarantined_events_total{tenant=\"good\",reason=\"timestamp\"} 1",
            "harness_audit_quarantined_events_total{tenant=\"bad\\\"one\",reason=\"unmappable\"} 0",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert!(text.contains("harness_audit_seconds_behind{tenant=\"good\"} 3"));
        assert!(text.contains("harness_audit_instantiate_seconds_count 1"));
        assert!(
            !text.contains("harness_audit_unreconciled_events{tenant=\"bad"),
            "no gap is claimed for a tenant that never finished a pass"
        );

        let health = metrics.health(2);
        assert!(!health.healthy);
        assert!(health.report.contains("good: ok"), "{}", health.report);
        assert!(
            health.report.contains("bad\"one: failing")
                && health.report.contains("last error unauthorized"),
            "{}",
            health.report
        );
        metrics.remove("bad\"one");
        assert!(metrics.health(2).healthy);
        let text = metrics.render();
        assert!(
            !text.contains("bad\\\"one"),
            "a removed tenant's series are gone\n{text}"
        );
        assert!(
            text.contains("harness_audit_tenants 1") && text.ends_with("# EOF\n"),
            "{text}"
        );
    }
}
