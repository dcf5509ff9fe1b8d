//! `reelsmith batch run|merge|status`: a video collection, sharded, resumable, merged.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use reelsmith::embed::HubOptions;
use reelsmith::pipelines::batch::{self, BatchConfig, BatchInput, Job, Shard};
use reelsmith::progress::{Progress, Stage};

use crate::Ctx;

/// Arguments of `reelsmith batch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the jobs on every video of a manifest (or of one shard of it). Each video's
    /// outputs go to OUT/<id>/<job>/, then OUT/<id>/done.json; a rerun skips done videos
    /// and redoes partial ones.
    Run(RunArgs),
    /// Merge a batch into Parquet tables (videos, shots, segments, highlights,
    /// embeddings, scores) and summary.json.
    Merge(MergeArgs),
    /// Print done / failed / pending videos per shard.
    Status(StatusArgs),
}

/// Arguments of `reelsmith batch run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The manifest: a text file of paths or URLs (one per line), or .csv / .jsonl with a
    /// `path` column, an optional `id` and per-video options named JOB.SETTING.
    manifest: PathBuf,
    /// The output folder.
    #[arg(long, short)]
    output: PathBuf,
    /// Jobs to run, comma-separated: shots, segments, highlights, embed, score [default:
    /// shots,segments,highlights,score; embed needs a model].
    #[arg(long)]
    jobs: Option<String>,
    /// This process's shard, I/N (0-based). Default: from SLURM_ARRAY_TASK_ID and
    /// SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX and REELSMITH_SHARD_COUNT
    /// (Kubernetes), or REELSMITH_SHARD; else the whole manifest.
    #[arg(long)]
    shard: Option<String>,
    /// Settings file (.toml or .json): `jobs`, `workers`, and [shots], [segments],
    /// [highlights], [embed], [score] sections with each pipeline's settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Videos processed at once, the cores divided among them [default: 0 = one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Take the videos that failed before again.
    #[arg(long)]
    retry_failed: bool,
    /// Device for the models: cpu, cuda[:N], metal[:N] or auto.
    #[arg(long, default_value = "cpu", value_name = "D")]
    device: String,
}

/// Arguments of `reelsmith batch merge`.
#[derive(Debug, clap::Args)]
struct MergeArgs {
    /// The batch's output folder.
    folder: PathBuf,
    /// Where to write the dataset [default: FOLDER/_merged].
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Arguments of `reelsmith batch status`.
#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// The batch's output folder.
    folder: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    match args.command {
        Command::Run(a) => run_batch(a, ctx),
        Command::Merge(a) => merge(a, ctx),
        Command::Status(a) => status(a),
    }
}

fn run_batch(a: RunArgs, ctx: &Ctx) -> Result<()> {
    let mut config: BatchConfig = super::base_config(a.config.as_deref())?;
    if let Some(jobs) = &a.jobs {
        config.jobs = Job::parse_list(jobs)?;
    }
    if let Some(w) = a.workers {
        config.workers = w;
    }
    let shard = match &a.shard {
        Some(s) => s.parse()?,
        None => Shard::from_env()?.unwrap_or(Shard::ALL),
    };
    let device: reelsmith::embed::DeviceChoice = a.device.parse()?;
    let models = reelsmith::models::Models::new()
        .with_hub(HubOptions::default().progress(!ctx.quiet))
        .with_device(device);
    let input = BatchInput::new(&a.manifest, &a.output, &models)
        .shard(shard)
        .retry_failed(a.retry_failed);
    let progress = VideoProgress::new(ctx.quiet);
    let report = batch::run(&input, &config, &progress)?;
    if !ctx.quiet {
        let minutes = report.seconds / 60.0;
        eprintln!(
            "shard {}: {} videos; {} done now, {} failed now, {} done before, {} failed before \
             (retry them with --retry-failed)",
            report.shard,
            report.videos,
            report.done,
            report.failed,
            report.already_done,
            report.already_failed
        );
        if report.done > 0 {
            eprintln!(
                "{:.1} s for {} videos ({} frames, {:.0} s of video) on {} cores, {} at once: \
                 {:.2} videos/min, {:.0} frames/s",
                report.seconds,
                report.done,
                report.frames,
                report.video_seconds,
                report.cores,
                report.workers,
                report.done as f64 / minutes.max(1e-9),
                report.frames as f64 / report.seconds.max(1e-9)
            );
        }
        for f in &report.failures {
            eprintln!("  failed: {} (manifest line {}): {}", f.id, f.line, f.error);
        }
    }
    Ok(())
}

fn merge(a: MergeArgs, ctx: &Ctx) -> Result<()> {
    let progress = VideoProgress::new(ctx.quiet);
    let report = batch::merge(&a.folder, a.output.as_deref(), &progress)?;
    if !ctx.quiet {
        eprintln!(
            "{} videos ({} done, {} failed, {} pending; {:.2} h of video) merged into {}",
            report.videos,
            report.done,
            report.failed,
            report.pending,
            report.hours,
            report.folder.display()
        );
        for (table, rows) in &report.tables {
            eprintln!("  {table}: {rows} rows");
        }
    }
    Ok(())
}

fn status(a: StatusArgs) -> Result<()> {
    let report = batch::status(&a.folder)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{}: jobs {}",
        report.manifest.display(),
        report
            .jobs
            .iter()
            .map(|j| j.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    println!(
        "{:>8} {:>8} {:>8} {:>8} {:>8}",
        "shard", "videos", "done", "failed", "pending"
    );
    for s in report.shards.iter().chain([&report.total]) {
        let name = s
            .shard
            .map_or_else(|| "total".to_string(), |s| s.to_string());
        println!(
            "{name:>8} {:>8} {:>8} {:>8} {:>8}",
            s.videos, s.done, s.failed, s.pending
        );
    }
    for f in &report.failures {
        println!("failed: {} (line {}): {}", f.id, f.line, f.error);
    }
    Ok(())
}

/// Progress over videos: a bar with an ETA on a terminal, else one line per video (for
/// scheduler logs).
struct VideoProgress {
    quiet: bool,
    bar: Mutex<Option<ProgressBar>>,
    /// Start, videos done, videos to do.
    state: Mutex<(Instant, u64, Option<u64>)>,
}

impl VideoProgress {
    fn new(quiet: bool) -> Self {
        Self {
            quiet,
            bar: Mutex::new(None),
            state: Mutex::new((Instant::now(), 0, None)),
        }
    }
}

impl Progress for VideoProgress {
    fn start(&self, stage: Stage, total: Option<u64>) {
        if stage != Stage::Videos || self.quiet {
            return;
        }
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (Instant::now(), 0, total);
        if std::io::stderr().is_terminal() {
            let pb = ProgressBar::new(total.unwrap_or(0)).with_style(
                ProgressStyle::with_template("{msg:>8} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            pb.set_message("videos");
            *self.bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(pb);
        }
    }

    fn advance(&self, stage: Stage, n: u64) {
        if stage != Stage::Videos || self.quiet {
            return;
        }
        if let Some(pb) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            pb.inc(n);
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 += n;
        let (start, done, total) = *s;
        let elapsed = start.elapsed().as_secs_f64();
        match total {
            Some(total) if total > 0 => {
                let eta = elapsed / done.max(1) as f64 * total.saturating_sub(done) as f64;
                eprintln!(
                    "videos {done}/{total} ({:.0} %), {elapsed:.0} s, ETA {}",
                    100.0 * done as f64 / total as f64,
                    clock(eta)
                );
            }
            _ => eprintln!("videos {done}, {elapsed:.0} s"),
        }
    }

    fn finish(&self, stage: Stage) {
        if stage == Stage::Videos {
            if let Some(pb) = self.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
                pb.finish_and_clear();
            }
        }
    }
}

/// `H:MM:SS`.
fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
