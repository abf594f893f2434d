//! Per-tenant and process figures for `serve`, as Prometheus text, and the
//! health verdict behind `/healthz`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::PassSummary;
use crate::error::RunError;
use crate::time::now_ms;

/// What is known about one tenant.
#[derive(Debug, Clone, Default)]
struct TenantStats {
    interval: Duration,
    passes: u64,
    events: u64,
    objects: u64,
    pages: u64,
    retries: u64,
    count_requests: u64,
    late_events: u64,
    unreconciled_events: Option<u64>,
    errors: BTreeMap<&'static str, u64>,
    newest_event_ms: Option<u64>,
    last_success_ms: Option<u64>,
    last_error: Option<String>,
    consecutive_failures: u32,
    backoff: Duration,
    running: bool,
}

/// Instantiation times kept for the quantiles.
const INSTANTIATIONS_KEPT: usize = 10_000;

/// Figures of every tenant served.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    started_ms: u64,
    tenants: Mutex<BTreeMap<String, TenantStats>>,
    /// The latest instantiation times, in microseconds.
    instantiations: Mutex<VecDeque<u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            started_ms: now_ms(),
            tenants: Mutex::new(BTreeMap::new()),
            instantiations: Mutex::new(VecDeque::new()),
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

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn with(&self, id: &str, f: impl FnOnce(&mut TenantStats)) {
        let mut tenants = self
            .tenants
            .lock()
            .expect("no panic while holding the lock");
        f(tenants.entry(id.to_owned()).or_default());
    }

    /// Starts tracking `id`, or updates its interval.
    pub fn register(&self, id: &str, interval: Duration) {
        self.with(id, |t| t.interval = interval);
    }

    /// Stops tracking `id` (removed from the tenant file).
    pub fn remove(&self, id: &str) {
        self.tenants
            .lock()
            .expect("no panic while holding the lock")
            .remove(id);
    }

    /// A pass of `id` began.
    pub fn pass_started(&self, id: &str) {
        self.with(id, |t| t.running = true);
    }

    /// A pass of `id` succeeded.
    pub fn pass_succeeded(&self, id: &str, summary: &PassSummary) {
        {
            let mut kept = self
                .instantiations
                .lock()
                .expect("no panic while holding the lock");
            if kept.len() == INSTANTIATIONS_KEPT {
                kept.pop_front();
            }
            kept.push_back(u64::try_from(summary.instantiate.as_micros()).unwrap_or(u64::MAX));
        }
        self.with(id, |t| {
            t.running = false;
            t.passes += 1;
            t.events += summary.stored.events;
            t.objects += summary.stored.objects;
            t.pages += summary.pages;
            t.retries += summary.retries;
            t.count_requests += summary.count_requests;
            t.late_events += summary.late_events;
            t.unreconciled_events = Some(summary.unreconciled_events);
            t.newest_event_ms = summary.watermark_ms.or(t.newest_event_ms);
            t.last_success_ms = Some(now_ms());
            t.consecutive_failures = 0;
            t.backoff = Duration::ZERO;
        });
    }

    /// A pass of `id` failed; the next one waits `backoff`.
    pub fn pass_failed(&self, id: &str, error: &RunError, backoff: Duration) {
        self.with(id, |t| {
            t.running = false;
            t.passes += 1;
            *t.errors.entry(error.kind()).or_default() += 1;
            t.last_error = Some(error.kind().to_owned());
            t.consecutive_failures += 1;
            t.backoff = backoff;
        });
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
                    .as_ref()
                    .filter(|_| t.consecutive_failures > 0)
                    .map_or_else(String::new, |e| format!(", last error {e}"))
            );
        }
        Health { healthy, report }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let now = now_ms();
        let tenants = self
            .tenants
            .lock()
            .expect("no panic while holding the lock");
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        };
        let per = |f: &dyn Fn(&TenantStats) -> Option<String>| -> Vec<(String, String)> {
            tenants
                .iter()
                .filter_map(|(id, t)| f(t).map(|v| (format!("tenant=\"{}\"", label(id)), v)))
                .collect()
        };
        family(
            "harness_audit_events_written_total",
            "counter",
            "Events stored.",
            per(&|t| Some(t.events.to_string())),
        );
        family(
            "harness_audit_objects_written_total",
            "counter",
            "Objects created.",
            per(&|t| Some(t.objects.to_string())),
        );
        family(
            "harness_audit_pages_total",
            "counter",
            "Pages read from Harness.",
            per(&|t| Some(t.pages.to_string())),
        );
        family(
            "harness_audit_retries_total",
            "counter",
            "Requests retried.",
            per(&|t| Some(t.retries.to_string())),
        );
        family(
            "harness_audit_count_requests_total",
            "counter",
            "Hours checked against Harness's count (one request each).",
            per(&|t| Some(t.count_requests.to_string())),
        );
        family(
            "harness_audit_late_events_total",
            "counter",
            "Events found by re-reading an hour: visible only after their window was read.",
            per(&|t| Some(t.late_events.to_string())),
        );
        family(
            "harness_audit_unreconciled_events",
            "gauge",
            "Events Harness counted at each hour's last check that it never returned (see `harness-audit ledger`).",
            per(&|t| t.unreconciled_events.map(|n| n.to_string())),
        );
        family(
            "harness_audit_passes_total",
            "counter",
            "Passes finished, successful or not.",
            per(&|t| Some(t.passes.to_string())),
        );
        family(
            "harness_audit_errors_total",
            "counter",
            "Failed passes by cause.",
            tenants
                .iter()
                .flat_map(|(id, t)| {
                    t.errors.iter().map(move |(kind, n)| {
                        (
                            format!("tenant=\"{}\",kind=\"{kind}\"", label(id)),
                            n.to_string(),
                        )
                    })
                })
                .collect(),
        );
        family(
            "harness_audit_seconds_behind",
            "gauge",
            "Seconds between now and the newest event stored.",
            per(&|t| {
                t.newest_event_ms
                    .map(|w| (now.saturating_sub(w) / 1000).to_string())
            }),
        );
        family(
            "harness_audit_last_success_timestamp_seconds",
            "gauge",
            "When the last successful pass ended (Unix time).",
            per(&|t| t.last_success_ms.map(|s| (s / 1000).to_string())),
        );
        family(
            "harness_audit_consecutive_failures",
            "gauge",
            "Failed passes since the last success.",
            per(&|t| Some(t.consecutive_failures.to_string())),
        );
        family(
            "harness_audit_backoff_seconds",
            "gauge",
            "Current wait before the next pass after failures (0 when healthy).",
            per(&|t| Some(t.backoff.as_secs().to_string())),
        );
        family(
            "harness_audit_pass_running",
            "gauge",
            "1 while a pass runs.",
            per(&|t| Some(u8::from(t.running).to_string())),
        );
        let _ = writeln!(
            out,
            "# HELP harness_audit_tenants Tenants served.\n# TYPE harness_audit_tenants gauge\nharness_audit_tenants {}",
            tenants.len()
        );
        let _ = writeln!(
            out,
            "# HELP harness_audit_process_start_time_seconds Process start (Unix time).\n\
             # TYPE harness_audit_process_start_time_seconds gauge\nharness_audit_process_start_time_seconds {}",
            self.started_ms / 1000
        );
        let _ = writeln!(
            out,
            "# HELP harness_audit_process_uptime_seconds Seconds since start.\n\
             # TYPE harness_audit_process_uptime_seconds gauge\nharness_audit_process_uptime_seconds {}",
            self.started.elapsed().as_secs()
        );
        let mut micros: Vec<u64> = self
            .instantiations
            .lock()
            .expect("no panic while holding the lock")
            .iter()
            .copied()
            .collect();
        micros.sort_unstable();
        let _ = writeln!(
            out,
            "# HELP harness_audit_instantiate_seconds Component instantiation time per pass (latest {INSTANTIATIONS_KEPT}).\n\
             # TYPE harness_audit_instantiate_seconds summary"
        );
        for q in [0.5, 0.99] {
            if let Some(v) = quantile(&micros, q) {
                let _ = writeln!(
                    out,
                    "harness_audit_instantiate_seconds{{quantile=\"{q}\"}} {:.6}",
                    v as f64 / 1e6
                );
            }
        }
        let _ = writeln!(
            out,
            "harness_audit_instantiate_seconds_count {}",
            micros.len()
        );
        if let Some(rss) = resident_bytes() {
            let _ = writeln!(
                out,
                "# HELP harness_audit_process_resident_memory_bytes Resident set size.\n\
                 # TYPE harness_audit_process_resident_memory_bytes gauge\nharness_audit_process_resident_memory_bytes {rss}"
            );
        }
        out
    }
}

/// The nearest-rank quantile of sorted values.
fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a rank within a slice of at most 10,000 values"
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
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
    use crate::engine::state::PipelineStats;

    #[test]
    fn passes_show_in_the_exposition_and_the_health_verdict() {
        let metrics = Metrics::default();
        metrics.register("good", Duration::from_secs(60));
        metrics.register("bad\"one", Duration::from_secs(60));
        let summary = PassSummary {
            stored: PipelineStats {
                events: 120,
                objects: 2,
                already_present: 0,
            },
            pages: 3,
            watermark_ms: Some(now_ms() - 30_000),
            count_requests: 48,
            late_events: 4,
            unreconciled_events: 7,
            ..PassSummary::default()
        };
        metrics.pass_succeeded("good", &summary);
        let err = RunError::Unauthorized {
            failure: "HTTP 401".into(),
            account: "acct".into(),
        };
        metrics.pass_failed("bad\"one", &err, Duration::from_secs(30));
        metrics.pass_failed("bad\"one", &err, Duration::from_secs(60));

        let text = metrics.render();
        for line in [
            "harness_audit_events_written_total{tenant=\"good\"} 120",
            "harness_audit_objects_written_total{tenant=\"good\"} 2",
            "harness_audit_errors_total{tenant=\"bad\\\"one\",kind=\"unauthorized\"} 2",
            "harness_audit_backoff_seconds{tenant=\"bad\\\"one\"} 60",
            "harness_audit_consecutive_failures{tenant=\"bad\\\"one\"} 2",
            "harness_audit_tenants 2",
            "harness_audit_count_requests_total{tenant=\"good\"} 48",
            "harness_audit_late_events_total{tenant=\"good\"} 4",
            "harness_audit_unreconciled_events{tenant=\"good\"} 7",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
        assert!(text.contains("harness_audit_seconds_behind{tenant=\"good\"} 3"));
        assert!(text.contains("harness_audit_instantiate_seconds_count 1"));
        assert!(
            !text.contains("harness_audit_unreconciled_events{tenant=\"bad"),
            "no gap is claimed for a tenant that never finished a pass"
        );
        assert_eq!(quantile(&[1, 2, 3, 4], 0.5), Some(2));
        assert_eq!(quantile(&(1..=100).collect::<Vec<_>>(), 0.99), Some(99));

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
    }
}
