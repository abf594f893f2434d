//! The GCS sink against the fake-gcs-server emulator: the recipe's layout and
//! metadata, gzip, the checkpoint outside the prefix, the recipe's state taken
//! over, concurrent instances, upload faults and the credential/permission
//! diagnoses.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use harness_audit::storage::gcs::{Credentials, GcsClient, RetryPolicy};
use harness_audit::storage::lease::{Lease, LeaseError};
use harness_audit::storage::{CheckpointStore, GcsSink, SinkError};
use harness_tests::{Emulator, FaultProxy, ProxyFaults, SeedSpec};

use crate::support::{ACCOUNT, CHECKPOINT, Env, PREFIX, Run, now_ms, run_gcs, sorted};

/// Every line of the bucket's data objects equals the API's events, once each.
fn assert_exactly_once(gcs: &Emulator, bucket: &str, env: &Env) {
    let lines = gcs.lines(bucket, PREFIX);
    let unique: BTreeSet<&String> = lines.iter().collect();
    assert_eq!(unique.len(), lines.len(), "no event is stored twice");
    assert_eq!(sorted(lines), sorted(env.mock.events_json()));
}

#[test]
fn objects_follow_the_recipe_layout_with_content_type_and_metadata() {
    let gcs = Emulator::from_env();
    let bucket = gcs.fresh_bucket("layout");
    let env = Env::new(1500);
    let run = run_gcs(
        &env,
        gcs.base_url(),
        &bucket,
        &[("PAGE_SIZE", "50"), ("BATCH_MAX_EVENTS", "400")],
    );
    run.assert_collected(1500);
    assert!(
        run.stderr.contains("without credentials"),
        "the credential source is logged: {}",
        run.stderr
    );
    assert_exactly_once(&gcs, &bucket, &env);

    // `ledger` reads the bucket's checkpoint, without the key, and writes nothing.
    let names = |objects: Vec<harness_tests::StoredObject>| -> Vec<String> {
        objects.into_iter().map(|o| o.name).collect()
    };
    let (before, state) = (
        names(gcs.list(&bucket, "")),
        gcs.download(&bucket, CHECKPOINT),
    );
    let ledger = env.run_with(
        &["ledger", "--format", "json"],
        &[
            ("GCS_BUCKET", bucket.as_str()),
            ("STORAGE_EMULATOR_HOST", gcs.base_url()),
            ("HARNESS_API_KEY", ""),
        ],
    );
    assert_eq!(ledger.code, 0, "{}", ledger.stderr);
    let view: serde_json::Value = serde_json::from_str(&ledger.stdout).unwrap();
    let stored: u64 = view["hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["stored"].as_u64().unwrap())
        .sum();
    assert_eq!(stored, 1500);
    assert!(
        view["checkpoint"].as_str().unwrap().starts_with("gs://"),
        "{view}"
    );
    assert_eq!(
        names(gcs.list(&bucket, "")),
        before,
        "no object written or removed"
    );
    assert_eq!(
        gcs.download(&bucket, CHECKPOINT),
        state,
        "the checkpoint is untouched"
    );

    let objects = gcs.list(&bucket, "");
    let data: Vec<_> = objects
        .iter()
        .filter(|o| o.name.starts_with(PREFIX))
        .collect();
    assert!(data.len() >= 4, "{data:?}");
    let mut total = 0;
    for object in &data {
        let rest = object.name.strip_prefix(PREFIX).unwrap();
        let parts: Vec<&str> = rest.split('/').collect();
        assert_eq!(parts.len(), 4, "{}", object.name);
        let file = parts[3];
        assert!(
            file.starts_with(&format!(
                "harness-audit-{}{}{}-",
                parts[0], parts[1], parts[2]
            )) && file.ends_with(".jsonl"),
            "{}",
            object.name
        );
        assert_eq!(object.content_type, "application/x-ndjson");
        assert_eq!(object.content_encoding, "");
        for key in [
            "event-count",
            "source",
            "collection-time",
            "first-event-time",
            "last-event-time",
            "window-start",
            "window-end",
        ] {
            assert!(
                object.metadata.contains_key(key),
                "{key} in {:?}",
                object.metadata
            );
        }
        assert_eq!(object.metadata["source"], "harness-audit");
        let count: usize = object.metadata["event-count"].parse().unwrap();
        let bytes = gcs.download(&bucket, &object.name).unwrap();
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), count);
        total += count;
    }
    assert_eq!(total, 1500);

    let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
    assert!(names.contains(&CHECKPOINT), "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with(PREFIX)
            || *n == CHECKPOINT
            || n.starts_with("harness-audit-state/digests/checkpoint.json/")),
        "only data under the prefix, the checkpoint and its digests outside it, the lease released: {names:?}"
    );
    // The key is in no object's name, metadata or bytes, the checkpoint included.
    let secret = harness_tests::secrets::secret_of(&env.key);
    for object in &objects {
        let bytes = gcs.download(&bucket, &object.name).unwrap();
        assert!(
            !object.name.contains(secret)
                && !object
                    .metadata
                    .iter()
                    .any(|(k, v)| k.contains(secret) || v.contains(secret))
                && !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the key leaked into {}",
            object.name
        );
    }

    let again = run_gcs(&env, gcs.base_url(), &bucket, &[("PAGE_SIZE", "50")]);
    again.assert_collected(0);
    assert_eq!(gcs.list(&bucket, PREFIX).len(), data.len(), "no new object");
}

#[test]
fn gzip_objects_are_compressed_and_round_trip() {
    let gcs = Emulator::from_env();
    let bucket = gcs.fresh_bucket("gzip");
    let env = Env::new(700);
    let run = run_gcs(&env, gcs.base_url(), &bucket, &[("GZIP", "true")]);
    run.assert_collected(700);
    let data = gcs.list(&bucket, PREFIX);
    assert!(!data.is_empty());
    for object in &data {
        assert!(object.name.ends_with(".jsonl.gz"), "{}", object.name);
        assert_eq!(object.content_encoding, "gzip");
        assert_eq!(object.content_type, "application/x-ndjson");
        let raw = gcs.download(&bucket, &object.name).unwrap();
        assert_eq!(&raw[..2], &[0x1f, 0x8b], "stored compressed");
    }
    assert_exactly_once(&gcs, &bucket, &env);
}

/// The recipe keeps `{"since": <epoch seconds>}` at `harness/audit/state.json`
/// (milliseconds and RFC 3339 text too). The first run starts exactly there
/// and records its own checkpoint outside the prefix; the recipe's object is
/// left as it was. One that names no instant stops the run with exit 2.
/// `GCS_RETENTION_DAYS` sets retention on every data object and digest as
/// it is uploaded, in the mode `GCS_RETENTION_MODE` names, and never on the
/// checkpoint, which is replaced as it changes.
#[test]
fn retention_is_set_on_objects_and_digests_and_never_on_the_checkpoint() {
    let gcs = Emulator::from_env();
    const DAY_MS: u64 = 86_400_000;
    for (mode, expected) in [("locked", "Locked"), ("unlocked", "Unlocked")] {
        let bucket = gcs.fresh_bucket("retention");
        let env = Env::new(300);
        let before = now_ms();
        let vars = [
            ("GCS_RETENTION_DAYS", "30"),
            ("GCS_RETENTION_MODE", mode),
            ("BATCH_MAX_EVENTS", "100"),
        ];
        run_gcs(&env, gcs.base_url(), &bucket, &vars).assert_collected(300);
        let after = now_ms();
        let names: Vec<String> = gcs.list(&bucket, "").into_iter().map(|o| o.name).collect();
        assert!(names.iter().any(|n| n.contains("/digests/")), "{names:?}");
        for name in &names {
            let retention = &gcs.resource(&bucket, name).unwrap()["retention"];
            if name == CHECKPOINT {
                assert!(retention.is_null(), "{name}: {retention}");
                continue;
            }
            assert_eq!(retention["mode"], expected, "{name}");
            let until = retention["retainUntilTime"].as_str().unwrap();
            let until = chrono::DateTime::parse_from_rfc3339(until)
                .unwrap()
                .timestamp_millis() as u64;
            assert!(
                (before + 30 * DAY_MS - 1_000..=after + 30 * DAY_MS).contains(&until),
                "{name}: {until}"
            );
        }
    }
}

#[test]
fn the_recipe_state_is_taken_over_once_skipping_and_repeating_nothing() {
    let gcs = Emulator::from_env();
    let env = Env::new(600);
    let mut stamps: Vec<u64> = env.mock.events().iter().map(|e| e.timestamp).collect();
    stamps.sort_unstable();
    let since_secs = stamps[300] / 1000;
    let expected = env
        .mock
        .events_json_where(|e| e.timestamp >= since_secs * 1000);
    assert!(expected.len() < 600 && expected.len() >= 290);
    let rfc3339 = chrono::DateTime::from_timestamp(i64::try_from(since_secs).unwrap(), 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // The recipe's other spellings of the same instant: milliseconds and RFC 3339.
    for since in [format!("{}", since_secs * 1000), format!("\"{rfc3339}\"")] {
        let bucket = gcs.fresh_bucket("takeover-form");
        let state = format!("{{\"since\": {since}}}");
        gcs.upload(&bucket, "harness/audit/state.json", state.as_bytes());
        let run = run_gcs(&env, gcs.base_url(), &bucket, &[]);
        run.assert_collected(expected.len());
        assert_eq!(
            sorted(gcs.lines(&bucket, PREFIX)),
            sorted(expected.clone()),
            "{since}"
        );
    }
    // A `since` that means no instant stops the run, naming the object, and writes nothing.
    let unusable = gcs.fresh_bucket("takeover-unusable");
    gcs.upload(
        &unusable,
        "harness/audit/state.json",
        br#"{"since": "last tuesday"}"#,
    );
    let run = run_gcs(&env, gcs.base_url(), &unusable, &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("harness/audit/state.json"),
        "{}",
        run.stderr
    );
    assert!(gcs.lines(&unusable, PREFIX).is_empty());
    assert!(gcs.download(&unusable, CHECKPOINT).is_none());
    let recipe_state = format!("{{\"since\": {since_secs}}}");

    let bucket = gcs.fresh_bucket("takeover");
    gcs.upload(&bucket, "harness/audit/state.json", recipe_state.as_bytes());
    let run = run_gcs(&env, gcs.base_url(), &bucket, &[]);
    run.assert_collected(expected.len());
    assert!(
        run.stderr
            .contains("took over the Cloud Run recipe's checkpoint")
            && run.stderr.contains("harness/audit/state.json"),
        "{}",
        run.stderr
    );
    assert_eq!(sorted(gcs.lines(&bucket, PREFIX)), sorted(expected.clone()));
    assert_eq!(
        gcs.download(&bucket, "harness/audit/state.json").unwrap(),
        recipe_state.as_bytes(),
        "the recipe's object is untouched"
    );
    assert!(gcs.download(&bucket, CHECKPOINT).is_some());
    let again = run_gcs(&env, gcs.base_url(), &bucket, &[]);
    again.assert_collected(0);
    assert!(!again.stderr.contains("took over"), "only once");

    // A user who kept the recipe's STATE_KEY: taken over in place, with a warning.
    let in_place = gcs.fresh_bucket("takeover-in-place");
    gcs.upload(
        &in_place,
        "harness/audit/state.json",
        recipe_state.as_bytes(),
    );
    let vars = [("STATE_KEY", "harness/audit/state.json")];
    let run = run_gcs(&env, gcs.base_url(), &in_place, &vars);
    run.assert_collected(expected.len());
    assert!(
        run.stderr.contains("STATE_KEY is inside GCS_PREFIX"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("took over"), "{}", run.stderr);
    let state = gcs.download(&in_place, "harness/audit/state.json").unwrap();
    assert!(
        String::from_utf8(state)
            .unwrap()
            .contains("harness-audit-state/2")
    );
    run_gcs(&env, gcs.base_url(), &in_place, &vars).assert_collected(0);
}

/// Five instances on one tenant at once: one collects, the others stop with
/// the "another instance" message, and every event is stored exactly once.
#[test]
fn five_instances_at_once_store_every_event_exactly_once() {
    let gcs = Emulator::from_env();
    let bucket = gcs.fresh_bucket("five");
    let env = Arc::new(Env::new(1000));
    let host = gcs.base_url().to_owned();
    // A checkpoint exists first, so all five read the same generation of it.
    run_gcs(&env, &host, &bucket, &[]).assert_collected(1000);
    let now = now_ms();
    env.mock.insert(harness_tests::generate(&SeedSpec {
        account_id: ACCOUNT.into(),
        count: 3000,
        start_ms: now - 1000,
        end_ms: now,
        seed: 5,
    }));
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let (env, host, bucket) = (env.clone(), host.clone(), bucket.clone());
                scope.spawn(move || {
                    run_gcs(
                        &env,
                        &host,
                        &bucket,
                        &[("PAGE_SIZE", "20"), ("BATCH_MAX_EVENTS", "200")],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners = runs.iter().filter(|r| r.code == 0).count();
    let losers: Vec<&Run> = runs.iter().filter(|r| r.code == 7).collect();
    assert!(winners >= 1, "someone collects");
    assert!(!losers.is_empty(), "five at once cannot all run alone");
    assert_eq!(
        winners + losers.len(),
        5,
        "{:?}",
        runs.iter().map(|r| &r.stderr).collect::<Vec<_>>()
    );
    for loser in &losers {
        assert!(
            loser.stderr.contains("another instance"),
            "{}",
            loser.stderr
        );
        assert!(loser.stdout.is_empty());
    }
    assert_exactly_once(&gcs, &bucket, &env);
    run_gcs(&env, &host, &bucket, &[]).assert_collected(0);
}

/// 503s, 429s and responses lost after the write happened: retried, and the
/// bucket still holds every event exactly once.
#[test]
fn upload_faults_lose_and_duplicate_nothing() {
    let gcs = Emulator::from_env();
    let bucket = gcs.fresh_bucket("faults");
    let proxy = FaultProxy::start(
        gcs.base_url(),
        ProxyFaults {
            unavailable: 0.1,
            throttled: 0.1,
            lost_response: 0.15,
            deny_all: false,
        },
    )
    .unwrap();
    let env = Env::new(2000);
    let vars = [
        ("BATCH_MAX_EVENTS", "100"),
        ("MAX_RETRIES", "12"),
        ("RETRY_BASE_MS", "1"),
    ];
    let mut succeeded = false;
    for _ in 0..5 {
        let run = run_gcs(&env, &proxy.base_url(), &bucket, &vars);
        assert!(run.code == 0 || run.code == 5, "{}", run.stderr);
        if run.code == 0 {
            succeeded = true;
            break;
        }
    }
    assert!(succeeded, "a run got through");
    assert!(
        proxy.injected() >= 10,
        "faults were injected: {}",
        proxy.injected()
    );
    assert_exactly_once(&gcs, &bucket, &env);
    proxy.set_faults(ProxyFaults::default());
    run_gcs(&env, &proxy.base_url(), &bucket, &vars).assert_collected(0);
}

#[test]
fn a_principal_without_the_role_is_told_which_role() {
    let gcs = Emulator::from_env();
    let bucket = gcs.fresh_bucket("denied");
    let proxy = FaultProxy::start(
        gcs.base_url(),
        ProxyFaults {
            deny_all: true,
            ..ProxyFaults::default()
        },
    )
    .unwrap();
    let env = Env::new(10);
    let run = run_gcs(&env, &proxy.base_url(), &bucket, &[]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr.contains("HTTP 403")
            && run.stderr.contains("roles/storage.objectUser")
            && run.stderr.contains(&format!("gs://{bucket}")),
        "{}",
        run.stderr
    );
    assert!(gcs.list(&bucket, "").is_empty());
}

#[test]
fn a_missing_bucket_is_named() {
    let gcs = Emulator::from_env();
    let env = Env::new(10);
    let run = run_gcs(&env, gcs.base_url(), "no-such-bucket-here", &[]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("bucket gs://no-such-bucket-here does not exist")
            && run.stderr.contains("correct GCS_BUCKET"),
        "{}",
        run.stderr
    );
}

#[test]
fn without_credentials_the_error_says_where_it_looked() {
    let env = Env::new(10);
    let run = env.run(&[
        ("GCS_BUCKET", "some-bucket"),
        ("GCE_METADATA_HOST", "127.0.0.1:9"),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no Google credentials found")
            && run
                .stderr
                .contains("GOOGLE_APPLICATION_CREDENTIALS is not set")
            && run.stderr.contains("metadata server at 127.0.0.1:9"),
        "{}",
        run.stderr
    );

    let key = env.out().join("key.json");
    std::fs::write(
        &key,
        r#"{"type":"service_account","client_email":"c@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n"}"#,
    )
    .unwrap();
    let run = env.run(&[
        ("GCS_BUCKET", "some-bucket"),
        ("GOOGLE_APPLICATION_CREDENTIALS", key.to_str().unwrap()),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("not a valid PEM-encoded RSA private key"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("TOPSECRETKEYMATERIAL"),
        "{}",
        run.stderr
    );
}

/// A client of `bucket` on the emulator, as the binary builds one.
async fn emulator_client(gcs: &Emulator, bucket: &str) -> Arc<GcsClient> {
    let credentials = Credentials::resolve("https://storage.googleapis.com", |name| {
        (name == "STORAGE_EMULATOR_HOST").then(|| gcs.base_url().to_owned())
    })
    .await
    .unwrap();
    let retry = RetryPolicy {
        max_retries: 2,
        base: Duration::from_millis(1),
        timeout: Duration::from_secs(10),
    };
    Arc::new(GcsClient::new(bucket, credentials, retry))
}

/// The checkpoint is replaced only at the generation this instance read: a
/// checkpoint advanced by someone else stops the write, and a retried write
/// of our own is recognised.
#[test]
fn the_checkpoint_is_replaced_only_by_compare_and_swap() {
    let gcs = Emulator::from_env();
    let bucket = gcs.fresh_bucket("cas");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = emulator_client(&gcs, &bucket).await;
        let ours = GcsSink::new(client.clone(), "harness/audit", CHECKPOINT, false, "ours");
        let theirs = GcsSink::new(client, "harness/audit", CHECKPOINT, false, "theirs");

        assert_eq!(ours.load().await.unwrap(), None);
        assert_eq!(theirs.load().await.unwrap(), None);
        ours.save(b"{\"v\":1}").await.unwrap();
        ours.save(b"{\"v\":2}").await.unwrap();
        let lost = theirs.save(b"{\"v\":9}").await.unwrap_err();
        assert!(matches!(lost, SinkError::Superseded(_)), "{lost}");
        assert!(
            lost.to_string()
                .contains("another instance advanced the checkpoint")
        );
        assert_eq!(theirs.load().await.unwrap().unwrap(), b"{\"v\":2}");
        theirs.save(b"{\"v\":3}").await.unwrap();
        assert!(matches!(
            ours.save(b"{\"v\":4}").await,
            Err(SinkError::Superseded(_))
        ));
        assert_eq!(ours.load().await.unwrap().unwrap(), b"{\"v\":3}");
    });
}

/// A kept lease is renewed past its lifetime and blocks others until
/// released; one nobody renews expires and can be taken.
#[test]
fn the_lease_is_renewed_while_held_and_expires_when_abandoned() {
    let gcs = Emulator::from_env();
    let bucket = gcs.fresh_bucket("lease");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = emulator_client(&gcs, &bucket).await;
        let ttl = Duration::from_millis(900);
        let object = "state/checkpoint.json.lease";

        let held = Lease::acquire(client.clone(), object, "first", ttl)
            .await
            .unwrap()
            .keep();
        tokio::time::sleep(ttl * 2).await;
        let refused = Lease::acquire(client.clone(), object, "second", ttl)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, LeaseError::Held { ref holder, .. } if holder == "first"),
            "renewed beyond its first lifetime: {refused}"
        );
        assert!(
            refused
                .to_string()
                .contains("another instance (first) holds the lease")
        );
        held.release().await;
        assert!(client.read(object).await.unwrap().is_none(), "released");

        let abandoned = Lease::acquire(client.clone(), object, "third", ttl)
            .await
            .unwrap();
        assert!(
            Lease::acquire(client.clone(), object, "fourth", ttl)
                .await
                .is_err()
        );
        tokio::time::sleep(ttl + Duration::from_millis(200)).await;
        Lease::acquire(client.clone(), object, "fourth", ttl)
            .await
            .expect("an expired lease can be taken");
        drop(abandoned);
    });
}
