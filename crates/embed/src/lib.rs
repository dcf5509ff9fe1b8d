//! Embedders: turn frames (and, for CLIP, texts) into [`Embeddings`] rows.
//!
//! Every image model implements [`Embedder`]; models with a text tower also implement
//! [`TextEmbedder`]. Rows come back in input order, one per image or text, unnormalised
//! unless the model's documentation says otherwise.
//!
//! # Models
//!
//! - [`ClipModel`]: any Hugging Face `CLIPModel` checkpoint (image and text towers with
//!   their projections). `config.json` drives every size and the activation (`quick_gelu`
//!   for OpenAI checkpoints, `gelu` for LAION's open_clip conversions).
//! - [`Dinov2Model`]: the Hugging Face `Dinov2Model` layout (`facebook/dinov2-*`): the pooled
//!   CLS embedding, the mean patch embedding and the patch-token grid, with position
//!   embeddings interpolated for any input size.
//!
//! Both load from a folder ([`ClipModel::from_dir`], [`Dinov2Model::from_dir`]) or from the
//! Hugging Face hub and its local cache ([`ClipModel::from_pretrained`],
//! [`load_pretrained`]), reading `model.safetensors` or PyTorch `pytorch_model.bin`.
//! Known models carry a manifest (hub id, pinned revision, files, dimensions,
//! preprocessing) in the repository's `models/` folder, compiled in: see [`manifests`].
//!
//! Images are preprocessed exactly as the checkpoint's `preprocessor_config.json` says
//! (see [`Preprocessor`]), reproducing the PIL resampling of transformers' processors.
//!
//! Model plumbing — hub and folder resolution ([`HubOptions`]), devices ([`DeviceChoice`]),
//! checkpoint loading and the transformer layers — comes from [`reelsmith_models`]
//! (re-exported as [`models`]); the towers are built the candle-transformers way
//! ([`ClipVisionTransformer::new`], [`Dinov2Backbone::new`] take a `VarBuilder` and a
//! config), so they can also be loaded from other key layouts or trained.
//!
//! ```no_run
//! use reelsmith_embed::{load_pretrained, DeviceChoice, Embedder, HubOptions};
//!
//! let model = load_pretrained("openai/clip-vit-base-patch32", &HubOptions::default(), DeviceChoice::Cpu)?;
//! let frame = image::RgbImage::new(640, 360);
//! let rows = model.embed_images(&[frame])?;
//! assert_eq!(rows.dim(), 512);
//! let texts = model.as_text_embedder().unwrap().embed_texts(&["a photo of a cat"])?;
//! assert_eq!(texts.dim(), 512);
//! # Ok::<(), reelsmith_embed::EmbedError>(())
//! ```

use std::path::PathBuf;

pub use candle_core;
pub use image;
pub use reelsmith_core::{Embeddings, FrameRef};
pub use reelsmith_models as models;
pub use reelsmith_models::{DeviceChoice, HubOptions, ModelError};

mod any;
mod cache;
mod clip;
mod dinov2;
mod hub;
mod manifest;
mod pixel;
mod preprocess;

pub use any::{load_dir, load_pretrained, AnyModel};
pub use cache::{CacheKey, CachedEmbeddings, EmbeddingCache};
pub use clip::{
    ClipConfig, ClipEncoderLayer, ClipModel, ClipTextConfig, ClipTextTransformer, ClipVisionConfig,
    ClipVisionOutput, ClipVisionTransformer,
};
pub use dinov2::{Dinov2Backbone, Dinov2Config, Dinov2Layer, Dinov2Model, Dinov2Output, PatchGrid};
pub use manifest::{manifest, manifests, ModelFamily, ModelManifest, PreprocessManifest};
pub use pixel::PixelEmbedder;
pub use preprocess::{Preprocessor, Resample};

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
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A configuration file (`config.json`, `preprocessor_config.json`, a manifest) is
    /// missing a field, has a wrong value or describes an unsupported model.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The model layer failed: weights missing or misshapen in the checkpoint, a model
    /// not in the Hugging Face cache nor downloadable, a device this build or machine
    /// lacks (see [`ModelError`]'s variants).
    #[error(transparent)]
    Model(Box<ModelError>),
    /// The tokenizer could not be loaded or failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The tensor backend (candle) failed.
    #[error("tensor backend: {0}")]
    Backend(#[from] candle_core::Error),
}

/// Where the hub cannot provide a model: how to load one from a folder instead.
pub(crate) const LOCAL_ADVICE: &str =
    "in reelsmith: ClipModel::from_dir / load_dir, or --model-dir on the command line";

impl From<ModelError> for EmbedError {
    /// The model layer's errors: its tensor-backend, input, file and configuration errors
    /// as this crate's own variants, the rest wrapped (a download error gains the advice to
    /// load a local folder).
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Io { path, source } => EmbedError::Io { path, source },
            ModelError::Config { path, message } => EmbedError::Config { path, message },
            ModelError::InvalidInput(m) => EmbedError::InvalidInput(m),
            ModelError::Backend(e) => EmbedError::Backend(e),
            ModelError::Download { model, message } => {
                EmbedError::Model(Box::new(ModelError::Download {
                    model,
                    message: format!("{message} ({LOCAL_ADVICE})"),
                }))
            }
            other => EmbedError::Model(Box::new(other)),
        }
    }
}

impl EmbedError {
    /// Whether the model could not be found in the Hugging Face cache nor downloaded (as
    /// opposed to found but unusable).
    pub fn is_download(&self) -> bool {
        matches!(self, EmbedError::Model(e) if matches!(**e, ModelError::Download { .. }))
    }
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
