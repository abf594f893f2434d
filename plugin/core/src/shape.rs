//! The Harness audit-streaming shape, which the Google SecOps parser maps
//! field by field, built from a REST list item. Nothing is dropped: REST
//! fields without a streaming counterpart are kept under [`UNMAPPED_KEY`],
//! keyed by their REST path.
//!
//! Values are copied as Harness wrote them, never parsed into numbers or
//! re-encoded: an integer past 64 bits keeps its digits, a long decimal its
//! precision, a string its escapes, and a value nested however deep is
//! copied whole. A mapped string that is not valid text (a lone surrogate
//! escape) is written with U+FFFD in its place, and its original text is kept
//! under [`UNMAPPED_KEY`] at its REST path; so is a `timestamp` sent as a
//! string of digits, which `auditEventTime` carries as a number.
//!
//! The transform fails only where the streaming shape cannot hold the event
//! without dropping a value: a member it maps given twice, or two values
//! bound for one path of [`UNMAPPED_KEY`]. The pass then keeps such an event
//! in the quarantine.

use std::collections::BTreeMap;

use crate::scan;

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

/// One member of an object: its key as written (escapes kept, for paths),
/// its key's text (for matching), and its value as written.
struct Member<'a> {
    raw_key: &'a str,
    name: std::borrow::Cow<'a, str>,
    value: &'a str,
}

/// An object's members, in order.
struct Object<'a> {
    /// Where it sits, for messages and paths.
    path: &'a str,
    members: Vec<Member<'a>>,
}

impl<'a> Object<'a> {
    /// The members of `value` if it is an object; a member given twice
    /// cannot be mapped without dropping one.
    fn parse(path: &'a str, value: &'a str) -> Result<Option<Self>, String> {
        let Some(found) = scan::object(value.as_bytes()) else {
            return Ok(None);
        };
        let mut members: Vec<Member<'a>> = Vec::with_capacity(found.len());
        for m in found {
            let raw_key = &value[m.key];
            let name = if raw_key.contains('\\') {
                scan::decode(raw_key).text.into()
            } else {
                raw_key.into()
            };
            if members.iter().any(|k| k.name == name) {
                let within = if path.is_empty() {
                    "the event".to_owned()
                } else {
                    format!("`{path}`")
                };
                return Err(format!("the member `{name}` appears twice in {within}"));
            }
            members.push(Member {
                raw_key,
                name,
                value: &value[m.value],
            });
        }
        Ok(Some(Self { path, members }))
    }

    /// Removes `key`, returning its value unless it is null.
    fn take(&mut self, key: &str) -> Option<&'a str> {
        let at = self.members.iter().position(|m| m.name == key)?;
        let value = self.members.remove(at).value;
        (value != "null").then_some(value)
    }
}

/// The streaming object being built: members by key, each a JSON text.
type Members = BTreeMap<String, String>;

/// `harnessAuditUnmapped`: values by REST path; a path reached twice
/// would drop a value.
struct Unmapped(BTreeMap<String, String>);

impl Unmapped {
    fn keep(&mut self, path: String, value: &str) -> Result<(), String> {
        if self.0.contains_key(&path) {
            return Err(format!("two values would land at `{UNMAPPED_KEY}.{path}`"));
        }
        self.0.insert(path, value.to_owned());
        Ok(())
    }

    /// Keeps what is left of `object` under its path.
    fn keep_rest(&mut self, object: Object<'_>) -> Result<(), String> {
        for member in object.members {
            let path = match (object.path, member.raw_key) {
                (prefix, "") => prefix.to_owned(),
                ("", key) => key.to_owned(),
                (prefix, key) => format!("{prefix}.{key}"),
            };
            self.keep(path, member.value)?;
        }
        Ok(())
    }
}

/// A mapped value: copied as written, unless it is a string that is not
/// valid text, which is written repaired and kept as it was under `path`.
fn mapped(value: &str, path: &str, unmapped: &mut Unmapped) -> Result<String, String> {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Ok(value.to_owned());
    };
    let decoded = scan::decode(inner);
    if decoded.lossless {
        return Ok(value.to_owned());
    }
    unmapped.keep(path.to_owned(), value)?;
    let mut repaired = String::with_capacity(value.len());
    scan::quote(&decoded.text, &mut repaired);
    Ok(repaired)
}

/// Takes member `key` of `parent` as an object kept at `path`: an empty one
/// when it is absent or null, and when it is something else, which is kept
/// whole under `path`.
fn take_object<'a>(
    parent: &mut Object<'a>,
    key: &str,
    path: &'static str,
    unmapped: &mut Unmapped,
) -> Result<Object<'a>, String> {
    let empty = Object {
        path,
        members: Vec::new(),
    };
    let Some(value) = parent.take(key) else {
        return Ok(empty);
    };
    match Object::parse(path, value)? {
        Some(object) => Ok(object),
        None => {
            unmapped.keep(path.to_owned(), value)?;
            Ok(empty)
        }
    }
}

/// A string value's text, when it is a string.
fn text_of(value: &str) -> Option<String> {
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    Some(scan::decode(inner).text)
}

/// Writes `members` as a compact JSON object into `out`.
fn write_object(members: &Members, out: &mut String) {
    out.push('{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        out.push_str(value);
    }
    out.push('}');
}

/// An object of the given members, unless it has none.
fn nested(members: Members) -> Option<String> {
    (!members.is_empty()).then(|| {
        let mut out = String::new();
        write_object(&members, &mut out);
        out
    })
}

/// One REST list item (`AuditEventDTO`, an object whose `timestamp` reads as
/// `timestamp_ms`) in the streaming shape; `Err` names what the streaming
/// shape cannot hold.
pub fn to_streaming(raw: &str, timestamp_ms: u64) -> Result<String, String> {
    let mut event = Object::parse("", raw)?.ok_or("the event is not a JSON object")?;
    let mut out = Members::new();
    let mut unmapped = Unmapped(BTreeMap::new());
    for (from, to) in [
        ("auditId", "auditEventId"),
        ("action", "auditAction"),
        ("module", "auditModule"),
    ] {
        if let Some(v) = event.take(from) {
            out.insert(to.to_owned(), mapped(v, from, &mut unmapped)?);
        }
    }
    if let Some(v) = event.take("timestamp") {
        if v.starts_with('"') {
            unmapped.keep("timestamp".into(), v)?;
        }
        out.insert("auditEventTime".into(), timestamp_ms.to_string());
    }

    let mut resource = take_object(&mut event, "resource", "resource", &mut unmapped)?;
    let mut audit_resource = Members::new();
    for key in ["identifier", "type"] {
        if let Some(v) = resource.take(key) {
            let path = format!("resource.{key}");
            audit_resource.insert(key.to_owned(), mapped(v, &path, &mut unmapped)?);
        }
    }
    unmapped.keep_rest(resource)?;
    if let Some(v) = nested(audit_resource) {
        out.insert("auditResource".into(), v);
    }

    let mut scope = take_object(&mut event, "resourceScope", "resourceScope", &mut unmapped)?;
    let mut audit_scope = Members::new();
    for key in ["accountIdentifier", "orgIdentifier", "projectIdentifier"] {
        if let Some(v) = scope.take(key) {
            let path = format!("resourceScope.{key}");
            audit_scope.insert(key.to_owned(), mapped(v, &path, &mut unmapped)?);
        }
    }
    unmapped.keep_rest(scope)?;
    if let Some(v) = nested(audit_scope) {
        out.insert("auditResourceScope".into(), v);
    }

    let mut http = Members::new();
    let mut request_info = take_object(
        &mut event,
        "httpRequestInfo",
        "httpRequestInfo",
        &mut unmapped,
    )?;
    if let Some(v) = request_info.take("requestMethod") {
        let v = mapped(v, "httpRequestInfo.requestMethod", &mut unmapped)?;
        http.insert("requestMethod".into(), v);
    }
    unmapped.keep_rest(request_info)?;
    let mut metadata = take_object(
        &mut event,
        "requestMetadata",
        "requestMetadata",
        &mut unmapped,
    )?;
    if let Some(v) = metadata.take("clientIP") {
        let v = mapped(v, "requestMetadata.clientIP", &mut unmapped)?;
        http.insert("clientIP".into(), v);
    }
    unmapped.keep_rest(metadata)?;
    if let Some(v) = nested(http) {
        out.insert("auditHttpRequestInfo".into(), v);
    }

    let mut authentication = take_object(
        &mut event,
        "authenticationInfo",
        "authenticationInfo",
        &mut unmapped,
    )?;
    let mut principal_in = take_object(
        &mut authentication,
        "principal",
        "authenticationInfo.principal",
        &mut unmapped,
    )?;
    let mut labels = take_object(
        &mut authentication,
        "labels",
        "authenticationInfo.labels",
        &mut unmapped,
    )?;
    let mut principal = Members::new();
    let kind = principal_in.take("type");
    if let Some(kind) = kind {
        let v = mapped(kind, "authenticationInfo.principal.type", &mut unmapped)?;
        principal.insert("type".into(), v);
    }
    let identifier = principal_in.take("identifier");
    // A user is identified by e-mail in the REST shape; streaming carries the
    // e-mail as `email` and the user id (a label) as `identifier`.
    if kind.and_then(text_of).as_deref() == Some("USER") {
        if let Some(email) = identifier {
            let v = mapped(
                email,
                "authenticationInfo.principal.identifier",
                &mut unmapped,
            )?;
            principal.insert("email".into(), v);
        }
        if let Some(user_id) = labels.take("userId") {
            let v = mapped(user_id, "authenticationInfo.labels.userId", &mut unmapped)?;
            principal.insert("identifier".into(), v);
        }
    } else if let Some(identifier) = identifier {
        let v = mapped(
            identifier,
            "authenticationInfo.principal.identifier",
            &mut unmapped,
        )?;
        principal.insert("identifier".into(), v);
    }
    unmapped.keep_rest(principal_in)?;
    unmapped.keep_rest(labels)?;
    unmapped.keep_rest(authentication)?;
    if let Some(principal) = nested(principal) {
        let mut author = Members::new();
        author.insert("principal".into(), principal);
        out.insert(
            "auditEventAuthor".into(),
            nested(author).expect("one member"),
        );
    }

    event.members.retain(|m| m.value != "null");
    unmapped.keep_rest(event)?;
    let mut line = String::with_capacity(raw.len() + 64);
    if !unmapped.0.is_empty() {
        let mut kept = String::new();
        write_object(&unmapped.0, &mut kept);
        out.insert(UNMAPPED_KEY.into(), kept);
    }
    write_object(&out, &mut line);
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn streaming(event: &Value) -> Value {
        let raw = event.to_string();
        let ts = event["timestamp"].as_u64().unwrap_or(0);
        serde_json::from_str(&to_streaming(&raw, ts).unwrap()).unwrap()
    }

    #[test]
    fn a_user_event_maps_field_by_field() {
        let out = streaming(&json!({
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
            let out = streaming(&json!({
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

    /// Keys sorted, compact, and values as Harness wrote them: the bytes a
    /// SIEM receives for an ordinary event.
    #[test]
    fn the_output_is_compact_with_sorted_keys() {
        let raw = r#"{"auditId":"a","timestamp":7,"module":"CORE","action":"LOGIN","resource":{"type":"USER","identifier":"u","labels":{"z":1,"a":2}}}"#;
        assert_eq!(
            to_streaming(raw, 7).unwrap(),
            r#"{"auditAction":"LOGIN","auditEventId":"a","auditEventTime":7,"auditModule":"CORE","auditResource":{"identifier":"u","type":"USER"},"harnessAuditUnmapped":{"resource.labels":{"z":1,"a":2}}}"#
        );
    }

    #[test]
    fn numbers_keep_their_digits_and_strings_their_text() {
        let raw = r#"{"auditId":"a","timestamp":7,"auditEventData":{"runSequence":1180591620717411303424,"cost":0.1000000000000000055511151231257827,"tiny":1E-400,"note":"caf\u00e9 \ud83d\ude00"}}"#;
        let out = to_streaming(raw, 7).unwrap();
        for kept in [
            "1180591620717411303424",
            "0.1000000000000000055511151231257827",
            "1E-400",
            r"caf\u00e9 \ud83d\ude00",
        ] {
            assert!(out.contains(kept), "{kept} in {out}");
        }
    }

    #[test]
    fn a_lone_surrogate_is_repaired_where_mapped_and_kept_as_sent_beside_it() {
        let raw = r#"{"auditId":"a","timestamp":7,"action":"UP\ud800","resource":{"type":"X","identifier":"id\udc00x","labels":{"n":"\ud800"}}}"#;
        let line = to_streaming(raw, 7).unwrap();
        assert!(line.contains("\"auditAction\":\"UP\u{fffd}\""), "{line}");
        assert!(line.contains("\"identifier\":\"id\u{fffd}x\""), "{line}");
        assert!(line.contains(r#""action":"UP\ud800""#), "{line}");
        assert!(
            line.contains(r#""resource.identifier":"id\udc00x""#),
            "{line}"
        );
        assert!(
            line.contains(r#""resource.labels":{"n":"\ud800"}"#),
            "{line}"
        );
    }

    #[test]
    fn a_timestamp_sent_as_digits_is_written_as_a_number_and_kept_as_sent() {
        let out: Value = serde_json::from_str(
            &to_streaming(r#"{"auditId":"a","timestamp":"0007"}"#, 7).unwrap(),
        )
        .unwrap();
        assert_eq!(out["auditEventTime"], 7);
        assert_eq!(out[UNMAPPED_KEY]["timestamp"], "0007");
    }

    #[test]
    fn nulls_and_values_of_another_type_lose_nothing() {
        let out = streaming(&json!({
            "auditId": "a", "timestamp": 1,
            "resource": null,
            "resourceScope": "acct",
            "authenticationInfo": {"principal": [1, 2], "labels": null},
            "httpRequestInfo": {"requestMethod": null, "x": null}
        }));
        assert_eq!(
            out[UNMAPPED_KEY],
            json!({
                "resourceScope": "acct",
                "authenticationInfo.principal": [1, 2],
                "httpRequestInfo.x": null
            })
        );
        assert!(out.get("auditResource").is_none());
    }

    #[test]
    fn deep_values_are_copied_whole() {
        let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        let raw = format!(r#"{{"auditId":"a","timestamp":7,"auditEventData":{deep}}}"#);
        let out = to_streaming(&raw, 7).unwrap();
        assert!(out.contains(&format!(r#""auditEventData":{deep}"#)));
    }

    #[test]
    fn what_the_shape_cannot_hold_is_refused_naming_it() {
        for (raw, said) in [
            (
                r#"{"auditId":"a","timestamp":7,"module":"CD","module":"CI"}"#,
                "`module` appears twice",
            ),
            (
                r#"{"auditId":"a","timestamp":7,"resource":{"type":"A","type":"B"}}"#,
                "`type` appears twice in `resource`",
            ),
            (
                r#"{"auditId":"a","timestamp":7,"resource.labels":1,"resource":{"labels":2}}"#,
                "harnessAuditUnmapped.resource.labels",
            ),
        ] {
            let err = to_streaming(raw, 7).unwrap_err();
            assert!(err.contains(said), "{raw}: {err}");
        }
        assert!(
            to_streaming("[1]", 0)
                .unwrap_err()
                .contains("not a JSON object")
        );
    }
}
