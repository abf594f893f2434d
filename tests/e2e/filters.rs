//! Every filter kind, end to end: the setting reaches the request body in the
//! API's shape, and what is stored is exactly the events the API matches.

use serde_json::{Value, json};

use crate::support::{Env, sorted};

fn events(env: &Env) -> Vec<Value> {
    env.mock
        .events_json()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs with `var=value`, checks the body's `field`, and returns the stored lines.
fn run_filtered(env: &Env, var: &str, value: &str, field: &str, body: &Value) -> Vec<String> {
    let run = env.run(&[(var, value)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sent = env.mock.requests()[0].body.clone().unwrap();
    assert_eq!(&sent[field], body, "{field} in {sent}");
    env.sorted_lines()
}

#[test]
fn principals_select_who_acted() {
    let env = Env::new(800);
    let all = events(&env);
    let user = all
        .iter()
        .find(|e| e["authenticationInfo"]["principal"]["type"] == "USER")
        .unwrap()["authenticationInfo"]["principal"]["identifier"]
        .as_str()
        .unwrap()
        .to_owned();
    let lines = run_filtered(
        &env,
        "FILTER_PRINCIPALS",
        &format!("USER:{user},SYSTEM"),
        "principals",
        &json!([{"type": "USER", "identifier": user}, {"type": "SYSTEM", "identifier": "SYSTEM"}]),
    );
    let expected = env.mock.events_json_where(|e| {
        let p = &e.authentication_info.principal;
        (p.kind == "USER" && p.identifier == user) || p.kind == "SYSTEM"
    });
    assert!(!expected.is_empty() && expected.len() < 800);
    assert_eq!(lines, sorted(expected));
}

#[test]
fn scopes_select_an_organization_or_a_project() {
    let env = Env::new(800);
    let all = events(&env);
    let scoped = all
        .iter()
        .find(|e| e["resourceScope"]["projectIdentifier"].is_string())
        .unwrap()["resourceScope"]
        .clone();
    let (org, project) = (
        scoped["orgIdentifier"].as_str().unwrap().to_owned(),
        scoped["projectIdentifier"].as_str().unwrap().to_owned(),
    );
    let lines = run_filtered(
        &env,
        "FILTER_SCOPES",
        &format!("{org}/{project}"),
        "scopes",
        &json!([{"accountIdentifier": crate::support::ACCOUNT, "orgIdentifier": org, "projectIdentifier": project}]),
    );
    let expected = env.mock.events_json_where(|e| {
        e.resource_scope.org_identifier.as_deref() == Some(org.as_str())
            && e.resource_scope.project_identifier.as_deref() == Some(project.as_str())
    });
    assert!(!expected.is_empty() && expected.len() < 800);
    assert_eq!(lines, sorted(expected));
}

#[test]
fn resources_select_a_type_or_one_resource() {
    let env = Env::new(800);
    let first = events(&env)[0]["resource"].clone();
    let (kind, id) = (
        first["type"].as_str().unwrap().to_owned(),
        first["identifier"].as_str().unwrap().to_owned(),
    );
    let lines = run_filtered(
        &env,
        "FILTER_RESOURCES",
        &format!("{kind}:{id}"),
        "resources",
        &json!([{"type": kind, "identifier": id}]),
    );
    let expected = env
        .mock
        .events_json_where(|e| e.resource.kind == kind && e.resource.identifier == id);
    assert!(!expected.is_empty());
    assert_eq!(lines, sorted(expected));
}

#[test]
fn environments_select_by_type() {
    let env = Env::new(800);
    let lines = run_filtered(
        &env,
        "FILTER_ENVIRONMENTS",
        "production",
        "environments",
        &json!([{"type": "Production"}]),
    );
    let expected = env.mock.events_json_where(|e| {
        e.environment
            .as_ref()
            .is_some_and(|v| v.kind == "Production")
    });
    assert!(!expected.is_empty() && expected.len() < 800);
    assert_eq!(lines, sorted(expected));
}

#[test]
fn unknown_values_are_refused_before_any_request_unless_allowed() {
    let env = Env::new(50);
    let run = env.run(&[("FILTER_RESOURCES", "HOLOGRAM")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("FILTER_RESOURCES: `HOLOGRAM` is not a Harness resource type; valid: ORGANIZATION, PROJECT"),
        "{}",
        run.stderr
    );
    assert_eq!(env.mock.request_count(), 0);

    let run = env.run_with(
        &["run", "--allow-unknown-values"],
        &[("FILTER_RESOURCES", "HOLOGRAM")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        env.mock.requests()[0].body.as_ref().unwrap()["resources"],
        json!([{"type": "HOLOGRAM"}])
    );
    assert!(env.sorted_lines().is_empty(), "no event has that type");
}
