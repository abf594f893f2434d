//! A test hook at each step of the commit protocol (intent, object, commit),
//! so that the crash tests can SIGKILL the real binary at exactly that step
//! instead of at a random instant that rarely falls inside the commit window.
//!
//! `HARNESS_AUDIT_TEST_PAUSE_AT=<step>[@<n>]` makes the process print
//! `harness-audit test hook: paused at <step> #<n>` to stderr the `n`th time
//! (default: first) it reaches `<step>`, then stop itself with SIGSTOP, as a
//! frozen VM would: the test sends SIGKILL to crash it there, or SIGCONT to
//! let it carry on late. It is deliberately not a setting: it is not in the
//! README, the help or the config file, and when it is unset a step costs
//! one atomic load.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;

/// The variable that arms the hook.
pub const VARIABLE: &str = "HARNESS_AUDIT_TEST_PAUSE_AT";

/// A step of the commit protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The write intent is durable; the object is not written yet.
    AfterIntent,
    /// Half the object's bytes have left the process (a temporary file on
    /// disk, a request body on the wire); the rest have not.
    MidUpload,
    /// The object is durable; its checkpoint is not committed.
    AfterObject,
    /// The batch's checkpoint is committed.
    AfterCommit,
    /// A digest is written; the state does not record it yet.
    AfterDigest,
}

impl Step {
    /// Every step, in protocol order.
    pub const ALL: [Self; 5] = [
        Self::AfterIntent,
        Self::MidUpload,
        Self::AfterObject,
        Self::AfterCommit,
        Self::AfterDigest,
    ];

    /// The name `HARNESS_AUDIT_TEST_PAUSE_AT` uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::AfterIntent => "after-intent",
            Self::MidUpload => "mid-upload",
            Self::AfterObject => "after-object",
            Self::AfterCommit => "after-commit",
            Self::AfterDigest => "after-digest",
        }
    }
}

struct Armed {
    step: Step,
    occurrence: u32,
    seen: AtomicU32,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(VARIABLE).ok()?;
            let (name, occurrence) = value.split_once('@').unwrap_or((&value, "1"));
            let step = Step::ALL.into_iter().find(|s| s.name() == name);
            let occurrence = occurrence.parse().ok().filter(|n| *n > 0);
            let (Some(step), Some(occurrence)) = (step, occurrence) else {
                // A test hook with a typo must not pass silently as a run without a pause.
                eprintln!(
                    "harness-audit test hook: {VARIABLE}=`{value}` is not <step>[@<n>] with a step among {}",
                    Step::ALL.map(Step::name).join(", ")
                );
                std::process::exit(2);
            };
            Some(Armed {
                step,
                occurrence,
                seen: AtomicU32::new(0),
            })
        })
        .as_ref()
}

/// Whether the hook names `step` at all (so a writer can split its upload).
pub fn is_armed(step: Step) -> bool {
    armed().is_some_and(|a| a.step == step)
}

/// Marks an arrival at `step`; the armed arrival stops the whole process
/// until it is sent SIGCONT (or SIGKILL).
pub fn reached(step: Step) {
    let Some(armed) = armed().filter(|a| a.step == step) else {
        return;
    };
    let n = armed.seen.fetch_add(1, Ordering::Relaxed) + 1;
    if n == armed.occurrence {
        eprintln!("harness-audit test hook: paused at {} #{n}", step.name());
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP)
            .expect("a process may always signal itself");
        // The stop is taken by whichever thread the kernel picks, and this
        // one can run on for a moment after kill returns: it must not take
        // another step (send the rest of a body) before the stop lands.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A request body that sends its first half, then marks `step`, then sends
/// the rest: a kill at that mark leaves the server with half a request.
pub struct SplitBody {
    head: Option<Bytes>,
    mark: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
    tail: Option<Bytes>,
}

impl SplitBody {
    /// `bytes` split in two around `step`.
    pub fn new(mut bytes: Bytes, step: Step) -> Self {
        let tail = bytes.split_off(bytes.len() / 2);
        Self {
            head: Some(bytes),
            mark: Some(Box::pin(async move {
                // Returning pending first lets the client flush the head to the socket.
                tokio::time::sleep(Duration::from_millis(50)).await;
                reached(step);
            })),
            tail: Some(tail),
        }
    }
}

impl std::fmt::Debug for SplitBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitBody")
            .field("head", &self.head.as_ref().map(Bytes::len))
            .field("marked", &self.mark.is_none())
            .field("tail", &self.tail.as_ref().map(Bytes::len))
            .finish()
    }
}

impl http_body::Body for SplitBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        if let Some(mark) = self.mark.as_mut() {
            ready!(mark.as_mut().poll(cx));
            self.mark = None;
        }
        Poll::Ready(self.tail.take().map(|tail| Ok(Frame::data(tail))))
    }
}
