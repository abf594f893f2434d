//! `OUTPUT_SHAPE=streaming` on every event the mock generates: each line is
//! mapped back to the REST shape by the table in the README and must equal
//! the API's object (nulls aside), so every field is mapped right and none is
//! dropped.

use serde_json::{Map, Value};

use crate::support::Env;

fn insert(target: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            target.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = target
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            insert(child.as_object_mut().unwrap(), rest, value);
        }
    }
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The README's mapping table, read backwards.
fn back_to_rest(s: &Value) -> Value {
    let mut e = Map::new();
    let mut put = |path: &str, v: &Value| {
        if !v.is_null() {
            insert(&mut e, path, v.clone());
        }
    };
    put("auditId", &s["auditEventId"]);
    put("timestamp", &s["auditEventTime"]);
    put("action", &s["auditAction"]);
    put("module", &s["auditModule"]);
    put("resource.type", &s["auditResource"]["type"]);
    put("resource.identifier", &s["auditResource"]["identifier"]);
    for key in ["accountIdentifier", "orgIdentifier", "projectIdentifier"] {
        put(
            &format!("resourceScope.{key}"),
            &s["auditResourceScope"][key],
        );
    }
    put(
        "httpRequestInfo.requestMethod",
        &s["auditHttpRequestInfo"]["requestMethod"],
    );
    put(
        "requestMetadata.clientIP",
        &s["auditHttpRequestInfo"]["clientIP"],
    );
    let principal = &s["auditEventAuthor"]["principal"];
    put("authenticationInfo.principal.type", &principal["type"]);
    if principal["type"] == "USER" {
        put(
            "authenticationInfo.principal.identifier",
            &principal["email"],
        );
        put("authenticationInfo.labels.userId", &principal["identifier"]);
    } else {
        put(
            "authenticationInfo.principal.identifier",
            &principal["identifier"],
        );
    }
    for (path, v) in s["harnessAuditUnmapped"].as_object().into_iter().flatten() {
        put(path, v);
    }
    Value::Object(e)
}

#[test]
fn streaming_shape_maps_every_field_of_every_event_and_drops_none() {
    let env = Env::new(600);
    let run = env.run(&[("OUTPUT_SHAPE", "streaming")]);
    run.assert_collected(600);
    let sources: std::collections::BTreeMap<String, Value> = env
        .mock
        .events_json()
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["auditId"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    let lines = env.sorted_lines();
    assert_eq!(lines.len(), sources.len());
    let mut kinds = std::collections::BTreeSet::new();
    for line in &lines {
        let streaming: Value = serde_json::from_str(line).unwrap();
        assert!(
            streaming.get("auditId").is_none(),
            "streaming names only: {line}"
        );
        let id = streaming["auditEventId"].as_str().unwrap();
        let source = &sources[id];
        assert_eq!(
            without_nulls(&back_to_rest(&streaming)),
            without_nulls(source),
            "{line}"
        );
        kinds.insert(
            source["authenticationInfo"]["principal"]["type"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        if source["authenticationInfo"]["principal"]["type"] == "USER" {
            assert_eq!(
                streaming["auditEventAuthor"]["principal"]["email"],
                source["authenticationInfo"]["principal"]["identifier"],
                "a user's e-mail is principal.email"
            );
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["API_KEY", "SERVICE_ACCOUNT", "SYSTEM", "USER"],
        "every principal type was seen"
    );
}

/// `ENRICH_YAML_DIFF=true`: every configuration change carries the diff the
/// API serves, a failed fetch is recorded on its event (which is still
/// written), and nothing else about the events changes.
#[test]
fn configuration_changes_carry_their_yaml_diff() {
    let env = Env::new(400);
    let with_diff: Vec<harness_tests::AuditEvent> = env
        .mock
        .events()
        .into_iter()
        .filter(|e| harness_tests::yaml_diff_of(e).is_some())
        .collect();
    assert!(with_diff.len() > 20);
    let failing: Vec<String> = with_diff
        .iter()
        .take(3)
        .map(|e| e.audit_id.clone())
        .collect();
    env.mock.fail_yaml_for(failing.clone());

    let run = env.run(&[("ENRICH_YAML_DIFF", "true"), ("MAX_RETRIES", "1")]);
    run.assert_collected(400);
    let sources: std::collections::BTreeMap<String, (harness_tests::AuditEvent, Value)> = env
        .mock
        .events()
        .into_iter()
        .map(|e| {
            let json = serde_json::from_str(&e.to_json()).unwrap();
            (e.audit_id.clone(), (e, json))
        })
        .collect();
    for line in env.sorted_lines() {
        let mut event: Value = serde_json::from_str(&line).unwrap();
        let diff = event
            .as_object_mut()
            .unwrap()
            .remove("harnessAuditYamlDiff");
        let id = event["auditId"].as_str().unwrap().to_owned();
        let (source, source_json) = &sources[&id];
        assert_eq!(&event, source_json, "the event itself is unchanged");
        match (harness_tests::yaml_diff_of(source), diff) {
            (None, None) => {}
            (Some(_), Some(d)) if failing.contains(&id) => {
                assert!(d["error"].as_str().unwrap().contains("HTTP 500"), "{d}");
            }
            (Some((old, new)), Some(d)) => {
                assert_eq!(
                    d.get("oldYaml").and_then(Value::as_str),
                    old.as_deref(),
                    "{id}"
                );
                assert_eq!(
                    d.get("newYaml").and_then(Value::as_str),
                    new.as_deref(),
                    "{id}"
                );
            }
            (expected, got) => panic!("{id}: expected a diff: {}, got {got:?}", expected.is_some()),
        }
    }
    let yaml_requests = env
        .mock
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/auditYaml"))
        .count();
    assert_eq!(
        yaml_requests,
        with_diff.len() + failing.len(),
        "one each, a retry for each failure"
    );
}
