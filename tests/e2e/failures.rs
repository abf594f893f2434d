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

/// A gateway's HTML error and a body cut short change no checkpoint; once
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

    // Harness answered, with half a page: its own error kind, exit 10.
    let (objects, checkpoint) = (env.objects(), env.committed());
    env.mock.set_persistent_fault(Some(Fault::Truncate));
    let run = env.run(&[("MAX_RETRIES", "1")]);
    assert_eq!(run.code, 10, "{}", run.stderr);
    for said in [
        "with something that is not a page of audit events: HTTP 200 (application/json",
        "the body ends before its JSON does",
        "No event was skipped",
    ] {
        assert!(run.stderr.contains(said), "{said}: {}", run.stderr);
    }
    assert!(!run.stderr.contains("Nothing was lost"), "{}", run.stderr);
    assert_eq!((env.objects(), env.committed()), (objects, checkpoint));

    env.mock.set_persistent_fault(None);
    let run = env.run(&[]);
    run.assert_collected(25);
    assert_eq!(env.sorted_lines().len(), 225);
}

/// The same unusable answer to the same request, pass after pass, is called
/// what it is: collection is stuck, where, since when, and what to do. A pass
/// that gets past it starts the count again.
#[test]
fn the_same_unusable_answer_pass_after_pass_says_collection_is_stuck_there() {
    let env = Env::new(20);
    let maintenance = Fault::Respond {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: "<html><title>Harness is under maintenance</title></html>".into(),
    };
    env.mock.set_persistent_fault(Some(maintenance.clone()));
    let retries = [("MAX_RETRIES", "1"), ("RETRY_BASE_MS", "1")];
    for pass in 1..=4 {
        let run = env.run(&retries);
        assert_eq!(run.code, 10, "{}", run.stderr);
        assert!(
            run.stderr.contains("HTTP 200 (text/html; charset=utf-8")
                && run
                    .stderr
                    .contains("starting `<html><title>Harness is under maintenance"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("maintenance page"),
            "the hint: {}",
            run.stderr
        );
        let stuck = run
            .stderr
            .contains("Collection of this account is stuck here");
        assert_eq!(stuck, pass >= 3, "pass {pass}: {}", run.stderr);
        if stuck {
            assert!(
                run.stderr.contains(&format!("in the last {pass} passes")),
                "{}",
                run.stderr
            );
        }
    }
    env.mock.set_persistent_fault(None);
    env.run(&[]).assert_collected(20);
    env.mock.set_persistent_fault(Some(maintenance));
    let run = env.run(&retries);
    assert!(
        !run.stderr.contains("stuck"),
        "a success starts the count again: {}",
        run.stderr
    );
}

/// An answer no retry can change is not retried: an encoding the component
/// cannot undo fails at once, naming it.
#[test]
fn an_answer_no_retry_can_change_is_not_retried() {
    let env = Env::new(20);
    env.mock
        .set_persistent_fault(Some(Fault::Encoded { encoding: "br" }));
    let started = std::time::Instant::now();
    let run = env.run(&[("MAX_RETRIES", "5"), ("RETRY_BASE_MS", "1000")]);
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(
        run.stderr.contains("content-encoding br")
            && run
                .stderr
                .contains("encoded as `br`, which the component cannot undo"),
        "{}",
        run.stderr
    );
    assert_eq!(env.mock.request_count(), 1, "not retried");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// A gzip-encoded answer is read as the page it is.
#[test]
fn a_gzip_encoded_answer_is_read() {
    let env = Env::new(120);
    env.mock.push_fault(Fault::Gzip);
    env.run(&[]).assert_collected(120);
    assert_eq!(
        env.sorted_lines(),
        super::support::sorted(env.mock.returnable_json())
    );
}

/// A body that trickles slower than HTTP_TIMEOUT_SECS allows is asked
/// again; one that always does fails naming the setting.
#[test]
fn a_body_that_trickles_past_the_deadline_is_asked_again_then_named() {
    let env = Env::new(60);
    let trickle = Fault::Trickle {
        chunk: 64,
        every: std::time::Duration::from_millis(100),
    };
    let settings = [
        ("HTTP_TIMEOUT_SECS", "1"),
        ("MAX_RETRIES", "1"),
        ("RETRY_BASE_MS", "1"),
    ];
    env.mock.push_fault(trickle.clone());
    env.run(&settings).assert_collected(60);

    add_recent(&env, 5);
    env.mock.set_persistent_fault(Some(trickle));
    let run = env.run(&settings);
    assert_eq!(run.code, 10, "{}", run.stderr);
    assert!(
        run.stderr.contains("the body stopped arriving after")
            && run.stderr.contains("HTTP_TIMEOUT_SECS"),
        "{}",
        run.stderr
    );
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

/// A batch whose object cannot be written ends the pass with the store's own
/// error, at the step it failed (exit 5), not as something the component
/// said; its intent stays, and the next run, once the store is fixed, settles
/// it and collects every event once.
#[test]
fn a_batch_that_cannot_be_written_fails_the_pass_with_the_store_s_error() {
    let env = Env::new(120);
    let blocker = env.out().join("harness").join("audit");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"not a directory").unwrap();
    let run = env.run(&[]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "harness-audit: error: storage failed: writing the batch: creating directory"
        ),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("component reported"),
        "the host's error, not the component's words: {}",
        run.stderr
    );
    std::fs::remove_file(&blocker).unwrap();
    env.run(&[]).assert_collected(120);
    assert_eq!(env.sorted_lines().len(), 120);
}
