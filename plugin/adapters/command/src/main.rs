//! `harness-audit-command`: the runner of `dist/harness-audit-command.wasm`,
//! the source composed into a plain `wasi:cli/command` for stock WebAssembly
//! runtimes (`wasmtime run`, `jco run`), which cannot supply the
//! `harness:audit` world's `emit`.
//!
//! It holds no Harness logic: it imports the embedded source and the sink
//! (`plugin/adapters/wit/adapter.wit`), and `scripts/dist.sh` composes the
//! three. Settings come from the Cloud Run recipe's environment variables and
//! the command line, events go to stdout as NDJSON through the sink, and the
//! checkpoint is a file in a directory the runtime preopens. Unlike the host,
//! a stock runtime cannot inject the API key: the runner reads it and passes
//! it to the source's `configure`.

/// Stdout and the preopened state directory. `wasi:io` is the runner's, so
/// that the stdout stream is one the sink can take.
#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({
        inline: "package harness:command;
            world command {
                import wasi:cli/stdout@0.2.12;
                import wasi:filesystem/preopens@0.2.12;
            }",
        path: ["../../../wit"],
        with: {
            "wasi:io/error@0.2.12": harness_audit_runner::bindings::wasi::io::error,
            "wasi:io/poll@0.2.12": harness_audit_runner::bindings::wasi::io::poll,
            "wasi:io/streams@0.2.12": harness_audit_runner::bindings::wasi::io::streams,
        },
        generate_all,
    });
}

mod options;
#[cfg(target_arch = "wasm32")]
mod pass;
#[cfg(target_arch = "wasm32")]
mod state;

use std::process::ExitCode;

use options::Invocation;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match options::parse(&args, |name| std::env::var(name).ok()) {
        Ok(Invocation::Help) => {
            print!("{}", options::usage());
            ExitCode::SUCCESS
        }
        Ok(Invocation::Version) => {
            println!("harness-audit-command {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Invocation::Run(options)) => run(*options),
        Err(message) => {
            eprintln!("harness-audit-command: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn run(options: options::Options) -> ExitCode {
    pass::run(options)
}

/// Natively there is no source to import; the options and usage are still
/// built natively so that their unit tests run with the workspace's.
#[cfg(not(target_arch = "wasm32"))]
fn run(_: options::Options) -> ExitCode {
    eprintln!(
        "harness-audit-command is the runner of a WebAssembly composition: build \
         dist/harness-audit-command.wasm with scripts/dist.sh and run it under a WASI \
         runtime, or use the harness-audit binary"
    );
    ExitCode::FAILURE
}
