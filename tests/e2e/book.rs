//! The book in `docs/` and the README that leads to it: every relative link
//! and anchor resolves, every included file exists, every shell block of the
//! guide is run by CI or marked as needing a real account, and the README
//! stays an entrance.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use std::time::Duration;

use harness_audit::commands::metrics::Metrics;
use harness_audit::engine::{PassSummary, RunError};
use harness_audit::time::now_ms;

use crate::support::rust_files;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Every Markdown page of the book, and the README.
pub fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut stack = vec![root().join("docs/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

/// The page's text outside fenced code blocks and inline code.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut inline = false;
        for c in line.chars() {
            if c == '`' {
                inline = !inline;
            } else if !inline {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of `[text](target)` links.
pub fn links(text: &str) -> Vec<String> {
    let prose = prose(text);
    let mut targets = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        targets.push(after[..end].to_owned());
        rest = &after[end..];
    }
    targets
}

/// The ids mdBook gives a page's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        let Some(heading) = line.strip_prefix('#').filter(|_| !fenced) else {
            continue;
        };
        let heading = heading.trim_start_matches('#').trim();
        let id: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut unique = id.clone();
        let mut n = 1;
        while !ids.insert(unique.clone()) {
            unique = format!("{id}-{n}");
            n += 1;
        }
    }
    ids
}

/// A link or include from `page` to `target`, resolved in the repository.
pub fn resolve(page: &Path, target: &str) -> PathBuf {
    page.parent().unwrap().join(target)
}

/// Every relative link of the book and the README reaches a file of the
/// repository, and every `#anchor` a heading of its page.
#[test]
fn every_link_and_anchor_of_the_book_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                page.clone()
            } else {
                resolve(&page, path)
            };
            let name = page.strip_prefix(root()).unwrap().display().to_string();
            if !file.exists() {
                broken.push(format!("{name}: {target} (no such file)"));
                continue;
            }
            if !anchor.is_empty() {
                let linked = std::fs::read_to_string(&file).unwrap_or_default();
                if !anchors(&linked).contains(anchor) {
                    broken.push(format!("{name}: {target} (no such heading)"));
                }
            }
        }
        for line in text.lines() {
            if let Some(included) = line
                .trim()
                .strip_prefix("{{#include ")
                .and_then(|l| l.strip_suffix("}}"))
                && !resolve(&page, included).is_file()
            {
                broken.push(format!("{}: include {included}", page.display()));
            }
        }
    }
    assert!(checked > 100, "only {checked} links");
    assert!(broken.is_empty(), "{broken:#?}");
}

/// Every page the book's summary names exists, and every page exists in it.
#[test]
fn the_summary_names_every_page() {
    let src = root().join("docs/src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let named: BTreeSet<PathBuf> = links(&summary).iter().map(|l| src.join(l)).collect();
    for page in pages().into_iter().filter(|p| p.starts_with(&src)) {
        if page.ends_with("SUMMARY.md") {
            continue;
        }
        assert!(named.contains(&page), "SUMMARY.md lacks {}", page.display());
    }
}

/// Every `sh` block of the guide and of the README is one CI runs (each of
/// its commands is in `.ci/run` or `scripts/test.sh`), or is marked
/// `sh,needs-account`: it needs a real Harness account or cloud project.
#[test]
fn every_shell_block_is_run_by_ci_or_marked() {
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap()
        + &std::fs::read_to_string(root().join("scripts/test.sh")).unwrap();
    let mut unrun = Vec::new();
    let mut blocks = 0;
    let guide = root().join("docs/src/guide");
    for page in pages()
        .into_iter()
        .filter(|p| p.starts_with(&guide) || p.ends_with("README.md"))
    {
        let text = std::fs::read_to_string(&page).unwrap();
        let mut block: Option<Vec<&str>> = None;
        for line in text.lines() {
            let trimmed = line.trim_start();
            match (&mut block, trimmed.strip_prefix("```")) {
                (None, Some("sh" | "bash" | "console" | "shell")) => block = Some(Vec::new()),
                (Some(commands), Some("")) => {
                    blocks += 1;
                    for command in commands.iter() {
                        let command = command.split(" #").next().unwrap().trim();
                        if !command.is_empty() && !command.starts_with('#') && !ci.contains(command)
                        {
                            unrun.push(format!("{}: {command}", page.display()));
                        }
                    }
                    block = None;
                }
                (Some(commands), None) => commands.push(trimmed),
                _ => {}
            }
        }
    }
    assert!(blocks >= 2, "{blocks} blocks");
    assert!(
        unrun.is_empty(),
        "shell blocks CI does not run; run them in .ci/run, or mark them ```sh,needs-account: {unrun:#?}"
    );
}

/// The README is an entrance: at most about 200 lines, none over 200 characters.
#[test]
fn the_readme_is_an_entrance() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 200,
        "{} lines",
        readme.lines().count()
    );
    for (i, line) in readme.lines().enumerate() {
        assert!(
            line.chars().count() <= 200,
            "README.md line {} has {} characters",
            i + 1,
            line.chars().count()
        );
    }
}

/// The book documents only tests that exist: every `module::test_name` it
/// names is a test function of `tests/e2e` or of the crates.
#[test]
fn every_test_the_book_names_exists() {
    let mut functions = BTreeSet::new();
    for dir in ["tests", "host", "plugin", "settings", "fuzz"] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for line in text.lines() {
                let line = line.trim_start();
                if let Some(rest) = line
                    .strip_prefix("fn ")
                    .or_else(|| line.strip_prefix("async fn "))
                {
                    functions.insert(rest.split('(').next().unwrap().to_owned());
                }
            }
        }
    }
    let mut missing = BTreeSet::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for code in text.split('`').skip(1).step_by(2) {
            let Some((module, name)) = code.rsplit_once("::") else {
                continue;
            };
            let test_like = name.len() > 20
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                && module.chars().all(|c| {
                    c.is_ascii_lowercase() || c == '_' || c == ':' || c == '.' || c == '/'
                });
            if test_like && !functions.contains(name) {
                missing.insert(format!("{}: {code}", page.display()));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

/// The codes that begin the lines of `text` after `prefix`, each ending at
/// `end`.
fn codes_on(text: &str, prefix: &str, end: char) -> BTreeSet<u8> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| l.split(end).next()?.parse().ok())
        .collect()
}

/// Every code of the binary's one table (`host/src/bin/harness-audit/exit.rs`)
/// has a row in the reference, as 0 does, and a section in the runbook, and
/// the runbook names every `error_kind`.
#[test]
fn the_exit_code_pages_cover_the_binary_s_codes() {
    let table = std::fs::read_to_string(root().join("host/src/bin/harness-audit/exit.rs")).unwrap();
    let mut codes: BTreeSet<u8> = table
        .lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter_map(|l| l.split("= ").nth(1))
        .map(|v| v.trim_end_matches(';').parse().unwrap())
        .collect();
    assert!(codes.len() >= 10, "{codes:?}");
    let runbook = "operations/exit-codes.md";
    let text = std::fs::read_to_string(root().join("docs/src").join(runbook)).unwrap();
    assert_eq!(
        codes_on(&text, "## Exit ", ':'),
        codes,
        "{runbook}'s sections against exit.rs"
    );
    let unnamed: Vec<String> = crate::logging::error_kinds()
        .into_iter()
        .filter(|kind| !text.contains(&format!("`{kind}`")))
        .collect();
    assert!(
        unnamed.is_empty(),
        "{runbook} names no section for {unnamed:?}"
    );
    codes.insert(0);
    let reference = "reference/exit-codes.md";
    let text = std::fs::read_to_string(root().join("docs/src").join(reference)).unwrap();
    assert_eq!(
        codes_on(&text, "| ", ' '),
        codes,
        "{reference} against exit.rs"
    );
}

/// Checks that the block between `<!-- {marker}:begin -->` and
/// `<!-- {marker}:end -->` of the book's `page` is `generated`, from the code;
/// with `HARNESS_AUDIT_BLESS` set, rewrites it instead.
fn generated_block(page: &str, marker: &str, generated: &str) {
    let path = root().join("docs/src").join(page);
    let text = std::fs::read_to_string(&path).unwrap();
    let (start, end) = (
        format!("<!-- {marker}:begin -->\n"),
        format!("<!-- {marker}:end -->"),
    );
    let (before, rest) = text.split_once(&start).expect("the page marks the block");
    let (current, after) = rest.split_once(&end).expect("the page ends the block");
    if current == generated {
        return;
    }
    if std::env::var_os("HARNESS_AUDIT_BLESS").is_some() {
        std::fs::write(&path, format!("{before}{start}{generated}{end}{after}")).unwrap();
        return;
    }
    panic!(
        "docs/src/{page} differs from the code; rewrite it with \
         HARNESS_AUDIT_BLESS=1 cargo test -p harness-audit --test e2e -- book"
    );
}

/// The settings table of the configuration page is the one generated from
/// the declarations (`settings/src/rows.rs`).
#[test]
fn the_settings_table_matches_the_declarations() {
    generated_block(
        "reference/configuration.md",
        "settings",
        &harness_audit_settings::markdown_table(),
    );
}

/// The metrics page lists every family the registry exports, with its type,
/// labels and help: rendered from a registry in which each family has a series.
#[test]
fn the_metrics_page_lists_every_family() {
    let metrics = Metrics::default();
    metrics.register("t", Duration::from_secs(60));
    metrics.pass_started("t");
    metrics.pass_succeeded(
        "t",
        &PassSummary {
            watermark_ms: Some(now_ms()),
            ..PassSummary::default()
        },
    );
    metrics.pass_failed(
        "t",
        &RunError::limit("MAX_PASS_MIB", "over".into()),
        Duration::ZERO,
    );
    let text = metrics.render();
    let mut rows = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# HELP ") else {
            continue;
        };
        let (family, help) = rest.split_once(' ').unwrap();
        let kind = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# TYPE {family} ")))
            .unwrap();
        let labels: BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.starts_with(family))
            .filter_map(|l| l.split_once('{').map(|(_, rest)| rest))
            .flat_map(|l| l.split(',').filter_map(|pair| pair.split_once('=')))
            .map(|(name, _)| name.trim_start_matches('{'))
            .filter(|name| *name != "le")
            .collect();
        let name = match kind {
            "counter" => format!("{family}_total"),
            _ => family.to_owned(),
        };
        let labels = labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(format!(
            "| `{name}` | {kind} | {} | {} |",
            if labels.is_empty() { "–" } else { &labels },
            help.trim_end_matches('.').replace('|', "\\|")
        ));
    }
    assert!(rows.len() >= 20, "{text}");
    generated_block(
        "reference/metrics.md",
        "metrics",
        &format!(
            "| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n{}\n",
            rows.join("\n")
        ),
    );
}
