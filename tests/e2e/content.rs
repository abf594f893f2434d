//! No event stops collection: odd but legal content (API doc, section 9
//! item 11) is written in the configured shape, or kept byte for byte in the
//! quarantine beside the data, once each, counted and said.

use std::collections::BTreeMap;

use harness_tests::{Freedoms, OddContent, OddKind, Returned, stored};
use serde_json::Value;

use crate::support::Env;

/// Every event odd, of every kind in turn.
const ALL_ODD: OddContent = OddContent {
    events: 1.0,
    answers: 0.0,
    big_bytes: 1_500_000,
};

/// Each returnable event exactly once: in the data by id (byte for byte in
/// the raw shape), or in the quarantine byte for byte.
fn assert_once_each(env: &Env, returned: &[Returned], streaming: bool) -> usize {
    let lines = env.sorted_lines_under("harness/audit");
    let mut by_id: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for line in &lines {
        by_id
            .entry(stored::id_of(line.as_bytes()))
            .or_default()
            .push(line);
    }
    let kept = env.quarantined();
    let (mut in_data, mut in_quarantine) = (0, 0);
    for event in returned {
        let quarantined = event.odd.is_some_and(|k| k.quarantined(streaming));
        if quarantined {
            let copies = kept.iter().filter(|k| **k == event.bytes).count();
            assert_eq!(
                copies, 1,
                "{:?} of {} in the quarantine",
                event.odd, event.audit_id
            );
            in_quarantine += 1;
            continue;
        }
        let found = by_id.get(&event.audit_id).map_or(0, Vec::len);
        let kept_instead = kept.contains(&event.bytes);
        assert_eq!(
            found,
            1,
            "{:?} {} in the data (quarantined instead: {kept_instead}): {}",
            event.odd,
            event.audit_id,
            String::from_utf8_lossy(&event.bytes[..event.bytes.len().min(300)])
        );
        if !streaming {
            assert_eq!(
                *by_id[&event.audit_id][0],
                String::from_utf8(stored::data_line(&event.bytes)).unwrap(),
                "{:?}: byte for byte",
                event.odd
            );
        }
        in_data += 1;
    }
    assert_eq!(
        (lines.len(), kept.len()),
        (in_data, in_quarantine),
        "nothing else"
    );
    in_quarantine
}

/// Every kind of odd event, in both shapes: each is written or kept in the
/// quarantine once, the pass goes on past it and says so, a second pass
/// adds nothing, the ledger counts the quarantine, and `verify
/// --completeness` proves the store against Harness's counts with it.
#[test]
fn every_odd_event_is_written_or_quarantined_once_in_either_shape() {
    for shape in ["raw", "streaming"] {
        let env = Env::with_freedoms(
            240,
            Freedoms {
                odd: Some(ALL_ODD),
                ..Freedoms::default()
            },
        );
        let returned = env.mock.returnable();
        let kinds: std::collections::BTreeSet<OddKind> =
            returned.iter().filter_map(|r| r.odd).collect();
        assert_eq!(kinds.len(), OddKind::ALL.len(), "every kind is sent");
        // No overlap: the counts then reach the newest event, and every
        // event is counted (with one, the last two minutes are left to the
        // next window, and counted later).
        let settings = [
            ("OUTPUT_SHAPE", shape),
            ("RECONCILE_INTERVAL_SECONDS", "1"),
            ("OVERLAP_SECONDS", "0"),
        ];
        let run = env.run(&settings);
        assert_eq!(run.code, 0, "{shape}: {}", run.stderr);
        let streaming = shape == "streaming";
        let kept = assert_once_each(&env, &returned, streaming);
        assert!(
            run.stdout.contains(&format!(
                "and kept {kept} events it could not read or shape"
            )),
            "{}",
            run.stdout
        );
        assert!(
            run.stdout.contains("harness/audit-quarantine"),
            "{}",
            run.stdout
        );
        for reason in ["not-json", "not-an-object", "audit-id", "timestamp"] {
            assert!(
                run.stderr.contains("stage=\"quarantine\"")
                    && run.stderr.contains(&format!("reason=\"{reason}\"")),
                "{reason}: {}",
                run.stderr
            );
        }
        assert_eq!(
            run.stderr.contains("reason=\"unmappable\""),
            streaming,
            "a member given twice is unmappable in the streaming shape only"
        );

        std::thread::sleep(std::time::Duration::from_millis(1_100));
        let again = env.run(&settings);
        again.assert_collected(0);
        assert!(!again.stdout.contains("kept"), "{}", again.stdout);
        assert_once_each(&env, &returned, streaming);

        let no_key = [("HARNESS_API_KEY", ""), ("OUTPUT_SHAPE", shape)];
        let ledger = env.run_with(&["ledger", "--format", "json"], &no_key);
        let ledger: Value = serde_json::from_str(&ledger.stdout).unwrap();
        assert_eq!(ledger["quarantined_events"], kept as u64, "{ledger}");
        let verify = env.run_with(&["verify", "--completeness", "--format", "json"], &no_key);
        assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
        let report: Value = serde_json::from_str(&verify.stdout).unwrap();
        let hours = report["completeness"].as_array().unwrap();
        let found: u64 = hours.iter().map(|h| h["found"].as_u64().unwrap()).sum();
        assert_eq!(
            found,
            returned.len() as u64,
            "quarantined events count too: {report}"
        );
        assert!(hours.iter().all(|h| h["gap"] == 0), "{report}");
    }
}
