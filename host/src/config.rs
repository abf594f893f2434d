//! Configuration: one typed struct per concern, read from a TOML file, the
//! environment (the Cloud Run recipe's variables keep working) and flags, in
//! that order of precedence (flags win), and validated once.

use std::fmt;
use std::path::{Component, Path, PathBuf};

pub use harness_audit_core::settings::{
    ApiFlavor, EnvironmentFilter, OutputShape, PrincipalFilter, ResourceFilter, ScopeFilter,
    Settings,
};
use harness_audit_settings::reader::invalid;
pub use harness_audit_settings::reader::{ConfigError, Origin, RawConfig, Sourced};
use harness_audit_settings::{self as table, Setting};

use crate::evidence::SigningKey;
use url::Url;

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

/// Builds the validated [`Config`] from the shared reader's settings.
pub trait Validate {
    /// Validates everything; the first problem found is returned.
    fn validate(self) -> Result<Config, ConfigError>;

    /// Validates everything for a command that may not need the API key:
    /// with [`KeyUse::NotNeeded`], an absent key is no error (a given one is
    /// still checked).
    fn validate_for(self, key_use: KeyUse) -> Result<Config, ConfigError>;
}

impl Validate for RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        self.validate_for(KeyUse::Required)
    }

    fn validate_for(mut self, key_use: KeyUse) -> Result<Config, ConfigError> {
        // The egress policy needs the URL itself; the core checks the rest of
        // the source's settings.
        let api_base = parse_base_url(
            self.peek(&table::API_BASE)
                .or_else(|| self.text(&table::API_BASE)),
            &table::API_BASE,
        )?;
        let account_origin = self.origin(&table::ACCOUNT_ID);
        let mut source = Settings::read(&mut self)?;
        // The component calls the very URL the egress policy allows.
        source.query.api_base = api_base.as_str().trim_end_matches('/').to_owned();
        let account_id = Sourced {
            value: source.query.account_id.clone(),
            origin: account_origin,
        };
        let inline_key = self.take(&table::API_KEY);
        let key_file = self.text(&table::API_KEY_FILE);
        let (api_key, api_key_source) = match (key_use, inline_key, key_file) {
            (KeyUse::NotNeeded, None, None) => (ApiKey(String::new()), "not needed".to_owned()),
            (_, inline, file) => resolve_api_key(inline, file, &account_id)?,
        };
        let harness = HarnessConfig {
            api_base,
            api_key,
            api_key_source,
            http_timeout_secs: self.bounded(&table::HTTP_TIMEOUT_SECS)?,
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
        let days = self.bounded(&table::GCS_RETENTION_DAYS)?;
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
            lease_secs: self.bounded(&table::LEASE_SECS)?,
            retention,
            signing_key_file,
        };
        Ok(Config {
            source,
            harness,
            output,
            backfill: None,
            limits: LimitsConfig {
                max_memory_mib: self.bounded(&table::MAX_MEMORY_MIB)?,
                poll_timeout_secs: self.bounded(&table::POLL_TIMEOUT_SECS)?,
                max_pass_cpu_secs: self.bounded(&table::MAX_PASS_CPU_SECS)?,
                max_pass_batches: self.bounded(&table::MAX_PASS_BATCHES)?,
                max_pass_mib: self.bounded(&table::MAX_PASS_MIB)?,
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
