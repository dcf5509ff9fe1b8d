//! [`Entity`]: one object of a frame — its mask, box, centroid, area, RGBA cut-out, score and
//! optional embedding — and the [`FrameEntities`] of one frame.

use image::{Rgb, RgbImage, Rgba, RgbaImage};
use reelsmith_core::FrameRef;
use serde::{Deserialize, Serialize};

use crate::instances::Instance;
use crate::mask::{BBox, Mask};
use crate::EntityError;

/// One object of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Index of the entity within its frame (0-based, best first).
    pub id: usize,
    /// The object's pixels, at the frame's size.
    pub mask: Mask,
    /// Tightest box around the mask.
    pub bbox: BBox,
    /// Mean pixel position `[x, y]` of the mask.
    pub centroid: [f32; 2],
    /// Mask area as a fraction of the frame.
    pub area_fraction: f32,
    /// Segmenter confidence in `[0, 1]`.
    pub score: f32,
    /// The frame's pixels inside the box, alpha 255 on the mask and 0 elsewhere.
    pub cutout: RgbaImage,
    /// An embedding of the entity (e.g. DINOv2 of the masked cut-out), if computed.
    pub embedding: Option<Vec<f32>>,
    /// A free-form label (e.g. a class name or a prompt), if known.
    pub label: Option<String>,
}

impl Entity {
    /// Builds an entity from a frame and a mask of the same size. Errors on a size mismatch
    /// or an empty mask.
    pub fn from_mask(
        frame: &RgbImage,
        mask: Mask,
        score: f32,
        id: usize,
    ) -> Result<Self, EntityError> {
        if frame.dimensions() != (mask.width(), mask.height()) {
            return Err(EntityError::Invalid(format!(
                "mask is {}x{} but the frame is {}x{}",
                mask.width(),
                mask.height(),
                frame.width(),
                frame.height()
            )));
        }
        let bbox = mask
            .bbox()
            .ok_or_else(|| EntityError::Invalid("empty mask: no entity to build".into()))?;
        let centroid = mask.centroid().unwrap_or([0.0, 0.0]);
        let cutout = cutout(frame, &mask, &bbox);
        Ok(Self {
            id,
            area_fraction: mask.area_fraction(),
            bbox,
            centroid,
            score,
            cutout,
            embedding: None,
            label: None,
            mask,
        })
    }
}

/// The RGBA cut-out of `mask` within `bbox`.
pub fn cutout(frame: &RgbImage, mask: &Mask, bbox: &BBox) -> RgbaImage {
    RgbaImage::from_fn(bbox.width, bbox.height, |x, y| {
        let (fx, fy) = (bbox.x + x, bbox.y + y);
        let Rgb([r, g, b]) = *frame.get_pixel(fx, fy);
        Rgba([r, g, b, if mask.get(fx, fy) { 255 } else { 0 }])
    })
}

/// The frame's pixels on the mask, `fill` elsewhere, cropped to the box: what an embedder
/// sees of one entity (the seed method embeds the masked region).
pub fn masked_crop(frame: &RgbImage, mask: &Mask, bbox: &BBox, fill: [u8; 3]) -> RgbImage {
    RgbImage::from_fn(bbox.width, bbox.height, |x, y| {
        let (fx, fy) = (bbox.x + x, bbox.y + y);
        if mask.get(fx, fy) {
            *frame.get_pixel(fx, fy)
        } else {
            Rgb(fill)
        }
    })
}

/// The entities of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameEntities {
    /// Where the frame came from (a file name), if known.
    pub source: Option<String>,
    /// Which frame of the source, if a video.
    pub frame: Option<FrameRef>,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// The segmenter that found them (`isnet`, `sam`).
    pub segmenter: String,
    /// The embedder of the embeddings (e.g. a model id), if any were computed.
    pub embedder: Option<String>,
    /// An embedding of the whole frame, if computed.
    pub frame_embedding: Option<Vec<f32>>,
    /// The entities, best first.
    pub entities: Vec<Entity>,
}

impl FrameEntities {
    /// Builds the entities of `frame` from segmenter instances (ids in the given order).
    /// Empty instance masks are skipped.
    pub fn from_instances(
        frame: &RgbImage,
        instances: Vec<Instance>,
        segmenter: &str,
    ) -> Result<Self, EntityError> {
        let mut entities = Vec::with_capacity(instances.len());
        for inst in instances {
            if inst.mask.is_empty() {
                continue;
            }
            let id = entities.len();
            entities.push(Entity::from_mask(frame, inst.mask, inst.score, id)?);
        }
        Ok(Self {
            source: None,
            frame: None,
            width: frame.width(),
            height: frame.height(),
            segmenter: segmenter.to_string(),
            embedder: None,
            frame_embedding: None,
            entities,
        })
    }

    /// Attaches one embedding per entity (same order) and optionally the frame's; all must
    /// have the same dimension.
    pub fn set_embeddings(
        &mut self,
        embedder: &str,
        entity_embeddings: Vec<Vec<f32>>,
        frame_embedding: Option<Vec<f32>>,
    ) -> Result<(), EntityError> {
        if entity_embeddings.len() != self.entities.len() {
            return Err(EntityError::Invalid(format!(
                "{} embeddings for {} entities",
                entity_embeddings.len(),
                self.entities.len()
            )));
        }
        let dim = entity_embeddings
            .first()
            .or(frame_embedding.as_ref())
            .map(|e| e.len());
        let all_dims_ok = entity_embeddings
            .iter()
            .chain(frame_embedding.iter())
            .all(|e| Some(e.len()) == dim && !e.is_empty());
        if !all_dims_ok {
            return Err(EntityError::Invalid(
                "embeddings of different (or zero) dimensions".into(),
            ));
        }
        for (e, v) in self.entities.iter_mut().zip(entity_embeddings) {
            e.embedding = Some(v);
        }
        self.frame_embedding = frame_embedding;
        self.embedder = Some(embedder.to_string());
        Ok(())
    }
}

/// A colour per entity index (distinct, saturated; cycles after 12).
pub fn palette(i: usize) -> [u8; 3] {
    const P: [[u8; 3]; 12] = [
        [230, 25, 75],
        [60, 180, 75],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
        [0, 128, 128],
        [255, 225, 25],
        [170, 110, 40],
    ];
    P[i % P.len()]
}

/// 3×5 pixel digits for overlay numbers (bit 2 = left column).
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

/// The frame with each entity's mask tinted in its [`palette`] colour (45 % opacity), its
/// outline drawn and its number written at the centroid on a dark label.
pub fn overlay(frame: &RgbImage, entities: &[Entity]) -> RgbImage {
    let mut out = frame.clone();
    for (i, e) in entities.iter().enumerate() {
        let c = palette(i);
        let m = &e.mask;
        for y in e.bbox.y..e.bbox.y + e.bbox.height {
            for x in e.bbox.x..e.bbox.x + e.bbox.width {
                if !m.get(x, y) || x >= out.width() || y >= out.height() {
                    continue;
                }
                let edge = x == 0
                    || y == 0
                    || !m.get(x - 1, y)
                    || !m.get(x + 1, y)
                    || !m.get(x, y - 1)
                    || !m.get(x, y + 1);
                let p = out.get_pixel_mut(x, y);
                for (v, &ck) in p.0.iter_mut().zip(&c) {
                    *v = if edge {
                        ck
                    } else {
                        (*v as f32 * 0.55 + ck as f32 * 0.45) as u8
                    };
                }
            }
        }
    }
    for (i, e) in entities.iter().enumerate() {
        let text = i.to_string();
        let scale = (frame.width().min(frame.height()) / 120).max(2);
        let (tw, th) = ((text.len() as u32 * 4 + 1) * scale, 7 * scale);
        let x0 = (e.centroid[0] as u32).saturating_sub(tw / 2);
        let y0 = (e.centroid[1] as u32).saturating_sub(th / 2);
        for y in 0..th {
            for x in 0..tw {
                let (px, py) = (x0 + x, y0 + y);
                if px >= out.width() || py >= out.height() {
                    continue;
                }
                let (cx, cy) = (x / scale, y / scale);
                let on = (1..=5).contains(&cy) && cx >= 1 && {
                    let d = ((cx - 1) / 4) as usize;
                    let col = (cx - 1) % 4;
                    d < text.len()
                        && col < 3
                        && DIGITS[(text.as_bytes()[d] - b'0') as usize][(cy - 1) as usize]
                            & (4 >> col)
                            != 0
                };
                out.put_pixel(
                    px,
                    py,
                    if on {
                        Rgb([255, 255, 255])
                    } else {
                        Rgb([20, 20, 20])
                    },
                );
            }
        }
    }
    out
}

/// Serialisable summary of an entity for `entities.json` (the mask as COCO RLE).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EntityRecord {
    pub id: usize,
    pub bbox: BBox,
    pub centroid: [f32; 2],
    pub area_fraction: f32,
    pub score: f32,
    pub mask_rle: crate::mask::Rle,
    pub mask_file: String,
    pub cutout_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Row of `entity_embeddings` in embeddings.safetensors, if embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_row: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_from_mask_crops_and_measures() {
        let frame = RgbImage::from_fn(10, 8, |x, y| Rgb([x as u8 * 20, y as u8 * 30, 7]));
        let mask = Mask::from_fn(10, 8, |x, y| (2..5).contains(&x) && (3..7).contains(&y));
        let e = Entity::from_mask(&frame, mask, 0.8, 0).unwrap();
        assert_eq!(
            e.bbox,
            BBox {
                x: 2,
                y: 3,
                width: 3,
                height: 4
            }
        );
        assert_eq!(e.centroid, [3.0, 4.5]);
        assert!((e.area_fraction - 12.0 / 80.0).abs() < 1e-6);
        assert_eq!(e.cutout.dimensions(), (3, 4));
        assert_eq!(*e.cutout.get_pixel(0, 0), Rgba([40, 90, 7, 255]));
        let wrong = Mask::empty(3, 3);
        assert!(Entity::from_mask(&frame, wrong, 1.0, 0).is_err());
        assert!(Entity::from_mask(&frame, Mask::empty(10, 8), 1.0, 0).is_err());
    }

    #[test]
    fn overlay_tints_the_mask_and_leaves_the_rest() {
        let frame = RgbImage::from_pixel(200, 120, Rgb([100, 100, 100]));
        let mask = Mask::from_fn(200, 120, |x, y| {
            (20..120).contains(&x) && (10..110).contains(&y)
        });
        let e = Entity::from_mask(&frame, mask, 1.0, 0).unwrap();
        let o = overlay(&frame, &[e]);
        assert_eq!(*o.get_pixel(5, 5), Rgb([100, 100, 100]));
        assert_ne!(*o.get_pixel(30, 30), Rgb([100, 100, 100]));
        assert_eq!(*o.get_pixel(20, 50), Rgb(palette(0)), "outline");
    }
}
