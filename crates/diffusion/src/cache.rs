//! The pre-encoding cache: per example, the VAE latents of the clip, the first-frame
//! condition and the text embeddings, so a training step runs only the transformer.
//!
//! A cache folder holds `index.json` ([`CacheIndex`]: the base model, frames, size, the
//! transition phrase and the skipped examples with their reasons) and one
//! `example_NNNNNN.safetensors` per example (`latents`, `condition` when the model is
//! image-to-video, `context`, and when the cache was made with entities: `entities`
//! `[n, dim]` — the composed frame's entity embeddings — and `entity_geometry` `[n, 3]`,
//! each entity's centroid x, y and area as fractions of the frame).
//!
//! Version 2 added the entities; version-1 caches still train a plain LoRA, and only
//! entity attention asks for them to be prepared again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::dataset::Skipped;
use crate::entity_attn::EntitySet;
use crate::error::{DiffusionError, Result};
use crate::train::TrainExample;

/// Version of the cache layout.
pub const CACHE_VERSION: u32 = 2;

/// The oldest cache layout this build still reads (without entities).
pub const OLDEST_CACHE_VERSION: u32 = 1;

/// One cached example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The clip it came from.
    pub name: String,
    /// The tensor file, relative to the cache folder.
    pub file: String,
    /// The caption used.
    pub caption: String,
    /// Pixel frames encoded.
    pub frames: usize,
}

/// `index.json` of a cache folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheIndex {
    /// [`CACHE_VERSION`].
    pub version: u32,
    /// The base model folder the latents were made with.
    pub base: PathBuf,
    /// Pixel frames per clip (`4k + 1`).
    pub frames: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The transition phrase the captions start with.
    pub transition_phrase: String,
    /// The examples.
    pub examples: Vec<CacheEntry>,
    /// Examples left out, with why.
    pub skipped: Vec<Skipped>,
    /// How the entities were found and embedded (segmenter, embedder; recorded by the
    /// facade), when the examples carry entities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<serde_json::Value>,
}

/// Writes one example's tensors to `path`.
pub fn write_example(path: &Path, ex: &TrainExample) -> Result<()> {
    let mut t = HashMap::new();
    t.insert("latents".to_string(), ex.latents.to_device(&Device::Cpu)?);
    t.insert("context".to_string(), ex.context.to_device(&Device::Cpu)?);
    if let Some(c) = &ex.condition {
        t.insert("condition".to_string(), c.to_device(&Device::Cpu)?);
    }
    if let Some(e) = ex.entities.as_ref().filter(|e| !e.is_empty()) {
        t.insert(
            "entities".to_string(),
            e.embeddings.to_device(&Device::Cpu)?,
        );
        if let Some(g) = &e.geometry {
            t.insert("entity_geometry".to_string(), g.to_device(&Device::Cpu)?);
        }
    }
    candle_core::safetensors::save(&t, path)?;
    Ok(())
}

/// Reads a cache folder: its index and every example's tensors (on `device`).
pub fn read_cache(dir: &Path, device: &Device) -> Result<(CacheIndex, Vec<TrainExample>)> {
    let ip = dir.join("index.json");
    let bytes = std::fs::read(&ip).map_err(|e| {
        DiffusionError::io(
            &ip,
            std::io::Error::new(
                e.kind(),
                format!("{e} (is this a cache folder written by `reelsmith finetune prepare`?)"),
            ),
        )
    })?;
    let index: CacheIndex = serde_json::from_slice(&bytes)
        .map_err(|e| DiffusionError::config(&ip, format!("not a cache index: {e}")))?;
    if !(OLDEST_CACHE_VERSION..=CACHE_VERSION).contains(&index.version) {
        return Err(DiffusionError::config(
            &ip,
            format!(
                "cache version {} (this build reads {OLDEST_CACHE_VERSION} to {CACHE_VERSION}); prepare the cache again",
                index.version
            ),
        ));
    }
    let mut out = Vec::with_capacity(index.examples.len());
    for e in &index.examples {
        let p = dir.join(&e.file);
        let mut t = candle_core::safetensors::load(&p, device).map_err(|err| {
            DiffusionError::config(&p, format!("unreadable cached example: {err}"))
        })?;
        let mut take = |k: &str| {
            t.remove(k)
                .ok_or_else(|| DiffusionError::config(&p, format!("lacks the tensor {k}")))
        };
        let latents: Tensor = take("latents")?;
        let context = take("context")?;
        let condition = t.remove("condition");
        // A composed frame without entities may be stored without the tensor: with
        // entities recorded in the index, its absence means an empty set.
        let entities = match t.remove("entities") {
            Some(embeddings) => Some(EntitySet {
                embeddings,
                geometry: t.remove("entity_geometry"),
            }),
            None if index.entities.is_some() => Some(EntitySet {
                embeddings: Tensor::zeros((0, 0), candle_core::DType::F32, device)?,
                geometry: None,
            }),
            None => None,
        };
        out.push(TrainExample {
            name: e.name.clone(),
            latents,
            condition,
            context,
            entities,
        });
    }
    Ok((index, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn example(name: &str, entities: Option<EntitySet>) -> TrainExample {
        let z = |s: &[usize]| Tensor::ones(s, DType::F32, &Device::Cpu).unwrap();
        TrainExample {
            name: name.into(),
            latents: z(&[4, 2, 2, 2]),
            condition: None,
            context: z(&[3, 8]),
            entities,
        }
    }

    fn index(version: u32, entities: Option<serde_json::Value>, files: &[&str]) -> CacheIndex {
        CacheIndex {
            version,
            base: "base".into(),
            frames: 5,
            width: 16,
            height: 16,
            transition_phrase: "p".into(),
            examples: files
                .iter()
                .map(|f| CacheEntry {
                    name: f.to_string(),
                    file: f.to_string(),
                    caption: "c".into(),
                    frames: 5,
                })
                .collect(),
            skipped: vec![],
            entities,
        }
    }

    /// Entities round-trip (a frame without any as an empty set); version-1 caches without
    /// entities still read; other versions are refused with the fix.
    #[test]
    fn entities_round_trip_and_old_caches_read() {
        let d = tempfile::tempdir().unwrap();
        let emb = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let geo = Tensor::full(0.5f32, (2, 3), &Device::Cpu).unwrap();
        let with = EntitySet {
            embeddings: emb.clone(),
            geometry: Some(geo),
        };
        let none = EntitySet {
            embeddings: Tensor::zeros((0, 3), DType::F32, &Device::Cpu).unwrap(),
            geometry: None,
        };
        write_example(&d.path().join("a"), &example("a", Some(with))).unwrap();
        write_example(&d.path().join("b"), &example("b", Some(none))).unwrap();
        let write_index = |i: &CacheIndex| {
            std::fs::write(d.path().join("index.json"), serde_json::to_vec(i).unwrap()).unwrap()
        };
        write_index(&index(
            2,
            Some(serde_json::json!({"segmenter": "isnet"})),
            &["a", "b"],
        ));
        let (_, data) = read_cache(d.path(), &Device::Cpu).unwrap();
        let a = data[0].entities.as_ref().unwrap();
        assert_eq!(
            a.embeddings.to_vec2::<f32>().unwrap(),
            emb.to_vec2::<f32>().unwrap()
        );
        assert_eq!(a.geometry.as_ref().unwrap().dims(), &[2, 3]);
        assert!(data[1].entities.as_ref().unwrap().is_empty());
        // version 1: no entities recorded
        write_index(&index(1, None, &["a"]));
        let (i, data) = read_cache(d.path(), &Device::Cpu).unwrap();
        assert_eq!(i.version, 1);
        assert_eq!(data.len(), 1);
        write_index(&index(3, None, &["a"]));
        let e = read_cache(d.path(), &Device::Cpu).unwrap_err().to_string();
        assert!(
            e.contains("index.json") && e.contains("prepare the cache again"),
            "{e}"
        );
    }
}
