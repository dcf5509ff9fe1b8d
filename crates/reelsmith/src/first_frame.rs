//! What the first-frame pipelines (entities, compose, retention, generate) share: reading
//! images with size checks, picking one frame of a video, loading segmenters through the
//! [`Models`] registry, and embedding entities.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{DynamicImage, Rgb, RgbImage};
use reelsmith_core::FrameRef;
use reelsmith_decode::{DecodeOptions, Sampling};
use reelsmith_embed::{AnyModel, EmbedError, Embedder};
use reelsmith_entity::entity::masked_crop;
use reelsmith_entity::instances::{instances_from_probability, Instance, InstanceOptions};
use reelsmith_entity::isnet::{load_isnet, IsnetConfig};
use reelsmith_entity::mask::{BBox, Mask};
use reelsmith_entity::segment::IsnetSegmenter;
use reelsmith_entity::EntityError;
use serde::{Deserialize, Serialize};

use crate::models::{ModelChoice, Models};
use crate::Error;

/// The largest image (in pixels) the first-frame pipelines read: 64 MP, as the segmenters
/// take. Larger images are refused before they are decoded.
pub const MAX_IMAGE_PIXELS: u64 = reelsmith_entity::segment::MAX_PIXELS;

/// The smallest side (in pixels) of an image the first-frame pipelines read.
pub const MIN_IMAGE_SIDE: u32 = 16;

/// Reads an image, refusing (before decoding) one that is larger than
/// [`MAX_IMAGE_PIXELS`] or smaller than [`MIN_IMAGE_SIDE`] on a side. `what` names its role
/// in messages ("background", "cut-out").
pub(crate) fn read_image(path: &Path, what: &str) -> Result<DynamicImage, Error> {
    let img_err = |error| Error::Image {
        path: path.to_path_buf(),
        error,
    };
    // A FIFO or a device would block or never end: only regular files are read.
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            return Err(Error::InvalidInput {
                path: path.to_path_buf(),
                detail: format!(
                    "the {what} is not a regular file (a folder, FIFO or device); give an image \
                     file (PNG, JPEG, WebP...)"
                ),
            });
        }
    }
    let open = || {
        image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| img_err(image::ImageError::IoError(e)))
    };
    let (w, h) = open()?.into_dimensions().map_err(img_err)?;
    let invalid = |detail: String| Error::InvalidInput {
        path: path.to_path_buf(),
        detail,
    };
    if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(invalid(format!(
            "the {what} is {w}x{h} ({:.0} MP), more than the {} MP these pipelines read; \
             downscale it first",
            f64::from(w) * f64::from(h) / 1e6,
            MAX_IMAGE_PIXELS >> 20
        )));
    }
    if w < MIN_IMAGE_SIDE || h < MIN_IMAGE_SIDE {
        return Err(invalid(format!(
            "the {what} is {w}x{h}, too small to use (each side must be at least \
             {MIN_IMAGE_SIDE} pixels)"
        )));
    }
    let mut reader = open()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(1 << 30);
    reader.limits(limits);
    reader.decode().map_err(img_err)
}

/// One frame of a video: the frame with 0-based index `frame`, or the first at or after
/// `time` seconds, or the first frame.
pub(crate) fn video_frame(
    path: &Path,
    frame: Option<u64>,
    time: Option<f64>,
) -> Result<(RgbImage, FrameRef), Error> {
    let video = reelsmith_decode::open(path)?;
    let info = video.info().clone();
    let invalid = |detail: String| Error::InvalidInput {
        path: path.to_path_buf(),
        detail,
    };
    if let Some(t) = time {
        let mut frames = video.frames_from(t, &DecodeOptions::new())?;
        return match frames.next() {
            Some(f) => {
                let f = f?;
                Ok((f.image.clone(), f.frame_ref()))
            }
            None => Err(invalid(format!(
                "no frame at or after {t} s (the video is {:.3} s long); choose an earlier time",
                info.duration
            ))),
        };
    }
    let n = frame.unwrap_or(0);
    // Every Nth keeps frames 0, N, 2N...: only the one asked for (and frame 0) is converted.
    let sampling = match u32::try_from(n) {
        Ok(0) => Sampling::EveryNth(1),
        Ok(n) => Sampling::EveryNth(n),
        Err(_) => return Err(Error::config("frame", format!("{n} is too large"))),
    };
    let opts = DecodeOptions::new().sampling(sampling);
    let mut last = None;
    for f in video.frames(&opts)? {
        let f = f?;
        if f.index == n {
            return Ok((f.image.clone(), f.frame_ref()));
        }
        last = Some(f.index);
        if f.index > n {
            break;
        }
    }
    let have = match last {
        Some(_) => video.count_frames()?,
        None => 0,
    };
    Err(Error::config(
        "frame",
        format!(
            "{} has {have} frames (0..={}); choose a frame below {have}",
            path.display(),
            have.saturating_sub(1)
        ),
    ))
}

/// Which segmenter finds the entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmenterKind {
    /// ISNet (`isnet-general-use`): salient objects.
    #[default]
    Isnet,
    /// Segment Anything's automatic masks (needs the `sam` feature).
    Sam,
}

impl SegmenterKind {
    /// `isnet` or `sam`, as the entity memory records it.
    pub fn name(self) -> &'static str {
        match self {
            SegmenterKind::Isnet => "isnet",
            SegmenterKind::Sam => "sam",
        }
    }

    /// The kind a memory's `segmenter` names.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "isnet" => Some(SegmenterKind::Isnet),
            "sam" => Some(SegmenterKind::Sam),
            _ => None,
        }
    }
}

impl std::str::FromStr for SegmenterKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_name(&s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown segmenter {s:?}: use isnet or sam"))
    }
}

/// Which Segment Anything a checkpoint holds, when it should not be read from the
/// checkpoint's shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamVariantName {
    /// SAM ViT-B.
    VitB,
    /// SAM ViT-L.
    VitL,
    /// SAM ViT-H.
    VitH,
    /// MobileSAM (TinyViT encoder).
    Mobile,
}

/// How a segmenter's output is cut into entities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentSettings {
    /// ISNet: pixels whose saliency probability is above this are foreground (0.5).
    pub threshold: f32,
    /// Entities smaller than this fraction of the frame are dropped (0.002).
    pub min_area: f32,
    /// At most this many entities per frame, largest (ISNet) or best (SAM) first (16).
    pub max_entities: usize,
    /// SAM: grid points per side of the automatic mask generator (16).
    pub points_per_side: usize,
    /// SAM: minimum predicted IoU of a mask (0.88).
    pub pred_iou_thresh: f32,
    /// SAM: minimum stability score of a mask (0.95).
    pub stability_score_thresh: f32,
}

impl Default for SegmentSettings {
    fn default() -> Self {
        let isnet = InstanceOptions::default();
        Self {
            threshold: isnet.threshold,
            min_area: isnet.min_area_fraction,
            max_entities: 16,
            points_per_side: 16,
            pred_iou_thresh: 0.88,
            stability_score_thresh: 0.95,
        }
    }
}

impl SegmentSettings {
    /// Checks every range; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), Error> {
        let unit = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        if !unit(self.threshold) || self.threshold == 1.0 {
            return Err(Error::config(
                "threshold",
                format!("{} is not in [0, 1)", self.threshold),
            ));
        }
        if !unit(self.min_area) {
            return Err(Error::config(
                "min_area",
                format!("{} is not a fraction of the frame in [0, 1]", self.min_area),
            ));
        }
        if !(1..=255).contains(&self.max_entities) {
            return Err(Error::config(
                "max_entities",
                format!("{} is not in 1..=255", self.max_entities),
            ));
        }
        if !(1..=64).contains(&self.points_per_side) {
            return Err(Error::config(
                "points_per_side",
                format!("{} is not in 1..=64", self.points_per_side),
            ));
        }
        for (name, v) in [
            ("pred_iou_thresh", self.pred_iou_thresh),
            ("stability_score_thresh", self.stability_score_thresh),
        ] {
            if !unit(v) {
                return Err(Error::config(name, format!("{v} is not in [0, 1]")));
            }
        }
        Ok(())
    }
}

/// A loaded segmenter, shared through the [`Models`] registry.
#[derive(Clone)]
pub(crate) enum LoadedSegmenter {
    Isnet(Arc<IsnetSegmenter>),
    #[cfg(feature = "sam")]
    Sam(Arc<reelsmith_entity::sam::SamModel>),
}

impl LoadedSegmenter {
    /// The instances of `image`, best first, at most `settings.max_entities`.
    pub(crate) fn segment(
        &self,
        image: &RgbImage,
        settings: &SegmentSettings,
    ) -> Result<Vec<Instance>, EntityError> {
        let mut instances = match self {
            LoadedSegmenter::Isnet(s) => {
                let p = s.probability(image)?;
                let opts = InstanceOptions {
                    threshold: settings.threshold,
                    min_area_fraction: settings.min_area,
                    max_instances: settings.max_entities,
                    ..InstanceOptions::default()
                };
                instances_from_probability(&p, &opts)
            }
            #[cfg(feature = "sam")]
            LoadedSegmenter::Sam(m) => {
                let opts = reelsmith_entity::sam::AutoMaskOptions {
                    points_per_side: settings.points_per_side,
                    pred_iou_thresh: settings.pred_iou_thresh,
                    stability_score_thresh: settings.stability_score_thresh,
                    ..Default::default()
                };
                let min = (settings.min_area as f64
                    * f64::from(image.width())
                    * f64::from(image.height())) as u64;
                m.generate(image, &opts)?
                    .into_iter()
                    .filter(|m| m.mask.area() >= min.max(1))
                    .map(|m| Instance {
                        mask: m.mask,
                        score: m.predicted_iou,
                    })
                    .collect()
            }
        };
        instances.truncate(settings.max_entities);
        Ok(instances)
    }
}

/// The checkpoint file of a segmenter: `weights` itself, or the one checkpoint in the
/// folder `weights` (for ISNet `isnet-general-use.safetensors` first).
pub(crate) fn segmenter_file(kind: SegmenterKind, weights: &Path) -> Result<PathBuf, Error> {
    let setting = "segmenter_weights";
    if weights.is_file() {
        return Ok(weights.to_path_buf());
    }
    if !weights.is_dir() {
        return Err(Error::config(
            setting,
            format!(
                "{} does not exist; give the {} checkpoint file or the folder holding it",
                weights.display(),
                kind.name()
            ),
        ));
    }
    if kind == SegmenterKind::Isnet {
        let named = weights.join("isnet-general-use.safetensors");
        if named.is_file() {
            return Ok(named);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(weights)
        .map_err(|e| Error::write(weights, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| ["safetensors", "pth", "pt"].contains(&e))
        })
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::config(
            setting,
            format!(
                "{} holds no checkpoint (.safetensors or .pth); give the {} weights file",
                weights.display(),
                kind.name()
            ),
        )),
        n => Err(Error::config(
            setting,
            format!(
                "{} holds {n} checkpoints; give the {} weights file itself",
                weights.display(),
                kind.name()
            ),
        )),
    }
}

/// Loads (once per registry) the segmenter `kind` from `weights` (a file or a folder).
pub(crate) fn load_segmenter(
    models: &Models,
    kind: SegmenterKind,
    weights: &Path,
    sam_variant: Option<SamVariantName>,
) -> Result<LoadedSegmenter, Error> {
    let file = segmenter_file(kind, weights)?;
    let key = std::fs::canonicalize(&file)
        .unwrap_or_else(|_| file.clone())
        .display()
        .to_string();
    let device = models.device().device().map_err(|e| Error::Model {
        model: file.display().to_string(),
        source: e.into(),
    })?;
    match kind {
        SegmenterKind::Isnet => {
            let seg = models.get_or_load(&key, || {
                let cfg = IsnetConfig::detect(&file).map_err(|e| Error::entity(&file, e))?;
                let model =
                    load_isnet(&file, &cfg, &device).map_err(|e| Error::entity(&file, e))?;
                Ok(IsnetSegmenter::new(model, device.clone()))
            })?;
            Ok(LoadedSegmenter::Isnet(seg))
        }
        #[cfg(feature = "sam")]
        SegmenterKind::Sam => {
            use reelsmith_entity::sam::{load_sam, SamModel, SamVariant};
            let variant = match sam_variant {
                Some(SamVariantName::VitB) => SamVariant::VitB,
                Some(SamVariantName::VitL) => SamVariant::VitL,
                Some(SamVariantName::VitH) => SamVariant::VitH,
                Some(SamVariantName::Mobile) => SamVariant::Mobile,
                None => SamVariant::detect(&file).map_err(|e| Error::entity(&file, e))?,
            };
            let key = format!("{key}#{variant:?}");
            let model = models.get_or_load::<SamModel, _>(&key, || {
                load_sam(&file, &variant, &device).map_err(|e| Error::entity(&file, e))
            })?;
            Ok(LoadedSegmenter::Sam(model))
        }
        #[cfg(not(feature = "sam"))]
        SegmenterKind::Sam => {
            let _ = sam_variant;
            Err(Error::config(
                "segmenter",
                "this build has no Segment Anything (built without the `sam` feature); use isnet",
            ))
        }
    }
}

/// The colour outside an entity's mask in the picture its embedding is computed from: the
/// ImageNet mean, which the embedders' normalisation maps to zero.
pub const ENTITY_FILL: [u8; 3] = [124, 116, 104];

/// What an embedder sees of one entity: the frame's pixels on the mask, [`ENTITY_FILL`]
/// elsewhere, cropped to the box and padded to a square (so that a centre crop in the
/// embedder's preprocessing keeps the whole object).
pub(crate) fn entity_view(frame: &RgbImage, mask: &Mask, bbox: &BBox) -> RgbImage {
    let crop = masked_crop(frame, mask, bbox, ENTITY_FILL);
    let side = crop.width().max(crop.height());
    let mut square = RgbImage::from_pixel(side, side, Rgb(ENTITY_FILL));
    let (x, y) = ((side - crop.width()) / 2, (side - crop.height()) / 2);
    image::imageops::replace(&mut square, &crop, i64::from(x), i64::from(y));
    square
}

/// One embedding row per view, in batches of `batch`.
pub(crate) fn embed_views(
    model: &AnyModel,
    views: &[RgbImage],
    batch: usize,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut rows = Vec::with_capacity(views.len());
    for chunk in views.chunks(batch.max(1)) {
        let e = model.embed_images(chunk)?;
        rows.extend(e.rows().map(<[f32]>::to_vec));
    }
    Ok(rows)
}

/// An embedding model choice with a local folder made absolute, so that the model id it
/// gives (`dinov2:/abs/path`) names the same folder from any working directory.
pub(crate) fn absolute_choice(choice: &ModelChoice) -> ModelChoice {
    match choice {
        ModelChoice::Dir(d) => ModelChoice::Dir(std::fs::canonicalize(d).unwrap_or(d.clone())),
        other => other.clone(),
    }
}

/// The model choice that loads the embedder a memory's `embedder` id names
/// (`dinov2:/path` or `clip:/path` for a folder, `repo/name@revision` for a hub model).
pub(crate) fn choice_for_embedder(id: &str) -> ModelChoice {
    for prefix in ["dinov2:", "clip:"] {
        if let Some(dir) = id.strip_prefix(prefix) {
            return ModelChoice::Dir(PathBuf::from(dir));
        }
    }
    ModelChoice::Hub(id.split('@').next().unwrap_or(id).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_views_are_square_with_the_object_centred() {
        let frame = RgbImage::from_pixel(40, 30, Rgb([200, 10, 10]));
        let mask = Mask::from_fn(40, 30, |x, y| (5..25).contains(&x) && (10..16).contains(&y));
        let bbox = mask.bbox().unwrap();
        let v = entity_view(&frame, &mask, &bbox);
        assert_eq!(v.dimensions(), (20, 20));
        assert_eq!(*v.get_pixel(10, 10), Rgb([200, 10, 10]));
        assert_eq!(*v.get_pixel(10, 0), Rgb(ENTITY_FILL));
        // 6 rows of object in the middle of 20: rows 7..13.
        assert_eq!(*v.get_pixel(0, 7), Rgb([200, 10, 10]));
        assert_eq!(*v.get_pixel(0, 6), Rgb(ENTITY_FILL));
    }

    #[test]
    fn embedder_ids_map_back_to_choices() {
        assert_eq!(
            choice_for_embedder("dinov2:/m/dino"),
            ModelChoice::Dir("/m/dino".into())
        );
        assert_eq!(
            choice_for_embedder("facebook/dinov2-base@abc123"),
            ModelChoice::Hub("facebook/dinov2-base".into())
        );
        assert_eq!("SAM".parse::<SegmenterKind>().unwrap(), SegmenterKind::Sam);
        assert!("mask-rcnn".parse::<SegmenterKind>().is_err());
    }

    #[test]
    fn tiny_and_missing_images_are_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("one.png");
        RgbImage::from_pixel(1, 1, Rgb([0, 0, 0])).save(&p).unwrap();
        let e = read_image(&p, "background").unwrap_err().to_string();
        assert!(e.contains("1x1") && e.contains("background"), "{e}");
        let e = read_image(&dir.path().join("none.png"), "cut-out").unwrap_err();
        assert!(e.to_string().contains("none.png"), "{e}");
        let ok = dir.path().join("ok.png");
        RgbImage::from_pixel(16, 16, Rgb([0, 0, 0]))
            .save(&ok)
            .unwrap();
        assert_eq!(read_image(&ok, "frame").unwrap().width(), 16);
    }
}
