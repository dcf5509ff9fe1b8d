//! Finding a checkpoint's files (in a folder, in the Hugging Face cache, or by download)
//! through [`reelsmith_models::ModelRepo`], with the models' manifests.

use std::path::{Path, PathBuf};

use reelsmith_models::{HubOptions, ModelError, ModelRepo};

use crate::manifest::{self, ModelFamily, PreprocessManifest};
use crate::preprocess::Preprocessor;
use crate::EmbedError;

/// The files of one checkpoint, wherever they came from.
#[derive(Debug, Clone)]
pub(crate) struct ModelFiles {
    /// Identifier used as [`crate::Embedder::model_id`].
    pub model_id: String,
    pub family: ModelFamily,
    pub config: PathBuf,
    pub preprocessor: Option<PathBuf>,
    pub manifest_preprocess: Option<PreprocessManifest>,
    pub tokenizer: Option<PathBuf>,
    pub weights: PathBuf,
    pub expected_dim: Option<usize>,
}

pub(crate) fn family_of(config: &Path) -> Result<ModelFamily, EmbedError> {
    match reelsmith_models::model_type(config)?.as_deref() {
        Some("clip") => Ok(ModelFamily::Clip),
        Some("dinov2") => Ok(ModelFamily::Dinov2),
        other => Err(EmbedError::Config {
            path: config.to_path_buf(),
            message: format!(
                "model_type {other:?} is not supported (expected \"clip\" or \"dinov2\")"
            ),
        }),
    }
}

impl ModelFiles {
    /// The files of a checkpoint folder.
    pub fn from_dir(dir: &Path) -> Result<Self, EmbedError> {
        let repo = ModelRepo::dir(dir)?;
        let config = repo.get("config.json")?;
        let family = family_of(&config)?;
        let weights = repo.weights(ModelRepo::DEFAULT_WEIGHTS)?;
        let tokenizer = repo.get_optional("tokenizer.json")?;
        if family == ModelFamily::Clip && tokenizer.is_none() {
            return Err(EmbedError::Config {
                path: dir.to_path_buf(),
                message: "no tokenizer.json: CLIP needs the checkpoint's tokenizer.json".into(),
            });
        }
        Ok(Self {
            model_id: dir.display().to_string(),
            family,
            config,
            preprocessor: repo.get_optional("preprocessor_config.json")?,
            manifest_preprocess: None,
            tokenizer,
            weights,
            expected_dim: None,
        })
    }

    /// The preprocessing: `preprocessor_config.json`, else the manifest's.
    pub fn preprocessor(&self) -> Result<Preprocessor, EmbedError> {
        if let Some(p) = &self.preprocessor {
            return Preprocessor::from_file(p);
        }
        if let Some(m) = &self.manifest_preprocess {
            return Preprocessor::from_manifest(m).map_err(|message| EmbedError::Config {
                path: self.config.clone(),
                message,
            });
        }
        Err(EmbedError::Config {
            path: self
                .config
                .parent()
                .unwrap_or(Path::new("."))
                .join("preprocessor_config.json"),
            message: "missing: the checkpoint needs a preprocessor_config.json".into(),
        })
    }

    /// Checks the loaded width against the manifest.
    pub fn check_dim(&self, dim: usize) -> Result<(), EmbedError> {
        match self.expected_dim {
            Some(d) if d != dim => Err(EmbedError::Config {
                path: self.config.clone(),
                message: format!(
                    "{}: the manifest says embeddings of width {d}, the checkpoint gives {dim}",
                    self.model_id
                ),
            }),
            _ => Ok(()),
        }
    }
}

/// Resolves the files of `repo` (a hub id or a manifest alias) through the hub cache,
/// downloading unless offline; known models use the revision pinned in their manifest.
pub(crate) fn fetch(repo: &str, opts: &HubOptions) -> Result<ModelFiles, EmbedError> {
    let man = manifest::manifest(repo);
    let repo_id = man.map(|m| m.id.as_str()).unwrap_or(repo);
    if !repo_id.contains('/') {
        return Err(EmbedError::Model(Box::new(ModelError::Download {
            model: repo.to_string(),
            message: "not a known model name nor a hub id of the form org/name".into(),
        })));
    }
    let rev = opts
        .revision
        .clone()
        .or_else(|| man.map(|m| m.revision.clone()))
        .unwrap_or_else(|| "main".into());
    let hub = ModelRepo::hub(repo_id, &opts.clone().revision(rev))?;
    let config_name = man
        .map(|m| m.files.config.clone())
        .unwrap_or_else(|| "config.json".into());
    let config = hub.get(&config_name)?;
    let family = family_of(&config)?;
    if let Some(m) = man {
        if m.family != family {
            return Err(EmbedError::Config {
                path: config,
                message: format!(
                    "the manifest of {} says {:?}, config.json says {family:?}",
                    m.id, m.family
                ),
            });
        }
    }
    let pre_name = man
        .and_then(|m| m.files.preprocessor.clone())
        .unwrap_or_else(|| "preprocessor_config.json".into());
    let preprocessor = hub.get_optional(&pre_name)?;
    let tokenizer = if family == ModelFamily::Clip {
        let name = man
            .and_then(|m| m.files.tokenizer.clone())
            .unwrap_or_else(|| "tokenizer.json".into());
        Some(hub.get(&name).map_err(|e| match e {
            ModelError::Download { model, .. } => {
                EmbedError::Model(Box::new(ModelError::Download {
                    model,
                    message: format!("the repository has no {name}, which CLIP needs"),
                }))
            }
            other => other.into(),
        })?)
    } else {
        None
    };
    let weight_names: Vec<&str> = match man {
        Some(m) => m.files.weights.iter().map(String::as_str).collect(),
        None => ModelRepo::DEFAULT_WEIGHTS.to_vec(),
    };
    let weights = hub.weights(&weight_names)?;
    Ok(ModelFiles {
        model_id: hub.id(),
        family,
        config,
        preprocessor,
        manifest_preprocess: man.map(|m| m.preprocessing.clone()),
        tokenizer,
        weights,
        expected_dim: man.map(|m| m.dim),
    })
}
