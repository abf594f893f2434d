//! The operations pack in `examples/monitoring/`: the alerting rules parse
//! and pass their unit tests under Prometheus's own promtool, every
//! dashboard expression parses as PromQL, and every metric either names is
//! one a live `serve` exports (checked from `serve.rs` on its `/metrics`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

fn pack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/monitoring")
}

/// promtool, fetched by `scripts/promtool.sh` when it is not there yet; once
/// for the tests that run side by side.
fn promtool() -> PathBuf {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/promtool.sh");
            let out = Command::new(script).output().unwrap();
            assert!(
                out.status.success(),
                "scripts/promtool.sh: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
        })
        .clone()
}

fn run(promtool: &Path, args: &[&str], dir: &Path) -> String {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// Every alert parses, and each fires on the series that must fire it and
/// not on the one that must not (alerts.test.yml).
#[test]
fn the_alert_rules_parse_and_pass_their_unit_tests() {
    let promtool = promtool();
    let checked = run(&promtool, &["check", "rules", "alerts.yml"], &pack());
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let alerts = std::fs::read_to_string(pack().join("alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(pack().join("alerts.test.yml")).unwrap();
    for name in alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "alerts.test.yml does not test {name}"
        );
    }
    run(&promtool, &["test", "rules", "alerts.test.yml"], &pack());
}

/// The dashboard's panels.
fn dashboard_panels() -> Vec<Value> {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(pack().join("dashboard.json")).unwrap())
            .unwrap();
    dashboard["panels"].as_array().unwrap().clone()
}

/// The dashboard's queries, with Grafana's variables given values.
fn dashboard_expressions() -> Vec<String> {
    let mut exprs = Vec::new();
    for panel in &dashboard_panels() {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            exprs.push(
                target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$__rate_interval", "5m")
                    .replace("$tenant", ".*"),
            );
        }
    }
    exprs
}

/// The book's dashboard page has a row for every panel, and none for a panel
/// the dashboard lacks.
#[test]
fn the_dashboard_page_describes_every_panel() {
    let panels: BTreeSet<String> = dashboard_panels()
        .iter()
        .map(|panel| panel["title"].as_str().unwrap().to_owned())
        .collect();
    let page =
        std::fs::read_to_string(pack().join("../../docs/src/operations/dashboard.md")).unwrap();
    let rows: BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" | ").next())
        .filter(|title| !matches!(*title, "Panel" | "---"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        rows, panels,
        "docs/src/operations/dashboard.md against dashboard.json"
    );
}

/// Each panel's query parses as PromQL (as a recording rule promtool checks).
#[test]
fn every_dashboard_expression_parses_as_promql() {
    let exprs = dashboard_expressions();
    assert!(exprs.len() >= 15, "{} queries", exprs.len());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.rules.yml"), rules).unwrap();
    let checked = run(
        &promtool(),
        &["check", "rules", "dashboard.rules.yml"],
        dir.path(),
    );
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{checked}"
    );
}

/// The `harness_audit_*` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("harness_audit_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// Every metric the alerts and the dashboard name is on `metrics`, a live
/// `/metrics` page: a family's `# TYPE` line, or one of its samples.
pub fn assert_every_metric_named_is_exported(metrics: &str) {
    let mut exported = BTreeSet::new();
    for line in metrics.lines() {
        if let Some(family) = line
            .strip_prefix("# TYPE ")
            .and_then(|l| l.split_whitespace().next())
        {
            for suffix in ["", "_total", "_bucket", "_sum", "_count", "_created"] {
                exported.insert(format!("{family}{suffix}"));
            }
        }
    }
    let mut named = metric_names(&std::fs::read_to_string(pack().join("alerts.yml")).unwrap());
    named.extend(metric_names(
        &std::fs::read_to_string(pack().join("dashboard.json")).unwrap(),
    ));
    assert!(named.len() >= 15, "{named:?}");
    let missing: Vec<&String> = named.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the operations pack names metrics /metrics does not export: {missing:?}\n{metrics}"
    );
}
