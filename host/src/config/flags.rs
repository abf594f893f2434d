//! The settings as flags of `run`, `backfill`, `check` and `ledger`, built
//! from the settings table so that the help shows each one's variable,
//! accepted values and real default.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use harness_audit_settings::{self as table, Kind, Setting};

use super::{Origin, RawConfig};

/// The settings given as flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingFlags(Vec<(&'static Setting, String)>);

impl SettingFlags {
    /// The layer these flags make: it wins over the environment and the file.
    pub fn layer(&self) -> RawConfig {
        let mut raw = RawConfig::default();
        for (setting, value) in &self.0 {
            raw.set(setting, value.clone(), Origin::Flag(setting.flag));
        }
        raw
    }
}

fn flags() -> impl Iterator<Item = &'static Setting> {
    table::ALL.into_iter().filter(|s| !s.secret)
}

fn arg(setting: &'static Setting) -> Arg {
    let tail = format!(
        "[env: {}] [default: {}]",
        setting.env,
        setting.default_text()
    );
    let arg = Arg::new(setting.key)
        .long(setting.flag)
        .value_name(setting.value_name())
        .help(format!("{} {tail}", setting.summary()))
        .long_help(format!(
            "{}\nAccepts: {}. {tail}",
            setting.doc,
            table::accepts(&setting.kind).replace('`', "")
        ))
        .action(ArgAction::Set);
    match setting.kind {
        // `--gzip` alone means true, as a switch would.
        Kind::Bool { .. } => arg.num_args(0..=1).default_missing_value("true"),
        _ => arg,
    }
}

impl FromArgMatches for SettingFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for setting in flags() {
            if let Some(value) = matches.get_one::<String>(setting.key) {
                self.0.retain(|(s, _)| s.key != setting.key);
                self.0.push((setting, value.clone()));
            }
        }
        Ok(())
    }
}

impl Args for SettingFlags {
    fn augment_args(cmd: Command) -> Command {
        // After the command's own flags and the global ones, in table order.
        cmd.args(
            flags()
                .zip(100..)
                .map(|(setting, order)| arg(setting).display_order(order)),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
