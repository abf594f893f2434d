//! The Harness audit-streaming shape, which the Google SecOps parser maps
//! field by field, built from a REST list item. Nothing is dropped: REST
//! fields without a streaming counterpart are kept under [`UNMAPPED_KEY`],
//! keyed by their REST path.

use serde_json::{Map, Value};

/// Where REST fields without a streaming counterpart go.
pub const UNMAPPED_KEY: &str = "harnessAuditUnmapped";

/// Which shape events are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputShape {
    /// The API's object, byte for byte.
    #[default]
    Raw,
    /// The audit-streaming field names.
    Streaming,
}

fn take(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    map.remove(key).filter(|v| !v.is_null())
}

fn take_object(map: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match take(map, key) {
        Some(Value::Object(inner)) => inner,
        Some(other) => {
            let mut kept = Map::new();
            kept.insert(String::new(), other);
            kept
        }
        None => Map::new(),
    }
}

/// Moves whatever is left of `from` into `unmapped` under `prefix.key`.
fn keep_rest(unmapped: &mut Map<String, Value>, prefix: &str, from: Map<String, Value>) {
    for (key, value) in from {
        let path = if key.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{key}")
        };
        unmapped.insert(path, value);
    }
}

/// One REST list item (`AuditEventDTO`) in the streaming shape.
pub fn to_streaming(raw: &str) -> Result<String, String> {
    let Value::Object(mut event) =
        serde_json::from_str::<Value>(raw).map_err(|e| format!("an event is not JSON: {e}"))?
    else {
        return Err("an event is not a JSON object".into());
    };
    let mut out = Map::new();
    let mut unmapped = Map::new();
    for (from, to) in [
        ("auditId", "auditEventId"),
        ("timestamp", "auditEventTime"),
        ("action", "auditAction"),
        ("module", "auditModule"),
    ] {
        if let Some(v) = take(&mut event, from) {
            out.insert(to.to_owned(), v);
        }
    }

    let mut resource = take_object(&mut event, "resource");
    let mut audit_resource = Map::new();
    for key in ["type", "identifier"] {
        if let Some(v) = take(&mut resource, key) {
            audit_resource.insert(key.to_owned(), v);
        }
    }
    keep_rest(&mut unmapped, "resource", resource);
    if !audit_resource.is_empty() {
        out.insert("auditResource".into(), Value::Object(audit_resource));
    }

    let mut scope = take_object(&mut event, "resourceScope");
    let mut audit_scope = Map::new();
    for key in ["accountIdentifier", "orgIdentifier", "projectIdentifier"] {
        if let Some(v) = take(&mut scope, key) {
            audit_scope.insert(key.to_owned(), v);
        }
    }
    keep_rest(&mut unmapped, "resourceScope", scope);
    if !audit_scope.is_empty() {
        out.insert("auditResourceScope".into(), Value::Object(audit_scope));
    }

    let mut http = Map::new();
    let mut request_info = take_object(&mut event, "httpRequestInfo");
    if let Some(v) = take(&mut request_info, "requestMethod") {
        http.insert("requestMethod".into(), v);
    }
    keep_rest(&mut unmapped, "httpRequestInfo", request_info);
    let mut metadata = take_object(&mut event, "requestMetadata");
    if let Some(v) = take(&mut metadata, "clientIP") {
        http.insert("clientIP".into(), v);
    }
    keep_rest(&mut unmapped, "requestMetadata", metadata);
    if !http.is_empty() {
        out.insert("auditHttpRequestInfo".into(), Value::Object(http));
    }

    let mut authentication = take_object(&mut event, "authenticationInfo");
    let mut principal_in = match take(&mut authentication, "principal") {
        Some(Value::Object(p)) => p,
        Some(other) => {
            unmapped.insert("authenticationInfo.principal".into(), other);
            Map::new()
        }
        None => Map::new(),
    };
    let mut labels = match take(&mut authentication, "labels") {
        Some(Value::Object(l)) => l,
        Some(other) => {
            unmapped.insert("authenticationInfo.labels".into(), other);
            Map::new()
        }
        None => Map::new(),
    };
    let kind = take(&mut principal_in, "type");
    let identifier = take(&mut principal_in, "identifier");
    let mut principal = Map::new();
    if let Some(kind) = &kind {
        principal.insert("type".into(), kind.clone());
    }
    // A user is identified by e-mail in the REST shape; streaming carries the
    // e-mail as `email` and the user id (a label) as `identifier`.
    if kind.as_ref().and_then(Value::as_str) == Some("USER") {
        if let Some(email) = identifier {
            principal.insert("email".into(), email);
        }
        if let Some(user_id) = labels.remove("userId") {
            principal.insert("identifier".into(), user_id);
        }
    } else if let Some(identifier) = identifier {
        principal.insert("identifier".into(), identifier);
    }
    keep_rest(&mut unmapped, "authenticationInfo.principal", principal_in);
    keep_rest(&mut unmapped, "authenticationInfo.labels", labels);
    keep_rest(&mut unmapped, "authenticationInfo", authentication);
    if !principal.is_empty() {
        let mut author = Map::new();
        author.insert("principal".into(), Value::Object(principal));
        out.insert("auditEventAuthor".into(), Value::Object(author));
    }

    for (key, value) in event {
        if !value.is_null() {
            unmapped.insert(key, value);
        }
    }
    if !unmapped.is_empty() {
        out.insert(UNMAPPED_KEY.into(), Value::Object(unmapped));
    }
    Ok(Value::Object(out).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn streaming(event: Value) -> Value {
        serde_json::from_str(&to_streaming(&event.to_string()).unwrap()).unwrap()
    }

    #[test]
    fn a_user_event_maps_field_by_field() {
        let out = streaming(json!({
            "auditId": "63e5815e0f842e39a47c71be",
            "resourceScope": {"accountIdentifier": "acct", "orgIdentifier": "default", "projectIdentifier": "payments"},
            "httpRequestInfo": {"requestMethod": "POST"},
            "requestMetadata": {"clientIP": "203.0.113.7"},
            "timestamp": 1_749_564_191_482_u64,
            "authenticationInfo": {
                "principal": {"type": "USER", "identifier": "alice@example.com"},
                "labels": {"userId": "u-123", "username": "Alice"}
            },
            "module": "PMS",
            "resource": {"type": "PIPELINE", "identifier": "deploy", "labels": {"resourceName": "Deploy"}},
            "action": "UPDATE"
        }));
        assert_eq!(
            out,
            json!({
                "auditEventId": "63e5815e0f842e39a47c71be",
                "auditEventTime": 1_749_564_191_482_u64,
                "auditAction": "UPDATE",
                "auditModule": "PMS",
                "auditResource": {"type": "PIPELINE", "identifier": "deploy"},
                "auditResourceScope": {"accountIdentifier": "acct", "orgIdentifier": "default", "projectIdentifier": "payments"},
                "auditHttpRequestInfo": {"requestMethod": "POST", "clientIP": "203.0.113.7"},
                "auditEventAuthor": {"principal": {"type": "USER", "email": "alice@example.com", "identifier": "u-123"}},
                "harnessAuditUnmapped": {
                    "resource.labels": {"resourceName": "Deploy"},
                    "authenticationInfo.labels.username": "Alice"
                }
            })
        );
    }

    #[test]
    fn system_service_account_and_api_key_events_keep_their_identifier() {
        for kind in ["SYSTEM", "SERVICE_ACCOUNT", "API_KEY"] {
            let out = streaming(json!({
                "auditId": "a", "timestamp": 1, "module": "CORE", "action": "CREATE",
                "resourceScope": {"accountIdentifier": "acct"},
                "authenticationInfo": {"principal": {"type": kind, "identifier": "who"}},
                "resource": {"type": "SECRET", "identifier": "s"},
                "environment": {"type": "Production", "identifier": "prod"},
                "auditEventData": {"type": "TemplateAuditEventData", "x": 1},
                "newFieldFromHarness": true
            }));
            assert_eq!(
                out["auditEventAuthor"],
                json!({"principal": {"type": kind, "identifier": "who"}})
            );
            assert_eq!(
                out[UNMAPPED_KEY],
                json!({
                    "environment": {"type": "Production", "identifier": "prod"},
                    "auditEventData": {"type": "TemplateAuditEventData", "x": 1},
                    "newFieldFromHarness": true
                }),
                "nothing is dropped"
            );
            assert!(out.get("auditHttpRequestInfo").is_none());
        }
    }

    #[test]
    fn non_objects_are_refused() {
        assert!(
            to_streaming("[1]")
                .unwrap_err()
                .contains("not a JSON object")
        );
    }
}
