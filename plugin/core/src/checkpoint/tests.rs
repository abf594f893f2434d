use super::*;
use crate::ledger::{Count, slice_start};

const HOUR: u64 = SLICE_MS;

#[test]
fn round_trips_and_checks_account_and_version() {
    let mut cp = Checkpoint::fresh("acct", 5);
    cp.walk = Some(Walk::new(
        Purpose::Window,
        Window {
            start_ms: 5,
            end_ms: 10_000,
        },
    ));
    cp.record(6, "68483b21f99472ce88e5d355");
    cp.record(7, "b");
    cp.to_check = vec![0];
    cp.next_reconcile_ms = Some(99);
    assert_eq!(Checkpoint::load(&cp.to_bytes(), "acct", 0).unwrap(), cp);
    assert!(
        Checkpoint::load(&cp.to_bytes(), "other", 0)
            .unwrap_err()
            .contains("belongs to account `acct`")
    );
    let v1 = String::from_utf8(cp.to_bytes())
        .unwrap()
        .replace("\"version\":3", "\"version\":1");
    let err = Checkpoint::load(v1.as_bytes(), "acct", 0).unwrap_err();
    assert!(
        err.contains("version Some(1) is not supported") && err.contains("--reset-checkpoint"),
        "{err}"
    );
    assert!(
        Checkpoint::load(b"{\"since\":1}", "acct", 0)
            .unwrap_err()
            .contains("version None")
    );
    assert!(
        Checkpoint::load(b"not json", "acct", 0)
            .unwrap_err()
            .contains("not valid")
    );
}

#[test]
fn a_ledger_slice_before_its_start_is_corrupt() {
    let mut cp = Checkpoint::fresh("acct", 0);
    cp.record(10, "a");
    cp.ledger.from_ms = 2 * HOUR;
    let err = Checkpoint::load(&cp.to_bytes(), "acct", 0).unwrap_err();
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn windows_are_settled_chunked_and_overlap_the_previous_end() {
    let mut cp = Checkpoint::fresh("x", 1_000);
    assert_eq!(cp.next_window(900, 50), None, "nothing has settled yet");
    let w = cp.next_window(9_800, 50).unwrap();
    assert_eq!(
        w,
        Window {
            start_ms: 1_000,
            end_ms: 9_800
        }
    );
    cp.last_end_ms = Some(9_800);
    assert_eq!(cp.next_window(9_800, 50), None, "no new settled time");
    assert_eq!(
        cp.next_window(19_800, 50).unwrap(),
        Window {
            start_ms: 9_750,
            end_ms: 19_800
        }
    );
    let far = 9_800 + 3 * MAX_WINDOW_MS;
    assert_eq!(
        cp.next_window(far, 50).unwrap(),
        Window {
            start_ms: 9_750,
            end_ms: 9_800 + MAX_WINDOW_MS
        },
        "a backlog is read a day at a time, past the overlap"
    );
}

#[test]
fn checks_are_queued_once_per_slice_and_never_before_the_ledger() {
    let mut cp = Checkpoint::fresh("x", HOUR + 5);
    cp.queue_checks(0, 3 * HOUR + 1);
    assert_eq!(cp.to_check, [HOUR, 2 * HOUR, 3 * HOUR]);
    cp.queue_checks(2 * HOUR, 2 * HOUR);
    assert_eq!(cp.to_check.len(), 3, "no slice twice");
}

/// A version 2 checkpoint (no ledger) is converted: progress and the window
/// in progress are kept, and its overlap ids become the ledger's first
/// slice, starting where those ids are complete.
#[test]
fn a_version_2_checkpoint_is_upgraded_in_place() {
    let v2 = format!(
        r#"{{"version":2,"account_id":"acct","initial_start_ms":1000,"last_end_ms":{end},
            "window":{{"start_ms":{start},"end_ms":{end2}}},"cursor_ms":{cursor},"seen_at_cursor":["c"],
            "recent":[[{old},"old"],[{a},"a"],[{cursor},"c"]],"watermark_ms":{cursor},"chain":null}}"#,
        end = 10 * HOUR,
        start = 10 * HOUR - 60_000,
        end2 = 11 * HOUR,
        cursor = 10 * HOUR + 500_000,
        old = 10 * HOUR - 50_000,
        a = 11 * HOUR - 30_000,
    );
    let cp = Checkpoint::load(v2.as_bytes(), "acct", 60_000).unwrap();
    let walk = cp.walk.as_ref().unwrap();
    assert_eq!(
        (walk.purpose, walk.range.end_ms, walk.cursor_ms),
        (Purpose::Window, 11 * HOUR, 10 * HOUR + 500_000)
    );
    assert_eq!(walk.seen_at_cursor, ["c"]);
    assert_eq!(walk.counted, None, "the window's count is unknown");
    assert_eq!(cp.ledger.from_ms, 11 * HOUR - 60_000);
    assert!(cp.ledger.contains(11 * HOUR - 30_000, "a"));
    assert!(
        !cp.ledger.contains(10 * HOUR - 50_000, "old"),
        "ids before the ledger's start are not kept"
    );
    assert_eq!(cp.watermark_ms, Some(10 * HOUR + 500_000));
    assert_eq!(cp.version, VERSION);

    let idle = r#"{"version":2,"account_id":"acct","initial_start_ms":5,"last_end_ms":900000,
        "window":null,"cursor_ms":0,"seen_at_cursor":[],"recent":[[899000,"z"]],"watermark_ms":899000}"#;
    let cp = Checkpoint::load(idle.as_bytes(), "acct", 1_000).unwrap();
    assert_eq!((cp.walk, cp.ledger.from_ms), (None, 899_000));
    assert!(cp.ledger.contains(899_000, "z"));
}

/// The state is bounded by the ledger's span: 48 hours of one event a
/// second cost about 16 bytes an event, and forgetting old hours frees them.
#[test]
fn size_is_about_sixteen_bytes_an_event_within_the_span() {
    let mut cp = Checkpoint::fresh("x", 0);
    for s in 0..48 * 3_600u64 {
        cp.record(
            s * 1000,
            &format!(
                "{:024x}",
                0x6848_3b21_0000_0000_0000_0000u128 + u128::from(s)
            ),
        );
    }
    for start in cp.ledger.slices.keys().copied().collect::<Vec<_>>() {
        let slice = cp.ledger.slices.get_mut(&start).unwrap();
        slice.count = Some(Count {
            events: 3_600,
            through_ms: start + HOUR - 1,
            at_ms: start + 2 * HOUR,
            stored: 3_600,
        });
    }
    let bytes = cp.to_bytes().len();
    let events = 48 * 3_600;
    assert!(bytes < events * 17, "{bytes} bytes for {events} events");
    cp.ledger.forget_before(47 * HOUR);
    assert!(cp.to_bytes().len() < bytes / 40, "{}", cp.to_bytes().len());
    assert_eq!(slice_start(cp.ledger.from_ms), 47 * HOUR);
}
