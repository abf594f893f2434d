//! `check`: one diagnosis per failure, each with its exit code, and nothing
//! written or changed when all is well.

use harness_tests::{Emulator, make_key};

use crate::support::{ACCOUNT, Env, Run};

/// Extra environment variables of one case.
type Vars<'a> = &'a [(&'a str, &'a str)];

fn check(env: &Env, extra: &[(&str, &str)]) -> Run {
    env.run_with(&["check"], extra)
}

#[test]
fn a_good_configuration_passes_and_nothing_is_written() {
    let env = Env::new(30);
    let run = check(&env, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for line in [
        "configuration: ok (account Xy3kQ9mTR0aWb1cD2eF4gH",
        "key from environment variable HARNESS_API_KEY",
        "storage: ok,",
        "harness: ok, the key can read the audit trail of account Xy3kQ9mTR0aWb1cD2eF4gH",
        "all checks passed",
    ] {
        assert!(run.stdout.contains(line), "{line}\n{}", run.stdout);
    }
    assert_eq!(env.mock.request_count(), 1, "one request");
    assert!(
        env.objects().is_empty() && env.checkpoint().is_none(),
        "nothing stored"
    );

    let gcs = Emulator::from_env();
    let bucket = gcs.fresh_bucket("check");
    let run = check(
        &env,
        &[
            ("GCS_BUCKET", &bucket),
            ("STORAGE_EMULATOR_HOST", gcs.base_url()),
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("storage: ok, gs://{bucket} is writable")),
        "{}",
        run.stdout
    );
    assert!(
        gcs.list(&bucket, "").is_empty(),
        "the probe object was removed"
    );
}

#[test]
fn each_failure_is_named_with_its_exit_code() {
    let env = Env::new(5);
    let blocker = env.out().join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    let wrong_key = make_key(ACCOUNT, "NotAKeyAtAll0000000000");
    let no_view = make_key(ACCOUNT, "NoAuditView00000000000");
    let other_account = make_key("SomeOtherAccount000000", "E2eToken00000000000000");
    let cases: [(Vars, i32, &str); 5] = [
        (
            &[("HARNESS_API_KEY", &wrong_key)],
            3,
            "harness: FAILED: Harness rejected the API key",
        ),
        (&[("HARNESS_API_KEY", &no_view)], 3, "core_audit_view"),
        (
            &[("HARNESS_API_KEY", &other_account)],
            2,
            "configuration: FAILED: configuration error: environment variable HARNESS_API_KEY: is a key of account `SomeOtherAccount000000`",
        ),
        (
            &[
                ("HARNESS_API_BASE", "http://127.0.0.1:9"),
                ("MAX_RETRIES", "0"),
            ],
            4,
            "harness: FAILED: Harness was unavailable",
        ),
        (
            &[("OUTPUT_DIR", blocker.to_str().unwrap())],
            5,
            "storage: FAILED: storage failed: writing a probe file in the output directory",
        ),
    ];
    for (vars, code, message) in cases {
        let run = check(&env, vars);
        assert_eq!(run.code, code, "{vars:?}\n{}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.contains(message), "{message}\n{}", run.stdout);
        assert!(!run.stdout.contains("all checks passed"));
    }
}
