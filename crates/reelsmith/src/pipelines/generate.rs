//! A video from a first frame and a prompt, with a Wan 2.x image-to-video model.
//!
//! a Wan model folder in the diffusers layout (Wan2.2-I2V-A14B with its two experts,
//! Wan2.2-TI2V-5B, or Wan2.1-T2V without a first frame) + the first frame (such as one
//! composed by the [`compose`](super::compose) pipeline) + a prompt (text, or ready
//! embeddings) → the sampler of [`reelsmith_diffusion::WanPipeline`] (first-frame
//! conditioning, classifier-free guidance with Wan's default negative prompt, UniPC or
//! flow-match Euler, seeded noise that is the same on every device or given noise) → the
//! frames, written as an H.264 MP4 (`out.mp4`) or as lossless PNG frames in a folder
//! (`frame_0000.png`…, with `generate.json` written last).
//!
//! The model is loaded once per [`Models`] registry (on its device; bf16 on CUDA, f16 on
//! Metal, f32 on the CPU unless `dtype` says otherwise) and shared by later runs; by
//! default only the expert in use is resident. A hub id ([`ModelChoice::Hub`]) is read from
//! the Hugging Face cache, the files the pipeline needs downloaded into it where missing
//! (with the registry's [`HubOptions`](crate::models::Models::with_hub): revision, cache
//! folder, offline).
//!
//! An FFGo adapter trained with an entity cross-attention
//! ([`finetune`](super::finetune)) also needs the first frame's entities: they are found
//! and embedded as the adapter's training cache did (the segmenter and embedding model it
//! records; [`GenerateConfig::entities`] overrides them).
//!
//! ```no_run
//! use reelsmith::models::{ModelChoice, Models};
//! use reelsmith::pipelines::generate::{self, GenerateConfig, GenerateInput};
//! use reelsmith::progress::NoProgress;
//!
//! let config = GenerateConfig {
//!     model: ModelChoice::Dir("Wan2.2-I2V-A14B-Diffusers".into()),
//!     prompt: "The cat jumps onto the sofa.".into(),
//!     ..Default::default()
//! };
//! let models = Models::new();
//! let input = GenerateInput::new(Some("first_frame.png".as_ref()), "out.mp4", &models);
//! let report = generate::run(&input, &config, &NoProgress)?;
//! println!("{} frames of {}x{}", report.frames, report.width, report.height);
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use reelsmith_core::FrameRate;
use reelsmith_decode::{VideoWriter, WriterOptions};
use reelsmith_diffusion::candle_core::{DType, Tensor};
use reelsmith_diffusion::{
    load_prompt_embeddings, EntitySet, Expert, GenerateRequest, PipelineOptions, PromptInput,
    SchedulerKind, WanLora, WanPipeline, WanVariant,
};
use serde::{Deserialize, Serialize};

use crate::config::Size;
use crate::first_frame::read_image;
use crate::models::{ModelChoice, Models};
use crate::output::{check_output_file, OutputDir};
use crate::pipelines::entities::EntitiesConfig;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;
use reelsmith_embed::models::{HubOptions, ModelError, ModelRepo};

/// The scheduler that runs the denoising steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerName {
    /// UniPC multistep on flow sigmas (Wan's default).
    Unipc,
    /// Flow-match Euler.
    Euler,
}

/// The precision the models run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtypeChoice {
    /// f32 on the CPU, bf16 on CUDA, f16 on Metal (the VAE stays f32 everywhere, the text
    /// encoder f32 except on CUDA).
    #[default]
    Auto,
    /// 32-bit floats everywhere.
    F32,
    /// bfloat16 for the transformer and the text encoder.
    Bf16,
    /// float16 for the transformer.
    F16,
}

/// Settings of the generate pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateConfig {
    /// The Wan model folder in the diffusers layout (`dir`); hub ids are not loaded yet.
    pub model: ModelChoice,
    /// What happens in the video.
    pub prompt: String,
    /// What to steer away from (default: Wan's own negative prompt).
    pub negative_prompt: Option<String>,
    /// Prompt embeddings (`prompt_embeds`, `[tokens, dim]`) from a safetensors file, used
    /// instead of encoding `prompt` (no text encoder needed).
    pub prompt_embeddings: Option<PathBuf>,
    /// Negative prompt embeddings from a safetensors file, instead of encoding the negative
    /// prompt.
    pub negative_prompt_embeddings: Option<PathBuf>,
    /// Frames to generate, `4k+1` (default 81: 5 s at 16 fps).
    pub frames: usize,
    /// Video size (default 1280x720); multiples of 16 (32 for Wan 2.2's TI2V VAE).
    pub size: Size,
    /// Denoising steps (default 50).
    pub steps: usize,
    /// Classifier-free guidance scale; 1 or less turns guidance off (default 6).
    pub guidance: f64,
    /// Guidance of the low-noise expert of a two-expert model (default: `guidance`).
    pub guidance_2: Option<f64>,
    /// The scheduler's timestep shift (default 5, Wan's value at 720p; 3 suits 480p;
    /// `none` keeps the model's scheduler_config).
    pub shift: Option<f64>,
    /// The scheduler (default: the model's scheduler_config, UniPC for Wan).
    pub scheduler: Option<SchedulerName>,
    /// Seed of the starting noise (the crate's own generator: the same on every device).
    pub seed: u64,
    /// Starting noise `[1, z, (frames-1)/4+1, height/8, width/8]` from a safetensors file
    /// (tensor `latents`, or its only tensor) instead of the seeded noise.
    pub latents: Option<PathBuf>,
    /// Frames dropped from the start of the video (default 0).
    pub drop_first: usize,
    /// Frame rate of the written video (default 16, Wan's).
    pub fps: u32,
    /// x264 quality of the MP4 (CRF 0..=51, default 18).
    pub crf: u8,
    /// Model precision (default auto).
    pub dtype: DtypeChoice,
    /// A folder where prompt embeddings are cached across runs.
    pub prompt_cache: Option<PathBuf>,
    /// A LoRA adapter (PEFT/diffusers or kohya/musubi/VideoX-Fun naming) merged into the
    /// transformer (the high-noise expert of a two-expert model, whose low-noise expert
    /// then runs without one unless `lora_2` is given) at `lora_scale`.
    pub lora: Option<PathBuf>,
    /// The low-noise expert's LoRA of a two-expert model (FFGo trains one per expert).
    pub lora_2: Option<PathBuf>,
    /// Scale the LoRA is merged at (default 1, FFGo's).
    pub lora_scale: f64,
    /// Frames dropped from the start when a LoRA is given: the transition frames of an
    /// FFGo adapter (default 4, the pixel frames the composed first frame took in training).
    /// `drop_first` applies instead when larger.
    pub lora_drop_frames: usize,
    /// How the first frame's entities are found and embedded for an adapter with an
    /// entity cross-attention (default: as the adapter records, i.e. as its training cache
    /// did). Not used by other adapters.
    pub entities: Option<EntitiesConfig>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            model: ModelChoice::None,
            prompt: String::new(),
            negative_prompt: None,
            prompt_embeddings: None,
            negative_prompt_embeddings: None,
            frames: 81,
            size: Size::new(1280, 720),
            steps: 50,
            guidance: DEFAULT_GUIDANCE,
            guidance_2: None,
            shift: Some(5.0),
            scheduler: None,
            seed: 0,
            latents: None,
            drop_first: 0,
            fps: 16,
            crf: 18,
            dtype: DtypeChoice::Auto,
            prompt_cache: None,
            lora: None,
            lora_2: None,
            lora_scale: 1.0,
            lora_drop_frames: reelsmith_diffusion::dataset::REPLACED_FRAMES,
            entities: None,
        }
    }
}

/// The default guidance scale.
pub const DEFAULT_GUIDANCE: f64 = 6.0;

impl GenerateConfig {
    /// Frames dropped from the start: `drop_first`, or with a LoRA at least
    /// `lora_drop_frames`.
    pub fn effective_drop(&self) -> usize {
        if self.lora.is_some() {
            self.drop_first.max(self.lora_drop_frames)
        } else {
            self.drop_first
        }
    }

    /// Checks every setting; the error names the one at fault.
    pub fn validate(&self) -> Result<(), Error> {
        match &self.model {
            ModelChoice::Dir(_) | ModelChoice::Hub(_) => {}
            ModelChoice::None | ModelChoice::Auto => {
                return Err(Error::config(
                    "model",
                    "generating needs a Wan model folder in the diffusers layout (such as \
                     Wan2.2-I2V-A14B-Diffusers)",
                ))
            }
        }
        if self.prompt.trim().is_empty() && self.prompt_embeddings.is_none() {
            return Err(Error::config(
                "prompt",
                "give a prompt (or prompt embeddings)",
            ));
        }
        if self.frames == 0 || !(self.frames - 1).is_multiple_of(4) || self.frames > 4097 {
            let lo = self.frames.saturating_sub(1) / 4 * 4 + 1;
            return Err(Error::config(
                "frames",
                format!(
                    "the frame count must be 4k+1 (e.g. 17, 33, 49, 81); got {}: use {lo} or {}",
                    self.frames,
                    lo + 4
                ),
            ));
        }
        let Size { width, height } = self.size;
        if width % 16 != 0 || height % 16 != 0 || width > 8192 || height > 8192 {
            let round = |v: u32| (v.div_ceil(16) * 16).clamp(16, 8192);
            return Err(Error::config(
                "size",
                format!(
                    "{}: width and height must be multiples of 16 (at most 8192); use {}x{}",
                    self.size,
                    round(width),
                    round(height)
                ),
            ));
        }
        if !(1..=1000).contains(&self.steps) {
            return Err(Error::config(
                "steps",
                format!("{} is not in 1..=1000", self.steps),
            ));
        }
        for (name, g) in [
            ("guidance", Some(self.guidance)),
            ("guidance_2", self.guidance_2),
        ] {
            if let Some(g) = g {
                if !(g.is_finite() && (0.0..=100.0).contains(&g)) {
                    return Err(Error::config(name, format!("{g} is not in [0, 100]")));
                }
            }
        }
        if let Some(s) = self.shift {
            if !(s.is_finite() && s > 0.0 && s <= 100.0) {
                return Err(Error::config("shift", format!("{s} is not in (0, 100]")));
            }
        }
        if self.drop_first >= self.frames {
            return Err(Error::config(
                "drop_first",
                format!(
                    "dropping {} of {} frames leaves none",
                    self.drop_first, self.frames
                ),
            ));
        }
        if !(self.lora_scale.is_finite() && (-10.0..=10.0).contains(&self.lora_scale)) {
            return Err(Error::config(
                "lora_scale",
                format!("{} is not in [-10, 10]", self.lora_scale),
            ));
        }
        if self.lora_2.is_some() && self.lora.is_none() {
            return Err(Error::config(
                "lora_2",
                "give the high-noise expert's LoRA (lora) too, or only lora for one-transformer models",
            ));
        }
        if self.lora.is_some() && self.effective_drop() >= self.frames {
            return Err(Error::config(
                "lora_drop_frames",
                format!(
                    "dropping {} of {} frames leaves none",
                    self.effective_drop(),
                    self.frames
                ),
            ));
        }
        if !(1..=240).contains(&self.fps) {
            return Err(Error::config(
                "fps",
                format!("{} is not in 1..=240", self.fps),
            ));
        }
        if self.crf > 51 {
            return Err(Error::config(
                "crf",
                format!("{} is not in 0..=51", self.crf),
            ));
        }
        if let Some(e) = &self.entities {
            e.validate()?;
        }
        Ok(())
    }
}

/// The first frame, the output and the models of a run.
#[derive(Debug, Clone, Copy)]
pub struct GenerateInput<'a> {
    /// The first frame (required by image-to-video models; not taken by text-to-video ones).
    /// Resized to the video size when its size differs.
    pub image: Option<&'a Path>,
    /// `out.mp4`, or a folder (an existing one, a path ending in `/`, or one without an
    /// extension) for PNG frames.
    pub output: &'a Path,
    /// Where models come from (loaded once, shared across runs).
    pub models: &'a Models,
    /// Replace a folder that holds files this pipeline did not write (default false).
    pub overwrite: bool,
}

impl<'a> GenerateInput<'a> {
    /// The input: `image`, writing `output`, with models from `models`.
    pub fn new(
        image: Option<&'a Path>,
        output: &'a (impl AsRef<Path> + ?Sized),
        models: &'a Models,
    ) -> Self {
        Self {
            image,
            output: output.as_ref(),
            models,
            overwrite: false,
        }
    }

    /// Sets [`GenerateInput::overwrite`].
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// What a run generated.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateReport {
    /// The model folder.
    pub model: PathBuf,
    /// `image-to-video`, `text-image-to-video` or `text-to-video`.
    pub variant: String,
    /// The MP4 or the frames folder.
    pub output: PathBuf,
    /// For a folder: the PNG frames, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Frames written (after `drop_first`).
    pub frames: usize,
    /// Video width.
    pub width: u32,
    /// Video height.
    pub height: u32,
    /// The settings used.
    pub parameters: GenerateConfig,
    /// Seconds spent sampling (denoising and decoding).
    pub seconds: f64,
}

/// Whether `output` names a frames folder rather than a video file.
pub fn is_folder_output(output: &Path) -> bool {
    let s = output.as_os_str().to_string_lossy();
    s.ends_with('/')
        || s.ends_with(std::path::MAIN_SEPARATOR)
        || output.is_dir()
        || output.extension().is_none()
}

/// Runs the pipeline (see the [module docs](self)).
pub fn run(
    input: &GenerateInput<'_>,
    config: &GenerateConfig,
    progress: &dyn Progress,
) -> Result<GenerateReport, Error> {
    config.validate()?;
    // The destination is checked before anything expensive happens.
    let folder = is_folder_output(input.output);
    let mut inputs: Vec<PathBuf> = input.image.iter().map(|p| p.to_path_buf()).collect();
    inputs.extend(config.latents.iter().cloned());
    inputs.extend(config.prompt_embeddings.iter().cloned());
    inputs.extend(config.lora.iter().cloned());
    inputs.extend(config.lora_2.iter().cloned());
    for p in config.lora.iter().chain(config.lora_2.iter()) {
        if !p.is_file() {
            return Err(Error::config(
                "lora",
                format!(
                    "{} does not exist; give the adapter file (adapter.safetensors)",
                    p.display()
                ),
            ));
        }
    }
    let out_dir = if folder {
        Some(OutputDir::begin(input.output, "generate", input.overwrite)?)
    } else {
        let ext = input.output.extension().and_then(|e| e.to_str());
        if !ext.is_some_and(|e| e.eq_ignore_ascii_case("mp4")) {
            return Err(Error::Output {
                path: input.output.to_path_buf(),
                detail: "give an .mp4 file name for a video, or a folder (ending in /) for PNG \
                         frames"
                    .into(),
            });
        }
        check_output_file(input.output, &inputs)?;
        None
    };
    let image = match input.image {
        Some(p) => Some(read_image(p, "first frame")?.to_rgb8()),
        None => None,
    };
    let entities = adapter_entities(input, config, image.as_ref())?;
    let prompt = match &config.prompt_embeddings {
        Some(p) => {
            PromptInput::Embeddings(load_prompt_embeddings(p).map_err(|e| Error::diffusion(p, e))?)
        }
        None => PromptInput::Text(config.prompt.clone()),
    };
    let negative = match (&config.negative_prompt_embeddings, &config.negative_prompt) {
        (Some(p), _) => Some(PromptInput::Embeddings(
            load_prompt_embeddings(p).map_err(|e| Error::diffusion(p, e))?,
        )),
        (None, Some(t)) => Some(PromptInput::Text(t.clone())),
        (None, None) => None,
    };

    let pipeline_dir = match &config.model {
        ModelChoice::Dir(d) => d.clone(),
        ModelChoice::Hub(id) => {
            let _download = StageGuard::start(progress, Stage::Load, None);
            hub_folder(id, input.models.hub_options())?
        }
        ModelChoice::None | ModelChoice::Auto => {
            unreachable!("validated: the model is a folder or a hub id")
        }
    };
    let dir = &pipeline_dir;
    let pipeline = {
        let _load = StageGuard::start(progress, Stage::Load, None);
        load_pipeline(input.models, dir, config.dtype)?
    };
    let mut pipe = pipeline.lock().unwrap_or_else(|p| p.into_inner());
    // The adapters (or none) for this run; a loaded expert with others is reloaded.
    let scale = config.lora_scale;
    if config.lora_2.is_some() && !pipe.has_two_experts() {
        return Err(Error::config(
            "lora_2",
            "this model has one transformer; give only lora",
        ));
    }
    pipe.set_lora(Expert::High, config.lora.clone().map(|p| (p, scale)));
    pipe.set_lora(Expert::Low, config.lora_2.clone().map(|p| (p, scale)));
    let variant = pipe.variant();
    match (variant, &image) {
        (WanVariant::ImageToVideo, None) => {
            return Err(Error::InvalidInput {
                path: dir.clone(),
                detail: "this is an image-to-video model: give the first frame".into(),
            })
        }
        (WanVariant::TextToVideo, Some(_)) => {
            return Err(Error::InvalidInput {
                path: dir.clone(),
                detail: "this text-to-video model takes no first frame; leave the image out or \
                         use an image-to-video model"
                    .into(),
            })
        }
        _ => {}
    }
    let m = pipe.size_multiple() as u32;
    let Size { width, height } = config.size;
    if width % m != 0 || height % m != 0 {
        let round = |v: u32| v.div_ceil(m).max(1) * m;
        return Err(Error::config(
            "size",
            format!(
                "{}: this model needs width and height in multiples of {m}; use {}x{}",
                config.size,
                round(width),
                round(height)
            ),
        ));
    }
    let shape = pipe
        .latent_shape(config.frames, height as usize, width as usize)
        .map_err(|e| Error::diffusion(dir, e))?;
    let latents = match &config.latents {
        Some(p) => Some(read_latents(p, &shape)?),
        None => None,
    };

    let mut req = GenerateRequest::new(prompt);
    req.image = image;
    req.negative_prompt = negative;
    req.width = width as usize;
    req.height = height as usize;
    req.frames = config.frames;
    req.steps = config.steps;
    req.guidance = config.guidance;
    req.guidance_2 = config.guidance_2;
    req.shift = config.shift;
    req.scheduler = config.scheduler.map(|s| match s {
        SchedulerName::Unipc => SchedulerKind::UniPc,
        SchedulerName::Euler => SchedulerKind::Euler,
    });
    req.seed = config.seed;
    req.latents = latents;
    req.drop_first = config.effective_drop();
    req.entities = entities;
    let started = std::time::Instant::now();
    let generated = {
        let stage = StageGuard::start(progress, Stage::Denoise, Some(config.steps as u64));
        pipe.generate(&req, &mut |_| stage.advance(1))
            .map_err(|e| Error::diffusion(dir, e))?
    };
    drop(pipe);
    let seconds = started.elapsed().as_secs_f64();

    let mut report = GenerateReport {
        model: dir.clone(),
        variant: match variant {
            WanVariant::ImageToVideo => "image-to-video",
            WanVariant::TextImageToVideo => "text-image-to-video",
            WanVariant::TextToVideo => "text-to-video",
        }
        .into(),
        output: input.output.to_path_buf(),
        files: Vec::new(),
        frames: generated.frames.len(),
        width,
        height,
        parameters: config.clone(),
        seconds,
    };
    let stage = StageGuard::start(progress, Stage::Write, Some(generated.frames.len() as u64));
    match out_dir {
        Some(out) => {
            for (i, f) in generated.frames.iter().enumerate() {
                let name = format!("frame_{i:04}.png");
                crate::output::save_image(f, &out.path(&name)?)?;
                report.files.push(name);
                stage.advance(1);
            }
            out.commit("generate.json", &report)?;
        }
        None => write_mp4(input.output, &generated.frames, config, &stage)?,
    }
    Ok(report)
}

/// The first frame's entities when an adapter has an entity cross-attention (found and
/// embedded as the adapter records, or as `config.entities` says), else `None`.
fn adapter_entities(
    input: &GenerateInput<'_>,
    config: &GenerateConfig,
    image: Option<&image::RgbImage>,
) -> Result<Option<EntitySet>, Error> {
    let mut found: Vec<(PathBuf, reelsmith_diffusion::EntityAttnConfig)> = Vec::new();
    for p in config.lora.iter().chain(config.lora_2.iter()) {
        if let Some(ec) = WanLora::entity_config_of(p).map_err(|e| Error::diffusion(p, e))? {
            found.push((p.clone(), ec));
        }
    }
    if let [(a, x), (b, y)] = found.as_slice() {
        if x.entity_dim != y.entity_dim || x.source != y.source {
            return Err(Error::config(
                "lora_2",
                format!(
                    "{} and {} were trained on entities made differently (another segmenter or embedding model); train both experts on one cache",
                    a.display(),
                    b.display()
                ),
            ));
        }
    }
    let Some((path, ec)) = found.into_iter().next() else {
        return Ok(None);
    };
    let how: EntitiesConfig = match (&config.entities, &ec.source) {
        (Some(c), _) => c.clone(),
        (None, Some(v)) => serde_json::from_value(v.clone()).map_err(|e| {
            Error::config(
                "entities",
                format!(
                    "{}: the adapter's record of how its entities were made is unreadable ({e}); give the entities settings",
                    path.display()
                ),
            )
        })?,
        (None, None) => {
            return Err(Error::config(
                "entities",
                format!(
                    "{} has an entity cross-attention but no record of how its entities were made; give the entities settings (segmenter weights, embedding model)",
                    path.display()
                ),
            ))
        }
    };
    let (Some(img), Some(src)) = (image, input.image) else {
        return Err(Error::config(
            "lora",
            format!(
                "{} has an entity cross-attention, which reads the entities of the first frame: give the first frame",
                path.display()
            ),
        ));
    };
    let set = crate::pipelines::finetune::entity_set(img, src, input.models, &how)?;
    if !set.is_empty() && ec.entity_dim != 0 && set.dim() != ec.entity_dim {
        return Err(Error::config(
            "entities",
            format!(
                "the embedding model gives {}-wide embeddings but {} was trained on {}-wide ones; use the embedding model it was trained with",
                set.dim(),
                path.display(),
                ec.entity_dim
            ),
        ));
    }
    Ok(Some(set))
}

/// The diffusers folder of hub repository `id`: the files a Wan pipeline reads
/// (`model_index.json`, then per component its configuration and weights, whole or
/// sharded, the tokenizer and the scheduler configuration) found in the Hugging Face cache
/// or downloaded into it; the snapshot folder that holds them is returned.
fn hub_folder(id: &str, hub: &HubOptions) -> Result<PathBuf, Error> {
    let err = |e: ModelError| Error::Model {
        model: id.to_string(),
        source: e.into(),
    };
    let repo = ModelRepo::hub(id, hub).map_err(err)?;
    let index = repo.get("model_index.json").map_err(err)?;
    let text = std::fs::read_to_string(&index).map_err(|e| Error::InvalidInput {
        path: index.clone(),
        detail: format!("cannot read the pipeline index: {e}"),
    })?;
    let components: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::InvalidInput {
            path: index.clone(),
            detail: format!("not a diffusers model_index.json: {e}"),
        })?;
    // A component is present when the index names its library and class (`[null, null]`
    // marks one the pipeline does not have).
    let has = |c: &str| {
        components
            .get(c)
            .and_then(|v| v.get(0))
            .is_some_and(|v| v.is_string())
    };
    for c in ["transformer", "transformer_2", "vae"] {
        if has(c) {
            repo.get(&format!("{c}/config.json")).map_err(err)?;
            repo.weights(&[
                &format!("{c}/diffusion_pytorch_model.safetensors"),
                &format!("{c}/diffusion_pytorch_model.safetensors.index.json"),
            ])
            .map_err(err)?;
        }
    }
    if has("text_encoder") {
        repo.get("text_encoder/config.json").map_err(err)?;
        repo.weights(&[
            "text_encoder/model.safetensors",
            "text_encoder/model.safetensors.index.json",
        ])
        .map_err(err)?;
    }
    if has("tokenizer") {
        repo.get("tokenizer/tokenizer.json").map_err(err)?;
    }
    if has("scheduler") {
        repo.get("scheduler/scheduler_config.json").map_err(err)?;
    }
    Ok(index
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".")))
}

/// The Wan pipeline in `dir`, loaded once per registry (per folder and precision).
pub(crate) fn load_pipeline(
    models: &Models,
    dir: &Path,
    dtype: DtypeChoice,
) -> Result<std::sync::Arc<Mutex<WanPipeline>>, Error> {
    let device = models.device().device().map_err(|e| Error::Model {
        model: dir.display().to_string(),
        source: e.into(),
    })?;
    let (model_dtype, text_dtype) = match dtype {
        DtypeChoice::F32 => (DType::F32, DType::F32),
        DtypeChoice::Bf16 => (DType::BF16, DType::BF16),
        DtypeChoice::F16 => (DType::F16, DType::F32),
        DtypeChoice::Auto if device.is_cuda() => (DType::BF16, DType::BF16),
        DtypeChoice::Auto if device.is_metal() => (DType::F16, DType::F32),
        DtypeChoice::Auto => (DType::F32, DType::F32),
    };
    let key = format!(
        "{}#{model_dtype:?}",
        std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
    );
    models.get_or_load(&key, || {
        let opts = PipelineOptions {
            device: device.clone(),
            dtype: model_dtype,
            text_dtype,
            vae_dtype: DType::F32,
            ..PipelineOptions::default()
        };
        WanPipeline::load(dir, opts)
            .map(Mutex::new)
            .map_err(|e| Error::diffusion(dir, e))
    })
}

/// Starting noise from a safetensors file: the tensor `latents` or the only tensor, of
/// exactly `shape`.
fn read_latents(path: &Path, shape: &[usize; 5]) -> Result<Tensor, Error> {
    let bad = |message: String| Error::config("latents", format!("{}: {message}", path.display()));
    let all = reelsmith_diffusion::candle_core::safetensors::load(
        path,
        &reelsmith_diffusion::candle_core::Device::Cpu,
    )
    .map_err(|e| bad(format!("cannot read as safetensors: {e}")))?;
    let t =
        match all.get("latents") {
            Some(t) => t.clone(),
            None if all.len() == 1 => all.into_values().next().expect("one tensor"),
            None => return Err(bad(
                "no tensor named `latents` (and more than one tensor); save the noise as `latents`"
                    .into(),
            )),
        };
    if t.dims() != shape {
        return Err(bad(format!(
            "the noise is {:?} but these frames and size need {shape:?} ([1, z, (frames-1)/4+1, \
             height/8, width/8] for this model)",
            t.dims()
        )));
    }
    t.to_dtype(DType::F32)
        .map_err(|e| bad(format!("cannot convert to f32: {e}")))
}

/// Writes the frames as an H.264 MP4: encoded into a hidden staging folder beside the
/// destination (removed on a signal by [`crate::output::cleanup`]) and renamed into place.
fn write_mp4(
    path: &Path,
    frames: &[image::RgbImage],
    config: &GenerateConfig,
    stage: &StageGuard<'_>,
) -> Result<(), Error> {
    let Some(first) = frames.first() else {
        return Err(Error::Output {
            path: path.to_path_buf(),
            detail: "no frames were generated".into(),
        });
    };
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = parent.join(format!(
        "{}{}-generate",
        crate::output::STAGING_PREFIX,
        std::process::id()
    ));
    std::fs::create_dir_all(&staging).map_err(|e| Error::write(&staging, e))?;
    crate::output::live::register(&staging);
    let tmp = staging.join("video.mp4");
    let opts = WriterOptions {
        fps: FrameRate {
            num: config.fps,
            den: 1,
        },
        crf: config.crf,
        ..WriterOptions::default()
    };
    let result = (|| {
        let mut w = VideoWriter::create(&tmp, first.width(), first.height(), &opts)?;
        for f in frames {
            w.push(f)?;
            stage.advance(1);
        }
        w.finish()?;
        std::fs::rename(&tmp, path).map_err(|e| Error::write(path, e))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    crate::output::live::unregister(&staging);
    result
}
