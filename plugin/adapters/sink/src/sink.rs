use std::cell::RefCell;

use exports::harness::adapter::output;
use exports::harness::audit::emit;
use exports::harness::audit::types::{Batch, EmitError, QuarantinedEvent};
use wasi::io::streams::OutputStream;

wit_bindgen::generate!({
    path: ["../../../wit", "../wit"],
    world: "harness:adapter/sink",
    generate_all,
});

/// `blocking-write-and-flush` takes at most this many bytes per call.
const WRITE_CHUNK: usize = 4096;

#[derive(Default)]
struct Attached {
    stream: Option<OutputStream>,
    checkpoint: Option<String>,
    quarantined: Vec<QuarantinedEvent>,
}

thread_local! {
    static ATTACHED: RefCell<Attached> = RefCell::default();
}

struct Sink;

impl emit::Guest for Sink {
    fn emit(batch: Batch) -> Result<(), EmitError> {
        ATTACHED.with_borrow_mut(|attached| {
            let stream = attached.stream.as_ref().ok_or_else(|| {
                EmitError::Unavailable(
                    "the runner attached no output stream before polling the source".into(),
                )
            })?;
            for chunk in batch.lines.chunks(WRITE_CHUNK) {
                stream.blocking_write_and_flush(chunk).map_err(|e| {
                    EmitError::Unavailable(format!("writing a batch to the output: {e:?}"))
                })?;
            }
            if let Some(quarantine) = batch.quarantine {
                attached.quarantined.extend(quarantine.events);
            }
            attached.checkpoint = Some(batch.checkpoint);
            Ok(())
        })
    }
}

impl output::Guest for Sink {
    fn attach(destination: OutputStream) {
        ATTACHED.with_borrow_mut(|attached| attached.stream = Some(destination));
    }

    fn detach() -> Option<OutputStream> {
        ATTACHED.with_borrow_mut(|attached| attached.stream.take())
    }

    fn take_checkpoint() -> Option<String> {
        ATTACHED.with_borrow_mut(|attached| attached.checkpoint.take())
    }

    fn take_quarantine() -> Vec<QuarantinedEvent> {
        ATTACHED.with_borrow_mut(|attached| std::mem::take(&mut attached.quarantined))
    }
}

export!(Sink);
