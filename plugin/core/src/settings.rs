//! Settings as the component receives them, checked before any request is made.

pub use crate::shape::OutputShape;

mod filters;

use std::ops::RangeInclusive;

use harness_audit_settings::reader::{ConfigError, RawConfig, invalid, not_in_range};
use harness_audit_settings::{self as table, Kind, Setting};

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

    /// Checks every field and normalises the base URL: the one check of the
    /// source's settings, whether they come from the host's configuration, a
    /// runner's environment or another host's `configure`. The error names
    /// the setting.
    pub fn validate(mut self) -> Result<Self, SettingsError> {
        let invalid = |setting, message: String| SettingsError {
            setting,
            problem: Problem::Invalid(message),
        };
        let base = self.query.api_base.trim().trim_end_matches('/').to_owned();
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or_else(|| {
                invalid(
                    &table::API_BASE,
                    format!("`{base}` must start with https:// or http://"),
                )
            })?;
        if rest.is_empty() || rest.contains(['?', '#', ' ']) {
            return Err(invalid(
                &table::API_BASE,
                format!("`{base}` must be a plain URL with a host and no query or fragment"),
            ));
        }
        // The key travels with every request: in the clear only to this machine.
        let authority = rest.split('/').next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")),
            None => authority.split(':').next().map(str::to_owned),
        };
        if base.starts_with("http://")
            && !matches!(host.as_deref(), Some("127.0.0.1" | "localhost" | "[::1]"))
        {
            return Err(invalid(
                &table::API_BASE,
                "must use https:// (plain http is accepted only for 127.0.0.1, localhost or [::1])"
                    .into(),
            ));
        }
        self.query.api_base = base;
        if self.query.account_id.is_empty()
            || !self.query.account_id.chars().all(is_identifier_char)
        {
            return Err(invalid(
                &table::ACCOUNT_ID,
                format!(
                    "`{}` must be a Harness identifier: letters, digits, `_` or `-`",
                    self.query.account_id
                ),
            ));
        }
        self.check_ranges()?;
        // A batch holds whole pages, so it could not stay under a limit below one page.
        if self.output.batch_max_events < self.query.page_size {
            return Err(invalid(
                &table::BATCH_MAX_EVENTS,
                format!(
                    "{} is below {} ({}): a batch holds whole pages; raise it or lower {}",
                    self.output.batch_max_events,
                    table::PAGE_SIZE.env,
                    self.query.page_size,
                    table::PAGE_SIZE.env
                ),
            ));
        }
        for (setting, values) in [
            (&table::MODULES, &self.query.modules),
            (&table::ACTIONS, &self.query.actions),
        ] {
            if let Some(bad) = values
                .iter()
                .find(|v| v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(invalid(
                    setting,
                    format!("`{bad}` is not an enum name (A-Z, 0-9, `_`)"),
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
            return Err(invalid(
                &table::PRINCIPALS,
                format!(
                    "entry `{}:{}` needs both a type and an identifier",
                    p.kind, p.identifier
                ),
            ));
        }
        if self
            .query
            .scopes
            .iter()
            .any(|s| blank(&s.org) || s.project.as_deref().is_some_and(blank))
        {
            return Err(invalid(
                &table::SCOPES,
                "entries need an organization, and a project only inside one".into(),
            ));
        }
        if self.query.resources.iter().any(|r| blank(&r.kind)) {
            return Err(invalid(
                &table::RESOURCES,
                "entries need a resource type".into(),
            ));
        }
        if self.query.environments.iter().any(|e| {
            e.kind.as_deref().is_none_or(blank) && e.identifier.as_deref().is_none_or(blank)
        }) {
            return Err(invalid(
                &table::ENVIRONMENTS,
                "entries need a type, an identifier or both".into(),
            ));
        }
        if let Some(filter) = &self.query.static_filter
            && !STATIC_FILTERS.contains(&filter.as_str())
        {
            return Err(invalid(
                &table::STATIC_FILTER,
                format!("`{filter}` is not one of {}", STATIC_FILTERS.join(", ")),
            ));
        }
        Ok(self)
    }

    fn check_ranges(&self) -> Result<(), SettingsError> {
        let numbers = [
            (&table::PAGE_SIZE, self.query.page_size),
            (&table::START_MINUTES_BACK, self.window.start_minutes_back),
            (&table::SETTLE_LAG_SECS, self.window.settle_lag_secs),
            (&table::OVERLAP_SECS, self.window.overlap_secs),
            (
                &table::RECONCILE_INTERVAL_SECS,
                self.window.reconcile_interval_secs,
            ),
            (&table::RECONCILE_HOURS, self.window.reconcile_hours),
            (
                &table::RECONCILE_RECENT_INTERVAL_SECS,
                self.window.reconcile_recent_interval_secs,
            ),
            (
                &table::RECONCILE_RECENT_HOURS,
                self.window.reconcile_recent_hours,
            ),
            (&table::MAX_RETRIES, self.retries.max_retries),
            (&table::RETRY_BASE_MS, self.retries.retry_base_ms),
            (&table::RETRY_BUDGET_SECS, self.retries.retry_budget_secs),
            (
                &table::MAX_REQUESTS_PER_MINUTE,
                self.retries.max_requests_per_minute,
            ),
            (&table::BATCH_MAX_EVENTS, self.output.batch_max_events),
        ];
        for (setting, value) in numbers {
            let Kind::Number { range, .. } = &setting.kind else {
                unreachable!("{} is not a number", setting.env)
            };
            if !range.contains(&value) {
                return Err(SettingsError {
                    setting,
                    problem: Problem::OutOfRange {
                        value,
                        range: range.clone(),
                    },
                });
            }
        }
        Ok(())
    }

    /// Reads the source's settings from `raw`, taking each from it (what is
    /// unset takes its default), and validates them with [`Self::validate`]:
    /// the one place the host and the composition runners build them. The
    /// error names the variable, key or flag to fix.
    pub fn read(raw: &mut RawConfig) -> Result<Self, ConfigError> {
        let given = raw.clone();
        let allow_unknown = raw.boolean(&table::ALLOW_UNKNOWN_VALUES)?;
        let account_id = raw.text(&table::ACCOUNT_ID).ok_or(ConfigError::Missing {
            what: table::ACCOUNT_ID.env,
            hint: "set it to your Harness account identifier (Account Settings > Overview)",
        })?;
        let text = |raw: &mut RawConfig, setting| raw.text(setting).map(|t| t.value);
        let settings = Self {
            query: Query {
                api_base: text(raw, &table::API_BASE).unwrap_or_default(),
                account_id: account_id.value,
                api_flavor: match raw.choice(&table::API_FLAVOR)? {
                    Some("list-v2") => ApiFlavor::ListV2,
                    _ => ApiFlavor::List,
                },
                page_size: raw.number(&table::PAGE_SIZE)?,
                modules: each(raw, &table::MODULES, |v| filters::module(v, allow_unknown))?,
                actions: each(raw, &table::ACTIONS, |v| filters::action(v, allow_unknown))?,
                static_filter: raw.choice(&table::STATIC_FILTER)?.map(str::to_owned),
                principals: each(raw, &table::PRINCIPALS, |v| {
                    filters::principal(v, allow_unknown)
                })?,
                scopes: each(raw, &table::SCOPES, filters::scope)?,
                resources: each(raw, &table::RESOURCES, |v| {
                    filters::resource(v, allow_unknown)
                })?,
                environments: each(raw, &table::ENVIRONMENTS, filters::environment)?,
            },
            window: Window {
                start_minutes_back: raw.number(&table::START_MINUTES_BACK)?,
                start_at_ms: None,
                end_at_ms: None,
                settle_lag_secs: raw.number(&table::SETTLE_LAG_SECS)?,
                overlap_secs: raw.number(&table::OVERLAP_SECS)?,
                reconcile_interval_secs: raw.number(&table::RECONCILE_INTERVAL_SECS)?,
                reconcile_hours: raw.number(&table::RECONCILE_HOURS)?,
                reconcile_recent_interval_secs: raw
                    .number(&table::RECONCILE_RECENT_INTERVAL_SECS)?,
                reconcile_recent_hours: raw.number(&table::RECONCILE_RECENT_HOURS)?,
            },
            retries: Retries {
                max_retries: raw.number(&table::MAX_RETRIES)?,
                retry_base_ms: raw.number(&table::RETRY_BASE_MS)?,
                retry_budget_secs: raw.number(&table::RETRY_BUDGET_SECS)?,
                max_requests_per_minute: raw.number(&table::MAX_REQUESTS_PER_MINUTE)?,
            },
            output: Output {
                output_shape: match raw.choice(&table::OUTPUT_SHAPE)? {
                    Some("streaming") => OutputShape::Streaming,
                    _ => OutputShape::Raw,
                },
                enrich_yaml_diff: raw.boolean(&table::ENRICH_YAML_DIFF)?,
                batch_max_events: raw.number(&table::BATCH_MAX_EVENTS)?,
            },
        };
        settings.validate().map_err(|e| e.given(&given))
    }
}

/// Parses every entry of a list setting; the error names the setting and the entry.
fn each<T>(
    raw: &mut RawConfig,
    setting: &Setting,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    let Some(list) = raw.take_list(setting) else {
        return Ok(Vec::new());
    };
    list.value
        .iter()
        .map(|v| parse(v).map_err(|message| invalid(&list, &message)))
        .collect()
}

/// A source setting the core cannot use: which, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The setting, as the table declares it.
    pub setting: &'static Setting,
    /// What is wrong with its value.
    pub problem: Problem,
}

/// What is wrong with a setting's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A number outside the setting's range.
    OutOfRange {
        /// The value.
        value: u32,
        /// What the setting accepts.
        range: RangeInclusive<u32>,
    },
    /// Anything else, in words that quote the value where it helps.
    Invalid(String),
}

impl SettingsError {
    /// This error in the terms of a reader: the layer `given` took the value
    /// from, or the setting's default.
    fn given(self, given: &RawConfig) -> ConfigError {
        let sourced = given.peek(self.setting);
        match (self.problem, sourced) {
            (Problem::OutOfRange { .. }, Some(raw)) => not_in_range(self.setting, &raw),
            (problem, _) => ConfigError::Invalid {
                origin: given.origin(self.setting),
                message: match problem {
                    Problem::OutOfRange { value, range } => format!(
                        "{value} is not a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                    Problem::Invalid(message) => message,
                },
            },
        }
    }
}

/// In the WIT record's terms, for `configure`'s `invalid-settings`.
impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.setting.key.replace('_', "-");
        match &self.problem {
            Problem::OutOfRange { value, range } => write!(
                f,
                "{name} {value} is out of range: use {} to {}",
                range.start(),
                range.end()
            ),
            Problem::Invalid(message) => write!(f, "{name}: {message}"),
        }
    }
}

impl std::error::Error for SettingsError {}

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

/// `settings` with `change` made to it, for tests that vary one field or two.
#[cfg(test)]
pub(crate) fn with(mut settings: Settings, change: impl FnOnce(&mut Settings)) -> Settings {
    change(&mut settings);
    settings
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
            batch_max_events: defaults::BATCH_MAX_EVENTS,
        },
    }
}

#[cfg(test)]
mod tests;
