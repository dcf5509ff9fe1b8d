//! The entity memory folder: `entities.json` (boxes, centroids, areas, scores, COCO RLE
//! masks, file names), `mask_NN.png`, `entity_NN.png` (RGBA cut-outs), optional
//! `overlay.png`, and `embeddings.safetensors` (`entity_embeddings` `[n, d]` and
//! `frame_embedding` `[d]`, when embeddings were computed).
//!
//! A folder is written whole or not at all: everything goes to a hidden temporary sibling
//! that is renamed into place; an existing memory folder is replaced, a symlink or a file
//! at the target is refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::entity::{overlay, Entity, EntityRecord, FrameEntities};
use crate::EntityError;

/// What an entity memory folder holds, by another name: [`FrameEntities`] saved with
/// [`FrameEntities::save`] and read with [`FrameEntities::load`].
pub type EntityMemory = FrameEntities;

const FORMAT: &str = "reelsmith-entities";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct MemoryJson {
    format: String,
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frame: Option<reelsmith_core::FrameRef>,
    width: u32,
    height: u32,
    segmenter: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    embedder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    embeddings_file: Option<String>,
    entities: Vec<EntityRecord>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EntityError + '_ {
    move |source| EntityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn img_err(path: &Path) -> impl FnOnce(image::ImageError) -> EntityError + '_ {
    move |e| EntityError::Image {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A hidden sibling path of `target` that does not exist yet.
fn sibling(target: &Path, tag: &str) -> Result<PathBuf, EntityError> {
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .ok_or_else(|| EntityError::Invalid(format!("{}: not a folder name", target.display())))?
        .to_string_lossy()
        .into_owned();
    for n in 0..1000 {
        let p = parent.join(format!(".{name}.{tag}-{}-{n}", std::process::id()));
        if std::fs::symlink_metadata(&p).is_err() {
            return Ok(p);
        }
    }
    Err(EntityError::Invalid(format!(
        "{}: cannot find a free temporary name beside it",
        target.display()
    )))
}

/// Writes a folder through `fill` into a temporary sibling and renames it into place.
pub(crate) fn write_folder_atomically(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), EntityError>,
) -> Result<(), EntityError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(EntityError::Invalid(format!(
                "{} is a symlink; refusing to write through it (give a real folder path)",
                dir.display()
            )))
        }
        Ok(m) if !m.is_dir() => {
            return Err(EntityError::Invalid(format!(
                "{} exists and is not a folder; choose another output path",
                dir.display()
            )))
        }
        _ => {}
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = sibling(dir, "tmp")?;
    std::fs::create_dir(&tmp).map_err(io(&tmp))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        let old = sibling(dir, "old")?;
        std::fs::rename(dir, &old).map_err(io(dir))?;
        if let Err(e) = std::fs::rename(&tmp, dir) {
            let _ = std::fs::rename(&old, dir);
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(io(dir)(e));
        }
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, dir).map_err(io(dir))?;
    }
    Ok(())
}

impl FrameEntities {
    /// Saves the memory folder (replacing an existing one whole). With `frame`, also writes
    /// `overlay.png` (numbered coloured masks over the frame).
    pub fn save(&self, dir: &Path, frame: Option<&RgbImage>) -> Result<(), EntityError> {
        let n = self.entities.len();
        let embedded = self
            .entities
            .iter()
            .filter(|e| e.embedding.is_some())
            .count();
        if embedded != 0 && embedded != n {
            return Err(EntityError::Invalid(format!(
                "{embedded} of {n} entities have embeddings; embed all or none"
            )));
        }
        if let Some(f) = frame {
            if f.dimensions() != (self.width, self.height) {
                return Err(EntityError::Invalid(format!(
                    "overlay frame is {}x{} but the entities are of a {}x{} frame",
                    f.width(),
                    f.height(),
                    self.width,
                    self.height
                )));
            }
        }
        let has_emb = embedded > 0 || self.frame_embedding.is_some();
        write_folder_atomically(dir, |tmp| {
            let mut records = Vec::with_capacity(n);
            for (i, e) in self.entities.iter().enumerate() {
                let mask_file = format!("mask_{i:02}.png");
                let cutout_file = format!("entity_{i:02}.png");
                let p = tmp.join(&mask_file);
                e.mask.to_gray().save(&p).map_err(img_err(&p))?;
                let p = tmp.join(&cutout_file);
                e.cutout.save(&p).map_err(img_err(&p))?;
                records.push(EntityRecord {
                    id: e.id,
                    bbox: e.bbox,
                    centroid: e.centroid,
                    area_fraction: e.area_fraction,
                    score: e.score,
                    mask_rle: e.mask.to_rle(),
                    mask_file,
                    cutout_file,
                    label: e.label.clone(),
                    embedding_row: e.embedding.as_ref().map(|_| i),
                });
            }
            if let Some(f) = frame {
                let p = tmp.join("overlay.png");
                overlay(f, &self.entities).save(&p).map_err(img_err(&p))?;
            }
            let embeddings_file = if has_emb {
                let mut ts = HashMap::new();
                if embedded > 0 {
                    let d = self.entities[0].embedding.as_ref().map_or(0, |v| v.len());
                    let flat: Vec<f32> = self
                        .entities
                        .iter()
                        .flat_map(|e| e.embedding.clone().unwrap_or_default())
                        .collect();
                    if flat.len() != n * d {
                        return Err(EntityError::Invalid(
                            "entity embeddings of different dimensions".into(),
                        ));
                    }
                    ts.insert(
                        "entity_embeddings".to_string(),
                        Tensor::from_vec(flat, (n, d), &Device::Cpu)?,
                    );
                }
                if let Some(fe) = &self.frame_embedding {
                    ts.insert(
                        "frame_embedding".to_string(),
                        Tensor::from_slice(fe, fe.len(), &Device::Cpu)?,
                    );
                }
                let p = tmp.join("embeddings.safetensors");
                candle_core::safetensors::save(&ts, &p).map_err(|e| EntityError::Weights {
                    path: p.clone(),
                    message: e.to_string(),
                })?;
                Some("embeddings.safetensors".to_string())
            } else {
                None
            };
            let json = MemoryJson {
                format: FORMAT.into(),
                version: VERSION,
                source: self.source.clone(),
                frame: self.frame,
                width: self.width,
                height: self.height,
                segmenter: self.segmenter.clone(),
                embedder: self.embedder.clone(),
                embeddings_file,
                entities: records,
            };
            let p = tmp.join("entities.json");
            let text = serde_json::to_string_pretty(&json).map_err(|e| EntityError::Json {
                path: p.clone(),
                message: e.to_string(),
            })?;
            std::fs::write(&p, text).map_err(io(&p))
        })
    }

    /// Loads a memory folder written by [`FrameEntities::save`]. Masks come from the RLE in
    /// `entities.json`, cut-outs from `entity_NN.png`; every inconsistency (sizes, missing
    /// files, embeddings rows) is an error naming the file.
    pub fn load(dir: &Path) -> Result<Self, EntityError> {
        let p = dir.join("entities.json");
        let text = std::fs::read_to_string(&p).map_err(io(&p))?;
        let json: MemoryJson = serde_json::from_str(&text).map_err(|e| EntityError::Json {
            path: p.clone(),
            message: format!("{e} (not an entities.json written by reelsmith?)"),
        })?;
        if json.format != FORMAT || json.version > VERSION {
            return Err(EntityError::Json {
                path: p,
                message: format!(
                    "format {:?} version {} is not {FORMAT:?} version ≤ {VERSION}",
                    json.format, json.version
                ),
            });
        }
        let bad = |message: String| EntityError::Json {
            path: dir.join("entities.json"),
            message,
        };
        let emb = match &json.embeddings_file {
            Some(f) => {
                let ep = dir.join(f);
                Some(
                    candle_core::safetensors::load(&ep, &Device::Cpu).map_err(|e| {
                        EntityError::Weights {
                            path: ep.clone(),
                            message: e.to_string(),
                        }
                    })?,
                )
            }
            None => None,
        };
        let rows: Option<Vec<Vec<f32>>> =
            match emb.as_ref().and_then(|m| m.get("entity_embeddings")) {
                Some(t) => Some(t.to_vec2::<f32>()?),
                None => None,
            };
        let frame_embedding = match emb.as_ref().and_then(|m| m.get("frame_embedding")) {
            Some(t) => Some(t.to_vec1::<f32>()?),
            None => None,
        };
        let mut entities = Vec::with_capacity(json.entities.len());
        for r in json.entities {
            let mask = r
                .mask_rle
                .to_mask()
                .map_err(|e| bad(format!("entity {}: {e}", r.id)))?;
            if (mask.width(), mask.height()) != (json.width, json.height) {
                return Err(bad(format!(
                    "entity {}: mask is {}x{}, frame {}x{}",
                    r.id,
                    mask.width(),
                    mask.height(),
                    json.width,
                    json.height
                )));
            }
            let cp = dir.join(&r.cutout_file);
            let cutout = image::open(&cp).map_err(img_err(&cp))?.to_rgba8();
            if cutout.dimensions() != (r.bbox.width, r.bbox.height) {
                return Err(EntityError::Image {
                    path: cp,
                    message: format!(
                        "cut-out is {}x{} but the box is {}x{}",
                        cutout.width(),
                        cutout.height(),
                        r.bbox.width,
                        r.bbox.height
                    ),
                });
            }
            let embedding = match (r.embedding_row, &rows) {
                (Some(i), Some(rows)) => Some(
                    rows.get(i)
                        .cloned()
                        .ok_or_else(|| bad(format!("entity {}: no embedding row {i}", r.id)))?,
                ),
                (Some(_), None) => {
                    return Err(bad(format!(
                        "entity {} has an embedding row but there is no entity_embeddings",
                        r.id
                    )))
                }
                _ => None,
            };
            entities.push(Entity {
                id: r.id,
                bbox: r.bbox,
                centroid: r.centroid,
                area_fraction: r.area_fraction,
                score: r.score,
                cutout,
                embedding,
                label: r.label,
                mask,
            });
        }
        Ok(FrameEntities {
            source: json.source,
            frame: json.frame,
            width: json.width,
            height: json.height,
            segmenter: json.segmenter,
            embedder: json.embedder,
            frame_embedding,
            entities,
        })
    }
}
