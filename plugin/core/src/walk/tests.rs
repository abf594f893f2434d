use super::*;

fn walk(start: u64, end: u64) -> Walk {
    Walk::new(
        Purpose::Window,
        Window {
            start_ms: start,
            end_ms: end,
        },
    )
}

fn page(events: &[(&str, u64)]) -> Vec<Event> {
    events.iter().map(|(id, ts)| event(id, *ts)).collect()
}

#[test]
fn each_request_starts_at_the_newest_millisecond_read() {
    let mut w = walk(10, 100);
    assert_eq!(w.list_request(), (10, 100, 0));
    let step = w.apply_list(&page(&[("a", 10), ("b", 20), ("c", 20)]), Some(7), 3);
    assert_eq!(step, Step::default());
    assert_eq!(
        (w.cursor_ms, w.seen_at_cursor.clone()),
        (20, vec!["b".to_owned(), "c".to_owned()])
    );
    assert_eq!((w.read, w.counted), (3, Some(7)));
    assert_eq!(
        w.list_request(),
        (20, 100, 0),
        "page 0 again, never an offset"
    );
    assert!(!w.unread(&event("c", 20)) && w.unread(&event("d", 20)) && !w.unread(&event("z", 19)));
    w.apply_list(&page(&[("c", 20), ("b", 20), ("d", 30)]), Some(99), 3);
    assert_eq!(
        (w.read, w.counted),
        (4, Some(7)),
        "only the first request's count is the range's"
    );
}

#[test]
fn a_short_page_ends_the_walk_only_once_the_count_is_read() {
    let mut w = walk(0, 100);
    w.apply_list(&page(&[("a", 1), ("b", 2), ("c", 3)]), Some(6), 3);
    let short = w.apply_list(&page(&[("c", 3), ("d", 4)]), Some(4), 3);
    assert!(
        !short.done,
        "2 of the 4 counted from ms 3 on: the page is short before the end"
    );
    assert_eq!(w.known_with(&page(&[("d", 4), ("e", 9)])), 2);
    let end = w.apply_list(&page(&[("d", 4), ("e", 9)]), Some(2), 3);
    assert!(end.done, "a short page that reaches the count");
    assert_eq!(w.read, 5);
}

#[test]
fn a_page_with_nothing_unread_ends_the_walk_whatever_the_count() {
    let mut w = walk(0, 100);
    w.apply_list(&page(&[("a", 1), ("b", 5)]), Some(10), 3);
    let step = w.apply_list(&page(&[("b", 5)]), Some(9), 3);
    assert!(step.done, "Harness counts events it does not return");
    assert_eq!(w.read, 2);
    let mut empty = walk(0, 100);
    assert!(empty.apply_list(&[], Some(3), 3).done);
    assert_eq!(empty.counted, Some(3));
}

#[test]
fn a_full_page_keeps_the_walk_going_even_at_the_count() {
    let mut w = walk(0, 100);
    let step = w.apply_list(&page(&[("a", 1), ("b", 2), ("c", 3)]), Some(3), 3);
    assert!(
        !step.done,
        "a count that lags must not end the walk on a full page"
    );
    assert!(w.apply_list(&page(&[("c", 3)]), Some(1), 3).done);
}

/// A full page of one millisecond switches to reading that millisecond on
/// its own, sweeping its pages until the count is reached.
#[test]
fn a_millisecond_larger_than_a_page_is_read_to_its_count() {
    let mut w = walk(0, 100);
    w.apply_list(&page(&[("a", 1), ("t1", 7), ("t2", 7)]), Some(8), 3);
    let step = w.apply_list(&page(&[("t2", 7), ("t3", 7), ("t1", 7)]), Some(7), 3);
    assert!(!step.done);
    assert!(w.tie.is_some());
    assert_eq!(w.list_request(), (7, 7, 0));
    // The millisecond holds 5; pages come back in a new order each time.
    w.apply_list(&page(&[("t1", 7), ("t4", 7), ("t2", 7)]), Some(5), 3);
    assert_eq!(w.list_request(), (7, 7, 1));
    w.apply_list(&page(&[("t3", 7), ("t2", 7)]), Some(5), 3);
    assert_eq!(w.list_request(), (7, 7, 0), "the sweep starts again");
    let step = w.apply_list(&page(&[("t5", 7), ("t1", 7), ("t3", 7)]), Some(5), 3);
    assert_eq!(step, Step::default());
    assert_eq!((w.tie, w.cursor_ms, w.seen_at_cursor.len()), (None, 8, 0));
    assert_eq!(w.read, 6);
    assert_eq!(w.list_request(), (8, 100, 0));
}

#[test]
fn a_millisecond_that_never_reaches_its_count_stops_at_the_bound() {
    assert_eq!(tie_request_bound(1_000, 100), 10 * (10 + 8));
    assert_eq!(tie_request_bound(1, 100), 9);
    let mut w = walk(0, 7);
    w.apply_list(&page(&[("t1", 0), ("t2", 0)]), Some(3), 2);
    let bound = tie_request_bound(3, 2);
    for n in 1..bound {
        let step = w.apply_list(&page(&[("t1", 0), ("t2", 0)]), Some(3), 2);
        assert_eq!(step, Step::default(), "request {n}");
    }
    let step = w.apply_list(&page(&[("t2", 0), ("t1", 0)]), Some(3), 2);
    assert_eq!(
        step.tie_shortfall,
        Some(TieShortfall {
            ms: 0,
            counted: 3,
            read: 2
        })
    );
    assert!(!step.done);
    assert_eq!(w.cursor_ms, 1, "the walk goes on after the millisecond");
}

#[test]
fn a_millisecond_at_the_range_end_ends_the_walk() {
    let mut w = walk(0, 7);
    w.apply_list(&page(&[("t1", 7), ("t2", 7)]), Some(3), 2);
    w.apply_list(&page(&[("t1", 7), ("t2", 7)]), Some(3), 2);
    let step = w.apply_list(&page(&[("t3", 7)]), Some(3), 2);
    assert!(step.done);
    assert_eq!(w.read, 3);
}

#[test]
fn without_a_count_a_millisecond_ends_at_its_first_short_page() {
    let mut w = walk(0, 9);
    w.apply_list(&page(&[("t1", 7), ("t2", 7)]), None, 2);
    w.apply_list(&page(&[("t1", 7), ("t2", 7)]), None, 2);
    assert_eq!(w.list_request(), (7, 7, 0));
    w.apply_list(&page(&[("t1", 7), ("t2", 7)]), None, 2);
    assert_eq!(w.list_request(), (7, 7, 1));
    w.apply_list(&page(&[("t3", 7)]), None, 2);
    assert_eq!((w.tie, w.cursor_ms, w.read), (None, 8, 3));
}

#[test]
fn list_v2_ends_when_the_api_says_there_is_no_next_page() {
    let mut w = walk(0, 9);
    assert!(!w.apply_v2(&page(&[("a", 1)]), true).done);
    assert!(w.apply_v2(&page(&[("a", 1), ("b", 2)]), false).done);
    assert_eq!(w.read, 2);
    assert!(!w.unread_any(&page(&[("b", 2)])));
}
