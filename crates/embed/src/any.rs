//! Loading whichever model a checkpoint holds.

use std::path::Path;

use crate::hub::{self, ModelFiles};
use crate::manifest::ModelFamily;
use crate::HubOptions;
use crate::{ClipModel, DeviceChoice, Dinov2Model, EmbedError, Embedder, Embeddings, TextEmbedder};

/// A CLIP or DINOv2 model, chosen by the checkpoint's `config.json` (`model_type`).
#[derive(Debug)]
pub enum AnyModel {
    /// CLIP: image and text embeddings in one space.
    Clip(Box<ClipModel>),
    /// DINOv2: image embeddings (pooled CLS) and patch tokens.
    Dinov2(Box<Dinov2Model>),
}

impl AnyModel {
    /// The text side, for models that have one.
    pub fn as_text_embedder(&self) -> Option<&dyn TextEmbedder> {
        match self {
            AnyModel::Clip(m) => Some(m.as_ref()),
            AnyModel::Dinov2(_) => None,
        }
    }

    fn from_files(
        files: &ModelFiles,
        id: String,
        device: DeviceChoice,
    ) -> Result<Self, EmbedError> {
        let dev = device.device()?;
        let (m, dim) = match files.family {
            ModelFamily::Clip => {
                let m = ClipModel::from_files(files, id, &dev)?;
                let d = m.dim();
                (AnyModel::Clip(Box::new(m)), d)
            }
            ModelFamily::Dinov2 => {
                let m = Dinov2Model::from_files(files, id, &dev)?;
                let d = m.dim();
                (AnyModel::Dinov2(Box::new(m)), d)
            }
        };
        files.check_dim(dim)?;
        Ok(m)
    }
}

/// Loads the model in a checkpoint folder (Hugging Face layout).
pub fn load_dir(dir: impl AsRef<Path>, device: DeviceChoice) -> Result<AnyModel, EmbedError> {
    let dir = dir.as_ref();
    let files = ModelFiles::from_dir(dir)?;
    let prefix = match files.family {
        ModelFamily::Clip => "clip",
        ModelFamily::Dinov2 => "dinov2",
    };
    AnyModel::from_files(&files, format!("{prefix}:{}", dir.display()), device)
}

/// Loads a model by hub id (`openai/clip-vit-base-patch32`) or manifest alias
/// (`clip-b32`, `dinov2-small`) through the Hugging Face cache; see [`HubOptions`].
pub fn load_pretrained(
    name: &str,
    opts: &HubOptions,
    device: DeviceChoice,
) -> Result<AnyModel, EmbedError> {
    let files = hub::fetch(name, opts)?;
    AnyModel::from_files(&files, files.model_id.clone(), device)
}

impl Embedder for AnyModel {
    fn model_id(&self) -> &str {
        match self {
            AnyModel::Clip(m) => m.model_id(),
            AnyModel::Dinov2(m) => m.model_id(),
        }
    }

    fn dim(&self) -> usize {
        match self {
            AnyModel::Clip(m) => m.dim(),
            AnyModel::Dinov2(m) => m.dim(),
        }
    }

    fn embed_images(&self, images: &[image::RgbImage]) -> Result<Embeddings, EmbedError> {
        match self {
            AnyModel::Clip(m) => m.embed_images(images),
            AnyModel::Dinov2(m) => m.embed_images(images),
        }
    }
}
