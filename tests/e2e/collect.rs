use harness_tests::SeedSpec;
use serde_json::Value;

use crate::support::{ACCOUNT, Env, now_ms, sorted};

/// 2,500 events over many pages arrive as exactly 2,500 lines, byte-identical
/// to what the API served; a second run writes nothing.
#[test]
fn collects_every_event_once_byte_for_byte() {
    let env = Env::new(2500);
    let run = env.run(&[("PAGE_SIZE", "37")]);
    run.assert_collected(2500);
    assert_eq!(run.stdout.lines().count(), 1, "one summary line");

    let lines = env.sorted_lines();
    assert_eq!(lines.len(), 2500);
    assert_eq!(lines, sorted(env.mock.events_json()));
    for (name, bytes) in env.objects() {
        let name = name.strip_prefix(env.out()).unwrap().display().to_string();
        assert!(
            name.starts_with("harness/audit/20") && name.contains("/harness-audit-20"),
            "{name}"
        );
        let stamps: Vec<u64> = String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["timestamp"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert!(
            stamps.windows(2).all(|w| w[0] <= w[1]),
            "events inside an object are in time order"
        );
    }

    let requests = env.mock.requests();
    assert!(requests.len() >= 2500 / 37);
    let end_time = &requests[0].body.as_ref().unwrap()["endTime"];
    for r in &requests {
        assert_eq!(
            r.api_key.as_deref(),
            Some(env.key.as_str()),
            "the host injects the key"
        );
        assert_eq!(r.param("sortOrders"), Some("timestamp,ASC"));
        assert_eq!(r.param("accountIdentifier"), Some(ACCOUNT));
        assert_eq!(r.param("pageSize"), Some("37"));
        assert_eq!(
            &r.body.as_ref().unwrap()["endTime"],
            end_time,
            "the window end is fixed for the pass"
        );
        assert_eq!(r.body.as_ref().unwrap()["filterType"], "Audit");
    }

    let before = env.snapshot();
    let again = env.run(&[("PAGE_SIZE", "37")]);
    again.assert_collected(0);
    let after = env.snapshot();
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "no new object"
    );
    assert_eq!(env.sorted_lines().len(), 2500);
}

/// Events that appear after a run are collected by the next one, and only they.
#[test]
fn the_next_run_collects_only_new_events() {
    let env = Env::new(300);
    assert_eq!(env.run(&[]).code, 0);
    let now = now_ms();
    let fresh = harness_tests::generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: 120,
        start_ms: now - 500,
        end_ms: now,
        seed: 99,
    });
    let fresh_json: Vec<String> = fresh.iter().map(|e| e.to_json()).collect();
    env.mock.insert(fresh);
    let run = env.run(&[]);
    run.assert_collected(120);
    let lines = env.sorted_lines();
    assert_eq!(lines.len(), 420);
    assert!(fresh_json.iter().all(|e| lines.contains(e)));
}

/// The recipe's filter variables reach the request body, and what comes back
/// is exactly the matching events.
#[test]
fn filters_reach_the_request_body() {
    let env = Env::new(1500);
    let run = env.run(&[
        ("FILTER_MODULES", "pms,CORE"),
        ("FILTER_ACTIONS", "CREATE,LOGIN,TIMEOUT"),
        ("STATIC_FILTER", "EXCLUDE_SYSTEM_EVENTS"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let body = env.mock.requests()[0].body.clone().unwrap();
    assert_eq!(body["modules"], serde_json::json!(["PMS", "CORE"]));
    assert_eq!(
        body["actions"],
        serde_json::json!(["CREATE", "LOGIN", "TIMEOUT"])
    );
    assert_eq!(body["staticFilter"], "EXCLUDE_SYSTEM_EVENTS");
    let expected = env.mock.events_json_where(|e| {
        ["PMS", "CORE"].contains(&e.module.as_str())
            && ["CREATE", "LOGIN", "TIMEOUT"].contains(&e.action.as_str())
            && e.authentication_info.principal.kind != "SYSTEM"
    });
    assert!(expected.len() > 50);
    assert_eq!(env.sorted_lines(), sorted(expected));
}

/// `SINK=stdout` streams NDJSON for shippers; the summary moves to stderr.
#[test]
fn stdout_sink_streams_ndjson() {
    let env = Env::new(400);
    let run = env.run(&[("SINK", "stdout"), ("PAGE_SIZE", "100")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<String> = run.stdout.lines().map(str::to_owned).collect();
    let key = |line: &String| {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        (
            event["timestamp"].as_u64().unwrap(),
            event["auditId"].as_str().unwrap().to_owned(),
        )
    };
    let mut expected = env.mock.events_json();
    expected.sort_by_key(key);
    assert_eq!(
        lines, expected,
        "oldest first, ties by auditId, byte for byte"
    );
    assert!(run.stderr.contains("collected 400 events"));
    assert!(env.objects().is_empty());
    assert!(env.checkpoint().is_some());
}

/// A TOML file supplies settings; flags override the environment.
#[test]
fn config_file_and_flags_layer_over_the_environment() {
    let env = Env::new(200);
    let file = env.out().join("harness-audit.toml");
    std::fs::write(&file, "[harness]\npage_size = 10\n[filters]\nmodules = [\"CE\"]\n[output]\ngcs_prefix = \"siem/harness\"\n").unwrap();
    let run = env.run_with(
        &[
            "run",
            "--config",
            file.to_str().unwrap(),
            "--page-size",
            "7",
        ],
        &[("PAGE_SIZE", "9")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = &env.mock.requests()[0];
    assert_eq!(first.param("pageSize"), Some("7"));
    assert_eq!(
        first.body.as_ref().unwrap()["modules"],
        serde_json::json!(["CE"])
    );
    assert!(env.objects().keys().all(|p| {
        p.strip_prefix(env.out())
            .unwrap()
            .starts_with("siem/harness")
    }));
    assert_eq!(
        env.sorted_lines_under("siem/harness"),
        sorted(env.mock.events_json_where(|e| e.module == "CE"))
    );
}

/// A run that died after writing its objects but before its checkpoint is
/// re-run: the same pages come back, land on the same names, and nothing is
/// written twice.
#[test]
fn rerun_after_a_lost_checkpoint_writes_no_duplicate() {
    let env = Env::new(300);
    assert_eq!(env.run(&[]).code, 0);
    let objects = env.objects();
    std::fs::remove_file(env.out().join("harness-audit-state/checkpoint.json")).unwrap();
    let run = env.run(&[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("into 0 new objects"), "{}", run.stdout);
    assert!(run.stderr.contains("already stored"), "{}", run.stderr);
    assert_eq!(env.objects(), objects);
    assert!(env.checkpoint().is_some());
}

/// `HARNESS_API_FLAVOR=list-v2` pages `/listV2` by token, sends each token
/// only with the body it was issued for (the mock refuses anything else), and
/// collects everything exactly once.
#[test]
fn list_v2_flavor_collects_every_event_once() {
    let env = Env::new(730);
    env.mock.enable_list_v2(true);
    env.run(&[("HARNESS_API_FLAVOR", "list-v2"), ("PAGE_SIZE", "100")])
        .assert_collected(730);
    assert_eq!(env.sorted_lines(), sorted(env.mock.events_json()));
    let requests = env.mock.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.path == "/audit/api/audits/listV2")
    );
    assert!(requests[0].param("pageToken").is_none());
    assert!(requests[1..].iter().all(|r| r.param("pageToken").is_some()));
    let again = env.run(&[("HARNESS_API_FLAVOR", "list-v2")]);
    again.assert_collected(0);
    assert!(
        env.mock.requests()[requests.len()]
            .param("pageToken")
            .is_none(),
        "no token crosses windows"
    );
}
