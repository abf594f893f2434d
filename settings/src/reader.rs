//! The one reader of settings, for the host and the composition runners
//! alike: the environment (empty counts as unset), TOML files and flags, in
//! layers, each value keeping where it came from so that an error names the
//! exact variable, key or flag to fix. One case rule for every reader:
//! variable names and TOML keys are exact; choices and booleans are matched
//! without regard to case ([`Setting::choice`], [`boolean`]).
//!
//! Reading only parses; the core's `Settings::read` and the host validate
//! what they read, each setting once.

use std::collections::BTreeMap;
use std::fmt;
#[cfg(feature = "toml")]
use std::path::Path;
use std::path::PathBuf;

#[cfg(feature = "toml")]
use crate::Section;
use crate::{self as table, Kind, Setting, boolean};

/// Where a setting came from, so an error can name the exact thing to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
    /// A key in the TOML file.
    File(String),
    /// The built-in default of the setting read from this variable.
    Default(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::Flag(name) => write!(f, "flag --{name}"),
            Self::File(key) => write!(f, "config file key {key}"),
            Self::Default(name) => write!(f, "the default of {name}"),
        }
    }
}

/// A configuration error; every message names the setting, what is wrong and what is accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting has an unusable value.
    #[error("{origin}: {message}")]
    Invalid {
        /// Where the value came from.
        origin: Origin,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// A required setting is absent.
    #[error("{what} is not set: {hint}")]
    Missing {
        /// The setting.
        what: &'static str,
        /// How to set it.
        hint: &'static str,
    },
    /// The TOML file cannot be read or parsed.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The reader's or parser's message.
        message: String,
    },
}

/// A raw value with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value as given.
    pub value: T,
    /// Where it came from.
    pub origin: Origin,
}

/// A value as given: one text, or a list (comma-separated in the
/// environment and flags, an array in TOML).
#[derive(Clone, PartialEq, Eq)]
enum RawValue {
    One(String),
    Many(Vec<String>),
}

/// Settings as given, before validation. Every layer (file, env, flags) fills one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawConfig {
    values: BTreeMap<&'static str, Sourced<RawValue>>,
}

impl fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, sourced) in &self.values {
            let secret = table::by_key(key).is_some_and(|s| s.secret);
            match &sourced.value {
                _ if secret => map.entry(key, &"<redacted>"),
                RawValue::One(v) => map.entry(key, v),
                RawValue::Many(v) => map.entry(key, v),
            };
        }
        map.finish()
    }
}

impl RawConfig {
    /// Reads the recipe's environment variables through `lookup`. Empty
    /// values count as unset, as in the recipe.
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut raw = Self::default();
        for setting in table::ALL {
            if let Some(value) = lookup(setting.env).filter(|v| !v.trim().is_empty()) {
                raw.set(setting, value, Origin::Env(setting.env));
            }
        }
        raw
    }

    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Sets `setting` from text: a list setting splits it at commas.
    pub fn set(&mut self, setting: &'static Setting, value: String, origin: Origin) {
        let value = match setting.kind {
            Kind::List => RawValue::Many(table::list(&value)),
            _ => RawValue::One(value),
        };
        self.values.insert(setting.key, Sourced { value, origin });
    }

    #[cfg(feature = "toml")]
    /// Sets `setting` from a TOML value, which must have the setting's type.
    pub fn set_toml(
        &mut self,
        setting: &'static Setting,
        value: &toml::Value,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        let value = match (&setting.kind, value) {
            (Kind::Number { .. }, toml::Value::Integer(n)) => RawValue::One(n.to_string()),
            (Kind::Bool { .. }, toml::Value::Boolean(b)) => RawValue::One(b.to_string()),
            (Kind::Choice { .. } | Kind::Text { .. }, toml::Value::String(s)) => {
                RawValue::One(s.clone())
            }
            (Kind::List, toml::Value::Array(items)) => RawValue::Many(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or_else(|| ConfigError::Invalid {
                        origin: origin.clone(),
                        message: "must be an array of strings, e.g. [\"CD\", \"PMS\"]".into(),
                    })?,
            ),
            (kind, other) => {
                return Err(ConfigError::Invalid {
                    origin,
                    message: format!("must be {}, not a {}", toml_type(kind), other.type_str()),
                });
            }
        };
        self.values.insert(setting.key, Sourced { value, origin });
        Ok(())
    }

    #[cfg(feature = "toml")]
    /// Reads a TOML file (`[harness]`, `[filters]`, `[output]`, `[limits]` tables).
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::File { message, .. } => ConfigError::File {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    #[cfg(feature = "toml")]
    /// Parses TOML text. A syntax error is a [`ConfigError::File`] with an
    /// empty path, which [`RawConfig::from_toml_file`] fills in.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: toml::Table = toml::from_str(text).map_err(|e| ConfigError::File {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let mut raw = Self::default();
        for (name, section) in &file {
            let known = Section::ALL.into_iter().find(|s| s.name() == name);
            let (Some(known), toml::Value::Table(section)) = (known, section) else {
                return Err(ConfigError::Invalid {
                    origin: Origin::File(name.clone()),
                    message: "is not a section: a config file has only [harness], [filters], [output] and [limits] tables"
                        .into(),
                });
            };
            for (key, value) in section {
                let origin = Origin::File(format!("{name}.{key}"));
                let setting = table::ALL
                    .into_iter()
                    .find(|s| s.key == key && s.section == known);
                match setting {
                    Some(s) if s.secret => {
                        return Err(ConfigError::Invalid {
                            origin,
                            message: format!(
                                "is not accepted in a config file, which tends to be committed and copied: \
                                 set {}, or `{}` to a file holding the key",
                                s.env,
                                table::API_KEY_FILE.key
                            ),
                        });
                    }
                    Some(s) => raw.set_toml(s, value, origin)?,
                    None => {
                        let message = match table::by_key(key) {
                            Some(s) => format!("belongs in [{}], not [{name}]", s.section.name()),
                            None => format!("is not a setting; [{name}] takes {}", keys_of(known)),
                        };
                        return Err(ConfigError::Invalid { origin, message });
                    }
                }
            }
        }
        Ok(raw)
    }

    /// This layer, with gaps filled from `lower`.
    pub fn over(mut self, lower: Self) -> Self {
        for (key, value) in lower.values {
            self.values.entry(key).or_insert(value);
        }
        self
    }

    pub fn take(&mut self, setting: &Setting) -> Option<Sourced<String>> {
        self.values.remove(setting.key).map(|s| Sourced {
            value: match s.value {
                RawValue::One(v) => v,
                RawValue::Many(v) => v.join(","),
            },
            origin: s.origin,
        })
    }

    pub fn take_list(&mut self, setting: &Setting) -> Option<Sourced<Vec<String>>> {
        self.values.remove(setting.key).map(|s| Sourced {
            value: match s.value {
                RawValue::One(v) => vec![v],
                RawValue::Many(v) => v,
            },
            origin: s.origin,
        })
    }

    /// The whole number given for `setting`, or its default. Only the text is
    /// checked here: the range is checked once, by whoever uses the value
    /// (the core's `Settings::read` for the source's settings, [`Self::bounded`]
    /// for the host's).
    pub fn number(&mut self, setting: &Setting) -> Result<u32, ConfigError> {
        let Kind::Number { default, .. } = &setting.kind else {
            unreachable!("{} is not a number", setting.env)
        };
        let Some(raw) = self.take(setting) else {
            return Ok(*default);
        };
        raw.value
            .trim()
            .parse::<u32>()
            .map_err(|_| not_in_range(setting, &raw))
    }

    /// A number the host alone reads, checked against its declared range.
    pub fn bounded(&mut self, setting: &Setting) -> Result<u32, ConfigError> {
        let given = self.peek(setting);
        let n = self.number(setting)?;
        match (&setting.kind, given) {
            (Kind::Number { range, .. }, Some(raw)) if !range.contains(&n) => {
                Err(not_in_range(setting, &raw))
            }
            _ => Ok(n),
        }
    }

    /// The text given for `setting` and where it came from, left in place.
    pub fn peek(&self, setting: &Setting) -> Option<Sourced<String>> {
        self.values.get(setting.key).map(|s| Sourced {
            value: match &s.value {
                RawValue::One(v) => v.clone(),
                RawValue::Many(v) => v.join(","),
            },
            origin: s.origin.clone(),
        })
    }

    /// Where the value of `setting` comes from: its layer, or its default.
    pub fn origin(&self, setting: &Setting) -> Origin {
        self.values
            .get(setting.key)
            .map_or(Origin::Default(setting.env), |s| s.origin.clone())
    }

    pub fn boolean(&mut self, setting: &Setting) -> Result<bool, ConfigError> {
        let Kind::Bool { default } = setting.kind else {
            unreachable!("{} is not a boolean", setting.env)
        };
        let Some(raw) = self.take(setting) else {
            return Ok(default);
        };
        boolean(&raw.value).ok_or_else(|| invalid(&raw, "must be `true` or `false`"))
    }

    /// The chosen value in its canonical spelling, or the default.
    pub fn choice(&mut self, setting: &Setting) -> Result<Option<&'static str>, ConfigError> {
        let Kind::Choice { default, .. } = setting.kind else {
            unreachable!("{} is not a choice", setting.env)
        };
        let Some(raw) = self.take(setting) else {
            return Ok(default);
        };
        match setting.choice(&raw.value) {
            Some(c) => Ok(Some(c)),
            None => Err(invalid(
                &raw,
                &format!(
                    "`{}` is not one of {}",
                    raw.value.trim(),
                    table::accepts(&setting.kind)
                ),
            )),
        }
    }

    /// The text, or the default.
    pub fn text(&mut self, setting: &Setting) -> Option<Sourced<String>> {
        let Kind::Text { default } = setting.kind else {
            unreachable!("{} is not text", setting.env)
        };
        self.take(setting).or_else(|| {
            default.map(|d| Sourced {
                value: d.to_owned(),
                origin: Origin::Default(setting.env),
            })
        })
    }
}

#[cfg(feature = "toml")]
/// The TOML type a setting's kind takes, for errors.
fn toml_type(kind: &Kind) -> &'static str {
    match kind {
        Kind::Number { .. } => "a whole number",
        Kind::Bool { .. } => "`true` or `false`",
        Kind::Choice { .. } | Kind::Text { .. } => "a string",
        Kind::List => "an array of strings",
    }
}

#[cfg(feature = "toml")]
/// The keys a section takes, for errors.
fn keys_of(section: Section) -> String {
    table::ALL
        .into_iter()
        .filter(|s| s.section == section && !s.secret)
        .map(|s| s.key)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn invalid<T>(s: &Sourced<T>, message: &str) -> ConfigError {
    ConfigError::Invalid {
        origin: s.origin.clone(),
        message: message.to_owned(),
    }
}

/// `raw` is not a whole number in the range `setting` declares.
pub fn not_in_range(setting: &Setting, raw: &Sourced<String>) -> ConfigError {
    let Kind::Number { range, .. } = &setting.kind else {
        unreachable!("{} is not a number", setting.env)
    };
    invalid(
        raw,
        &format!(
            "`{}` is not a whole number from {} to {}",
            raw.value,
            range.start(),
            range.end()
        ),
    )
}
