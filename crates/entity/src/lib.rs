//! reelsmith-entity: the entities of a first frame.
//!
//! The seed method (FFGo, "First Frame Is the Place to Go for Video Content Customization",
//! arXiv 2511.15700) treats an image-to-video model's first frame as a buffer of visual
//! entities. This crate finds the entities of a frame, keeps them, composes first frames
//! from them, and measures how well a video keeps them:
//!
//! - [`segment::Segmenter`] — image in, instance masks with scores out:
//!   [`segment::IsnetSegmenter`] (salient objects with ISNet, [`isnet`], native on candle
//!   with its own CPU convolution kernels) and, with the `sam` feature (default),
//!   [`sam::SamSegmenter`] (Segment Anything's automatic masks, point and box prompts).
//! - [`instances`] — probability map → instances (threshold, morphology, components).
//! - [`entity::Entity`] / [`entity::FrameEntities`] — mask, box, centroid, area, RGBA
//!   cut-out, score, optional embedding; [`mask::Rle`] is COCO's run-length encoding.
//! - [`memory`] — the entity memory folder (`entities.json`, masks, cut-outs,
//!   `embeddings.safetensors`), written whole or not at all.
//! - [`compose`] — first-frame composition in FFGo's layout or a free JSON layout.
//! - [`retention`] — per sampled frame, match candidates to the remembered entities by
//!   cosine similarity and report presence and similarity over time (CSV, plot, JSON).
//!
//! Embedding is another stage's job: entities and candidates carry vectors given to them.
//!
//! ```
//! use image::{Rgb, RgbImage};
//! use reelsmith_entity::entity::FrameEntities;
//! use reelsmith_entity::instances::{instances_from_probability, InstanceOptions, ProbabilityMap};
//!
//! // A probability map (as a segmenter would give) with one confident square.
//! let frame = RgbImage::from_pixel(64, 48, Rgb([30, 60, 90]));
//! let p = ProbabilityMap::new(64, 48, (0..64 * 48)
//!     .map(|i| if (10..30).contains(&(i % 64)) && (8..28).contains(&(i / 64)) { 0.9 } else { 0.1 })
//!     .collect())?;
//! let instances = instances_from_probability(&p, &InstanceOptions::default());
//! let entities = FrameEntities::from_instances(&frame, instances, "isnet")?;
//! assert_eq!(entities.entities.len(), 1);
//! let e = &entities.entities[0];
//! assert_eq!((e.bbox.x, e.bbox.y, e.bbox.width, e.bbox.height), (10, 8, 20, 20));
//! assert_eq!(e.cutout.dimensions(), (20, 20));
//! # Ok::<(), reelsmith_entity::EntityError>(())
//! ```

pub mod compose;
pub mod entity;
pub mod instances;
pub mod isnet;
pub mod mask;
pub mod memory;
pub mod output;
pub mod retention;
#[cfg(feature = "sam")]
pub mod sam;
pub mod segment;
mod weights;

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum EntityError {
    /// A weights file that cannot be used.
    #[error("weights {path}: {message}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Input that cannot be used (sizes, values, formats), with what to do instead.
    #[error("{0}")]
    Invalid(String),
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An image that cannot be read, written or used.
    #[error("image {path}: {message}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A JSON file that cannot be read or does not describe what it should.
    #[error("JSON {path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model error.
    #[error("model: {0}")]
    Candle(#[from] candle_core::Error),
}
