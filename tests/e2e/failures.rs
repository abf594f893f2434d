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

/// A corrupt or unknown-version checkpoint stops the run with exit 2 and is
/// never overwritten; `--reset-checkpoint` keeps it aside and starts over.
#[test]
fn bad_checkpoints_stop_the_run_untouched_until_reset() {
    let env = Env::new(50);
    let state = env.out().join("harness-audit-state/checkpoint.json");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    for (content, expected) in [
        (
            "{\"cursor\": 1700000000}".to_owned(),
            "not harness-audit state",
        ),
        (
            r#"{"format":"harness-audit-state/1","checkpoint":"{\"version\":7}"}"#.to_owned(),
            "checkpoint version Some(7) is not supported",
        ),
    ] {
        std::fs::write(&state, &content).unwrap();
        let run = env.run(&[]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains(expected), "{}", run.stderr);
        assert!(run.stderr.contains("--reset-checkpoint"), "{}", run.stderr);
        assert_eq!(
            std::fs::read_to_string(&state).unwrap(),
            content,
            "left untouched"
        );
        assert!(env.objects().is_empty());
    }
    let run = env.run_with(&["run", "--reset-checkpoint"], &[]);
    run.assert_collected(50);
    assert!(
        run.stderr.contains("checkpoint moved to")
            && run.stderr.contains("starts over 60 minutes ago"),
        "{}",
        run.stderr
    );
    let kept: Vec<_> = std::fs::read_dir(state.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint.json.reset-"))
        .collect();
    assert_eq!(kept.len(), 1, "the old checkpoint is kept: {kept:?}");
}

/// A write left in flight by a killed run is settled on restart: committed
/// when its object exists, dropped (and read again) when it does not.
#[test]
fn a_write_left_in_flight_is_settled_on_restart() {
    let env = Env::new(120);
    env.run(&[("PAGE_SIZE", "50")]).assert_collected(120);
    let state_path = env.out().join("harness-audit-state/checkpoint.json");
    let committed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    let objects = env.objects();
    let (object, _) = objects.iter().next().unwrap();
    let object = object
        .strip_prefix(env.out())
        .unwrap()
        .display()
        .to_string();
    // An intent whose object exists, carrying the committed checkpoint: settled as written.
    let intent = serde_json::json!({
        "format": "harness-audit-state/1",
        "checkpoint": committed["checkpoint"],
        "pending": {"object": object, "checkpoint": committed["checkpoint"]},
    });
    std::fs::write(&state_path, intent.to_string()).unwrap();
    let run = env.run(&[]);
    run.assert_collected(0);
    assert!(
        run.stderr
            .contains("its object exists, so its checkpoint is now committed"),
        "{}",
        run.stderr
    );
    // An intent whose object was never written: dropped, nothing lost.
    let intent = serde_json::json!({
        "format": "harness-audit-state/1",
        "checkpoint": committed["checkpoint"],
        "pending": {"object": "harness/audit/never-written.jsonl", "checkpoint": "{\"version\":2}"},
    });
    std::fs::write(&state_path, intent.to_string()).unwrap();
    let run = env.run(&[]);
    run.assert_collected(0);
    assert!(
        run.stderr.contains("its object was never written"),
        "{}",
        run.stderr
    );
    assert_eq!(env.objects(), objects);
    let settled: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    assert!(settled.get("pending").is_none());
}

/// A first run killed after recording its intent but before writing its
/// object has no committed checkpoint yet: the restart starts fresh.
#[test]
fn an_intent_before_the_first_commit_restarts_fresh() {
    let env = Env::new(40);
    let state_path = env.out().join("harness-audit-state/checkpoint.json");
    std::fs::create_dir_all(state_path.parent().unwrap()).unwrap();
    let intent = serde_json::json!({
        "format": "harness-audit-state/1",
        "checkpoint": null,
        "pending": {"object": "harness/audit/never-written.jsonl", "checkpoint": "{\"version\":2}"},
    });
    std::fs::write(&state_path, intent.to_string()).unwrap();
    env.run(&[]).assert_collected(40);
}
