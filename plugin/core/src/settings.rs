//! Settings as the component receives them, checked before any request is made.

pub use crate::shape::OutputShape;

/// The defaults and ranges are declared with the settings table, which the
/// host, the runners and this core share.
pub use harness_audit_settings::{MAX_PAGE_SIZE, STATIC_FILTERS, defaults, ranges};

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

/// Validated, non-secret settings for one account, grouped as the WIT record
/// `harness:audit/types.settings` is, so each side converts field for field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where and how to call Harness, and which events.
    pub query: Query,
    /// Which time ranges are read, and how often they are checked again.
    pub window: Window,
    /// How failed requests are repeated, and how requests are paced.
    pub retries: Retries,
    /// How events are written and batched.
    pub output: Output,
}

/// Where and how to call Harness, and which events to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Base URL without a trailing slash.
    pub api_base: String,
    /// Harness account identifier.
    pub account_id: String,
    /// Which list endpoint to page.
    pub api_flavor: ApiFlavor,
    /// Events per page, `1..=MAX_PAGE_SIZE`.
    pub page_size: u32,
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
}

/// Which time ranges are read, and how often they are checked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Start of the first window, in minutes before now, when there is no checkpoint.
    pub start_minutes_back: u32,
    /// Start of the first window (epoch ms) when there is no checkpoint; wins over
    /// `start_minutes_back`.
    pub start_at_ms: Option<u64>,
    /// Last millisecond ever read (inclusive), for a backfill's fixed range.
    pub end_at_ms: Option<u64>,
    /// Only events at least this old are read (window end = now - lag), in seconds.
    pub settle_lag_secs: u32,
    /// How far each window reaches back before the previous end, in seconds.
    pub overlap_secs: u32,
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

/// How failed requests are repeated, and how requests are paced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retries {
    /// Retries per request.
    pub max_retries: u32,
    /// First backoff delay in milliseconds.
    pub retry_base_ms: u32,
    /// Total time one pass may spend waiting between retries, in seconds.
    pub retry_budget_secs: u32,
    /// Requests per minute at most; 0 disables pacing.
    pub max_requests_per_minute: u32,
}

/// How events are written and batched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Shape of the written events.
    pub output_shape: OutputShape,
    /// Attach each configuration change's YAML diff (`auditYaml`).
    pub enrich_yaml_diff: bool,
    /// Events per emitted batch at most (one object each).
    pub batch_max_events: u32,
}

impl Settings {
    /// `overlap_secs` in milliseconds.
    pub fn overlap_ms(&self) -> u64 {
        u64::from(self.window.overlap_secs) * 1000
    }

    /// Checks every field and normalises the base URL. The error names the field.
    pub fn validate(mut self) -> Result<Self, String> {
        let base = self.query.api_base.trim().trim_end_matches('/').to_owned();
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or_else(|| format!("api-base `{base}` must start with https:// or http://"))?;
        if rest.is_empty() || rest.contains(['?', '#', ' ']) {
            return Err(format!(
                "api-base `{base}` must be a plain URL with a host and no query or fragment"
            ));
        }
        self.query.api_base = base;
        if self.query.account_id.is_empty()
            || !self.query.account_id.chars().all(is_identifier_char)
        {
            return Err(format!(
                "account-id `{}` must be a non-empty Harness identifier (letters, digits, `_`, `-`)",
                self.query.account_id
            ));
        }
        self.check_ranges()?;
        for (name, values) in [
            ("modules", &self.query.modules),
            ("actions", &self.query.actions),
        ] {
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
            .query
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
            .query
            .scopes
            .iter()
            .any(|s| blank(&s.org) || s.project.as_deref().is_some_and(blank))
        {
            return Err(
                "scopes entries need an organization, and a project only inside one".into(),
            );
        }
        if self.query.resources.iter().any(|r| blank(&r.kind)) {
            return Err("resources entries need a resource type".into());
        }
        if self.query.environments.iter().any(|e| {
            e.kind.as_deref().is_none_or(blank) && e.identifier.as_deref().is_none_or(blank)
        }) {
            return Err("environments entries need a type, an identifier or both".into());
        }
        if let Some(filter) = &self.query.static_filter
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
            ("page-size", self.query.page_size, ranges::PAGE_SIZE),
            (
                "start-minutes-back",
                self.window.start_minutes_back,
                ranges::START_MINUTES_BACK,
            ),
            ("max-retries", self.retries.max_retries, ranges::MAX_RETRIES),
            (
                "retry-base-ms",
                self.retries.retry_base_ms,
                ranges::RETRY_BASE_MS,
            ),
            (
                "retry-budget-secs",
                self.retries.retry_budget_secs,
                ranges::RETRY_BUDGET_SECS,
            ),
            (
                "max-requests-per-minute",
                self.retries.max_requests_per_minute,
                ranges::MAX_REQUESTS_PER_MINUTE,
            ),
            (
                "settle-lag-secs",
                self.window.settle_lag_secs,
                ranges::WINDOW_SECS,
            ),
            (
                "overlap-secs",
                self.window.overlap_secs,
                ranges::WINDOW_SECS,
            ),
            (
                "batch-max-events",
                self.output.batch_max_events,
                ranges::BATCH_MAX_EVENTS,
            ),
            (
                "reconcile-interval-secs",
                self.window.reconcile_interval_secs,
                ranges::RECONCILE_INTERVAL_SECS,
            ),
            (
                "reconcile-hours",
                self.window.reconcile_hours,
                ranges::RECONCILE_HOURS,
            ),
            (
                "reconcile-recent-interval-secs",
                self.window.reconcile_recent_interval_secs,
                ranges::RECONCILE_INTERVAL_SECS,
            ),
            (
                "reconcile-recent-hours",
                self.window.reconcile_recent_hours,
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
                api_base: s.query.api_base.clone(),
                account_id: s.query.account_id.clone(),
                api_flavor: match s.query.api_flavor {
                    $crate::settings::ApiFlavor::List => $wit::ApiFlavor::List,
                    $crate::settings::ApiFlavor::ListV2 => $wit::ApiFlavor::ListV2,
                },
                page_size: s.query.page_size,
                modules: s.query.modules.clone(),
                actions: s.query.actions.clone(),
                static_filter: s.query.static_filter.clone(),
                principals: s
                    .query
                    .principals
                    .iter()
                    .map(|p| $wit::PrincipalFilter {
                        kind: p.kind.clone(),
                        identifier: p.identifier.clone(),
                    })
                    .collect(),
                scopes: s
                    .query
                    .scopes
                    .iter()
                    .map(|s| $wit::ScopeFilter {
                        org: s.org.clone(),
                        project: s.project.clone(),
                    })
                    .collect(),
                resources: s
                    .query
                    .resources
                    .iter()
                    .map(|r| $wit::ResourceFilter {
                        kind: r.kind.clone(),
                        identifier: r.identifier.clone(),
                    })
                    .collect(),
                environments: s
                    .query
                    .environments
                    .iter()
                    .map(|e| $wit::EnvironmentFilter {
                        kind: e.kind.clone(),
                        identifier: e.identifier.clone(),
                    })
                    .collect(),
            },
            window: $wit::Window {
                start_minutes_back: s.window.start_minutes_back,
                start_at_ms: s.window.start_at_ms,
                end_at_ms: s.window.end_at_ms,
                settle_lag_secs: s.window.settle_lag_secs,
                overlap_secs: s.window.overlap_secs,
                reconcile_interval_secs: s.window.reconcile_interval_secs,
                reconcile_hours: s.window.reconcile_hours,
                reconcile_recent_interval_secs: s.window.reconcile_recent_interval_secs,
                reconcile_recent_hours: s.window.reconcile_recent_hours,
            },
            retries: $wit::Retries {
                max_retries: s.retries.max_retries,
                retry_base_ms: s.retries.retry_base_ms,
                retry_budget_secs: s.retries.retry_budget_secs,
                max_requests_per_minute: s.retries.max_requests_per_minute,
            },
            output: $wit::Output {
                output_shape: match s.output.output_shape {
                    $crate::settings::OutputShape::Raw => $wit::OutputShape::Raw,
                    $crate::settings::OutputShape::Streaming => $wit::OutputShape::Streaming,
                },
                enrich_yaml_diff: s.output.enrich_yaml_diff,
                batch_max_events: s.output.batch_max_events,
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
        query: Query {
            api_base: "https://app.harness.io".into(),
            account_id: "Xy3kQ9mTR0aWb1cD2eF4gH".into(),
            page_size: 50,
            principals: Vec::new(),
            scopes: Vec::new(),
            resources: Vec::new(),
            environments: Vec::new(),
            modules: vec![],
            actions: vec![],
            static_filter: None,
            api_flavor: ApiFlavor::List,
        },
        window: Window {
            start_minutes_back: 60,
            start_at_ms: None,
            end_at_ms: None,
            settle_lag_secs: 0,
            overlap_secs: 0,
            reconcile_interval_secs: defaults::RECONCILE_INTERVAL_SECS,
            reconcile_hours: 0,
            reconcile_recent_interval_secs: defaults::RECONCILE_RECENT_INTERVAL_SECS,
            reconcile_recent_hours: 0,
        },
        retries: Retries {
            max_retries: 3,
            retry_base_ms: 1000,
            retry_budget_secs: 300,
            max_requests_per_minute: 0,
        },
        output: Output {
            output_shape: OutputShape::Raw,
            enrich_yaml_diff: false,
            batch_max_events: 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slash_is_removed() {
        let s = {
            let mut s = example();
            s.query.api_base = "https://app.harness.io/gateway/".into();
            s
        };
        assert_eq!(
            s.validate().unwrap().query.api_base,
            "https://app.harness.io/gateway"
        );
    }

    #[test]
    fn page_size_bounds_are_inclusive() {
        for ok in [1, 100] {
            assert!(
                {
                    let mut s = example();
                    s.query.page_size = ok;
                    s
                }
                .validate()
                .is_ok()
            );
        }
        for bad in [0, 101] {
            let err = {
                let mut s = example();
                s.query.page_size = bad;
                s
            }
            .validate()
            .unwrap_err();
            assert!(err.contains("page-size"), "{err}");
        }
    }

    #[test]
    fn rejects_bad_urls_accounts_and_filters() {
        let cases = [
            {
                let mut s = example();
                s.query.api_base = "ftp://x".into();
                s
            },
            {
                let mut s = example();
                s.query.api_base = "https://".into();
                s
            },
            {
                let mut s = example();
                s.query.api_base = "https://h/?a=1".into();
                s
            },
            {
                let mut s = example();
                s.query.account_id = "".into();
                s
            },
            {
                let mut s = example();
                s.query.account_id = "a&b".into();
                s
            },
            {
                let mut s = example();
                s.query.modules = vec!["C D".into()];
                s
            },
            {
                let mut s = example();
                s.query.actions = vec!["".into()];
                s
            },
            {
                let mut s = example();
                s.query.static_filter = Some("EXCLUDE_EVERYTHING".into());
                s
            },
            {
                let mut s = example();
                s.window.reconcile_interval_secs = 0;
                s
            },
            {
                let mut s = example();
                s.window.reconcile_interval_secs = ranges::RECONCILE_INTERVAL_SECS.end() + 1;
                s
            },
            {
                let mut s = example();
                s.window.reconcile_hours = ranges::RECONCILE_HOURS.end() + 1;
                s
            },
        ];
        for case in cases {
            assert!(case.clone().validate().is_err(), "accepted {case:?}");
        }
    }
}
