//! The composition's settings, from the Cloud Run recipe's environment
//! variables, checked before the source is configured. The variables are
//! the host's (`harness-audit-settings`); those only the host can honour are
//! refused rather than ignored, so that nobody believes a filter, a sink or
//! a limit is in force when it is not.

use harness_audit_core::settings::{ApiFlavor, OutputShape, Settings, defaults};
use harness_audit_settings::{self as table, Kind, Setting};

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

/// Reads the settings from `env`. Errors name the variable and say how to
/// fix it; none quotes the key.
pub fn parse(env: impl Fn(&str) -> Option<String>) -> Result<Environment, String> {
    let var = |s: &Setting| env(s.env).filter(|v| !v.trim().is_empty());
    if let Some(setting) = host_only().find(|s| var(s).is_some()) {
        return Err(format!(
            "{} is a setting of the harness-audit host that this command cannot honour; \
             unset it, or run the harness-audit binary instead",
            setting.env
        ));
    }
    let number = |s: &Setting| -> Result<u32, String> {
        let Kind::Number { default, .. } = s.kind else {
            unreachable!("{} is not a number", s.env)
        };
        var(s).map_or(Ok(default), |v| {
            v.trim().parse().map_err(|_| {
                format!(
                    "{} `{v}` is not a whole number: use digits only, e.g. {default}",
                    s.env
                )
            })
        })
    };
    let choice = |s: &Setting| -> Result<Option<&'static str>, String> {
        let Kind::Choice { choices, default } = s.kind else {
            unreachable!("{} is not a choice", s.env)
        };
        var(s).map_or(Ok(default), |v| {
            s.choice(&v)
                .map(Some)
                .ok_or_else(|| format!("{} `{v}` is not one of {}", s.env, choices.join(", ")))
        })
    };
    let list =
        |s: &Setting| -> Vec<String> { var(s).as_deref().map(table::list).unwrap_or_default() };

    let account_id = var(&table::ACCOUNT_ID)
        .ok_or("HARNESS_ACCOUNT_ID is not set: set it to your Harness account identifier")?;
    let api_key = match (var(&table::API_KEY), var(&table::API_KEY_FILE)) {
        (Some(_), Some(_)) => {
            return Err("both HARNESS_API_KEY and HARNESS_API_KEY_FILE are set: keep one".into());
        }
        (Some(key), None) => ApiKey::Value(key.trim().to_owned()),
        (None, Some(path)) => ApiKey::File(path),
        (None, None) => {
            return Err(
                "no API key: set HARNESS_API_KEY, or HARNESS_API_KEY_FILE to a file in a preopened directory"
                    .into(),
            );
        }
    };
    let enrich_yaml_diff = match var(&table::ENRICH_YAML_DIFF).as_deref().map(str::trim) {
        None => false,
        Some("true" | "1" | "yes") => true,
        Some("false" | "0" | "no") => false,
        Some(other) => {
            return Err(format!("ENRICH_YAML_DIFF `{other}` is not true or false"));
        }
    };

    let settings = Settings {
        query: harness_audit_core::settings::Query {
            api_base: var(&table::API_BASE).unwrap_or_else(|| defaults::API_BASE.to_owned()),
            account_id: account_id.trim().to_owned(),
            page_size: number(&table::PAGE_SIZE)?,
            modules: list(&table::MODULES),
            actions: list(&table::ACTIONS),
            static_filter: choice(&table::STATIC_FILTER)?.map(str::to_owned),
            principals: Vec::new(),
            scopes: Vec::new(),
            resources: Vec::new(),
            environments: Vec::new(),
            api_flavor: match choice(&table::API_FLAVOR)? {
                Some("list-v2") => ApiFlavor::ListV2,
                _ => ApiFlavor::List,
            },
        },
        window: harness_audit_core::settings::Window {
            start_minutes_back: number(&table::START_MINUTES_BACK)?,
            start_at_ms: None,
            end_at_ms: None,
            settle_lag_secs: number(&table::SETTLE_LAG_SECS)?,
            overlap_secs: number(&table::OVERLAP_SECS)?,
            reconcile_interval_secs: number(&table::RECONCILE_INTERVAL_SECS)?,
            reconcile_hours: number(&table::RECONCILE_HOURS)?,
            reconcile_recent_interval_secs: number(&table::RECONCILE_RECENT_INTERVAL_SECS)?,
            reconcile_recent_hours: number(&table::RECONCILE_RECENT_HOURS)?,
        },
        retries: harness_audit_core::settings::Retries {
            max_retries: number(&table::MAX_RETRIES)?,
            retry_base_ms: number(&table::RETRY_BASE_MS)?,
            retry_budget_secs: number(&table::RETRY_BUDGET_SECS)?,
            max_requests_per_minute: number(&table::MAX_REQUESTS_PER_MINUTE)?,
        },
        output: harness_audit_core::settings::Output {
            output_shape: match choice(&table::OUTPUT_SHAPE)? {
                Some("streaming") => OutputShape::Streaming,
                _ => OutputShape::Raw,
            },
            enrich_yaml_diff,
            batch_max_events: defaults::BATCH_MAX_EVENTS,
        },
    }
    .validate()
    .map_err(|e| format!("invalid settings: {e}"))?;
    Ok(Environment { settings, api_key })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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
                "PAGE_SIZE `lots` is not a whole number",
            ),
            (
                vec![account, key, ("PAGE_SIZE", "500")],
                "page-size 500 is out of range",
            ),
            (
                vec![account, key, ("GCS_BUCKET", "b")],
                "GCS_BUCKET is a setting of the harness-audit host",
            ),
            (
                vec![account, key, ("OUTPUT_SHAPE", "udm")],
                "OUTPUT_SHAPE `udm`",
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
            22,
            "the source settings a composition honours"
        );
    }
}
