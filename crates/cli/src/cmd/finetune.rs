//! `reelsmith finetune prepare LIST.json --base DIR [--frames F] [--size WxH] [--entities
//! --weights ISNET [--embed-model M]] -o CACHE` and
//! `reelsmith finetune train CACHE [--base DIR] [--expert high|low] [--rank R] [--alpha A]
//! [--lr LR] [--steps N] [--save-every N] [--seed S] [--entity-attn] [--resume] -o
//! ADAPTER_DIR` and
//! `reelsmith finetune eval EXAMPLES --adapter FILE --base DIR --weights ISNET -o DIR`: FFGo
//! few-shot LoRA fine-tuning of a Wan image-to-video model, and its evaluation by entity
//! retention.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::config::Size;
use reelsmith::models::ModelChoice;
use reelsmith::pipelines::finetune::{
    self, EvalConfig, EvalInput, ExpertName, FinetuneConfig, PrepareConfig, PrepareInput,
    TrainInput,
};
use reelsmith::pipelines::generate::DtypeChoice;

use super::entities::{EmbedModelArgs, SegmenterArgs};
use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith finetune`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Pre-encode FFGo's training list (clips, composed first frames, captions) into a cache
    /// of VAE latents, first-frame conditions and text embeddings.
    Prepare(PrepareArgs),
    /// Train a LoRA on a cache; writes ADAPTER_DIR/adapter.safetensors, loss.csv, loss.png,
    /// checkpoints/.
    Train(TrainArgs),
    /// Generate from held-out composed frames with and without the adapter (same seed and
    /// noise) and compare the entity retention of the two videos: OUT/eval.csv, eval.png,
    /// eval.json, the videos.
    Eval(EvalArgs),
}

/// Arguments of `reelsmith finetune eval`. Every flag overrides the same field of
/// `--config`.
#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// Held-out examples: FFGo's JSON list ({"image_path", "text"}, paths relative to the
    /// list) or a folder of composed frames NAME.png with captions NAME.txt.
    examples: PathBuf,
    /// The adapter: adapter.safetensors or the folder `finetune train` wrote.
    #[arg(long, value_name = "FILE")]
    adapter: PathBuf,
    /// The low-noise expert's adapter of a two-expert model.
    #[arg(long, value_name = "FILE")]
    lora_2: Option<PathBuf>,
    /// The base Wan model folder (diffusers layout).
    #[arg(long, value_name = "DIR")]
    base: Option<PathBuf>,
    /// Frames to generate, 4k+1 [default: 81].
    #[arg(long, value_name = "F")]
    frames: Option<usize>,
    /// Video size [default: 832x480].
    #[arg(long, value_name = "WxH")]
    size: Option<Size>,
    /// Denoising steps [default: 50].
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Guidance scale [default: 6].
    #[arg(long, value_name = "G")]
    guidance: Option<f64>,
    /// Seed of the starting noise, the same with and without the adapter [default: 42].
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Scale the adapter is merged at [default: 1].
    #[arg(long, value_name = "S")]
    lora_scale: Option<f64>,
    /// Frames dropped from the start of both videos [default: 4].
    #[arg(long, value_name = "N")]
    drop_frames: Option<usize>,
    /// Evaluate at most N examples [default: all].
    #[arg(long, value_name = "N")]
    max_examples: Option<usize>,
    /// Video frames sampled per second for retention [default: 2].
    #[arg(long, value_name = "F")]
    fps: Option<f64>,
    /// Segmenter flags (the entities of the composed frames and of the video frames).
    #[command(flatten)]
    seg: SegmenterArgs,
    /// The embedding model of the entities [default: facebook/dinov2-base when cached].
    #[command(flatten)]
    embed: EmbedModelArgs,
    /// Model precision: auto, f32, bf16, f16.
    #[arg(long, value_name = "T", value_parser = parse_dtype)]
    dtype: Option<DtypeChoice>,
    /// Device: cpu, cuda[:N], metal[:N] or auto.
    #[arg(long, default_value = "cpu", value_name = "D")]
    device: String,
    /// Output folder.
    #[arg(long, short, value_name = "DIR")]
    output: PathBuf,
    /// Settings file (.toml or .json) with the fields of the evaluation configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write into a folder that holds files this command did not write.
    #[arg(long)]
    overwrite: bool,
}

/// Arguments of `reelsmith finetune prepare`.
#[derive(Debug, clap::Args)]
struct PrepareArgs {
    /// FFGo's JSON list: [{"file_path", "text", "image_path", "type": "video"}], paths
    /// relative to the list.
    list: PathBuf,
    /// The base Wan model folder (diffusers layout).
    #[arg(long, value_name = "DIR")]
    base: Option<PathBuf>,
    /// Frames per clip, 4k+1 [default: 81]; shorter clips are bucketed down.
    #[arg(long, value_name = "F")]
    frames: Option<usize>,
    /// Training resolution [default: 832x480].
    #[arg(long, value_name = "WxH")]
    size: Option<Size>,
    /// The transition phrase [default: "ad23r2 the camera view suddenly changes."].
    #[arg(long, value_name = "TEXT")]
    transition_phrase: Option<String>,
    /// Leave out captions without the phrase instead of prepending it.
    #[arg(long)]
    require_phrase: bool,
    /// Also cache each composed frame's entities (segmenter + embedding model), for
    /// `finetune train --entity-attn`; needs the segmenter's checkpoint (--weights or
    /// --model-dir).
    #[arg(long)]
    entities: bool,
    /// Segmenter flags (the entities of the composed frames, with --entities).
    #[command(flatten)]
    seg: SegmenterArgs,
    /// The embedding model of the entities [default: facebook/dinov2-base when cached].
    #[command(flatten)]
    embed: EmbedModelArgs,
    /// Device: cpu, cuda[:N], metal[:N] or auto.
    #[arg(long, default_value = "cpu", value_name = "D")]
    device: String,
    /// The cache folder.
    #[arg(long, short, value_name = "CACHE")]
    output: PathBuf,
    /// Settings file (.toml or .json) with the fields of the prepare configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write into a folder that holds files this command did not write.
    #[arg(long)]
    overwrite: bool,
}

/// Arguments of `reelsmith finetune train`.
#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// The cache folder from `finetune prepare`.
    cache: PathBuf,
    /// The base model folder [default: the one the cache was prepared with].
    #[arg(long, value_name = "DIR")]
    base: Option<PathBuf>,
    /// The expert of a two-expert model (Wan2.2-I2V-A14B): high (timesteps ≥ 900) or low.
    #[arg(long, value_name = "high|low", value_parser = parse_expert)]
    expert: Option<ExpertName>,
    /// LoRA rank [default: 128].
    #[arg(long, value_name = "R")]
    rank: Option<usize>,
    /// LoRA alpha [default: 128].
    #[arg(long, value_name = "A")]
    alpha: Option<f64>,
    /// Learning rate [default: 1e-4].
    #[arg(long, value_name = "LR")]
    lr: Option<f64>,
    /// Optimiser steps [default: 1000].
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// A checkpoint every N steps [default: 100].
    #[arg(long, value_name = "N")]
    save_every: Option<usize>,
    /// Seed [default: 42].
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Examples per micro-batch [default: 1].
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Micro-batches per optimiser step [default: 1].
    #[arg(long, value_name = "N")]
    grad_accum: Option<usize>,
    /// Linear warm-up steps [default: 0].
    #[arg(long, value_name = "N")]
    warmup_steps: Option<usize>,
    /// Train an entity cross-attention (video tokens → the composed frame's entity
    /// embeddings) with the LoRA; the cache needs entities (`prepare --entities`). Its
    /// settings: `[entity_attn]` in --config.
    #[arg(long)]
    entity_attn: bool,
    /// Continue the newest checkpoint in the output folder.
    #[arg(long)]
    resume: bool,
    /// Keep every block's activations for the backward pass instead of recomputing them
    /// (faster, far more memory; the same result).
    #[arg(long)]
    no_recompute: bool,
    /// Model precision: auto (bf16 on CUDA, f32 on the CPU), f32, bf16, f16.
    #[arg(long, value_name = "T", value_parser = parse_dtype)]
    dtype: Option<DtypeChoice>,
    /// Device: cpu, cuda[:N], metal[:N] or auto.
    #[arg(long, default_value = "cpu", value_name = "D")]
    device: String,
    /// The adapter folder.
    #[arg(long, short, value_name = "ADAPTER_DIR")]
    output: PathBuf,
    /// Settings file (.toml or .json) with the fields of the training configuration.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn parse_expert(s: &str) -> Result<ExpertName, String> {
    match s.to_ascii_lowercase().as_str() {
        "high" => Ok(ExpertName::High),
        "low" => Ok(ExpertName::Low),
        _ => Err(format!("unknown expert {s:?}: use high or low")),
    }
}

fn parse_dtype(s: &str) -> Result<DtypeChoice, String> {
    match s.to_ascii_lowercase().as_str() {
        "auto" => Ok(DtypeChoice::Auto),
        "f32" => Ok(DtypeChoice::F32),
        "bf16" => Ok(DtypeChoice::Bf16),
        "f16" => Ok(DtypeChoice::F16),
        _ => Err(format!("unknown dtype {s:?}: use auto, f32, bf16 or f16")),
    }
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    match args.command {
        Sub::Prepare(a) => prepare(a, ctx),
        Sub::Train(a) => train(a, ctx),
        Sub::Eval(a) => eval(a, ctx),
    }
}

fn eval(a: EvalArgs, ctx: &Ctx) -> Result<()> {
    let mut c: EvalConfig = super::base_config(a.config.as_deref())?;
    if let Some(b) = &a.base {
        c.base = ModelChoice::Dir(b.clone());
    }
    if a.lora_2.is_some() {
        c.lora_2 = a.lora_2.clone();
    }
    macro_rules! set {
        ($($field:ident <- $arg:expr),* $(,)?) => { $( if let Some(v) = $arg { c.$field = v; } )* };
    }
    set!(
        frames <- a.frames,
        size <- a.size,
        steps <- a.steps,
        guidance <- a.guidance,
        seed <- a.seed,
        lora_scale <- a.lora_scale,
        drop_frames <- a.drop_frames,
        dtype <- a.dtype,
    );
    if a.max_examples.is_some() {
        c.max_examples = a.max_examples;
    }
    if let Some(f) = a.fps {
        c.retention.fps = f;
    }
    if let Some(s) = a.seg.segmenter {
        c.entities.segmenter = s;
    }
    if let Some(w) = a.seg.weights() {
        c.entities.segmenter_weights = Some(w);
    }
    if a.seg.sam_variant.is_some() {
        c.entities.sam_variant = a.seg.sam_variant;
    }
    a.seg.apply(&mut c.entities.segment);
    if let Some(b) = a.seg.batch {
        c.entities.batch = b;
        c.retention.batch = b;
    }
    if let Some(m) = a.embed.choice() {
        c.entities.embed_model = m;
    }
    c.validate()?;
    let models = super::entities::models(&a.device, ctx.quiet)?;
    let input = EvalInput::new(&a.examples, &a.adapter, &a.output, &models).overwrite(a.overwrite);
    let r = finetune::eval(&input, &c, &StageBars::new(ctx.quiet))?;
    if !ctx.quiet {
        for s in &r.skipped {
            eprintln!("skipped #{} {}: {}", s.index, s.name, s.reason);
        }
        println!("example  entities  similarity base → lora  presence base → lora");
        for e in &r.examples {
            println!(
                "{:>7}  {:>8}  {:>10.4} → {:.4}  {:>8.3} → {:.3}",
                e.entry.index,
                e.entities,
                e.base_similarity,
                e.lora_similarity,
                e.base_presence,
                e.lora_presence
            );
        }
        println!(
            "{:>7}  {:>8}  {:>10.4} → {:.4}  {:>8.3} → {:.3}",
            "mean",
            "",
            r.mean_base_similarity,
            r.mean_lora_similarity,
            r.mean_base_presence,
            r.mean_lora_presence
        );
        eprintln!(
            "{} example(s) ({} skipped), higher similarity with the adapter on {}; {} in {:.1} s",
            r.examples.len(),
            r.skipped.len(),
            r.lora_better,
            a.output.join("eval.csv").display(),
            r.seconds
        );
    }
    Ok(())
}

fn prepare(a: PrepareArgs, ctx: &Ctx) -> Result<()> {
    let mut c: PrepareConfig = super::base_config(a.config.as_deref())?;
    if let Some(b) = &a.base {
        c.base = ModelChoice::Dir(b.clone());
    }
    if let Some(f) = a.frames {
        c.frames = f;
    }
    if let Some(s) = a.size {
        c.size = s;
    }
    if let Some(p) = &a.transition_phrase {
        c.transition_phrase = p.clone();
    }
    if a.require_phrase {
        c.phrase_mode = reelsmith_diffusion_phrase_require();
    }
    if a.entities || c.entities.is_some() {
        let mut e = c.entities.take().unwrap_or_default();
        if let Some(s) = a.seg.segmenter {
            e.segmenter = s;
        }
        if let Some(w) = a.seg.weights() {
            e.segmenter_weights = Some(w);
        }
        if a.seg.sam_variant.is_some() {
            e.sam_variant = a.seg.sam_variant;
        }
        a.seg.apply(&mut e.segment);
        if let Some(b) = a.seg.batch {
            e.batch = b;
        }
        if let Some(m) = a.embed.choice() {
            e.embed_model = m;
        }
        c.entities = Some(e);
    }
    c.validate()?;
    let models = super::entities::models(&a.device, ctx.quiet)?;
    let mut input = PrepareInput::new(&a.list, &a.output, &models);
    input.overwrite = a.overwrite;
    let r = finetune::prepare(&input, &c, &StageBars::new(ctx.quiet))?;
    if !ctx.quiet {
        for s in &r.skipped {
            eprintln!("skipped #{} {}: {}", s.index, s.name, s.reason);
        }
        eprintln!(
            "{} example(s) cached in {} ({} skipped; {} frames at {}x{}) in {:.1} s",
            r.examples,
            r.cache.display(),
            r.skipped.len(),
            r.frames,
            r.width,
            r.height,
            r.seconds
        );
    }
    Ok(())
}

fn reelsmith_diffusion_phrase_require() -> reelsmith::pipelines::finetune::PhraseMode {
    reelsmith::pipelines::finetune::PhraseMode::Require
}

fn train(a: TrainArgs, ctx: &Ctx) -> Result<()> {
    let mut c: FinetuneConfig = super::base_config(a.config.as_deref())?;
    if let Some(b) = &a.base {
        c.base = ModelChoice::Dir(b.clone());
    }
    if a.expert.is_some() {
        c.expert = a.expert;
    }
    macro_rules! set {
        ($($field:ident <- $arg:expr),* $(,)?) => { $( if let Some(v) = $arg { c.$field = v; } )* };
    }
    set!(
        rank <- a.rank,
        alpha <- a.alpha,
        lr <- a.lr,
        steps <- a.steps,
        save_every <- a.save_every,
        seed <- a.seed,
        batch_size <- a.batch_size,
        grad_accum <- a.grad_accum,
        warmup_steps <- a.warmup_steps,
        dtype <- a.dtype,
    );
    if a.no_recompute {
        c.recompute = false;
    }
    if a.entity_attn && c.entity_attn.is_none() {
        c.entity_attn = Some(finetune::EntityAttnConfig::default());
    }
    c.validate()?;
    let models = super::entities::models(&a.device, ctx.quiet)?;
    let input = TrainInput::new(&a.cache, &a.output, &models).resume(a.resume);
    let r = finetune::train(&input, &c, &StageBars::new(ctx.quiet))?;
    if !ctx.quiet {
        eprintln!(
            "{} steps on {} example(s) ({}, {:?} timesteps){}: loss {:.4} → {:.4} (first/last tenth {:.4} → {:.4}); adapter {} in {:.1} s",
            r.steps,
            r.examples,
            r.transformer,
            r.timesteps,
            r.resumed_from
                .map(|s| format!(", resumed at step {s}"))
                .unwrap_or_default(),
            r.first_loss,
            r.final_loss,
            r.first_tenth_loss,
            r.last_tenth_loss,
            r.adapter.display(),
            r.seconds
        );
    }
    Ok(())
}
