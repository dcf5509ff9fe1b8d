//! reelsmith: turn video into understanding and back into video.
//!
//! This facade re-exports the stage crates under short names and hosts the pipelines that
//! compose them. Each stage is also usable on its own as its own crate:
//!
//! - [`core`] (`reelsmith-core`): embeddings, time spans, frame/time conventions.
//! - [`decode`] (`reelsmith-decode`): probing, sampled decoding, clip and image export.
//! - [`score`] (`reelsmith-score`): sharpness, exposure, aesthetics, saliency and their
//!   weighted score; [`pipeline::score`] runs it on image and video files.
//! - [`embed`] (`reelsmith-embed`): embedders, including the weight-free pixel embedder.
//! - [`segment`] (`reelsmith-segment`): seams, keyframes, smoothing, peaks, diversity,
//!   shot detection.
//!
//! Pipelines (errors are [`Error`] unless a pipeline says otherwise):
//!
//! - [`highlights`]: the best moments of a video cut into clips, with a report.
//! - [`shots`]: shot detection on a video file (hard cuts and gradual transitions).
//! - [`keyframes`]: quantile or seam keyframes written as images.
//!
//! - [`embed_video`]: decode → embed in batches, with an optional embedding cache.
//!
//! ```no_run
//! use reelsmith::decode::{open, DecodeOptions, Sampling, Scale};
//! let video = open("holiday.mp4")?;
//! let n = video
//!     .frames(&DecodeOptions::new().sampling(Sampling::Fps(1.0)).scale(Scale::Height(360)))?
//!     .count();
//! println!("{n} frames at 1 fps");
//! # Ok::<(), reelsmith::decode::DecodeError>(())
//! ```

pub use reelsmith_core as core;
pub use reelsmith_decode as decode;
pub use reelsmith_embed as embed;
pub use reelsmith_score as score;
pub use reelsmith_segment as segment;

pub mod highlights;
pub mod pipeline;
pub mod progress;
mod report;
mod sampling;
pub mod segments;

mod video_embed;
pub use video_embed::{embed_video, VideoEmbeddings};

pub use reelsmith_core::{Embeddings, FrameRate, FrameRef, TimeSpan};

pub mod analysis;
mod error;
pub mod keyframes;
pub mod shots;

pub use error::Error;
