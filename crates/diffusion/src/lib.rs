//! Video diffusion on candle: the Wan 2.x family, equal to diffusers.
//!
//! - [`WanTransformer`]: the diffusion transformer (Wan2.1-T2V, Wan2.2-I2V-A14B experts,
//!   Wan2.2-TI2V-5B), from a diffusers folder or an original single-file checkpoint.
//! - [`WanVae`]: the causal 3D video VAE, Wan 2.1 (z 16) and Wan 2.2 (z 48, patchified).
//! - [`TextEncoder`]: the UMT5 text encoder with its tokenizer, prompt embeddings as the
//!   pipelines build them.
//! - [`Scheduler`]: flow-match Euler with shift and UniPC multistep on flow sigmas.
//! - [`WanPipeline`]: the sampler (image-to-video, TI2V, text-to-video) over a diffusers
//!   model folder: first-frame conditioning, guidance, expert switch, VAE decode.
//! - [`NoiseGenerator`]: seeded noise, the same on every device.
//! - [`WanLora`], [`train()`]: FFGo's LoRA training, with the optional entity
//!   cross-attention ([`EntityAttention`]) to the first frame's entities.
//!
//! Every component equals diffusers/transformers on the same inputs (see `docs/diffusion.md`
//! for what was verified and how, and the memory table).
//!
//! ```
//! use reelsmith_diffusion::{image, GenerateRequest, PipelineOptions, WanPipeline, WanVariant};
//!
//! // A tiny random-weight Wan2.2-I2V-A14B-style model in the diffusers layout (test fixture).
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wan22_i2v");
//! let mut pipe = WanPipeline::load(dir.as_ref(), PipelineOptions::default())?;
//! assert_eq!(pipe.variant(), WanVariant::ImageToVideo);
//!
//! let mut req = GenerateRequest::new("A cat walks on the grass, realistic style.");
//! req.image = Some(image::RgbImage::from_pixel(48, 32, image::Rgb([90, 160, 60])));
//! req.width = 48;
//! req.height = 32;
//! req.frames = 5;
//! req.steps = 2;
//! req.seed = 42;
//! let out = pipe.generate(&req, &mut |s| eprintln!("step {}/{} t={}", s.step, s.steps, s.timestep))?;
//! assert_eq!(out.frames.len(), 5);
//! assert_eq!(out.video.dims(), &[5, 32, 48, 3]);
//! # Ok::<(), reelsmith_diffusion::DiffusionError>(())
//! ```

pub use candle_core;
pub use image;

#[cfg(feature = "openblas")]
mod blas;
pub mod cache;
pub mod dataset;
pub mod entity_attn;
mod error;
pub mod keymap;
pub mod layers;
pub mod loading;
pub mod lora;
mod pipeline;
mod rng;
mod scheduler;
mod text;
pub mod train;
mod transformer;
mod vae;

pub use entity_attn::{EntityAttention, EntityAttnConfig, EntitySet, EntityTokens};
pub use error::{DiffusionError, Result};
pub use lora::WanLora;
pub use pipeline::{
    load_prompt_embeddings, save_prompt_embeddings, Expert, GenerateRequest, Generated,
    PipelineOptions, PromptInput, StepInfo, WanPipeline, WanVariant,
};
pub use reelsmith_models::{LoraConfig, LoraLayer, LoraNaming};
pub use rng::NoiseGenerator;
pub use scheduler::{FlowMatchEuler, Scheduler, SchedulerConfig, SchedulerKind, UniPc};
pub use text::{
    clean_prompt, TextEncoder, Umt5Config, Umt5Encoder, MAX_SEQUENCE_LENGTH, WAN_NEGATIVE_PROMPT,
};
pub use train::{train, TimestepRange, TrainConfig, TrainExample, TrainOutcome, TrainStep};
pub use transformer::{WanTransformer, WanTransformerConfig};
pub use vae::{LatentDistribution, WanVae, WanVaeConfig};
