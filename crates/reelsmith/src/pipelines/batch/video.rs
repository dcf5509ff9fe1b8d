//! One video of a batch: lock its folder, clear what a killed run left, run the jobs,
//! write the marker last.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::state::{self, Marker, ProbeFacts, RunState, VideoStatus, DONE, FAILED, LOCK};
use super::{BatchConfig, Job, Task};
use crate::models::Models;
use crate::output::OutputDir;
use crate::pipelines::{embed, highlights, score, segments, shots};
use crate::progress::NoProgress;
use crate::Error;

/// What every worker shares.
pub(crate) struct Ctx<'a> {
    pub out: &'a Path,
    pub models: &'a Models,
    pub retry_failed: bool,
    pub state: &'a RunState,
}

/// How a video ended.
pub(crate) enum Outcome {
    Done {
        frames: u64,
        video_seconds: f64,
    },
    Failed {
        id: String,
        line: u64,
        error: String,
    },
    /// Another process completed it meanwhile.
    Skipped,
}

/// What the jobs of a video produced.
struct Produced {
    probe: ProbeFacts,
    frames: Option<u64>,
    notes: Vec<String>,
}

/// A job's failure: the job (none for probing) and the error.
type JobFailure = (Option<Job>, String);

/// Processes one video (see the [module docs](self)); never fails: a failure is recorded.
pub(crate) fn process(ctx: &Ctx<'_>, task: Task) -> Outcome {
    let id = task.entry.id.clone();
    let dir = ctx.out.join(&id);
    let lock = match lock_folder(&dir) {
        Ok(l) => l,
        Err(e) => {
            return record(ctx, &task, None, Err((None, e.to_string())), 0.0);
        }
    };
    // Another process may have finished it while this one waited for the lock.
    match state::video_status(ctx.out, &id, &task.fingerprint) {
        VideoStatus::Done => return Outcome::Skipped,
        VideoStatus::Failed if !ctx.retry_failed => return Outcome::Skipped,
        _ => {}
    }
    if let Err(e) = clear_folder(&dir) {
        return record(ctx, &task, Some(lock), Err((None, e.to_string())), 0.0);
    }
    ctx.state.event("start", &id, None);
    let started = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_jobs(&task.source, &dir, &task.config, ctx.models)
    }))
    .unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err((None, format!("internal error (panic): {msg}")))
    });
    let seconds = started.elapsed().as_secs_f64();
    record(ctx, &task, Some(lock), result, seconds)
}

/// Writes the marker (done or failed), logs the event, releases the lock.
fn record(
    ctx: &Ctx<'_>,
    task: &Task,
    lock: Option<File>,
    result: Result<Produced, JobFailure>,
    seconds: f64,
) -> Outcome {
    let id = &task.entry.id;
    let mut marker = Marker {
        id: id.clone(),
        path: task.entry.path.clone(),
        fingerprint: task.fingerprint.to_string(),
        jobs: task.config.jobs.clone(),
        error: None,
        failed_job: None,
        probe: None,
        frames: None,
        notes: Vec::new(),
        seconds,
        host: ctx.state.host.clone(),
        pid: std::process::id(),
        shard: ctx.state.shard,
        finished: state::unix_now(),
    };
    let dir = ctx.out.join(id);
    let outcome = match result {
        Ok(p) => {
            let video_seconds = p.probe.duration;
            let frames = p.frames.or(p.probe.declared_frames).unwrap_or(0);
            marker.frames = p.frames.or(p.probe.declared_frames);
            marker.probe = Some(p.probe);
            marker.notes = p.notes;
            match crate::output::write_json(&dir.join(DONE), &marker) {
                Ok(()) => {
                    ctx.state.event("done", id, Some(seconds));
                    tracing::info!("{id}: done in {seconds:.1} s");
                    Outcome::Done {
                        frames,
                        video_seconds,
                    }
                }
                Err(e) => Outcome::Failed {
                    id: id.clone(),
                    line: task.entry.line,
                    error: format!("cannot write the completion marker: {e}"),
                },
            }
        }
        Err((job, error)) => {
            let error = match job {
                Some(j) => format!("{j}: {error}"),
                None => error,
            };
            marker.error = Some(error.clone());
            marker.failed_job = job;
            if let Err(e) = crate::output::write_json(&dir.join(FAILED), &marker) {
                ctx.state
                    .note(format!("{id}: cannot record the failure ({e}): {error}"));
            }
            ctx.state.event("failed", id, Some(seconds));
            tracing::warn!("{id} failed: {error}");
            Outcome::Failed {
                id: id.clone(),
                line: task.entry.line,
                error,
            }
        }
    };
    drop(lock);
    outcome
}

/// Creates the video's folder and takes its lock, waiting while another process holds
/// it (a killed process's lock goes with it).
fn lock_folder(dir: &Path) -> Result<File, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let path = dir.join(LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::write(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::info!(
                "{}: another process is working on this video; waiting for it",
                dir.display()
            );
            file.lock().map_err(|e| Error::write(&path, e))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::write(&path, e)),
    }
    Ok(file)
}

/// Removes everything in the video's folder but its lock: what a killed run left.
fn clear_folder(dir: &Path) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::write(dir, e))? {
        let entry = entry.map_err(|e| Error::write(dir, e))?;
        if entry.file_name() == LOCK {
            continue;
        }
        let p = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let r = if is_dir {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| Error::write(&p, e))?;
    }
    Ok(())
}

/// The embed job's report file.
#[derive(Debug, Serialize)]
struct EmbedJson<'a> {
    model: &'a str,
    dim: usize,
    frames: usize,
    times: &'a [f64],
}

/// Runs the jobs on one video, each into `dir/<job>/`.
fn run_jobs(
    source: &Path,
    dir: &Path,
    config: &BatchConfig,
    models: &Models,
) -> Result<Produced, JobFailure> {
    let fail = |job: Option<Job>| move |e: Error| (job, e.to_string());
    let info = reelsmith_decode::open(source)
        .map_err(|e| (None, Error::from(e).to_string()))?
        .info()
        .clone();
    let mut produced = Produced {
        probe: ProbeFacts {
            duration: info.duration,
            width: info.width,
            height: info.height,
            fps: info.fps,
            codec: info.codec.clone(),
            has_audio: info.has_audio,
            rotation: info.rotation,
            declared_frames: info.declared_frames,
        },
        frames: None,
        notes: Vec::new(),
    };
    for &job in &config.jobs {
        let at = dir.join(job.name());
        let f = fail(Some(job));
        match job {
            Job::Shots => {
                let r = shots::run(source, &config.shots, &NoProgress).map_err(&f)?;
                let out = OutputDir::begin(&at, "shots", false).map_err(&f)?;
                let csv = out.path("shots.csv").map_err(&f)?;
                let mut bytes = Vec::new();
                r.write_csv(&mut bytes)
                    .map_err(|e| (Some(job), e.to_string()))?;
                std::fs::write(&csv, bytes).map_err(|e| f(Error::write(&csv, e)))?;
                out.commit("shots.json", &r.to_json()).map_err(&f)?;
                produced.frames = Some(r.frames as u64);
            }
            Job::Segments => {
                let input = segments::SegmentsInput::new(source, &at, models);
                segments::run(&input, &config.segments, &NoProgress).map_err(&f)?;
            }
            Job::Highlights => {
                let input = highlights::HighlightsInput::new(source, &at, models);
                match highlights::run(&input, &config.highlights, &NoProgress) {
                    Ok(_) => {}
                    // A video too short or too flat for a highlight is not a failure.
                    Err(e @ (Error::TooShort { .. } | Error::NoPeak { .. })) => {
                        produced.notes.push(format!("highlights: {e}"));
                    }
                    Err(e) => return Err(f(e)),
                }
            }
            Job::Embed => {
                let out = OutputDir::begin(&at, "embed", false).map_err(&f)?;
                let file = out.path("embeddings.safetensors").map_err(&f)?;
                let files = [source.to_path_buf()];
                let input = embed::EmbedInput {
                    files: &files,
                    texts: &[],
                    output: Some(&file),
                    models,
                };
                let r = embed::run(&input, &config.embed, &NoProgress).map_err(&f)?;
                let report = EmbedJson {
                    model: &r.model,
                    dim: r.dim,
                    frames: r.times.len(),
                    times: &r.times,
                };
                out.commit("embed.json", &report).map_err(&f)?;
            }
            Job::Score => {
                let files: [PathBuf; 1] = [source.to_path_buf()];
                let r = score::run(
                    &score::ScoringInput::new(&files, models),
                    &config.score,
                    &NoProgress,
                )
                .map_err(&f)?;
                let out = OutputDir::begin(&at, "score", false).map_err(&f)?;
                out.commit("score.json", &r).map_err(&f)?;
            }
        }
    }
    Ok(produced)
}
