//! How well a video keeps the entities of a memory folder.
//!
//! entity memory (from the [`entities`](super::entities) pipeline, with embeddings) + a video
//! (real or generated) → frames sampled at `fps` → per frame: segment (the memory's
//! segmenter and weights unless others are given) → embed each candidate's masked crop with
//! the **same** model the memory's embeddings came from (another model is refused: its
//! vectors would not be comparable) → match candidates to entities by cosine similarity (one
//! candidate per entity) → `retention.csv` (per frame and entity), `retention.png` (best
//! similarity over time) and `retention.json` (per entity: mean best similarity, fraction of
//! frames present, first frame lost; written last).
//!
//! ```no_run
//! use reelsmith::models::Models;
//! use reelsmith::pipelines::retention::{self, RetentionConfig, RetentionInput};
//! use reelsmith::progress::NoProgress;
//!
//! let models = Models::new();
//! let input = RetentionInput::new("generated.mp4", "memory/", "retention/", &models);
//! let report = retention::run(&input, &RetentionConfig::default(), &NoProgress)?;
//! println!("mean best similarity {:.3}", report.summary.mean_best_similarity);
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};

use reelsmith_decode::{DecodeOptions, Sampling};
use reelsmith_embed::Embedder;
use reelsmith_entity::entity::FrameEntities;
use reelsmith_entity::retention::{Candidate, Retention, RetentionOptions, RetentionReport};
use serde::{Deserialize, Serialize};

use crate::first_frame::{
    absolute_choice, choice_for_embedder, embed_views, entity_view, load_segmenter, segmenter_file,
    SamVariantName, SegmentSettings, SegmenterKind,
};
use crate::models::{ModelChoice, Models};
use crate::output::OutputDir;
use crate::pipelines::entities::recorded_weights;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// Settings of the retention pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Frames sampled per second of video (default 2).
    pub fps: f64,
    /// An entity is present in a frame when its match's cosine similarity reaches this
    /// (default 0.5).
    pub presence_threshold: f32,
    /// The segmenter (default: the one the memory was made with).
    pub segmenter: Option<SegmenterKind>,
    /// The segmenter's checkpoint file or folder (default: the one recorded in the memory).
    pub segmenter_weights: Option<PathBuf>,
    /// For SAM: the variant (default: as recorded, else read from the checkpoint).
    pub sam_variant: Option<SamVariantName>,
    /// How frames are cut into candidates.
    pub segment: SegmentSettings,
    /// The embedding model (default `auto`: the memory's own; any other must be that same
    /// model, e.g. the same folder or hub id).
    pub embed_model: ModelChoice,
    /// Candidate pictures per embedding batch (default 16).
    pub batch: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            fps: 2.0,
            presence_threshold: RetentionOptions::default().presence_threshold,
            segmenter: None,
            segmenter_weights: None,
            sam_variant: None,
            segment: SegmentSettings::default(),
            embed_model: ModelChoice::Auto,
            batch: 16,
        }
    }
}

impl RetentionConfig {
    /// Checks every setting; the error names the one at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 240.0) {
            return Err(Error::config(
                "fps",
                format!("{} is not in (0, 240]", self.fps),
            ));
        }
        if !(self.presence_threshold.is_finite() && (-1.0..=1.0).contains(&self.presence_threshold))
        {
            return Err(Error::config(
                "presence_threshold",
                format!(
                    "{} is not a cosine similarity in [-1, 1]",
                    self.presence_threshold
                ),
            ));
        }
        if self.embed_model == ModelChoice::None {
            return Err(Error::config(
                "embed_model",
                "retention compares embeddings: leave it to the memory's model (auto) or name \
                 that model",
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

/// What the pipeline works on.
#[derive(Debug, Clone, Copy)]
pub struct RetentionInput<'a> {
    /// The video.
    pub video: &'a Path,
    /// The entity memory folder (written by the entities pipeline, with embeddings).
    pub entities: &'a Path,
    /// The output folder (created when missing).
    pub output: &'a Path,
    /// Where models come from (loaded once, shared across runs).
    pub models: &'a Models,
    /// Replace a folder that holds files this pipeline did not write (default false).
    pub overwrite: bool,
}

impl<'a> RetentionInput<'a> {
    /// The input for `video` and the memory `entities`, writing into `output`.
    pub fn new(
        video: &'a (impl AsRef<Path> + ?Sized),
        entities: &'a (impl AsRef<Path> + ?Sized),
        output: &'a (impl AsRef<Path> + ?Sized),
        models: &'a Models,
    ) -> Self {
        Self {
            video: video.as_ref(),
            entities: entities.as_ref(),
            output: output.as_ref(),
            models,
            overwrite: false,
        }
    }

    /// Sets [`RetentionInput::overwrite`].
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// The run's report (`retention.json`).
#[derive(Debug, Clone, Serialize)]
pub struct RetentionRunReport {
    /// The video.
    pub video: PathBuf,
    /// The memory folder.
    pub entities: PathBuf,
    /// The embedder (the memory's).
    pub embedder: String,
    /// The segmenter and its checkpoint.
    pub segmenter: String,
    /// The segmenter's checkpoint file.
    pub segmenter_weights: PathBuf,
    /// Frames sampled per second.
    pub fps: f64,
    /// The summary: per entity mean best similarity, fraction present, first frame lost.
    #[serde(flatten)]
    pub summary: RetentionReport,
}

/// Runs the pipeline (see the [module docs](self)).
pub fn run(
    input: &RetentionInput<'_>,
    config: &RetentionConfig,
    progress: &dyn Progress,
) -> Result<RetentionRunReport, Error> {
    config.validate()?;
    let memory_dir = input.entities;
    let memory = FrameEntities::load(memory_dir).map_err(|e| Error::entity(memory_dir, e))?;
    let invalid = |detail: String| Error::InvalidInput {
        path: memory_dir.to_path_buf(),
        detail,
    };
    if memory.entities.is_empty() {
        return Err(invalid(
            "the memory holds no entity, so there is nothing to follow; build it from a frame \
             where the segmenter finds objects"
                .into(),
        ));
    }
    let Some(embedder) = memory.embedder.clone() else {
        return Err(invalid(
            "the memory has no embeddings (it was built without an embedding model); rebuild \
             it with one (embed_model) to measure retention"
                .into(),
        ));
    };
    let mut retention = Retention::new(
        &memory,
        RetentionOptions {
            presence_threshold: config.presence_threshold,
        },
    )
    .map_err(|e| Error::entity(memory_dir, e))?;

    // The segmenter: as configured, else as the memory records it.
    let recorded = recorded_weights(memory_dir);
    let kind = match config.segmenter {
        Some(k) => k,
        None => SegmenterKind::from_name(&memory.segmenter).ok_or_else(|| {
            Error::config(
                "segmenter",
                format!(
                    "the memory was made with segmenter {:?}, which this version does not know; \
                     choose isnet or sam",
                    memory.segmenter
                ),
            )
        })?,
    };
    let same_kind = kind.name() == memory.segmenter;
    let weights = match (&config.segmenter_weights, &recorded) {
        (Some(w), _) => w.clone(),
        (None, Some((w, _))) if same_kind && w.exists() => w.clone(),
        (None, Some((w, _))) if same_kind => {
            return Err(Error::config(
                "segmenter_weights",
                format!(
                    "the memory was made with the {} checkpoint {}, which is not there any more; \
                     give that checkpoint",
                    kind.name(),
                    w.display()
                ),
            ))
        }
        _ => {
            return Err(Error::config(
                "segmenter_weights",
                format!(
                    "give the {} checkpoint to segment the video with",
                    kind.name()
                ),
            ))
        }
    };
    let variant = config
        .sam_variant
        .or_else(|| recorded.as_ref().and_then(|r| r.1).filter(|_| same_kind));

    // The embedder: the memory's own, and nothing else.
    let choice = match &config.embed_model {
        ModelChoice::Auto => choice_for_embedder(&embedder),
        other => absolute_choice(other),
    };
    let (segmenter, model) = {
        let _load = StageGuard::start(progress, Stage::Load, None);
        let segmenter = load_segmenter(input.models, kind, &weights, variant)?;
        let model = input
            .models
            .resolve(&choice, "")?
            .model
            .ok_or_else(|| Error::config("embed_model", "no embedding model was loaded"))?;
        (segmenter, model)
    };
    if model.model_id() != embedder {
        return Err(Error::config(
            "embed_model",
            format!(
                "the memory's embeddings come from {embedder} but this model is {}: their vectors \
                 cannot be compared; embed with the memory's model (leave embed_model unset) or \
                 rebuild the memory with this one",
                model.model_id()
            ),
        ));
    }

    // Sampled frames: segment, embed the candidates, match.
    let video = reelsmith_decode::open(input.video)?;
    let expected = (video.info().duration * config.fps).ceil().max(1.0) as u64;
    let stage = StageGuard::start(progress, Stage::Segment, Some(expected));
    let opts = DecodeOptions::new().sampling(Sampling::Fps(config.fps));
    for frame in video.frames(&opts)? {
        let frame = frame?;
        let instances = segmenter
            .segment(&frame.image, &config.segment)
            .map_err(|e| Error::entity(input.video, e))?;
        let mut boxes = Vec::with_capacity(instances.len());
        let mut views = Vec::with_capacity(instances.len());
        for inst in &instances {
            if let Some(b) = inst.mask.bbox() {
                views.push(entity_view(&frame.image, &inst.mask, &b));
                boxes.push((b, inst.score));
            }
        }
        let rows = embed_views(&model, &views, config.batch).map_err(|source| Error::Embed {
            path: input.video.to_path_buf(),
            source,
        })?;
        let candidates: Vec<Candidate> = rows
            .into_iter()
            .zip(boxes)
            .map(|(embedding, (b, score))| Candidate {
                embedding,
                bbox: Some(b),
                score,
            })
            .collect();
        retention
            .observe(frame.frame_ref(), &candidates)
            .map_err(|e| Error::entity(input.video, e))?;
        stage.advance(1);
    }
    drop(stage);

    let out = OutputDir::begin(input.output, "retention", input.overwrite)?;
    let csv = out.path("retention.csv")?;
    retention
        .write_csv(&csv)
        .map_err(|e| Error::entity(&csv, e))?;
    let png = out.path("retention.png")?;
    retention
        .write_plot(&png)
        .map_err(|e| Error::entity(&png, e))?;
    let report = RetentionRunReport {
        video: input.video.to_path_buf(),
        entities: memory_dir.to_path_buf(),
        embedder,
        segmenter: kind.name().to_string(),
        segmenter_weights: std::fs::canonicalize(segmenter_file(kind, &weights)?)
            .unwrap_or(weights),
        fps: config.fps,
        summary: retention.report(),
    };
    out.commit("retention.json", &report)?;
    Ok(report)
}
