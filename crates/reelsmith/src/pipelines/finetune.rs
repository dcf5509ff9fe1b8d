//! FFGo few-shot fine-tuning of a Wan image-to-video model: a LoRA that learns to carry the
//! entities of a composed first frame into the generated scene.
//!
//! Two steps, each a pipeline of the usual shape:
//!
//! - [`prepare`]: FFGo's training list (`[{"file_path", "text", "image_path", "type"}]`,
//!   paths relative to the list) → per example: the clip's first `frames` frames (bucketed
//!   to `4k + 1`), resized to `size`, pixel frames 0–3 replaced by the composed first frame,
//!   VAE-encoded; the image-to-video condition from the composed frame; the caption (the
//!   transition phrase prepended where missing) encoded by UMT5 → a cache folder
//!   (`example_NNNNNN.safetensors` + `index.json`, written last). An example may give its
//!   materials instead of a composed frame (`"background_path"` + `"entity_paths"`, RGBA
//!   cut-outs): the frame is composed in FFGo's layout at `size` and kept in the cache as
//!   `first_frame_NNNNNN.png`. Malformed examples
//!   (missing clip or image, unreadable image, too few frames, empty caption…) are listed
//!   with their reasons in the report and in `index.json`, and left out. With
//!   [`PrepareConfig::entities`], each composed frame's entities are found and embedded as
//!   the [`entities`](super::entities) pipeline does (segmenter + DINOv2/CLIP) and cached
//!   with their centroids and areas, for the entity cross-attention.
//! - [`train`]: the cache → a LoRA on the chosen expert (Wan2.2-A14B: `high` trains
//!   `transformer` on timesteps ≥ 900, `low` trains `transformer_2` below) with
//!   [`reelsmith_diffusion::train()`] → `adapter.safetensors` (+ `adapter_config.json`),
//!   `loss.csv`, `loss.png`, `checkpoints/`, `train.json`. Training writes into its folder
//!   as it goes (checkpoints must survive an interruption) and `resume` continues the newest
//!   checkpoint with the same loss curve. With [`FinetuneConfig::entity_attn`], an entity
//!   cross-attention (video tokens → the composed frame's entity embeddings, zero-initialised
//!   output) trains with the LoRA and is saved in the same adapter file under `entity_attn.`;
//!   [`generate`](super::generate) and [`eval`] then compute the first frame's entities the
//!   way the cache did.
//!
//! - [`eval`]: held-out composed frames + captions → a video from the base model and one
//!   with the adapter (same seed and noise) → the entity retention of each, side by side
//!   (`eval.csv`, `eval.png`, `eval.json`; see [`EvalConfig`]).
//!
//! Sampling with the adapter: [`generate`](super::generate) with `lora` (merged at
//! `lora_scale`) and `drop_first` to drop the transition frames.
//!
//! ```no_run
//! use reelsmith::models::{ModelChoice, Models};
//! use reelsmith::pipelines::finetune::{self, PrepareConfig, PrepareInput, TrainInput, FinetuneConfig, ExpertName};
//! use reelsmith::progress::NoProgress;
//!
//! let models = Models::new();
//! let base = ModelChoice::Dir("Wan2.2-I2V-A14B-Diffusers".into());
//! let prep = PrepareConfig { base: base.clone(), ..Default::default() };
//! finetune::prepare(&PrepareInput::new("data/train.json", "cache", &models), &prep, &NoProgress)?;
//! let cfg = FinetuneConfig { base, expert: Some(ExpertName::High), steps: 800, ..Default::default() };
//! let report = finetune::train(&TrainInput::new("cache", "lora_high", &models), &cfg, &NoProgress)?;
//! println!("final loss {:.4}", report.final_loss);
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};

use reelsmith_decode::DecodeOptions;
use reelsmith_diffusion::cache::{
    read_cache, write_example, CacheEntry, CacheIndex, CACHE_VERSION,
};
use reelsmith_diffusion::candle_core::DType;
use reelsmith_diffusion::candle_core::{Device, Tensor};
use reelsmith_diffusion::dataset::{bucket_frames, read_ffgo_list, REPLACED_FRAMES};
pub use reelsmith_diffusion::dataset::{PhraseMode, Skipped, TRANSITION_PHRASE};
pub use reelsmith_diffusion::EntityAttnConfig;
use reelsmith_diffusion::{EntitySet, LoraConfig, TrainConfig, WanLora, WanTransformer};
pub use reelsmith_diffusion::{LoraNaming, TimestepRange};
use serde::{Deserialize, Serialize};

use crate::config::Size;
use crate::first_frame::{absolute_choice, read_image};
use crate::models::{ModelChoice, Models};
use crate::output::OutputDir;
use crate::pipelines::compose::compose_ffgo;
use crate::pipelines::entities::{frame_entities, EntitiesConfig};
use crate::pipelines::generate::{load_pipeline, DtypeChoice};
use crate::progress::{NoProgress, Progress, Stage, StageGuard};
use crate::Error;

mod evaluate;
pub use evaluate::{
    eval, read_eval_examples, EvalConfig, EvalEntry, EvalExample, EvalInput, EvalReport,
};

fn base_dir(base: &ModelChoice) -> Result<&Path, Error> {
    match base {
        ModelChoice::Dir(d) => Ok(d),
        _ => Err(Error::config(
            "base",
            "give the base Wan model folder in the diffusers layout (--base DIR)",
        )),
    }
}

/// Settings of [`prepare`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrepareConfig {
    /// The base Wan model folder (its VAE and text encoder encode the examples).
    pub base: ModelChoice,
    /// Frames per clip, `4k + 1` (default 81); shorter clips are bucketed down to the
    /// largest `4k + 1` they hold.
    pub frames: usize,
    /// Training resolution (default 832x480), multiples of 16.
    pub size: Size,
    /// The transition phrase captions start with.
    pub transition_phrase: String,
    /// What to do with a caption without the phrase (default: prepend it).
    pub phrase_mode: PhraseMode,
    /// Precision of the text encoder (default auto).
    pub dtype: DtypeChoice,
    /// Also find and embed each composed frame's entities (for the entity
    /// cross-attention): the segmenter (its checkpoint is required) and the embedding model
    /// (DINOv2 by default). `None` (default): no entities.
    pub entities: Option<EntitiesConfig>,
}

impl Default for PrepareConfig {
    fn default() -> Self {
        Self {
            base: ModelChoice::None,
            frames: 81,
            size: Size::new(832, 480),
            transition_phrase: TRANSITION_PHRASE.into(),
            phrase_mode: PhraseMode::Prepend,
            dtype: DtypeChoice::Auto,
            entities: None,
        }
    }
}

/// How entities are computed, with the paths made absolute, so that the record in a
/// cache or an adapter names the same files from any working directory.
pub(crate) fn absolute_entities(config: &EntitiesConfig) -> EntitiesConfig {
    EntitiesConfig {
        segmenter_weights: config
            .segmenter_weights
            .as_ref()
            .map(|w| std::fs::canonicalize(w).unwrap_or_else(|_| w.clone())),
        embed_model: absolute_choice(&config.embed_model),
        ..config.clone()
    }
}

/// The entities of a composed first frame as the entity cross-attention takes them: one
/// embedding row per entity `[n, dim]` and `[cx, cy, area]` as fractions of the frame
/// `[n, 3]` (f32, CPU).
pub(crate) fn entity_set(
    frame: &image::RgbImage,
    source: &Path,
    models: &Models,
    config: &EntitiesConfig,
) -> Result<EntitySet, Error> {
    let memory = frame_entities(frame, source, models, config, &NoProgress)?;
    let (w, h) = (memory.width.max(1) as f32, memory.height.max(1) as f32);
    let mut rows = Vec::new();
    let mut geo = Vec::new();
    let mut dim = 0;
    for e in &memory.entities {
        let Some(v) = &e.embedding else {
            return Err(Error::config(
                "embed_model",
                format!("entity {} of {} has no embedding", e.id, source.display()),
            ));
        };
        dim = v.len();
        rows.extend_from_slice(v);
        geo.extend([e.centroid[0] / w, e.centroid[1] / h, e.area_fraction]);
    }
    let n = memory.entities.len();
    let t = |v: Vec<f32>, c: usize| {
        Tensor::from_vec(v, (n, c), &Device::Cpu).map_err(|e| Error::InvalidInput {
            path: source.to_path_buf(),
            detail: format!("entity tensors: {e}"),
        })
    };
    Ok(EntitySet {
        embeddings: t(rows, dim)?,
        geometry: Some(t(geo, 3)?),
    })
}

impl PrepareConfig {
    /// Checks every setting; the error names the one at fault.
    pub fn validate(&self) -> Result<(), Error> {
        base_dir(&self.base)?;
        if self.frames < 5 || !(self.frames - 1).is_multiple_of(4) || self.frames > 1025 {
            return Err(Error::config(
                "frames",
                format!(
                    "{} is not 4k+1 in 5..=1025 (e.g. 17, 33, 49, 81)",
                    self.frames
                ),
            ));
        }
        let Size { width, height } = self.size;
        if width % 16 != 0
            || height % 16 != 0
            || width == 0
            || height == 0
            || width > 4096
            || height > 4096
        {
            return Err(Error::config(
                "size",
                format!(
                    "{}: width and height must be positive multiples of 16 (at most 4096)",
                    self.size
                ),
            ));
        }
        if let Some(e) = &self.entities {
            if e.frame.is_some() || e.time.is_some() {
                return Err(Error::config(
                    "entities",
                    "the entities of composed frames (images) are cached: leave frame and time unset",
                ));
            }
            e.validate()?;
        }
        Ok(())
    }
}

/// The list, the cache folder and the models of a [`prepare`] run.
#[derive(Debug, Clone, Copy)]
pub struct PrepareInput<'a> {
    /// FFGo's JSON list.
    pub list: &'a Path,
    /// The cache folder.
    pub output: &'a Path,
    /// Where models come from.
    pub models: &'a Models,
    /// Replace a folder holding files this pipeline did not write.
    pub overwrite: bool,
}

impl<'a> PrepareInput<'a> {
    /// The input: `list` into the cache folder `output`.
    pub fn new(
        list: &'a (impl AsRef<Path> + ?Sized),
        output: &'a (impl AsRef<Path> + ?Sized),
        models: &'a Models,
    ) -> Self {
        Self {
            list: list.as_ref(),
            output: output.as_ref(),
            models,
            overwrite: false,
        }
    }
}

/// What [`prepare`] cached.
#[derive(Debug, Clone, Serialize)]
pub struct PrepareReport {
    /// The cache folder.
    pub cache: PathBuf,
    /// Examples cached.
    pub examples: usize,
    /// Examples left out, with why.
    pub skipped: Vec<Skipped>,
    /// Frames per clip asked for.
    pub frames: usize,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Seconds spent.
    pub seconds: f64,
}

/// Reads up to `n` frames from the start of a clip.
fn read_frames(path: &Path, n: usize) -> Result<Vec<image::RgbImage>, String> {
    let video = reelsmith_decode::open(path).map_err(|e| format!("cannot open the clip: {e}"))?;
    let mut out = Vec::with_capacity(n);
    for f in video
        .frames(&DecodeOptions::new())
        .map_err(|e| format!("cannot decode the clip: {e}"))?
    {
        let f = f.map_err(|e| format!("cannot decode the clip: {e}"))?;
        out.push(f.image);
        if out.len() == n {
            break;
        }
    }
    Ok(out)
}

/// Runs [`prepare`] (see the [module docs](self)).
pub fn prepare(
    input: &PrepareInput<'_>,
    config: &PrepareConfig,
    progress: &dyn Progress,
) -> Result<PrepareReport, Error> {
    config.validate()?;
    let dir = base_dir(&config.base)?;
    let started = std::time::Instant::now();
    let (entries, mut skipped) =
        read_ffgo_list(input.list, &config.transition_phrase, config.phrase_mode)
            .map_err(|e| Error::diffusion(input.list, e))?;
    let out = OutputDir::begin(input.output, "finetune-prepare", input.overwrite)?
        .inputs(&[input.list])?;
    let pipeline = {
        let _load = StageGuard::start(progress, Stage::Load, None);
        load_pipeline(input.models, dir, config.dtype)?
    };
    let mut pipe = pipeline.lock().unwrap_or_else(|p| p.into_inner());
    let (w, h) = (config.size.width as usize, config.size.height as usize);
    let m = pipe.size_multiple();
    if w % m != 0 || h % m != 0 {
        return Err(Error::config(
            "size",
            format!("{}: this model needs multiples of {m}", config.size),
        ));
    }
    let entities_config = config.entities.as_ref().map(absolute_entities);
    let mut examples = Vec::new();
    let stage = StageGuard::start(progress, Stage::Embed, Some(entries.len() as u64));
    for e in &entries {
        let name = e.clip.display().to_string();
        let mut skip = |reason: String| {
            skipped.push(Skipped {
                index: e.index,
                name: name.clone(),
                reason,
            })
        };
        let frames = match read_frames(&e.clip, config.frames) {
            Ok(f) => f,
            Err(r) => {
                skip(r);
                stage.advance(1);
                continue;
            }
        };
        let Some(n) = bucket_frames(frames.len(), config.frames) else {
            skip(format!(
                "the clip has {} frame(s); at least 5 are needed",
                frames.len()
            ));
            stage.advance(1);
            continue;
        };
        let composed = if e.cutouts.is_empty() {
            read_image(&e.image, "first frame").map(|i| i.to_rgb8())
        } else {
            compose_ffgo(&e.image, &e.cutouts, w as u32, h as u32)
        };
        let composed = match composed {
            Ok(i) => i,
            Err(err) => {
                let what = if e.cutouts.is_empty() {
                    "unreadable first frame"
                } else {
                    "cannot compose the first frame from its materials"
                };
                skip(format!("{what}: {err}"));
                stage.advance(1);
                continue;
            }
        };
        let mut ex = pipe
            .encode_training_example(
                &name,
                &frames[..n],
                &composed,
                &e.caption,
                (w, h),
                REPLACED_FRAMES,
            )
            .map_err(|err| Error::diffusion(&e.clip, err))?;
        if !e.cutouts.is_empty() {
            // The frame composed from the materials, kept beside the example to look at.
            let png = format!("first_frame_{:06}.png", examples.len());
            let path = out.path(&png)?;
            composed
                .save_with_format(&path, image::ImageFormat::Png)
                .map_err(|err| crate::output::write_err(&path, err))?;
        }
        if let Some(ec) = &entities_config {
            ex.entities = Some(entity_set(&composed, &e.image, input.models, ec)?);
        }
        let file = format!("example_{:06}.safetensors", examples.len());
        write_example(&out.path(&file)?, &ex).map_err(|err| Error::diffusion(&e.clip, err))?;
        examples.push(CacheEntry {
            name,
            file,
            caption: e.caption.clone(),
            frames: n,
        });
        stage.advance(1);
    }
    drop(stage);
    drop(pipe);
    skipped.sort_by_key(|s| s.index);
    if examples.is_empty() {
        return Err(Error::InvalidInput {
            path: input.list.to_path_buf(),
            detail: format!(
                "no usable example ({} left out: {})",
                skipped.len(),
                skipped
                    .iter()
                    .map(|s| format!("#{} {}: {}", s.index, s.name, s.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }
    let index = CacheIndex {
        version: CACHE_VERSION,
        base: dir.to_path_buf(),
        frames: config.frames,
        width: w,
        height: h,
        transition_phrase: config.transition_phrase.clone(),
        examples,
        skipped: skipped.clone(),
        entities: entities_config
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok()),
    };
    let report = PrepareReport {
        cache: input.output.to_path_buf(),
        examples: index.examples.len(),
        skipped,
        frames: config.frames,
        width: config.size.width,
        height: config.size.height,
        seconds: started.elapsed().as_secs_f64(),
    };
    out.commit("index.json", &index)?;
    Ok(report)
}

/// Which expert of a two-expert model (Wan2.2-I2V-A14B) a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpertName {
    /// `transformer`, timesteps ≥ boundary (900).
    High,
    /// `transformer_2`, timesteps below.
    Low,
}

/// Settings of [`train`]. Defaults are FFGo's recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// The base model folder (the cache's by default).
    pub base: ModelChoice,
    /// The expert of a two-expert model (required there; not taken by one-transformer
    /// models).
    pub expert: Option<ExpertName>,
    /// LoRA rank (default 128).
    pub rank: usize,
    /// LoRA alpha (default 128).
    pub alpha: f64,
    /// LoRA dropout (default 0).
    pub dropout: f64,
    /// Module-name patterns of the adapted layers (default: every dense layer of every
    /// block).
    pub targets: Vec<String>,
    /// Learning rate (default 1e-4).
    pub lr: f64,
    /// AdamW weight decay (default 3e-2).
    pub weight_decay: f64,
    /// Gradient-norm clipping (default 0.05, FFGo's; 0 = none).
    pub max_grad_norm: f64,
    /// Warm-up steps (default 0).
    pub warmup_steps: usize,
    /// Optimiser steps (default 1000).
    pub steps: usize,
    /// Examples per micro-batch (default 1).
    pub batch_size: usize,
    /// Micro-batches per step (default 1).
    pub grad_accum: usize,
    /// A checkpoint every N steps (default 100; 0 = at the end only).
    pub save_every: usize,
    /// Seed (default 42).
    pub seed: u64,
    /// Naming of `adapter.safetensors` (default `peft`; `kohya` for VideoX-Fun/ComfyUI).
    pub naming: LoraNaming,
    /// Precision of the base weights (default auto: bf16 on CUDA, f32 on the CPU).
    pub dtype: DtypeChoice,
    /// Recompute each block's activations in the backward pass (default on, as FFGo's
    /// `--gradient_checkpointing`): far less memory for about a third more time; the same
    /// result either way.
    pub recompute: bool,
    /// Train an entity cross-attention with the LoRA (FFGo's entity conditioning; the
    /// cache must hold entities: `prepare` with `entities`). `None` (default): the LoRA
    /// alone. `entity_dim` is taken from the cache.
    pub entity_attn: Option<EntityAttnConfig>,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        let t = TrainConfig::default();
        Self {
            base: ModelChoice::None,
            expert: None,
            rank: t.lora.rank,
            alpha: t.lora.alpha,
            dropout: 0.0,
            targets: t.lora.targets.clone(),
            lr: t.learning_rate,
            weight_decay: t.weight_decay,
            max_grad_norm: t.max_grad_norm,
            warmup_steps: t.warmup_steps,
            steps: t.steps,
            batch_size: 1,
            grad_accum: 1,
            save_every: t.save_every,
            seed: t.seed,
            naming: LoraNaming::Peft,
            dtype: DtypeChoice::Auto,
            recompute: t.recompute,
            entity_attn: None,
        }
    }
}

impl FinetuneConfig {
    /// The trainer's settings for `range`.
    pub fn train_config(&self, range: TimestepRange) -> TrainConfig {
        TrainConfig {
            lora: LoraConfig {
                rank: self.rank,
                alpha: self.alpha,
                dropout: self.dropout,
                scale: 1.0,
                targets: self.targets.clone(),
            },
            learning_rate: self.lr,
            weight_decay: self.weight_decay,
            max_grad_norm: self.max_grad_norm,
            warmup_steps: self.warmup_steps,
            steps: self.steps,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            save_every: self.save_every,
            seed: self.seed,
            timesteps: range,
            adapter_naming: self.naming,
            recompute: self.recompute,
            entity_attn: self.entity_attn.clone(),
            ..TrainConfig::default()
        }
    }

    /// Checks every setting; the error names the one at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if self.rank == 0 || self.rank > 4096 {
            return Err(Error::config(
                "rank",
                format!("{} is not in 1..=4096", self.rank),
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Error::config(
                "alpha",
                format!("{} is not positive", self.alpha),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(
                "dropout",
                format!("{} is not in [0, 1)", self.dropout),
            ));
        }
        if self.targets.is_empty() {
            return Err(Error::config(
                "targets",
                "give at least one module-name pattern",
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr < 1.0) {
            return Err(Error::config("lr", format!("{} is not in (0, 1)", self.lr)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::config(
                "weight_decay",
                format!("{} is negative", self.weight_decay),
            ));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return Err(Error::config(
                "max_grad_norm",
                "must be ≥ 0 (0 = no clipping)",
            ));
        }
        if self.steps == 0 {
            return Err(Error::config("steps", "train at least one step"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        if self.grad_accum == 0 {
            return Err(Error::config("grad_accum", "must be at least 1"));
        }
        if let Some(e) = &self.entity_attn {
            e.validate()
                .map_err(|err| Error::config("entity_attn", err.to_string()))?;
        }
        Ok(())
    }
}

/// The cache, the adapter folder and the models of a [`train`] run.
#[derive(Debug, Clone, Copy)]
pub struct TrainInput<'a> {
    /// The cache folder from [`prepare`].
    pub cache: &'a Path,
    /// The adapter folder.
    pub output: &'a Path,
    /// Where models come from (the device).
    pub models: &'a Models,
    /// Continue the newest checkpoint in `output`.
    pub resume: bool,
}

impl<'a> TrainInput<'a> {
    /// The input: `cache` into the adapter folder `output`.
    pub fn new(
        cache: &'a (impl AsRef<Path> + ?Sized),
        output: &'a (impl AsRef<Path> + ?Sized),
        models: &'a Models,
    ) -> Self {
        Self {
            cache: cache.as_ref(),
            output: output.as_ref(),
            models,
            resume: false,
        }
    }

    /// Sets [`TrainInput::resume`].
    pub fn resume(mut self, resume: bool) -> Self {
        self.resume = resume;
        self
    }
}

/// What [`train`] produced.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// `OUT/adapter.safetensors`.
    pub adapter: PathBuf,
    /// `OUT/loss.csv`.
    pub loss_csv: PathBuf,
    /// `OUT/loss.png`, when it could be drawn.
    pub loss_plot: Option<PathBuf>,
    /// The transformer trained (`transformer` or `transformer_2`).
    pub transformer: String,
    /// Timestep range.
    pub timesteps: TimestepRange,
    /// Examples trained on.
    pub examples: usize,
    /// Steps in all.
    pub steps: usize,
    /// The step a resumed run continued from.
    pub resumed_from: Option<usize>,
    /// Loss of the first step.
    pub first_loss: f64,
    /// Loss of the last step.
    pub final_loss: f64,
    /// Mean loss of the first and last tenth of the steps.
    pub first_tenth_loss: f64,
    /// See `first_tenth_loss`.
    pub last_tenth_loss: f64,
    /// Seconds spent.
    pub seconds: f64,
    /// The settings.
    pub parameters: FinetuneConfig,
}

/// Runs [`train`] (see the [module docs](self)).
pub fn train(
    input: &TrainInput<'_>,
    config: &FinetuneConfig,
    progress: &dyn Progress,
) -> Result<TrainReport, Error> {
    config.validate()?;
    let started = std::time::Instant::now();
    match std::fs::symlink_metadata(input.output) {
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
            return Err(Error::Output {
                path: input.output.to_path_buf(),
                detail: "is not a folder (or is a symbolic link); give a folder for the adapter"
                    .into(),
            })
        }
        _ => {}
    }
    let device = input.models.device().device().map_err(|e| Error::Model {
        model: "wan".into(),
        source: e.into(),
    })?;
    let (cache_index, data) = {
        let _s = StageGuard::start(progress, Stage::Load, None);
        read_cache(input.cache, &device).map_err(|e| Error::diffusion(input.cache, e))?
    };
    let base = match &config.base {
        ModelChoice::Dir(d) => d.clone(),
        _ => cache_index.base.clone(),
    };
    let info: serde_json::Value = std::fs::read(base.join("model_index.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let two = base.join("transformer_2").join("config.json").is_file()
        && info.get("boundary_ratio").is_some_and(|b| !b.is_null());
    let (sub, range) = match (two, config.expert) {
        (true, Some(ExpertName::High)) => ("transformer", TimestepRange::High),
        (true, Some(ExpertName::Low)) => ("transformer_2", TimestepRange::Low),
        (true, None) => {
            return Err(Error::config(
                "expert",
                "this model has two experts: train one LoRA per expert (--expert high, then --expert low)",
            ))
        }
        (false, None) => ("transformer", TimestepRange::All),
        (false, Some(_)) => {
            return Err(Error::config(
                "expert",
                "this model has one transformer; leave --expert out",
            ))
        }
    };
    let mut tcfg = config.train_config(range);
    if let Some(e) = tcfg.entity_attn.as_mut() {
        match &cache_index.entities {
            // The adapter records how the entities were made, so sampling makes them alike.
            Some(how) => e.source = Some(how.clone()),
            None => {
                return Err(Error::config(
                    "entity_attn",
                    format!(
                        "the cache {} holds no entities (prepared without them, or by an older version); prepare it again with entities (`reelsmith finetune prepare --entities --weights ISNET …`)",
                        input.cache.display()
                    ),
                ))
            }
        }
    }
    if let Some(b) = info.get("boundary_ratio").and_then(|b| b.as_f64()) {
        tcfg.boundary = b;
    }
    let dtype = match config.dtype {
        DtypeChoice::F32 => DType::F32,
        DtypeChoice::Bf16 => DType::BF16,
        DtypeChoice::F16 => DType::F16,
        DtypeChoice::Auto if device.is_cuda() => DType::BF16,
        DtypeChoice::Auto => DType::F32,
    };
    let mut model = {
        let _s = StageGuard::start(progress, Stage::Load, None);
        WanTransformer::load(&base.join(sub), None, dtype, &device)
            .map_err(|e| Error::diffusion(base.join(sub), e))?
    };
    std::fs::create_dir_all(input.output).map_err(|e| Error::write(input.output, e))?;
    let outcome = {
        let stage = StageGuard::start(progress, Stage::Train, Some(config.steps as u64));
        let mut first = true;
        reelsmith_diffusion::train(
            &mut model,
            &data,
            &tcfg,
            input.output,
            input.resume,
            &mut |s| {
                if first {
                    // A resumed run starts part-way.
                    stage.advance((s.step - 1) as u64);
                    first = false;
                }
                stage.advance(1);
                tracing::info!(
                    step = s.step,
                    loss = s.loss,
                    lr = s.lr,
                    grad_norm = s.grad_norm,
                    eta_s = s.eta.as_secs_f64(),
                    "train step"
                );
            },
        )
        .map_err(|e| Error::diffusion(input.output, e))?
    };
    let losses = &outcome.losses;
    let tenth = (losses.len() / 10).max(1);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    let plot = input.output.join("loss.png");
    let loss_plot = crate::output::line_plot(&plot, "training loss", "step", "loss", losses)
        .ok()
        .map(|_| plot);
    let report = TrainReport {
        adapter: outcome.adapter,
        loss_csv: outcome.loss_csv,
        loss_plot,
        transformer: sub.into(),
        timesteps: range,
        examples: data.len(),
        steps: config.steps,
        resumed_from: outcome.resumed_from,
        first_loss: losses.first().copied().unwrap_or(f64::NAN),
        final_loss: losses.last().copied().unwrap_or(f64::NAN),
        first_tenth_loss: mean(&losses[..tenth.min(losses.len())]),
        last_tenth_loss: mean(&losses[losses.len().saturating_sub(tenth)..]),
        seconds: started.elapsed().as_secs_f64(),
        parameters: config.clone(),
    };
    crate::output::write_json(&input.output.join("train.json"), &report)?;
    // The adapter must load back onto the model it was trained for.
    WanLora::load(&report.adapter, &model).map_err(|e| Error::diffusion(&report.adapter, e))?;
    Ok(report)
}
