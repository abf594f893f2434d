use harness_audit_runner::bindings::harness::adapter::output;
use harness_audit_runner::bindings::harness::audit::types::QuarantinedEvent;
use harness_audit_runner::bindings::wasi::io::streams::{OutputStream, StreamError};
use harness_audit_runner::environment::{self, ApiKey};
use harness_audit_runner::pass;
use serde::Deserialize;
use serde_json::value::RawValue;

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wit_bindgen::generate!({
    inline: "package harness:proxy;
        world proxy {
            export wasi:http/incoming-handler@0.2.12;
        }",
    path: ["../../../wit"],
    with: {
        "wasi:io/error@0.2.12": harness_audit_runner::bindings::wasi::io::error,
        "wasi:io/poll@0.2.12": harness_audit_runner::bindings::wasi::io::poll,
        "wasi:io/streams@0.2.12": harness_audit_runner::bindings::wasi::io::streams,
    },
    generate_all,
});

/// Page requests per poll, as the host budgets them: the response is one
/// stream, so there is no checkpoint to store between batches.
const MAX_PAGES_PER_POLL: u32 = 20;
/// Largest request body read: a checkpoint line (the host's checkpoint limit,
/// and room for the line around it).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024 + 64 * 1024;
/// `blocking-write-and-flush` and `blocking-read` take at most this much.
const CHUNK: usize = 4096;
const READ_CHUNK: u64 = 64 * 1024;

/// The last line of each response, and what a request carries. The field
/// is required: any other line (an event, say) is refused, not taken for a
/// first pass.
#[derive(Deserialize)]
struct CheckpointLine<'a> {
    #[serde(rename = "harnessAuditCheckpoint", borrow)]
    checkpoint: &'a RawValue,
}

struct Proxy;

impl Guest for Proxy {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        if !matches!(request.method(), Method::Post) {
            return respond(
                out,
                405,
                "POST the last line of the previous response, or nothing the first time",
            );
        }
        let body = match read_body(request) {
            Ok(body) => body,
            Err(message) => return respond(out, 400, &message),
        };
        let checkpoint = match checkpoint_of(&body) {
            Ok(checkpoint) => checkpoint,
            Err(message) => return respond(out, 400, &message),
        };
        let read = match environment::parse(|name| std::env::var(name).ok()) {
            Ok(read) => read,
            Err(message) => return respond(out, 500, &message),
        };
        let api_key = match read.api_key {
            ApiKey::Value(key) => key,
            ApiKey::File(_) => {
                return respond(
                    out,
                    500,
                    "HARNESS_API_KEY_FILE needs a file system, which wasi:http/proxy hosts do not \
                     grant: set HARNESS_API_KEY",
                );
            }
        };

        let response = OutgoingResponse::new(
            Fields::from_list(&[("content-type".into(), b"application/x-ndjson".to_vec())])
                .expect("a valid header"),
        );
        let body = response.body().expect("a new response has a body");
        ResponseOutparam::set(out, Ok(response));
        output::attach(body.write().expect("a new body has a stream"));

        let mut last = checkpoint.clone();
        let mut quarantined = Vec::new();
        let result = pass::collect(
            read.settings,
            checkpoint.as_deref(),
            &api_key,
            MAX_PAGES_PER_POLL,
            |events| {
                quarantined.extend(events);
                Ok(())
            },
            |checkpoint| {
                last = Some(checkpoint);
                Ok(())
            },
            |finding| eprintln!("harness-audit-proxy: completeness: {finding}"),
        );
        let line = last_line(last.as_deref(), &quarantined, result.as_ref().err());
        match &result {
            Ok(summary) => eprintln!("harness-audit-proxy: {summary}"),
            Err(message) => eprintln!("harness-audit-proxy: {message}"),
        }
        let stream = output::detach().expect("the stream attached above");
        // A client that misses this line keeps its previous checkpoint: it
        // gets the same events again, never fewer.
        if write_all(&stream, line.as_bytes()).is_ok() {
            drop(stream);
            let _ = OutgoingBody::finish(body, None);
        }
    }
}

/// The request's body, at most `MAX_BODY_BYTES`.
fn read_body(request: IncomingRequest) -> Result<Vec<u8>, String> {
    let body = request
        .consume()
        .map_err(|()| "the request body could not be read".to_owned())?;
    let stream = body
        .stream()
        .map_err(|()| "the request body could not be read".to_owned())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!(
                    "reading the request body failed: {}",
                    e.to_debug_string()
                ));
            }
        }
        if bytes.len() > MAX_BODY_BYTES {
            return Err(format!(
                "the request body is over {MAX_BODY_BYTES} bytes: send only the last line of the \
                 previous response"
            ));
        }
    }
}

/// The checkpoint in the body's last line, or none for an empty body.
fn checkpoint_of(body: &[u8]) -> Result<Option<String>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the request body is not UTF-8".to_owned())?;
    let Some(line) = text.lines().rev().find(|line| !line.trim().is_empty()) else {
        return Ok(None);
    };
    let parsed: CheckpointLine<'_> = serde_json::from_str(line).map_err(|e| {
        format!(
            "the request body's last line is not the checkpoint line of a previous response \
             ({e}): send that line as it was, or nothing the first time"
        )
    })?;
    Ok(Some(parsed.checkpoint.get())
        .filter(|raw| *raw != "null")
        .map(str::to_owned))
}

/// The response's last line: the checkpoint covering every line before it,
/// the events the component could not read (their bytes in base64, since
/// they may not be text), and the failure that ended the pass early, if any.
fn last_line(
    checkpoint: Option<&str>,
    quarantined: &[QuarantinedEvent],
    error: Option<&String>,
) -> String {
    use base64::Engine as _;
    let mut line = format!(
        "{{\"harnessAuditCheckpoint\":{}",
        checkpoint.unwrap_or("null")
    );
    if !quarantined.is_empty() {
        let events: Vec<serde_json::Value> = quarantined
            .iter()
            .map(|e| {
                serde_json::json!({
                    "reason": pass::reason_name(e.reason),
                    "detail": e.detail,
                    "atMs": e.at_ms,
                    "base64": base64::engine::general_purpose::STANDARD.encode(&e.bytes),
                })
            })
            .collect();
        line.push_str(",\"harnessAuditQuarantine\":");
        line.push_str(&serde_json::Value::from(events).to_string());
    }
    if let Some(error) = error {
        line.push_str(",\"harnessAuditError\":");
        line.push_str(&serde_json::to_string(error).expect("a string serializes"));
    }
    line.push_str("}\n");
    line
}

fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    for chunk in bytes.chunks(CHUNK) {
        stream.blocking_write_and_flush(chunk)?;
    }
    Ok(())
}

/// A whole response with `status` and a plain-text `message`.
fn respond(out: ResponseOutparam, status: u16, message: &str) {
    eprintln!("harness-audit-proxy: {status}: {message}");
    let response = OutgoingResponse::new(
        Fields::from_list(&[("content-type".into(), b"text/plain; charset=utf-8".to_vec())])
            .expect("a valid header"),
    );
    response
        .set_status_code(status)
        .expect("a valid status code");
    let body = response.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("a new body has a stream");
    if write_all(&stream, format!("{message}\n").as_bytes()).is_ok() {
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

export!(Proxy);
