//! `reelsmith entities IMAGE|VIDEO [--frame N | --time T] [--segmenter isnet|sam]
//! [--model-dir DIR | --weights FILE] [--embed-model ID | --embed-model-dir DIR] -o DIR`:
//! the entities of one frame, as an entity memory folder.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::models::{ModelChoice, Models};
use reelsmith::pipelines::entities::{self, EntitiesConfig, EntitiesInput, SegmenterKind};

use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith entities`. Every flag overrides the same field of `--config`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// An image (png, jpg, webp, ...) or a video.
    input: PathBuf,
    /// The entity memory folder: mask_NN.png, entity_NN.png (RGBA cut-outs), overlay.png,
    /// embeddings.safetensors and entities.json (written last).
    #[arg(long, short, value_name = "DIR")]
    output: PathBuf,
    /// Settings file (.toml or .json) with the fields of the entities configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// For a video: the 0-based index of the frame to segment [default: 0].
    #[arg(long, value_name = "N", conflicts_with = "time")]
    frame: Option<u64>,
    /// For a video: segment the first frame at or after this time (seconds).
    #[arg(long, value_name = "T")]
    time: Option<f64>,
    #[command(flatten)]
    seg: SegmenterArgs,
    #[command(flatten)]
    embed: EmbedModelArgs,
    /// Do not embed the entities (the memory then cannot be used for retention).
    #[arg(long, conflicts_with_all = ["embed_model", "embed_model_dir"])]
    no_embed: bool,
    /// Device for the models: cpu, cuda[:N], metal[:N] or auto.
    #[arg(long, default_value = "cpu", value_name = "D")]
    device: String,
    /// Write into a folder that holds files this command did not write.
    #[arg(long)]
    overwrite: bool,
}

/// The flags that choose and tune the segmenter (entities, retention).
#[derive(Debug, Clone, clap::Args)]
pub struct SegmenterArgs {
    /// The segmenter: isnet (salient objects) or sam (Segment Anything's automatic masks)
    /// [default: isnet].
    #[arg(long, value_name = "NAME")]
    pub segmenter: Option<SegmenterKind>,
    /// The folder holding the segmenter's checkpoint (for ISNet,
    /// isnet-general-use.safetensors).
    #[arg(long, value_name = "DIR", conflicts_with = "weights")]
    pub model_dir: Option<PathBuf>,
    /// The segmenter's checkpoint file (.safetensors, or an upstream PyTorch .pth).
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// For SAM: vit-b, vit-l, vit-h or mobile [default: read from the checkpoint].
    #[arg(long, value_name = "V", value_parser = parse_sam_variant)]
    pub sam_variant: Option<entities::SamVariantName>,
    /// ISNet: saliency probability above which a pixel belongs to an object [default: 0.5].
    #[arg(long, value_name = "P")]
    pub threshold: Option<f32>,
    /// Objects smaller than this fraction of the frame are dropped [default: 0.002].
    #[arg(long, value_name = "F")]
    pub min_area: Option<f32>,
    /// At most this many entities per frame [default: 16].
    #[arg(long, value_name = "N")]
    pub max_entities: Option<usize>,
    /// Entity pictures per embedding batch [default: 16].
    #[arg(long)]
    pub batch: Option<usize>,
}

impl SegmenterArgs {
    /// The checkpoint the flags name (a file or a folder).
    pub fn weights(&self) -> Option<PathBuf> {
        self.weights.clone().or_else(|| self.model_dir.clone())
    }

    /// Applies the flags to the segmentation settings.
    pub fn apply(&self, s: &mut entities::SegmentSettings) {
        if let Some(v) = self.threshold {
            s.threshold = v;
        }
        if let Some(v) = self.min_area {
            s.min_area = v;
        }
        if let Some(v) = self.max_entities {
            s.max_entities = v;
        }
    }
}

/// The flags that choose the embedding model (entities, retention).
#[derive(Debug, Clone, clap::Args)]
pub struct EmbedModelArgs {
    /// Embedding model: a hub id or alias (dinov2-small, dinov2-base, clip-b32, ...), loaded
    /// through the local Hugging Face cache [default: facebook/dinov2-base when cached].
    #[arg(long, value_name = "ID", conflicts_with = "embed_model_dir")]
    pub embed_model: Option<String>,
    /// Embedding model: a local CLIP or DINOv2 checkpoint folder (Hugging Face layout).
    #[arg(long, value_name = "DIR")]
    pub embed_model_dir: Option<PathBuf>,
}

impl EmbedModelArgs {
    /// The model the flags ask for, if any.
    pub fn choice(&self) -> Option<ModelChoice> {
        match (&self.embed_model, &self.embed_model_dir) {
            (_, Some(dir)) => Some(ModelChoice::Dir(dir.clone())),
            (Some(id), None) => Some(ModelChoice::Hub(id.clone())),
            (None, None) => None,
        }
    }
}

/// `vit-b`, `vit_b`, `b`... as a SAM variant.
pub fn parse_sam_variant(s: &str) -> Result<entities::SamVariantName, String> {
    use entities::SamVariantName as V;
    match s.to_ascii_lowercase().replace('_', "-").as_str() {
        "vit-b" | "b" => Ok(V::VitB),
        "vit-l" | "l" => Ok(V::VitL),
        "vit-h" | "h" => Ok(V::VitH),
        "mobile" | "mobile-sam" | "tiny" => Ok(V::Mobile),
        _ => Err(format!(
            "unknown SAM variant {s:?}: use vit-b, vit-l, vit-h or mobile"
        )),
    }
}

/// A model registry on `device`.
pub fn models(device: &str, quiet: bool) -> Result<Models> {
    let device: reelsmith::embed::DeviceChoice = device.parse()?;
    Ok(Models::new()
        .with_hub(reelsmith::embed::HubOptions::default().progress(!quiet))
        .with_device(device))
}

/// Builds the configuration: defaults, then the file, then the flags.
pub fn config(args: &Args) -> Result<EntitiesConfig> {
    let mut c: EntitiesConfig = super::base_config(args.config.as_deref())?;
    if args.frame.is_some() || args.time.is_some() {
        c.frame = args.frame;
        c.time = args.time;
    }
    if let Some(s) = args.seg.segmenter {
        c.segmenter = s;
    }
    if let Some(w) = args.seg.weights() {
        c.segmenter_weights = Some(w);
    }
    if args.seg.sam_variant.is_some() {
        c.sam_variant = args.seg.sam_variant;
    }
    args.seg.apply(&mut c.segment);
    if let Some(b) = args.seg.batch {
        c.batch = b;
    }
    if let Some(m) = args.embed.choice() {
        c.embed_model = m;
    }
    if args.no_embed {
        c.embed_model = ModelChoice::None;
    }
    c.validate()?;
    Ok(c)
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let cfg = config(&args)?;
    let started = std::time::Instant::now();
    let models = models(&args.device, ctx.quiet)?;
    let input = EntitiesInput::new(&args.input, &args.output, &models).overwrite(args.overwrite);
    let report = entities::run(&input, &cfg, &StageBars::new(ctx.quiet))?;
    for note in &report.notes {
        tracing::warn!("{note}");
    }
    if !ctx.quiet {
        let m = &report.memory;
        for e in &m.entities {
            let b = e.bbox;
            eprintln!(
                "  #{:02}  box {}x{}+{}+{}  centroid ({:.0}, {:.0})  area {:.4}  score {:.3}",
                e.id,
                b.width,
                b.height,
                b.x,
                b.y,
                e.centroid[0],
                e.centroid[1],
                e.area_fraction,
                e.score
            );
        }
        let frame = m
            .frame
            .map(|f| format!(" (frame {} at {:.3} s)", f.index, f.time))
            .unwrap_or_default();
        eprintln!(
            "{} entities of {}{frame}{} written to {} in {:.1} s",
            m.entities.len(),
            args.input.display(),
            m.embedder
                .as_deref()
                .map(|e| format!(", embedded with {e}"))
                .unwrap_or_default(),
            args.output.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
