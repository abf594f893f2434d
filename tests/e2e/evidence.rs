//! Digests and `harness-audit verify`, against the real binary: an untouched
//! store is proven, and each way of tampering with it (on the local store
//! and on the GCS emulator) is named, with exit 8.

use std::path::{Path, PathBuf};
use std::process::Command;

use harness_audit::storage::pipeline::SEAL_EVERY_OBJECTS;
use harness_tests::Emulator;
use serde_json::Value;

use crate::support::{Env, Run};

/// Two events a batch at most: 210 events make over 100 objects, sealed in
/// three digests (50 and 50 during the pass, the rest at its end).
const SMALL_BATCHES: [(&str, &str); 2] = [("PAGE_SIZE", "2"), ("BATCH_MAX_EVENTS", "2")];
const EVENTS: usize = 210;
const CHAIN: &str = "harness-audit-state/digests/checkpoint.json/";

/// An Ed25519 key pair made with openssl, as the README tells users to.
struct KeyPair {
    private: PathBuf,
    public: PathBuf,
    /// The base64 body of the private key's PEM, which no output may contain.
    secret: String,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is needed to make test keys");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn key_pair(dir: &Path, name: &str) -> KeyPair {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        private.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    let pem = std::fs::read_to_string(&private).unwrap();
    let secret = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    KeyPair {
        private,
        public,
        secret,
    }
}

/// `sha256:` and the hex SHA-256 of the public key's DER, computed by openssl.
fn openssl_fingerprint(public: &Path) -> String {
    let der = openssl(&[
        "pkey",
        "-pubin",
        "-in",
        public.to_str().unwrap(),
        "-outform",
        "DER",
    ]);
    let path = public.with_extension("der");
    std::fs::write(&path, der).unwrap();
    let out = openssl(&["dgst", "-sha256", "-r", path.to_str().unwrap()]);
    format!(
        "sha256:{}",
        String::from_utf8(out).unwrap().split(' ').next().unwrap()
    )
}

/// Whether `openssl pkeyutl` finds the digest's second line to be `public`'s
/// signature of its first, as the README shows.
fn openssl_verifies(digest: &[u8], public: &Path, dir: &Path) -> bool {
    let mut lines = digest.split(|b| *b == b'\n');
    let (body, signature) = (lines.next().unwrap(), lines.next().unwrap());
    let signature: Value = serde_json::from_slice(signature).unwrap();
    let (body_file, b64_file, sig_file) = (dir.join("body"), dir.join("sig.b64"), dir.join("sig"));
    std::fs::write(&body_file, body).unwrap();
    std::fs::write(&b64_file, signature["signature"].as_str().unwrap()).unwrap();
    openssl(&[
        "base64",
        "-d",
        "-A",
        "-in",
        b64_file.to_str().unwrap(),
        "-out",
        sig_file.to_str().unwrap(),
    ]);
    Command::new("openssl")
        .args([
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            public.to_str().unwrap(),
            "-rawin",
        ])
        .args([
            "-in",
            body_file.to_str().unwrap(),
            "-sigfile",
            sig_file.to_str().unwrap(),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

/// The store a test tampers with, local or in the emulator.
enum Store<'a> {
    Local(&'a Path),
    Gcs { gcs: &'a Emulator, bucket: &'a str },
}

impl Store<'_> {
    fn names(&self, prefix: &str) -> Vec<String> {
        match self {
            Store::Local(root) => {
                let mut names = Vec::new();
                let mut dirs = vec![root.join(prefix)];
                while let Some(dir) = dirs.pop() {
                    for entry in std::fs::read_dir(&dir).into_iter().flatten() {
                        let path = entry.unwrap().path();
                        if path.is_dir() {
                            dirs.push(path);
                        } else {
                            names.push(
                                path.strip_prefix(root)
                                    .unwrap()
                                    .to_str()
                                    .unwrap()
                                    .to_owned(),
                            );
                        }
                    }
                }
                names.sort();
                names
            }
            Store::Gcs { gcs, bucket } => gcs
                .list(bucket, prefix)
                .into_iter()
                .map(|o| o.name)
                .collect(),
        }
    }

    fn read(&self, name: &str) -> Vec<u8> {
        match self {
            Store::Local(root) => std::fs::read(root.join(name)).unwrap(),
            Store::Gcs { gcs, bucket } => gcs.download(bucket, name).unwrap(),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        match self {
            Store::Local(root) => {
                let path = root.join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
            Store::Gcs { gcs, bucket } => gcs.upload(bucket, name, bytes),
        }
    }

    fn delete(&self, name: &str) {
        match self {
            Store::Local(root) => std::fs::remove_file(root.join(name)).unwrap(),
            Store::Gcs { gcs, bucket } => gcs.delete(bucket, name),
        }
    }
}

/// `harness-audit verify` with `args`, through the store's settings; no
/// output may hold the private key.
fn verify(env: &Env, store_vars: &[(&str, &str)], args: &[&str], key: &KeyPair) -> Run {
    let mut command = vec!["verify"];
    command.extend_from_slice(args);
    let run = env.run_with(&command, store_vars);
    for output in [&run.stdout, &run.stderr] {
        assert!(
            !output.contains(&key.secret),
            "the signing key leaked: {output}"
        );
    }
    run
}

/// Asserts exit 8 and that the report names `problem` for `name`.
fn assert_names(run: &Run, problem: &str, name: &str) {
    assert_eq!(run.code, 8, "{}{}", run.stdout, run.stderr);
    let expected = format!("{problem}: {name}");
    assert!(
        run.stdout.contains(&expected),
        "expected `{expected}` in:\n{}",
        run.stdout
    );
    assert!(
        run.stdout.ends_with("verdict: integrity broken\n"),
        "{}",
        run.stdout
    );
}

/// Collects into `store`, proves it, then tampers each way in turn (undoing
/// each before the next) and requires `verify` to name it.
fn tamper_round(env: &Env, store: &Store, store_vars: &[(&str, &str)], dir: &Path) {
    let key = key_pair(dir, "signing");
    let other = key_pair(dir, "other");
    let public = key.public.to_str().unwrap();
    let mut vars = store_vars.to_vec();
    vars.extend_from_slice(&SMALL_BATCHES);
    vars.push(("SIGNING_KEY_FILE", key.private.to_str().unwrap()));
    let run = env.run(&vars);
    run.assert_collected(EVENTS);
    assert!(!run.stdout.contains(&key.secret) && !run.stderr.contains(&key.secret));
    if store_vars.contains(&("LOG_FORMAT", "json")) {
        for line in run.stderr.lines() {
            serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
    }

    for name in store.names("") {
        let bytes = store.read(&name);
        assert!(
            !harness_tests::secrets::contains(&bytes, &key.secret),
            "the signing key leaked into {name}"
        );
    }

    let digests = store.names(CHAIN);
    assert_eq!(digests.len(), 3, "{digests:?}");
    let second: Value = serde_json::from_slice(
        store
            .read(&digests[1])
            .split(|b| *b == b'\n')
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(second["sequence"], 2);
    assert_eq!(
        second["objects"].as_array().unwrap().len(),
        SEAL_EVERY_OBJECTS
    );
    assert_eq!(
        second["signer"],
        openssl_fingerprint(&key.public),
        "openssl computes the same fingerprint"
    );
    assert!(
        openssl_verifies(&store.read(&digests[0]), &key.public, dir),
        "stock tools check a signature"
    );
    assert!(!openssl_verifies(
        &store.read(&digests[0]),
        &other.public,
        dir
    ));

    let objects = store.names(crate::support::PREFIX);
    let sealed_mid_pass = 2 * SEAL_EVERY_OBJECTS;
    assert!(
        (sealed_mid_pass + 1..=3 * SEAL_EVERY_OBJECTS).contains(&objects.len()),
        "{}",
        objects.len()
    );
    let proven = verify(
        env,
        store_vars,
        &["--public-key", public, "--completeness"],
        &key,
    );
    assert_eq!(proven.code, 0, "{}{}", proven.stdout, proven.stderr);
    let expected = format!("objects: {} proven, holding {EVENTS} events", objects.len());
    assert!(proven.stdout.contains(&expected), "{}", proven.stdout);
    assert!(
        proven.stdout.contains("completeness: "),
        "{}",
        proven.stdout
    );
    assert!(
        proven.stdout.ends_with("verdict: proven\n"),
        "{}",
        proven.stdout
    );
    let json = verify(
        env,
        store_vars,
        &["--public-key", public, "--format", "json"],
        &key,
    );
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        (json.code, &report["verdict"], &report["objects_checked"]),
        (0, &Value::from("proven"), &Value::from(objects.len()))
    );

    let object = objects[17].as_str();
    let original = store.read(object);

    let mut changed = original.clone();
    changed[5] ^= 0x01;
    store.write(object, &changed);
    assert_names(
        &verify(env, store_vars, &["--public-key", public], &key),
        "modified",
        object,
    );
    store.write(object, &original);

    store.delete(object);
    assert_names(
        &verify(env, store_vars, &["--public-key", public], &key),
        "deleted",
        object,
    );
    store.write(object, &original);

    let added = object.replace(".jsonl", "0.jsonl");
    store.write(&added, &original);
    let run = verify(
        env,
        store_vars,
        &["--public-key", public, "--format", "json"],
        &key,
    );
    assert_eq!(run.code, 8);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["verdict"], "integrity-broken");
    assert_eq!(
        report["problems"],
        serde_json::json!([{"problem": "unlisted", "object": added}])
    );
    store.delete(&added);

    let digest = store.read(&digests[1]);
    let text = String::from_utf8(digest.clone()).unwrap();
    assert!(text.contains("\"events\":2"));
    store.write(
        &digests[1],
        text.replacen("\"events\":2", "\"events\":3", 1).as_bytes(),
    );
    let run = verify(env, store_vars, &["--public-key", public], &key);
    assert_names(&run, "bad signature", &digests[1]);
    assert_names(&run, "broken link", &digests[2]);
    let unsigned = verify(env, store_vars, &[], &key);
    assert_names(&unsigned, "broken link", &digests[2]);
    store.write(&digests[1], &digest);

    store.delete(&digests[1]);
    assert_names(
        &verify(env, store_vars, &["--public-key", public], &key),
        "missing digest",
        &digests[1],
    );
    store.write(&digests[1], &digest);

    let run = verify(
        env,
        store_vars,
        &["--public-key", other.public.to_str().unwrap()],
        &key,
    );
    for digest in &digests {
        assert_names(&run, "bad signature", digest);
    }
    assert!(
        run.stdout.contains("it is signed by key sha256:"),
        "{}",
        run.stdout
    );

    let again = verify(env, store_vars, &["--public-key", public], &key);
    assert_eq!(again.code, 0, "every tampering undone: {}", again.stdout);
}

#[test]
fn verify_proves_a_local_store_and_names_each_tampering() {
    let env = Env::new(EVENTS);
    let dir = tempfile::tempdir().unwrap();
    tamper_round(&env, &Store::Local(env.out()), &[], dir.path());
}

#[test]
fn verify_proves_a_gcs_store_and_names_each_tampering() {
    let gcs = Emulator::from_env();
    let bucket = gcs.fresh_bucket("evidence");
    let env = Env::new(EVENTS);
    let dir = tempfile::tempdir().unwrap();
    // Logs in JSON here and in text on the local store: the key is searched for in both.
    let vars = [
        ("GCS_BUCKET", bucket.as_str()),
        ("STORAGE_EMULATOR_HOST", gcs.base_url()),
        ("LOG_FORMAT", "json"),
    ];
    tamper_round(
        &env,
        &Store::Gcs {
            gcs: &gcs,
            bucket: &bucket,
        },
        &vars,
        dir.path(),
    );
}
