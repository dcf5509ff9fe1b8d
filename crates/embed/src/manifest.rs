//! Model manifests: the supported checkpoints as data (the JSON files in the repository's
//! `models/` folder, compiled into the library).

use std::sync::OnceLock;

use serde::Deserialize;

/// Which architecture a checkpoint has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFamily {
    /// CLIP (`model_type: "clip"`).
    Clip,
    /// DINOv2 (`model_type: "dinov2"`).
    Dinov2,
}

/// File names in the hub repository.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct ManifestFiles {
    /// `config.json`.
    pub config: String,
    /// `preprocessor_config.json`, if the repository has one.
    #[serde(default)]
    pub preprocessor: Option<String>,
    /// `tokenizer.json` (CLIP).
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Weight files in order of preference; the first present is used.
    pub weights: Vec<String>,
}

/// Preprocessing of a model (used where a repository lacks `preprocessor_config.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PreprocessManifest {
    /// Resize so that the short side has this length.
    pub resize_shortest_edge: u32,
    /// Centre crop to this square.
    pub crop: u32,
    /// Resampling filter name (`bicubic`).
    pub resample: String,
    /// Per-channel mean after scaling to `[0, 1]`.
    pub mean: [f64; 3],
    /// Per-channel standard deviation.
    pub std: [f64; 3],
}

/// One supported model.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct ModelManifest {
    /// Hub id, `org/name`.
    pub id: String,
    /// Architecture.
    pub family: ModelFamily,
    /// Pinned revision (a commit hash, or a branch where none is pinned).
    pub revision: String,
    /// Where the pinned revision comes from.
    #[serde(default)]
    pub revision_note: Option<String>,
    /// Other names accepted for this model (`clip-b32`, `dinov2-small`, ...).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One line about the model.
    #[serde(default)]
    pub description: String,
    /// Files to fetch.
    pub files: ManifestFiles,
    /// Width of the embedding ([`crate::Embedder::dim`]).
    pub dim: usize,
    /// Input side the model was trained at.
    pub image_size: usize,
    /// Patch side.
    pub patch_size: usize,
    /// MLP activation, for information (config.json decides).
    #[serde(default)]
    pub activation: Option<String>,
    /// Preprocessing.
    pub preprocessing: PreprocessManifest,
}

const SOURCES: &[(&str, &str)] = &[
    (
        "clip-vit-base-patch32",
        include_str!("../../../models/clip-vit-base-patch32.json"),
    ),
    (
        "clip-vit-base-patch16",
        include_str!("../../../models/clip-vit-base-patch16.json"),
    ),
    (
        "clip-vit-large-patch14",
        include_str!("../../../models/clip-vit-large-patch14.json"),
    ),
    (
        "clip-vit-b-32-laion2b",
        include_str!("../../../models/clip-vit-b-32-laion2b.json"),
    ),
    (
        "dinov2-small",
        include_str!("../../../models/dinov2-small.json"),
    ),
    (
        "dinov2-base",
        include_str!("../../../models/dinov2-base.json"),
    ),
    (
        "dinov2-large",
        include_str!("../../../models/dinov2-large.json"),
    ),
    (
        "dinov2-giant",
        include_str!("../../../models/dinov2-giant.json"),
    ),
];

/// All compiled-in manifests.
///
/// ```
/// let ids: Vec<&str> = reelsmith_embed::manifests().iter().map(|m| m.id.as_str()).collect();
/// assert!(ids.contains(&"openai/clip-vit-base-patch32"));
/// assert!(ids.contains(&"facebook/dinov2-small"));
/// ```
pub fn manifests() -> &'static [ModelManifest] {
    static ALL: OnceLock<Vec<ModelManifest>> = OnceLock::new();
    ALL.get_or_init(|| {
        SOURCES
            .iter()
            .filter_map(|(name, text)| match serde_json::from_str(text) {
                Ok(m) => Some(m),
                Err(e) => {
                    // guarded by a unit test; never reached in a released build
                    tracing::error!("models/{name}.json is invalid: {e}");
                    None
                }
            })
            .collect()
    })
}

/// The manifest of a model by hub id or alias (case-insensitive).
///
/// ```
/// let m = reelsmith_embed::manifest("dinov2-small").unwrap();
/// assert_eq!((m.id.as_str(), m.dim), ("facebook/dinov2-small", 384));
/// ```
pub fn manifest(name: &str) -> Option<&'static ModelManifest> {
    let n = name.trim();
    manifests().iter().find(|m| {
        m.id.eq_ignore_ascii_case(n) || m.aliases.iter().any(|a| a.eq_ignore_ascii_case(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_parses_and_is_consistent() {
        assert_eq!(manifests().len(), SOURCES.len());
        for m in manifests() {
            assert!(m.id.contains('/'), "{}", m.id);
            assert!(!m.files.weights.is_empty(), "{}", m.id);
            assert!(m.image_size % m.patch_size == 0, "{}", m.id);
            assert_eq!(
                m.family == ModelFamily::Clip,
                m.files.tokenizer.is_some(),
                "{}",
                m.id
            );
            assert!(crate::Resample::from_name(&m.preprocessing.resample).is_some());
            assert!(
                m.revision == "main"
                    || (m.revision.len() == 40
                        && m.revision.bytes().all(|b| b.is_ascii_hexdigit())),
                "{}",
                m.id
            );
        }
    }
}
