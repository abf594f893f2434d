use serde_json::Value;

use crate::support::Env;

/// Runs the probe component in the real binary: it sees no environment, no
/// files, cannot set `x-api-key`, and reaches nothing but the configured
/// origin, while the host adds the key to the one request it may send.
#[test]
fn guest_cannot_leave_its_sandbox_or_see_the_key() {
    let env = Env::new(5);
    let run = env.run_with(&["--component", harness_tests::GUEST_PROBE, "run"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let objects = env.objects();
    let report: Value = serde_json::from_slice(objects.values().next().unwrap()).unwrap();
    assert_eq!(
        report["env"],
        serde_json::json!([]),
        "no environment variables"
    );
    assert_eq!(report["args"], serde_json::json!([]), "no arguments");
    assert_ne!(report["fs"], "readable", "no filesystem");
    assert_eq!(report["forged_api_key"], "forbidden");
    assert_eq!(
        report["other_name_same_server"],
        "ErrorCode::HttpRequestDenied"
    );
    assert_eq!(report["other_host"], "ErrorCode::HttpRequestDenied");
    assert_eq!(report["allowed_origin"], "status 200");

    let requests = env.mock.requests();
    assert_eq!(
        requests.len(),
        1,
        "only the allowed origin was reached: {requests:?}"
    );
    assert_eq!(
        requests[0].api_key.as_deref(),
        Some(env.key.as_str()),
        "the host added the key"
    );
    assert!(!report.to_string().contains(&env.key));
}
