//! `reelsmith compose --background IMG --entity CUTOUT.png... [--layout ffgo | FILE.json]
//! [--size WxH] -o first_frame.png`: a first frame composed as FFGo builds its inputs.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::config::Size;
use reelsmith::pipelines::compose::{self, ComposeConfig, ComposeInput, LayoutChoice};

use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith compose`. Every flag overrides the same field of `--config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The background scene.
    #[arg(long, value_name = "IMG")]
    background: PathBuf,
    /// An RGBA cut-out (such as entity_NN.png of `reelsmith entities`); repeatable, drawn in
    /// order (top to bottom in the FFGo layout).
    #[arg(long = "entity", value_name = "CUTOUT.png", required = true, num_args = 1..)]
    entities: Vec<PathBuf>,
    /// `ffgo` (background in the right half, cut-outs stacked in the left half) or a JSON
    /// file: {"background": "cover|contain|stretch", "entities": [{"center": [x, y],
    /// "scale": h}, ...]} with fractions of the canvas [default: ffgo].
    #[arg(long, value_name = "ffgo|FILE.json")]
    layout: Option<LayoutChoice>,
    /// Canvas size, the video model's resolution [default: 1280x720, as FFGo].
    #[arg(long, value_name = "WxH")]
    size: Option<Size>,
    /// Paste cut-outs without transparency as rectangles instead of refusing them.
    #[arg(long)]
    allow_opaque: bool,
    /// The composed image (.png or .jpg); the layout record goes beside it as
    /// NAME.layout.json.
    #[arg(long, short, value_name = "first_frame.png")]
    output: PathBuf,
    /// Settings file (.toml or .json) with the fields of the compose configuration.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Builds the configuration: defaults, then the file, then the flags.
pub fn config(args: &Args) -> Result<ComposeConfig> {
    let mut c: ComposeConfig = super::base_config(args.config.as_deref())?;
    if let Some(l) = &args.layout {
        c.layout = l.clone();
    }
    if let Some(s) = args.size {
        c.size = s;
    }
    if args.allow_opaque {
        c.allow_opaque = true;
    }
    c.validate()?;
    Ok(c)
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let cfg = config(&args)?;
    let started = std::time::Instant::now();
    let input = ComposeInput::new(&args.background, &args.entities, &args.output);
    let report = compose::run(&input, &cfg, &StageBars::new(ctx.quiet))?;
    if !ctx.quiet {
        for e in &report.layout.entities {
            let r = e.rect;
            eprintln!(
                "  {}  at {}x{}{:+}{:+}{}",
                e.name,
                r.width,
                r.height,
                r.x,
                r.y,
                if e.clipped { " (clipped)" } else { "" }
            );
        }
        eprintln!(
            "{} cut-outs on a {}x{} {} layout written to {} (+ {}) in {:.2} s",
            report.layout.entities.len(),
            report.layout.canvas[0],
            report.layout.canvas[1],
            report.layout.layout,
            report.image.display(),
            report.layout_file.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
