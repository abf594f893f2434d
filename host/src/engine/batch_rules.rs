//! The contract a batch must meet before it reaches storage: what lands in a
//! SIEM bucket is exactly `event-count` JSON objects, one per line, each at a
//! time the batch and the pass could have read. Checked on every `emit`.

use crate::engine::batch_refusal::{
    BatchRefusal, MAX_BATCH_BYTES, MAX_CHECKPOINT_BYTES, MAX_CLOCK_SKEW_MS,
};
use crate::engine::bindings::Batch;
use harness_audit_core::event::line_time;

/// What the host checks every batch against before anything is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRules {
    /// Events a batch may hold at most (`BATCH_MAX_EVENTS`).
    pub max_events: u32,
    /// The top-level field holding each event's time in epoch ms: `timestamp`,
    /// or `auditEventTime` in the streaming shape.
    pub time_field: &'static str,
    /// First millisecond the pass may read: a backfill's `--from`, 0 otherwise.
    pub pass_from_ms: u64,
    /// Last millisecond the pass may read: a backfill's `--to`; otherwise now
    /// plus [`MAX_CLOCK_SKEW_MS`].
    pub pass_to_ms: Option<u64>,
}

/// Checks `batch` against `rules` at `now_ms`, naming the first rule it breaks.
pub fn check_batch(batch: &Batch, rules: &BatchRules, now_ms: u64) -> Result<(), BatchRefusal> {
    let quarantined = batch.quarantine.as_ref().map_or(&[][..], |q| &q.events[..]);
    for count in [
        batch.event_count,
        u32::try_from(quarantined.len()).unwrap_or(u32::MAX),
    ] {
        if count > rules.max_events {
            return Err(BatchRefusal::TooManyEvents {
                count,
                max: rules.max_events,
            });
        }
    }
    let bytes = batch.lines.len() + quarantined.iter().map(|e| e.bytes.len() + 1).sum::<usize>();
    if bytes > MAX_BATCH_BYTES {
        return Err(BatchRefusal::TooLarge { bytes });
    }
    let checkpoints =
        std::iter::once(&batch.checkpoint).chain(batch.quarantine.as_ref().map(|q| &q.checkpoint));
    for checkpoint in checkpoints {
        if checkpoint.is_empty() || checkpoint.len() > MAX_CHECKPOINT_BYTES {
            return Err(BatchRefusal::Checkpoint {
                bytes: checkpoint.len(),
            });
        }
    }
    let lines_whole = match batch.event_count {
        0 => batch.lines.is_empty() && !quarantined.is_empty(),
        _ => batch.lines.last() == Some(&b'\n'),
    };
    if !lines_whole {
        return Err(BatchRefusal::NotNdjson);
    }
    for (i, event) in quarantined.iter().enumerate() {
        let problem = if event.bytes.is_empty() {
            "is empty"
        } else if event.bytes.iter().any(|b| *b == b'\n' || *b == b'\r') {
            "holds a line break"
        } else {
            continue;
        };
        return Err(BatchRefusal::Quarantine {
            event: i + 1,
            problem,
        });
    }
    let (first, last) = (batch.first_event_ms, batch.last_event_ms);
    let (start, end) = (batch.window_start_ms, batch.window_end_ms);
    for (what, a, b) in [
        ("first-event-ms", first, last),
        ("window-start-ms", start, end),
    ] {
        if a > b {
            return Err(BatchRefusal::Inverted {
                what,
                start: a,
                end: b,
            });
        }
    }
    if first < start || last > end {
        return Err(BatchRefusal::OutsideBatchWindow {
            first,
            last,
            start,
            end,
        });
    }
    let latest = now_ms.saturating_add(MAX_CLOCK_SKEW_MS);
    if end > latest {
        return Err(BatchRefusal::Future { end, now: now_ms });
    }
    let to = rules.pass_to_ms.unwrap_or(latest);
    if start < rules.pass_from_ms || end > to {
        return Err(BatchRefusal::OutsidePassWindow {
            start,
            end,
            from: rules.pass_from_ms,
            to,
        });
    }
    for (i, event) in quarantined.iter().enumerate() {
        if event.at_ms < first || event.at_ms > last {
            return Err(BatchRefusal::EventOutsideBatch {
                what: "quarantined event",
                line: i + 1,
                at: event.at_ms,
                first,
                last,
            });
        }
    }
    if batch.event_count == 0 {
        return Ok(());
    }
    let text = std::str::from_utf8(&batch.lines).map_err(|e| BatchRefusal::NotUtf8 {
        line: 1 + batch.lines[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
    })?;
    let mut lines = 0u32;
    for (i, line) in text[..text.len() - 1].split('\n').enumerate() {
        lines += 1;
        let line_no = i + 1;
        let at =
            line_time(line, rules.time_field).map_err(|detail| BatchRefusal::NotJsonObject {
                line: line_no,
                detail,
            })?;
        let at = at.ok_or(BatchRefusal::TimeMissing {
            line: line_no,
            field: rules.time_field,
        })?;
        if at < first || at > last {
            return Err(BatchRefusal::EventOutsideBatch {
                what: "line",
                line: line_no,
                at,
                first,
                last,
            });
        }
    }
    if lines != batch.event_count {
        return Err(BatchRefusal::CountMismatch {
            count: batch.event_count,
            lines,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn rules() -> BatchRules {
        BatchRules {
            max_events: 5,
            time_field: "timestamp",
            pass_from_ms: 0,
            pass_to_ms: None,
        }
    }

    /// Two events at 100 and 200, read from the window 50..=250.
    fn valid() -> Batch {
        Batch {
            lines: b"{\"timestamp\":100,\"s\":\"\xc3\xa9\\n\"}\n{\"x\":[1,{}],\"timestamp\":200}\n"
                .to_vec(),
            event_count: 2,
            first_event_ms: 100,
            last_event_ms: 200,
            window_start_ms: 50,
            window_end_ms: 250,
            checkpoint: "{}".to_owned(),
            quarantine: None,
        }
    }

    fn lines(lines: &[&[u8]]) -> Batch {
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        Batch {
            lines: bytes,
            event_count: u32::try_from(lines.len()).unwrap(),
            ..valid()
        }
    }

    fn rule_of(batch: &Batch, rules: &BatchRules, now: u64) -> Option<String> {
        check_batch(batch, rules, now).err().map(|e| {
            let text = e.to_string();
            text["rule `".len()..text.find("`:").unwrap()].to_owned()
        })
    }

    /// Each rule from both sides: the batch just inside it is stored, the one
    /// just outside is refused, and the refusal names the rule.
    #[test]
    fn each_batch_rule_accepts_just_valid_and_refuses_just_invalid() {
        let backfill = |from, to| BatchRules {
            pass_from_ms: from,
            pass_to_ms: Some(to),
            ..rules()
        };
        let future = NOW + MAX_CLOCK_SKEW_MS;
        let cases: Vec<(&str, Batch, BatchRules, u64, Batch, BatchRules, u64)> = vec![
            (
                "max-events",
                lines(&[&b"{\"timestamp\":100}"[..]; 5]),
                rules(),
                NOW,
                lines(&[&b"{\"timestamp\":100}"[..]; 6]),
                rules(),
                NOW,
            ),
            (
                "utf-8",
                lines(&[b"{\"timestamp\":100,\"s\":\"\xf4\x8f\xbf\xbf\"}"]),
                rules(),
                NOW,
                lines(&[
                    b"{\"timestamp\":100}",
                    b"{\"timestamp\":100,\"s\":\"\xf4\x90\x80\x80\"}",
                ]),
                rules(),
                NOW,
            ),
            (
                "json-object",
                lines(&[b" {\"timestamp\":100} "]),
                rules(),
                NOW,
                lines(&[b"{\"timestamp\":100} {}"]),
                rules(),
                NOW,
            ),
            (
                "json-object",
                lines(&[b"{\"timestamp\":100}"]),
                rules(),
                NOW,
                lines(&[b"[{\"timestamp\":100}]"]),
                rules(),
                NOW,
            ),
            (
                "event-count",
                valid(),
                rules(),
                NOW,
                Batch {
                    event_count: 3,
                    ..valid()
                },
                rules(),
                NOW,
            ),
            (
                "ordered",
                Batch {
                    first_event_ms: 200,
                    ..lines(&[b"{\"timestamp\":200}"])
                },
                rules(),
                NOW,
                Batch {
                    first_event_ms: 201,
                    ..lines(&[b"{\"timestamp\":200}"])
                },
                rules(),
                NOW,
            ),
            (
                "batch-window",
                Batch {
                    window_start_ms: 100,
                    window_end_ms: 200,
                    ..valid()
                },
                rules(),
                NOW,
                Batch {
                    window_start_ms: 101,
                    ..valid()
                },
                rules(),
                NOW,
            ),
            (
                "event-time",
                lines(&[b"{\"timestamp\":100}", b"{\"timestamp\":200}"]),
                rules(),
                NOW,
                lines(&[b"{\"timestamp\":100}", b"{\"timestamp\":201}"]),
                rules(),
                NOW,
            ),
            (
                "event-time",
                lines(&[b"{\"timestamp\":100}"]),
                rules(),
                NOW,
                lines(&[b"{\"auditEventTime\":100}"]),
                rules(),
                NOW,
            ),
            (
                "pass-window",
                valid(),
                backfill(50, 250),
                NOW,
                valid(),
                backfill(51, 250),
                NOW,
            ),
            (
                "pass-window",
                valid(),
                backfill(50, 250),
                NOW,
                valid(),
                backfill(50, 249),
                NOW,
            ),
            (
                "not-future",
                Batch {
                    window_end_ms: future,
                    ..valid()
                },
                rules(),
                NOW,
                Batch {
                    window_end_ms: future + 1,
                    ..valid()
                },
                rules(),
                NOW,
            ),
            (
                "checkpoint",
                valid(),
                rules(),
                NOW,
                Batch {
                    checkpoint: String::new(),
                    ..valid()
                },
                rules(),
                NOW,
            ),
            (
                "ndjson",
                valid(),
                rules(),
                NOW,
                Batch {
                    lines: b"{\"timestamp\":100}".to_vec(),
                    event_count: 1,
                    ..valid()
                },
                rules(),
                NOW,
            ),
        ];
        for (rule, good, good_rules, good_now, bad, bad_rules, bad_now) in cases {
            assert_eq!(
                rule_of(&good, &good_rules, good_now),
                None,
                "{rule}: the valid side"
            );
            assert_eq!(
                rule_of(&bad, &bad_rules, bad_now).as_deref(),
                Some(rule),
                "{rule}: the invalid side"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_line_and_the_streaming_shape_s_time_field() {
        let streaming = BatchRules {
            time_field: "auditEventTime",
            ..rules()
        };
        let batch = lines(&[b"{\"auditEventTime\":100}", b"{\"timestamp\":100}"]);
        assert_eq!(
            check_batch(&batch, &streaming, NOW)
                .unwrap_err()
                .to_string(),
            "rule `event-time`: line 2 has no top-level `auditEventTime`"
        );
        let bad = lines(&[
            b"{\"timestamp\":100}",
            b"{\"timestamp\":100,\"s\":\"\xff\"}",
        ]);
        assert_eq!(
            check_batch(&bad, &rules(), NOW).unwrap_err(),
            BatchRefusal::NotUtf8 { line: 2 }
        );
        let twice = lines(&[b"{\"timestamp\":100,\"timestamp\":9}"]);
        assert_eq!(
            rule_of(&twice, &rules(), NOW).as_deref(),
            Some("json-object")
        );
        check_batch(&valid(), &rules(), NOW).unwrap();
    }
}
