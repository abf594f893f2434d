//! What one component instance may use, and how a breach is told apart from
//! any other trap so the error can name the setting to raise.

use std::time::Duration;

use wasmtime::{Engine, ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// How often the epoch advances; the poll deadline is counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(100);

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

/// The deadline, in ticks, for a call that may take `secs` seconds.
pub fn deadline_ticks(secs: u32) -> u64 {
    let tick_ms = u64::try_from(EPOCH_TICK.as_millis()).expect("the tick is short");
    u64::from(secs) * 1000 / tick_ms + 1
}
