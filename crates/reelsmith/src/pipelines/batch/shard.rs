//! Deterministic sharding: which process of an array takes which video.
//!
//! A video belongs to shard `h mod N`, where `h` is the first 8 bytes (big-endian) of the
//! SHA-256 of its id. The assignment depends on the id and `N` only, so appending videos to
//! a manifest never moves the others, and any tool can compute it (Python:
//! `int.from_bytes(hashlib.sha256(id.encode()).digest()[:8], "big") % N`).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::Error;

/// One shard of `count`: the videos whose [`shard_of`] is `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// 0-based index, below `count`.
    pub index: u64,
    /// Number of shards (at least 1).
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Self::ALL
    }
}

impl Shard {
    /// The whole collection in one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`, checked.
    pub fn new(index: u64, count: u64) -> Result<Self, Error> {
        if count == 0 || index >= count {
            return Err(Error::config(
                "shard",
                format!("{index}/{count}: the index must be below the count (0/4 to 3/4 for four shards)"),
            ));
        }
        Ok(Self { index, count })
    }

    /// Whether the video with this id belongs to this shard.
    pub fn contains(&self, id: &str) -> bool {
        shard_of(id, self.count) == self.index
    }

    /// The shard the scheduler's environment gives, if any:
    ///
    /// 1. `REELSMITH_SHARD=I/N`;
    /// 2. a Slurm job array: `SLURM_ARRAY_TASK_ID` among `SLURM_ARRAY_TASK_COUNT` tasks
    ///    (the index counted from `SLURM_ARRAY_TASK_MIN` in steps of
    ///    `SLURM_ARRAY_TASK_STEP`, so `--array=1-8` works like `--array=0-7`);
    /// 3. a Kubernetes Indexed Job: `JOB_COMPLETION_INDEX` among `REELSMITH_SHARD_COUNT`
    ///    (set it to the Job's `completions`; Kubernetes does not pass that number).
    pub fn from_env() -> Result<Option<Self>, Error> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Shard::from_env`] over any variable lookup.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, Error> {
        let num = |name: &str| -> Result<Option<u64>, Error> {
            match var(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| {
                    Error::config("shard", format!("{name}={v:?} is not a whole number"))
                }),
            }
        };
        if let Some(s) = var("REELSMITH_SHARD").filter(|s| !s.trim().is_empty()) {
            return s.parse().map(Some);
        }
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let count = num("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                Error::config(
                    "shard",
                    "SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT (Slurm 17.11 or \
                     later sets both); give the shard explicitly",
                )
            })?;
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            let off = id.checked_sub(min).filter(|o| o % step == 0);
            return match off.map(|o| o / step).filter(|&i| i < count) {
                Some(index) => Self::new(index, count).map(Some),
                None => Err(Error::config(
                    "shard",
                    format!(
                        "array task {id} is not one of {count} evenly spaced tasks from {min} \
                         (step {step}); submit a plain range such as --array=0-{}",
                        count.saturating_sub(1)
                    ),
                )),
            };
        }
        if let Some(index) = num("JOB_COMPLETION_INDEX")? {
            let count = num("REELSMITH_SHARD_COUNT")?.ok_or_else(|| {
                Error::config(
                    "shard",
                    "JOB_COMPLETION_INDEX is set but not REELSMITH_SHARD_COUNT; set it to the \
                     Job's completions",
                )
            })?;
            return Self::new(index, count).map(Some);
        }
        Ok(None)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// `I/N`, 0-based: `0/4` … `3/4`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::config(
                "shard",
                format!("{s:?} is not I/N (such as 0/4, the first of four shards)"),
            )
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Self::new(i, n)
    }
}

/// The shard of `count` the video with this id belongs to (see the [module docs](self)).
pub fn shard_of(id: &str, count: u64) -> u64 {
    let digest = Sha256::digest(id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head) % count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_stable_and_spread() {
        // Pinned values from Python's hashlib (the formula in the module docs): anything
        // that changes them moves videos between shards.
        for (id, want) in [
            ("video_0000", [0, 1, 480]),
            ("video_0001", [1, 0, 85]),
            ("intro", [3, 1, 575]),
            ("a", [2, 4, 250]),
        ] {
            assert_eq!([4, 7, 1000].map(|n| shard_of(id, n)), want, "{id}");
        }
        let ids: Vec<String> = (0..400).map(|i| format!("video_{i:04}")).collect();
        let mut counts = [0usize; 4];
        for id in &ids {
            counts[shard_of(id, 4) as usize] += 1;
            assert_eq!(shard_of(id, 1), 0);
        }
        assert!(
            counts.iter().all(|&c| (70..=130).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn shards_from_the_scheduler_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Shard::from_vars(env(&[])).unwrap(), None);
        let s = Shard::from_vars(env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 2, count: 4 }));
        let s = Shard::from_vars(env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 2, count: 3 }));
        let e = Shard::from_vars(env(&[
            ("SLURM_ARRAY_TASK_ID", "9"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("--array=0-3"), "{e}");
        let s = Shard::from_vars(env(&[
            ("JOB_COMPLETION_INDEX", "1"),
            ("REELSMITH_SHARD_COUNT", "8"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 1, count: 8 }));
        assert!(Shard::from_vars(env(&[("JOB_COMPLETION_INDEX", "1")])).is_err());
        let s = Shard::from_vars(env(&[
            ("REELSMITH_SHARD", "3/5"),
            ("JOB_COMPLETION_INDEX", "1"),
        ]))
        .unwrap();
        assert_eq!(s, Some(Shard { index: 3, count: 5 }));
        assert!("4/4".parse::<Shard>().is_err() && "x".parse::<Shard>().is_err());
        assert_eq!("1/2".parse::<Shard>().unwrap().to_string(), "1/2");
    }
}
