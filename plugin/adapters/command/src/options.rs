//! The command line of the command composition; its settings come from the
//! environment (`harness_audit_runner::environment`).

use harness_audit_runner::environment::{self, Environment};

/// Where the checkpoint lives when `--state-dir` is not given.
pub const DEFAULT_STATE_DIR: &str = "state";

/// What the command was asked to do.
#[derive(Debug)]
pub enum Invocation {
    /// Print usage and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
    /// Run one collection pass.
    Run(Box<Options>),
}

/// Everything one pass needs; its `Debug` shows no key.
#[derive(Debug)]
pub struct Options {
    /// Validated settings and the key, from the environment.
    #[cfg_attr(
        not(any(target_arch = "wasm32", test)),
        expect(dead_code, reason = "only the WASI pass collects")
    )]
    pub environment: Environment,
    /// Directory (preopened by the runtime) holding `checkpoint.json`.
    #[cfg_attr(
        not(any(target_arch = "wasm32", test)),
        expect(dead_code, reason = "only the WASI pass stores a checkpoint")
    )]
    pub state_dir: String,
}

/// Usage text; it lists every variable read and every one refused.
pub fn usage() -> String {
    let mut text = String::from(
        "harness-audit-command: one collection pass of the Harness audit trail, as a WASI command.\n\
         NDJSON goes to stdout, progress and errors to stderr, the checkpoint to\n\
         <state-dir>/checkpoint.json. Exit status 0 on success, 1 on any failure (WASI 0.2's exit\n\
         carries no code): the message on stderr names the failure and its fix.\n\n\
         Usage: harness-audit-command [--state-dir DIR]\n\n\
         Options:\n  \
         --state-dir DIR  preopened directory for checkpoint.json [default: state]\n  \
         -h, --help       print this help\n  \
         -V, --version    print the version\n\n",
    );
    text.push_str(&environment::usage());
    text
}

/// Parses the arguments (without the program name) and the environment.
/// Errors name the argument or variable and say how to fix it.
pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Invocation, String> {
    let mut state_dir = DEFAULT_STATE_DIR.to_owned();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            "--state-dir" => {
                state_dir = args
                    .next()
                    .filter(|d| !d.is_empty())
                    .ok_or("--state-dir needs a directory")?
                    .clone();
            }
            other => {
                if let Some(dir) = other.strip_prefix("--state-dir=") {
                    state_dir = dir.to_owned();
                } else {
                    return Err(format!(
                        "unknown argument `{other}`; run with --help for the usage"
                    ));
                }
            }
        }
    }

    let environment = environment::parse(env)?;
    Ok(Invocation::Run(Box::new(Options {
        environment,
        state_dir,
    })))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Options, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        match parse(&args, |name| env.get(name).cloned())? {
            Invocation::Run(options) => Ok(*options),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    const BASE: [(&str, &str); 2] = [
        ("HARNESS_ACCOUNT_ID", "acct_1"),
        ("HARNESS_API_KEY", "pat.secret"),
    ];

    #[test]
    fn the_state_dir_is_an_argument_and_the_rest_the_environment() {
        let options = run(&[], &BASE).unwrap();
        assert_eq!(options.state_dir, DEFAULT_STATE_DIR);
        assert_eq!(
            options.environment.api_key,
            environment::ApiKey::Value("pat.secret".into())
        );
        assert_eq!(options.environment.settings.query.account_id, "acct_1");
        assert!(!format!("{options:?}").contains("pat.secret"));
        assert_eq!(
            run(&["--state-dir", "/state"], &BASE).unwrap().state_dir,
            "/state"
        );
        assert_eq!(run(&["--state-dir=s2"], &BASE).unwrap().state_dir, "s2");
        let err = run(&[], &[("HARNESS_API_KEY", "pat.secret")]).unwrap_err();
        assert!(err.contains("HARNESS_ACCOUNT_ID is not set"), "{err}");
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let err = run(&["--sink", "gcs"], &BASE).unwrap_err();
        assert!(err.contains("unknown argument `--sink`"), "{err}");
        assert!(
            run(&["--state-dir"], &BASE)
                .unwrap_err()
                .contains("--state-dir needs")
        );
    }

    #[test]
    fn usage_lists_the_options_and_every_variable() {
        let text = usage();
        assert!(text.contains("--state-dir DIR"), "{text}");
        for setting in environment::reads().chain(environment::host_only()) {
            assert!(text.contains(setting.env), "usage lacks {}", setting.env);
        }
    }
}
