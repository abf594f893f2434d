//! Every Google credential source end to end: a service-account key, workload
//! identity federation, gcloud's application default credentials and the
//! metadata server, each against a local server that checks what Google
//! checks (`harness_tests::google`). Storage requests go through a proxy in
//! front of the emulator that, like Google, refuses any request without a
//! live bearer token; tokens live 12 s, so a run that outlives one must
//! refresh before use: the token source replaces a token within 10 s of its
//! expiry, and every request is checked to carry one with 8 s or more left.

use std::collections::BTreeSet;
use std::time::Duration;

use harness_tests::google::{
    CredentialFiles, Flow, GoogleServers, GoogleSpec, SERVICE_ACCOUNT, TestKey,
};
use harness_tests::{Emulator, FaultProxy, FaultRates};

use crate::support::{Env, PREFIX, assert_exact};

const LIFETIME: Duration = Duration::from_secs(12);

struct Setup {
    gcs: Emulator,
    key: TestKey,
    spec: GoogleSpec,
    google: GoogleServers,
    files: CredentialFiles,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::generate(dir.path());
    let spec = GoogleSpec {
        public_pem: key.public_pem.clone(),
        refresh: (
            "764086051850-test.apps.googleusercontent.com".into(),
            "d-FL95Q19q7MQmFpd7hHD0Ty".into(),
            "1//0gRefreshTokenSecretMaterial".into(),
        ),
        subject_token: "eyJhbGciOiJSUzI1NiJ9.subject-token-secret.sig".into(),
        lifetime: LIFETIME,
    };
    let google = GoogleServers::start(spec.clone()).unwrap();
    let files = CredentialFiles::write(dir.path(), &google, &key, &spec);
    Setup {
        gcs: Emulator::from_env(),
        key,
        spec,
        google,
        files,
        _dir: dir,
    }
}

/// Runs one pass with `credentials` (variables beside the bucket and
/// endpoint) and checks what Google would: every storage request carried a
/// live bearer token of `flow`, none was refused, and no secret was printed.
fn collect_with(s: &Setup, flow: Flow, credentials: &[(&str, &str)], slow: bool) -> usize {
    let env = Env::new(400);
    if slow {
        // Long enough that the first token comes within 10 s of expiry mid-pass.
        env.mock.set_fault_rates(Some(FaultRates {
            max_latency_ms: 1_000,
            ..FaultRates::default()
        }));
    }
    let proxy = FaultProxy::with_auth(s.gcs.base_url(), s.google.ledger()).unwrap();
    let bucket = s.gcs.fresh_bucket("auth");
    let endpoint = proxy.base_url();
    let mut vars = vec![
        ("GCS_BUCKET", bucket.as_str()),
        ("GCS_ENDPOINT", endpoint.as_str()),
        ("PAGE_SIZE", "20"),
        ("BATCH_MAX_EVENTS", "100"),
    ];
    vars.extend_from_slice(credentials);
    let run = env.run(&vars);
    assert_eq!(run.code, 0, "{:?}: {}", flow, run.stderr);
    assert!(
        run.stderr.contains(SERVICE_ACCOUNT) || flow != Flow::Metadata,
        "the principal is named: {}",
        run.stderr
    );
    if credentials.contains(&("LOG_FORMAT", "json")) {
        assert!(
            run.stderr.lines().all(|l| l.starts_with('{')),
            "JSON logs: {}",
            run.stderr
        );
    }
    let recorded = proxy.recorded();
    assert!(recorded.len() >= 8, "{recorded:?}");
    for request in &recorded {
        assert!(request.refused.is_none(), "{flow:?}: {request:?}");
        // Refreshed before use: no request goes out on a token within the
        // token source's 10 s refresh margin (less the time on the wire).
        assert!(
            request
                .remaining
                .is_some_and(|r| r >= Duration::from_secs(8)),
            "{flow:?}: a token close to expiry was used: {request:?}"
        );
        let token = request.token.as_deref().expect("a bearer token");
        assert_eq!(s.google.ledger().get(token).unwrap().flow, flow);
    }
    assert!(
        s.google.ledger().refused().is_empty(),
        "{:?}",
        s.google.ledger().refused()
    );
    for secret in [
        s.key.secret_line(),
        s.spec.refresh.1.as_str(),
        s.spec.refresh.2.as_str(),
        s.spec.subject_token.as_str(),
    ] {
        assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret));
    }
    for (token, _) in s.google.ledger().issued() {
        assert!(!run.stderr.contains(&token), "an access token was logged");
    }
    assert_exact(
        s.gcs.lines(&bucket, PREFIX),
        env.mock.events_json(),
        &format!("{flow:?}"),
    );
    recorded
        .iter()
        .filter_map(|r| r.token.clone())
        .collect::<BTreeSet<_>>()
        .len()
}

#[test]
fn a_service_account_key_signs_a_jwt_for_its_token_uri_and_refreshes_before_expiry() {
    let s = setup();
    let key = s.files.service_account.to_str().unwrap().to_owned();
    let tokens = collect_with(
        &s,
        Flow::ServiceAccountKey,
        &[("GOOGLE_APPLICATION_CREDENTIALS", &key)],
        true,
    );
    assert!(
        tokens >= 2,
        "a token close to expiry was replaced mid-pass ({tokens} used)"
    );
}

#[test]
fn workload_identity_federation_exchanges_the_subject_token_at_sts() {
    let s = setup();
    let file = s.files.federation.to_str().unwrap().to_owned();
    // JSON logs here and for the metadata server, text for the others: both formats are searched.
    collect_with(
        &s,
        Flow::Federation,
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", &file),
            ("LOG_FORMAT", "json"),
        ],
        false,
    );
}

#[test]
fn gcloud_application_default_credentials_use_the_refresh_token() {
    let s = setup();
    let home = s.files.home.to_str().unwrap().to_owned();
    collect_with(&s, Flow::AuthorizedUser, &[("HOME", &home)], false);
}

#[test]
fn the_metadata_server_gives_the_attached_service_account_s_token() {
    let s = setup();
    let host = s.google.host();
    let tokens = collect_with(
        &s,
        Flow::Metadata,
        &[("GCE_METADATA_HOST", &host), ("LOG_FORMAT", "json")],
        true,
    );
    assert!(
        tokens >= 2,
        "a token close to expiry was replaced mid-pass ({tokens} used)"
    );
}
