use clap::{Args, FromArgMatches};

use super::*;

const KEY: &str = "pat.acct1.tok.secretsecretsecret1234";

fn env(pairs: &[(&str, &str)]) -> RawConfig {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    RawConfig::from_env_with(|name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
}

fn minimal() -> Vec<(&'static str, &'static str)> {
    vec![("HARNESS_ACCOUNT_ID", "acct1"), ("HARNESS_API_KEY", KEY)]
}

fn error_of(pairs: &[(&str, &str)]) -> String {
    env(pairs).validate().unwrap_err().to_string()
}

#[test]
fn recipe_environment_gives_recipe_defaults() {
    let cfg = env(&minimal()).validate().unwrap();
    assert_eq!(cfg.harness.api_base.as_str(), "https://app.harness.io/");
    assert_eq!(cfg.source.query.page_size, 50);
    assert_eq!(cfg.source.window.start_minutes_back, 60);
    assert_eq!(cfg.output.prefix, "harness/audit");
    assert_eq!(cfg.output.sink, SinkKind::Local);
    assert!(!cfg.output.state_inside_prefix());
    let s = &cfg.source;
    assert!(
        s.query.modules.is_empty() && s.query.actions.is_empty() && s.query.static_filter.is_none()
    );
    assert!(s.query.principals.is_empty() && s.query.scopes.is_empty());
    assert!(s.query.resources.is_empty() && s.query.environments.is_empty());
}

#[test]
fn recipe_filter_variables_are_parsed() {
    let mut pairs = minimal();
    pairs.extend([
        ("FILTER_MODULES", "cd, PMS"),
        ("FILTER_ACTIONS", "CREATE,UPDATE"),
        ("STATIC_FILTER", "EXCLUDE_LOGIN_EVENTS"),
        ("PAGE_SIZE", "100"),
        ("STATE_KEY", "harness/audit/state.json"),
    ]);
    let cfg = env(&pairs).validate().unwrap();
    assert_eq!(cfg.source.query.modules, ["CD", "PMS"]);
    assert_eq!(cfg.source.query.actions, ["CREATE", "UPDATE"]);
    assert_eq!(
        cfg.source.query.static_filter.as_deref(),
        Some("EXCLUDE_LOGIN_EVENTS")
    );
    assert_eq!(cfg.source.query.page_size, 100);
    assert!(cfg.output.state_inside_prefix());
}

#[test]
fn missing_account_and_key_say_how_to_fix() {
    assert!(error_of(&[("HARNESS_API_KEY", KEY)]).starts_with("HARNESS_ACCOUNT_ID is not set"));
    let err = error_of(&[("HARNESS_ACCOUNT_ID", "acct1")]);
    assert!(
        err.starts_with("HARNESS_API_KEY is not set") && err.contains("HARNESS_API_KEY_FILE"),
        "{err}"
    );
}

#[test]
fn key_errors_never_quote_the_key() {
    let secret = "pat.other.tok.TOPSECRETVALUE0000000";
    let err = error_of(&[("HARNESS_ACCOUNT_ID", "acct1"), ("HARNESS_API_KEY", secret)]);
    assert!(
        err.contains("key of account `other`") && err.contains("`acct1`"),
        "{err}"
    );
    assert!(!err.contains("TOPSECRETVALUE"), "{err}");
    let err = error_of(&[
        ("HARNESS_ACCOUNT_ID", "acct1"),
        ("HARNESS_API_KEY", "TOPSECRETVALUE"),
    ]);
    assert!(
        err.contains("is not a Harness API key") && !err.contains("TOPSECRETVALUE"),
        "{err}"
    );
    let cfg = env(&minimal()).validate().unwrap();
    assert!(!format!("{cfg:?}").contains("secretsecret"));
}

#[test]
fn key_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    let cfg = env(&[
        ("HARNESS_ACCOUNT_ID", "acct1"),
        ("HARNESS_API_KEY_FILE", path.to_str().unwrap()),
    ])
    .validate()
    .unwrap();
    assert_eq!(cfg.harness.api_key.expose(), KEY);
    let err = error_of(&[
        ("HARNESS_ACCOUNT_ID", "acct1"),
        ("HARNESS_API_KEY_FILE", "/nonexistent/key"),
    ]);
    assert!(
        err.contains("HARNESS_API_KEY_FILE: cannot read the key file"),
        "{err}"
    );
}

#[test]
fn a_bucket_alone_selects_the_gcs_sink_as_in_the_recipe() {
    let mut pairs = minimal();
    pairs.push(("GCS_BUCKET", "gs://my-bucket/"));
    let cfg = env(&pairs).validate().unwrap();
    assert_eq!(cfg.output.sink, SinkKind::Gcs);
    assert_eq!(cfg.output.gcs_bucket.as_deref(), Some("my-bucket"));
    assert!(!cfg.output.gzip);
    assert_eq!(cfg.output.lease_secs, 300);

    pairs.push(("SINK", "local"));
    assert_eq!(env(&pairs).validate().unwrap().output.sink, SinkKind::Local);

    let mut gcs_without_bucket = minimal();
    gcs_without_bucket.push(("SINK", "gcs"));
    assert!(error_of(&gcs_without_bucket).contains("GCS_BUCKET is not set"));
    let mut gzip_locally = minimal();
    gzip_locally.push(("GZIP", "true"));
    assert!(error_of(&gzip_locally).contains("compresses GCS objects only"));
}

#[test]
fn every_filter_kind_parses_from_env_and_file_and_unknown_values_can_be_allowed() {
    let mut pairs = minimal();
    pairs.extend([
        ("FILTER_PRINCIPALS", "USER:alice@example.com, system"),
        ("FILTER_SCOPES", "default,default/payments"),
        ("FILTER_RESOURCES", "pipeline:deploy,SECRET"),
        ("FILTER_ENVIRONMENTS", "Production,:prod-eu"),
        ("FILTER_MODULES", "cd,NEWMODULE"),
        ("ALLOW_UNKNOWN_VALUES", "true"),
    ]);
    let f = env(&pairs).validate().unwrap().source;
    assert_eq!(f.query.principals.len(), 2);
    assert_eq!(f.query.principals[1].identifier, "SYSTEM");
    assert_eq!(f.query.scopes[1].project.as_deref(), Some("payments"));
    assert_eq!(f.query.resources[0].kind, "PIPELINE");
    assert_eq!(f.query.resources[1].identifier, None);
    assert_eq!(
        f.query.environments[1].identifier.as_deref(),
        Some("prod-eu")
    );
    assert_eq!(f.query.modules, ["CD", "NEWMODULE"]);

    let file = RawConfig::from_toml(
        "[harness]\naccount_id = \"acct1\"\n[filters]\nprincipals = [\"SERVICE_ACCOUNT:ci_bot\"]\nscopes = [\"org1\"]\n\
         resources = [\"TEMPLATE\"]\nenvironments = [\"PreProduction\"]\nallow_unknown_values = false\n",
    )
    .unwrap();
    let f = env(&[("HARNESS_API_KEY", KEY)])
        .over(file)
        .validate()
        .unwrap()
        .source;
    assert_eq!(f.query.principals[0].kind, "SERVICE_ACCOUNT");
    assert_eq!(f.query.scopes[0].org, "org1");
    assert_eq!(f.query.resources[0].kind, "TEMPLATE");
    assert_eq!(
        f.query.environments[0].kind.as_deref(),
        Some("PreProduction")
    );
}

#[test]
fn flags_beat_env_which_beats_the_file() {
    let file = RawConfig::from_toml(
        "[harness]\naccount_id = \"acct1\"\npage_size = 10\nmax_retries = 1\n[filters]\nmodules = [\"ci\"]\n",
    )
    .unwrap();
    let env = env(&[
        ("PAGE_SIZE", "20"),
        ("HARNESS_API_KEY", KEY),
        ("MAX_RETRIES", "2"),
    ]);
    let matches = SettingFlags::augment_args(clap::Command::new("run"))
        .try_get_matches_from(["run", "--page-size", "30"])
        .unwrap();
    let flags = SettingFlags::from_arg_matches(&matches).unwrap().layer();
    let cfg = flags.over(env.over(file)).validate().unwrap();
    assert_eq!(cfg.source.query.page_size, 30);
    assert_eq!(cfg.source.retries.max_retries, 2);
    assert_eq!(cfg.source.query.modules, ["CI"]);
}

#[test]
fn boolean_flags_are_switches_that_also_take_a_value() {
    let flags = |argv: &[&str]| {
        let matches = SettingFlags::augment_args(clap::Command::new("run"))
            .try_get_matches_from(argv)
            .unwrap();
        SettingFlags::from_arg_matches(&matches).unwrap().layer()
    };
    let cfg = flags(&["run", "--allow-unknown-values", "--modules", "cd,NEWMODULE"])
        .over(env(&minimal()))
        .validate()
        .unwrap();
    assert_eq!(cfg.source.query.modules, ["CD", "NEWMODULE"]);
    let err = flags(&["run", "--page-size", "0"])
        .over(env(&minimal()))
        .validate()
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "flag --page-size: `0` is not a whole number from 1 to 100"
    );
    let cfg = flags(&["run", "--enrich-yaml-diff", "false"])
        .over(env(&[("ENRICH_YAML_DIFF", "true")]).over(env(&minimal())))
        .validate()
        .unwrap();
    assert!(!cfg.source.output.enrich_yaml_diff);
}

#[test]
fn the_raw_layers_never_print_the_key() {
    let raw = env(&minimal());
    assert!(!format!("{raw:?}").contains("secretsecret"), "{raw:?}");
    assert!(format!("{raw:?}").contains("acct1"), "{raw:?}");
}

/// Every numeric setting accepts both ends of its range and refuses one past either end.
#[test]
fn every_number_is_accepted_at_its_bounds_and_refused_just_past_them() {
    for setting in harness_audit_settings::ALL {
        let Some(range) = setting.range() else {
            continue;
        };
        for value in [*range.start(), *range.end()] {
            let value = value.to_string();
            let mut pairs = minimal();
            // A batch holds whole pages: bounds are tried with the smallest page and largest
            // batch; retention needs the GCS sink.
            pairs.extend([
                ("PAGE_SIZE", "1"),
                ("BATCH_MAX_EVENTS", "20000"),
                ("GCS_BUCKET", "bucket-1"),
            ]);
            pairs.push((setting.env, value.as_str()));
            if let Err(e) = env(&pairs).validate() {
                panic!("{}={value} refused: {e}", setting.env);
            }
        }
        let mut outside = vec![u64::from(*range.end()) + 1];
        outside.extend(range.start().checked_sub(1).map(u64::from));
        for value in outside {
            let value = value.to_string();
            let mut pairs = minimal();
            pairs.push((setting.env, value.as_str()));
            let err = error_of(&pairs);
            let expected = format!(
                "environment variable {}: `{value}` is not a whole number from {} to {}",
                setting.env,
                range.start(),
                range.end()
            );
            assert_eq!(err, expected);
        }
    }
}

#[test]
fn shipped_examples_parse_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, KEY.replace("acct1", "Xy3kQ9mTR0aWb1cD2eF4gH")).unwrap();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        // The tenant file of `serve` is checked by `tenants::tests`.
        if path.extension().is_none_or(|e| e != "toml") || path.ends_with("tenants.toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("/run/secrets/harness-api-key", key_file.to_str().unwrap());
        let file =
            RawConfig::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let key = env(&[(
            "HARNESS_API_KEY",
            &KEY.replace("acct1", "Xy3kQ9mTR0aWb1cD2eF4gH"),
        )]);
        let cfg = key
            .over(file)
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(cfg.source.query.account_id, "Xy3kQ9mTR0aWb1cD2eF4gH");
        seen += 1;
    }
    assert_eq!(seen, 2, "minimal.toml and advanced.toml");
}
