//! The `reelsmith` command line.
//!
//! One module per subcommand under `cmd/`; each parses its arguments into a pipeline
//! configuration (defaults, then `--config FILE`, then flags), calls one facade pipeline
//! and prints. Errors go to stderr with a non-zero exit status, with a hint naming the flag
//! when the error concerns a setting.

mod cmd;
mod out;
mod progress;

use std::io::IsTerminal;

use out::{note, StdoutError};

use clap::{Parser, Subcommand};

/// reelsmith: video into understanding and back into video.
#[derive(Debug, Parser)]
#[command(name = "reelsmith", version, about, long_about = None)]
struct Cli {
    /// No progress bars or summaries on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a video's size, frame rate, frame count, duration, rotation, codec and audio.
    Probe(cmd::probe::Args),
    /// Sample frames (all, every Nth, or N per second), scale them, write JPEGs + frames.json.
    Frames(cmd::frames::Args),
    /// Score images or sampled video frames: sharpness, exposure, aesthetics, saliency.
    Score(cmd::score::Args),
    /// Cut the best moments of a video into clips, with a JSON report, CSVs, a score plot and
    /// a contact sheet.
    Highlights(cmd::highlights::Args),
    /// Split a video into 2-15 s segments at embedding seams; clips, keyframes, segments.json.
    Segments(cmd::segments::Args),
    /// Detect shots (hard cuts and fades/dissolves); text, --json or PySceneDetect-style --csv.
    Shots(cmd::shots::Args),
    /// Pick keyframes (quantile or seams), write them as images + keyframes.json.
    Keyframes(cmd::keyframes::Args),
    /// Embed images, video frames and texts with CLIP or DINOv2 (safetensors or JSON out).
    Embed(cmd::embed::Args),
    /// A video collection: run jobs over a manifest (sharded on Slurm or Kubernetes,
    /// resumable), merge the results into Parquet, show the status.
    Batch(cmd::batch::Args),
    /// Find the entities of a frame (ISNet or SAM), embed them, write an entity memory folder.
    Entities(cmd::entities::Args),
    /// Compose a first frame from entity cut-outs and a background (FFGo or a free layout).
    Compose(cmd::compose::Args),
    /// Measure how well a video keeps the entities of a memory (CSV, plot, JSON summary).
    Retention(cmd::retention::Args),
    /// Generate a video from a first frame and a prompt with a Wan 2.x model (MP4 or PNGs).
    Generate(cmd::generate::Args),
    /// FFGo few-shot fine-tuning: pre-encode a training list, train a LoRA on a Wan expert.
    Finetune(cmd::finetune::Args),
}

#[cfg(not(unix))]
fn on_signals_clean_up() {}

/// Set by the signal thread before it cleans up: a run that fails from then on (its
/// staging folder removed under it) leaves the exit to that thread, so an interrupted run
/// ends with 130 and its note, not with the error the clean-up caused.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// On SIGINT, SIGTERM (and SIGHUP): removes the staging folders and temporary files of the
/// run in progress, so the output folder stays as it was, and exits with 130.
#[cfg(unix)]
fn on_signals_clean_up() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        tracing::debug!(
            "cannot install signal handlers; an interrupted run may leave temporary files"
        );
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            reelsmith::output::cleanup();
            note!("interrupted (signal {sig}): nothing was written");
            std::process::exit(130);
        }
    });
}

/// What every subcommand gets besides its own arguments.
pub struct Ctx {
    /// Suppress progress bars and summaries.
    pub quiet: bool,
}

/// How long candle's element-wise worker threads spin before they sleep, unless the user
/// set it. candle's default (25 000 spins) keeps a core busy between operations, which
/// starves the matrix-multiply threads on small machines: 1 000 measured 15-20 % more
/// DINOv2 images/s at batch 1 on two cores, and the same at batch 16.
const CANDLE_SPIN_LIMIT: &str = "1000";

/// A write past the file-size limit (`ulimit -f`) fails with an error instead of killing
/// the process with SIGXFSZ, so the run cleans up and says which file could not be
/// written, as on a full disk.
#[cfg(unix)]
fn file_size_limit_is_an_error() {
    // SAFETY: setting a signal's disposition to SIG_IGN, before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

#[cfg(not(unix))]
fn file_size_limit_is_an_error() {}

fn main() {
    file_size_limit_is_an_error();
    // Model inference frees and re-allocates large buffers per layer: keep them mapped.
    reelsmith::embed::models::tune_allocator_for_inference();
    // Before any thread exists (the variable is read once, when candle starts its pool).
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(usage(&e)),
    };
    on_signals_clean_up();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let ctx = Ctx { quiet: cli.quiet };
    let result = match cli.command {
        Command::Probe(a) => cmd::probe::run(a, &ctx),
        Command::Frames(a) => cmd::frames::run(a, &ctx),
        Command::Score(a) => cmd::score::run(a, &ctx),
        Command::Highlights(a) => cmd::highlights::run(a, &ctx),
        Command::Segments(a) => cmd::segments::run(a, &ctx),
        Command::Shots(a) => cmd::shots::run(a, &ctx),
        Command::Keyframes(a) => cmd::keyframes::run(a, &ctx),
        Command::Embed(a) => cmd::embed::run(a, &ctx),
        Command::Batch(a) => cmd::batch::run(a, &ctx),
        Command::Entities(a) => cmd::entities::run(a, &ctx),
        Command::Compose(a) => cmd::compose::run(a, &ctx),
        Command::Retention(a) => cmd::retention::run(a, &ctx),
        Command::Generate(a) => cmd::generate::run(a, &ctx),
        Command::Finetune(a) => cmd::finetune::run(a, &ctx),
    };
    if let Err(e) = result {
        // Interrupted: the signal thread is cleaning up and exits the process with 130.
        while INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::park();
        }
        std::process::exit(fail(&e));
    }
}

/// Prints a command-line error (to stderr) or the help or version asked for (to stdout);
/// the exit status.
fn usage(e: &clap::Error) -> i32 {
    if e.use_stderr() {
        let _ = e.print();
        return e.exit_code();
    }
    let text = e.render();
    let text = if std::io::stdout().is_terminal() {
        text.ansi().to_string()
    } else {
        text.to_string()
    };
    match out::print(|w| w.write_all(text.as_bytes())) {
        Ok(()) | Err(StdoutError::Closed) => 0,
        Err(e) => fail(&e.into()),
    }
}

/// Prints `e` (and a hint when there is one) on stderr; the exit status: 1, or 0 when the
/// reader of stdout went away (nothing is wrong with the run).
fn fail(e: &anyhow::Error) -> i32 {
    if let Some(StdoutError::Closed) = e.downcast_ref::<StdoutError>() {
        return 0;
    }
    note!("error: {}", cmd::message(e));
    if let Some(hint) = cmd::hint(e) {
        note!("hint: {hint}");
    }
    1
}
