//! Text saliency: how well a frame matches one or more text prompts in CLIP space.

use reelsmith_core::{cosine_similarity, Embeddings};
use serde::{Deserialize, Serialize};

use crate::ScoreError;

/// For every image row, the highest cosine similarity to any prompt row (the frame matches
/// the prompt it matches best). Both sides come from the same CLIP model (image tower and
/// text tower); they need not be normalised. Fails when there are no prompts or the widths
/// differ.
///
/// ```
/// use reelsmith_core::Embeddings;
/// let images = Embeddings::from_rows(&[[1.0, 0.0], [0.0, 1.0]]).unwrap();
/// let prompts = Embeddings::from_rows(&[[1.0, 1.0], [1.0, 0.0]]).unwrap();
/// let s = reelsmith_score::prompt_similarity(&images, &prompts).unwrap();
/// assert_eq!(s[0], 1.0);
/// assert!((s[1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
/// ```
pub fn prompt_similarity(
    images: &Embeddings,
    prompts: &Embeddings,
) -> Result<Vec<f32>, ScoreError> {
    if prompts.is_empty() {
        return Err(ScoreError::NoPrompts);
    }
    if prompts.dim() != images.dim() {
        return Err(ScoreError::DimMismatch {
            what: "prompt embeddings",
            expected: images.dim(),
            got: prompts.dim(),
        });
    }
    Ok(images
        .rows()
        .map(|img| {
            prompts
                .rows()
                .map(|p| cosine_similarity(img, p))
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .collect())
}

/// Maps a CLIP image–text cosine similarity to a 0..1 saliency.
///
/// CLIP cosines between an image and a matching caption sit around 0.25–0.35 and
/// unrelated pairs around 0.1–0.2, so raw cosines would waste most of 0..1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum SaliencyMapping {
    /// CLIPScore (Hessel et al., 2021): `min(1, scale · max(cos, 0))` with `scale = 2.5`,
    /// so a cosine of 0.4 or more is 1 and 0.2 is 0.5.
    /// This is the default.
    ClipScore {
        /// Multiplier, 2.5 in the CLIPScore paper.
        scale: f32,
    },
    /// `clamp((cos − low) / (high − low), 0, 1)`.
    Linear {
        /// Cosine mapped to 0.
        low: f32,
        /// Cosine mapped to 1.
        high: f32,
    },
}

impl Default for SaliencyMapping {
    fn default() -> Self {
        SaliencyMapping::ClipScore { scale: 2.5 }
    }
}

impl SaliencyMapping {
    /// Applies the mapping (non-finite cosines map to 0).
    ///
    /// ```
    /// use reelsmith_score::SaliencyMapping;
    /// assert_eq!(SaliencyMapping::default().map(0.25), 0.625);
    /// assert_eq!(SaliencyMapping::default().map(-0.1), 0.0);
    /// assert_eq!(SaliencyMapping::Linear { low: 0.0, high: 0.5 }.map(0.25), 0.5);
    /// ```
    pub fn map(&self, cos: f32) -> f32 {
        if !cos.is_finite() {
            return 0.0;
        }
        match *self {
            SaliencyMapping::ClipScore { scale } => (scale * cos.max(0.0)).clamp(0.0, 1.0),
            SaliencyMapping::Linear { low, high } => {
                if high <= low {
                    if cos >= low {
                        1.0
                    } else {
                        0.0
                    }
                } else {
                    ((cos - low) / (high - low)).clamp(0.0, 1.0)
                }
            }
        }
    }
}
