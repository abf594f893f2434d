//! Builds the `POST /audit/api/audits/list` request.

use serde::Serialize;

use crate::settings::Settings;

/// One page request: an inclusive time window and an offset page inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRequest {
    /// `startTime`, epoch ms, inclusive.
    pub start_ms: u64,
    /// `endTime`, epoch ms, inclusive.
    pub end_ms: u64,
    /// 0-based `pageIndex`.
    pub page_index: u32,
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
}

/// The full URL: oldest first, because the cursor only moves forward in time.
pub fn url(settings: &Settings, req: &ListRequest) -> String {
    format!(
        "{}/audit/api/audits/list?accountIdentifier={}&pageIndex={}&pageSize={}&sortOrders=timestamp,ASC",
        settings.api_base, settings.account_id, req.page_index, settings.page_size
    )
}

/// The JSON body (`AuditFilterPropertiesDTO`).
pub fn body(settings: &Settings, req: &ListRequest) -> Vec<u8> {
    let body = Body {
        filter_type: "Audit",
        start_time: req.start_ms,
        end_time: req.end_ms,
        modules: &settings.modules,
        actions: &settings.actions,
        static_filter: settings.static_filter.as_deref(),
    };
    serde_json::to_vec(&body).expect("a struct of strings and integers always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::example;

    const REQ: ListRequest = ListRequest {
        start_ms: 1_749_564_191_482,
        end_ms: 1_749_570_491_741,
        page_index: 3,
    };

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
        let settings = Settings {
            modules: vec!["CD".into(), "PMS".into()],
            actions: vec!["CREATE".into()],
            static_filter: Some("EXCLUDE_LOGIN_EVENTS".into()),
            ..example()
        };
        let json: serde_json::Value = serde_json::from_slice(&body(&settings, &REQ)).unwrap();
        assert_eq!(json["modules"], serde_json::json!(["CD", "PMS"]));
        assert_eq!(json["actions"], serde_json::json!(["CREATE"]));
        assert_eq!(json["staticFilter"], "EXCLUDE_LOGIN_EVENTS");
    }
}
