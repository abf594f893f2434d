//! Which tenants a replica serves: `--shard I/N`, or `--shard auto`, which
//! takes the replica's index from the engine that runs the replicas, so one
//! manifest serves for all of them.

use std::str::FromStr;

/// One replica's share: the tenants whose id hashes to `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This replica, from 0.
    pub index: u32,
    /// Replicas in all.
    pub count: u32,
}

impl Shard {
    /// Whether tenant `id` belongs to this shard. The hash (FNV-1a) is
    /// stable, so every replica assigns every tenant the same shard.
    pub fn serves(&self, id: &str) -> bool {
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        hash % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What `--shard` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// `I/N`.
    Fixed(Shard),
    /// `auto`: from the engine's replica index.
    Auto,
}

/// Why a shard could not be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// `--shard` is neither `I/N` nor `auto`.
    #[error("`{text}` is not a shard: use I/N with 0 <= I < N (e.g. 0/3), or `auto`")]
    Syntax {
        /// What was given.
        text: String,
    },
    /// No engine's index variable is set.
    #[error(
        "--shard auto found no replica index. It reads CLOUD_RUN_TASK_INDEX and CLOUD_RUN_TASK_COUNT \
         (Cloud Run jobs), JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) or a HOSTNAME ending in \
         -<ordinal> (StatefulSet pods), the last two with --shard-count (SHARD_COUNT); or give --shard I/N"
    )]
    NoIndex,
    /// A variable that must hold a number does not.
    #[error("--shard auto: {variable} is `{value}`, not a whole number")]
    NotNumber {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// The index is not below the count.
    #[error(
        "--shard auto: {index_from} gives index {index}, but {count_from} gives {count} replicas; the \
         index must be below the count"
    )]
    OutOfRange {
        /// Where the index came from.
        index_from: &'static str,
        /// The index.
        index: u32,
        /// Where the count came from.
        count_from: &'static str,
        /// The count.
        count: u32,
    },
    /// The engine gives an index but not the count.
    #[error(
        "--shard auto: {index_from} gives this replica's index, but the number of replicas is not set: \
         give --shard-count (SHARD_COUNT), equal to the Job's completions or the StatefulSet's replicas"
    )]
    NoCount {
        /// Where the index came from.
        index_from: &'static str,
    },
}

impl FromStr for ShardSpec {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, ShardError> {
        if text.trim() == "auto" {
            return Ok(Self::Auto);
        }
        let parsed = text.split_once('/').and_then(|(i, n)| {
            Some((i.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?))
        });
        match parsed {
            Some((index, count)) if count > 0 && index < count => {
                Ok(Self::Fixed(Shard { index, count }))
            }
            _ => Err(ShardError::Syntax {
                text: text.to_owned(),
            }),
        }
    }
}

/// Where `--shard auto` found the replica's shard, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The shard.
    pub shard: Shard,
    /// The variables it came from.
    pub from: &'static str,
}

const SHARD_COUNT: &str = "--shard-count (SHARD_COUNT)";

/// This replica's shard. `count` is `--shard-count`; `env` reads the
/// process environment. Cloud Run gives both index and count; a Kubernetes
/// Indexed Job gives `JOB_COMPLETION_INDEX`; a StatefulSet pod's name (its
/// `HOSTNAME`) ends in its ordinal.
pub fn resolve(
    spec: ShardSpec,
    count: Option<u32>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Resolved, ShardError> {
    let number = |variable: &'static str, value: &str| {
        value
            .trim()
            .parse::<u32>()
            .map_err(|_| ShardError::NotNumber {
                variable,
                value: value.to_owned(),
            })
    };
    let checked = |index_from, index, count_from, count: u32| {
        if index < count {
            Ok(Resolved {
                shard: Shard { index, count },
                from: index_from,
            })
        } else {
            Err(ShardError::OutOfRange {
                index_from,
                index,
                count_from,
                count,
            })
        }
    };
    if let ShardSpec::Fixed(shard) = spec {
        return Ok(Resolved {
            shard,
            from: "--shard",
        });
    }
    if let Some(index) = env("CLOUD_RUN_TASK_INDEX") {
        let index = number("CLOUD_RUN_TASK_INDEX", &index)?;
        let count = match env("CLOUD_RUN_TASK_COUNT") {
            Some(c) => number("CLOUD_RUN_TASK_COUNT", &c)?,
            None => {
                return Err(ShardError::NoCount {
                    index_from: "CLOUD_RUN_TASK_INDEX",
                });
            }
        };
        return checked("CLOUD_RUN_TASK_INDEX", index, "CLOUD_RUN_TASK_COUNT", count);
    }
    let (index_from, index) = if let Some(index) = env("JOB_COMPLETION_INDEX") {
        (
            "JOB_COMPLETION_INDEX",
            number("JOB_COMPLETION_INDEX", &index)?,
        )
    } else if let Some(ordinal) = env("HOSTNAME")
        .as_deref()
        .and_then(|h| h.rsplit_once('-'))
        .and_then(|(_, ordinal)| ordinal.parse::<u32>().ok())
    {
        ("the StatefulSet ordinal in HOSTNAME", ordinal)
    } else {
        return Err(ShardError::NoIndex);
    };
    match count {
        Some(count) => checked(index_from, index, SHARD_COUNT, count),
        None => Err(ShardError::NoCount { index_from }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn auto(vars: &[(&str, &str)], count: Option<u32>) -> Result<(u32, u32, &'static str), String> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve(ShardSpec::Auto, count, |name| vars.get(name).cloned())
            .map(|r| (r.shard.index, r.shard.count, r.from))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn each_engine_s_index_and_count_are_read() {
        assert_eq!(
            auto(
                &[
                    ("CLOUD_RUN_TASK_INDEX", "2"),
                    ("CLOUD_RUN_TASK_COUNT", "3"),
                    ("HOSTNAME", "x-7")
                ],
                None
            ),
            Ok((2, 3, "CLOUD_RUN_TASK_INDEX"))
        );
        assert_eq!(
            auto(
                &[
                    ("JOB_COMPLETION_INDEX", "0"),
                    ("HOSTNAME", "collect-0-abcde")
                ],
                Some(4)
            ),
            Ok((0, 4, "JOB_COMPLETION_INDEX"))
        );
        assert_eq!(
            auto(&[("HOSTNAME", "harness-audit-11")], Some(12)),
            Ok((11, 12, "the StatefulSet ordinal in HOSTNAME"))
        );
    }

    #[test]
    fn each_way_to_get_it_wrong_is_named() {
        for (vars, count, message) in [
            (
                vec![("HOSTNAME", "laptop")],
                Some(3),
                "found no replica index",
            ),
            (
                vec![],
                None,
                "CLOUD_RUN_TASK_INDEX and CLOUD_RUN_TASK_COUNT (Cloud Run jobs)",
            ),
            (
                vec![("CLOUD_RUN_TASK_INDEX", "1")],
                None,
                "CLOUD_RUN_TASK_INDEX gives this replica's index, but the number of replicas is not set",
            ),
            (
                vec![("CLOUD_RUN_TASK_INDEX", "3"), ("CLOUD_RUN_TASK_COUNT", "3")],
                None,
                "CLOUD_RUN_TASK_INDEX gives index 3, but CLOUD_RUN_TASK_COUNT gives 3 replicas",
            ),
            (
                vec![("JOB_COMPLETION_INDEX", "one")],
                Some(3),
                "JOB_COMPLETION_INDEX is `one`, not a whole number",
            ),
            (
                vec![("JOB_COMPLETION_INDEX", "1")],
                None,
                "give --shard-count (SHARD_COUNT), equal to the Job's completions",
            ),
            (
                vec![("HOSTNAME", "harness-audit-3")],
                Some(3),
                "the StatefulSet ordinal in HOSTNAME gives index 3, but --shard-count (SHARD_COUNT) gives 3",
            ),
        ] {
            let err = auto(&vars, count).unwrap_err();
            assert!(err.contains(message), "{vars:?}: {err}");
        }
    }

    #[test]
    fn the_flag_takes_i_of_n_or_auto() {
        assert_eq!("auto".parse(), Ok(ShardSpec::Auto));
        assert_eq!(
            " 1/3".parse(),
            Ok(ShardSpec::Fixed(Shard { index: 1, count: 3 }))
        );
        for bad in ["3/3", "0/0", "1", "a/b", "automatic"] {
            assert_eq!(
                bad.parse::<ShardSpec>(),
                Err(ShardError::Syntax { text: bad.into() })
            );
        }
    }

    #[test]
    fn shards_are_stable_and_cover_every_tenant_once() {
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        let mut counts = [0u32; 3];
        for i in 0..300 {
            let id = format!("tenant-{i}");
            let owners: Vec<&Shard> = shards.iter().filter(|s| s.serves(&id)).collect();
            assert_eq!(owners.len(), 1, "{id}");
            counts[owners[0].index as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 60), "{counts:?}");
        assert!(Shard { index: 0, count: 1 }.serves("payments"));
    }
}
