//! Frame scoring of image and video files: decode (sampled) frames, measure sharpness and
//! exposure on each, and combine them with [`reelsmith_score::score_frames`].
//!
//! Each video is one normalisation set (sharpness is normalised across its sampled
//! frames); all still images given together form one more set.
//!
//! With a model ([`ScoringConfig::model`]), every scored frame is also embedded (in
//! batches, as the frames stream by): the aesthetic head ([`ScoringConfig::aesthetic_head`])
//! scores the embeddings and the prompts give saliency. Without a model the score rests on
//! sharpness and exposure, and the report says so ([`ScoreReport::model_free`],
//! [`ScoreReport::notes`]).
//!
//! ```no_run
//! use reelsmith::models::Models;
//! use reelsmith::pipelines::score::{self, ScoringConfig, ScoringInput};
//! use reelsmith::progress::NoProgress;
//!
//! let files = ["holiday.mp4".into(), "cover.jpg".into()];
//! let report = score::run(&ScoringInput::new(&files, &Models::new()), &ScoringConfig::default(), &NoProgress)?;
//! for row in &report.rows {
//!     println!("{} frame {}: {:.3}", row.source, row.frame, row.score.score);
//! }
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reelsmith_core::Embeddings;
use reelsmith_decode::{self as decode, DecodeOptions, Sampling};
use reelsmith_embed::{AnyModel, Embedder};
use reelsmith_score::{
    score_frames, AestheticHead, FrameMeasures, FrameScore, ModelInputs, ScoreConfig,
};
use serde::{Deserialize, Serialize};

use crate::embed_loop::{embed_error, embed_frames, DEFAULT_BATCH};
use crate::error::num;
use crate::models::{ModelChoice, Models};
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// File extensions read as still images (everything else is opened as a video).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "ppm",
];

/// Whether `path` is read as a still image (by its extension).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Settings of the score pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringConfig {
    /// Frames per second scored in each video (default 1), chosen by timestamp.
    pub fps: f64,
    /// Score every Nth decoded frame instead of `fps` (when set).
    pub every: Option<u32>,
    /// Weights, normalisation and mappings.
    pub score: ScoreConfig,
    /// The embedding model for aesthetics and saliency (default none).
    pub model: ModelChoice,
    /// LAION aesthetic head (`.pth` or `.safetensors`); needs a CLIP model.
    #[serde(serialize_with = "reelsmith_core::paths::lossy_option")]
    pub aesthetic_head: Option<PathBuf>,
    /// Text prompts for saliency; need a CLIP model.
    pub prompts: Vec<String>,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        Self {
            fps: 1.0,
            every: None,
            score: ScoreConfig::default(),
            model: ModelChoice::None,
            aesthetic_head: None,
            prompts: Vec::new(),
        }
    }
}

impl ScoringConfig {
    /// The frames kept of each video.
    pub fn sampling(&self) -> Sampling {
        match self.every {
            Some(n) => Sampling::EveryNth(n),
            None => Sampling::Fps(self.fps),
        }
    }

    /// Checks every range; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 1000.0) {
            return Err(Error::config(
                "fps",
                format!("{} is not in (0, 1000]", num(self.fps)),
            ));
        }
        if self.every == Some(0) {
            return Err(Error::config("every", "0: keep every 1st frame or more"));
        }
        if !self.model.is_some() {
            if self.aesthetic_head.is_some() {
                return Err(Error::NeedsModel {
                    what: "aesthetic_head",
                });
            }
            if !self.prompts.is_empty() {
                return Err(Error::NeedsModel { what: "prompts" });
            }
        }
        validate_score(&self.score)
    }
}

/// Checks the `score` section of a configuration; the error names the setting `score`.
pub(crate) fn validate_score(score: &reelsmith_score::ScoreConfig) -> Result<(), Error> {
    score.validate().map_err(|e| match e {
        reelsmith_score::ScoreError::InvalidWeights(m) => Error::config("score", m),
        e => Error::config("score", e.to_string()),
    })
}

/// The files and models of a score run.
#[derive(Debug, Clone, Copy)]
pub struct ScoringInput<'a> {
    /// Images and videos, scored in this order.
    pub files: &'a [PathBuf],
    /// Where models come from.
    pub models: &'a Models,
}

impl<'a> ScoringInput<'a> {
    /// The input for `files`, with models from `models`.
    pub fn new(files: &'a [PathBuf], models: &'a Models) -> Self {
        Self { files, models }
    }
}

/// One scored image or video frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredFrame {
    /// The file it came from.
    pub source: String,
    /// 0-based index of the decoded frame (0 for an image).
    pub frame: u64,
    /// Presentation time in seconds (0 for an image).
    pub time: f64,
    /// Every component and the composite score.
    #[serde(flatten)]
    pub score: FrameScore,
}

/// The result of [`run`]: one row per image or sampled frame, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreReport {
    /// The rows.
    pub rows: Vec<ScoredFrame>,
    /// True when no model part (aesthetics, saliency) was computed.
    pub model_free: bool,
    /// What was left out and why, once each.
    pub notes: Vec<String>,
}

/// The loaded model side of a run.
struct ModelParts {
    model: Option<Arc<AnyModel>>,
    head: Option<Arc<AestheticHead>>,
    prompts: Option<Embeddings>,
}

impl ModelParts {
    fn load(models: &Models, config: &ScoringConfig) -> Result<Self, Error> {
        let model = models.resolve(&config.model, crate::pipelines::highlights::DEFAULT_MODEL)?;
        let (model, note) = (model.model, model.note);
        if model.is_none() && (config.aesthetic_head.is_some() || !config.prompts.is_empty()) {
            if let Some(n) = note {
                tracing::warn!("{n}");
            }
            let what = if config.prompts.is_empty() {
                "aesthetic_head"
            } else {
                "prompts"
            };
            return Err(Error::NeedsModel { what });
        }
        let head = match &config.aesthetic_head {
            Some(p) => Some(models.aesthetic_head(p)?),
            None => None,
        };
        let prompts = match (&model, config.prompts.is_empty()) {
            (Some(m), false) => {
                let text = m
                    .as_text_embedder()
                    .ok_or(Error::NeedsModel { what: "prompts" })?;
                let refs: Vec<&str> = config.prompts.iter().map(String::as_str).collect();
                Some(text.embed_texts(&refs).map_err(|source| Error::Model {
                    model: m.model_id().to_string(),
                    source,
                })?)
            }
            _ => None,
        };
        Ok(Self {
            model,
            head,
            prompts,
        })
    }
}

/// One normalisation set: rows waiting to be scored together.
#[derive(Default)]
struct Set {
    positions: Vec<usize>,
    meta: Vec<(String, u64, f64)>,
    measures: Vec<FrameMeasures>,
    images: Vec<image::RgbImage>,
    embeddings: Option<Embeddings>,
}

/// Scores image and video files (see the [module docs](self)).
pub fn run(
    input: &ScoringInput<'_>,
    config: &ScoringConfig,
    progress: &dyn Progress,
) -> Result<ScoreReport, Error> {
    if input.files.is_empty() {
        return Err(Error::NoInputs);
    }
    config.validate()?;
    let parts = ModelParts::load(input.models, config)?;
    let stage = StageGuard::start(progress, Stage::Score, None);
    let mut report = ScoreReport {
        rows: Vec::new(),
        model_free: true,
        notes: Vec::new(),
    };
    let mut keyed: Vec<(usize, usize, ScoredFrame)> = Vec::new();
    let mut stills = Set::default();
    for (pos, path) in input.files.iter().enumerate() {
        if is_image(path) {
            let rgb = image::open(path)
                .map_err(|error| Error::Image {
                    path: path.clone(),
                    error,
                })?
                .to_rgb8();
            let m =
                FrameMeasures::from_rgb(&rgb, &config.score.exposure).map_err(score_err(path))?;
            stills.measures.push(m);
            stills.meta.push((path.display().to_string(), 0, 0.0));
            stills.positions.push(pos);
            if let Some(model) = &parts.model {
                stills.images.push(rgb);
                if stills.images.len() == DEFAULT_BATCH {
                    embed_stills(model, &mut stills, path)?;
                }
            }
            stage.advance(1);
            continue;
        }
        let set = video_set(path, pos, config, &parts, &stage)?;
        finish_set(set, &parts, config, path, &mut report, &mut keyed)?;
    }
    if !stills.measures.is_empty() {
        let last = input.files.last().cloned().unwrap_or_default();
        if let Some(model) = &parts.model {
            embed_stills(model, &mut stills, &last)?;
        }
        finish_set(stills, &parts, config, &last, &mut report, &mut keyed)?;
    }
    keyed.sort_by_key(|(pos, k, _)| (*pos, *k));
    report.rows = keyed.into_iter().map(|(_, _, r)| r).collect();
    Ok(report)
}

fn score_err(path: &Path) -> impl Fn(reelsmith_score::ScoreError) -> Error + '_ {
    move |source| Error::Score {
        path: path.to_path_buf(),
        source,
    }
}

/// Embeds the pending still images of `set` (`path` names the set in errors).
fn embed_stills(model: &AnyModel, set: &mut Set, path: &Path) -> Result<(), Error> {
    if set.images.is_empty() {
        return Ok(());
    }
    let e = model.embed_images(&set.images).map_err(embed_error(path))?;
    crate::embed_loop::check_finite(&e, path, model.model_id())?;
    match &mut set.embeddings {
        Some(all) => all.extend(&e).map_err(|e| embed_error(path)(e.into()))?,
        None => set.embeddings = Some(e),
    }
    set.images.clear();
    Ok(())
}

/// Decodes the sampled frames of one video, measuring (and embedding) each.
fn video_set(
    path: &Path,
    pos: usize,
    config: &ScoringConfig,
    parts: &ModelParts,
    stage: &StageGuard<'_>,
) -> Result<Set, Error> {
    let video = decode::open(path)?;
    let opts = DecodeOptions::new().sampling(config.sampling());
    let name = path.display().to_string();
    let mut set = Set::default();
    let mut measure = |frame: &decode::Frame| -> Result<(), Error> {
        let m = FrameMeasures::from_rgb(&frame.image, &config.score.exposure)
            .map_err(score_err(path))?;
        set.measures.push(m);
        set.meta.push((name.clone(), frame.index, frame.time));
        Ok(())
    };
    match &parts.model {
        Some(model) => {
            let sampled = embed_frames(
                &video,
                &opts,
                model.as_ref(),
                DEFAULT_BATCH,
                stage,
                &mut measure,
            )?;
            set.embeddings = Some(sampled.embeddings);
        }
        None => {
            for frame in video.frames(&opts)? {
                measure(&frame?)?;
                stage.advance(1);
            }
        }
    }
    if set.measures.is_empty() {
        return Err(Error::NoFrames {
            path: path.to_path_buf(),
            sampling: format!("{:?}", opts.sampling),
        });
    }
    set.positions = vec![pos; set.measures.len()];
    Ok(set)
}

/// Scores one set and files its rows under their input positions.
fn finish_set(
    set: Set,
    parts: &ModelParts,
    config: &ScoringConfig,
    path: &Path,
    report: &mut ScoreReport,
    keyed: &mut Vec<(usize, usize, ScoredFrame)>,
) -> Result<(), Error> {
    let inputs = match (&parts.model, &set.embeddings) {
        (Some(m), Some(e)) => Some(ModelInputs {
            image_embeddings: e,
            model_id: Some(m.model_id()),
            head: parts.head.as_deref(),
            prompts: parts.prompts.as_ref(),
        }),
        _ => None,
    };
    let scored =
        score_frames(&set.measures, inputs.as_ref(), &config.score).map_err(score_err(path))?;
    report.model_free &= scored.model_free;
    for n in scored.notes {
        if !report.notes.contains(&n) {
            report.notes.push(n);
        }
    }
    for (k, ((pos, (source, frame, time)), score)) in set
        .positions
        .into_iter()
        .zip(set.meta)
        .zip(scored.rows)
        .enumerate()
    {
        keyed.push((
            pos,
            k,
            ScoredFrame {
                source,
                frame,
                time,
                score,
            },
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    #[test]
    fn model_requests_are_clear_errors() {
        let models = Models::new();
        let inputs = vec![PathBuf::from("a.png")];
        let input = ScoringInput::new(&inputs, &models);
        let opts = ScoringConfig {
            model: ModelChoice::Dir(PathBuf::from("/nonexistent/clip")),
            ..Default::default()
        };
        let e = run(&input, &opts, &NoProgress).unwrap_err();
        assert!(matches!(e, Error::Model { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/clip"), "{e}");
        let opts = ScoringConfig {
            prompts: vec!["a cat".into()],
            ..Default::default()
        };
        assert!(matches!(
            run(&input, &opts, &NoProgress),
            Err(Error::NeedsModel { what: "prompts" })
        ));
        assert!(matches!(
            run(
                &ScoringInput::new(&[], &models),
                &ScoringConfig::default(),
                &NoProgress
            ),
            Err(Error::NoInputs)
        ));
        let mut robust_backwards = ScoringConfig::default();
        robust_backwards.score.sharpness_norm = reelsmith_score::SharpnessNorm::Percentile {
            low: 95.0,
            high: 5.0,
            log: true,
        };
        assert_eq!(
            run(&input, &robust_backwards, &NoProgress)
                .unwrap_err()
                .setting(),
            Some("score")
        );
    }

    #[test]
    fn images_form_one_set_and_keep_input_order() {
        let dir = std::env::temp_dir().join(format!("reelsmith-score-pipe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sharp = image::RgbImage::from_fn(48, 32, |x, y| {
            image::Rgb([if (x / 2 + y / 2) % 2 == 0 { 60 } else { 190 }; 3])
        });
        let soft = image::imageops::blur(&sharp, 2.0);
        let (a, b) = (dir.join("sharp.png"), dir.join("soft.png"));
        sharp.save(&a).unwrap();
        soft.save(&b).unwrap();
        let files = [b.clone(), a.clone()];
        let models = Models::new();
        let report = run(
            &ScoringInput::new(&files, &models),
            &ScoringConfig::default(),
            &NoProgress,
        )
        .unwrap();
        assert!(report.model_free && !report.notes.is_empty());
        assert_eq!(report.rows.len(), 2);
        assert_eq!(report.rows[0].source, b.display().to_string());
        assert_eq!(report.rows[1].score.sharpness, 1.0);
        assert_eq!(report.rows[0].score.sharpness, 0.0);
        assert!(report.rows[1].score.score > report.rows[0].score.score);
        let json = serde_json::to_value(&report.rows[0]).unwrap();
        for k in [
            "source",
            "frame",
            "time",
            "sharpness_var",
            "sharpness",
            "exposure",
            "aesthetics_raw",
            "aesthetics",
            "saliency",
            "score",
        ] {
            assert!(json.get(k).is_some(), "missing {k}");
        }
        assert!(json["aesthetics"].is_null());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_clip_model_adds_saliency_to_every_row() {
        let fixture = reelsmith_test_support::tiny_clip();
        let dir = std::env::temp_dir().join(format!("reelsmith-score-clip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut inputs = Vec::new();
        for (n, level) in [40u8, 200].into_iter().enumerate() {
            let img = image::RgbImage::from_fn(40, 30, |x, y| {
                image::Rgb([level, (x * 6) as u8, (y * 8) as u8])
            });
            let p = dir.join(format!("img{n}.png"));
            img.save(&p).unwrap();
            inputs.push(p);
        }
        let opts = ScoringConfig {
            model: ModelChoice::Dir(fixture),
            prompts: vec!["a red square".into(), "a blue sky".into()],
            ..Default::default()
        };
        let models = Models::new();
        let report = run(&ScoringInput::new(&inputs, &models), &opts, &NoProgress).unwrap();
        assert!(!report.model_free);
        assert_eq!(report.rows.len(), 2);
        for r in &report.rows {
            let s = r
                .score
                .saliency
                .expect("saliency computed with a model and prompts");
            assert!((0.0..=1.0).contains(&s));
            assert!(r.score.aesthetics.is_none(), "no head was given");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
