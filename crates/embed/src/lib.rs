//! Embedders: turn frames (and, for CLIP, texts) into [`Embeddings`] rows.
//!
//! Every image model implements [`Embedder`]; models with a text tower also implement
//! [`TextEmbedder`]. Rows come back in input order, one per image or text, unnormalised
//! unless the model's documentation says otherwise.

pub use reelsmith_core::Embeddings;

mod pixel;
pub use pixel::PixelEmbedder;

/// Errors from loading or running an embedder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The input batch cannot be embedded (for example images of different sizes where the
    /// model needs one size).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Shape bookkeeping failed while assembling the output.
    #[error(transparent)]
    Core(#[from] reelsmith_core::CoreError),
}

/// An image embedder: a batch of RGB images in, one embedding row per image out.
pub trait Embedder: Send + Sync {
    /// A stable identifier of the model and its settings (used as a cache key), such as
    /// `openai/clip-vit-base-patch32@<revision>` or `pixel-16x9-hist`.
    fn model_id(&self) -> &str;

    /// Width of each embedding row.
    fn dim(&self) -> usize;

    /// Embeds a batch of images; the result has `images.len()` rows of width [`Embedder::dim`].
    fn embed_images(&self, images: &[image::RgbImage]) -> Result<Embeddings, EmbedError>;
}

/// A text embedder living in the same space as an image [`Embedder`] (CLIP's text tower).
pub trait TextEmbedder: Send + Sync {
    /// Embeds a batch of texts; one row per text, of the same width as the paired image side.
    fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings, EmbedError>;
}
