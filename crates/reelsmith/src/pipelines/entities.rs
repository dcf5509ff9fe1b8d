//! The entities of one frame, as an entity memory folder.
//!
//! image, or one frame of a video (`frame` N or the first at or after `time` T) → a
//! segmenter (ISNet salient objects, or Segment Anything's automatic masks) → entities
//! (mask, box, centroid, area, RGBA cut-out, score) → an embedding of each entity and of
//! the frame (DINOv2 by default: `facebook/dinov2-base` when it is in the Hugging Face
//! cache; any CLIP or DINOv2 model can be chosen) → the memory folder:
//!
//! - `entities.json`: per entity `bbox`, `centroid`, `area_fraction`, `score`, the mask as
//!   COCO RLE and the file names; the source, frame, segmenter (and its weights), embedder
//!   and notes. Written last: its presence says the folder is whole.
//! - `mask_NN.png` (the mask), `entity_NN.png` (the RGBA cut-out),
//! - `overlay.png` (numbered coloured masks over the frame),
//! - `embeddings.safetensors` (`entity_embeddings` `[n, d]`, `frame_embedding` `[d]`) when
//!   a model embedded them.
//!
//! Each entity is embedded from its masked crop: the frame's pixels on the mask and the
//! ImageNet mean colour elsewhere, padded to a square ([`ENTITY_FILL`]); the
//! [`retention`](super::retention) pipeline embeds its candidates the same way. A frame
//! without any salient object gives an empty memory (no entity files), not an error.
//!
//! ```no_run
//! use reelsmith::models::{ModelChoice, Models};
//! use reelsmith::pipelines::entities::{self, EntitiesConfig, EntitiesInput};
//! use reelsmith::progress::NoProgress;
//!
//! let config = EntitiesConfig {
//!     frame: Some(120),
//!     segmenter_weights: Some("models/isnet".into()),
//!     embed_model: ModelChoice::Hub("dinov2-small".into()),
//!     ..Default::default()
//! };
//! let models = Models::new();
//! let report = entities::run(&EntitiesInput::new("chaplin.mp4", "memory/", &models), &config, &NoProgress)?;
//! for e in &report.memory.entities {
//!     println!("#{} {:?} score {:.2}", e.id, e.bbox, e.score);
//! }
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};

use image::RgbImage;
use reelsmith_core::FrameRef;
use reelsmith_embed::Embedder;
use reelsmith_entity::entity::FrameEntities;
use serde::{Deserialize, Serialize};

use crate::first_frame::{
    absolute_choice, embed_views, entity_view, load_segmenter, read_image, video_frame,
    LoadedSegmenter,
};
pub use crate::first_frame::{
    SamVariantName, SegmentSettings, SegmenterKind, ENTITY_FILL, MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE,
};
use crate::models::{ModelChoice, Models};
use crate::output::OutputDir;
use crate::pipelines::score::is_image;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// The embedding model `embed_model = "auto"` stands for (when it is in the cache).
pub const DEFAULT_EMBED_MODEL: &str = "facebook/dinov2-base";

/// Settings of the entities pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EntitiesConfig {
    /// For a video: the 0-based index of the frame to segment (default: the first frame).
    pub frame: Option<u64>,
    /// For a video: segment the first frame at or after this time in seconds instead.
    pub time: Option<f64>,
    /// The segmenter (default `isnet`).
    pub segmenter: SegmenterKind,
    /// The segmenter's checkpoint: a `.safetensors`/`.pth` file or the folder holding it
    /// (required: no segmenter weights are downloaded).
    pub segmenter_weights: Option<PathBuf>,
    /// For SAM: which variant the checkpoint holds (default: read from its shapes).
    pub sam_variant: Option<SamVariantName>,
    /// How the segmenter's output is cut into entities.
    pub segment: SegmentSettings,
    /// The model that embeds the entities and the frame (default `auto`: DINOv2-base when
    /// it is in the Hugging Face cache, else no embeddings and a note; `none` skips them).
    pub embed_model: ModelChoice,
    /// Entity pictures per embedding batch (default 16).
    pub batch: usize,
}

impl Default for EntitiesConfig {
    fn default() -> Self {
        Self {
            frame: None,
            time: None,
            segmenter: SegmenterKind::Isnet,
            segmenter_weights: None,
            sam_variant: None,
            segment: SegmentSettings::default(),
            embed_model: ModelChoice::Auto,
            batch: 16,
        }
    }
}

impl EntitiesConfig {
    /// Checks every setting; the error names the one at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if self.frame.is_some() && self.time.is_some() {
            return Err(Error::config(
                "time",
                "give either a frame index (frame) or a time (time), not both",
            ));
        }
        if let Some(t) = self.time {
            if !(t.is_finite() && t >= 0.0) {
                return Err(Error::config(
                    "time",
                    format!("{t} is not a time in seconds (>= 0)"),
                ));
            }
        }
        if self.segmenter_weights.is_none() {
            return Err(Error::config(
                "segmenter_weights",
                match self.segmenter {
                    SegmenterKind::Isnet => {
                        "ISNet needs its checkpoint: the isnet-general-use.safetensors file (or an \
                         upstream .pth), or the folder holding it"
                    }
                    SegmenterKind::Sam => {
                        "Segment Anything needs its checkpoint, e.g. sam_vit_b_01ec64.safetensors \
                         or mobile_sam-tiny-vitt.safetensors from the lmz/candle-sam hub repository"
                    }
                },
            ));
        }
        self.segment.validate()?;
        if !(1..=1024).contains(&self.batch) {
            return Err(Error::config(
                "batch",
                format!("{} is not in 1..=1024", self.batch),
            ));
        }
        Ok(())
    }
}

/// What the pipeline works on: an image or a video, the memory folder to write, and the
/// models.
#[derive(Debug, Clone, Copy)]
pub struct EntitiesInput<'a> {
    /// An image (by extension) or a video.
    pub input: &'a Path,
    /// The entity memory folder (created when missing).
    pub output: &'a Path,
    /// Where models come from (loaded once, shared across runs).
    pub models: &'a Models,
    /// Replace a folder that holds files this pipeline did not write (default false).
    pub overwrite: bool,
}

impl<'a> EntitiesInput<'a> {
    /// The input for `input`, writing the memory into `output`, with models from `models`.
    pub fn new(
        input: &'a (impl AsRef<Path> + ?Sized),
        output: &'a (impl AsRef<Path> + ?Sized),
        models: &'a Models,
    ) -> Self {
        Self {
            input: input.as_ref(),
            output: output.as_ref(),
            models,
            overwrite: false,
        }
    }

    /// Sets [`EntitiesInput::overwrite`].
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// What a run found and wrote.
#[derive(Debug, Clone)]
pub struct EntitiesReport {
    /// The entities (with their embeddings when computed), as saved in the folder.
    pub memory: FrameEntities,
    /// The segmenter's checkpoint file.
    pub segmenter_weights: PathBuf,
    /// What the run could not do as asked (no embedding model, no entity found).
    pub notes: Vec<String>,
}

/// The extra fields the facade adds to the memory's `entities.json`.
#[derive(Debug, Serialize)]
struct Extras<'a> {
    segmenter_weights: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    sam_variant: Option<SamVariantName>,
    entity_view: &'static str,
    notes: &'a [String],
}

/// Runs the pipeline (see the [module docs](self)).
pub fn run(
    input: &EntitiesInput<'_>,
    config: &EntitiesConfig,
    progress: &dyn Progress,
) -> Result<EntitiesReport, Error> {
    config.validate()?;
    let path = input.input;
    let (frame, frame_ref) = read_frame(path, config)?;
    let (weights, segmenter) = configured_segmenter(input.models, config, progress)?;
    let weights_file = std::fs::canonicalize(crate::first_frame::segmenter_file(
        config.segmenter,
        weights,
    )?)
    .map_err(|e| Error::write(weights, e))?;
    let instances = {
        let stage = StageGuard::start(progress, Stage::Segment, Some(1));
        let i = segmenter
            .segment(&frame, &config.segment)
            .map_err(|e| Error::entity(path, e))?;
        stage.advance(1);
        i
    };
    let mut memory = FrameEntities::from_instances(&frame, instances, config.segmenter.name())
        .map_err(|e| Error::entity(path, e))?;
    memory.source = Some(
        std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string(),
    );
    memory.frame = frame_ref;
    let mut notes = Vec::new();
    if memory.entities.is_empty() {
        notes.push(format!(
            "no entity found: the segmenter sees no {} in this frame (threshold {}, min_area \
             {}); the memory is empty",
            match config.segmenter {
                SegmenterKind::Isnet => "salient object",
                SegmenterKind::Sam => "confident mask",
            },
            config.segment.threshold,
            config.segment.min_area
        ));
    }
    embed(
        &mut memory,
        &frame,
        input.models,
        config,
        &mut notes,
        progress,
    )?;
    for n in &notes {
        tracing::info!("{n}");
    }
    write(input, &memory, &frame, &weights_file, config, &notes)?;
    Ok(EntitiesReport {
        memory,
        segmenter_weights: weights_file,
        notes,
    })
}

/// The entities of an in-memory `frame`, segmented and embedded exactly as [`run`] does
/// (same segmenter, settings, entity views and embedding model), without writing a memory
/// folder. `source` names the frame in errors. Unlike [`run`], a missing embedding model is
/// an error: the caller needs the embeddings.
pub(crate) fn frame_entities(
    frame: &RgbImage,
    source: &Path,
    models: &Models,
    config: &EntitiesConfig,
    progress: &dyn Progress,
) -> Result<FrameEntities, Error> {
    config.validate()?;
    let (_, segmenter) = configured_segmenter(models, config, progress)?;
    let instances = segmenter
        .segment(frame, &config.segment)
        .map_err(|e| Error::entity(source, e))?;
    let mut memory = FrameEntities::from_instances(frame, instances, config.segmenter.name())
        .map_err(|e| Error::entity(source, e))?;
    memory.source = Some(source.display().to_string());
    let mut notes = Vec::new();
    embed(&mut memory, frame, models, config, &mut notes, progress)?;
    if memory.embedder.is_none() {
        return Err(Error::config(
            "embed_model",
            format!(
                "the entities of {} need an embedding model (DINOv2 or CLIP){}",
                source.display(),
                notes.first().map(|n| format!(": {n}")).unwrap_or_default()
            ),
        ));
    }
    Ok(memory)
}

/// The frame to segment: the image, or the chosen frame of the video.
fn read_frame(path: &Path, config: &EntitiesConfig) -> Result<(RgbImage, Option<FrameRef>), Error> {
    if is_image(path) {
        if config.frame.is_some() || config.time.is_some() {
            return Err(Error::config(
                if config.time.is_some() {
                    "time"
                } else {
                    "frame"
                },
                format!(
                    "{} is an image: a frame or time applies to videos only",
                    path.display()
                ),
            ));
        }
        return Ok((read_image(path, "image")?.to_rgb8(), None));
    }
    let (image, at) = video_frame(path, config.frame, config.time)?;
    let (w, h) = image.dimensions();
    if w < MIN_IMAGE_SIDE || h < MIN_IMAGE_SIDE {
        return Err(Error::InvalidInput {
            path: path.to_path_buf(),
            detail: format!(
                "the frame is {w}x{h}, too small to segment (each side must be at least \
                 {MIN_IMAGE_SIDE} pixels)"
            ),
        });
    }
    Ok((image, Some(at)))
}

/// Embeds the entities and the frame with the configured model, or notes why not.
fn embed(
    memory: &mut FrameEntities,
    frame: &RgbImage,
    models: &Models,
    config: &EntitiesConfig,
    notes: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<(), Error> {
    let choice = absolute_choice(&config.embed_model);
    let resolved = {
        let _load = StageGuard::start(progress, Stage::Load, None);
        models.resolve(&choice, DEFAULT_EMBED_MODEL)?
    };
    let Some(model) = resolved.model else {
        if choice == ModelChoice::Auto {
            notes.push(format!(
                "no embeddings: the default embedding model {DEFAULT_EMBED_MODEL} is not in the \
                 Hugging Face cache (download it once with `huggingface-cli download \
                 {DEFAULT_EMBED_MODEL}`, or choose a model with embed_model); retention needs \
                 a memory with embeddings"
            ));
        }
        return Ok(());
    };
    let stage = StageGuard::start(
        progress,
        Stage::Embed,
        Some(memory.entities.len() as u64 + 1),
    );
    let mut views: Vec<RgbImage> = memory
        .entities
        .iter()
        .map(|e| entity_view(frame, &e.mask, &e.bbox))
        .collect();
    views.push(frame.clone());
    let path = PathBuf::from(memory.source.clone().unwrap_or_default());
    let mut rows = embed_views(&model, &views, config.batch).map_err(|source| Error::Embed {
        path: path.clone(),
        source,
    })?;
    stage.advance(views.len() as u64);
    let frame_row = rows.pop();
    memory
        .set_embeddings(model.model_id(), rows, frame_row)
        .map_err(|e| Error::entity(&path, e))
}

/// Writes the memory folder through an [`OutputDir`], `entities.json` last.
fn write(
    input: &EntitiesInput<'_>,
    memory: &FrameEntities,
    frame: &RgbImage,
    weights: &Path,
    config: &EntitiesConfig,
    notes: &[String],
) -> Result<(), Error> {
    let out = OutputDir::begin(input.output, "entities", input.overwrite)?;
    // The entity crate writes the memory folder whole into the staging area; its files are
    // then staged under their own names, and entities.json, with the facade's fields,
    // becomes the run's report.
    let saved = out.staging().join("memory");
    memory
        .save(&saved, Some(frame))
        .map_err(|e| Error::entity(input.output, e))?;
    let json_path = saved.join("entities.json");
    let mut json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&json_path).map_err(|e| Error::write(&json_path, e))?,
    )
    .map_err(|e| crate::output::write_err(&json_path, e))?;
    let mut names: Vec<String> = std::fs::read_dir(&saved)
        .map_err(|e| Error::write(&saved, e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "entities.json")
        .collect();
    names.sort();
    for name in names {
        let to = out.path(&name)?;
        std::fs::rename(saved.join(&name), &to).map_err(|e| Error::write(&to, e))?;
    }
    let extras = Extras {
        segmenter_weights: weights,
        sam_variant: config.sam_variant,
        entity_view: "masked crop (ImageNet mean colour off the mask) padded to a square",
        notes,
    };
    if let (Some(obj), Ok(serde_json::Value::Object(extra))) =
        (json.as_object_mut(), serde_json::to_value(&extras))
    {
        obj.extend(extra);
    }
    out.commit("entities.json", &json)
}

/// The segmenter `config` names (its weights validated as set), loaded once per registry,
/// with the weights path.
fn configured_segmenter<'a>(
    models: &Models,
    config: &'a EntitiesConfig,
    progress: &dyn Progress,
) -> Result<(&'a Path, LoadedSegmenter), Error> {
    let weights = config
        .segmenter_weights
        .as_deref()
        .expect("validated: segmenter weights are set");
    let _load = StageGuard::start(progress, Stage::Load, None);
    let segmenter = load_segmenter(models, config.segmenter, weights, config.sam_variant)?;
    Ok((weights, segmenter))
}

/// The segmenter weights file recorded in a memory folder's `entities.json`, if any.
pub(crate) fn recorded_weights(memory_dir: &Path) -> Option<(PathBuf, Option<SamVariantName>)> {
    let text = std::fs::read(memory_dir.join("entities.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let weights = PathBuf::from(v.get("segmenter_weights")?.as_str()?);
    let variant = v
        .get("sam_variant")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    Some((weights, variant))
}
