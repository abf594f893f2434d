//! The host logs with one vocabulary of fields, written down in
//! `docs/logging.md`: every field name a `tracing` event or span of the host
//! uses, and every `stage` and `error_kind` value, must be listed there.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::rust_files;

/// The top-level arguments of the macro call starting at `text` (after its `(`).
fn arguments(text: &str) -> Vec<String> {
    let (mut depth, mut in_string, mut escaped) = (0_i32, false, false);
    let mut args = vec![String::new()];
    for c in text.chars() {
        if in_string {
            escaped = !escaped && c == '\\';
            if c == '"' && !escaped {
                in_string = false;
            }
        } else {
            match c {
                '"' => in_string = true,
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' if depth == 0 => break,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    args.push(String::new());
                    continue;
                }
                _ => {}
            }
        }
        args.last_mut().unwrap().push(c);
    }
    args.into_iter().map(|a| a.trim().to_owned()).collect()
}

/// (field, literal value) pairs of every tracing call in the host.
fn fields() -> Vec<(String, Option<String>)> {
    let files = rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for macro_name in ["info!(", "warn!(", "error!(", "debug!(", "info_span!("] {
            for (at, _) in text.match_indices(&format!("tracing::{macro_name}")) {
                let rest = &text[at + "tracing::".len() + macro_name.len()..];
                for arg in arguments(rest) {
                    let arg = arg.trim_start_matches(['%', '?']);
                    let (name, value) = match arg.split_once('=') {
                        Some((name, value)) => (name.trim(), Some(value.trim())),
                        None => (arg, None),
                    };
                    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    {
                        continue;
                    }
                    let literal = value
                        .filter(|v| v.starts_with('"') && v.ends_with('"'))
                        .map(|v| v.trim_matches('"').to_owned());
                    found.push((name.to_owned(), literal));
                }
            }
        }
    }
    found
}

/// Every field, stage and error kind the host logs is documented.
#[test]
fn every_log_field_is_in_the_vocabulary() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/reference/log-fields.md"),
    )
    .unwrap();
    let fields = fields();
    assert!(fields.len() > 40, "only {} fields found", fields.len());
    let mut missing = BTreeSet::new();
    for (name, literal) in &fields {
        if !doc.contains(&format!("`{name}`")) {
            missing.insert(format!("field `{name}`"));
        }
        let documented_value = match literal {
            Some(value) if matches!(name.as_str(), "stage" | "error_kind") => {
                doc.contains(&format!("`{value}`"))
            }
            _ => true,
        };
        if !documented_value {
            missing.insert(format!(
                "{name} value `{}`",
                literal.as_deref().unwrap_or_default()
            ));
        }
    }
    for kind in error_kinds() {
        if !doc.contains(&format!("`{kind}`")) {
            missing.insert(format!("error_kind value `{kind}`"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/src/reference/log-fields.md lacks: {missing:?}"
    );
}

/// The `error_kind` of every failure a pass can end with.
pub fn error_kinds() -> Vec<String> {
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine/error.rs"))
            .unwrap();
    let kind = source.split("pub fn kind(&self)").nth(1).unwrap();
    let body = kind.split("\n    }\n").next().unwrap();
    body.split("=> \"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}
