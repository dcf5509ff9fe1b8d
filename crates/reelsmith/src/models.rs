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
//!
//! Any other kind of model (a segmenter, a diffusion pipeline) is loaded once through the
//! same registry with [`Models::get_or_load`]: one typed cache, keyed by the model's type
//! and a string (usually the weights' path).
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use reelsmith::models::Models;
//!
//! struct Segmenter(u32);
//! let models = Models::new();
//! let loads = AtomicUsize::new(0);
//! let load = || {
//!     loads.fetch_add(1, Ordering::Relaxed);
//!     Ok(Segmenter(7))
//! };
//! let a = models.get_or_load("weights/isnet.safetensors", load)?;
//! let b = models.get_or_load("weights/isnet.safetensors", load)?;
//! assert!(std::sync::Arc::ptr_eq(&a, &b));
//! assert_eq!((a.0, loads.load(Ordering::Relaxed)), (7, 1));
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::any::{Any, TypeId};
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
    cache: TypedCache,
}

/// One loaded model of any type, shared.
type Shared = Arc<dyn Any + Send + Sync>;

/// The typed cache behind [`Models::get_or_load`]: one slot per (type, key). A slot has
/// its own lock, so a model loads once even when two pipelines ask for it at the same
/// time, while models in other slots load side by side.
#[derive(Default)]
struct TypedCache {
    slots: Mutex<HashMap<(TypeId, String), Slot>>,
}

/// One model's slot: empty until its first load finishes.
type Slot = Arc<Mutex<Option<Shared>>>;

impl std::fmt::Debug for TypedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots = lock(&self.slots);
        let mut keys: Vec<&str> = slots.keys().map(|(_, k)| k.as_str()).collect();
        keys.sort_unstable();
        f.debug_struct("TypedCache").field("keys", &keys).finish()
    }
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
            cache: TypedCache::default(),
        }
    }

    /// Uses these hub options (revision, cache folder, offline, download progress).
    pub fn with_hub(mut self, hub: HubOptions) -> Self {
        self.hub = hub;
        self
    }

    /// The hub options models are fetched with.
    pub fn hub_options(&self) -> &HubOptions {
        &self.hub
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
    /// choice use it instead of loading it. (A model that `Auto` should find is registered
    /// under the hub id `Auto` stands for: `ModelChoice::Hub(id)`.)
    pub fn insert(&self, choice: ModelChoice, model: AnyModel) -> Arc<AnyModel> {
        self.insert_shared(&embedder_key(&choice, ""), model)
    }

    /// Registers an already loaded model of any type under `key`, replacing what was there;
    /// [`Models::get_or_load`] with the same type and key then returns it.
    pub fn insert_shared<T: Send + Sync + 'static>(&self, key: &str, model: T) -> Arc<T> {
        let model = Arc::new(model);
        let slot = self.cache.slot::<T>(key);
        *lock(&slot) = Some(model.clone() as Shared);
        model
    }

    /// The model of type `T` registered under `key`, loading it with `load` the first time
    /// it is asked for. Later calls with the same type and key share the same `Arc`; a
    /// failed load stores nothing, so a later call tries again. Keys are per type: an ISNet
    /// and a SAM loaded from the same path are two entries.
    ///
    /// Models that need `&mut self` to run (a diffusion pipeline) are stored as
    /// `Mutex<Model>`.
    pub fn get_or_load<T, F>(&self, key: &str, load: F) -> Result<Arc<T>, Error>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Result<T, Error>,
    {
        let slot = self.cache.slot::<T>(key);
        let mut guard = lock(&slot);
        if let Some(m) = guard.as_ref() {
            if let Ok(m) = m.clone().downcast::<T>() {
                return Ok(m);
            }
        }
        let model = Arc::new(load()?);
        *guard = Some(model.clone() as Shared);
        Ok(model)
    }

    /// The model `choice` asks for, loading it on first use. `default_id` is the model
    /// [`ModelChoice::Auto`] stands for (so `Auto` shares its entry with that hub id).
    pub fn resolve(&self, choice: &ModelChoice, default_id: &str) -> Result<Resolved, Error> {
        if *choice == ModelChoice::None {
            return Ok(Resolved::default());
        }
        let key = embedder_key(choice, default_id);
        // Set when `Auto` finds no usable default model: then there is no model, only a note.
        let mut note = None;
        let loaded = self.get_or_load::<AnyModel, _>(&key, || match choice {
            ModelChoice::Dir(dir) => load_dir(dir, self.device).map_err(|source| Error::Model {
                model: dir.display().to_string(),
                source,
            }),
            ModelChoice::Hub(id) => {
                load_pretrained(id, &self.hub, self.device).map_err(|source| Error::Model {
                    model: id.clone(),
                    source,
                })
            }
            ModelChoice::Auto | ModelChoice::None => {
                let cache_only = self.hub.clone().offline(true).progress(false);
                load_pretrained(default_id, &cache_only, self.device).map_err(|source| {
                    note = Some(auto_fallback_note(default_id, &source));
                    Error::Model {
                        model: default_id.to_string(),
                        source,
                    }
                })
            }
        });
        match (loaded, note) {
            (Ok(m), _) => Ok(Resolved {
                model: Some(m),
                note: None,
            }),
            (Err(_), Some(note)) => Ok(Resolved {
                model: None,
                note: Some(note),
            }),
            (Err(e), None) => Err(e),
        }
    }

    /// The LAION aesthetic head in `path` (`.pth` or `.safetensors`), loaded on first use.
    pub fn aesthetic_head(&self, path: &Path) -> Result<Arc<AestheticHead>, Error> {
        self.get_or_load(&format!("aesthetic:{}", path.display()), || {
            AestheticHead::load(path).map_err(|source| Error::AestheticHead {
                path: path.to_path_buf(),
                source,
            })
        })
    }
}

impl TypedCache {
    /// The slot of (`T`, `key`), created empty when new.
    fn slot<T: 'static>(&self, key: &str) -> Arc<Mutex<Option<Shared>>> {
        lock(&self.slots)
            .entry((TypeId::of::<T>(), key.to_string()))
            .or_default()
            .clone()
    }
}

/// The cache key of an embedding model: `Auto` shares the entry of its default hub id.
fn embedder_key(choice: &ModelChoice, default_id: &str) -> String {
    match choice {
        ModelChoice::None => "embed:none".into(),
        ModelChoice::Auto => format!("embed:hub:{default_id}"),
        ModelChoice::Hub(id) => format!("embed:hub:{id}"),
        ModelChoice::Dir(dir) => format!("embed:dir:{}", dir.display()),
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
        e if e.is_download() => {
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
    fn the_typed_cache_loads_once_per_type_and_key_and_retries_failures() {
        let models = Models::new();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let count = || calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A failed load stores nothing: the next call loads again.
        let e = models
            .get_or_load::<u32, _>("k", || {
                count();
                Err(Error::config("model", "broken"))
            })
            .unwrap_err();
        assert!(e.to_string().contains("broken"));
        let a = models
            .get_or_load::<u32, _>("k", || {
                count();
                Ok(1)
            })
            .unwrap();
        let b = models
            .get_or_load::<u32, _>("k", || {
                count();
                Ok(2)
            })
            .unwrap();
        assert_eq!((*a, *b), (1, 1));
        assert!(Arc::ptr_eq(&a, &b));
        // Same key, another type: another entry.
        let s = models
            .get_or_load::<String, _>("k", || {
                count();
                Ok("x".to_string())
            })
            .unwrap();
        assert_eq!(s.as_str(), "x");
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 3);
        // An inserted model replaces the entry.
        models.insert_shared("k", 9u32);
        assert_eq!(*models.get_or_load::<u32, _>("k", || Ok(0)).unwrap(), 9);
        // Concurrent first requests load once.
        let calls = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    models
                        .get_or_load::<u64, _>("slow", || {
                            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            Ok(5)
                        })
                        .unwrap()
                });
            }
        });
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
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
