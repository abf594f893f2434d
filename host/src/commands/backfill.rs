//! `backfill`: a historical range read with its own checkpoint, never the
//! live one, so it can be interrupted and resumed, and re-running a finished
//! one writes nothing. This module shows its progress.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::BackfillRange;
use crate::engine::PassSummary;
use crate::time::rfc3339_ms;

/// Steps of the bar: the range is shown to a hundredth of a percent.
const STEPS: u64 = 10_000;
/// Seconds between plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Progress on stderr: an `indicatif` bar on a terminal, and off one (a log
/// file, a journal) a plain line every few seconds, which a bar would not give.
#[derive(Debug)]
pub struct Progress {
    range: BackfillRange,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Mutex<Option<Instant>>,
}

impl Progress {
    /// Progress over `range`.
    pub fn new(range: BackfillRange) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(STEPS), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("[{bar:30}] {percent:>3}% {msg}, ETA {eta}")
                    .expect("the template is valid")
                    .progress_chars("#>-"),
            );
            bar
        });
        Self {
            range,
            bar,
            started: Instant::now(),
            last_line: Mutex::new(None),
        }
    }

    /// Reports the pass so far; `done` ends the bar or forces a final line.
    pub fn report(&self, summary: &PassSummary, done: bool) {
        let span = (self.range.to_ms - self.range.from_ms).max(1);
        let reached = summary
            .watermark_ms
            .unwrap_or(self.range.from_ms)
            .saturating_sub(self.range.from_ms)
            .min(span);
        let step = if done {
            STEPS
        } else {
            u64::try_from(u128::from(reached) * u128::from(STEPS) / u128::from(span))
                .expect("at most STEPS")
        };
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let text = format!(
            "{}..{}: {} events, {} pages, {:.0} events/s",
            rfc3339_ms(self.range.from_ms),
            rfc3339_ms(self.range.to_ms),
            summary.stored.events,
            summary.pages,
            summary.stored.events as f64 / elapsed
        );
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_message(text);
            if done {
                bar.finish();
            }
            return;
        }
        let mut last = self
            .last_line
            .lock()
            .expect("no panic while holding the lock");
        if !done && last.is_some_and(|t| t.elapsed() < LINE_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        eprintln!(
            "backfill progress: {:5.1}% of {text}",
            step as f64 * 100.0 / STEPS as f64
        );
    }
}
