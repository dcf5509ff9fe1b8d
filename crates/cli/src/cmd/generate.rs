//! `reelsmith generate --model-dir DIR --image FIRST.png --prompt TEXT [...] -o out.mp4 |
//! -o FRAMES_DIR/`: a video from a first frame with a Wan 2.x image-to-video model.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::config::Size;
use reelsmith::models::ModelChoice;
use reelsmith::pipelines::generate::{
    self, DtypeChoice, GenerateConfig, GenerateInput, SchedulerName,
};

use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith generate`. Every flag overrides the same field of `--config`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The Wan model folder in the diffusers layout (model_index.json, transformer/,
    /// [transformer_2/], vae/, text_encoder/, tokenizer/, scheduler/): Wan2.2-I2V-A14B,
    /// Wan2.2-TI2V-5B or Wan2.1-T2V.
    #[arg(long, value_name = "DIR", conflicts_with = "model")]
    model_dir: Option<PathBuf>,
    /// A hub id in the diffusers layout (Wan-AI/Wan2.2-I2V-A14B-Diffusers): read from the
    /// Hugging Face cache, the missing files downloaded (HF_HUB_OFFLINE=1: cache only).
    #[arg(long, value_name = "ID")]
    model: Option<String>,
    /// The first frame (e.g. from `reelsmith compose`); resized to --size when it differs.
    #[arg(long, value_name = "FIRST.png")]
    image: Option<PathBuf>,
    /// What happens in the video.
    #[arg(long, value_name = "TEXT")]
    prompt: Option<String>,
    /// What to avoid [default: Wan's own negative prompt].
    #[arg(long, value_name = "TEXT")]
    negative_prompt: Option<String>,
    /// Prompt embeddings (safetensors, tensor `prompt_embeds` [tokens, dim]) instead of
    /// encoding --prompt.
    #[arg(long, value_name = "FILE")]
    prompt_embeddings: Option<PathBuf>,
    /// Negative prompt embeddings (safetensors) instead of encoding the negative prompt.
    #[arg(long, value_name = "FILE")]
    negative_prompt_embeddings: Option<PathBuf>,
    /// Frames to generate, 4k+1 [default: 81].
    #[arg(long, value_name = "N")]
    frames: Option<usize>,
    /// Video size, multiples of 16 [default: 1280x720].
    #[arg(long, value_name = "WxH")]
    size: Option<Size>,
    /// Denoising steps [default: 50].
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Classifier-free guidance scale; 1 turns guidance off [default: 6].
    #[arg(long, value_name = "G")]
    guidance: Option<f64>,
    /// Guidance of the low-noise expert [default: --guidance].
    #[arg(long, value_name = "G")]
    guidance_2: Option<f64>,
    /// Timestep shift [default: 5; 3 suits 480p].
    #[arg(long, value_name = "S")]
    shift: Option<f64>,
    /// unipc or euler [default: the model's scheduler_config, UniPC for Wan].
    #[arg(long, value_name = "NAME", value_parser = parse_scheduler)]
    scheduler: Option<SchedulerName>,
    /// Seed of the starting noise (the same noise on every device) [default: 0].
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Starting noise [1, z, (frames-1)/4+1, height/8, width/8] (safetensors, tensor
    /// `latents`), to reproduce a run of another implementation.
    #[arg(long, value_name = "NOISE.safetensors")]
    latents: Option<PathBuf>,
    /// Drop this many frames from the start of the video [default: 0].
    #[arg(long, value_name = "N")]
    drop_first: Option<usize>,
    /// Frame rate of the MP4 [default: 16].
    #[arg(long, value_name = "F")]
    fps: Option<u32>,
    /// x264 CRF of the MP4 [default: 18].
    #[arg(long)]
    crf: Option<u8>,
    /// Model precision: auto (f32 on the CPU, bf16 on CUDA, f16 on Metal), f32, bf16, f16.
    #[arg(long, value_name = "T", value_parser = parse_dtype)]
    dtype: Option<DtypeChoice>,
    /// Cache prompt embeddings in this folder across runs.
    #[arg(long, value_name = "DIR")]
    prompt_cache: Option<PathBuf>,
    /// A LoRA adapter (e.g. ADAPTER_DIR/adapter.safetensors from `reelsmith finetune train`,
    /// or a kohya/musubi/VideoX-Fun file) merged into the transformer (the high-noise
    /// expert of a two-expert model). The first --lora-drop-frames frames (the FFGo
    /// transition) are dropped.
    #[arg(long, value_name = "FILE")]
    lora: Option<PathBuf>,
    /// The low-noise expert's LoRA of a two-expert model.
    #[arg(long, value_name = "FILE", requires = "lora")]
    lora_2: Option<PathBuf>,
    /// Scale the LoRA is merged at [default: 1].
    #[arg(long, value_name = "S", requires = "lora")]
    lora_scale: Option<f64>,
    /// Frames dropped from the start with a LoRA [default: 4, the transition frames].
    #[arg(long, value_name = "N", requires = "lora")]
    lora_drop_frames: Option<usize>,
    /// Device: cpu, cuda[:N], metal[:N] or auto.
    #[arg(long, default_value = "cpu", value_name = "D")]
    device: String,
    /// out.mp4 (H.264), or a folder (FRAMES_DIR/) for lossless PNG frames + generate.json.
    #[arg(long, short, value_name = "out.mp4|DIR/")]
    output: PathBuf,
    /// Settings file (.toml or .json) with the fields of the generate configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write into a frames folder that holds files this command did not write.
    #[arg(long)]
    overwrite: bool,
}

fn parse_scheduler(s: &str) -> Result<SchedulerName, String> {
    match s.to_ascii_lowercase().as_str() {
        "unipc" => Ok(SchedulerName::Unipc),
        "euler" => Ok(SchedulerName::Euler),
        _ => Err(format!("unknown scheduler {s:?}: use unipc or euler")),
    }
}

fn parse_dtype(s: &str) -> Result<DtypeChoice, String> {
    match s.to_ascii_lowercase().as_str() {
        "auto" => Ok(DtypeChoice::Auto),
        "f32" | "fp32" | "float32" => Ok(DtypeChoice::F32),
        "bf16" | "bfloat16" => Ok(DtypeChoice::Bf16),
        "f16" | "fp16" | "float16" => Ok(DtypeChoice::F16),
        _ => Err(format!("unknown dtype {s:?}: use auto, f32, bf16 or f16")),
    }
}

/// Builds the configuration: defaults, then the file, then the flags.
pub fn config(args: &Args) -> Result<GenerateConfig> {
    let mut c: GenerateConfig = super::base_config(args.config.as_deref())?;
    match (&args.model_dir, &args.model) {
        (Some(d), _) => c.model = ModelChoice::Dir(d.clone()),
        (None, Some(id)) => c.model = ModelChoice::Hub(id.clone()),
        (None, None) => {}
    }
    macro_rules! set {
        ($($field:ident <- $arg:expr),* $(,)?) => { $( if let Some(v) = $arg { c.$field = v; } )* };
    }
    set!(
        prompt <- args.prompt.clone(),
        frames <- args.frames,
        size <- args.size,
        steps <- args.steps,
        guidance <- args.guidance,
        seed <- args.seed,
        drop_first <- args.drop_first,
        fps <- args.fps,
        crf <- args.crf,
        dtype <- args.dtype,
        lora_scale <- args.lora_scale,
        lora_drop_frames <- args.lora_drop_frames,
    );
    macro_rules! set_some {
        ($($field:ident <- $arg:expr),* $(,)?) => { $( if let Some(v) = $arg { c.$field = Some(v); } )* };
    }
    set_some!(
        negative_prompt <- args.negative_prompt.clone(),
        prompt_embeddings <- args.prompt_embeddings.clone(),
        negative_prompt_embeddings <- args.negative_prompt_embeddings.clone(),
        guidance_2 <- args.guidance_2,
        shift <- args.shift,
        scheduler <- args.scheduler,
        latents <- args.latents.clone(),
        prompt_cache <- args.prompt_cache.clone(),
        lora <- args.lora.clone(),
        lora_2 <- args.lora_2.clone(),
    );
    c.validate()?;
    Ok(c)
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let cfg = config(&args)?;
    let started = std::time::Instant::now();
    let models = super::entities::models(&args.device, ctx.quiet)?;
    let input =
        GenerateInput::new(args.image.as_deref(), &args.output, &models).overwrite(args.overwrite);
    let report = generate::run(&input, &cfg, &StageBars::new(ctx.quiet))?;
    if !ctx.quiet {
        eprintln!(
            "{} frames of {}x{} ({}, {} steps, seed {}) written to {} in {:.1} s (sampling {:.1} s)",
            report.frames,
            report.width,
            report.height,
            report.variant,
            cfg.steps,
            cfg.seed,
            report.output.display(),
            started.elapsed().as_secs_f64(),
            report.seconds
        );
    }
    Ok(())
}
