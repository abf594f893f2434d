//! `harness-audit-command`: the Harness audit-trail source as a plain
//! `wasi:cli/command`, for stock WebAssembly runtimes (`wasmtime run`,
//! `jco run`) that cannot supply the `harness:audit` world's `emit`.
//!
//! It is a thin wrapper over the same core as the component: settings come
//! from the Cloud Run recipe's environment variables and the command line,
//! events go to stdout as NDJSON, and the checkpoint is a file in a directory
//! the runtime preopens. Unlike the component, it must hold the API key
//! itself, because a stock runtime has no way to inject it.

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

/// Natively there is no WASI to collect through; the options and usage are
/// still built natively so that their unit tests run with the workspace's.
#[cfg(not(target_arch = "wasm32"))]
fn run(_: options::Options) -> ExitCode {
    eprintln!(
        "harness-audit-command is a WebAssembly command: build it with \
         `cargo build --release --target wasm32-wasip2 -p harness-audit-command` \
         and run it under a WASI runtime, or use the harness-audit binary"
    );
    ExitCode::FAILURE
}
