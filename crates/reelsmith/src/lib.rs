//! reelsmith: turn video into understanding and back into video.
//!
//! This facade re-exports the stage crates under short names and hosts the pipelines that
//! compose them. Each stage is also usable on its own as its own crate:
//!
//! - [`core`] (`reelsmith-core`): embeddings, time spans, frame/time conventions.
//! - [`decode`] (`reelsmith-decode`): probing, sampled decoding, clip and image export.
//! - [`embed`] (`reelsmith-embed`): CLIP, DINOv2 and the weight-free pixel embedder.
//! - [`score`] (`reelsmith-score`): sharpness, exposure, aesthetics, saliency and their
//!   weighted score.
//! - [`segment`] (`reelsmith-segment`): seams, keyframes, smoothing, peaks, diversity,
//!   shot detection.
//! - [`entity`] (`reelsmith-entity`): segmenters (ISNet, SAM), entities, the entity memory,
//!   first-frame composition, retention.
//! - [`diffusion`] (`reelsmith-diffusion`): Wan 2.x image-to-video on candle.
//!
//! # Pipelines
//!
//! Every pipeline in [`pipelines`] has the same shape: a serialisable configuration with
//! defaults (so it can come from a TOML or JSON file), an input (files, an output folder,
//! and a [`models::Models`] registry that loads each model once), and
//! `run(input, &config, &dyn Progress)` returning a report or the one [`Error`] type. See
//! the [`pipelines`] table: probe, frames, shots, keyframes, score, embed, highlights,
//! segments, and the first-frame pipelines entities, compose, retention and generate.
//!
//! ```
//! use reelsmith::pipelines::shots::{self, ShotsConfig};
//! use reelsmith::progress::NoProgress;
//!
//! # let dir = tempfile::tempdir()?;
//! # let video = reelsmith_test_support::two_shot_video(dir.path());
//! // `video`: 4 s at 25 fps, with a hard cut at 2.0 s.
//! let report = shots::run(&video, &ShotsConfig::default(), &NoProgress)?;
//! assert_eq!(report.shots.len(), 2);
//! let cut = &report.transitions[0];
//! assert!((report.frame_time(cut.frame) - 2.0).abs() < 1e-6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Cargo features
//!
//! - `cuda`: NVIDIA GPUs for the models (candle CUDA; needs the CUDA toolkit).
//! - `metal`: Apple GPUs for the models (candle Metal).
//! - `mkl`: Intel MKL for the models' CPU matrix products.
//! - `accelerate`: Apple Accelerate for the models' CPU matrix products.
//! - `sam` (default): Segment Anything as an entity segmenter.
//!
//! None of the GPU and BLAS features is on by default; everything runs on the CPU without them. Models then run on
//! the device chosen with [`models::Models::with_device`].

pub use reelsmith_core as core;
pub use reelsmith_decode as decode;
pub use reelsmith_diffusion as diffusion;
pub use reelsmith_embed as embed;
pub use reelsmith_entity as entity;
pub use reelsmith_score as score;
pub use reelsmith_segment as segment;

pub use reelsmith_core::{Embeddings, FrameRate, FrameRef, TimeSpan};

pub mod analysis;
pub mod config;
mod embed_loop;
mod error;
mod first_frame;
pub mod models;
pub mod output;
pub mod pipelines;
pub mod progress;

pub use error::Error;
