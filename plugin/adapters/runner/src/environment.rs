//! The composition's settings, from the Cloud Run recipe's environment
//! variables, checked before the source is configured. The variables are
//! the host's (`harness-audit-settings`); those only the host can honour are
//! refused rather than ignored, so that nobody believes a filter, a sink or
//! a limit is in force when it is not.

use harness_audit_core::settings::Settings;
use harness_audit_settings::reader::RawConfig;
use harness_audit_settings::{self as table, Setting};

/// Settings a composition reads from the environment.
pub fn reads() -> impl Iterator<Item = &'static Setting> {
    table::ALL.into_iter().filter(|s| s.command)
}

/// Settings of the `harness-audit` host that a composition cannot honour.
pub fn host_only() -> impl Iterator<Item = &'static Setting> {
    table::ALL.into_iter().filter(|s| !s.command)
}

/// What the environment configures; its `Debug` shows no key ([`ApiKey`]'s does not).
#[derive(Debug)]
pub struct Environment {
    /// Validated source settings.
    pub settings: Settings,
    /// The key, from `HARNESS_API_KEY` or the file `HARNESS_API_KEY_FILE` names.
    pub api_key: ApiKey,
}

/// Where the key is to be read from; reading a file needs the filesystem,
/// which only the command has, so it is not read here.
#[derive(PartialEq, Eq)]
pub enum ApiKey {
    /// The value of `HARNESS_API_KEY`.
    Value(String),
    /// The path in `HARNESS_API_KEY_FILE`.
    File(String),
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Value([redacted])"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// The `Environment:` and `Refused` parts of a usage text: every variable
/// read, with its default, and every one refused.
pub fn usage() -> String {
    let mut text = String::from("Environment:\n");
    for setting in reads() {
        text.push_str(&format!(
            "  {:<28} {} [default: {}]\n",
            setting.env,
            setting.summary(),
            setting.default_text()
        ));
    }
    text.push_str(
        "\nRefused (settings of the harness-audit host, which a composition cannot honour):\n",
    );
    let refused: Vec<&str> = host_only().map(|s| s.env).collect();
    text.push_str(&format!("  {}\n", refused.join(" ")));
    text
}

/// Reads the settings from `env` with the host's reader and the core's
/// checks. Errors name the variable and say how to fix it; none quotes the key.
pub fn parse(env: impl Fn(&str) -> Option<String>) -> Result<Environment, String> {
    let mut raw = RawConfig::from_env_with(env);
    if let Some(setting) = host_only().find(|s| raw.peek(s).is_some()) {
        return Err(format!(
            "{} is a setting of the harness-audit host that this command cannot honour; \
             unset it, or run the harness-audit binary instead",
            setting.env
        ));
    }
    let settings = Settings::read(&mut raw).map_err(|e| e.to_string())?;
    let api_key = match (raw.take(&table::API_KEY), raw.text(&table::API_KEY_FILE)) {
        (Some(_), Some(_)) => {
            return Err("both HARNESS_API_KEY and HARNESS_API_KEY_FILE are set: keep one".into());
        }
        (Some(key), None) => ApiKey::Value(key.value.trim().to_owned()),
        (None, Some(path)) => ApiKey::File(path.value),
        (None, None) => {
            return Err(
                "no API key: set HARNESS_API_KEY, or HARNESS_API_KEY_FILE to a file in a preopened directory"
                    .into(),
            );
        }
    };
    Ok(Environment { settings, api_key })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use harness_audit_core::settings::{ApiFlavor, OutputShape, defaults};

    use super::*;

    fn read(env: &[(&str, &str)]) -> Result<Environment, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse(|name| env.get(name).cloned())
    }

    const BASE: [(&str, &str); 2] = [
        ("HARNESS_ACCOUNT_ID", "acct_1"),
        ("HARNESS_API_KEY", "pat.secret"),
    ];

    #[test]
    fn defaults_are_the_hosts() {
        let read = read(&BASE).unwrap();
        assert_eq!(read.settings.query.api_base, defaults::API_BASE);
        assert_eq!(read.settings.query.page_size, defaults::PAGE_SIZE);
        assert_eq!(read.settings.window.overlap_secs, defaults::OVERLAP_SECS);
        assert_eq!(read.api_key, ApiKey::Value("pat.secret".into()));
    }

    #[test]
    fn variables_are_read() {
        let mut env = BASE.to_vec();
        env.extend([
            ("HARNESS_API_BASE", "http://127.0.0.1:9/gateway/"),
            ("PAGE_SIZE", "100"),
            ("FILTER_MODULES", "CORE, PMS"),
            ("OUTPUT_SHAPE", "streaming"),
            ("HARNESS_API_FLAVOR", "list-v2"),
            ("ENRICH_YAML_DIFF", "true"),
            ("RECONCILE_INTERVAL_SECONDS", "600"),
            ("RECONCILE_HOURS", "0"),
        ]);
        let settings = read(&env).unwrap().settings;
        assert_eq!(
            (
                settings.window.reconcile_interval_secs,
                settings.window.reconcile_hours
            ),
            (600, 0)
        );
        assert_eq!(settings.query.api_base, "http://127.0.0.1:9/gateway");
        assert_eq!(settings.query.page_size, 100);
        assert_eq!(settings.query.modules, ["CORE", "PMS"]);
        assert_eq!(settings.output.output_shape, OutputShape::Streaming);
        assert_eq!(settings.query.api_flavor, ApiFlavor::ListV2);
        assert!(settings.output.enrich_yaml_diff);
    }

    #[test]
    fn errors_name_the_variable_and_never_the_key() {
        let key = ("HARNESS_API_KEY", "pat.secret");
        let account = ("HARNESS_ACCOUNT_ID", "acct_1");
        let cases: [(Vec<(&str, &str)>, &str); 7] = [
            (vec![key], "HARNESS_ACCOUNT_ID is not set"),
            (vec![account], "no API key"),
            (
                vec![account, key, ("HARNESS_API_KEY_FILE", "/k")],
                "keep one",
            ),
            (
                vec![account, key, ("PAGE_SIZE", "lots")],
                "PAGE_SIZE: `lots` is not a whole number from 1 to 100",
            ),
            (
                vec![account, key, ("PAGE_SIZE", "500")],
                "PAGE_SIZE: `500` is not a whole number from 1 to 100",
            ),
            (
                vec![account, key, ("GCS_BUCKET", "b")],
                "GCS_BUCKET is a setting of the harness-audit host",
            ),
            (
                vec![account, key, ("OUTPUT_SHAPE", "udm")],
                "OUTPUT_SHAPE: `udm` is not one of",
            ),
        ];
        for (env, expected) in cases {
            let err = read(&env).unwrap_err();
            assert!(err.contains(expected), "`{err}` lacks `{expected}`");
            assert!(!err.contains("pat.secret"), "`{err}` shows the key");
        }
        let debug = format!("{:?}", read(&BASE).unwrap());
        assert!(!debug.contains("pat.secret"), "{debug}");
    }

    #[test]
    fn usage_lists_every_variable() {
        let text = usage();
        for setting in reads().chain(host_only()) {
            assert!(text.contains(setting.env), "usage lacks {}", setting.env);
        }
        assert_eq!(
            reads().count(),
            23,
            "the source settings a composition honours"
        );
    }
}
