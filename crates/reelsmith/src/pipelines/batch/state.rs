//! What a batch leaves in its output folder, and reading it back.
//!
//! ```text
//! OUT/_batch/batch.json          the settings of the latest run (manifest, jobs, settings)
//! OUT/_batch/log/*.jsonl         one event log per process: start, done, failed per video
//! OUT/<id>/<job>/...             each job's files (written as one set)
//! OUT/<id>/done.json             the completion marker, written last and atomically
//! OUT/<id>/failed.json           or the failure record
//! OUT/<id>/.lock                 held (flock) by the process working on the video
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::manifest::Manifest;
use super::{BatchConfig, Job, Shard};
use crate::Error;

/// The folder of a batch's own state inside its output folder.
pub const STATE_DIR: &str = "_batch";
/// The settings file inside [`STATE_DIR`].
pub const SETTINGS_FILE: &str = "batch.json";
/// The completion marker of a video.
pub const DONE: &str = "done.json";
/// The failure record of a video.
pub const FAILED: &str = "failed.json";
/// The lock file of a video's folder.
pub const LOCK: &str = ".lock";

/// The settings file: what the latest run was asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Format version.
    pub version: u32,
    /// The manifest (absolute).
    pub manifest: PathBuf,
    /// The number of shards of the latest run.
    pub shards: u64,
    /// Its settings.
    pub config: BatchConfig,
}

/// What probing found about a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeFacts {
    /// Duration in seconds.
    pub duration: f64,
    /// Width as displayed.
    pub width: u32,
    /// Height as displayed.
    pub height: u32,
    /// Average frame rate.
    pub fps: f64,
    /// Video codec.
    pub codec: String,
    /// Whether it has an audio stream.
    pub has_audio: bool,
    /// Rotation applied, in degrees.
    pub rotation: u32,
    /// Frame count declared by the container, if any.
    pub declared_frames: Option<u64>,
}

/// A video's completion marker or failure record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// The video's id.
    pub id: String,
    /// Its path as written in the manifest.
    pub path: String,
    /// The settings fingerprint it was processed with.
    pub fingerprint: String,
    /// The jobs run.
    pub jobs: Vec<Job>,
    /// The error, for a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The job that failed, when the failure happened in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_job: Option<Job>,
    /// Probe facts (absent when probing failed).
    pub probe: Option<ProbeFacts>,
    /// Frames decoded (the shots job's count, else the container's).
    pub frames: Option<u64>,
    /// Remarks of the jobs (a highlights job that found no peak...).
    pub notes: Vec<String>,
    /// Seconds the video took.
    pub seconds: f64,
    /// Where and by what it was processed: host, process id, shard.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// The shard of the process.
    pub shard: Shard,
    /// Unix time (seconds) it was written.
    pub finished: u64,
}

/// Where a video stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoStatus {
    /// Completed with the current settings.
    Done,
    /// Failed with the current settings.
    Failed,
    /// Not processed yet (or only partly, or under other settings).
    Pending,
}

/// Reads `OUT/<id>/<name>`.
pub(crate) fn read_marker(out: &Path, id: &str, name: &str) -> Option<Marker> {
    let bytes = std::fs::read(out.join(id).join(name)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Where the video `id` stands for settings with `fingerprint`.
pub fn video_status(out: &Path, id: &str, fingerprint: &str) -> VideoStatus {
    if read_marker(out, id, DONE).is_some_and(|m| m.fingerprint == fingerprint) {
        return VideoStatus::Done;
    }
    if read_marker(out, id, FAILED).is_some_and(|m| m.fingerprint == fingerprint) {
        return VideoStatus::Failed;
    }
    VideoStatus::Pending
}

/// The run's side of the output folder: the settings file and this process's event log.
#[derive(Debug)]
pub(crate) struct RunState {
    pub host: String,
    pub shard: Shard,
    log: Mutex<Option<File>>,
    log_path: PathBuf,
    notes: Mutex<Vec<String>>,
}

impl RunState {
    /// Checks `out` (new, empty or a batch's own), writes the settings file and opens this
    /// process's event log.
    pub(crate) fn begin(
        out: &Path,
        manifest: &Manifest,
        config: &BatchConfig,
        shard: Shard,
    ) -> Result<Self, Error> {
        check_output(out)?;
        let state = out.join(STATE_DIR);
        let logs = state.join("log");
        std::fs::create_dir_all(&logs).map_err(|e| Error::write(&logs, e))?;
        let manifest_path =
            std::fs::canonicalize(manifest.path()).unwrap_or_else(|_| manifest.path().into());
        let settings = Settings {
            version: 1,
            manifest: manifest_path,
            shards: shard.count,
            config: config.clone(),
        };
        crate::output::write_json(&state.join(SETTINGS_FILE), &settings)?;
        let host = hostname();
        let pid = std::process::id();
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let log_path = logs.join(format!(
            "shard{}of{}-{host}-{pid}-{millis}.jsonl",
            shard.index, shard.count
        ));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::write(&log_path, e))?;
        Ok(Self {
            host,
            shard,
            log: Mutex::new(Some(log)),
            log_path,
            notes: Mutex::new(Vec::new()),
        })
    }

    /// Appends one event (`start`, `done`, `failed`) for the video `id` to the log. A log
    /// that cannot be written is noted once and dropped; the markers stay the record.
    pub(crate) fn event(&self, event: &str, id: &str, seconds: Option<f64>) {
        let line = serde_json::json!({
            "event": event,
            "id": id,
            "shard": self.shard.to_string(),
            "host": self.host,
            "pid": std::process::id(),
            "seconds": seconds,
            "time": unix_now(),
        });
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = log.as_mut() {
            let mut text = line.to_string();
            text.push('\n');
            if let Err(e) = f.write_all(text.as_bytes()) {
                self.note(format!(
                    "{}: cannot write the event log ({e}); the markers stay the record",
                    self.log_path.display()
                ));
                *log = None;
            }
        }
    }

    pub(crate) fn note(&self, note: String) {
        tracing::warn!("{note}");
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(note);
    }

    pub(crate) fn notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Refuses an output folder that is a link, a file, or a folder of something else.
fn check_output(out: &Path) -> Result<(), Error> {
    let refuse = |detail: String| Error::Output {
        path: out.to_path_buf(),
        detail,
    };
    match std::fs::symlink_metadata(out) {
        Ok(m) if m.file_type().is_symlink() => Err(refuse(
            "is a symbolic link; give the folder it points to (outputs are never written \
             through links)"
                .into(),
        )),
        Ok(m) if !m.is_dir() => Err(refuse(
            "exists and is not a folder; give a folder for the batch's outputs".into(),
        )),
        Ok(_) if out.join(STATE_DIR).join(SETTINGS_FILE).is_file() => Ok(()),
        Ok(_) => {
            let mut others: Vec<String> = std::fs::read_dir(out)
                .map_err(|e| Error::write(out, e))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != STATE_DIR)
                .collect();
            if others.is_empty() {
                return Ok(());
            }
            others.sort();
            others.truncate(3);
            Err(refuse(format!(
                "holds files that are not a reelsmith batch's ({}...); choose an empty or new \
                 folder",
                others.join(", ")
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).map_err(|e| Error::write(out, e))
        }
        Err(e) => Err(Error::write(out, e)),
    }
}

/// This machine's name (for markers and logs).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .map(|h| {
            h.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .unwrap_or_else(|| "host".into())
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads the settings file of the batch in `out`.
pub fn read_settings(out: &Path) -> Result<Settings, Error> {
    let path = out.join(STATE_DIR).join(SETTINGS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::InvalidInput {
        path: path.clone(),
        detail: format!(
            "cannot read the batch settings ({e}); is this the output folder of a batch run?"
        ),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::InvalidInput {
        path,
        detail: format!("not a batch settings file: {e}"),
    })
}

/// Counts of one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShardStatus {
    /// The shard.
    pub shard: Option<Shard>,
    /// Videos in it.
    pub videos: u64,
    /// Done with the current settings.
    pub done: u64,
    /// Failed.
    pub failed: u64,
    /// Not done yet.
    pub pending: u64,
}

/// A failed video, as `status` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedVideo {
    /// Its id.
    pub id: String,
    /// Its manifest line.
    pub line: u64,
    /// The error.
    pub error: String,
}

/// Where a whole batch stands.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The manifest.
    pub manifest: PathBuf,
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Per shard (of the latest run's shard count).
    pub shards: Vec<ShardStatus>,
    /// All shards together.
    pub total: ShardStatus,
    /// The failed videos (the first 100).
    pub failures: Vec<FailedVideo>,
}

/// Done, failed and pending videos per shard of the batch in `out`, against its
/// manifest as it is now (an appended manifest counts its new videos as pending).
pub fn status(out: &Path) -> Result<StatusReport, Error> {
    let settings = read_settings(out)?;
    let manifest = Manifest::open(&settings.manifest)?;
    let count = settings.shards.max(1);
    let mut shards: Vec<ShardStatus> = (0..count)
        .map(|i| ShardStatus {
            shard: Some(Shard { index: i, count }),
            ..ShardStatus::default()
        })
        .collect();
    let mut total = ShardStatus::default();
    let mut failures = Vec::new();
    let base_print = settings.config.fingerprint();
    for entry in manifest.entries()? {
        let entry = entry?;
        let print = if entry.options.is_empty() {
            base_print.clone()
        } else {
            settings
                .config
                .with_options(&entry.options)
                .map(|c| c.fingerprint())
                .unwrap_or_default()
        };
        let s = &mut shards[super::shard_of(&entry.id, count) as usize];
        s.videos += 1;
        total.videos += 1;
        match video_status(out, &entry.id, &print) {
            VideoStatus::Done => {
                s.done += 1;
                total.done += 1;
            }
            VideoStatus::Failed => {
                s.failed += 1;
                total.failed += 1;
                if failures.len() < 100 {
                    let error = read_marker(out, &entry.id, FAILED)
                        .and_then(|m| m.error)
                        .unwrap_or_default();
                    failures.push(FailedVideo {
                        id: entry.id.clone(),
                        line: entry.line,
                        error,
                    });
                }
            }
            VideoStatus::Pending => {
                s.pending += 1;
                total.pending += 1;
            }
        }
    }
    Ok(StatusReport {
        manifest: settings.manifest,
        jobs: settings.config.jobs,
        shards,
        total,
        failures,
    })
}
