use super::*;

#[test]
fn trailing_slash_is_removed() {
    let s = {
        let mut s = example();
        s.query.api_base = "https://app.harness.io/gateway/".into();
        s
    };
    assert_eq!(
        s.validate().unwrap().query.api_base,
        "https://app.harness.io/gateway"
    );
}

#[test]
fn page_size_bounds_are_inclusive() {
    for ok in [1, 100] {
        assert!(
            {
                let mut s = example();
                s.query.page_size = ok;
                s
            }
            .validate()
            .is_ok()
        );
    }
    for bad in [0, 101] {
        let err = {
            let mut s = example();
            s.query.page_size = bad;
            s
        }
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
        {
            let mut s = example();
            s.query.api_base = "ftp://x".into();
            s
        },
        {
            let mut s = example();
            s.query.api_base = "http://app.harness.io".into();
            s
        },
        {
            let mut s = example();
            s.query.api_base = "http://127.0.0.1.example.com".into();
            s
        },
        {
            let mut s = example();
            s.query.api_base = "https://".into();
            s
        },
        {
            let mut s = example();
            s.query.api_base = "https://h/?a=1".into();
            s
        },
        {
            let mut s = example();
            s.query.account_id = "".into();
            s
        },
        {
            let mut s = example();
            s.query.account_id = "a&b".into();
            s
        },
        {
            let mut s = example();
            s.query.modules = vec!["C D".into()];
            s
        },
        {
            let mut s = example();
            s.query.actions = vec!["".into()];
            s
        },
        {
            let mut s = example();
            s.query.static_filter = Some("EXCLUDE_EVERYTHING".into());
            s
        },
        {
            let mut s = example();
            s.window.reconcile_interval_secs = 0;
            s
        },
        {
            let mut s = example();
            s.window.reconcile_interval_secs = ranges::RECONCILE_INTERVAL_SECS.end() + 1;
            s
        },
        {
            let mut s = example();
            s.window.reconcile_hours = ranges::RECONCILE_HOURS.end() + 1;
            s
        },
    ];
    for case in cases {
        assert!(case.clone().validate().is_err(), "accepted {case:?}");
    }
}
