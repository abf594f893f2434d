//! Configuration: one typed struct per concern, read from a TOML file, the
//! environment (the Cloud Run recipe's variables keep working) and flags, in
//! that order of precedence (flags win), and validated once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

pub use harness_audit_core::settings::{
    ApiFlavor, EnvironmentFilter, OutputShape, PrincipalFilter, ResourceFilter, ScopeFilter,
    Settings,
};
use harness_audit_settings::{self as table, Kind, Section, Setting};

use crate::evidence::SigningKey;
use url::Url;

pub mod filters;
mod flags;
mod range;
pub mod tenants;

pub use flags::SettingFlags;
pub use range::BackfillRange;

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// What the component receives: the core's settings (query, window,
    /// retries, output shape and batching), validated here against the
    /// core's own ranges.
    pub source: Settings,
    /// What only the host holds about Harness: the key and the egress limits.
    pub harness: HarnessConfig,
    /// Where events and the checkpoint go.
    pub output: OutputConfig,
    /// What the component may use.
    pub limits: LimitsConfig,
    /// A fixed historical range instead of live collection (`backfill`).
    pub backfill: Option<BackfillRange>,
}

impl Config {
    /// Makes this a backfill of `range`, with its own checkpoint beside the
    /// live one, so it never touches the live collection's progress.
    pub fn set_backfill(&mut self, range: BackfillRange) {
        self.output.state_key = range.state_key(&self.output.state_key);
        self.backfill = Some(range);
    }
}

/// Resource limits of the component's sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Linear-memory ceiling, in MiB.
    pub max_memory_mib: u32,
    /// Wall-clock limit on each call into the component (including its waits on HTTP), in seconds.
    pub poll_timeout_secs: u32,
    /// CPU time one pass may use, in seconds.
    pub max_pass_cpu_secs: u32,
    /// Batches one pass may store.
    pub max_pass_batches: u32,
    /// NDJSON one pass may store, in MiB.
    pub max_pass_mib: u32,
}

/// What the host alone holds about Harness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarnessConfig {
    /// API base URL (`https://app.harness.io`, a vanity host, or `.../gateway`):
    /// the one origin the egress policy lets through.
    pub api_base: Url,
    /// The API key, injected by the host into each request.
    pub api_key: ApiKey,
    /// Where the key came from (a variable or file name, never the key).
    pub api_key_source: String,
    /// Cap on each HTTP timeout, in seconds.
    pub http_timeout_secs: u32,
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
    /// The bucket, for the `gcs` sink.
    pub gcs_bucket: Option<String>,
    /// Base URL of the Cloud Storage JSON API.
    pub gcs_endpoint: String,
    /// Whether GCS objects are gzip-compressed (`.jsonl.gz`, `contentEncoding: gzip`).
    pub gzip: bool,
    /// Lifetime of the GCS lease, in seconds.
    pub lease_secs: u32,
    /// Retention set on GCS data objects and digests.
    pub retention: Option<Retention>,
    /// The key file that signs digests, checked readable at validation.
    pub signing_key_file: Option<PathBuf>,
}

/// Object retention: GCS refuses to delete or replace an object before its
/// retention ends. A locked retention cannot be shortened or removed, even
/// by the bucket's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days from the upload.
    pub days: u32,
    /// Locked rather than unlocked.
    pub locked: bool,
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
    /// The built-in default of the setting read from this variable.
    Default(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::Flag(name) => write!(f, "flag --{name}"),
            Self::File(key) => write!(f, "config file key {key}"),
            Self::Default(name) => write!(f, "the default of {name}"),
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

/// A value as given: one text, or a list (comma-separated in the
/// environment and flags, an array in TOML).
#[derive(Clone, PartialEq, Eq)]
enum RawValue {
    One(String),
    Many(Vec<String>),
}

/// Settings as given, before validation. Every layer (file, env, flags) fills one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawConfig {
    values: BTreeMap<&'static str, Sourced<RawValue>>,
}

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, sourced) in &self.values {
            let secret = table::by_key(key).is_some_and(|s| s.secret);
            match &sourced.value {
                _ if secret => map.entry(key, &"<redacted>"),
                RawValue::One(v) => map.entry(key, v),
                RawValue::Many(v) => map.entry(key, v),
            };
        }
        map.finish()
    }
}

impl RawConfig {
    /// Reads the recipe's environment variables through `lookup`. Empty
    /// values count as unset, as in the recipe.
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut raw = Self::default();
        for setting in table::ALL {
            if let Some(value) = lookup(setting.env).filter(|v| !v.trim().is_empty()) {
                raw.set(setting, value, Origin::Env(setting.env));
            }
        }
        raw
    }

    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Sets `setting` from text: a list setting splits it at commas.
    pub fn set(&mut self, setting: &'static Setting, value: String, origin: Origin) {
        let value = match setting.kind {
            Kind::List => RawValue::Many(table::list(&value)),
            _ => RawValue::One(value),
        };
        self.values.insert(setting.key, Sourced { value, origin });
    }

    /// Sets `setting` from a TOML value, which must have the setting's type.
    pub fn set_toml(
        &mut self,
        setting: &'static Setting,
        value: &toml::Value,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        let value = match (&setting.kind, value) {
            (Kind::Number { .. }, toml::Value::Integer(n)) => RawValue::One(n.to_string()),
            (Kind::Bool { .. }, toml::Value::Boolean(b)) => RawValue::One(b.to_string()),
            (Kind::Choice { .. } | Kind::Text { .. }, toml::Value::String(s)) => {
                RawValue::One(s.clone())
            }
            (Kind::List, toml::Value::Array(items)) => RawValue::Many(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or_else(|| ConfigError::Invalid {
                        origin: origin.clone(),
                        message: "must be an array of strings, e.g. [\"CD\", \"PMS\"]".into(),
                    })?,
            ),
            (kind, other) => {
                return Err(ConfigError::Invalid {
                    origin,
                    message: format!("must be {}, not a {}", toml_type(kind), other.type_str()),
                });
            }
        };
        self.values.insert(setting.key, Sourced { value, origin });
        Ok(())
    }

    /// Reads a TOML file (`[harness]`, `[filters]`, `[output]`, `[limits]` tables).
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::File { message, .. } => ConfigError::File {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text. A syntax error is a [`ConfigError::File`] with an
    /// empty path, which [`RawConfig::from_toml_file`] fills in.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: toml::Table = toml::from_str(text).map_err(|e| ConfigError::File {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let mut raw = Self::default();
        for (name, section) in &file {
            let known = Section::ALL.into_iter().find(|s| s.name() == name);
            let (Some(known), toml::Value::Table(section)) = (known, section) else {
                return Err(ConfigError::Invalid {
                    origin: Origin::File(name.clone()),
                    message: "is not a section: a config file has only [harness], [filters], [output] and [limits] tables"
                        .into(),
                });
            };
            for (key, value) in section {
                let origin = Origin::File(format!("{name}.{key}"));
                let setting = table::ALL
                    .into_iter()
                    .find(|s| s.key == key && s.section == known);
                match setting {
                    Some(s) if s.secret => {
                        return Err(ConfigError::Invalid {
                            origin,
                            message: format!(
                                "is not accepted in a config file, which tends to be committed and copied: \
                                 set {}, or `{}` to a file holding the key",
                                s.env,
                                table::API_KEY_FILE.key
                            ),
                        });
                    }
                    Some(s) => raw.set_toml(s, value, origin)?,
                    None => {
                        let message = match table::by_key(key) {
                            Some(s) => format!("belongs in [{}], not [{name}]", s.section.name()),
                            None => format!("is not a setting; [{name}] takes {}", keys_of(known)),
                        };
                        return Err(ConfigError::Invalid { origin, message });
                    }
                }
            }
        }
        Ok(raw)
    }

    /// This layer, with gaps filled from `lower`.
    pub fn over(mut self, lower: Self) -> Self {
        for (key, value) in lower.values {
            self.values.entry(key).or_insert(value);
        }
        self
    }

    fn take(&mut self, setting: &Setting) -> Option<Sourced<String>> {
        self.values.remove(setting.key).map(|s| Sourced {
            value: match s.value {
                RawValue::One(v) => v,
                RawValue::Many(v) => v.join(","),
            },
            origin: s.origin,
        })
    }

    fn take_list(&mut self, setting: &Setting) -> Option<Sourced<Vec<String>>> {
        self.values.remove(setting.key).map(|s| Sourced {
            value: match s.value {
                RawValue::One(v) => vec![v],
                RawValue::Many(v) => v,
            },
            origin: s.origin,
        })
    }

    fn number(&mut self, setting: &Setting) -> Result<u32, ConfigError> {
        let Kind::Number { default, range } = &setting.kind else {
            unreachable!("{} is not a number", setting.env)
        };
        let Some(raw) = self.take(setting) else {
            return Ok(*default);
        };
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

    fn boolean(&mut self, setting: &Setting) -> Result<bool, ConfigError> {
        let Kind::Bool { default } = setting.kind else {
            unreachable!("{} is not a boolean", setting.env)
        };
        let Some(raw) = self.take(setting) else {
            return Ok(default);
        };
        table::boolean(&raw.value).ok_or_else(|| invalid(&raw, "must be `true` or `false`"))
    }

    /// The chosen value in its canonical spelling, or the default.
    fn choice(&mut self, setting: &Setting) -> Result<Option<&'static str>, ConfigError> {
        let Kind::Choice { default, .. } = setting.kind else {
            unreachable!("{} is not a choice", setting.env)
        };
        let Some(raw) = self.take(setting) else {
            return Ok(default);
        };
        match setting.choice(&raw.value) {
            Some(c) => Ok(Some(c)),
            None => Err(invalid(
                &raw,
                &format!(
                    "`{}` is not one of {}",
                    raw.value.trim(),
                    table::accepts(&setting.kind)
                ),
            )),
        }
    }

    /// The text, or the default.
    fn text(&mut self, setting: &Setting) -> Option<Sourced<String>> {
        let Kind::Text { default } = setting.kind else {
            unreachable!("{} is not text", setting.env)
        };
        self.take(setting).or_else(|| {
            default.map(|d| Sourced {
                value: d.to_owned(),
                origin: Origin::Default(setting.env),
            })
        })
    }

    /// Validates everything; the first problem found is returned.
    pub fn validate(self) -> Result<Config, ConfigError> {
        self.validate_for(KeyUse::Required)
    }

    /// Validates everything for a command that may not need the API key:
    /// with [`KeyUse::NotNeeded`], an absent key is no error (a given one is
    /// still checked).
    pub fn validate_for(mut self, key_use: KeyUse) -> Result<Config, ConfigError> {
        let api_base = parse_base_url(self.text(&table::API_BASE), &table::API_BASE)?;
        let account_id = self.text(&table::ACCOUNT_ID).ok_or(ConfigError::Missing {
            what: table::ACCOUNT_ID.env,
            hint: "set it to your Harness account identifier (Account Settings > Overview)",
        })?;
        if !is_identifier(&account_id.value) {
            return Err(invalid(
                &account_id,
                "must be a Harness identifier: letters, digits, `_` or `-`",
            ));
        }
        let inline_key = self.take(&table::API_KEY);
        let key_file = self.text(&table::API_KEY_FILE);
        let (api_key, api_key_source) = match (key_use, inline_key, key_file) {
            (KeyUse::NotNeeded, None, None) => (ApiKey(String::new()), "not needed".to_owned()),
            (_, inline, file) => resolve_api_key(inline, file, &account_id)?,
        };
        let allow_unknown = self.boolean(&table::ALLOW_UNKNOWN_VALUES)?;
        let page_size = self.number(&table::PAGE_SIZE)?;
        // A batch holds whole pages, so it could not stay under a limit below one page.
        let batch_origin = self
            .values
            .get(table::BATCH_MAX_EVENTS.key)
            .map(|s| s.origin.clone());
        let batch_max_events = self.number(&table::BATCH_MAX_EVENTS)?;
        if batch_max_events < page_size {
            return Err(ConfigError::Invalid {
                origin: batch_origin.unwrap_or(Origin::Default(table::BATCH_MAX_EVENTS.env)),
                message: format!(
                    "{batch_max_events} is below PAGE_SIZE ({page_size}): a batch holds whole pages; raise it or lower PAGE_SIZE"
                ),
            });
        }
        let source = Settings {
            query: harness_audit_core::settings::Query {
                api_base: api_base.as_str().trim_end_matches('/').to_owned(),
                account_id: account_id.value,
                page_size,
                api_flavor: match self.choice(&table::API_FLAVOR)? {
                    Some("list-v2") => ApiFlavor::ListV2,
                    _ => ApiFlavor::List,
                },
                modules: each(self.take_list(&table::MODULES), |v| {
                    filters::module(v, allow_unknown)
                })?,
                actions: each(self.take_list(&table::ACTIONS), |v| {
                    filters::action(v, allow_unknown)
                })?,
                static_filter: self.choice(&table::STATIC_FILTER)?.map(str::to_owned),
                principals: each(self.take_list(&table::PRINCIPALS), |v| {
                    filters::principal(v, allow_unknown)
                })?,
                scopes: each(self.take_list(&table::SCOPES), filters::scope)?,
                resources: each(self.take_list(&table::RESOURCES), |v| {
                    filters::resource(v, allow_unknown)
                })?,
                environments: each(self.take_list(&table::ENVIRONMENTS), filters::environment)?,
            },
            window: harness_audit_core::settings::Window {
                start_minutes_back: self.number(&table::START_MINUTES_BACK)?,
                start_at_ms: None,
                end_at_ms: None,
                settle_lag_secs: self.number(&table::SETTLE_LAG_SECS)?,
                overlap_secs: self.number(&table::OVERLAP_SECS)?,
                reconcile_interval_secs: self.number(&table::RECONCILE_INTERVAL_SECS)?,
                reconcile_hours: self.number(&table::RECONCILE_HOURS)?,
                reconcile_recent_interval_secs: self
                    .number(&table::RECONCILE_RECENT_INTERVAL_SECS)?,
                reconcile_recent_hours: self.number(&table::RECONCILE_RECENT_HOURS)?,
            },
            retries: harness_audit_core::settings::Retries {
                max_retries: self.number(&table::MAX_RETRIES)?,
                retry_base_ms: self.number(&table::RETRY_BASE_MS)?,
                retry_budget_secs: self.number(&table::RETRY_BUDGET_SECS)?,
                max_requests_per_minute: self.number(&table::MAX_REQUESTS_PER_MINUTE)?,
            },
            output: harness_audit_core::settings::Output {
                output_shape: match self.choice(&table::OUTPUT_SHAPE)? {
                    Some("streaming") => OutputShape::Streaming,
                    _ => OutputShape::Raw,
                },
                enrich_yaml_diff: self.boolean(&table::ENRICH_YAML_DIFF)?,
                batch_max_events,
            },
        };
        let harness = HarnessConfig {
            api_base,
            api_key,
            api_key_source,
            http_timeout_secs: self.number(&table::HTTP_TIMEOUT_SECS)?,
        };
        let gcs_bucket = self.text(&table::GCS_BUCKET).map(bucket_name).transpose()?;
        // The recipe sets only GCS_BUCKET, so a bucket alone selects the GCS sink.
        let sink = match self.choice(&table::SINK)? {
            None if gcs_bucket.is_some() => SinkKind::Gcs,
            Some("gcs") => SinkKind::Gcs,
            Some("stdout") => SinkKind::Stdout,
            _ => SinkKind::Local,
        };
        if sink == SinkKind::Gcs && gcs_bucket.is_none() {
            return Err(ConfigError::Missing {
                what: table::GCS_BUCKET.env,
                hint: "SINK=gcs needs the bucket name, e.g. GCS_BUCKET=my-secops-bucket",
            });
        }
        let gzip = self.boolean(&table::GZIP)?;
        if gzip && sink != SinkKind::Gcs {
            return Err(ConfigError::Missing {
                what: table::GCS_BUCKET.env,
                hint: "GZIP=true compresses GCS objects only; set GCS_BUCKET, or unset GZIP",
            });
        }
        let days = self.number(&table::GCS_RETENTION_DAYS)?;
        let locked = self.choice(&table::GCS_RETENTION_MODE)? == Some("locked");
        let retention = (days > 0).then_some(Retention { days, locked });
        if retention.is_some() && sink != SinkKind::Gcs {
            return Err(ConfigError::Missing {
                what: table::GCS_BUCKET.env,
                hint: "GCS_RETENTION_DAYS sets retention on GCS objects only; set GCS_BUCKET, or unset it",
            });
        }
        let signing_key_file = match self.text(&table::SIGNING_KEY_FILE) {
            None => None,
            Some(file) => {
                // Read once here so a bad key stops the run before it collects anything.
                SigningKey::from_file(Path::new(&file.value))
                    .map_err(|e| invalid(&file, &e.to_string()))?;
                Some(PathBuf::from(file.value))
            }
        };
        let output = OutputConfig {
            sink,
            output_dir: PathBuf::from(
                self.text(&table::OUTPUT_DIR)
                    .map(|d| d.value)
                    .unwrap_or_default(),
            ),
            prefix: relative_key(self.text(&table::GCS_PREFIX))?,
            state_key: relative_key(self.text(&table::STATE_KEY))?,
            gcs_bucket,
            gcs_endpoint: parse_base_url(self.text(&table::GCS_ENDPOINT), &table::GCS_ENDPOINT)?
                .into(),
            gzip,
            lease_secs: self.number(&table::LEASE_SECS)?,
            retention,
            signing_key_file,
        };
        Ok(Config {
            source,
            harness,
            output,
            backfill: None,
            limits: LimitsConfig {
                max_memory_mib: self.number(&table::MAX_MEMORY_MIB)?,
                poll_timeout_secs: self.number(&table::POLL_TIMEOUT_SECS)?,
                max_pass_cpu_secs: self.number(&table::MAX_PASS_CPU_SECS)?,
                max_pass_batches: self.number(&table::MAX_PASS_BATCHES)?,
                max_pass_mib: self.number(&table::MAX_PASS_MIB)?,
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

/// The TOML type a setting's kind takes, for errors.
fn toml_type(kind: &Kind) -> &'static str {
    match kind {
        Kind::Number { .. } => "a whole number",
        Kind::Bool { .. } => "`true` or `false`",
        Kind::Choice { .. } | Kind::Text { .. } => "a string",
        Kind::List => "an array of strings",
    }
}

/// The keys a section takes, for errors.
fn keys_of(section: Section) -> String {
    table::ALL
        .into_iter()
        .filter(|s| s.section == section && !s.secret)
        .map(|s| s.key)
        .collect::<Vec<_>>()
        .join(", ")
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

/// An `https://` base URL (`http://` on loopback) for `setting`, which has a default.
fn parse_base_url(raw: Option<Sourced<String>>, setting: &Setting) -> Result<Url, ConfigError> {
    let raw = raw.expect("base URL settings have a default");
    let url = Url::parse(raw.value.trim()).map_err(|e| {
        invalid(
            &raw,
            &format!(
                "`{}` is not a URL ({e}); expected e.g. {}",
                raw.value,
                setting.default_text()
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

fn relative_key(raw: Option<Sourced<String>>) -> Result<String, ConfigError> {
    let raw = raw.expect("the prefix and the state key have defaults");
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
