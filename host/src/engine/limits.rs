//! What one component instance may use, and how a breach is told apart from
//! any other trap so the error can name the setting to raise.
//!
//! Memory is capped by the store's limiter. Time is watched at every epoch
//! tick while guest code runs: the guest yields to the async runtime there,
//! and is stopped once its call outlives `POLL_TIMEOUT_SECS`, its pass has
//! used `MAX_PASS_CPU_SECS` of CPU, or the process is shutting down. Storage
//! is capped per poll (the contract's `max-pages`) and per pass.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use wasmtime::{Engine, ResourceLimiter, StoreLimits, StoreLimitsBuilder};

use crate::config::LimitsConfig;
use crate::engine::error::RunError;

/// How often the epoch advances. A guest that never returns is checked, and
/// yields its thread, this often: it bounds how long a spinning component
/// can hold a runtime thread from other work.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Memory and instance ceilings of one store, remembering a memory breach.
#[derive(Debug)]
pub struct SandboxLimits {
    inner: StoreLimits,
    max_memory_bytes: usize,
    /// The growth that was refused, in bytes, if any.
    pub memory_refused: Option<usize>,
}

impl SandboxLimits {
    /// At most `max_memory_bytes` of linear memory; growing past it traps.
    pub fn new(max_memory_bytes: usize) -> Self {
        Self {
            inner: StoreLimitsBuilder::new()
                .memory_size(max_memory_bytes)
                .instances(16)
                .trap_on_grow_failure(true)
                .build(),
            max_memory_bytes,
            memory_refused: None,
        }
    }
}

impl ResourceLimiter for SandboxLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_refused = Some(desired);
        }
        self.inner.memory_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on its own thread until dropped.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let engine = engine.clone();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(EPOCH_TICK)
                {
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

thread_local! {
    static BACKGROUND: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a pass dropped the calling thread to background priority.
pub fn this_thread_is_background() -> bool {
    BACKGROUND.get()
}

/// Drops the calling thread (not the process: Linux keeps a nice value per
/// thread) to the lowest priority.
fn background_this_thread() {
    let tid = rustix::thread::gettid();
    BACKGROUND.set(true);
    match rustix::process::setpriority_process(Some(tid), 19) {
        Ok(()) => tracing::info!(
            stage = "limits",
            "a call into the component computed for over 100 ms without waiting; its thread now runs at \
             background priority for the rest of the pass"
        ),
        Err(e) => {
            tracing::warn!(stage = "limits", error = %e, "could not lower a busy pass's thread priority")
        }
    }
}

/// The CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The CPU time one pass has used: summed over every poll of its future, on
/// whichever thread ran it, so waits on I/O cost nothing and work done for
/// other tenants is never counted.
#[derive(Debug, Default)]
pub struct CpuMeter {
    spent_ns: AtomicU64,
    /// The thread's CPU clock when the current poll began.
    entered_ns: AtomicU64,
    inside: AtomicBool,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl CpuMeter {
    /// CPU time used so far, the poll in progress included when called from inside it.
    pub fn spent(&self) -> Duration {
        let mut ns = self.spent_ns.load(Ordering::Relaxed);
        if self.inside.load(Ordering::Relaxed) {
            ns += nanos(thread_cpu()).saturating_sub(self.entered_ns.load(Ordering::Relaxed));
        }
        Duration::from_nanos(ns)
    }
}

/// A future whose polls are charged to a [`CpuMeter`].
#[derive(Debug)]
pub struct Metered<F> {
    inner: Pin<Box<F>>,
    meter: Arc<CpuMeter>,
}

impl<F: Future> Metered<F> {
    /// Charges every poll of `inner` to `meter`.
    pub fn new(meter: Arc<CpuMeter>, inner: F) -> Self {
        Self {
            inner: Box::pin(inner),
            meter,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let entered = nanos(thread_cpu());
        self.meter.entered_ns.store(entered, Ordering::Relaxed);
        self.meter.inside.store(true, Ordering::Relaxed);
        let polled = self.inner.as_mut().poll(cx);
        self.meter.inside.store(false, Ordering::Relaxed);
        let used = nanos(thread_cpu()).saturating_sub(entered);
        self.meter.spent_ns.fetch_add(used, Ordering::Relaxed);
        polled
    }
}

/// Where a pass runs, which decides whether its thread's priority may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassThread {
    /// A thread shared with other work (`run`, `backfill`): left alone.
    Shared,
    /// A thread that runs passes only (`serve`): a call that computes past
    /// [`BACKGROUND_AFTER`] drops it to background priority, and the thread
    /// is retired after the pass.
    Own,
}

/// CPU time one call may use before its thread, if its own, drops to
/// background priority (nice 19) for the rest of the pass. A poll of the
/// embedded component uses a few milliseconds between its requests; a guest
/// that computes without pause then yields the CPUs to every other tenant
/// and to `/metrics` whenever they want them, and runs at full speed when
/// they do not. The drop is one way: an unprivileged thread cannot raise its
/// priority again, so only a thread that is retired after the pass takes it.
pub const BACKGROUND_AFTER: Duration = Duration::from_millis(100);

/// Why the host stopped a running guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// One call outlived `POLL_TIMEOUT_SECS`.
    PollTimeout,
    /// The pass used `MAX_PASS_CPU_SECS` of CPU.
    CpuBudget,
    /// The process is shutting down.
    Shutdown,
}

/// The time, CPU and storage limits of one pass, consulted at every epoch
/// tick and every `emit`.
#[derive(Debug)]
pub struct PassGuard {
    limits: LimitsConfig,
    cpu: Arc<CpuMeter>,
    thread: PassThread,
    /// The pass's CPU time when the current call began.
    call_cpu_start: Duration,
    backgrounded: bool,
    call_deadline: Instant,
    stop: Option<watch::Receiver<bool>>,
    /// Set when the guard stopped the guest.
    pub stopped: Option<Stopped>,
    /// `emit` calls allowed in the current poll (its `max-pages`).
    emits_allowed: u32,
    emits: u32,
    batches: u64,
    bytes: u64,
}

impl PassGuard {
    /// Limits from `limits`, CPU charged to `cpu`, on `thread`, stopping
    /// early once `stop` turns true.
    pub fn new(
        limits: LimitsConfig,
        cpu: Arc<CpuMeter>,
        thread: PassThread,
        stop: Option<watch::Receiver<bool>>,
    ) -> Self {
        Self {
            limits,
            cpu,
            thread,
            call_cpu_start: Duration::ZERO,
            backgrounded: false,
            call_deadline: Instant::now(),
            stop,
            stopped: None,
            emits_allowed: u32::MAX,
            emits: 0,
            batches: 0,
            bytes: 0,
        }
    }

    /// Starts the clock of a call into the guest.
    pub fn arm(&mut self) {
        self.call_deadline =
            Instant::now() + Duration::from_secs(u64::from(self.limits.poll_timeout_secs));
        self.call_cpu_start = self.cpu.spent();
    }

    /// Starts the clock of a `poll` call that may make `max_pages` requests,
    /// and so at most as many `emit` calls.
    pub fn arm_poll(&mut self, max_pages: u32) {
        self.arm();
        self.emits_allowed = max_pages;
        self.emits = 0;
    }

    /// Whether the process asked this pass to stop.
    pub fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// At an epoch tick: why the guest must stop now, if it must. A busy
    /// call on a thread of its own drops that thread to background priority.
    pub fn check(&mut self) -> Option<Stopped> {
        let spent = self.cpu.spent();
        if self.thread == PassThread::Own
            && !self.backgrounded
            && spent.saturating_sub(self.call_cpu_start) > BACKGROUND_AFTER
        {
            self.backgrounded = true;
            background_this_thread();
        }
        let why = if self.stop_requested() {
            Some(Stopped::Shutdown)
        } else if Instant::now() >= self.call_deadline {
            Some(Stopped::PollTimeout)
        } else if spent >= self.cpu_budget() {
            Some(Stopped::CpuBudget)
        } else {
            None
        };
        if why.is_some() {
            self.stopped = why;
        }
        why
    }

    fn cpu_budget(&self) -> Duration {
        Duration::from_secs(u64::from(self.limits.max_pass_cpu_secs))
    }

    /// CPU time the pass has used so far.
    pub fn cpu_spent(&self) -> Duration {
        self.cpu.spent()
    }

    /// Admits one more batch of `bytes`, or names the quota it would break:
    /// its setting, or `budget.max-pages` for the contract's limit on `emit` calls.
    pub fn admit(&mut self, bytes: usize) -> Result<(), RunError> {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        let max_bytes = u64::from(self.limits.max_pass_mib) << 20;
        if self.emits >= self.emits_allowed {
            return Err(RunError::limit(
                "budget.max-pages",
                format!(
                    "the component called emit more than {} times in one poll, over its budget's max-pages \
                     (a batch holds at least one page)",
                    self.emits_allowed
                ),
            ));
        }
        if self.batches >= u64::from(self.limits.max_pass_batches) {
            return Err(RunError::limit(
                harness_audit_settings::MAX_PASS_BATCHES.env,
                format!(
                    "the pass stored {} batches, MAX_PASS_BATCHES; the next was refused",
                    self.limits.max_pass_batches
                ),
            ));
        }
        if self.bytes.saturating_add(bytes) > max_bytes {
            return Err(RunError::limit(
                harness_audit_settings::MAX_PASS_MIB.env,
                format!(
                    "a batch of {bytes} bytes would take the pass past MAX_PASS_MIB ({} MiB, {} stored so far)",
                    self.limits.max_pass_mib, self.bytes
                ),
            ));
        }
        self.emits += 1;
        self.batches += 1;
        self.bytes += bytes;
        Ok(())
    }
}
