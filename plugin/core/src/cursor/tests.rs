use super::*;

#[test]
fn round_trips_and_checks_account_and_version() {
    let mut cp = Checkpoint::fresh("acct", 5);
    cp.begin_pass(10_000, 0, 0);
    cp.recent = vec![(6, "a".into()), (7, "b".into())];
    assert_eq!(Checkpoint::load(&cp.to_bytes(), "acct").unwrap(), cp);
    assert!(
        Checkpoint::load(&cp.to_bytes(), "other")
            .unwrap_err()
            .contains("belongs to account `acct`")
    );
    let v1 = String::from_utf8(cp.to_bytes())
        .unwrap()
        .replace("\"version\":2", "\"version\":1");
    let err = Checkpoint::load(v1.as_bytes(), "acct").unwrap_err();
    assert!(
        err.contains("version Some(1) is not supported") && err.contains("--reset-checkpoint"),
        "{err}"
    );
    assert!(
        Checkpoint::load(b"{\"since\":1}", "acct")
            .unwrap_err()
            .contains("version None")
    );
    assert!(
        Checkpoint::load(b"not json", "acct")
            .unwrap_err()
            .contains("not valid")
    );
    cp.recent.reverse();
    assert!(
        Checkpoint::load(&cp.to_bytes(), "acct")
            .unwrap_err()
            .contains("not sorted")
    );
}

#[test]
fn windows_are_settled_fixed_and_overlap_the_previous_end() {
    let mut cp = Checkpoint::fresh("x", 1_000);
    assert_eq!(
        cp.begin_pass(1_100, 200, 50),
        None,
        "nothing has settled yet"
    );
    let w = cp.begin_pass(10_000, 200, 50).unwrap();
    assert_eq!(
        w,
        Window {
            start_ms: 1_000,
            end_ms: 9_800
        }
    );
    assert_eq!(
        cp.begin_pass(99_999, 200, 50),
        Some(w),
        "a pass in progress keeps its window"
    );
    cp.finish_pass(50);
    assert_eq!(cp.last_end_ms, Some(9_800));
    assert_eq!(cp.begin_pass(9_900, 200, 50), None, "no new settled time");
    let w2 = cp.begin_pass(20_000, 200, 50).unwrap();
    assert_eq!(
        w2,
        Window {
            start_ms: 9_750,
            end_ms: 19_800
        }
    );
    assert_eq!(cp.cursor_ms, 9_750);
}

#[test]
fn overlap_ids_are_kept_for_the_next_window_and_pruned_after_it() {
    let mut cp = Checkpoint::fresh("x", 0);
    cp.begin_pass(1_000, 0, 100);
    let page = [event("old", 100), event("a", 950), event("b", 1_000)];
    let emitted: Vec<&Event> = page.iter().collect();
    cp.advance(&page, &emitted, 100);
    assert_eq!(
        cp.recent,
        [(950, "a".to_owned()), (1_000, "b".to_owned())],
        "only ids inside the overlap"
    );
    cp.finish_pass(100);
    cp.begin_pass(2_000, 0, 100);
    assert!(cp.has_seen(&event("a", 950)) && cp.has_seen(&event("b", 1_000)));
    assert!(
        !cp.has_seen(&event("late", 960)),
        "a late event in the overlap is new"
    );
    assert!(
        !cp.has_seen(&event("a", 951)),
        "ids are matched with their timestamp"
    );
    cp.finish_pass(100);
    assert!(
        cp.recent.is_empty(),
        "ids older than the next window start are dropped"
    );
}

#[test]
fn cursor_moves_over_every_read_event_and_accumulates_one_millisecond() {
    let mut cp = Checkpoint::fresh("x", 5);
    cp.begin_pass(100, 0, 0);
    let page = [event("a", 10), event("b", 20), event("c", 20)];
    let mut next = cp.clone();
    next.advance(&page, &[], 0);
    assert_eq!(
        (next.cursor_ms, next.seen_at_cursor.clone()),
        (20, vec!["b".to_owned(), "c".to_owned()])
    );
    assert_eq!(next.watermark_ms, None, "nothing emitted");
    let mut again = next.clone();
    again.advance(&[event("c", 20), event("d", 20)], &[], 0);
    assert_eq!(again.seen_at_cursor, ["b", "c", "d"]);
    assert!(again.read_at_cursor(&event("d", 20)) && !again.read_at_cursor(&event("a", 10)));
}

#[test]
fn page_index_skips_only_whole_pages_of_seen_ids() {
    let mut cp = Checkpoint::fresh("x", 0);
    cp.seen_at_cursor = (0..249).map(|i| i.to_string()).collect();
    assert_eq!(cp.page_index(100), 2);
    assert_eq!(cp.page_index(50), 4);
    cp.seen_at_cursor.truncate(99);
    assert_eq!(cp.page_index(100), 0);
}

#[test]
fn size_is_bounded_by_the_overlap() {
    let mut cp = Checkpoint::fresh("x", 0);
    let overlap = 60_000;
    // Ten passes of an hour, one event a second.
    for pass in 1..=10u64 {
        cp.begin_pass(pass * 3_600_000, 0, overlap);
        let page: Vec<Event> = (0..3_600)
            .map(|s| {
                event(
                    &format!("{pass:02}{s:022x}"),
                    (pass - 1) * 3_600_000 + s * 1000 + 1,
                )
            })
            .collect();
        let emitted: Vec<&Event> = page.iter().collect();
        cp.advance(&page, &emitted, overlap);
        cp.finish_pass(overlap);
    }
    assert!(cp.recent.len() <= 61, "{}", cp.recent.len());
    assert!(cp.to_bytes().len() < 4_000, "{}", cp.to_bytes().len());
}
