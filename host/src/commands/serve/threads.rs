//! Where `serve` runs its passes: a permit per running pass, and threads of
//! their own, apart from the runtime that serves `/metrics` and schedules.
//! The kernel shares the CPUs between passes, so a component that computes
//! without pause slows only its own tenant. Each thread keeps one
//! current-thread runtime for pass after pass; a thread whose pass dropped it
//! to background priority ([`crate::engine::limits::BACKGROUND_AFTER`]) is
//! retired after that pass and replaced, since it cannot raise its priority
//! again.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::engine::limits::this_thread_is_background;

/// A pass, run to its end on a pass thread's runtime.
type Job = Box<dyn FnOnce(&tokio::runtime::Runtime) + Send>;

/// The permits and threads of the running passes.
#[derive(Debug)]
pub struct PassThreads {
    permits: Arc<Semaphore>,
    jobs: Mutex<Sender<Job>>,
}

impl PassThreads {
    /// At most `max_concurrent` passes at once, on as many threads.
    pub fn start(max_concurrent: usize) -> std::io::Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..max_concurrent.max(1) {
            spawn_worker(queue.clone())?;
        }
        Ok(Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            jobs: Mutex::new(jobs),
        })
    }

    /// Waits for a free slot.
    pub async fn permit(&self) -> OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Runs `job` on a pass thread; false if no thread is left to run it.
    pub fn run(&self, job: Job) -> bool {
        self.jobs
            .lock()
            .expect("no panic while holding the lock")
            .send(job)
            .is_ok()
    }
}

fn spawn_worker(queue: Arc<Mutex<Receiver<Job>>>) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("pass".into())
        .spawn(move || work(&runtime, &queue))?;
    Ok(())
}

/// Takes passes until the queue closes, or until this thread must be retired.
fn work(runtime: &tokio::runtime::Runtime, queue: &Arc<Mutex<Receiver<Job>>>) {
    loop {
        let next = queue.lock().map(|q| q.recv());
        let Ok(Ok(job)) = next else {
            return;
        };
        // A panic fails this pass only: its caller sees the result channel closed.
        let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| job(runtime))).is_err();
        if panicked || this_thread_is_background() {
            if let Err(e) = spawn_worker(queue.clone()) {
                tracing::error!(stage = "limits", error = %e, "could not replace a retired pass thread");
            }
            return;
        }
    }
}
