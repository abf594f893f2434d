use harness_tests::{Fault, SeedSpec, make_key};

use crate::support::{ACCOUNT, Env, now_ms};

fn add_recent(env: &Env, count: usize) {
    let now = now_ms();
    env.mock.insert(harness_tests::generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count,
        start_ms: now - 1000,
        end_ms: now,
        seed: 5,
    }));
}

/// A wrong key exits non-zero naming the 401, and leaves data and checkpoint untouched.
#[test]
fn wrong_key_fails_naming_401_and_touches_nothing() {
    let env = Env::new(300);
    assert_eq!(env.run(&[]).code, 0);
    add_recent(&env, 10);
    let before = env.snapshot();
    let wrong = make_key(ACCOUNT, "RevokedToken0000000000");
    let run = env.run(&[("HARNESS_API_KEY", &wrong)]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("HTTP 401 INVALID_TOKEN"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Invalid call: Invalid token or token expired"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Fix: set HARNESS_API_KEY"),
        "{}",
        run.stderr
    );
    assert_eq!(env.snapshot(), before);
    assert_eq!(
        env.mock.requests().len(),
        300 / 50 + 1 + 1,
        "a 401 is not retried"
    );
}

/// A key without `core_audit_view` names the missing permission.
#[test]
fn forbidden_key_names_the_missing_permission() {
    let env = Env::new(10);
    let run = env.run(&[(
        "HARNESS_API_KEY",
        &make_key(ACCOUNT, "NoAuditView00000000000"),
    )]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("HTTP 403 ACCESS_DENIED"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("core_audit_view"), "{}", run.stderr);
    assert!(env.snapshot().is_empty());
}

/// HTML and truncated responses are errors that change no checkpoint; once
/// the API recovers, the next run collects what was missed.
#[test]
fn html_or_truncated_responses_fail_without_checkpoint_change() {
    let env = Env::new(200);
    assert_eq!(env.run(&[]).code, 0);
    add_recent(&env, 25);
    let before = env.snapshot();

    env.mock.set_persistent_fault(Some(Fault::html_502()));
    let run = env.run(&[("MAX_RETRIES", "2")]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("HTTP 502") && run.stderr.contains("502 Bad Gateway"),
        "{}",
        run.stderr
    );
    assert_eq!(env.snapshot(), before);

    env.mock.set_persistent_fault(Some(Fault::Truncate));
    let run = env.run(&[("MAX_RETRIES", "1")]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("unusable response"), "{}", run.stderr);
    assert_eq!(env.snapshot(), before);

    env.mock.set_persistent_fault(None);
    let run = env.run(&[]);
    run.assert_collected(25);
    assert_eq!(env.sorted_lines().len(), 225);
}

/// A 429 without Retry-After and a gateway error are retried with backoff.
#[test]
fn transient_faults_are_retried() {
    let env = Env::new(120);
    env.mock.push_fault(Fault::rate_limited());
    env.mock.push_fault(Fault::html_502());
    env.mock.push_fault(Fault::Truncate);
    let run = env.run(&[("MAX_RETRIES", "3")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("3 retries"), "{}", run.stdout);
    assert_eq!(env.sorted_lines().len(), 120);
}

/// Bad configuration exits 2 before any request, naming the variable.
#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    let env = Env::new(1);
    let run = env.run(&[("PAGE_SIZE", "500")]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("environment variable PAGE_SIZE: `500` is not a whole number from 1 to 100"),
        "{}",
        run.stderr
    );
    let run = env.run(&[("HARNESS_API_KEY", "pat.SomeOtherAccount.tok.TOPSECRETVALUE")]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("is a key of account `SomeOtherAccount`"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("TOPSECRETVALUE"));
    assert!(env.mock.requests().is_empty());
}

/// An unreachable API is a transient failure with its own exit code.
#[test]
fn unreachable_api_exits_4() {
    let env = Env::new(1);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let run = env.run(&[
        ("HARNESS_API_BASE", &format!("http://{addr}")),
        ("MAX_RETRIES", "1"),
    ]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("ConnectionRefused"), "{}", run.stderr);
}
