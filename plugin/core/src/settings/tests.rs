use super::*;

#[test]
fn trailing_slash_is_removed() {
    let s = with(example(), |s| {
        s.query.api_base = "https://app.harness.io/gateway/".into()
    });
    assert_eq!(
        s.validate().unwrap().query.api_base,
        "https://app.harness.io/gateway"
    );
}

#[test]
fn page_size_bounds_are_inclusive() {
    for ok in [1, 100] {
        assert!(
            with(example(), |s| s.query.page_size = ok)
                .validate()
                .is_ok()
        );
    }
    for bad in [0, 101] {
        let err = with(example(), |s| s.query.page_size = bad)
            .validate()
            .unwrap_err();
        assert_eq!(err.setting.env, "PAGE_SIZE");
        assert!(err.to_string().contains("page-size"), "{err}");
    }
}

#[test]
fn rejects_bad_urls_accounts_and_filters() {
    for local in [
        "http://127.0.0.1:9/gateway",
        "http://localhost",
        "http://[::1]:80",
    ] {
        let mut s = example();
        s.query.api_base = local.into();
        assert!(s.validate().is_ok(), "{local}");
    }
    let cases = [
        with(example(), |s| s.query.api_base = "ftp://x".into()),
        with(example(), |s| {
            s.query.api_base = "http://app.harness.io".into()
        }),
        with(example(), |s| {
            s.query.api_base = "http://127.0.0.1.example.com".into()
        }),
        with(example(), |s| s.query.api_base = "https://".into()),
        with(example(), |s| s.query.api_base = "https://h/?a=1".into()),
        with(example(), |s| s.query.account_id = "".into()),
        with(example(), |s| s.query.account_id = "a&b".into()),
        with(example(), |s| s.query.modules = vec!["C D".into()]),
        with(example(), |s| s.query.actions = vec!["".into()]),
        with(example(), |s| {
            s.query.static_filter = Some("EXCLUDE_EVERYTHING".into())
        }),
        with(example(), |s| s.window.reconcile_interval_secs = 0),
        with(example(), |s| {
            s.window.reconcile_interval_secs = ranges::RECONCILE_INTERVAL_SECS.end() + 1
        }),
        with(example(), |s| {
            s.window.reconcile_hours = ranges::RECONCILE_HOURS.end() + 1
        }),
    ];
    for case in cases {
        assert!(case.clone().validate().is_err(), "accepted {case:?}");
    }
}
