//! Realistic audit events, shaped as `AuditEventDTO` list items: field order,
//! omitted nulls, modules and actions as Harness's producers set them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

/// `resourceScope`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceScope {
    /// Account.
    pub account_identifier: String,
    /// Organization, for org and project scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_identifier: Option<String>,
    /// Project, for project scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_identifier: Option<String>,
}

/// `httpRequestInfo`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestInfo {
    /// HTTP method.
    pub request_method: String,
}

/// `requestMetadata`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RequestMetadata {
    /// Caller IP.
    #[serde(rename = "clientIP")]
    pub client_ip: String,
}

/// `authenticationInfo.principal`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Principal {
    /// USER, SYSTEM, API_KEY or SERVICE_ACCOUNT.
    #[serde(rename = "type")]
    pub kind: String,
    /// Email for users.
    pub identifier: String,
}

/// `authenticationInfo`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuthenticationInfo {
    /// Who acted.
    pub principal: Principal,
    /// `userId`, `username` for users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `environment`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Environment {
    /// PreProduction or Production.
    #[serde(rename = "type")]
    pub kind: String,
    /// Environment identifier.
    pub identifier: String,
}

/// `resource`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Resource {
    /// Resource type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Resource identifier.
    pub identifier: String,
    /// Usually `resourceName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// One `AuditEventDTO` as the list endpoint returns it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// ObjectId-style id.
    pub audit_id: String,
    /// Scope.
    pub resource_scope: ResourceScope,
    /// Present for HTTP-originated actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_request_info: Option<HttpRequestInfo>,
    /// Caller IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_metadata: Option<RequestMetadata>,
    /// Action time, epoch ms.
    pub timestamp: u64,
    /// Who.
    pub authentication_info: AuthenticationInfo,
    /// Module.
    pub module: String,
    /// Rarely set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// What.
    pub resource: Resource,
    /// Action.
    pub action: String,
    /// Execution details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_event_data: Option<Value>,
}

impl AuditEvent {
    /// The exact JSON text the mock serves.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialize")
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// Account of every event.
    pub account_id: String,
    /// Number of events.
    pub count: usize,
    /// Earliest timestamp (inclusive).
    pub start_ms: u64,
    /// Latest timestamp (inclusive).
    pub end_ms: u64,
    /// PRNG seed; the same spec gives the same events.
    pub seed: u64,
}

/// A small deterministic PRNG (SplitMix64): tests need repeatable data, not crypto.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const USERS: [(&str, &str, &str); 5] = [
    ("jane.doe@example.com", "pR7sT2uVwX9yZ0aB1cD3eF", "Jane Doe"),
    (
        "zoe.muller@example.de",
        "Qk8rS3tUvW0xY1zA2bC4dE",
        "Zoë Müller",
    ),
    ("li.lei@example.cn", "Hn5mB6vC7xZ8aS9dF0gJ1k", "李雷"),
    (
        "olafur@example.is",
        "Tr4eW3qA2sD1fG0hJ9kL8z",
        "Ólafur Árnason",
    ),
    ("mallory@example.org", "Zz9yXw8vUt7sRq6pOn5mLk", "mallory"),
];
const SERVICE_ACCOUNTS: [&str; 2] = ["terraform_sa", "ci_bot"];
const IPS: [&str; 4] = ["203.0.113.24", "198.51.100.7", "192.0.2.55", "2001:db8::17"];
const ORGS: [(&str, &[&str]); 2] = [
    ("default", &["payments", "checkout"]),
    ("platform", &["infra"]),
];
const PIPELINES: [(&str, &str); 3] = [
    ("deploy_payments", "Déploiement Paiements"),
    ("nightly_batch", "nightly_batch"),
    ("jp_release", "支払いパイプライン"),
];

/// Now, in epoch milliseconds: the clock of every timestamp the tests make.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Generates `spec.count` events with ascending timestamps spread over the
/// range; about one in twenty shares its millisecond with the previous event.
pub fn generate(spec: &SeedSpec) -> Vec<AuditEvent> {
    let mut rng = Rng::new(spec.seed);
    let span = spec.end_ms.saturating_sub(spec.start_ms);
    let mut stamps: Vec<u64> = (0..spec.count)
        .map(|_| spec.start_ms + rng.below(span + 1))
        .collect();
    stamps.sort_unstable();
    for i in 1..stamps.len() {
        if rng.below(20) == 0 {
            stamps[i] = stamps[i - 1];
        }
    }
    stamps
        .into_iter()
        .enumerate()
        .map(|(i, ts)| event(&mut rng, &spec.account_id, ts, i as u64))
        .collect()
}

/// An ObjectId-like id: 4 bytes of seconds, then randomness and a counter.
pub fn object_id(rng: &mut Rng, timestamp_ms: u64, counter: u64) -> String {
    format!(
        "{:08x}{:06x}{:010x}",
        timestamp_ms / 1000,
        rng.below(1 << 24),
        counter & 0xFF_FFFF_FFFF
    )
}

fn user(rng: &mut Rng) -> AuthenticationInfo {
    let (email, id, name) = *rng.pick(&USERS);
    AuthenticationInfo {
        principal: Principal {
            kind: "USER".into(),
            identifier: email.into(),
        },
        labels: Some(BTreeMap::from([
            ("userId".into(), id.into()),
            ("username".into(), name.into()),
        ])),
    }
}

fn principal(kind: &str, identifier: &str) -> AuthenticationInfo {
    AuthenticationInfo {
        principal: Principal {
            kind: kind.into(),
            identifier: identifier.into(),
        },
        labels: None,
    }
}

fn labels(name: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([("resourceName".into(), name.into())]))
}

fn event(rng: &mut Rng, account: &str, ts: u64, n: u64) -> AuditEvent {
    let (org, projects) = *rng.pick(&ORGS);
    let project = *rng.pick(projects);
    let scope = |org: Option<&str>, project: Option<&str>| ResourceScope {
        account_identifier: account.into(),
        org_identifier: org.map(Into::into),
        project_identifier: project.map(Into::into),
    };
    let http = |m: &str| {
        Some(HttpRequestInfo {
            request_method: m.into(),
        })
    };
    let ip = Some(RequestMetadata {
        client_ip: (*rng.pick(&IPS)).into(),
    });
    let (pipeline, pipeline_name) = *rng.pick(&PIPELINES);
    let audit_id = object_id(rng, ts + 1500, n);
    let mut e = AuditEvent {
        audit_id,
        resource_scope: scope(Some(org), Some(project)),
        http_request_info: None,
        request_metadata: None,
        timestamp: ts,
        authentication_info: user(rng),
        module: "PMS".into(),
        environment: None,
        resource: Resource {
            kind: "PIPELINE".into(),
            identifier: pipeline.into(),
            labels: labels(pipeline_name),
        },
        action: "CREATE".into(),
        audit_event_data: None,
    };
    match rng.below(10) {
        0 | 1 => {
            let (action, method) =
                *rng.pick(&[("CREATE", "POST"), ("UPDATE", "PUT"), ("DELETE", "DELETE")]);
            e.action = action.into();
            e.http_request_info = http(method);
            e.request_metadata = ip;
        }
        2 | 3 => {
            let who = user(rng);
            let email = who.principal.identifier.clone();
            let labels = who.labels.clone().map(|mut l| {
                let name = l.remove("username").unwrap_or_default();
                BTreeMap::from([
                    ("resourceName".to_owned(), name),
                    ("userId".to_owned(), l.remove("userId").unwrap_or_default()),
                ])
            });
            e.resource_scope = scope(None, None);
            e.authentication_info = who;
            e.module = "CORE".into();
            e.resource = Resource {
                kind: "USER".into(),
                identifier: email,
                labels,
            };
            e.action = (*rng.pick(&["LOGIN", "LOGIN", "LOGIN2FA", "UNSUCCESSFUL_LOGIN"])).into();
            e.request_metadata = ip;
        }
        4 => {
            let (kind, id, name) = *rng.pick(&[
                ("SECRET", "old_github_pat", "old-github-pat"),
                ("CONNECTOR", "gcp_prod", "GCP prod"),
                ("SERVICE", "checkout_api", "Checkout API"),
            ]);
            e.resource_scope = scope(Some(org), None);
            let account = *rng.pick(&SERVICE_ACCOUNTS);
            e.authentication_info = principal("SERVICE_ACCOUNT", account);
            e.module = "CORE".into();
            e.resource = Resource {
                kind: kind.into(),
                identifier: id.into(),
                labels: labels(name),
            };
            let (action, method) =
                *rng.pick(&[("CREATE", "POST"), ("UPDATE", "PUT"), ("DELETE", "DELETE")]);
            e.action = action.into();
            e.http_request_info = http(method);
            e.request_metadata = ip;
        }
        5 | 6 => {
            let end = rng.below(2) == 0;
            let (email, user_id) = (
                e.authentication_info.principal.identifier.clone(),
                "jane.doe",
            );
            e.action = if end { "END" } else { "START" }.into();
            let start_ts = ts.saturating_sub(rng.below(600_000) + 200);
            e.audit_event_data = Some(json!({
                "type": "PipelineExecutionEventData",
                "accountIdentifier": account, "orgIdentifier": org, "projectIdentifier": project,
                "pipelineIdentifier": pipeline, "stageIdentifier": null, "stageType": null,
                "planExecutionId": format!("{:022x}", rng.next_u64()), "runSequence": rng.below(500) + 1,
                "nodeExecutionId": null, "status": if end { json!("SUCCEEDED") } else { Value::Null },
                "triggeredBy": {"type": "MANUAL", "identifier": user_id, "extraInfo": {"email": email}},
                "startTs": start_ts, "endTs": if end { ts - 50 } else { 0 },
            }));
        }
        7 => {
            e.authentication_info = principal("SYSTEM", "SYSTEM");
            e.action = "TIMEOUT".into();
            e.audit_event_data = Some(json!({
                "type": "PipelineExecutionEventData", "accountIdentifier": account, "orgIdentifier": org,
                "projectIdentifier": project, "pipelineIdentifier": pipeline,
                "planExecutionId": format!("{:022x}", rng.next_u64()), "runSequence": rng.below(50) + 1,
                "startTs": 0, "endTs": 0,
            }));
        }
        8 => {
            e.resource_scope = scope(None, None);
            e.module = "CE".into();
            e.resource = Resource {
                kind: "PERSPECTIVE_BUDGET".into(),
                identifier: format!("{:022x}", rng.next_u64()),
                labels: labels("Q3 AWS budget"),
            };
            e.http_request_info = http("POST");
            e.request_metadata = ip;
        }
        _ => {
            e.authentication_info = principal("API_KEY", "automation_key");
            e.module = "TEMPLATESERVICE".into();
            e.resource = Resource {
                kind: "TEMPLATE".into(),
                identifier: "deploy_stage".into(),
                labels: labels("Deploy stage"),
            };
            e.action = "UPDATE".into();
            e.environment = Some(Environment {
                kind: "Production".into(),
                identifier: "prod".into(),
            });
            e.http_request_info = http("PUT");
            e.request_metadata = ip;
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_sorted_and_unique() {
        let spec = SeedSpec {
            account_id: "acct".into(),
            count: 2000,
            start_ms: 1_000,
            end_ms: 5_000_000,
            seed: 7,
        };
        let a = generate(&spec);
        assert_eq!(a, generate(&spec));
        assert!(a.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        let ids: std::collections::HashSet<_> = a.iter().map(|e| &e.audit_id).collect();
        assert_eq!(ids.len(), a.len());
        assert!(
            a.windows(2).any(|w| w[0].timestamp == w[1].timestamp),
            "ties exist"
        );
        for kind in ["USER", "SYSTEM", "SERVICE_ACCOUNT", "API_KEY"] {
            assert!(
                a.iter()
                    .any(|e| e.authentication_info.principal.kind == kind),
                "{kind}"
            );
        }
        assert!(a.iter().any(|e| e.to_json().contains("李雷")));
        assert!(a.iter().all(|e| e.audit_id.len() == 24));
    }

    #[test]
    fn json_follows_the_dto_field_order_and_omits_nulls() {
        let spec = SeedSpec {
            account_id: "acct".into(),
            count: 200,
            start_ms: 1_000,
            end_ms: 2_000,
            seed: 1,
        };
        let login = generate(&spec)
            .into_iter()
            .find(|e| e.action == "LOGIN")
            .unwrap()
            .to_json();
        assert!(login.starts_with(r#"{"auditId":""#), "{login}");
        let order = [
            "\"resourceScope\"",
            "\"timestamp\"",
            "\"authenticationInfo\"",
            "\"module\"",
            "\"resource\"",
            "\"action\"",
        ];
        let positions: Vec<usize> = order.iter().map(|k| login.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{login}");
        assert!(!login.contains("null") && !login.contains("orgIdentifier"));
    }
}
