use std::time::SystemTime;

use super::*;
use crate::storage::content_sha256;

fn meta(first_event_ms: u64, lines: &[u8]) -> BatchMeta {
    BatchMeta {
        kind: ObjectKind::Batch,
        content_sha256: content_sha256(lines),
        event_count: 1,
        first_event_ms,
        last_event_ms: first_event_ms,
        window_start_ms: 0,
        window_end_ms: first_event_ms,
        collected_at: SystemTime::now(),
    }
}

/// Two batches in a row carrying one checkpoint (a component may resend
/// its resume state unchanged) must leave no write intent behind.
#[tokio::test]
async fn a_batch_that_repeats_the_committed_checkpoint_clears_its_intent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(crate::storage::LocalDirSink::new(
        dir.path(),
        "audit",
        "state.json",
    ));
    let mut pipeline = Pipeline::open(store.clone(), store.clone(), None)
        .await
        .unwrap();
    for (at, line) in [(1_000, "{\"a\":1}\n"), (2_000, "{\"b\":2}\n")] {
        pipeline
            .store(
                &meta(at, line.as_bytes()),
                line.as_bytes(),
                "{\"same\":1}".to_owned(),
            )
            .await
            .unwrap();
    }
    let saved = store.load().await.unwrap().unwrap();
    let state = StateFile::parse(&saved).unwrap();
    assert_eq!(state.pending, None, "{}", String::from_utf8_lossy(&saved));
    assert_eq!(state.checkpoint.as_deref(), Some("{\"same\":1}"));
}

fn chain() -> ChainSpec {
    ChainSpec {
        prefix: "audit".into(),
        state_key: "st/state.json".into(),
        signer: None,
    }
}

/// A local store in `dir` and a pipeline on it that keeps digests.
async fn open_chained(dir: &std::path::Path) -> (Arc<crate::storage::LocalDirSink>, Pipeline) {
    let store = Arc::new(crate::storage::LocalDirSink::new(
        dir,
        "audit",
        "st/state.json",
    ));
    let pipeline = Pipeline::open(store.clone(), store.clone(), Some(chain()))
        .await
        .unwrap();
    (store, pipeline)
}

/// Stores batch `n` of one line.
async fn store_batch(pipeline: &mut Pipeline, n: u64) {
    let line = format!("{{\"n\":{n}}}\n");
    pipeline
        .store(
            &meta(1_000 * n, line.as_bytes()),
            line.as_bytes(),
            format!("{{\"v\":{n}}}"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn every_committed_object_reaches_a_digest_once_and_a_rewritten_digest_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut pipeline) = open_chained(dir.path()).await;
    for n in 1..=3 {
        store_batch(&mut pipeline, n).await;
    }
    let state = StateFile::parse(&store.load().await.unwrap().unwrap()).unwrap();
    assert_eq!(
        state.unsealed.len(),
        3,
        "committed objects await their digest in the state"
    );
    pipeline.finish(None).await.unwrap();
    let first = std::fs::read(dir.path().join(digest_key("st/state.json", 1))).unwrap();
    let digest = Digest::parse(&first).unwrap();
    assert_eq!(digest.body.objects.len(), 3);
    assert_eq!(digest.body.previous, None);
    let state = StateFile::parse(&store.load().await.unwrap().unwrap()).unwrap();
    assert!(state.unsealed.is_empty());
    assert_eq!(
        state.chain.sha256.as_deref(),
        Some(sha256_hex(&first).as_str())
    );

    // A crash after the second digest was written but before the state
    // recorded it: the next open writes the same bytes and adopts them.
    store_batch(&mut pipeline, 4).await;
    let unsealed = pipeline.unsealed.clone();
    let second = Digest::seal("audit", 2, Some(&sha256_hex(&first)), &unsealed[..1], None);
    let second_path = dir.path().join(digest_key("st/state.json", 2));
    std::fs::write(&second_path, &second).unwrap();
    drop(pipeline);
    let mut reopened = Pipeline::open(store.clone(), store.clone(), Some(chain()))
        .await
        .unwrap();
    assert_eq!(reopened.head.sequence, 2);
    assert_eq!(reopened.head.sha256, Some(sha256_hex(&second)));
    assert!(reopened.unsealed.is_empty());
    assert_eq!(
        std::fs::read(&second_path).unwrap(),
        second,
        "adopted, not rewritten"
    );

    // A digest at the next name that does not continue this chain is refused.
    store_batch(&mut reopened, 5).await;
    std::fs::write(dir.path().join(digest_key("st/state.json", 3)), b"{}\n").unwrap();
    assert!(matches!(
        reopened.finish(None).await,
        Err(SinkError::Conflict(_))
    ));

    // Past SEAL_EVERY_OBJECTS, a digest is written mid-pass.
    let dir = tempfile::tempdir().unwrap();
    let (_, mut pipeline) = open_chained(dir.path()).await;
    for n in 1..=SEAL_EVERY_OBJECTS as u64 + 1 {
        store_batch(&mut pipeline, n).await;
    }
    assert_eq!(pipeline.head.sequence, 1);
    assert_eq!(pipeline.unsealed.len(), 1);
}
