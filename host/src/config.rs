//! Configuration: one typed struct per concern, read from a TOML file, the
//! environment (the Cloud Run recipe's variables keep working) and flags, in
//! that order of precedence (flags win), and validated once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use harness_audit_core::settings::{self, defaults};
use serde::Deserialize;
use url::Url;

use crate::bindings::ApiFlavor;
use crate::filters;

/// Default Harness API base.
pub const DEFAULT_API_BASE: &str = defaults::API_BASE;
/// Default events per page (the recipe's default).
pub const DEFAULT_PAGE_SIZE: u32 = defaults::PAGE_SIZE;
/// Default look-back of the first pass, in minutes.
pub const DEFAULT_START_MINUTES_BACK: u32 = defaults::START_MINUTES_BACK;
/// Default retries per request.
pub const DEFAULT_MAX_RETRIES: u32 = defaults::MAX_RETRIES;
/// Default first backoff delay, in milliseconds.
pub const DEFAULT_RETRY_BASE_MS: u32 = defaults::RETRY_BASE_MS;
/// Default total retry wait per pass, in seconds.
pub const DEFAULT_RETRY_BUDGET_SECS: u32 = defaults::RETRY_BUDGET_SECS;
/// Default request rate cap: below Harness's 400 external calls a minute per key.
pub const DEFAULT_MAX_REQUESTS_PER_MINUTE: u32 = defaults::MAX_REQUESTS_PER_MINUTE;
/// Default settle lag: Harness events can take minutes to become visible.
pub const DEFAULT_SETTLE_LAG_SECS: u32 = defaults::SETTLE_LAG_SECS;
/// Default overlap between windows.
pub const DEFAULT_OVERLAP_SECS: u32 = defaults::OVERLAP_SECS;
/// Default interval between reconciliations, in seconds.
pub const DEFAULT_RECONCILE_INTERVAL_SECS: u32 = defaults::RECONCILE_INTERVAL_SECS;
/// Default look-back of reconciliation, in hours.
pub const DEFAULT_RECONCILE_HOURS: u32 = defaults::RECONCILE_HOURS;
/// Default object prefix (the recipe's).
pub const DEFAULT_PREFIX: &str = "harness/audit";
/// Default checkpoint key: outside the data prefix, so a SIEM feed never ingests or deletes it.
pub const DEFAULT_STATE_KEY: &str = "harness-audit-state/checkpoint.json";
/// Default local output directory.
pub const DEFAULT_OUTPUT_DIR: &str = "./harness-audit-data";
/// Default events per object.
pub const DEFAULT_BATCH_MAX_EVENTS: u32 = defaults::BATCH_MAX_EVENTS;
/// Default cap on each HTTP timeout (connect, first byte, between bytes), in seconds.
pub const DEFAULT_HTTP_TIMEOUT_SECS: u32 = 60;
/// Default linear-memory ceiling of the component, in MiB.
pub const DEFAULT_MAX_MEMORY_MIB: u32 = 256;
/// The highest memory ceiling a setting may ask for, in MiB.
pub const MAX_MEMORY_MIB: u32 = 4096;
/// Default limit on one call into the component, in seconds. A poll reads up
/// to 20 pages, each of which may wait out timeouts and retries, so this is a
/// backstop against a component that never returns, not a pace setter.
pub const DEFAULT_POLL_TIMEOUT_SECS: u32 = 3600;
/// Default lifetime of the GCS lease, in seconds; a live holder renews it every third of that.
pub const DEFAULT_LEASE_SECS: u32 = 300;

const STATIC_FILTERS: [&str; 2] = ["EXCLUDE_LOGIN_EVENTS", "EXCLUDE_SYSTEM_EVENTS"];

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where and how to call Harness.
    pub harness: HarnessConfig,
    /// Which events to request.
    pub filters: FilterConfig,
    /// Where events and the checkpoint go.
    pub output: OutputConfig,
    /// What the component may use.
    pub limits: LimitsConfig,
    /// A fixed historical range instead of live collection (`backfill`).
    pub backfill: Option<crate::backfill::BackfillRange>,
}

/// Resource limits of the component's sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Linear-memory ceiling, in MiB.
    pub max_memory_mib: u32,
    /// Wall-clock limit on each call into the component (including its waits on HTTP), in seconds.
    pub poll_timeout_secs: u32,
}

/// Connection to the Harness API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarnessConfig {
    /// API base URL (`https://app.harness.io`, a vanity host, or `.../gateway`).
    pub api_base: Url,
    /// Account identifier.
    pub account_id: String,
    /// The API key, injected by the host into each request.
    pub api_key: ApiKey,
    /// Where the key came from (a variable or file name, never the key).
    pub api_key_source: String,
    /// Events per page, 1 to 100.
    pub page_size: u32,
    /// First pass look-back, in minutes.
    pub start_minutes_back: u32,
    /// Retries per request.
    pub max_retries: u32,
    /// First backoff delay, in milliseconds.
    pub retry_base_ms: u32,
    /// Total retry wait per pass, in seconds.
    pub retry_budget_secs: u32,
    /// Request rate cap per minute; 0 disables it.
    pub max_requests_per_minute: u32,
    /// Window end lag behind now, in seconds.
    pub settle_lag_secs: u32,
    /// Window overlap, in seconds.
    pub overlap_secs: u32,
    /// Seconds between reconciliations against Harness's hourly counts.
    pub reconcile_interval_secs: u32,
    /// Hours reconciliation looks back; 0 turns it off.
    pub reconcile_hours: u32,
    /// Which list endpoint to page.
    pub api_flavor: ApiFlavor,
    /// Cap on each HTTP timeout, in seconds.
    pub http_timeout_secs: u32,
}

/// Body filters of the list request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterConfig {
    /// `modules`, upper-cased.
    pub modules: Vec<String>,
    /// `actions`.
    pub actions: Vec<String>,
    /// `staticFilter`.
    pub static_filter: Option<String>,
    /// `principals`: who acted.
    pub principals: Vec<PrincipalFilter>,
    /// `scopes`: organizations or projects.
    pub scopes: Vec<ScopeFilter>,
    /// `resources`: resource types, optionally one resource.
    pub resources: Vec<ResourceFilter>,
    /// `environments`.
    pub environments: Vec<EnvironmentFilter>,
}

/// A `principals` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalFilter {
    /// `USER`, `SERVICE_ACCOUNT`, `API_KEY` or `SYSTEM`.
    pub kind: String,
    /// E-mail for `USER`, identifier otherwise.
    pub identifier: String,
}

/// A `scopes` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeFilter {
    /// Organization identifier.
    pub org: String,
    /// Project identifier inside it.
    pub project: Option<String>,
}

/// A `resources` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceFilter {
    /// Resource type.
    pub kind: String,
    /// One resource's identifier.
    pub identifier: Option<String>,
}

/// An `environments` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFilter {
    /// `Production` or `PreProduction`.
    pub kind: Option<String>,
    /// Environment identifier.
    pub identifier: Option<String>,
}

/// Which sink receives the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// Objects in a local directory, laid out like the GCS recipe's bucket.
    Local,
    /// NDJSON on standard output, for log shippers' exec inputs.
    Stdout,
    /// Objects in a Google Cloud Storage bucket, the checkpoint and lease beside them.
    Gcs,
}

/// Output and checkpoint location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    /// The sink.
    pub sink: SinkKind,
    /// Root directory of the local store (data for `local`, the checkpoint for both).
    pub output_dir: PathBuf,
    /// Object prefix inside the store.
    pub prefix: String,
    /// Checkpoint key inside the store.
    pub state_key: String,
    /// Events per object at most.
    pub batch_max_events: u32,
    /// The bucket, for the `gcs` sink.
    pub gcs_bucket: Option<String>,
    /// Whether GCS objects are gzip-compressed (`.jsonl.gz`, `contentEncoding: gzip`).
    pub gzip: bool,
    /// Lifetime of the GCS lease, in seconds.
    pub lease_secs: u32,
    /// How each event is written.
    pub shape: OutputShape,
    /// Attach each configuration change's YAML diff.
    pub enrich_yaml_diff: bool,
}

/// How each event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputShape {
    /// The API's list item, byte for byte.
    Raw,
    /// The audit-streaming field names the SecOps parser maps.
    Streaming,
}

/// Whether a command sends requests to Harness, and so needs the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// The command calls Harness: the key must be set.
    Required,
    /// The command only reads stored state (`ledger`): the key may be absent,
    /// and is then empty.
    NotNeeded,
}

/// An API key that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The secret, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where a setting came from, so an error can name the exact thing to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
    /// A key in the TOML file.
    File(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::Flag(name) => write!(f, "flag {name}"),
            Self::File(key) => write!(f, "config file key {key}"),
        }
    }
}

/// A configuration error; every message names the setting, what is wrong and what is accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting has an unusable value.
    #[error("{origin}: {message}")]
    Invalid {
        /// Where the value came from.
        origin: Origin,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// A required setting is absent.
    #[error("{what} is not set: {hint}")]
    Missing {
        /// The setting.
        what: &'static str,
        /// How to set it.
        hint: &'static str,
    },
    /// The TOML file cannot be read or parsed.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The reader's or parser's message.
        message: String,
    },
}

/// A raw value with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    value: T,
    origin: Origin,
}

/// Settings as given, before validation. Every layer (file, env, flags) fills one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawConfig {
    /// `HARNESS_API_BASE`.
    pub api_base: Option<Sourced<String>>,
    /// `HARNESS_ACCOUNT_ID`.
    pub account_id: Option<Sourced<String>>,
    /// `HARNESS_API_KEY`.
    pub api_key: Option<Sourced<String>>,
    /// `HARNESS_API_KEY_FILE`.
    pub api_key_file: Option<Sourced<String>>,
    /// `PAGE_SIZE`.
    pub page_size: Option<Sourced<String>>,
    /// `START_MINUTES_BACK`.
    pub start_minutes_back: Option<Sourced<String>>,
    /// `MAX_RETRIES`.
    pub max_retries: Option<Sourced<String>>,
    /// `RETRY_BASE_MS`.
    pub retry_base_ms: Option<Sourced<String>>,
    /// `HTTP_TIMEOUT_SECS`.
    pub http_timeout_secs: Option<Sourced<String>>,
    /// `RETRY_BUDGET_SECONDS`.
    pub retry_budget_secs: Option<Sourced<String>>,
    /// `MAX_REQUESTS_PER_MINUTE`.
    pub max_requests_per_minute: Option<Sourced<String>>,
    /// `SETTLE_LAG_SECONDS`.
    pub settle_lag_secs: Option<Sourced<String>>,
    /// `OVERLAP_SECONDS`.
    pub overlap_secs: Option<Sourced<String>>,
    /// `RECONCILE_INTERVAL_SECONDS`.
    pub reconcile_interval_secs: Option<Sourced<String>>,
    /// `RECONCILE_HOURS`.
    pub reconcile_hours: Option<Sourced<String>>,
    /// `HARNESS_API_FLAVOR`.
    pub api_flavor: Option<Sourced<String>>,
    /// `FILTER_MODULES`.
    pub modules: Option<Sourced<Vec<String>>>,
    /// `FILTER_ACTIONS`.
    pub actions: Option<Sourced<Vec<String>>>,
    /// `STATIC_FILTER`.
    pub static_filter: Option<Sourced<String>>,
    /// `FILTER_PRINCIPALS`.
    pub principals: Option<Sourced<Vec<String>>>,
    /// `FILTER_SCOPES`.
    pub scopes: Option<Sourced<Vec<String>>>,
    /// `FILTER_RESOURCES`.
    pub resources: Option<Sourced<Vec<String>>>,
    /// `FILTER_ENVIRONMENTS`.
    pub environments: Option<Sourced<Vec<String>>>,
    /// `ALLOW_UNKNOWN_VALUES`.
    pub allow_unknown_values: Option<Sourced<String>>,
    /// `OUTPUT_SHAPE`.
    pub output_shape: Option<Sourced<String>>,
    /// `ENRICH_YAML_DIFF`.
    pub enrich_yaml_diff: Option<Sourced<String>>,
    /// `SINK`.
    pub sink: Option<Sourced<String>>,
    /// `OUTPUT_DIR`.
    pub output_dir: Option<Sourced<String>>,
    /// `GCS_BUCKET`.
    pub gcs_bucket: Option<Sourced<String>>,
    /// `GCS_PREFIX`.
    pub prefix: Option<Sourced<String>>,
    /// `STATE_KEY`.
    pub state_key: Option<Sourced<String>>,
    /// `BATCH_MAX_EVENTS`.
    pub batch_max_events: Option<Sourced<String>>,
    /// `GZIP`.
    pub gzip: Option<Sourced<String>>,
    /// `LEASE_SECONDS`.
    pub lease_secs: Option<Sourced<String>>,
    /// `MAX_MEMORY_MIB`.
    pub max_memory_mib: Option<Sourced<String>>,
    /// `POLL_TIMEOUT_SECS`.
    pub poll_timeout_secs: Option<Sourced<String>>,
}

/// Names of every setting, for env and flags alike: (field, env var, flag).
pub const SETTINGS: [(&str, &str, &str); 36] = [
    ("api_base", "HARNESS_API_BASE", "--api-base"),
    ("account_id", "HARNESS_ACCOUNT_ID", "--account-id"),
    ("api_key", "HARNESS_API_KEY", ""),
    ("api_key_file", "HARNESS_API_KEY_FILE", "--api-key-file"),
    ("page_size", "PAGE_SIZE", "--page-size"),
    (
        "start_minutes_back",
        "START_MINUTES_BACK",
        "--start-minutes-back",
    ),
    ("max_retries", "MAX_RETRIES", "--max-retries"),
    ("retry_base_ms", "RETRY_BASE_MS", "--retry-base-ms"),
    (
        "http_timeout_secs",
        "HTTP_TIMEOUT_SECS",
        "--http-timeout-secs",
    ),
    (
        "retry_budget_secs",
        "RETRY_BUDGET_SECONDS",
        "--retry-budget-secs",
    ),
    (
        "max_requests_per_minute",
        "MAX_REQUESTS_PER_MINUTE",
        "--max-requests-per-minute",
    ),
    ("settle_lag_secs", "SETTLE_LAG_SECONDS", "--settle-lag-secs"),
    ("overlap_secs", "OVERLAP_SECONDS", "--overlap-secs"),
    (
        "reconcile_interval_secs",
        "RECONCILE_INTERVAL_SECONDS",
        "--reconcile-interval-secs",
    ),
    ("reconcile_hours", "RECONCILE_HOURS", "--reconcile-hours"),
    ("api_flavor", "HARNESS_API_FLAVOR", "--api-flavor"),
    ("modules", "FILTER_MODULES", "--modules"),
    ("actions", "FILTER_ACTIONS", "--actions"),
    ("static_filter", "STATIC_FILTER", "--static-filter"),
    ("principals", "FILTER_PRINCIPALS", "--principals"),
    ("scopes", "FILTER_SCOPES", "--scopes"),
    ("resources", "FILTER_RESOURCES", "--resources"),
    ("environments", "FILTER_ENVIRONMENTS", "--environments"),
    (
        "allow_unknown_values",
        "ALLOW_UNKNOWN_VALUES",
        "--allow-unknown-values",
    ),
    ("sink", "SINK", "--sink"),
    ("output_dir", "OUTPUT_DIR", "--output-dir"),
    ("gcs_bucket", "GCS_BUCKET", "--gcs-bucket"),
    ("prefix", "GCS_PREFIX", "--prefix"),
    ("state_key", "STATE_KEY", "--state-key"),
    ("batch_max_events", "BATCH_MAX_EVENTS", "--batch-max-events"),
    ("gzip", "GZIP", "--gzip"),
    ("output_shape", "OUTPUT_SHAPE", "--output-shape"),
    ("enrich_yaml_diff", "ENRICH_YAML_DIFF", "--enrich-yaml-diff"),
    ("lease_secs", "LEASE_SECONDS", "--lease-secs"),
    ("max_memory_mib", "MAX_MEMORY_MIB", "--max-memory-mib"),
    (
        "poll_timeout_secs",
        "POLL_TIMEOUT_SECS",
        "--poll-timeout-secs",
    ),
];

impl RawConfig {
    /// Reads the recipe's environment variables through `lookup`. Empty
    /// values count as unset, as in the recipe.
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut raw = Self::default();
        for (field, env, _) in SETTINGS {
            if let Some(value) = lookup(env).filter(|v| !v.trim().is_empty()) {
                raw.set(field, value, Origin::Env(env));
            }
        }
        raw
    }

    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Reads parsed command-line flags, given as (flag, value) pairs.
    pub fn from_flags(flags: impl IntoIterator<Item = (&'static str, Option<String>)>) -> Self {
        let mut raw = Self::default();
        for (flag, value) in flags {
            let Some(value) = value else { continue };
            let (field, _, flag) = SETTINGS
                .into_iter()
                .find(|(_, _, f)| *f == flag)
                .expect("every flag is listed in SETTINGS");
            raw.set(field, value, Origin::Flag(flag));
        }
        raw
    }

    pub(crate) fn set(&mut self, field: &str, value: String, origin: Origin) {
        if let Some(slot) = self.list_slot(field) {
            let value = value
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            *slot = Some(Sourced { value, origin });
            return;
        }
        let slot = match field {
            "api_base" => &mut self.api_base,
            "account_id" => &mut self.account_id,
            "api_key" => &mut self.api_key,
            "api_key_file" => &mut self.api_key_file,
            "page_size" => &mut self.page_size,
            "start_minutes_back" => &mut self.start_minutes_back,
            "max_retries" => &mut self.max_retries,
            "retry_base_ms" => &mut self.retry_base_ms,
            "http_timeout_secs" => &mut self.http_timeout_secs,
            "retry_budget_secs" => &mut self.retry_budget_secs,
            "max_requests_per_minute" => &mut self.max_requests_per_minute,
            "settle_lag_secs" => &mut self.settle_lag_secs,
            "overlap_secs" => &mut self.overlap_secs,
            "reconcile_interval_secs" => &mut self.reconcile_interval_secs,
            "reconcile_hours" => &mut self.reconcile_hours,
            "api_flavor" => &mut self.api_flavor,
            "static_filter" => &mut self.static_filter,
            "sink" => &mut self.sink,
            "output_dir" => &mut self.output_dir,
            "gcs_bucket" => &mut self.gcs_bucket,
            "prefix" => &mut self.prefix,
            "state_key" => &mut self.state_key,
            "batch_max_events" => &mut self.batch_max_events,
            "gzip" => &mut self.gzip,
            "lease_secs" => &mut self.lease_secs,
            "allow_unknown_values" => &mut self.allow_unknown_values,
            "output_shape" => &mut self.output_shape,
            "enrich_yaml_diff" => &mut self.enrich_yaml_diff,
            "max_memory_mib" => &mut self.max_memory_mib,
            "poll_timeout_secs" => &mut self.poll_timeout_secs,
            other => unreachable!("SETTINGS names an unknown field {other}"),
        };
        *slot = Some(Sourced { value, origin });
    }

    /// The setting's slot if it is a list (comma-separated in env and flags).
    fn list_slot(&mut self, field: &str) -> Option<&mut Option<Sourced<Vec<String>>>> {
        Some(match field {
            "modules" => &mut self.modules,
            "actions" => &mut self.actions,
            "principals" => &mut self.principals,
            "scopes" => &mut self.scopes,
            "resources" => &mut self.resources,
            "environments" => &mut self.environments,
            _ => return None,
        })
    }

    /// Reads a TOML file (`[harness]`, `[filters]`, `[output]` tables).
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::File {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        if table
            .get("harness")
            .and_then(|h| h.get("api_key"))
            .is_some()
        {
            return Err("`api_key` is not accepted in a config file, which tends to be committed and copied: \
                        set HARNESS_API_KEY, or `api_key_file` to a file holding the key"
                .into());
        }
        // Parsed again from text so errors keep their line and column.
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut raw = Self::default();
        let sections: [(&str, BTreeMap<&str, Option<TomlValue>>); 4] = [
            ("harness", file.harness.into_map()),
            ("filters", file.filters.into_map()),
            ("output", file.output.into_map()),
            ("limits", file.limits.into_map()),
        ];
        for (section, map) in sections {
            for (key, value) in map {
                let Some(value) = value else { continue };
                let origin = Origin::File(format!("{section}.{key}"));
                let field = match key {
                    "gcs_prefix" => "prefix",
                    other => other,
                };
                match value {
                    TomlValue::List(items) => {
                        *raw.list_slot(field)
                            .expect("only list settings are TOML lists") = Some(Sourced {
                            value: items,
                            origin,
                        });
                    }
                    TomlValue::Scalar(text) => raw.set(field, text, origin),
                }
            }
        }
        Ok(raw)
    }

    /// This layer, with gaps filled from `lower`.
    pub fn over(self, lower: Self) -> Self {
        Self {
            api_base: self.api_base.or(lower.api_base),
            account_id: self.account_id.or(lower.account_id),
            api_key: self.api_key.or(lower.api_key),
            api_key_file: self.api_key_file.or(lower.api_key_file),
            page_size: self.page_size.or(lower.page_size),
            start_minutes_back: self.start_minutes_back.or(lower.start_minutes_back),
            max_retries: self.max_retries.or(lower.max_retries),
            retry_base_ms: self.retry_base_ms.or(lower.retry_base_ms),
            http_timeout_secs: self.http_timeout_secs.or(lower.http_timeout_secs),
            retry_budget_secs: self.retry_budget_secs.or(lower.retry_budget_secs),
            max_requests_per_minute: self
                .max_requests_per_minute
                .or(lower.max_requests_per_minute),
            settle_lag_secs: self.settle_lag_secs.or(lower.settle_lag_secs),
            overlap_secs: self.overlap_secs.or(lower.overlap_secs),
            reconcile_interval_secs: self
                .reconcile_interval_secs
                .or(lower.reconcile_interval_secs),
            reconcile_hours: self.reconcile_hours.or(lower.reconcile_hours),
            api_flavor: self.api_flavor.or(lower.api_flavor),
            modules: self.modules.or(lower.modules),
            actions: self.actions.or(lower.actions),
            static_filter: self.static_filter.or(lower.static_filter),
            principals: self.principals.or(lower.principals),
            scopes: self.scopes.or(lower.scopes),
            resources: self.resources.or(lower.resources),
            environments: self.environments.or(lower.environments),
            allow_unknown_values: self.allow_unknown_values.or(lower.allow_unknown_values),
            output_shape: self.output_shape.or(lower.output_shape),
            enrich_yaml_diff: self.enrich_yaml_diff.or(lower.enrich_yaml_diff),
            sink: self.sink.or(lower.sink),
            output_dir: self.output_dir.or(lower.output_dir),
            gcs_bucket: self.gcs_bucket.or(lower.gcs_bucket),
            prefix: self.prefix.or(lower.prefix),
            state_key: self.state_key.or(lower.state_key),
            batch_max_events: self.batch_max_events.or(lower.batch_max_events),
            gzip: self.gzip.or(lower.gzip),
            lease_secs: self.lease_secs.or(lower.lease_secs),
            max_memory_mib: self.max_memory_mib.or(lower.max_memory_mib),
            poll_timeout_secs: self.poll_timeout_secs.or(lower.poll_timeout_secs),
        }
    }

    /// Validates everything; the first problem found is returned.
    pub fn validate(self) -> Result<Config, ConfigError> {
        self.validate_for(KeyUse::Required)
    }

    /// Validates everything for a command that may not need the API key:
    /// with [`KeyUse::NotNeeded`], an absent key is no error (a given one is
    /// still checked).
    pub fn validate_for(self, key_use: KeyUse) -> Result<Config, ConfigError> {
        let api_base = parse_api_base(self.api_base)?;
        let account_id = self.account_id.ok_or(ConfigError::Missing {
            what: "HARNESS_ACCOUNT_ID",
            hint: "set it to your Harness account identifier (Account Settings > Overview)",
        })?;
        if !is_identifier(&account_id.value) {
            return Err(invalid(
                &account_id,
                "must be a Harness identifier: letters, digits, `_` or `-`",
            ));
        }
        let (api_key, api_key_source) = match (key_use, self.api_key, self.api_key_file) {
            (KeyUse::NotNeeded, None, None) => (ApiKey(String::new()), "not needed".to_owned()),
            (_, inline, file) => resolve_api_key(inline, file, &account_id)?,
        };
        let page_size = number(self.page_size, DEFAULT_PAGE_SIZE, 1..=100)?;
        let harness = HarnessConfig {
            api_key_source,
            api_base,
            api_key,
            page_size,
            start_minutes_back: number(
                self.start_minutes_back,
                DEFAULT_START_MINUTES_BACK,
                0..=1_051_200,
            )?,
            max_retries: number(self.max_retries, DEFAULT_MAX_RETRIES, 0..=20)?,
            retry_base_ms: number(self.retry_base_ms, DEFAULT_RETRY_BASE_MS, 0..=60_000)?,
            http_timeout_secs: number(self.http_timeout_secs, DEFAULT_HTTP_TIMEOUT_SECS, 1..=600)?,
            retry_budget_secs: number(
                self.retry_budget_secs,
                DEFAULT_RETRY_BUDGET_SECS,
                0..=86_400,
            )?,
            max_requests_per_minute: number(
                self.max_requests_per_minute,
                DEFAULT_MAX_REQUESTS_PER_MINUTE,
                0..=100_000,
            )?,
            settle_lag_secs: number(self.settle_lag_secs, DEFAULT_SETTLE_LAG_SECS, 0..=604_800)?,
            overlap_secs: number(self.overlap_secs, DEFAULT_OVERLAP_SECS, 0..=604_800)?,
            reconcile_interval_secs: number(
                self.reconcile_interval_secs,
                DEFAULT_RECONCILE_INTERVAL_SECS,
                1..=settings::MAX_RECONCILE_INTERVAL_SECS,
            )?,
            reconcile_hours: number(
                self.reconcile_hours,
                DEFAULT_RECONCILE_HOURS,
                0..=settings::MAX_RECONCILE_HOURS,
            )?,
            api_flavor: match self.api_flavor {
                None => ApiFlavor::List,
                Some(f) => match f.value.as_str() {
                    "list" => ApiFlavor::List,
                    "list-v2" => ApiFlavor::ListV2,
                    _ => {
                        return Err(invalid(
                            &f,
                            "must be `list` (the verified offset-paged API) or `list-v2` (cursor-paged, unverified)",
                        ));
                    }
                },
            },
            account_id: account_id.value,
        };
        let allow_unknown = match &self.allow_unknown_values {
            None => false,
            Some(a) => boolean(a)?,
        };
        let filters = FilterConfig {
            modules: each(self.modules, |v| filters::module(v, allow_unknown))?,
            actions: each(self.actions, |v| filters::action(v, allow_unknown))?,
            principals: each(self.principals, |v| filters::principal(v, allow_unknown))?,
            scopes: each(self.scopes, filters::scope)?,
            resources: each(self.resources, |v| filters::resource(v, allow_unknown))?,
            environments: each(self.environments, filters::environment)?,
            static_filter: match self.static_filter {
                Some(s) if STATIC_FILTERS.contains(&s.value.as_str()) => Some(s.value),
                Some(s) => {
                    return Err(invalid(
                        &s,
                        &format!("must be one of {}", STATIC_FILTERS.join(", ")),
                    ));
                }
                None => None,
            },
        };
        let gcs_bucket = self.gcs_bucket.map(bucket_name).transpose()?;
        // The recipe sets only GCS_BUCKET, so a bucket alone selects the GCS sink.
        let sink = match &self.sink {
            None if gcs_bucket.is_some() => SinkKind::Gcs,
            None => SinkKind::Local,
            Some(s) => match s.value.as_str() {
                "local" => SinkKind::Local,
                "stdout" => SinkKind::Stdout,
                "gcs" => SinkKind::Gcs,
                _ => return Err(invalid(s, "must be `gcs`, `local` or `stdout`")),
            },
        };
        if sink == SinkKind::Gcs && gcs_bucket.is_none() {
            return Err(ConfigError::Missing {
                what: "GCS_BUCKET",
                hint: "SINK=gcs needs the bucket name, e.g. GCS_BUCKET=my-secops-bucket",
            });
        }
        let gzip = match &self.gzip {
            None => false,
            Some(g) => boolean(g)?,
        };
        if gzip && sink != SinkKind::Gcs {
            return Err(ConfigError::Missing {
                what: "GCS_BUCKET",
                hint: "GZIP=true compresses GCS objects only; set GCS_BUCKET, or unset GZIP",
            });
        }
        let prefix = relative_key(self.prefix, DEFAULT_PREFIX)?;
        let state_key = relative_key(self.state_key, DEFAULT_STATE_KEY)?;
        // A batch holds whole pages, so it could not stay under a limit below one page.
        let batch_origin = self.batch_max_events.as_ref().map(|s| s.origin.clone());
        let batch_max_events = number(self.batch_max_events, DEFAULT_BATCH_MAX_EVENTS, 1..=20_000)?;
        if batch_max_events < harness.page_size {
            return Err(ConfigError::Invalid {
                origin: batch_origin.unwrap_or(Origin::Env("BATCH_MAX_EVENTS")),
                message: format!(
                    "{batch_max_events} is below PAGE_SIZE ({}): a batch holds whole pages; raise it or lower PAGE_SIZE",
                    harness.page_size
                ),
            });
        }
        let output_dir = PathBuf::from(
            self.output_dir
                .map_or_else(|| DEFAULT_OUTPUT_DIR.to_owned(), |d| d.value),
        );
        Ok(Config {
            harness,
            filters,
            output: OutputConfig {
                sink,
                output_dir,
                prefix,
                state_key,
                batch_max_events,
                gcs_bucket,
                gzip,
                lease_secs: number(self.lease_secs, DEFAULT_LEASE_SECS, 30..=86_400)?,
                enrich_yaml_diff: match &self.enrich_yaml_diff {
                    None => false,
                    Some(e) => boolean(e)?,
                },
                shape: match self.output_shape {
                    None => OutputShape::Raw,
                    Some(s) => match s.value.trim().to_ascii_lowercase().as_str() {
                        "raw" => OutputShape::Raw,
                        "streaming" => OutputShape::Streaming,
                        _ => {
                            return Err(invalid(
                                &s,
                                "must be `raw` (the API's objects, byte for byte) or `streaming` (audit-streaming field names)",
                            ));
                        }
                    },
                },
            },
            backfill: None,
            limits: LimitsConfig {
                max_memory_mib: number(
                    self.max_memory_mib,
                    DEFAULT_MAX_MEMORY_MIB,
                    16..=MAX_MEMORY_MIB,
                )?,
                poll_timeout_secs: number(
                    self.poll_timeout_secs,
                    DEFAULT_POLL_TIMEOUT_SECS,
                    1..=86_400,
                )?,
            },
        })
    }
}

impl OutputConfig {
    /// Whether the checkpoint sits inside the data prefix, where a SIEM feed would read it.
    pub fn state_inside_prefix(&self) -> bool {
        self.state_key.starts_with(&format!("{}/", self.prefix))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    harness: HarnessSection,
    #[serde(default)]
    filters: FiltersSection,
    #[serde(default)]
    output: OutputSection,
    #[serde(default)]
    limits: LimitsSection,
}

/// `[limits]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_memory_mib: Option<u32>,
    poll_timeout_secs: Option<u32>,
}

impl LimitsSection {
    fn into_map(self) -> BTreeMap<&'static str, Option<TomlValue>> {
        BTreeMap::from([
            ("max_memory_mib", scalar(self.max_memory_mib)),
            ("poll_timeout_secs", scalar(self.poll_timeout_secs)),
        ])
    }
}

/// `[harness]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HarnessSection {
    api_base: Option<String>,
    account_id: Option<String>,
    api_key_file: Option<String>,
    page_size: Option<u32>,
    start_minutes_back: Option<u32>,
    max_retries: Option<u32>,
    retry_base_ms: Option<u32>,
    http_timeout_secs: Option<u32>,
    retry_budget_secs: Option<u32>,
    max_requests_per_minute: Option<u32>,
    settle_lag_secs: Option<u32>,
    overlap_secs: Option<u32>,
    reconcile_interval_secs: Option<u32>,
    reconcile_hours: Option<u32>,
    api_flavor: Option<String>,
}

/// `[filters]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FiltersSection {
    modules: Option<Vec<String>>,
    actions: Option<Vec<String>>,
    static_filter: Option<String>,
    principals: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    resources: Option<Vec<String>>,
    environments: Option<Vec<String>>,
    allow_unknown_values: Option<bool>,
}

/// `[output]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OutputSection {
    sink: Option<String>,
    output_dir: Option<String>,
    gcs_bucket: Option<String>,
    gcs_prefix: Option<String>,
    state_key: Option<String>,
    batch_max_events: Option<u32>,
    gzip: Option<bool>,
    lease_secs: Option<u32>,
    output_shape: Option<String>,
    enrich_yaml_diff: Option<bool>,
}

enum TomlValue {
    Scalar(String),
    List(Vec<String>),
}

fn scalar(v: Option<impl ToString>) -> Option<TomlValue> {
    v.map(|v| TomlValue::Scalar(v.to_string()))
}

impl HarnessSection {
    fn into_map(self) -> BTreeMap<&'static str, Option<TomlValue>> {
        BTreeMap::from([
            ("api_base", scalar(self.api_base)),
            ("account_id", scalar(self.account_id)),
            ("api_key_file", scalar(self.api_key_file)),
            ("page_size", scalar(self.page_size)),
            ("start_minutes_back", scalar(self.start_minutes_back)),
            ("max_retries", scalar(self.max_retries)),
            ("retry_base_ms", scalar(self.retry_base_ms)),
            ("http_timeout_secs", scalar(self.http_timeout_secs)),
            ("retry_budget_secs", scalar(self.retry_budget_secs)),
            (
                "max_requests_per_minute",
                scalar(self.max_requests_per_minute),
            ),
            ("settle_lag_secs", scalar(self.settle_lag_secs)),
            ("overlap_secs", scalar(self.overlap_secs)),
            (
                "reconcile_interval_secs",
                scalar(self.reconcile_interval_secs),
            ),
            ("reconcile_hours", scalar(self.reconcile_hours)),
            ("api_flavor", scalar(self.api_flavor)),
        ])
    }
}

impl FiltersSection {
    fn into_map(self) -> BTreeMap<&'static str, Option<TomlValue>> {
        BTreeMap::from([
            ("modules", self.modules.map(TomlValue::List)),
            ("actions", self.actions.map(TomlValue::List)),
            ("static_filter", scalar(self.static_filter)),
            ("principals", self.principals.map(TomlValue::List)),
            ("scopes", self.scopes.map(TomlValue::List)),
            ("resources", self.resources.map(TomlValue::List)),
            ("environments", self.environments.map(TomlValue::List)),
            ("allow_unknown_values", scalar(self.allow_unknown_values)),
        ])
    }
}

impl OutputSection {
    fn into_map(self) -> BTreeMap<&'static str, Option<TomlValue>> {
        BTreeMap::from([
            ("sink", scalar(self.sink)),
            ("output_dir", scalar(self.output_dir)),
            ("gcs_bucket", scalar(self.gcs_bucket)),
            ("gcs_prefix", scalar(self.gcs_prefix)),
            ("state_key", scalar(self.state_key)),
            ("batch_max_events", scalar(self.batch_max_events)),
            ("gzip", scalar(self.gzip)),
            ("lease_secs", scalar(self.lease_secs)),
            ("output_shape", scalar(self.output_shape)),
            ("enrich_yaml_diff", scalar(self.enrich_yaml_diff)),
        ])
    }
}

fn invalid<T>(s: &Sourced<T>, message: &str) -> ConfigError {
    ConfigError::Invalid {
        origin: s.origin.clone(),
        message: message.to_owned(),
    }
}

fn is_identifier(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_api_base(raw: Option<Sourced<String>>) -> Result<Url, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Url::parse(DEFAULT_API_BASE).expect("the default is a valid URL"));
    };
    let url = Url::parse(raw.value.trim()).map_err(|e| {
        invalid(
            &raw,
            &format!(
                "`{}` is not a URL ({e}); expected e.g. {DEFAULT_API_BASE}",
                raw.value
            ),
        )
    })?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(invalid(
                &raw,
                "must use https:// (plain http is accepted only for 127.0.0.1, localhost or [::1])",
            ));
        }
        other => {
            return Err(invalid(
                &raw,
                &format!("scheme `{other}` is not supported; use https://"),
            ));
        }
    }
    if url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(invalid(
            &raw,
            "must be a base URL with a host and no credentials, query or fragment",
        ));
    }
    Ok(url)
}

fn resolve_api_key(
    inline: Option<Sourced<String>>,
    file: Option<Sourced<String>>,
    account: &Sourced<String>,
) -> Result<(ApiKey, String), ConfigError> {
    let (key, origin, source) = match (inline, file) {
        (Some(k), _) => {
            let source = k.origin.to_string();
            (k.value, k.origin, source)
        }
        (None, Some(f)) => {
            let text = std::fs::read_to_string(&f.value).map_err(|e| {
                invalid(&f, &format!("cannot read the key file `{}`: {e}", f.value))
            })?;
            let source = format!("file {} (named by {})", f.value, f.origin);
            (text, f.origin, source)
        }
        (None, None) => {
            return Err(ConfigError::Missing {
                what: "HARNESS_API_KEY",
                hint: "set HARNESS_API_KEY, or HARNESS_API_KEY_FILE / --api-key-file to a file holding the key \
                       (a Harness PAT or SAT with core_audit_view)",
            });
        }
    };
    let key = key.trim().to_owned();
    let parts: Vec<&str> = key.split('.').collect();
    // Messages below never quote the key: it is a secret.
    if !(3..=4).contains(&parts.len())
        || parts.iter().any(|p| p.is_empty())
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ConfigError::Invalid {
            origin,
            message: "is not a Harness API key: expected `pat.<account>.<id>.<secret>` or `sat.<account>.<id>.<secret>`"
                .into(),
        });
    }
    if parts.len() == 4 && parts[1] != account.value {
        return Err(ConfigError::Invalid {
            origin,
            message: format!(
                "is a key of account `{}`, but the account configured by {} is `{}`",
                parts[1], account.origin, account.value
            ),
        });
    }
    Ok((ApiKey(key), source))
}

fn number(
    raw: Option<Sourced<String>>,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ConfigError> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.value.trim().parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(invalid(
            &raw,
            &format!(
                "`{}` is not a whole number from {} to {}",
                raw.value,
                range.start(),
                range.end()
            ),
        )),
    }
}

fn boolean(raw: &Sourced<String>) -> Result<bool, ConfigError> {
    match raw.value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(invalid(raw, "must be `true` or `false`")),
    }
}

/// Parses every entry of a list setting; the error names the setting and the entry.
fn each<T>(
    raw: Option<Sourced<Vec<String>>>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.value
        .iter()
        .map(|v| parse(v).map_err(|message| invalid(&raw, &message)))
        .collect()
}

/// GCS bucket naming rules, checked here so a typo fails before any request.
fn bucket_name(raw: Sourced<String>) -> Result<String, ConfigError> {
    let name = raw
        .value
        .trim()
        .trim_start_matches("gs://")
        .trim_end_matches('/');
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    let ends_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !(3..=222).contains(&name.len()) || !valid_chars || !ends_ok {
        return Err(invalid(
            &raw,
            &format!(
                "`{}` is not a GCS bucket name: use the bare name (3-63 lower-case letters, digits, `-`, `_`, `.`), \
                 e.g. my-secops-bucket; put any path in GCS_PREFIX",
                raw.value
            ),
        ));
    }
    Ok(name.to_owned())
}

fn relative_key(raw: Option<Sourced<String>>, default: &str) -> Result<String, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default.to_owned());
    };
    let key = raw.value.trim().trim_matches('/').to_owned();
    let path = Path::new(&key);
    if key.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(invalid(
            &raw,
            "must be a relative object path such as `harness/audit`, without `.` or `..` parts",
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests;
