//! Every deployment and shipper example under `examples/` is parsed, and each
//! `harness-audit` invocation and variable in it must exist in the binary's
//! `--help` and configuration schema, so that the examples cannot rot. The
//! README must link every example. Where a real tool runs here
//! (`systemd-analyze verify`), it checks its example too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml_ng::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_harness-audit");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(examples().join(relative))
        .unwrap_or_else(|e| panic!("examples/{relative}: {e}"))
}

fn help(args: &[&str]) -> String {
    let output = Command::new(BINARY)
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?} --help failed");
    String::from_utf8(output.stdout).unwrap()
}

/// What the binary accepts: subcommands with their help, and every variable
/// it reads.
struct Schema {
    subcommands: BTreeMap<String, String>,
    variables: BTreeSet<String>,
}

impl Schema {
    fn new() -> Self {
        let top = help(&[]);
        let commands = top
            .split("Commands:")
            .nth(1)
            .expect("--help lists the subcommands");
        let subcommands: BTreeMap<String, String> = commands
            .lines()
            .skip(1)
            .take_while(|line| line.starts_with("  "))
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| *name != "help")
            .map(|name| (name.to_owned(), help(&[name])))
            .collect();
        assert!(subcommands.contains_key("run") && subcommands.contains_key("serve"));
        let mut variables: BTreeSet<String> = harness_audit_settings::ALL
            .iter()
            .map(|s| s.env.to_owned())
            .collect();
        // Variables outside the settings table are named in the help texts.
        for text in subcommands.values().chain([&top]) {
            variables.extend(
                text.split(|c: char| !(c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
                    .filter(|word| word.len() > 3 && word.contains('_'))
                    .map(str::to_owned),
            );
        }
        Self {
            subcommands,
            variables,
        }
    }

    /// `argv[0]` is the binary; the rest must be a subcommand and its flags.
    fn check_invocation(&self, example: &str, argv: &[String]) {
        assert!(
            argv.first().is_some_and(|a| a.ends_with("harness-audit")),
            "{example}: `{argv:?}` does not run harness-audit"
        );
        let subcommand = argv.get(1).map_or("run", String::as_str);
        let text = self.subcommands.get(subcommand).unwrap_or_else(|| {
            panic!("{example}: `harness-audit {subcommand}` is not a subcommand")
        });
        for flag in argv.iter().skip(2).filter(|a| a.starts_with("--")) {
            let name = flag.split('=').next().unwrap();
            assert!(
                text.contains(&format!("{name} ")) || text.contains(&format!("{name}\n")),
                "{example}: `harness-audit {subcommand}` has no flag {name}"
            );
        }
    }

    fn check_variable(&self, example: &str, name: &str, tenant_keys: &BTreeSet<String>) {
        assert!(
            self.variables.contains(name) || tenant_keys.contains(name),
            "{example}: harness-audit reads no variable {name}"
        );
    }
}

/// Parses a tenant file as `serve` would, and returns the variables its
/// tenants take their keys from.
fn check_tenant_file(example: &str, text: &str) -> BTreeSet<String> {
    let asked = std::cell::RefCell::new(BTreeSet::new());
    let tenants = harness_audit::config::tenants::parse(text, Path::new("."), |name| {
        asked.borrow_mut().insert(name.to_owned());
        Some("pat.Xy3kQ9mTR0aWb1cD2eF4gH.t.secretsecretsecret".to_owned())
    })
    .unwrap_or_else(|e| panic!("{example}: {e}"));
    assert!(!tenants.is_empty(), "{example} has no tenant");
    asked.into_inner()
}

/// Every file `--config` names must be an example too.
fn check_config_reference(example: &str, argv: &[String], known: &BTreeSet<String>) {
    if let Some(i) = argv.iter().position(|a| a == "--config") {
        let name = Path::new(&argv[i + 1])
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            known.contains(name),
            "{example}: --config names {name}, which no example provides"
        );
    }
}

fn yaml_documents(relative: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(&read(relative))
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("examples/{relative}: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every container spec under `value`, wherever the workload kind nests it.
fn containers(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                if key.as_str() == Some("containers") {
                    out.extend(child.as_sequence().unwrap().iter().cloned());
                } else {
                    containers(child, out);
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| containers(i, out)),
        _ => {}
    }
}

fn find_key<'a>(value: &'a Value, wanted: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                if key.as_str() == Some(wanted) {
                    out.push(child);
                }
                find_key(child, wanted, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| find_key(i, wanted, out)),
        _ => {}
    }
}

/// `NAME=value` words before the program, then the program's words.
fn split_shell(command: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut words = command.split_whitespace().peekable();
    let mut assignments = Vec::new();
    while let Some((name, value)) = words.peek().and_then(|w| w.split_once('=')) {
        if !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            break;
        }
        assignments.push((name.to_owned(), value.to_owned()));
        words.next();
    }
    (assignments, words.map(str::to_owned).collect())
}

/// `Key=Value` lines of a systemd unit or an environment file, in order.
fn key_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not Key=Value: {l}"));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

#[test]
fn every_example_uses_only_what_the_binary_has() {
    let schema = Schema::new();
    let mut tenant_keys = BTreeSet::new();
    let mut configs = BTreeSet::new();

    // Tenant files: the shippers' one, and the one inlined in the Kubernetes ConfigMap.
    tenant_keys.extend(check_tenant_file(
        "shippers/stdout-tenant.toml",
        &read("shippers/stdout-tenant.toml"),
    ));
    configs.insert("stdout-tenant.toml".to_owned());
    for doc in yaml_documents("kubernetes/serve.yaml") {
        if doc["kind"].as_str() == Some("ConfigMap") {
            for (name, text) in doc["data"].as_mapping().unwrap() {
                let name = name.as_str().unwrap();
                tenant_keys.extend(check_tenant_file(name, text.as_str().unwrap()));
                configs.insert(name.to_owned());
            }
        }
    }

    // Kubernetes and Cloud Run: every container's command line and variables.
    let mut workloads = 0;
    for example in [
        "kubernetes/cronjob.yaml",
        "kubernetes/serve.yaml",
        "kubernetes/indexed-job.yaml",
        "kubernetes/statefulset.yaml",
        "cloud-run/job.yaml",
        "cloud-run/serve-job.yaml",
    ] {
        for doc in yaml_documents(example) {
            let mut found = Vec::new();
            containers(&doc, &mut found);
            for container in found {
                workloads += 1;
                let mut argv = strings(&container["command"]);
                if argv.is_empty() {
                    argv.push("harness-audit".into()); // the image's entrypoint (docker/Dockerfile)
                }
                argv.extend(strings(&container["args"]));
                schema.check_invocation(example, &argv);
                check_config_reference(example, &argv, &configs);
                for var in container["env"].as_sequence().into_iter().flatten() {
                    schema.check_variable(example, var["name"].as_str().unwrap(), &tenant_keys);
                }
                let mut accounts = Vec::new();
                find_key(&doc, "serviceAccountName", &mut accounts);
                assert!(
                    !accounts.is_empty(),
                    "{example}: a workload without a service account"
                );
            }
        }
    }
    assert_eq!(
        workloads, 6,
        "one container each in the CronJob, the Deployment, the Indexed Job, the StatefulSet and the two jobs"
    );
    let identity = read("kubernetes/service-account.yaml");
    assert!(identity.contains("roles/storage.objectUser"));
    assert!(read("cloud-run/job.yaml").contains("roles/storage.objectUser"));
    for doc in yaml_documents("kubernetes/service-account.yaml") {
        assert!(
            doc["kind"].as_str().is_some(),
            "service-account.yaml: a document without a kind"
        );
    }

    // Vector: exec sources in streaming mode.
    let vector = &yaml_documents("vector/vector.yaml")[0];
    let source = &vector["sources"]["harness_audit"];
    assert_eq!(source["type"].as_str(), Some("exec"));
    assert_eq!(source["mode"].as_str(), Some("streaming"));
    assert_eq!(
        source["include_stderr"].as_bool(),
        Some(false),
        "stderr carries logs"
    );
    let argv = strings(&source["command"]);
    schema.check_invocation("vector/vector.yaml", &argv);
    check_config_reference("vector/vector.yaml", &argv, &configs);

    // Redpanda Connect: the subprocess input.
    let connect = &yaml_documents("redpanda-connect/connect.yaml")[0];
    let input = &connect["input"]["subprocess"];
    let mut argv = vec![input["name"].as_str().unwrap().to_owned()];
    argv.extend(strings(&input["args"]));
    schema.check_invocation("redpanda-connect/connect.yaml", &argv);
    check_config_reference("redpanda-connect/connect.yaml", &argv, &configs);
    assert_eq!(input["codec"].as_str(), Some("lines"));

    // Fluent Bit: the exec input's shell command, variables first.
    let fluent = read("fluent-bit/fluent-bit.conf");
    let command = fluent
        .lines()
        .find_map(|l| l.trim().strip_prefix("Command"))
        .expect("fluent-bit.conf has an exec Command");
    let (assignments, argv) = split_shell(command);
    schema.check_invocation("fluent-bit/fluent-bit.conf", &argv);
    for (name, _) in &assignments {
        schema.check_variable("fluent-bit/fluent-bit.conf", name, &tenant_keys);
    }
    assert!(
        assignments
            .iter()
            .any(|(n, v)| n == "SINK" && v == "stdout")
    );
    let parser = fluent
        .lines()
        .find_map(|l| l.trim().strip_prefix("Parser "))
        .unwrap()
        .trim();
    assert!(read("fluent-bit/parsers.conf").contains(&format!("Name    {parser}")));

    // systemd: the service's command line and every variable it sets or loads.
    let service = key_values(&read("systemd/harness-audit.service"));
    let exec: Vec<String> = service
        .iter()
        .find(|(k, _)| k == "ExecStart")
        .unwrap()
        .1
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    schema.check_invocation("systemd/harness-audit.service", &exec);
    for (key, value) in &service {
        if key == "Environment" {
            let name = value.split_once('=').unwrap().0;
            schema.check_variable("systemd/harness-audit.service", name, &tenant_keys);
        }
        if key == "EnvironmentFile" {
            let file = Path::new(value).file_name().unwrap().to_str().unwrap();
            for (name, _) in key_values(&read(&format!("systemd/{file}"))) {
                schema.check_variable(&format!("systemd/{file}"), &name, &tenant_keys);
            }
        }
    }

    // Docker: ENV names, and ENTRYPOINT + CMD as one command line.
    let dockerfile = read("docker/Dockerfile").replace("\\\n", " ");
    let mut argv = Vec::new();
    for line in dockerfile.lines().map(str::trim) {
        if let Some(vars) = line.strip_prefix("ENV ") {
            for assignment in vars.split_whitespace() {
                let name = assignment.split_once('=').unwrap().0;
                schema.check_variable("docker/Dockerfile", name, &tenant_keys);
            }
        }
        for instruction in ["ENTRYPOINT ", "CMD "] {
            if let Some(json) = line.strip_prefix(instruction) {
                let words: Vec<String> = serde_json::from_str(json).unwrap();
                argv.extend(words);
            }
        }
    }
    schema.check_invocation("docker/Dockerfile", &argv);
    assert!(dockerfile.contains("cargo install --locked --path host"));
}

#[test]
fn systemd_analyze_accepts_the_units() {
    let dir = tempfile::tempdir().unwrap();
    for unit in ["harness-audit.service", "harness-audit.timer"] {
        // verify checks that ExecStart's program exists: point it at the built binary.
        let text = read(&format!("systemd/{unit}")).replace("/usr/local/bin/harness-audit", BINARY);
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("harness-audit.service"))
        .arg(dir.path().join("harness-audit.timer"))
        .output()
        .expect("systemd-analyze is missing: install the systemd package");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify: {stderr}");
    let own: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("harness-audit"))
        .collect();
    assert!(
        own.is_empty(),
        "systemd-analyze verify warns about the units: {own:?}"
    );
}

/// Every example is shown by the book or the README: linked, or included in
/// a page (as the deployments page includes the files it shows).
#[test]
fn the_book_shows_every_example() {
    let mut shown = std::collections::BTreeSet::new();
    for page in crate::book::pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let included = text.lines().filter_map(|l| {
            l.trim()
                .strip_prefix("{{#include ")
                .and_then(|l| l.strip_suffix("}}"))
                .map(str::to_owned)
        });
        for target in crate::book::links(&text).into_iter().chain(included) {
            let path = target.split('#').next().unwrap_or_default();
            if let Ok(file) = crate::book::resolve(&page, path).canonicalize() {
                shown.insert(file);
            }
        }
    }
    let root = examples().canonicalize().unwrap();
    let mut missing = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            if path.is_dir() {
                if !matches!(name, "node_modules" | "generated") {
                    stack.push(path);
                }
                continue;
            }
            // Parts of a linked example rather than examples of their own.
            if matches!(
                name,
                "package.json"
                    | "package-lock.json"
                    | ".gitignore"
                    | "forwarder.mjs"
                    | "parsers.conf"
            ) {
                continue;
            }
            if !shown.contains(&path.canonicalize().unwrap()) {
                missing.push(path.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    assert!(missing.is_empty(), "the book shows none of {missing:?}");
}

/// The one container of a workload document, and its variables with literal values.
fn container_of(doc: &Value) -> (Vec<String>, BTreeMap<String, String>) {
    let mut found = Vec::new();
    containers(doc, &mut found);
    assert_eq!(found.len(), 1);
    let vars = found[0]["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            Some((
                v["name"].as_str()?.to_owned(),
                v["value"].as_str()?.to_owned(),
            ))
        })
        .collect();
    (strings(&found[0]["args"]), vars)
}

fn number(value: &Value, what: &str) -> u32 {
    u32::try_from(
        value
            .as_u64()
            .unwrap_or_else(|| panic!("{what} is not a number")),
    )
    .unwrap()
}

/// Each sharded example, replica by replica: the variables its engine sets
/// resolve to a shard, the shards differ, and together they serve every
/// tenant once. Jobs run `--once`; the StatefulSet stays up.
#[test]
fn sharded_examples_give_every_replica_its_shard() {
    use harness_audit::commands::serve::{ShardSpec, resolve_shard};

    let cloud_run = &yaml_documents("cloud-run/serve-job.yaml")[0];
    let tasks = number(
        &cloud_run["spec"]["template"]["spec"]["taskCount"],
        "taskCount",
    );
    let indexed = &yaml_documents("kubernetes/indexed-job.yaml")[0];
    let job = &indexed["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["completionMode"].as_str(), Some("Indexed"));
    let completions = number(&job["completions"], "completions");
    let stateful = &yaml_documents("kubernetes/statefulset.yaml")[0];
    let replicas = number(&stateful["spec"]["replicas"], "replicas");
    let pod = stateful["metadata"]["name"].as_str().unwrap().to_owned();

    type Engine = Box<dyn Fn(u32) -> BTreeMap<String, String>>;
    let cases: Vec<(&str, &Value, u32, bool, Engine)> = vec![
        (
            "cloud-run/serve-job.yaml",
            cloud_run,
            tasks,
            true,
            Box::new(move |i| {
                BTreeMap::from([
                    ("CLOUD_RUN_TASK_INDEX".to_owned(), i.to_string()),
                    ("CLOUD_RUN_TASK_COUNT".to_owned(), tasks.to_string()),
                ])
            }),
        ),
        (
            "kubernetes/indexed-job.yaml",
            indexed,
            completions,
            true,
            Box::new(|i| {
                BTreeMap::from([
                    ("JOB_COMPLETION_INDEX".to_owned(), i.to_string()),
                    (
                        "HOSTNAME".to_owned(),
                        format!("harness-audit-shards-{i}-x7k2p"),
                    ),
                ])
            }),
        ),
        (
            "kubernetes/statefulset.yaml",
            stateful,
            replicas,
            false,
            Box::new(move |i| BTreeMap::from([("HOSTNAME".to_owned(), format!("{pod}-{i}"))])),
        ),
    ];
    let tenants: Vec<String> = (0..200).map(|i| format!("tenant-{i}")).collect();
    for (example, doc, count, job, engine) in cases {
        assert!(count >= 2, "{example}: one replica needs no shard");
        let (args, vars) = container_of(doc);
        let shard_flag = args
            .iter()
            .position(|a| a == "--shard")
            .map(|i| args[i + 1].as_str());
        assert_eq!(shard_flag, Some("auto"), "{example}");
        assert_eq!(args.iter().any(|a| a == "--once"), job, "{example}: --once");
        let shard_count = vars.get("SHARD_COUNT").map(|c| c.parse::<u32>().unwrap());
        let mut served = BTreeMap::<&str, u32>::new();
        for i in 0..count {
            let mut env = engine(i);
            env.extend(vars.clone());
            let resolved =
                resolve_shard(ShardSpec::Auto, shard_count, |name| env.get(name).cloned())
                    .unwrap_or_else(|e| panic!("{example}, replica {i}: {e}"));
            assert_eq!(
                (resolved.shard.index, resolved.shard.count),
                (i, count),
                "{example}"
            );
            for tenant in tenants.iter().filter(|t| resolved.shard.serves(t)) {
                *served.entry(tenant).or_default() += 1;
            }
        }
        assert!(
            tenants.iter().all(|t| served.get(t.as_str()) == Some(&1)),
            "{example}: every tenant served exactly once"
        );
    }
}
