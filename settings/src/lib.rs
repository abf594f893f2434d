//! Every setting of `harness-audit` and of its command composition, declared once.
//!
//! One [`Setting`] per row: its TOML key and section, environment variable,
//! flag, type, default, range ([`defaults`], [`ranges`]) and documentation.
//! The one [`reader`] reads them from the environment, TOML files, flags and
//! `serve`'s tenants, for the host and the composition runners alike; the
//! host derives its `--help` from [`ALL`], the runners the variables they
//! read and refuse; the book's settings table is [`markdown_table`], and a
//! test fails when they differ. This crate depends on nothing of the
//! workspace: the core, the host and the runners depend on it.
//!
//! Adding a setting is one row in `settings!` plus one field where it is
//! read: for a setting of the host, a field of its configuration and the line
//! of the host's `validate_for` that reads it; for a setting the component
//! receives, a field of the core's `Settings`, its line in `Settings::read`
//! (and in `check_ranges` for a number), then the WIT record's field and the
//! one line of each conversion, which the compiler asks for.

use std::ops::RangeInclusive;

pub mod reader;
mod rows;
mod values;

pub use rows::*;
pub use values::{MAX_PAGE_SIZE, STATIC_FILTERS, defaults, ranges};

/// The TOML table a setting lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// `[harness]`: where and how to call Harness.
    Harness,
    /// `[filters]`: which events to request.
    Filters,
    /// `[output]`: where events and the checkpoint go.
    Output,
    /// `[limits]`: what the component may use.
    Limits,
}

impl Section {
    /// Every section, in file order.
    pub const ALL: [Self; 4] = [Self::Harness, Self::Filters, Self::Output, Self::Limits];

    /// The TOML table name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Harness => "harness",
            Self::Filters => "filters",
            Self::Output => "output",
            Self::Limits => "limits",
        }
    }
}

/// What a setting holds, with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A whole number in `range`.
    Number {
        /// Value when unset.
        default: u32,
        /// Accepted values, inclusive.
        range: RangeInclusive<u32>,
    },
    /// `true` or `false`.
    Bool {
        /// Value when unset.
        default: bool,
    },
    /// One of `choices` (matched without regard to case).
    Choice {
        /// The accepted spellings.
        choices: &'static [&'static str],
        /// Value when unset; none when unset means something else (see [`Setting::unset`]).
        default: Option<&'static str>,
    },
    /// Free text (a URL, an identifier, a path), checked by the reader.
    Text {
        /// Value when unset.
        default: Option<&'static str>,
    },
    /// A list: comma-separated in the environment and flags, an array in TOML.
    List,
}

/// One setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Key in its TOML section and in a `serve` tenant entry.
    pub key: &'static str,
    /// The TOML section.
    pub section: Section,
    /// Environment variable (the Cloud Run recipe's name where it has one).
    pub env: &'static str,
    /// Long flag of `run`, `backfill`, `check` and `ledger`, without the dashes.
    pub flag: &'static str,
    /// Type and default.
    pub kind: Kind,
    /// What holds when the setting is unset and has no default value.
    pub unset: &'static str,
    /// A secret: read from the environment only, never a flag (visible in
    /// `ps`) or a file key (files get committed).
    pub secret: bool,
    /// The command composition reads it; it refuses every other setting rather
    /// than ignore it.
    pub command: bool,
    /// What it does. The first sentence is the summary in `-h` and the
    /// command composition's usage; all of it is in `--help` and the book.
    pub doc: &'static str,
}

impl Setting {
    /// `section.key`, as a TOML file names it.
    pub fn file_key(&self) -> String {
        format!("{}.{}", self.section.name(), self.key)
    }

    /// The default value, if the setting has one.
    pub fn default_value(&self) -> Option<String> {
        match &self.kind {
            Kind::Number { default, .. } => Some(default.to_string()),
            Kind::Bool { default } => Some(default.to_string()),
            Kind::Choice { default, .. } | Kind::Text { default } => default.map(str::to_owned),
            Kind::List => None,
        }
    }

    /// The accepted values of a number.
    pub fn range(&self) -> Option<&RangeInclusive<u32>> {
        match &self.kind {
            Kind::Number { range, .. } => Some(range),
            _ => None,
        }
    }

    /// The default as the help shows it: the value, or what holds when unset.
    pub fn default_text(&self) -> String {
        self.default_value()
            .unwrap_or_else(|| self.unset.to_owned())
    }

    /// The first sentence of [`Setting::doc`].
    pub fn summary(&self) -> &'static str {
        self.doc
            .split_once(". ")
            .map_or(self.doc, |(first, _)| first)
            .trim_end_matches('.')
    }

    /// The choice `text` names, in its canonical spelling, matched without
    /// regard to case and surrounding spaces; `None` for another value or kind.
    pub fn choice(&self, text: &str) -> Option<&'static str> {
        match &self.kind {
            Kind::Choice { choices, .. } => choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(text.trim()))
                .copied(),
            _ => None,
        }
    }

    /// What the value looks like, for `--help`.
    pub fn value_name(&self) -> &'static str {
        match &self.kind {
            Kind::Number { .. } => "N",
            Kind::Bool { .. } => "BOOL",
            Kind::Choice { .. } => "CHOICE",
            Kind::Text { .. } => "TEXT",
            Kind::List => "LIST",
        }
    }
}

/// A boolean as every reader accepts it: `true`, `1`, `yes`, `false`, `0`
/// or `no`, in any case.
pub fn boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// The entries of a list given as text: split at commas, trimmed, empty ones dropped.
pub fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The setting a TOML file or tenant entry names by `key`.
pub fn by_key(key: &str) -> Option<&'static Setting> {
    ALL.into_iter().find(|s| s.key == key)
}

/// The book's settings table, in Markdown.
pub fn markdown_table() -> String {
    let mut text = String::from(
        "| Variable | Flag | TOML key | Default | Accepts | Meaning |\n|---|---|---|---|---|---|\n",
    );
    for s in ALL {
        let code = |v: &str| format!("`{v}`");
        let (flag, file) = if s.secret {
            ("–".to_owned(), "–".to_owned())
        } else {
            (code(&format!("--{}", s.flag)), code(&s.file_key()))
        };
        let default = s
            .default_value()
            .map_or_else(|| s.unset.to_owned(), |v| code(&v));
        text.push_str(&format!(
            "| `{}` | {flag} | {file} | {default} | {} | {} |\n",
            s.env,
            accepts(&s.kind),
            s.doc
        ));
    }
    text
}

/// What values a setting accepts, for the book.
pub fn accepts(kind: &Kind) -> String {
    match kind {
        Kind::Number { range, .. } => format!("{} to {}", range.start(), range.end()),
        Kind::Bool { .. } => "`true`, `false`".to_owned(),
        Kind::Choice { choices, .. } => choices
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", "),
        Kind::Text { .. } => "text".to_owned(),
        Kind::List => "comma-separated (TOML: array)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Keys, variables and flags identify one setting each.
    #[test]
    fn names_are_unique() {
        for name in [
            |s: &Setting| s.key.to_owned(),
            |s: &Setting| s.env.to_owned(),
            |s: &Setting| s.flag.to_owned(),
        ] {
            let names: Vec<String> = ALL.iter().filter(|s| !s.secret).map(|s| name(s)).collect();
            let unique: BTreeSet<&String> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "{names:?}");
        }
    }

    /// Only a secret has no flag, and a setting without a default says what holds when unset.
    #[test]
    fn every_row_is_complete() {
        for s in ALL {
            assert_eq!(s.flag.is_empty(), s.secret, "{}", s.env);
            assert!(!s.doc.is_empty() && s.doc.ends_with('.'), "{}", s.env);
            assert!(
                !s.default_text().is_empty(),
                "{}: unset says nothing",
                s.env
            );
            if let Kind::Number { default, range } = &s.kind {
                assert!(range.contains(default), "{}", s.env);
            }
        }
    }
}
