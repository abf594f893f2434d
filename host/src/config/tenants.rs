//! The tenant list of `serve`: a `[defaults]` table and `[[tenant]]` entries
//! in one TOML file. Each tenant's keys are the settings of `run` (by their
//! TOML names, flat), plus its id, its key by reference and its schedule; the
//! merged table goes through the same validation as `run`, so every tenant
//! gets exactly the checks and defaults a single run would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness_audit_settings as table;

use crate::config::{BackfillRange, Config, ConfigError, Origin, RawConfig, SinkKind, Validate};

/// Default pause between a tenant's passes, in seconds: with the settle lag
/// and a pass's own time, events are stored within about 30 s of becoming
/// visible (`bench/freshness.py`).
pub const DEFAULT_INTERVAL_SECS: u64 = 15;

/// Keys that only a tenant entry (or `[defaults]`) has, beside the settings of `run`.
const TENANT_KEYS: [&str; 7] = [
    "id",
    "api_key_env",
    "interval_secs",
    "jitter_secs",
    "component",
    "backfill_from",
    "backfill_to",
];

/// Why a tenant file was refused; every message names the tenant and the key to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantFileError {
    /// The file cannot be read.
    #[error("tenant file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// The file's tables are not a `[defaults]` table and `[[tenant]]` entries.
    #[error("{message}")]
    Layout {
        /// What is wrong.
        message: String,
    },
    /// One tenant's entry is unusable.
    #[error("tenant `{tenant}`: {message}")]
    Tenant {
        /// The tenant's id, or `#n` before its id is known.
        tenant: String,
        /// What is wrong with it.
        message: String,
    },
    /// One tenant's settings fail the validation of `run`.
    #[error("tenant `{tenant}`: {source}")]
    Settings {
        /// The tenant's id.
        tenant: String,
        /// The setting and what is wrong with it.
        source: ConfigError,
    },
    /// Two entries have the same id.
    #[error("tenant id `{0}` appears twice")]
    DuplicateId(String),
    /// Two tenants would write the same checkpoint.
    #[error(
        "tenants `{first}` and `{second}` share the checkpoint {checkpoint}; give each its own state_key \
         (or output_dir)"
    )]
    SharedCheckpoint {
        /// The first tenant.
        first: String,
        /// The second tenant.
        second: String,
        /// The checkpoint both would use.
        checkpoint: String,
    },
    /// The error of [`load`], with the file it read.
    #[error("tenant file {}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        source: Box<TenantFileError>,
    },
}

fn layout(message: impl Into<String>) -> TenantFileError {
    TenantFileError::Layout {
        message: message.into(),
    }
}

fn tenant_error(tenant: &str, message: impl Into<String>) -> TenantFileError {
    TenantFileError::Tenant {
        tenant: tenant.to_owned(),
        message: message.into(),
    }
}

/// One validated tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSpec {
    /// Unique id, carried by every log line and metric of the tenant.
    pub id: String,
    /// The tenant's settings, validated as `run` validates them.
    pub config: Config,
    /// Pause between successful passes.
    pub interval: Duration,
    /// Up to this much is added to each pause, so tenants do not fire together.
    pub jitter: Duration,
    /// Component to run instead of the embedded one.
    pub component: Option<PathBuf>,
}

fn valid_keys() -> String {
    let mut keys: Vec<&str> = table::ALL
        .into_iter()
        .filter(|s| !s.secret)
        .map(|s| s.key)
        .chain(TENANT_KEYS)
        .collect();
    keys.sort_unstable();
    keys.join(", ")
}

fn text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => format!("a {}", other.type_str()),
    }
}

fn seconds(table: &toml::Table, key: &str, id: &str, default: u64) -> Result<u64, TenantFileError> {
    match table.get(key) {
        None => Ok(default),
        Some(toml::Value::Integer(n)) if (0..=604_800).contains(n) => {
            Ok(u64::try_from(*n).expect("checked non-negative"))
        }
        Some(other) => Err(tenant_error(
            id,
            format!(
                "{key} = {} is not a whole number of seconds from 0 to 604800",
                text(other)
            ),
        )),
    }
}

/// `backfill_from` and `backfill_to`, read as `backfill --from/--to` reads
/// them: the tenant then runs that backfill, with its own checkpoint, beside
/// the other tenants (and on their key's pace when it shares their key).
fn backfill(table: &toml::Table, id: &str) -> Result<Option<BackfillRange>, TenantFileError> {
    let value = |key| match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(toml::Value::Datetime(d)) => Ok(Some(d.to_string())),
        Some(other) => Err(tenant_error(
            id,
            format!(
                "{key} = {} is neither a date (2026-01-31) nor an RFC 3339 instant",
                text(other)
            ),
        )),
    };
    match (value("backfill_from")?, value("backfill_to")?) {
        (None, None) => Ok(None),
        (Some(from), Some(to)) => BackfillRange::parse(&from, &to, crate::time::now_ms())
            .map(Some)
            .map_err(|e| tenant_error(id, format!("backfill_from/backfill_to: {e}"))),
        _ => Err(tenant_error(
            id,
            "a backfill needs both backfill_from and backfill_to",
        )),
    }
}

/// Reads and validates `path`; `env` resolves `api_key_env` references.
pub fn load(
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<TenantSpec>, TenantFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TenantFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, env).map_err(|e| TenantFileError::InFile {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// Parses a tenant file; relative `component` paths are taken from `base`.
pub fn parse(
    text: &str,
    base: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<TenantSpec>, TenantFileError> {
    let table: toml::Table = toml::from_str(text)?;
    if let Some(key) = table.keys().find(|k| *k != "defaults" && *k != "tenant") {
        return Err(layout(format!(
            "unknown top-level key `{key}`: expected a [defaults] table and [[tenant]] entries"
        )));
    }
    let defaults = match table.get("defaults") {
        None => toml::Table::new(),
        Some(toml::Value::Table(t)) if !t.contains_key("id") => t.clone(),
        Some(toml::Value::Table(_)) => return Err(layout("[defaults] cannot set `id`")),
        Some(_) => return Err(layout("`defaults` must be a table")),
    };
    let entries = match table.get("tenant") {
        Some(toml::Value::Array(entries)) if !entries.is_empty() => entries,
        _ => return Err(layout("no [[tenant]] entries")),
    };
    let mut tenants = Vec::with_capacity(entries.len());
    let mut ids = BTreeSet::new();
    let mut checkpoints: BTreeMap<String, String> = BTreeMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let toml::Value::Table(entry) = entry else {
            return Err(layout(format!("tenant #{} is not a table", index + 1)));
        };
        let id = match entry.get("id") {
            Some(toml::Value::String(id))
                if !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                id.clone()
            }
            _ => {
                return Err(layout(format!(
                    "tenant #{} needs an `id` of letters, digits, `-` or `_`",
                    index + 1
                )));
            }
        };
        if !ids.insert(id.clone()) {
            return Err(TenantFileError::DuplicateId(id));
        }
        let mut merged = defaults.clone();
        merged.extend(entry.clone());
        let spec = tenant(&id, &merged, base, &env)?;
        let checkpoint = match spec.config.output.sink {
            SinkKind::Gcs => format!(
                "gs://{}/{}",
                spec.config.output.gcs_bucket.as_deref().unwrap_or_default(),
                spec.config.output.state_key
            ),
            SinkKind::Local | SinkKind::Stdout => spec
                .config
                .output
                .output_dir
                .join(&spec.config.output.state_key)
                .display()
                .to_string(),
        };
        if let Some(other) = checkpoints.insert(checkpoint.clone(), id.clone()) {
            return Err(TenantFileError::SharedCheckpoint {
                first: other,
                second: id,
                checkpoint,
            });
        }
        tenants.push(spec);
    }
    Ok(tenants)
}

fn tenant(
    id: &str,
    merged: &toml::Table,
    base: &Path,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<TenantSpec, TenantFileError> {
    let mut raw = RawConfig::default();
    for (key, value) in merged {
        if TENANT_KEYS.contains(&key.as_str()) {
            continue;
        }
        if key == "api_key" {
            return Err(tenant_error(
                id,
                "an inline `api_key` is refused, since tenant files get committed and copied; \
                 use api_key_env = \"VAR\" or api_key_file = \"/path\"",
            ));
        }
        let setting = table::by_key(key).filter(|s| !s.secret).ok_or_else(|| {
            tenant_error(
                id,
                format!("unknown key `{key}`; valid keys are {}", valid_keys()),
            )
        })?;
        raw.set_toml(
            setting,
            value,
            Origin::File(format!("tenant `{id}` key {key}")),
        )
        .map_err(|source| TenantFileError::Settings {
            tenant: id.to_owned(),
            source,
        })?;
    }
    match merged.get("api_key_env") {
        Some(toml::Value::String(var)) => {
            let key = env(var).filter(|k| !k.trim().is_empty()).ok_or_else(|| {
                tenant_error(
                    id,
                    format!("api_key_env names {var}, which is not set in the environment"),
                )
            })?;
            raw.set(
                &table::API_KEY,
                key,
                Origin::File(format!("tenant `{id}` key api_key_env ({var})")),
            );
        }
        Some(_) => {
            return Err(tenant_error(id, "api_key_env must be a variable name"));
        }
        None if !merged.contains_key("api_key_file") => {
            return Err(tenant_error(
                id,
                "set api_key_env (a variable holding the key) or api_key_file",
            ));
        }
        None => {}
    }
    let mut config = raw.validate().map_err(|source| TenantFileError::Settings {
        tenant: id.to_owned(),
        source,
    })?;
    if let Some(range) = backfill(merged, id)? {
        config.set_backfill(range);
    }
    let interval_secs = seconds(merged, "interval_secs", id, DEFAULT_INTERVAL_SECS)?;
    if interval_secs == 0 {
        return Err(tenant_error(id, "interval_secs must be at least 1"));
    }
    let jitter_secs = seconds(merged, "jitter_secs", id, (interval_secs / 10).min(300))?;
    let component = match merged.get("component") {
        None => None,
        Some(toml::Value::String(p)) => Some(base.join(p)),
        Some(_) => return Err(tenant_error(id, "component must be a path")),
    };
    Ok(TenantSpec {
        id: id.to_owned(),
        config,
        interval: Duration::from_secs(interval_secs),
        jitter: Duration::from_secs(jitter_secs),
        component,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "pat.acctA.tokenA.secretsecretsecret";
    const KEY_B: &str = "pat.acctB.tokenB.secretsecretsecret";

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY_A" => Some(KEY_A.into()),
            "KEY_B" => Some(KEY_B.into()),
            _ => None,
        }
    }

    fn parse_ok(text: &str) -> Vec<TenantSpec> {
        parse(text, Path::new("/etc/harness"), env).unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse(text, Path::new("/etc/harness"), env)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_apply_and_tenants_override_them() {
        let tenants = parse_ok(
            r#"
            [defaults]
            page_size = 100
            interval_secs = 600
            output_dir = "/var/lib/audit"
            modules = ["cd", "PMS"]

            [[tenant]]
            id = "payments"
            account_id = "acctA"
            api_key_env = "KEY_A"
            state_key = "state/payments.json"

            [[tenant]]
            id = "platform"
            account_id = "acctB"
            api_key_env = "KEY_B"
            state_key = "state/platform.json"
            page_size = 20
            jitter_secs = 0
            component = "custom.wasm"
            "#,
        );
        assert_eq!(tenants.len(), 2);
        let (a, b) = (&tenants[0], &tenants[1]);
        assert_eq!(a.config.source.query.page_size, 100);
        assert_eq!(b.config.source.query.page_size, 20);
        assert_eq!(a.config.source.query.modules, ["CD", "PMS"]);
        assert_eq!(a.config.harness.api_key.expose(), KEY_A);
        assert_eq!(a.interval, Duration::from_secs(600));
        assert_eq!(a.jitter, Duration::from_secs(60));
        assert_eq!(b.jitter, Duration::ZERO);
        assert_eq!(
            b.component.as_deref(),
            Some(Path::new("/etc/harness/custom.wasm"))
        );
    }

    #[test]
    fn the_example_tenant_file_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "pat.Ab1cD2eF3gH4iJ5kL6mN7o.t.secretsecretsecret").unwrap();
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/tenants.toml"
        ))
        .unwrap()
        .replace(
            "/run/secrets/harness-key-platform",
            key_file.to_str().unwrap(),
        );
        let tenants = parse(&text, Path::new("."), |var| {
            (var == "HARNESS_KEY_PAYMENTS")
                .then(|| "pat.Xy3kQ9mTR0aWb1cD2eF4gH.t.secretsecretsecret".to_owned())
        })
        .unwrap();
        let ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["payments", "platform"]);
        assert_eq!(tenants[1].interval, Duration::from_secs(300));
        assert_eq!(tenants[1].config.source.query.modules, ["CD", "PMS"]);
    }

    #[test]
    fn a_tenant_can_run_a_backfill_with_its_own_checkpoint_beside_the_live_one() {
        let tenants = parse_ok(
            r#"
            [defaults]
            account_id = "acctA"
            api_key_env = "KEY_A"

            [[tenant]]
            id = "live"

            [[tenant]]
            id = "history"
            backfill_from = "2026-01-01"
            backfill_to = 2026-01-03T00:00:00Z
            "#,
        );
        assert_eq!(tenants[0].config.backfill, None);
        let range = tenants[1].config.backfill.expect("a backfill");
        assert_eq!(range.from_ms, 1_767_225_600_000);
        assert_eq!(range.to_ms, 1_767_398_400_000);
        assert_ne!(
            tenants[0].config.output.state_key, tenants[1].config.output.state_key,
            "the backfill never shares the live checkpoint"
        );
        assert!(
            tenants[1]
                .config
                .output
                .state_key
                .contains("backfill-20260101T000000Z-20260103T000000Z"),
            "{}",
            tenants[1].config.output.state_key
        );
    }

    #[test]
    fn every_mistake_is_named_with_its_tenant() {
        let one = |extra: &str| {
            format!(
                "[[tenant]]\nid = \"t1\"\naccount_id = \"acctA\"\napi_key_env = \"KEY_A\"\n{extra}\n"
            )
        };
        let cases = [
            (
                one("colour = \"blue\""),
                "tenant `t1`: unknown key `colour`; valid keys are",
            ),
            (
                one("api_key = \"pat.x.y.z\""),
                "an inline `api_key` is refused",
            ),
            (
                one("page_size = 500"),
                "tenant `t1`: config file key tenant `t1` key page_size",
            ),
            (
                one("interval_secs = -1"),
                "interval_secs = -1 is not a whole number",
            ),
            (
                "[[tenant]]\nid = \"t1\"\naccount_id = \"acctA\"\napi_key_env = \"NOPE\"\n".into(),
                "api_key_env names NOPE, which is not set",
            ),
            (
                "[[tenant]]\nid = \"t1\"\naccount_id = \"acctA\"\n".into(),
                "set api_key_env (a variable holding the key) or api_key_file",
            ),
            (
                format!("{}{}", one(""), one("")),
                "tenant id `t1` appears twice",
            ),
            (
                format!(
                    "{}[[tenant]]\nid = \"t2\"\naccount_id = \"acctB\"\napi_key_env = \"KEY_B\"\n",
                    one("")
                ),
                "tenants `t1` and `t2` share the checkpoint",
            ),
            (
                "[defaults]\npage_size = 10\n".into(),
                "no [[tenant]] entries",
            ),
            ("[tenants]\n".into(), "unknown top-level key `tenants`"),
            (
                "[[tenant]]\nid = \"t1\"\naccount_id = \"acctB\"\napi_key_env = \"KEY_A\"\n".into(),
                "is a key of account `acctA`",
            ),
            (
                one("backfill_from = \"2026-01-01\""),
                "tenant `t1`: a backfill needs both backfill_from and backfill_to",
            ),
            (
                one("backfill_from = \"2026-01-05\"\nbackfill_to = \"2026-01-01\""),
                "tenant `t1`: backfill_from/backfill_to: ",
            ),
            (
                one("backfill_from = 3\nbackfill_to = \"2026-01-01\""),
                "backfill_from = 3 is neither a date",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_err(&text);
            assert!(err.contains(expected), "{expected}\n{err}");
            assert!(!err.contains("secretsecret"), "{err}");
        }
    }
}
