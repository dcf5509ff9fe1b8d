//! The Wan sampler: image-to-video (Wan2.2-I2V-A14B: 36-channel experts), text-image-to-video
//! (Wan2.2-TI2V-5B: first latent frame replaced by the image latent, per-token timesteps) and
//! text-to-video (Wan2.1-T2V), following diffusers' `WanImageToVideoPipeline` and
//! `WanPipeline` step for step.
//!
//! Prompt embeddings come from the UMT5 encoder (loaded when first needed and released after
//! encoding unless asked to stay) or are given directly, and are cached per prompt in memory
//! and optionally on disk. Classifier-free guidance uses Wan's default negative prompt unless
//! another is given. Two experts are switched at `boundary_ratio`; by default only one expert
//! is resident at a time. The starting noise comes from the crate's seeded generator (the same
//! on every device) or is given, so a run can be reproduced in diffusers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use image::RgbImage;

use crate::entity_attn::EntityTokens;
use crate::error::{DiffusionError, Result};
use crate::loading::read_json;
use crate::lora::WanLora;
use crate::rng::NoiseGenerator;
use crate::scheduler::{Scheduler, SchedulerConfig, SchedulerKind};
use crate::text::{pad_embeddings, TextEncoder, MAX_SEQUENCE_LENGTH, WAN_NEGATIVE_PROMPT};
use crate::train::TrainExample;
use crate::transformer::{WanTransformer, WanTransformerConfig};
use crate::vae::WanVae;

/// What a Wan model generates from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WanVariant {
    /// Text to video (Wan2.1-T2V: the transformer takes the noisy latent only).
    TextToVideo,
    /// Image to video (Wan2.2-I2V-A14B: noisy latent + mask + first-frame latent channels).
    ImageToVideo,
    /// Text and optional image to video (Wan2.2-TI2V-5B, `expand_timesteps`: the first latent
    /// frame is the image latent, kept at timestep 0).
    TextImageToVideo,
}

/// Which of two experts denoises a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expert {
    /// `transformer`: the only one, or the high-noise expert of Wan 2.2 A14B.
    High,
    /// `transformer_2`: the low-noise expert.
    Low,
}

/// How a pipeline is loaded and where it runs.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Device of all models.
    pub device: Device,
    /// Dtype of the transformer(s) (f32 on the CPU; bf16 or f16 on GPUs).
    pub dtype: DType,
    /// Dtype of the text encoder.
    pub text_dtype: DType,
    /// Dtype of the VAE.
    pub vae_dtype: DType,
    /// Keep both experts in memory across steps and runs (by default only the expert in use
    /// is resident, and none after sampling, so two 14B experts never share memory).
    pub keep_experts_loaded: bool,
    /// Keep the text encoder in memory after encoding (by default it is released).
    pub keep_text_encoder: bool,
    /// A folder where prompt embeddings are cached across runs.
    pub prompt_cache_dir: Option<PathBuf>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
            text_dtype: DType::F32,
            vae_dtype: DType::F32,
            keep_experts_loaded: false,
            keep_text_encoder: false,
            prompt_cache_dir: None,
        }
    }
}

/// A prompt as text or as ready embeddings.
#[derive(Debug, Clone)]
pub enum PromptInput {
    /// Text, encoded by the model's UMT5 encoder.
    Text(String),
    /// Embeddings `[tokens, dim]` or `[1, tokens, dim]` (the true tokens; zero-padded to the
    /// sequence length here), e.g. from [`load_prompt_embeddings`].
    Embeddings(Tensor),
}

impl From<&str> for PromptInput {
    fn from(s: &str) -> Self {
        PromptInput::Text(s.to_string())
    }
}

impl From<String> for PromptInput {
    fn from(s: String) -> Self {
        PromptInput::Text(s)
    }
}

/// One generation.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The first frame (required for image-to-video; optional for TI2V; not allowed for
    /// text-to-video). Resized (Lanczos) to `width × height` when its size differs.
    pub image: Option<RgbImage>,
    /// The prompt.
    pub prompt: PromptInput,
    /// The negative prompt for guidance; `None` uses [`WAN_NEGATIVE_PROMPT`].
    pub negative_prompt: Option<PromptInput>,
    /// Output width (a multiple of the VAE's spatial factor times the patch size: 16 for
    /// Wan 2.1's VAE, 32 for Wan 2.2's).
    pub width: usize,
    /// Output height (same rule).
    pub height: usize,
    /// Output frames before `drop_first`, `4k+1`.
    pub frames: usize,
    /// Denoising steps.
    pub steps: usize,
    /// Classifier-free guidance scale (guidance runs when it is above 1).
    pub guidance: f64,
    /// Guidance of the low-noise expert (defaults to `guidance`).
    pub guidance_2: Option<f64>,
    /// Overrides the scheduler's shift.
    pub shift: Option<f64>,
    /// Overrides the scheduler class of `scheduler/scheduler_config.json`.
    pub scheduler: Option<SchedulerKind>,
    /// Seed of the starting noise.
    pub seed: u64,
    /// Starting noise `[1, z, latent_frames, height/s, width/s]` instead of the seeded one.
    pub latents: Option<Tensor>,
    /// Frames removed from the start of the decoded video.
    pub drop_first: usize,
    /// Prompt tokens (512 in Wan).
    pub max_sequence_length: usize,
    /// The first frame's entities (embeddings `[n, dim]` from the model the adapter was
    /// trained with, optional geometry), required when an expert's adapter has an entity
    /// cross-attention ([`crate::EntityAttention`]); not used otherwise.
    pub entities: Option<crate::EntitySet>,
}

impl GenerateRequest {
    /// A request with Wan's defaults: 832×480, 81 frames, 50 steps, guidance 5, seed 0.
    pub fn new(prompt: impl Into<PromptInput>) -> Self {
        Self {
            image: None,
            prompt: prompt.into(),
            negative_prompt: None,
            width: 832,
            height: 480,
            frames: 81,
            steps: 50,
            guidance: 5.0,
            guidance_2: None,
            shift: None,
            scheduler: None,
            seed: 0,
            latents: None,
            drop_first: 0,
            max_sequence_length: MAX_SEQUENCE_LENGTH,
            entities: None,
        }
    }
}

/// Progress of one denoising step, reported after the step.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo<'a> {
    /// Steps done (1-based).
    pub step: usize,
    /// All steps.
    pub steps: usize,
    /// The step's timestep.
    pub timestep: f32,
    /// The expert that ran it.
    pub expert: Expert,
    /// The latents after the step `[1, z, t, h, w]` (for previews or checks).
    pub latents: &'a Tensor,
}

/// A generated video.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The frames (after `drop_first`).
    pub frames: Vec<RgbImage>,
    /// The same frames as `[frames, height, width, 3]` u8.
    pub video: Tensor,
    /// The frames as `[frames, height, width, 3]` f32 in `[0, 1]` before rounding (diffusers'
    /// `output_type="np"`).
    pub video_f32: Tensor,
    /// The final latents `[1, z, latent_frames, h, w]` (normalised, as the transformer sees
    /// them; all frames, `drop_first` does not apply).
    pub latents: Tensor,
}

/// Reads prompt embeddings from a safetensors file: the tensor `prompt_embeds` (or the only
/// tensor), `[tokens, dim]` or `[1, tokens, dim]`.
pub fn load_prompt_embeddings(path: &Path) -> Result<Tensor> {
    let all = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| DiffusionError::config(path, format!("cannot read prompt embeddings: {e}")))?;
    let t = match all.get("prompt_embeds") {
        Some(t) => t.clone(),
        None if all.len() == 1 => all.into_values().next().expect("one tensor"),
        None => {
            return Err(DiffusionError::config(
                path,
                "no tensor named `prompt_embeds` (and more than one tensor); save the embeddings as `prompt_embeds`",
            ))
        }
    };
    match t.rank() {
        2 => Ok(t.unsqueeze(0)?),
        3 if t.dim(0)? == 1 => Ok(t),
        _ => Err(DiffusionError::config(
            path,
            format!(
                "prompt embeddings must be [tokens, dim] or [1, tokens, dim]; got {:?}",
                t.dims()
            ),
        )),
    }
}

/// Saves prompt embeddings `[1, tokens, dim]` as `prompt_embeds` in a safetensors file
/// (written to a temporary file and renamed, so the file is whole or absent).
pub fn save_prompt_embeddings(embeds: &Tensor, path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let t = embeds.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
    candle_core::safetensors::save(&HashMap::from([("prompt_embeds".to_string(), t)]), &tmp)
        .map_err(|e| DiffusionError::config(&tmp, format!("cannot write: {e}")))?;
    if path.is_symlink() {
        let _ = std::fs::remove_file(&tmp);
        return Err(DiffusionError::config(
            path,
            "is a symbolic link; refusing to write through it",
        ));
    }
    std::fs::rename(&tmp, path).map_err(|e| DiffusionError::io(path, e))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Prompt embeddings cached per (prompt, sequence length), in memory and optionally on disk.
struct PromptCache {
    mem: HashMap<(String, usize), Tensor>,
    dir: Option<PathBuf>,
    model_key: String,
}

impl PromptCache {
    fn file(&self, prompt: &str, len: usize) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let key = format!("{}\u{0}{len}\u{0}{prompt}", self.model_key);
        Some(dir.join(format!("{:016x}.safetensors", fnv1a(key.as_bytes()))))
    }

    fn get(&mut self, prompt: &str, len: usize) -> Option<Tensor> {
        if let Some(t) = self.mem.get(&(prompt.to_string(), len)) {
            return Some(t.clone());
        }
        let file = self.file(prompt, len)?;
        let t = load_prompt_embeddings(&file).ok()?;
        self.mem.insert((prompt.to_string(), len), t.clone());
        Some(t)
    }

    fn put(&mut self, prompt: &str, len: usize, t: &Tensor) {
        self.mem.insert((prompt.to_string(), len), t.clone());
        if let Some(file) = self.file(prompt, len) {
            if let Some(dir) = &self.dir {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Err(e) = save_prompt_embeddings(t, &file) {
                tracing::warn!("prompt cache: {e}");
            }
        }
    }
}

/// The parts of `model_index.json` the sampler needs.
#[derive(Debug, Clone, Default)]
struct PipelineInfo {
    boundary_ratio: Option<f64>,
    expand_timesteps: bool,
    has_transformer_2: bool,
}

fn read_model_index(dir: &Path) -> Result<PipelineInfo> {
    let path = dir.join("model_index.json");
    let v: serde_json::Value = read_json(&path)?;
    let present = |name: &str| -> bool {
        v.get(name)
            .and_then(|e| e.as_array())
            .is_some_and(|a| a.iter().any(|x| !x.is_null()))
    };
    if present("image_encoder") {
        return Err(DiffusionError::config(
            &path,
            "this model conditions on CLIP image embeddings (Wan 2.1 I2V/FLF2V), which is not supported; use Wan2.2-I2V-A14B or Wan2.2-TI2V-5B",
        ));
    }
    Ok(PipelineInfo {
        boundary_ratio: v.get("boundary_ratio").and_then(|b| b.as_f64()),
        expand_timesteps: v
            .get("expand_timesteps")
            .and_then(|b| b.as_bool())
            .unwrap_or(false),
        has_transformer_2: present("transformer_2"),
    })
}

/// A Wan model folder in the diffusers layout, ready to sample.
pub struct WanPipeline {
    dir: PathBuf,
    info: PipelineInfo,
    opts: PipelineOptions,
    transformer_cfg: WanTransformerConfig,
    scheduler_cfg: SchedulerConfig,
    vae: WanVae,
    high: Option<WanTransformer>,
    low: Option<WanTransformer>,
    text: Option<TextEncoder>,
    cache: PromptCache,
    /// LoRA file and scale per expert (high, low), merged when the expert loads.
    loras: [Option<(PathBuf, f64)>; 2],
}

impl WanPipeline {
    /// Opens a model folder (`model_index.json`, `transformer/`, optional `transformer_2/`,
    /// `vae/`, `scheduler/`, and `text_encoder/` + `tokenizer/` unless prompts are always
    /// given as embeddings). The VAE is loaded now; transformers and the text encoder when
    /// first needed.
    pub fn load(dir: &Path, opts: PipelineOptions) -> Result<Self> {
        let info = read_model_index(dir)?;
        let tpath = dir.join("transformer").join("config.json");
        let transformer_cfg: WanTransformerConfig = read_json(&tpath)?;
        let spath = dir.join("scheduler").join("scheduler_config.json");
        let scheduler_cfg = if spath.is_file() {
            SchedulerConfig::load(&spath)?
        } else {
            SchedulerConfig::default()
        };
        let vae = WanVae::load(&dir.join("vae"), opts.vae_dtype, &opts.device)?;
        let z = vae.z_dim();
        let cin = transformer_cfg.in_channels;
        let ok = if info.expand_timesteps {
            cin == z
        } else {
            cin == z || cin == 2 * z + 4
        };
        if !ok || transformer_cfg.out_channels() != z {
            return Err(DiffusionError::config(
                &tpath,
                format!(
                    "the transformer takes {cin} channels and gives {} but the VAE has z = {z}{}: the folder mixes components of different Wan variants",
                    transformer_cfg.out_channels(),
                    if info.expand_timesteps { " (TI2V expects equal counts)" } else { "" }
                ),
            ));
        }
        if info.boundary_ratio.is_some() && !info.has_transformer_2 {
            return Err(DiffusionError::config(
                dir.join("model_index.json"),
                "boundary_ratio is set but there is no transformer_2; download the low-noise expert too",
            ));
        }
        let model_key = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .to_string_lossy()
            .into_owned();
        Ok(Self {
            dir: dir.to_path_buf(),
            cache: PromptCache {
                mem: HashMap::new(),
                dir: opts.prompt_cache_dir.clone(),
                model_key,
            },
            info,
            opts,
            transformer_cfg,
            scheduler_cfg,
            vae,
            high: None,
            low: None,
            text: None,
            loras: [None, None],
        })
    }

    /// What the model generates from.
    pub fn variant(&self) -> WanVariant {
        if self.info.expand_timesteps {
            WanVariant::TextImageToVideo
        } else if self.transformer_cfg.in_channels == self.vae.z_dim() {
            WanVariant::TextToVideo
        } else {
            WanVariant::ImageToVideo
        }
    }

    /// The VAE.
    pub fn vae(&self) -> &WanVae {
        &self.vae
    }

    /// The transformer's configuration.
    pub fn transformer_config(&self) -> &WanTransformerConfig {
        &self.transformer_cfg
    }

    /// The scheduler configuration of the folder.
    pub fn scheduler_config(&self) -> &SchedulerConfig {
        &self.scheduler_cfg
    }

    /// The size multiple of width and height (VAE factor × patch size).
    pub fn size_multiple(&self) -> usize {
        self.vae.spatial_factor()
            * self.transformer_cfg.patch_size[1].max(self.transformer_cfg.patch_size[2])
    }

    /// Checks a video size; returns the latent shape `[1, z, t, h, w]`.
    pub fn latent_shape(&self, frames: usize, height: usize, width: usize) -> Result<[usize; 5]> {
        let st = self.vae.temporal_factor();
        if frames == 0 || !(frames - 1).is_multiple_of(st) {
            let lo = if frames == 0 {
                1
            } else {
                (frames - 1) / st * st + 1
            };
            return Err(DiffusionError::InvalidInput(format!(
                "the frame count must be {st}k+1 (e.g. 17, 33, 49, 81); got {frames}: use {lo} or {}",
                lo + st
            )));
        }
        let m = self.size_multiple();
        if width == 0 || height == 0 || !width.is_multiple_of(m) || !height.is_multiple_of(m) {
            let round = |v: usize| ((v + m / 2) / m).max(1) * m;
            return Err(DiffusionError::InvalidInput(format!(
                "width and height must be multiples of {m} for this model; got {width}x{height}: use {}x{}",
                round(width),
                round(height)
            )));
        }
        let s = self.vae.spatial_factor();
        Ok([
            1,
            self.vae.z_dim(),
            (frames - 1) / st + 1,
            height / s,
            width / s,
        ])
    }

    fn text_encoder(&mut self) -> Result<&TextEncoder> {
        if self.text.is_none() {
            let tok = self.dir.join("tokenizer");
            let enc = self.dir.join("text_encoder");
            if !enc.is_dir() {
                return Err(DiffusionError::config(
                    &self.dir,
                    "this folder has no text_encoder/; give prompt embeddings instead of text, or download the UMT5 text encoder",
                ));
            }
            self.text = Some(TextEncoder::load_parts(
                &tok,
                &enc,
                self.opts.text_dtype,
                &self.opts.device,
            )?);
        }
        Ok(self.text.as_ref().expect("loaded above"))
    }

    /// Prompt embeddings `[1, max_len, text_dim]` as the transformer takes them: encoded (and
    /// cached) for text, zero-padded for given embeddings.
    pub fn prompt_embeddings(&mut self, prompt: &PromptInput, max_len: usize) -> Result<Tensor> {
        let text_dim = self.transformer_cfg.text_dim;
        let t = match prompt {
            PromptInput::Embeddings(t) => {
                let t = if t.rank() == 2 {
                    t.unsqueeze(0)?
                } else {
                    t.clone()
                };
                match t.dims() {
                    [1, n, d] if *d == text_dim && *n > 0 => {}
                    other => {
                        return Err(DiffusionError::InvalidInput(format!(
                            "prompt embeddings must be [tokens, {text_dim}] or [1, tokens, {text_dim}] for this transformer; got {other:?}"
                        )))
                    }
                }
                t
            }
            PromptInput::Text(text) => match self.cache.get(text, max_len) {
                Some(t) => t,
                None => {
                    let dir = self.dir.clone();
                    let te = self.text_encoder()?;
                    if te.dim() != text_dim {
                        return Err(DiffusionError::config(
                            dir,
                            format!(
                                "the text encoder gives {}-wide embeddings but the transformer takes {text_dim}",
                                te.dim()
                            ),
                        ));
                    }
                    let t = te.encode(text, max_len)?;
                    self.cache.put(text, max_len, &t);
                    t
                }
            },
        };
        let t = pad_embeddings(&t.to_device(&self.opts.device)?, max_len)?;
        Ok(t.to_dtype(self.opts.dtype)?)
    }

    fn expert(&mut self, which: Expert) -> Result<&WanTransformer> {
        let loaded = match which {
            Expert::High => self.high.is_some(),
            Expert::Low => self.low.is_some(),
        };
        if !loaded {
            if !self.opts.keep_experts_loaded {
                // Release the other expert before loading this one.
                self.high = None;
                self.low = None;
            }
            let sub = match which {
                Expert::High => "transformer",
                Expert::Low => "transformer_2",
            };
            let m = WanTransformer::load(
                &self.dir.join(sub),
                None,
                self.opts.dtype,
                &self.opts.device,
            )?;
            if m.config().in_channels != self.transformer_cfg.in_channels
                || m.config().out_channels() != self.transformer_cfg.out_channels()
            {
                return Err(DiffusionError::config(
                    self.dir.join(sub).join("config.json"),
                    "the two experts take different channel counts",
                ));
            }
            let mut m = m;
            let slot = match which {
                Expert::High => 0,
                Expert::Low => 1,
            };
            if let Some((path, scale)) = &self.loras[slot] {
                let lora = WanLora::load(path, &m)?;
                m.add_lora(&lora, *scale)?;
                m.merge_lora()?;
            }
            match which {
                Expert::High => self.high = Some(m),
                Expert::Low => self.low = Some(m),
            }
        }
        Ok(match which {
            Expert::High => self.high.as_ref(),
            Expert::Low => self.low.as_ref(),
        }
        .expect("loaded above"))
    }

    /// The first frame as `[1, 3, h, w]` in `[-1, 1]`, resized when its size differs.
    fn image_tensor(&self, img: &RgbImage, width: usize, height: usize) -> Result<Tensor> {
        let img = if img.width() as usize != width || img.height() as usize != height {
            image::imageops::resize(
                img,
                width as u32,
                height as u32,
                image::imageops::FilterType::Lanczos3,
            )
        } else {
            img.clone()
        };
        let data: Vec<f32> = img.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
        let t = Tensor::from_vec(data, (height, width, 3), &Device::Cpu)?
            .permute((2, 0, 1))?
            .unsqueeze(0)?;
        Ok(((t * 2.0)? - 1.0)?.to_device(&self.opts.device)?)
    }

    /// Sets (or with `None` clears) the LoRA of an expert: the adapter file (either
    /// naming) merged at `scale` into the expert's weights when it is loaded, so sampling
    /// runs at the base model's speed. `Expert::High` is the only transformer of
    /// single-transformer models. An expert already loaded with another setting is reloaded.
    pub fn set_lora(&mut self, which: Expert, lora: Option<(PathBuf, f64)>) {
        let slot = match which {
            Expert::High => 0,
            Expert::Low => 1,
        };
        if self.loras[slot] != lora {
            self.loras[slot] = lora;
            match which {
                Expert::High => self.high = None,
                Expert::Low => self.low = None,
            }
        }
    }

    /// Whether the model has a second (low-noise) expert.
    pub fn has_two_experts(&self) -> bool {
        self.info.boundary_ratio.is_some() && self.info.has_transformer_2
    }

    /// The folder the pipeline was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Encodes one training example the way FFGo trains (see [`crate::train()`] and [the module](mod@crate::train)): the clip's
    /// `frames` (`4k + 1`, resized to `(width, height)`) with pixel frames
    /// `0..replace` replaced by the composed `first_frame`, encoded by the VAE into
    /// normalised latents; the image-to-video condition built from `first_frame` alone
    /// (frame 0 unmasked, as at sampling time); and the caption's text embeddings. Text-to-
    /// video models get no condition.
    pub fn encode_training_example(
        &mut self,
        name: &str,
        frames: &[RgbImage],
        first_frame: &RgbImage,
        caption: &str,
        (width, height): (usize, usize),
        replace: usize,
    ) -> Result<TrainExample> {
        let n = frames.len();
        let shape = self.latent_shape(n, height, width)?;
        if self.variant() == WanVariant::TextImageToVideo {
            return Err(DiffusionError::InvalidInput(
                "training a TI2V-5B LoRA is not supported yet (its first latent frame is the image at timestep 0); use Wan2.2-I2V-A14B or a T2V model".into(),
            ));
        }
        let device = self.opts.device.clone();
        let first = self.image_tensor(first_frame, width, height)?;
        let mut pix = Vec::with_capacity(n);
        for (i, f) in frames.iter().enumerate() {
            pix.push(if i < replace {
                first.clone()
            } else {
                self.image_tensor(f, width, height)?
            });
        }
        let video = Tensor::stack(&pix, 2)?.squeeze(0)?.unsqueeze(0)?; // [1, 3, n, h, w]
        let latents = self
            .vae
            .normalize(&self.vae.encode(&video)?.mean)?
            .to_dtype(DType::F32)?
            .squeeze(0)?;
        let condition = if self.variant() == WanVariant::ImageToVideo {
            let [_, _, lt, lh, lw] = shape;
            let rest = Tensor::zeros((1, 3, n - 1, height, width), DType::F32, &device)?;
            let v = Tensor::cat(&[&first.unsqueeze(2)?, &rest], 2)?;
            let lat = self.vae.normalize(&self.vae.encode(&v)?.mean)?;
            let st = self.vae.temporal_factor();
            let mut mask = vec![0f32; st * lt * lh * lw];
            for c in 0..st {
                let base = c * lt * lh * lw;
                mask[base..base + lh * lw].iter_mut().for_each(|v| *v = 1.0);
            }
            let mask = Tensor::from_vec(mask, (1, st, lt, lh, lw), &device)?;
            Some(Tensor::cat(&[&mask, &lat.to_dtype(DType::F32)?], 1)?.squeeze(0)?)
        } else {
            None
        };
        let context = self
            .prompt_embeddings(&PromptInput::Text(caption.to_string()), MAX_SEQUENCE_LENGTH)?
            .to_dtype(DType::F32)?
            .squeeze(0)?;
        Ok(TrainExample {
            name: name.to_string(),
            latents,
            condition,
            context,
            entities: None,
        })
    }

    /// Runs one generation. `on_step` is called after each denoising step.
    pub fn generate(
        &mut self,
        req: &GenerateRequest,
        on_step: &mut dyn FnMut(&StepInfo<'_>),
    ) -> Result<Generated> {
        let shape = self.latent_shape(req.frames, req.height, req.width)?;
        let variant = self.variant();
        match (variant, &req.image) {
            (WanVariant::ImageToVideo, None) => {
                return Err(DiffusionError::InvalidInput(
                    "this is an image-to-video model: give the first frame (--image)".into(),
                ))
            }
            (WanVariant::TextToVideo, Some(_)) => {
                return Err(DiffusionError::InvalidInput(
                    "this text-to-video model cannot take a first frame; drop --image or use an I2V/TI2V model".into(),
                ))
            }
            _ => {}
        }
        if req.drop_first >= req.frames {
            return Err(DiffusionError::InvalidInput(format!(
                "drop_first {} would drop all {} frames",
                req.drop_first, req.frames
            )));
        }
        let device = self.opts.device.clone();
        let dtype = self.opts.dtype;

        // 1. Prompt embeddings (text encoder released afterwards unless asked to stay).
        let do_cfg = req.guidance > 1.0;
        let max_len = req.max_sequence_length;
        let cond = self.prompt_embeddings(&req.prompt, max_len)?;
        let uncond = if do_cfg {
            let neg = req
                .negative_prompt
                .clone()
                .unwrap_or_else(|| PromptInput::Text(WAN_NEGATIVE_PROMPT.to_string()));
            Some(self.prompt_embeddings(&neg, max_len)?)
        } else {
            None
        };
        if !self.opts.keep_text_encoder {
            self.text = None;
        }

        // 2. Schedule.
        let mut scheduler =
            Scheduler::new(&self.scheduler_cfg, req.steps, req.scheduler, req.shift)?;
        let timesteps = scheduler.timesteps().to_vec();
        let boundary = match (self.info.boundary_ratio, self.info.has_transformer_2) {
            (Some(r), true) => Some(r * self.scheduler_cfg.num_train_timesteps as f64),
            _ => None,
        };

        // 3. Starting noise.
        let mut latents = match &req.latents {
            Some(l) => {
                if l.dims() != shape {
                    return Err(DiffusionError::InvalidInput(format!(
                        "the starting latents must be {shape:?} for {} frames at {}x{}; got {:?}",
                        req.frames,
                        req.width,
                        req.height,
                        l.dims()
                    )));
                }
                l.to_dtype(DType::F32)?.to_device(&device)?
            }
            None => NoiseGenerator::new(req.seed).randn(shape.to_vec(), DType::F32, &device)?,
        };

        // 4. First-frame conditioning.
        let [_, _, lt, lh, lw] = shape;
        let image = match &req.image {
            Some(img) => Some(self.image_tensor(img, req.width, req.height)?),
            None => None,
        };
        let condition = match (variant, &image) {
            (WanVariant::ImageToVideo, Some(img)) => {
                // The image followed by black frames, encoded; then the mask channels.
                let img = img.unsqueeze(2)?;
                let rest = Tensor::zeros(
                    (1, 3, req.frames - 1, req.height, req.width),
                    DType::F32,
                    &device,
                )?;
                let video = Tensor::cat(&[&img, &rest], 2)?;
                let lat = self.vae.normalize(&self.vae.encode(&video)?.mean)?;
                let st = self.vae.temporal_factor();
                let mut mask = vec![0f32; st * lt * lh * lw];
                for c in 0..st {
                    let base = c * lt * lh * lw;
                    mask[base..base + lh * lw].iter_mut().for_each(|v| *v = 1.0);
                }
                let mask = Tensor::from_vec(mask, (1, st, lt, lh, lw), &device)?;
                Some(Tensor::cat(&[&mask, &lat.to_dtype(DType::F32)?], 1)?)
            }
            (WanVariant::TextImageToVideo, Some(img)) => {
                let lat = self
                    .vae
                    .normalize(&self.vae.encode(&img.unsqueeze(2)?)?.mean)?;
                Some(lat.to_dtype(DType::F32)?)
            }
            _ => None,
        };
        let ti2v_image = variant == WanVariant::TextImageToVideo && condition.is_some();
        let [_, ph, pw] = self.transformer_cfg.patch_size;
        let frame_tokens = (lh / ph) * (lw / pw);

        // 5. Denoising loop (no gradients: weights are plain tensors, latents detached).
        let steps = timesteps.len();
        for (i, &t) in timesteps.iter().enumerate() {
            let (which, g) = match boundary {
                Some(b) if (t as f64) < b => (Expert::Low, req.guidance_2.unwrap_or(req.guidance)),
                _ => (Expert::High, req.guidance),
            };
            let model_input = match (&condition, variant) {
                (Some(c), WanVariant::ImageToVideo) => Tensor::cat(&[&latents, c], 1)?,
                (Some(c), WanVariant::TextImageToVideo) => {
                    Tensor::cat(&[c, &latents.narrow(2, 1, lt - 1)?], 2)?
                }
                _ => latents.clone(),
            }
            .to_dtype(dtype)?;
            let timestep = if ti2v_image {
                let mut ts = vec![t; lt * frame_tokens];
                ts[..frame_tokens].iter_mut().for_each(|v| *v = 0.0);
                Tensor::from_vec(ts, (1, lt * frame_tokens), &device)?
            } else {
                Tensor::from_vec(vec![t], 1, &device)?
            };
            let model = self.expert(which)?;
            let entities = match (model.entity_attention(), &req.entities) {
                (None, _) => None,
                (Some(ea), Some(set)) => Some(EntityTokens::batch(&[set], ea.entity_dim(), &device)?),
                (Some(_), None) => {
                    return Err(DiffusionError::InvalidInput(
                        "the adapter has an entity cross-attention: give the first frame's entities (GenerateRequest::entities, embedded with the model it was trained with)".into(),
                    ))
                }
            };
            let mut pred = model
                .forward_with_entities(&model_input, &timestep, &cond, entities.as_ref())?
                .to_dtype(DType::F32)?;
            if let Some(u) = &uncond {
                let pu = model
                    .forward_with_entities(&model_input, &timestep, u, entities.as_ref())?
                    .to_dtype(DType::F32)?;
                pred = (&pu + ((pred - &pu)? * g)?)?;
            }
            latents = scheduler.step(&pred, &latents)?.detach();
            on_step(&StepInfo {
                step: i + 1,
                steps,
                timestep: t,
                expert: which,
                latents: &latents,
            });
        }
        if !self.opts.keep_experts_loaded {
            self.high = None;
            self.low = None;
        }
        if let (true, Some(c)) = (ti2v_image, &condition) {
            latents = Tensor::cat(&[c, &latents.narrow(2, 1, lt - 1)?], 2)?;
        }

        // 6. Decode.
        let video = self.vae.decode(
            &self
                .vae
                .denormalize(&latents.to_dtype(self.opts.vae_dtype)?)?,
        )?;
        let video = video.to_dtype(DType::F32)?.squeeze(0)?; // [3, t, h, w]
        let t_all = video.dim(1)?;
        let video = video.narrow(1, req.drop_first, t_all - req.drop_first)?;
        let video_f32 = ((video / 2.0)? + 0.5)?
            .clamp(0f32, 1f32)?
            .permute((1, 2, 3, 0))?
            .contiguous()?
            .to_device(&Device::Cpu)?;
        let video_u8 = (video_f32.clone() * 255.0)?.round()?.to_dtype(DType::U8)?;
        let (n, h, w, _) = video_u8.dims4()?;
        let raw: Vec<u8> = video_u8.flatten_all()?.to_vec1()?;
        let frames = raw
            .chunks_exact(h * w * 3)
            .map(|c| RgbImage::from_raw(w as u32, h as u32, c.to_vec()).expect("frame size"))
            .collect::<Vec<_>>();
        debug_assert_eq!(frames.len(), n);
        Ok(Generated {
            frames,
            video: video_u8,
            video_f32,
            latents,
        })
    }
}
