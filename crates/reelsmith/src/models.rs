//! Which model a pipeline uses, and loading each model once per process.
//!
//! A pipeline's configuration says which model it wants ([`ModelChoice`], serialisable, so
//! it can come from a config file); a [`Models`] registry, handed to the pipeline with its
//! inputs, loads each model the first time it is asked for and shares it afterwards. Run
//! many videos with one `Models` and every model is loaded once.
//!
//! ```
//! use reelsmith::models::{ModelChoice, Models};
//!
//! let models = Models::new();
//! // No model: nothing is loaded, nothing is said.
//! let none = models.resolve(&ModelChoice::None, "openai/clip-vit-base-patch32").unwrap();
//! assert!(none.model.is_none() && none.note.is_none());
//! // The choice reads from a config file.
//! let c: ModelChoice = serde_json::from_str(r#"{"dir": "/models/clip"}"#).unwrap();
//! assert_eq!(c, ModelChoice::Dir("/models/clip".into()));
//! assert_eq!(serde_json::from_str::<ModelChoice>(r#""auto""#).unwrap(), ModelChoice::Auto);
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use reelsmith_embed::{load_dir, load_pretrained, AnyModel, DeviceChoice, EmbedError, HubOptions};
use reelsmith_score::AestheticHead;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Which model a pipeline embeds with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    /// No model: the pipeline uses its weight-free parts only.
    #[default]
    None,
    /// The pipeline's default model when it is already in the local Hugging Face cache
    /// (never downloaded); no model otherwise, with a note saying why and how to get it.
    Auto,
    /// A hub id or manifest alias (`openai/clip-vit-base-patch32`, `clip-b32`,
    /// `dinov2-small`), loaded through the Hugging Face cache, downloading what is missing
    /// unless the registry is offline.
    Hub(String),
    /// A local checkpoint folder in the Hugging Face layout.
    Dir(#[serde(serialize_with = "reelsmith_core::paths::lossy")] PathBuf),
}

impl ModelChoice {
    /// Whether a model may be used (anything but [`ModelChoice::None`]).
    pub fn is_some(&self) -> bool {
        !matches!(self, ModelChoice::None)
    }
}

/// A resolved [`ModelChoice`]: the model, if any, and a note when [`ModelChoice::Auto`]
/// found none.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// The loaded model.
    pub model: Option<Arc<AnyModel>>,
    /// Why no model is used, for `Auto` when the default model is not available.
    pub note: Option<String>,
}

/// Loads models (and aesthetic heads) once and shares them.
///
/// Thread-safe: pipelines running side by side can share one registry.
#[derive(Debug)]
pub struct Models {
    hub: HubOptions,
    device: DeviceChoice,
    loaded: Mutex<HashMap<ModelChoice, Arc<AnyModel>>>,
    heads: Mutex<HashMap<PathBuf, Arc<AestheticHead>>>,
}

impl Default for Models {
    fn default() -> Self {
        Self::new()
    }
}

impl Models {
    /// An empty registry: hub options from the environment ([`HubOptions::default`]),
    /// models on the CPU.
    pub fn new() -> Self {
        Self {
            hub: HubOptions::default(),
            device: DeviceChoice::Cpu,
            loaded: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
        }
    }

    /// Uses these hub options (revision, cache folder, offline, download progress).
    pub fn with_hub(mut self, hub: HubOptions) -> Self {
        self.hub = hub;
        self
    }

    /// Runs the models on this device.
    pub fn with_device(mut self, device: DeviceChoice) -> Self {
        self.device = device;
        self
    }

    /// The device models run on.
    pub fn device(&self) -> DeviceChoice {
        self.device
    }

    /// Registers an already loaded model under `choice`, so pipelines asking for that
    /// choice use it instead of loading it.
    pub fn insert(&self, choice: ModelChoice, model: AnyModel) -> Arc<AnyModel> {
        let model = Arc::new(model);
        lock(&self.loaded).insert(choice, model.clone());
        model
    }

    /// The model `choice` asks for, loading it on first use. `default_id` is the model
    /// [`ModelChoice::Auto`] stands for.
    pub fn resolve(&self, choice: &ModelChoice, default_id: &str) -> Result<Resolved, Error> {
        if let Some(m) = lock(&self.loaded).get(choice) {
            return Ok(Resolved {
                model: Some(m.clone()),
                note: None,
            });
        }
        let loaded = match choice {
            ModelChoice::None => return Ok(Resolved::default()),
            ModelChoice::Dir(dir) => load_dir(dir, self.device).map_err(|source| Error::Model {
                model: dir.display().to_string(),
                source,
            })?,
            ModelChoice::Hub(id) => {
                load_pretrained(id, &self.hub, self.device).map_err(|source| Error::Model {
                    model: id.clone(),
                    source,
                })?
            }
            ModelChoice::Auto => {
                let cache_only = self.hub.clone().offline(true).progress(false);
                match load_pretrained(default_id, &cache_only, self.device) {
                    Ok(m) => m,
                    Err(e) => {
                        return Ok(Resolved {
                            model: None,
                            note: Some(auto_fallback_note(default_id, &e)),
                        })
                    }
                }
            }
        };
        Ok(Resolved {
            model: Some(self.insert(choice.clone(), loaded)),
            note: None,
        })
    }

    /// The LAION aesthetic head in `path` (`.pth` or `.safetensors`), loaded on first use.
    pub fn aesthetic_head(&self, path: &Path) -> Result<Arc<AestheticHead>, Error> {
        if let Some(h) = lock(&self.heads).get(path) {
            return Ok(h.clone());
        }
        let head = Arc::new(
            AestheticHead::load(path).map_err(|source| Error::AestheticHead {
                path: path.to_path_buf(),
                source,
            })?,
        );
        lock(&self.heads).insert(path.to_path_buf(), head.clone());
        Ok(head)
    }
}

/// The note for a default model that could not be used: short when it is simply not in
/// the cache (the usual first run), with the loader's message otherwise.
fn auto_fallback_note(id: &str, e: &EmbedError) -> String {
    let how = format!(
        "to use it, download it once (`huggingface-cli download {id}`) or choose a model \
         (a hub id or a local folder)"
    );
    match e {
        EmbedError::Download { .. } => {
            tracing::debug!("{e}");
            format!(
                "no CLIP model ({id} is not in the Hugging Face cache): aesthetics and saliency \
                 are not computed and the score uses sharpness and exposure only; {how}"
            )
        }
        _ => format!(
            "no CLIP model ({id} could not be loaded: {e}): aesthetics and saliency are not \
             computed and the score uses sharpness and exposure only; {how}"
        ),
    }
}

/// Locks a registry map; a panic elsewhere cannot leave these maps half-updated, so a
/// poisoned lock is taken as is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_round_trip_through_toml_and_json() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct C {
            model: ModelChoice,
        }
        for (text, want) in [
            ("model = \"none\"", ModelChoice::None),
            ("model = \"auto\"", ModelChoice::Auto),
            (
                "model = { hub = \"clip-b32\" }",
                ModelChoice::Hub("clip-b32".into()),
            ),
            (
                "model = { dir = \"m/clip\" }",
                ModelChoice::Dir("m/clip".into()),
            ),
        ] {
            let c: C = toml::from_str(text).unwrap();
            assert_eq!(c.model, want, "{text}");
            let back: C = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c);
        }
        assert!(toml::from_str::<C>("model = \"clip\"").is_err());
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it_and_auto_falls_back_with_a_note() {
        let models = Models::new().with_hub(
            HubOptions::default()
                .cache_dir(std::env::temp_dir().join("reelsmith-empty-hub-cache"))
                .offline(true),
        );
        let e = models
            .resolve(&ModelChoice::Dir("/nonexistent/clip".into()), "x")
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/clip"), "{e}");
        let r = models
            .resolve(&ModelChoice::Auto, "openai/clip-vit-base-patch32")
            .unwrap();
        assert!(r.model.is_none());
        let note = r.note.unwrap();
        assert!(note.contains("openai/clip-vit-base-patch32"), "{note}");
        assert!(!note.contains("--"), "library notes name no flags: {note}");
    }
}
