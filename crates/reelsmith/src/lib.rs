//! reelsmith: turn video into understanding and back into video.
//!
//! This facade re-exports the stage crates under short names and hosts the pipelines that
//! compose them. Each stage is also usable on its own as its own crate:
//!
//! - [`core`] (`reelsmith-core`): embeddings, time spans, frame/time conventions.
//! - [`decode`] (`reelsmith-decode`): probing, sampled decoding, clip and image export.
//! - [`embed`] (`reelsmith-embed`): CLIP, DINOv2 and pixel embedders, model loading.
//!
//! Pipelines: [`embed_video`] (decode → embed, with an optional embedding cache).
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

mod video_embed;
pub use video_embed::{embed_video, PipelineError, VideoEmbeddings};

pub use reelsmith_core::{Embeddings, FrameRate, FrameRef, TimeSpan};
