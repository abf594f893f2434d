//! Settings as the component receives them, checked before any request is made.

pub use crate::shape::OutputShape;

use std::ops::RangeInclusive;

/// Largest `pageSize` the list endpoint accepts (`@Max(100)`).
pub const MAX_PAGE_SIZE: u32 = 100;

/// The values each numeric setting accepts, shared by every wrapper like the
/// defaults: [`Settings::validate`] enforces them, and the host's settings
/// table shows them.
pub mod ranges {
    use super::{MAX_PAGE_SIZE, RangeInclusive};

    /// Events per page.
    pub const PAGE_SIZE: RangeInclusive<u32> = 1..=MAX_PAGE_SIZE;
    /// Look-back of the first pass, in minutes (two years).
    pub const START_MINUTES_BACK: RangeInclusive<u32> = 0..=1_051_200;
    /// Retries per request.
    pub const MAX_RETRIES: RangeInclusive<u32> = 0..=20;
    /// First backoff delay, in milliseconds.
    pub const RETRY_BASE_MS: RangeInclusive<u32> = 0..=60_000;
    /// Total retry wait per pass, in seconds (one day).
    pub const RETRY_BUDGET_SECS: RangeInclusive<u32> = 0..=86_400;
    /// Requests per minute; 0 turns pacing off.
    pub const MAX_REQUESTS_PER_MINUTE: RangeInclusive<u32> = 0..=100_000;
    /// Settle lag and overlap, in seconds (one week).
    pub const WINDOW_SECS: RangeInclusive<u32> = 0..=7 * 24 * 3600;
    /// Events per batch: a batch is one object, and holds whole pages.
    pub const BATCH_MAX_EVENTS: RangeInclusive<u32> = 1..=20_000;
    /// Interval between reconciliations, in seconds (one week).
    pub const RECONCILE_INTERVAL_SECS: RangeInclusive<u32> = 1..=7 * 24 * 3600;
    /// Look-back of reconciliation, in hours (30 days): the ledger keeps the
    /// ids of every event stored within it. Also of its recent tier.
    pub const RECONCILE_HOURS: RangeInclusive<u32> = 0..=720;
}

/// Defaults of the source's settings, shared by every wrapper (the Rust
/// host's configuration and the command composition's runner) so they cannot drift apart.
pub mod defaults {
    /// Harness API base.
    pub const API_BASE: &str = "https://app.harness.io";
    /// Events per page (the Cloud Run recipe's default).
    pub const PAGE_SIZE: u32 = 50;
    /// Look-back of the first pass, in minutes.
    pub const START_MINUTES_BACK: u32 = 60;
    /// Retries per request.
    pub const MAX_RETRIES: u32 = 5;
    /// First backoff delay, in milliseconds.
    pub const RETRY_BASE_MS: u32 = 1000;
    /// Total retry wait per pass, in seconds.
    pub const RETRY_BUDGET_SECS: u32 = 300;
    /// Request rate cap: 95% of Harness's 400 external calls a minute per
    /// key, the rest a margin for the edge's clock.
    pub const MAX_REQUESTS_PER_MINUTE: u32 = 380;
    /// Settle lag: the last seconds before now, where events are still
    /// arriving. Later ones are read by the overlap and by reconciliation.
    pub const SETTLE_LAG_SECS: u32 = 5;
    /// Overlap between windows: every window reads the events up to two
    /// minutes late again; reconciliation finds later ones by their counts.
    pub const OVERLAP_SECS: u32 = 120;
    /// Events per batch: checkpoint work is per batch, so larger batches
    /// drain a backlog faster; a crash re-reads at most one batch.
    pub const BATCH_MAX_EVENTS: u32 = 1000;
    /// Interval between reconciliations, in seconds.
    pub const RECONCILE_INTERVAL_SECS: u32 = 3600;
    /// Look-back of reconciliation, in hours: Harness can make events
    /// visible hours after their timestamp.
    pub const RECONCILE_HOURS: u32 = 48;
    /// Interval between checks of the recent hours, in seconds.
    pub const RECONCILE_RECENT_INTERVAL_SECS: u32 = 300;
    /// Hours counted as recent: events late by minutes are found within
    /// [`RECONCILE_RECENT_INTERVAL_SECS`], not within the hour.
    pub const RECONCILE_RECENT_HOURS: u32 = 3;
}

/// Values of `staticFilter`.
pub const STATIC_FILTERS: [&str; 2] = ["EXCLUDE_LOGIN_EVENTS", "EXCLUDE_SYSTEM_EVENTS"];

/// Which list endpoint to page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiFlavor {
    /// `POST /audit/api/audits/list`, offset pages: the verified API.
    #[default]
    List,
    /// `POST /audit/api/audits/listV2` with `pageToken`/`hasNext`, as the
    /// SecOps recipe assumes; not found in any Harness source.
    ListV2,
}

/// Who acted: `USER` (by e-mail), `SERVICE_ACCOUNT`, `API_KEY` or `SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalFilter {
    /// Principal type.
    pub kind: String,
    /// E-mail or identifier.
    pub identifier: String,
}

/// An organization, or a project inside one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeFilter {
    /// Organization identifier.
    pub org: String,
    /// Project identifier.
    pub project: Option<String>,
}

/// A resource type, optionally one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceFilter {
    /// Resource type.
    pub kind: String,
    /// Resource identifier.
    pub identifier: Option<String>,
}

/// An environment by type, identifier or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFilter {
    /// `Production` or `PreProduction`.
    pub kind: Option<String>,
    /// Environment identifier.
    pub identifier: Option<String>,
}

/// Validated, non-secret settings for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Base URL without a trailing slash.
    pub api_base: String,
    /// Harness account identifier.
    pub account_id: String,
    /// Events per page, `1..=MAX_PAGE_SIZE`.
    pub page_size: u32,
    /// Start of the first window, in minutes before now, when there is no checkpoint.
    pub start_minutes_back: u32,
    /// Start of the first window (epoch ms) when there is no checkpoint; wins over
    /// `start_minutes_back`.
    pub start_at_ms: Option<u64>,
    /// Last millisecond ever read (inclusive), for a backfill's fixed range.
    pub end_at_ms: Option<u64>,
    /// `modules` filter; empty means all.
    pub modules: Vec<String>,
    /// `actions` filter; empty means all.
    pub actions: Vec<String>,
    /// `staticFilter`, if any.
    pub static_filter: Option<String>,
    /// `principals` filter; empty means anyone.
    pub principals: Vec<PrincipalFilter>,
    /// `scopes` filter; empty means the whole account.
    pub scopes: Vec<ScopeFilter>,
    /// `resources` filter; empty means every resource.
    pub resources: Vec<ResourceFilter>,
    /// `environments` filter; empty means no environment condition.
    pub environments: Vec<EnvironmentFilter>,
    /// Shape of the written events.
    pub output_shape: OutputShape,
    /// Attach each configuration change's YAML diff (`auditYaml`).
    pub enrich_yaml_diff: bool,
    /// Retries per request.
    pub max_retries: u32,
    /// First backoff delay in milliseconds.
    pub retry_base_ms: u32,
    /// Total time one pass may spend waiting between retries, in seconds.
    pub retry_budget_secs: u32,
    /// Requests per minute at most; 0 disables pacing.
    pub max_requests_per_minute: u32,
    /// Only events at least this old are read (window end = now - lag), in seconds.
    pub settle_lag_secs: u32,
    /// How far each window reaches back before the previous end, in seconds.
    pub overlap_secs: u32,
    /// Which list endpoint to page.
    pub api_flavor: ApiFlavor,
    /// Events per emitted batch at most (one object each).
    pub batch_max_events: u32,
    /// Seconds between reconciliations: each compares Harness's count for
    /// every hour of the look-back with the events stored for it.
    pub reconcile_interval_secs: u32,
    /// Hours of look-back of reconciliation; 0 turns it off.
    pub reconcile_hours: u32,
    /// Seconds between checks of the recent hours.
    pub reconcile_recent_interval_secs: u32,
    /// Hours of the recent tier (at most `reconcile_hours` of them are
    /// checked); 0 turns the tier off.
    pub reconcile_recent_hours: u32,
}

impl Settings {
    /// `overlap_secs` in milliseconds.
    pub fn overlap_ms(&self) -> u64 {
        u64::from(self.overlap_secs) * 1000
    }

    /// Checks every field and normalises the base URL. The error names the field.
    pub fn validate(mut self) -> Result<Self, String> {
        let base = self.api_base.trim().trim_end_matches('/').to_owned();
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or_else(|| format!("api-base `{base}` must start with https:// or http://"))?;
        if rest.is_empty() || rest.contains(['?', '#', ' ']) {
            return Err(format!(
                "api-base `{base}` must be a plain URL with a host and no query or fragment"
            ));
        }
        self.api_base = base;
        if self.account_id.is_empty() || !self.account_id.chars().all(is_identifier_char) {
            return Err(format!(
                "account-id `{}` must be a non-empty Harness identifier (letters, digits, `_`, `-`)",
                self.account_id
            ));
        }
        self.check_ranges()?;
        for (name, values) in [("modules", &self.modules), ("actions", &self.actions)] {
            if let Some(bad) = values
                .iter()
                .find(|v| v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(format!(
                    "{name} value `{bad}` is not an enum name (A-Z, 0-9, `_`)"
                ));
            }
        }
        let blank = |v: &str| v.trim().is_empty();
        if let Some(p) = self
            .principals
            .iter()
            .find(|p| blank(&p.kind) || blank(&p.identifier))
        {
            return Err(format!(
                "principals entry `{}:{}` needs both a type and an identifier",
                p.kind, p.identifier
            ));
        }
        if self
            .scopes
            .iter()
            .any(|s| blank(&s.org) || s.project.as_deref().is_some_and(blank))
        {
            return Err(
                "scopes entries need an organization, and a project only inside one".into(),
            );
        }
        if self.resources.iter().any(|r| blank(&r.kind)) {
            return Err("resources entries need a resource type".into());
        }
        if self.environments.iter().any(|e| {
            e.kind.as_deref().is_none_or(blank) && e.identifier.as_deref().is_none_or(blank)
        }) {
            return Err("environments entries need a type, an identifier or both".into());
        }
        if let Some(filter) = &self.static_filter
            && !STATIC_FILTERS.contains(&filter.as_str())
        {
            return Err(format!(
                "static-filter `{filter}` is not one of {}",
                STATIC_FILTERS.join(", ")
            ));
        }
        Ok(self)
    }

    fn check_ranges(&self) -> Result<(), String> {
        let numbers = [
            ("page-size", self.page_size, ranges::PAGE_SIZE),
            (
                "start-minutes-back",
                self.start_minutes_back,
                ranges::START_MINUTES_BACK,
            ),
            ("max-retries", self.max_retries, ranges::MAX_RETRIES),
            ("retry-base-ms", self.retry_base_ms, ranges::RETRY_BASE_MS),
            (
                "retry-budget-secs",
                self.retry_budget_secs,
                ranges::RETRY_BUDGET_SECS,
            ),
            (
                "max-requests-per-minute",
                self.max_requests_per_minute,
                ranges::MAX_REQUESTS_PER_MINUTE,
            ),
            ("settle-lag-secs", self.settle_lag_secs, ranges::WINDOW_SECS),
            ("overlap-secs", self.overlap_secs, ranges::WINDOW_SECS),
            (
                "batch-max-events",
                self.batch_max_events,
                ranges::BATCH_MAX_EVENTS,
            ),
            (
                "reconcile-interval-secs",
                self.reconcile_interval_secs,
                ranges::RECONCILE_INTERVAL_SECS,
            ),
            (
                "reconcile-hours",
                self.reconcile_hours,
                ranges::RECONCILE_HOURS,
            ),
            (
                "reconcile-recent-interval-secs",
                self.reconcile_recent_interval_secs,
                ranges::RECONCILE_INTERVAL_SECS,
            ),
            (
                "reconcile-recent-hours",
                self.reconcile_recent_hours,
                ranges::RECONCILE_HOURS,
            ),
        ];
        match numbers.into_iter().find(|(_, v, range)| !range.contains(v)) {
            Some((name, value, range)) => Err(format!(
                "{name} {value} is out of range: use {} to {}",
                range.start(),
                range.end()
            )),
            None => Ok(()),
        }
    }
}

/// The core's settings as the WIT record `harness:audit/types.settings`.
/// `$wit` is the module holding that record's Rust types, `$settings` a
/// `&Settings`. The host's types come from wasmtime's `bindgen!` and the
/// composition runners' from wit-bindgen: distinct types of one shape, so the
/// one field-by-field mapping is a macro that each side expands over its own.
#[macro_export]
macro_rules! wit_settings {
    ($wit:ident, $settings:expr) => {{
        let s: &$crate::settings::Settings = $settings;
        $wit::Settings {
            query: $wit::Query {
                api_base: s.api_base.clone(),
                account_id: s.account_id.clone(),
                api_flavor: match s.api_flavor {
                    $crate::settings::ApiFlavor::List => $wit::ApiFlavor::List,
                    $crate::settings::ApiFlavor::ListV2 => $wit::ApiFlavor::ListV2,
                },
                page_size: s.page_size,
                modules: s.modules.clone(),
                actions: s.actions.clone(),
                static_filter: s.static_filter.clone(),
                principals: s
                    .principals
                    .iter()
                    .map(|p| $wit::PrincipalFilter {
                        kind: p.kind.clone(),
                        identifier: p.identifier.clone(),
                    })
                    .collect(),
                scopes: s
                    .scopes
                    .iter()
                    .map(|s| $wit::ScopeFilter {
                        org: s.org.clone(),
                        project: s.project.clone(),
                    })
                    .collect(),
                resources: s
                    .resources
                    .iter()
                    .map(|r| $wit::ResourceFilter {
                        kind: r.kind.clone(),
                        identifier: r.identifier.clone(),
                    })
                    .collect(),
                environments: s
                    .environments
                    .iter()
                    .map(|e| $wit::EnvironmentFilter {
                        kind: e.kind.clone(),
                        identifier: e.identifier.clone(),
                    })
                    .collect(),
            },
            window: $wit::Window {
                start_minutes_back: s.start_minutes_back,
                start_at_ms: s.start_at_ms,
                end_at_ms: s.end_at_ms,
                settle_lag_secs: s.settle_lag_secs,
                overlap_secs: s.overlap_secs,
                reconcile_interval_secs: s.reconcile_interval_secs,
                reconcile_hours: s.reconcile_hours,
                reconcile_recent_interval_secs: s.reconcile_recent_interval_secs,
                reconcile_recent_hours: s.reconcile_recent_hours,
            },
            retries: $wit::Retries {
                max_retries: s.max_retries,
                retry_base_ms: s.retry_base_ms,
                retry_budget_secs: s.retry_budget_secs,
                max_requests_per_minute: s.max_requests_per_minute,
            },
            output: $wit::Output {
                output_shape: match s.output_shape {
                    $crate::settings::OutputShape::Raw => $wit::OutputShape::Raw,
                    $crate::settings::OutputShape::Streaming => $wit::OutputShape::Streaming,
                },
                enrich_yaml_diff: s.enrich_yaml_diff,
                batch_max_events: s.batch_max_events,
            },
        }
    }};
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

#[cfg(test)]
pub(crate) fn example() -> Settings {
    Settings {
        api_base: "https://app.harness.io".into(),
        account_id: "Xy3kQ9mTR0aWb1cD2eF4gH".into(),
        page_size: 50,
        start_minutes_back: 60,
        start_at_ms: None,
        end_at_ms: None,
        principals: Vec::new(),
        scopes: Vec::new(),
        resources: Vec::new(),
        environments: Vec::new(),
        output_shape: OutputShape::Raw,
        enrich_yaml_diff: false,
        modules: vec![],
        actions: vec![],
        static_filter: None,
        max_retries: 3,
        retry_base_ms: 1000,
        retry_budget_secs: 300,
        max_requests_per_minute: 0,
        settle_lag_secs: 0,
        overlap_secs: 0,
        api_flavor: ApiFlavor::List,
        batch_max_events: 1,
        reconcile_interval_secs: defaults::RECONCILE_INTERVAL_SECS,
        reconcile_hours: 0,
        reconcile_recent_interval_secs: defaults::RECONCILE_RECENT_INTERVAL_SECS,
        reconcile_recent_hours: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slash_is_removed() {
        let s = Settings {
            api_base: "https://app.harness.io/gateway/".into(),
            ..example()
        };
        assert_eq!(
            s.validate().unwrap().api_base,
            "https://app.harness.io/gateway"
        );
    }

    #[test]
    fn page_size_bounds_are_inclusive() {
        for ok in [1, 100] {
            assert!(
                Settings {
                    page_size: ok,
                    ..example()
                }
                .validate()
                .is_ok()
            );
        }
        for bad in [0, 101] {
            let err = Settings {
                page_size: bad,
                ..example()
            }
            .validate()
            .unwrap_err();
            assert!(err.contains("page-size"), "{err}");
        }
    }

    #[test]
    fn rejects_bad_urls_accounts_and_filters() {
        let cases = [
            Settings {
                api_base: "ftp://x".into(),
                ..example()
            },
            Settings {
                api_base: "https://".into(),
                ..example()
            },
            Settings {
                api_base: "https://h/?a=1".into(),
                ..example()
            },
            Settings {
                account_id: "".into(),
                ..example()
            },
            Settings {
                account_id: "a&b".into(),
                ..example()
            },
            Settings {
                modules: vec!["C D".into()],
                ..example()
            },
            Settings {
                actions: vec!["".into()],
                ..example()
            },
            Settings {
                static_filter: Some("EXCLUDE_EVERYTHING".into()),
                ..example()
            },
            Settings {
                reconcile_interval_secs: 0,
                ..example()
            },
            Settings {
                reconcile_interval_secs: ranges::RECONCILE_INTERVAL_SECS.end() + 1,
                ..example()
            },
            Settings {
                reconcile_hours: ranges::RECONCILE_HOURS.end() + 1,
                ..example()
            },
        ];
        for case in cases {
            assert!(case.clone().validate().is_err(), "accepted {case:?}");
        }
    }
}
