//! The shared model layer of reelsmith: what every model-running stage (`embed`, `score`,
//! `entity`, `diffusion`) needs to find, load, run and train a model on
//! [candle](https://github.com/huggingface/candle).
//!
//! | need | here |
//! |---|---|
//! | a model's files in a folder or on the Hugging Face hub (cache first, download unless offline, fast failure when unreachable) | [`ModelRepo`], [`HubOptions`] |
//! | the device and the floating-point type | [`DeviceChoice`], [`DTypeChoice`] |
//! | `config.json` → a typed config, errors naming the file | [`read_config`], [`model_type`] |
//! | safetensors (memory-mapped, sharded `*.index.json`), `.bin` / `.pth` through candle-nn's [`VarBuilder`], every missing or misshapen tensor named in one error, key renaming, on-load transforms (BatchNorm folding) | [`Checkpoint`], [`FoldBatchNorm`], [`Transform`] |
//! | layers the candle-transformers way (`Config`, `new(vb, &cfg)`, [`Module::forward`]) that train | [`Linear`], [`LayerNorm`], [`RmsNorm`], [`Activation`], [`Attention`], [`Mlp`], [`PatchEmbed`] |
//! | differentiable functions with fused CPU inference kernels | [`ops`] |
//! | seeded random numbers, the same on every device | [`SeededRng`], [`randn`], [`seeded_var_builder`] |
//! | low-rank adapters (LoRA) for dense layers; their files in PEFT and kohya naming | [`LoraLayer`], [`LoraConfig`], [`read_lora_file`], [`write_lora_file`] |
//! | finite-difference gradient tests | [`grad_check()`], [`GradCheck`] |
//! | errors | [`ModelError`] |
//!
//! # Loading a model
//!
//! A model is a struct with a `new(vb, &cfg)` constructor that reads its weights through a
//! [`VarBuilder`]. [`Checkpoint::var_builder`] hands one out that reads each tensor from the
//! file on demand (the model holds the only copy) and records every missing or misshapen
//! tensor; [`Checkpoint::finish`] then reports them all at once:
//!
//! ```
//! use reelsmith_models::candle_core::{DType, Device, Module, Tensor};
//! use reelsmith_models::candle_nn::VarBuilder;
//! use reelsmith_models::{
//!     read_config, Activation, Checkpoint, LayerNorm, LayerNormConfig, Mlp, MlpConfig,
//!     ModelError, ModelRepo,
//! };
//!
//! #[derive(serde::Deserialize)]
//! struct Config { hidden_size: usize, intermediate_size: usize, hidden_act: Activation }
//!
//! /// A residual MLP block, written the candle-transformers way.
//! struct Block { norm: LayerNorm, mlp: Mlp }
//!
//! impl Block {
//!     fn new(vb: VarBuilder, cfg: &Config) -> candle_core::Result<Self> {
//!         Ok(Self {
//!             norm: LayerNorm::new(vb.pp("norm"), &LayerNormConfig::new(cfg.hidden_size, 1e-5))?,
//!             mlp: Mlp::new(
//!                 vb.pp("mlp"),
//!                 &MlpConfig::new(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act),
//!             )?,
//!         })
//!     }
//! }
//!
//! impl Module for Block {
//!     fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
//!         x + self.mlp.forward(&self.norm.forward(x)?)?
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::write(dir.path().join("config.json"),
//! #     r#"{"hidden_size": 8, "intermediate_size": 16, "hidden_act": "gelu"}"#)?;
//! # let dev = Device::Cpu;
//! # let mut t = std::collections::HashMap::new();
//! # for (n, s) in [("norm.weight", vec![8]), ("norm.bias", vec![8]), ("mlp.fc1.weight", vec![16, 8]),
//! #     ("mlp.fc1.bias", vec![16]), ("mlp.fc2.weight", vec![8, 16]), ("mlp.fc2.bias", vec![8])] {
//! #     t.insert(n.to_string(), reelsmith_models::randn(0, s, DType::F32, &dev)?);
//! # }
//! # candle_core::safetensors::save(&t, dir.path().join("model.safetensors"))?;
//! // A folder laid out like a hub repository (`ModelRepo::hub("org/name", &opts)` reads
//! // the Hugging Face cache the same way).
//! let repo = ModelRepo::dir(dir.path())?;
//! let cfg: Config = read_config(repo.get("config.json")?)?;
//! let ckpt = Checkpoint::open(repo.weights(ModelRepo::DEFAULT_WEIGHTS)?)?;
//! let block = Block::new(ckpt.var_builder(DType::F32, &dev), &cfg)?;
//! ckpt.finish()?; // one error naming every missing or misshapen tensor, if any
//! let y = block.forward(&Tensor::ones((2, 8), DType::F32, &dev)?)?;
//! assert_eq!(y.dims(), &[2, 8]);
//! # Ok(()) }
//! ```
//!
//! # Training
//!
//! The same layers train: with weights that are [`candle_core::Var`]s (from a
//! [`candle_nn::VarMap`], or [`seeded_var_builder`] for reproducible initialisation), or
//! an input computed from one (a LoRA adapter before a frozen layer), every layer takes its
//! composed, differentiable path and `backward()` reaches all of them. Without gradients on
//! the CPU, the fused kernels run instead ([`ops`] explains the choice). [`grad_check()`]
//! verifies a layer's gradients against finite differences; use it in the tests of every
//! new layer — it fails where candle silently drops a gradient.
//!
//! # Cargo features
//!
//! - `cuda`: NVIDIA GPUs through candle's CUDA backend ([`DeviceChoice::Cuda`]).
//! - `metal`: Apple GPUs through candle's Metal backend ([`DeviceChoice::Metal`]).
//! - `mkl`: Intel MKL for CPU matrix products (the fused linear kernel then yields to it).
//! - `accelerate`: Apple Accelerate for CPU matrix products (likewise).
//!
//! None is on by default; stage crates and the facade forward features of the same names.
//! docs.rs builds these docs without them.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use candle_core;
pub use candle_core::Module;
pub use candle_nn;
pub use candle_nn::VarBuilder;

mod alloc;
mod config;
mod device;
mod error;
pub mod grad_check;
mod hub;
mod kernels;
mod layers;
mod lora;
pub mod ops;
mod rng;
mod vmath;
mod weights;

pub use alloc::tune_allocator_for_inference;
pub use config::{model_type, parse_config, read_config};
pub use device::{DTypeChoice, DeviceChoice};
pub use error::{describe_weight_problems, ModelError};
pub use grad_check::{grad_check, GradCheck, GradCheckError, GradReport};
pub use hub::{is_commit, HubOptions, ModelRepo};
pub use layers::{
    linear, linear_no_bias, Activation, Attention, AttentionConfig, AttentionNames, LayerNorm,
    LayerNormConfig, Linear, LinearConfig, Mlp, MlpConfig, PatchEmbed, PatchEmbedConfig, RmsNorm,
    RmsNormConfig,
};
pub use lora::{
    pattern_matches, read_lora_file, read_lora_file_split, write_lora_file,
    write_lora_file_with_extra, LoraConfig, LoraFile, LoraLayer, LoraNaming, StoredLora,
};
pub use rng::{randn, seeded_var_builder, SeededRng};
pub use weights::{Checkpoint, FoldBatchNorm, TensorSource, Transform};
