//! A video collection in one go: the single-video pipelines over every video of a
//! manifest, sharded across processes and machines, resumable, merged into one dataset.
//!
//! - [`run`] takes the videos of one [`Shard`] of a [`manifest`] and runs the
//!   configured [`Job`]s on each, several videos at once with the cores divided among them.
//!   Each video's outputs go to `OUT/<id>/<job>/` (the files of the single-video commands)
//!   and a completion marker, `OUT/<id>/done.json`, is written last, atomically. A rerun
//!   skips completed videos and redoes partial ones, so a process killed at any moment
//!   loses nothing and duplicates nothing. A failing video is recorded in
//!   `OUT/<id>/failed.json` with its error and does not stop the shard;
//!   [`BatchInput::retry_failed`] takes those again.
//! - [`merge`](merge::merge) writes the collection as Parquet tables (videos, shots,
//!   segments, highlights, embeddings, scores) and `summary.json`;
//!   [`status`] counts done, failed and pending videos per shard.
//!
//! A video is done for a run when its marker was written with the same jobs and settings
//! (a fingerprint of them): changing the settings redoes the videos.
//!
//! ```
//! use reelsmith::models::Models;
//! use reelsmith::pipelines::batch::{self, BatchConfig, BatchInput, Job};
//! use reelsmith::progress::NoProgress;
//!
//! # let dir = tempfile::tempdir()?;
//! # let video = reelsmith_test_support::two_shot_video(dir.path());
//! let manifest = dir.path().join("videos.txt");
//! std::fs::write(&manifest, format!("{}\n", video.display()))?;
//! let out = dir.path().join("out");
//! let config = BatchConfig { jobs: vec![Job::Shots], ..BatchConfig::default() };
//! let models = Models::new();
//! let report = batch::run(&BatchInput::new(&manifest, &out, &models), &config, &NoProgress)?;
//! assert_eq!((report.done, report.failed), (1, 0));
//! assert!(out.join("two_shots/done.json").is_file());
//! assert!(out.join("two_shots/shots/shots.json").is_file());
//! // A second run finds it done.
//! let again = batch::run(&BatchInput::new(&manifest, &out, &models), &config, &NoProgress)?;
//! assert_eq!((again.done, again.already_done), (0, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::models::{ModelChoice, Models};
use crate::pipelines::embed::EmbedConfig;
use crate::pipelines::highlights::HighlightsConfig;
use crate::pipelines::score::ScoringConfig;
use crate::pipelines::segments::SegmentsConfig;
use crate::pipelines::shots::ShotsConfig;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

mod cores;
pub mod manifest;
pub mod merge;
pub mod shard;
pub mod state;
mod video;

pub use manifest::{Entry, Manifest, ManifestFormat};
pub use merge::{merge, MergeReport};
pub use shard::{shard_of, Shard};
pub use state::{status, Marker, ProbeFacts, ShardStatus, StatusReport, VideoStatus};

/// Cores per video when the number of videos at once is automatic: on two cores, two
/// videos of one core each processed 1.3× more videos per minute than one video on both
/// (short clips: probing, writing and the sequential parts of each pipeline leave cores
/// idle that another video fills).
pub const AUTO_CORES_PER_VIDEO: usize = 1;

/// The most failures a [`BatchReport`] lists (all are in the markers).
const MAX_LISTED_FAILURES: usize = 100;

/// A job run on every video: one of the single-video pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// [`pipelines::shots`](crate::pipelines::shots): `shots/shots.json`, `shots/shots.csv`.
    Shots,
    /// [`pipelines::segments`](crate::pipelines::segments): clips, keyframes,
    /// `segments/segments.json`.
    Segments,
    /// [`pipelines::highlights`](crate::pipelines::highlights): clips, reports,
    /// `highlights/highlights.json`.
    Highlights,
    /// [`pipelines::embed`](crate::pipelines::embed): `embed/embeddings.safetensors`,
    /// `embed/embed.json` (needs a model).
    Embed,
    /// [`pipelines::score`](crate::pipelines::score): `score/score.json`.
    Score,
}

impl Job {
    /// Every job, in the order they run.
    pub const ALL: [Job; 5] = [
        Job::Shots,
        Job::Segments,
        Job::Highlights,
        Job::Embed,
        Job::Score,
    ];

    /// Its name in manifests, configurations and folders.
    pub fn name(self) -> &'static str {
        match self {
            Job::Shots => "shots",
            Job::Segments => "segments",
            Job::Highlights => "highlights",
            Job::Embed => "embed",
            Job::Score => "score",
        }
    }

    /// The job named `name`.
    pub fn parse(name: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|j| j.name() == name)
    }

    /// A list such as `shots,segments` (in any order; duplicates are errors).
    pub fn parse_list(list: &str) -> Result<Vec<Job>, Error> {
        let mut jobs = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let job = Job::parse(name).ok_or_else(|| {
                Error::config(
                    "jobs",
                    format!(
                        "unknown job `{name}`; choose from {}",
                        Job::ALL.map(Job::name).join(", ")
                    ),
                )
            })?;
            if jobs.contains(&job) {
                return Err(Error::config("jobs", format!("`{name}` is listed twice")));
            }
            jobs.push(job);
        }
        Ok(jobs)
    }
}

impl std::fmt::Display for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn default_jobs() -> Vec<Job> {
    vec![Job::Shots, Job::Segments, Job::Highlights, Job::Score]
}

/// Settings of a batch: the jobs, how many videos at once, and each job's settings (the
/// same as the single-video pipelines'; a TOML file has a `[shots]`, `[segments]`,
/// `[highlights]`, `[embed]` and `[score]` section). A manifest's per-video options change
/// these for one video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// The jobs run on every video, in this order (default: shots, segments, highlights,
    /// score; `embed` needs a model in `[embed]`).
    pub jobs: Vec<Job>,
    /// Videos processed at once in one process, the cores divided among them (0,
    /// default: one per [`AUTO_CORES_PER_VIDEO`] cores).
    pub workers: usize,
    /// Settings of the shots job.
    pub shots: ShotsConfig,
    /// Settings of the segments job.
    pub segments: SegmentsConfig,
    /// Settings of the highlights job.
    pub highlights: HighlightsConfig,
    /// Settings of the embed job (its `model` is required when the job runs).
    pub embed: EmbedConfig,
    /// Settings of the score job.
    pub score: ScoringConfig,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            jobs: default_jobs(),
            workers: 0,
            shots: ShotsConfig::default(),
            segments: SegmentsConfig::default(),
            highlights: HighlightsConfig::default(),
            embed: EmbedConfig::default(),
            score: ScoringConfig::default(),
        }
    }
}

impl BatchConfig {
    /// Checks the jobs and the settings of every job that runs; the error names the
    /// setting at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if self.jobs.is_empty() {
            return Err(Error::config(
                "jobs",
                format!(
                    "no job to run; choose from {}",
                    Job::ALL.map(Job::name).join(", ")
                ),
            ));
        }
        for (i, j) in self.jobs.iter().enumerate() {
            if self.jobs[..i].contains(j) {
                return Err(Error::config("jobs", format!("`{j}` is listed twice")));
            }
        }
        if self.workers > 4096 {
            return Err(Error::config(
                "workers",
                format!("{} videos at once: use 0 (automatic) to 4096", self.workers),
            ));
        }
        for job in &self.jobs {
            match job {
                Job::Shots => self.shots.analysis.validate()?,
                Job::Segments => self.segments.validate()?,
                Job::Highlights => self.highlights.validate()?,
                Job::Embed => self.embed.validate()?,
                Job::Score => self.score.validate()?,
            }
        }
        Ok(())
    }

    /// The settings that make a video's outputs: the jobs and their configurations, as
    /// JSON with sorted keys.
    fn outputs_value(&self) -> Value {
        let mut v = serde_json::Map::new();
        v.insert(
            "jobs".into(),
            Value::Array(self.jobs.iter().map(|j| Value::from(j.name())).collect()),
        );
        for job in &self.jobs {
            let c = match job {
                Job::Shots => serde_json::to_value(&self.shots),
                Job::Segments => serde_json::to_value(&self.segments),
                Job::Highlights => serde_json::to_value(&self.highlights),
                Job::Embed => serde_json::to_value(&self.embed),
                Job::Score => serde_json::to_value(&self.score),
            };
            v.insert(job.name().into(), c.unwrap_or(Value::Null));
        }
        Value::Object(v)
    }

    /// A short fingerprint of the jobs and the settings that shape their outputs: markers written under other
    /// settings do not count as done.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = serde_json::to_string(&self.outputs_value()).unwrap_or_default();
        let d = Sha256::digest(text.as_bytes());
        d[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// These settings with a manifest line's per-video options over them (the reason
    /// when the options do not fit).
    pub fn with_options(&self, options: &serde_json::Map<String, Value>) -> Result<Self, String> {
        if options.is_empty() {
            return Ok(self.clone());
        }
        let mut v = serde_json::to_value(self).map_err(|e| e.to_string())?;
        for (job, settings) in options {
            if let Some(slot) = v.get_mut(job) {
                merge_json(slot, settings);
            }
        }
        let c: BatchConfig = serde_json::from_value(v).map_err(|e| {
            let jobs: Vec<&str> = options.keys().map(String::as_str).collect();
            format!("the options for {} do not fit: {e}", jobs.join(", "))
        })?;
        c.validate().map_err(|e| format!("the options give {e}"))?;
        Ok(c)
    }

    /// The models the jobs ask for, with the id `auto` stands for in each.
    fn model_choices(&self) -> Vec<(&ModelChoice, &'static str)> {
        self.jobs
            .iter()
            .filter_map(|j| match j {
                Job::Shots => None,
                Job::Segments => Some((
                    &self.segments.model,
                    crate::pipelines::segments::DEFAULT_MODEL,
                )),
                Job::Highlights => Some((
                    &self.highlights.model,
                    crate::pipelines::highlights::DEFAULT_MODEL,
                )),
                Job::Embed => Some((&self.embed.model, "")),
                Job::Score => Some((
                    &self.score.model,
                    crate::pipelines::highlights::DEFAULT_MODEL,
                )),
            })
            .collect()
    }
}

/// Merges `patch` into `base`: objects key by key, anything else replaced.
fn merge_json(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// The manifest, the output folder, the shard and the models of a batch run.
#[derive(Debug, Clone, Copy)]
pub struct BatchInput<'a> {
    /// The manifest (text, CSV or JSONL; see [`manifest`]).
    pub manifest: &'a Path,
    /// The output folder: `OUT/<id>/...` per video, `OUT/_batch/` for the run's state.
    pub output: &'a Path,
    /// The videos this process takes (default: all).
    pub shard: Shard,
    /// Take the videos that failed before again (default: they stay failed).
    pub retry_failed: bool,
    /// Where models come from (each loaded once, shared by all videos).
    pub models: &'a Models,
}

impl<'a> BatchInput<'a> {
    /// All videos of `manifest` into `output`, with models from `models`.
    pub fn new(
        manifest: &'a (impl AsRef<Path> + ?Sized),
        output: &'a (impl AsRef<Path> + ?Sized),
        models: &'a Models,
    ) -> Self {
        Self {
            manifest: manifest.as_ref(),
            output: output.as_ref(),
            shard: Shard::ALL,
            retry_failed: false,
            models,
        }
    }

    /// Sets [`BatchInput::shard`].
    pub fn shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// Sets [`BatchInput::retry_failed`].
    pub fn retry_failed(mut self, retry: bool) -> Self {
        self.retry_failed = retry;
        self
    }
}

/// A video that failed in this run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// Its id.
    pub id: String,
    /// Its manifest line.
    pub line: u64,
    /// The error.
    pub error: String,
}

/// What a batch run did in its shard.
#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    /// The shard.
    pub shard: Shard,
    /// Videos of the manifest in this shard.
    pub videos: u64,
    /// Videos already done before this run (skipped).
    pub already_done: u64,
    /// Videos that had failed before and were not retried.
    pub already_failed: u64,
    /// Videos completed by this run.
    pub done: u64,
    /// Videos that failed in this run.
    pub failed: u64,
    /// The first failures of this run (at most 100; every one is in its marker).
    pub failures: Vec<Failure>,
    /// Videos processed at once.
    pub workers: usize,
    /// Cores used.
    pub cores: usize,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// Frames of the videos completed by this run (decoded frames where the shots job
    /// counted them, the container's count otherwise).
    pub frames: u64,
    /// Seconds of video completed by this run.
    pub video_seconds: f64,
    /// Remarks (how the cores were shared...).
    pub notes: Vec<String>,
}

/// A video handed to a worker.
struct Task {
    entry: Entry,
    source: PathBuf,
    config: Arc<BatchConfig>,
    fingerprint: Arc<str>,
}

/// Effective settings for an entry: the base (shared) or its own, with their fingerprint.
fn settings_for(
    base: &Arc<BatchConfig>,
    base_print: &Arc<str>,
    manifest: &Manifest,
    entry: &Entry,
) -> Result<(Arc<BatchConfig>, Arc<str>), Error> {
    if entry.options.is_empty() {
        return Ok((base.clone(), base_print.clone()));
    }
    let c = base
        .with_options(&entry.options)
        .map_err(|d| manifest::line_err(manifest.path(), entry.line, d))?;
    let print: Arc<str> = c.fingerprint().into();
    Ok((Arc::new(c), print))
}

/// What the first pass over the manifest found.
struct Scan {
    in_shard: u64,
    done: u64,
    failed: u64,
}

/// Reads the whole manifest once: every line is checked (format, ids unique, options)
/// before any work starts, and the shard's videos are counted by state.
fn scan(
    manifest: &Manifest,
    base: &Arc<BatchConfig>,
    base_print: &Arc<str>,
    out: &Path,
    shard: Shard,
    retry_failed: bool,
) -> Result<Scan, Error> {
    // 16 bytes per line: a hash of the id and its line. A repeated hash is checked against
    // the earlier line's id (read again) before it is called a duplicate.
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut scan = Scan {
        in_shard: 0,
        done: 0,
        failed: 0,
    };
    let mut any = false;
    for entry in manifest.entries()? {
        let entry = entry?;
        any = true;
        let h = id_hash(&entry.id);
        if let Some(&first) = seen.get(&h) {
            if same_id_on_line(manifest, first, &entry.id)? {
                return Err(manifest::line_err(
                    manifest.path(),
                    entry.line,
                    format!(
                        "the id `{}` is also on line {first}; ids must be unique (give an `id` \
                         column where file names repeat)",
                        entry.id
                    ),
                ));
            }
        } else {
            seen.insert(h, entry.line);
        }
        let (_, print) = settings_for(base, base_print, manifest, &entry)?;
        if shard.contains(&entry.id) {
            scan.in_shard += 1;
            match state::video_status(out, &entry.id, &print) {
                VideoStatus::Done => scan.done += 1,
                VideoStatus::Failed if !retry_failed => scan.failed += 1,
                _ => {}
            }
        }
    }
    if !any {
        return Err(manifest::whole(
            manifest.path(),
            "has no videos; list one path or URL per line (or a `path` column)",
        ));
    }
    Ok(scan)
}

fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

fn same_id_on_line(manifest: &Manifest, line: u64, id: &str) -> Result<bool, Error> {
    for e in manifest.entries()? {
        let e = e?;
        if e.line == line {
            return Ok(e.id == id);
        }
    }
    Ok(false)
}

/// Loads the models the jobs use once, here, before the workers start: each is loaded
/// once per process, and a CPU model's thread pools start with every core (workers pin
/// their own threads to their share of the cores).
fn preload_models(config: &BatchConfig, models: &Models) -> Result<(), Error> {
    for (choice, default_id) in config.model_choices() {
        if let Some(model) = models.resolve(choice, default_id)?.model {
            use reelsmith_embed::Embedder;
            let probe = image::RgbImage::from_pixel(32, 32, image::Rgb([128, 128, 128]));
            model
                .embed_images(&[probe])
                .map_err(|source| Error::Model {
                    model: model.model_id().to_string(),
                    source,
                })?;
        }
    }
    Ok(())
}

/// Reads the manifest's entries of one shard and queues those still to run.
struct Producer<'a> {
    manifest: &'a Manifest,
    base: &'a Arc<BatchConfig>,
    base_print: &'a Arc<str>,
    out: &'a Path,
    shard: Shard,
    retry_failed: bool,
}

impl Producer<'_> {
    /// Sends a task per video of the shard that is neither done nor (unless retried)
    /// failed with the same settings; stops early when the workers are gone.
    fn send_all(&self, tasks: &mpsc::SyncSender<Task>) -> Result<(), Error> {
        for entry in self.manifest.entries()? {
            let entry = entry?;
            if !self.shard.contains(&entry.id) {
                continue;
            }
            let (config, fingerprint) =
                settings_for(self.base, self.base_print, self.manifest, &entry)?;
            match state::video_status(self.out, &entry.id, &fingerprint) {
                VideoStatus::Done => continue,
                VideoStatus::Failed if !self.retry_failed => continue,
                _ => {}
            }
            let source = self.manifest.resolve(&entry);
            let task = Task {
                entry,
                source,
                config,
                fingerprint,
            };
            if tasks.send(task).is_err() {
                break;
            }
        }
        Ok(())
    }
}

impl BatchReport {
    /// Counts one video's outcome.
    fn record(&mut self, outcome: video::Outcome) {
        match outcome {
            video::Outcome::Done {
                frames,
                video_seconds,
                ..
            } => {
                self.done += 1;
                self.frames += frames;
                self.video_seconds += video_seconds;
            }
            video::Outcome::Failed { id, line, error } => {
                self.failed += 1;
                if self.failures.len() < MAX_LISTED_FAILURES {
                    self.failures.push(Failure { id, line, error });
                }
            }
            video::Outcome::Skipped => {}
        }
    }
}

/// Runs the shard's videos of `input.manifest` (see the [module docs](self)).
///
/// Every manifest line is checked before any work starts (errors name the line). Fails
/// only on a bad manifest, bad settings, a model that cannot be loaded or an output folder
/// that cannot be used; a video that fails is recorded and counted in the report.
pub fn run(
    input: &BatchInput<'_>,
    config: &BatchConfig,
    progress: &dyn Progress,
) -> Result<BatchReport, Error> {
    let started = Instant::now();
    config.validate()?;
    let manifest = Manifest::open(input.manifest)?;
    let base = Arc::new(config.clone());
    let base_print: Arc<str> = config.fingerprint().into();
    let scan = scan(
        &manifest,
        &base,
        &base_print,
        input.output,
        input.shard,
        input.retry_failed,
    )?;
    let state = state::RunState::begin(input.output, &manifest, config, input.shard)?;
    preload_models(config, input.models)?;
    let plan = cores::CorePlan::for_process(config.workers);
    let mut notes: Vec<String> = plan.note.iter().cloned().collect();
    for n in &notes {
        tracing::warn!("{n}");
    }
    let todo = scan.in_shard - scan.done - scan.failed;
    tracing::info!(
        "shard {}: {} videos, {} done before, {} failed before, {todo} to process; {} at once on {} cores",
        input.shard,
        scan.in_shard,
        scan.done,
        scan.failed,
        plan.workers(),
        plan.cores
    );
    let mut report = BatchReport {
        shard: input.shard,
        videos: scan.in_shard,
        already_done: scan.done,
        already_failed: scan.failed,
        done: 0,
        failed: 0,
        failures: Vec::new(),
        workers: plan.workers(),
        cores: plan.cores,
        seconds: 0.0,
        frames: 0,
        video_seconds: 0.0,
        notes: Vec::new(),
    };
    let ctx = video::Ctx {
        out: input.output,
        models: input.models,
        retry_failed: input.retry_failed,
        state: &state,
    };
    let producer_error: Mutex<Option<Error>> = Mutex::new(None);
    let stage = StageGuard::start(progress, Stage::Videos, Some(todo));
    // A bounded queue: the manifest is read only as fast as the workers take videos.
    let (task_tx, task_rx) = mpsc::sync_channel::<Task>(plan.workers() * 2);
    let task_rx = Mutex::new(task_rx);
    let (done_tx, done_rx) = mpsc::channel::<video::Outcome>();
    std::thread::scope(|s| {
        for set in &plan.sets {
            let (task_rx, done_tx, ctx) = (&task_rx, done_tx.clone(), &ctx);
            s.spawn(move || {
                cores::pin_current_thread(set);
                loop {
                    let next = task_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(task) = next else { break };
                    if done_tx.send(video::process(ctx, task)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let producer = Producer {
            manifest: &manifest,
            base: &base,
            base_print: &base_print,
            out: input.output,
            shard: input.shard,
            retry_failed: input.retry_failed,
        };
        let producer_error = &producer_error;
        s.spawn(move || {
            if let Err(e) = producer.send_all(&task_tx) {
                *producer_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        });
        for outcome in done_rx {
            report.record(outcome);
            stage.advance(1);
        }
    });
    drop(stage);
    if let Some(e) = producer_error
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
    {
        return Err(e);
    }
    notes.extend(state.notes());
    report.notes = notes;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests;
