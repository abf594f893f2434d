//! Builds the list request: `POST /audit/api/audits/list` (offset pages, the
//! verified API) or `POST /audit/api/audits/listV2` (cursor pages, unverified).

use serde::Serialize;

use crate::error::RequestAt;
use crate::settings::{ApiFlavor, Settings};

/// One page request: an inclusive time window and a position inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// `startTime`, epoch ms, inclusive.
    pub start_ms: u64,
    /// `endTime`, epoch ms, inclusive.
    pub end_ms: u64,
    /// 0-based `pageIndex` (`list` only).
    pub page_index: u32,
    /// `pageSize`: the configured one, or 1 when only `totalItems` is wanted.
    pub page_size: u32,
    /// `pageToken` from the previous page of the same body (`list-v2` only).
    pub page_token: Option<String>,
}

impl ListRequest {
    /// Where it asks, as an error names it.
    pub fn at(&self) -> RequestAt {
        RequestAt {
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            page_index: self.page_index,
            page_size: self.page_size,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    filter_type: &'static str,
    start_time: u64,
    end_time: u64,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    modules: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    actions: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    static_filter: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    principals: Vec<Principal<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes: Vec<Scope<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resources: Vec<Resource<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    environments: Vec<Environment<'a>>,
}

#[derive(Serialize)]
struct Principal<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    identifier: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Scope<'a> {
    account_identifier: &'a str,
    org_identifier: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_identifier: Option<&'a str>,
}

#[derive(Serialize)]
struct Resource<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    identifier: Option<&'a str>,
}

#[derive(Serialize)]
struct Environment<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identifier: Option<&'a str>,
}

/// The full URL: oldest first, because the cursor only moves forward in time.
pub fn url(settings: &Settings, req: &ListRequest) -> String {
    match settings.query.api_flavor {
        ApiFlavor::List => format!(
            "{}/audit/api/audits/list?accountIdentifier={}&pageIndex={}&pageSize={}&sortOrders=timestamp,ASC",
            settings.query.api_base, settings.query.account_id, req.page_index, req.page_size
        ),
        ApiFlavor::ListV2 => {
            let token = req
                .page_token
                .as_deref()
                .map(|t| format!("&pageToken={}", percent_encode(t)))
                .unwrap_or_default();
            format!(
                "{}/audit/api/audits/listV2?accountIdentifier={}&pageSize={}&sortOrders=timestamp,ASC{token}",
                settings.query.api_base, settings.query.account_id, req.page_size
            )
        }
    }
}

/// `GET /audit/api/auditYaml` for one event.
pub fn yaml_url(settings: &Settings, audit_id: &str) -> String {
    format!(
        "{}/audit/api/auditYaml?accountIdentifier={}&auditId={}",
        settings.query.api_base,
        settings.query.account_id,
        percent_encode(audit_id)
    )
}

/// Encodes everything but RFC 3986 unreserved characters: a token is opaque.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A stable fingerprint of a request body, so a page token is only ever
/// sent with the body it was issued for (FNV-1a).
pub fn body_hash(body: &[u8]) -> u64 {
    body.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The JSON body (`AuditFilterPropertiesDTO`).
pub fn body(settings: &Settings, req: &ListRequest) -> Vec<u8> {
    let body = Body {
        filter_type: "Audit",
        start_time: req.start_ms,
        end_time: req.end_ms,
        modules: &settings.query.modules,
        actions: &settings.query.actions,
        static_filter: settings.query.static_filter.as_deref(),
        principals: settings
            .query
            .principals
            .iter()
            .map(|p| Principal {
                kind: &p.kind,
                identifier: &p.identifier,
            })
            .collect(),
        scopes: settings
            .query
            .scopes
            .iter()
            .map(|s| Scope {
                account_identifier: &settings.query.account_id,
                org_identifier: &s.org,
                project_identifier: s.project.as_deref(),
            })
            .collect(),
        resources: settings
            .query
            .resources
            .iter()
            .map(|r| Resource {
                kind: &r.kind,
                identifier: r.identifier.as_deref(),
            })
            .collect(),
        environments: settings
            .query
            .environments
            .iter()
            .map(|e| Environment {
                kind: e.kind.as_deref(),
                identifier: e.identifier.as_deref(),
            })
            .collect(),
    };
    serde_json::to_vec(&body).expect("a struct of strings and integers always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{example, with};

    const REQ: ListRequest = ListRequest {
        start_ms: 1_749_564_191_482,
        end_ms: 1_749_570_491_741,
        page_index: 3,
        page_size: 50,
        page_token: None,
    };

    #[test]
    fn list_v2_url_carries_the_encoded_token_and_no_page_index() {
        let settings = with(example(), |s| s.query.api_flavor = ApiFlavor::ListV2);
        let req = ListRequest {
            page_token: Some("a+b/c=".into()),
            ..REQ
        };
        assert_eq!(
            url(&settings, &req),
            "https://app.harness.io/audit/api/audits/listV2?accountIdentifier=Xy3kQ9mTR0aWb1cD2eF4gH\
             &pageSize=50&sortOrders=timestamp,ASC&pageToken=a%2Bb%2Fc%3D"
        );
        assert!(!url(&settings, &REQ).contains("pageToken"));
    }

    #[test]
    fn every_filter_kind_reaches_the_body_in_the_api_shape() {
        use crate::settings::{EnvironmentFilter, PrincipalFilter, ResourceFilter, ScopeFilter};
        let settings = with(example(), |s| {
            s.query.principals = vec![PrincipalFilter {
                kind: "USER".into(),
                identifier: "a@example.com".into(),
            }];
            s.query.scopes = vec![
                ScopeFilter {
                    org: "default".into(),
                    project: None,
                },
                ScopeFilter {
                    org: "default".into(),
                    project: Some("payments".into()),
                },
            ];
            s.query.resources = vec![ResourceFilter {
                kind: "PIPELINE".into(),
                identifier: Some("deploy".into()),
            }];
            s.query.environments = vec![EnvironmentFilter {
                kind: Some("Production".into()),
                identifier: None,
            }];
        });
        let sent: serde_json::Value = serde_json::from_slice(&body(&settings, &REQ)).unwrap();
        assert_eq!(
            sent["principals"],
            serde_json::json!([{"type": "USER", "identifier": "a@example.com"}])
        );
        assert_eq!(
            sent["scopes"],
            serde_json::json!([
                {"accountIdentifier": "Xy3kQ9mTR0aWb1cD2eF4gH", "orgIdentifier": "default"},
                {"accountIdentifier": "Xy3kQ9mTR0aWb1cD2eF4gH", "orgIdentifier": "default", "projectIdentifier": "payments"}
            ])
        );
        assert_eq!(
            sent["resources"],
            serde_json::json!([{"type": "PIPELINE", "identifier": "deploy"}])
        );
        assert_eq!(
            sent["environments"],
            serde_json::json!([{"type": "Production"}])
        );
        let plain: serde_json::Value = serde_json::from_slice(&body(&example(), &REQ)).unwrap();
        for absent in ["principals", "scopes", "resources", "environments"] {
            assert!(plain.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn body_hash_tells_bodies_apart() {
        let a = body(&example(), &REQ);
        let b = body(
            &example(),
            &ListRequest {
                start_ms: REQ.start_ms + 1,
                ..REQ
            },
        );
        assert_eq!(body_hash(&a), body_hash(&a.clone()));
        assert_ne!(body_hash(&a), body_hash(&b));
    }

    #[test]
    fn url_carries_account_paging_and_ascending_sort() {
        assert_eq!(
            url(&example(), &REQ),
            "https://app.harness.io/audit/api/audits/list?accountIdentifier=Xy3kQ9mTR0aWb1cD2eF4gH\
             &pageIndex=3&pageSize=50&sortOrders=timestamp,ASC"
        );
    }

    #[test]
    fn body_without_filters_has_only_type_and_window() {
        assert_eq!(
            String::from_utf8(body(&example(), &REQ)).unwrap(),
            r#"{"filterType":"Audit","startTime":1749564191482,"endTime":1749570491741}"#
        );
    }

    #[test]
    fn body_carries_every_configured_filter() {
        let settings = with(example(), |s| {
            s.query.modules = vec!["CD".into(), "PMS".into()];
            s.query.actions = vec!["CREATE".into()];
            s.query.static_filter = Some("EXCLUDE_LOGIN_EVENTS".into());
        });
        let json: serde_json::Value = serde_json::from_slice(&body(&settings, &REQ)).unwrap();
        assert_eq!(json["modules"], serde_json::json!(["CD", "PMS"]));
        assert_eq!(json["actions"], serde_json::json!(["CREATE"]));
        assert_eq!(json["staticFilter"], "EXCLUDE_LOGIN_EVENTS");
    }
}
