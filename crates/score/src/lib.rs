//! Per-frame quality scores for reelsmith and their weighted combination.
//!
//! Model-free parts work on pixels:
//! - **Sharpness**: variance of the 3×3 Laplacian of the gray frame, equal to OpenCV's
//!   `cv2.Laplacian(gray, cv2.CV_64F).var()` ([`laplacian_variance`]), with gray conversion
//!   bit-exact with `cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)` ([`rgb_to_gray`]); normalised
//!   to 0..1 across a set of frames ([`normalize_sharpness`]).
//! - **Exposure**: a 0..1 penalty for crushed blacks and blown highlights beyond tolerated
//!   fractions of the luma histogram ([`ExposureParams::penalty`]).
//!
//! Model parts work on CLIP embeddings the caller computes (this crate never runs a
//! backbone):
//! - **Aesthetics**: LAION aesthetic predictor heads ([`AestheticHead`]) on the
//!   L2-normalised image embedding, raw 1–10 and mapped to 0..1 ([`AestheticMapping`]).
//! - **Saliency**: cosine similarity to prompt embeddings ([`prompt_similarity`]) mapped
//!   to 0..1 ([`SaliencyMapping`]).
//!
//! [`score_frames`] combines them: `S = w_a·aesthetics + w_s·sharpness − w_e·exposure +
//! w_c·saliency` mapped onto 0..1, keeping every component in its [`FrameScore`] row.
//!
//! ```
//! use reelsmith_score::{score_frames, ExposureParams, FrameMeasures, ScoreConfig};
//! let frames = [
//!     image::RgbImage::from_fn(32, 32, |x, _| image::Rgb([(x * 8) as u8; 3])),
//!     image::RgbImage::from_pixel(32, 32, image::Rgb([255, 255, 255])),
//! ];
//! let p = ExposureParams::default();
//! let m: Vec<_> = frames.iter().map(|f| FrameMeasures::from_rgb(f, &p)).collect::<Result<_, _>>()?;
//! let set = score_frames(&m, None, &ScoreConfig::default())?;
//! assert_eq!(set.rows[1].exposure, 1.0); // all white
//! assert!(set.rows[0].score > set.rows[1].score);
//! # Ok::<(), reelsmith_score::ScoreError>(())
//! ```

use std::path::PathBuf;

mod aesthetic;
mod composite;
mod exposure;
mod saliency;
mod sharpness;

pub use aesthetic::{AestheticHead, AestheticMapping, ClipFamily};
pub use composite::{
    score_frames, FrameMeasures, FrameScore, ModelInputs, ScoreConfig, ScoreSet, Weights,
};
pub use exposure::{Exposure, ExposureParams, LumaHistogram};
pub use saliency::{prompt_similarity, SaliencyMapping};
pub use sharpness::{
    laplacian_stats, laplacian_variance, laplacian_variance_rgb, luma, normalize_sharpness,
    rgb_to_gray, rgb_to_gray_into, LaplacianStats, SharpnessNorm, ABSOLUTE_HALF_VARIANCE,
};

/// Errors of the scoring functions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScoreError {
    /// An image with no pixels.
    #[error("the image is empty (0 pixels); pass a decoded frame of at least 1×1")]
    EmptyImage,
    /// A raw buffer whose length does not match its stated size.
    #[error("a {width}×{height} image with {channels} channel(s) needs {} bytes but the buffer has {len}", width * height * channels)]
    BufferSize {
        /// Stated width.
        width: usize,
        /// Stated height.
        height: usize,
        /// Channels per pixel.
        channels: usize,
        /// Actual buffer length.
        len: usize,
    },
    /// A file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// A file that is not a usable aesthetic head.
    #[error("{} is not a usable aesthetic head: {reason}; expected a LAION aesthetic predictor (.pth or .safetensors with weight/bias or layers.N.weight/bias keys)", path.display())]
    Head {
        /// The file (empty for in-memory heads).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The head's input width differs from the embedding width.
    #[error("aesthetic head {head} takes {expected}-d CLIP embeddings but got {got}-d ones; pick the head trained for your CLIP model")]
    HeadDim {
        /// Where the head came from.
        head: String,
        /// The head's input width.
        expected: usize,
        /// The embedding width given.
        got: usize,
    },
    /// Embedding rows do not match the number of frames.
    #[error("{what}: expected one row per frame ({expected}) but got {got}")]
    RowCount {
        /// Which input.
        what: &'static str,
        /// Number of frames.
        expected: usize,
        /// Number of rows.
        got: usize,
    },
    /// Two embedding sets of different widths.
    #[error("{what} are {got}-d but the image embeddings are {expected}-d; embed both with the same CLIP model")]
    DimMismatch {
        /// Which input.
        what: &'static str,
        /// Image embedding width.
        expected: usize,
        /// The other width.
        got: usize,
    },
    /// Saliency was asked for with an empty prompt set.
    #[error("no prompt embeddings given for saliency")]
    NoPrompts,
    /// An invalid score configuration: negative or non-finite weights, percentiles out of
    /// order, exposure fractions out of range (the message names the value at fault).
    #[error("invalid score configuration: {0}")]
    InvalidWeights(String),
}
