//! Frame scoring of image and video files: decode (sampled) frames, measure sharpness and
//! exposure on each, and combine them with [`reelsmith_score::score_frames`].
//!
//! Each video is one normalisation set (sharpness is normalised across its sampled
//! frames); all still images given together form one more set.
//!
//! With [`ScoreOptions::model`] set, every scored frame is also embedded with that CLIP
//! model (in batches, as the frames stream by): the aesthetic head
//! ([`ScoreOptions::aesthetic_head`]) scores the embeddings and the prompts give saliency.
//! Without a model the score rests on sharpness and exposure, and the report says so
//! ([`ScoreReport::model_free`], [`ScoreReport::notes`]).

use std::path::{Path, PathBuf};

use reelsmith_core::Embeddings;
use reelsmith_decode::{self as decode, DecodeOptions, Sampling};
use reelsmith_embed::{
    load_dir, load_pretrained, AnyModel, DeviceChoice, EmbedError, Embedder, HubOptions,
};
use reelsmith_score::{
    score_frames, AestheticHead, FrameMeasures, FrameScore, ModelInputs, ScoreConfig, ScoreError,
};
use serde::{Deserialize, Serialize};

/// File extensions read as still images (everything else is opened as a video).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// Which CLIP model to embed frames with.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A Hugging Face model id, such as `openai/clip-vit-large-patch14`.
    Id(String),
    /// A local folder in the Hugging Face layout.
    Dir(PathBuf),
}

/// Options of [`score`].
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    /// Which frames of a video to score (default: 1 per second).
    pub sampling: Sampling,
    /// Weights, normalisation and mappings.
    pub config: ScoreConfig,
    /// CLIP model for aesthetics and saliency; `None` scores without a model.
    pub model: Option<ModelSource>,
    /// LAION aesthetic head (`.pth` or `.safetensors`); needs `model`.
    pub aesthetic_head: Option<PathBuf>,
    /// Text prompts for saliency; need `model`.
    pub prompts: Vec<String>,
    /// Where the model runs (default: the CPU).
    pub device: DeviceChoice,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            sampling: Sampling::Fps(1.0),
            config: ScoreConfig::default(),
            model: None,
            aesthetic_head: None,
            prompts: Vec::new(),
            device: DeviceChoice::Cpu,
        }
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

/// The result of [`score`]: one row per image or sampled frame, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreReport {
    /// The rows.
    pub rows: Vec<ScoredFrame>,
    /// True when no model part (aesthetics, saliency) was computed.
    pub model_free: bool,
    /// What was left out and why, once each.
    pub notes: Vec<String>,
}

/// Errors of [`score`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScorePipelineError {
    /// No input files.
    #[error("no input files: give at least one image or video")]
    NoInputs,
    /// Loading or running the CLIP model failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// `--aesthetic-head` or prompts without a model.
    #[error("{0} needs a CLIP model (--model ID or --model-dir DIR)")]
    NeedsModel(&'static str),
    /// A video that yielded no frames with the chosen sampling.
    #[error("{} gave no frames to score with sampling {sampling}", path.display())]
    NoFrames {
        /// The video.
        path: PathBuf,
        /// The sampling used.
        sampling: String,
    },
    /// An image file that could not be read.
    #[error("cannot read image {}: {error}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's error (in the message, so not also a `source`).
        error: image::ImageError,
    },
    /// Decoding a video failed.
    #[error(transparent)]
    Decode(#[from] decode::DecodeError),
    /// Scoring failed.
    #[error(transparent)]
    Score(#[from] ScoreError),
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Scores image and video files. `on_frame` is called after each measured frame (for
/// progress reporting).
pub fn score(
    inputs: &[PathBuf],
    opts: &ScoreOptions,
    mut on_frame: impl FnMut(),
) -> Result<ScoreReport, ScorePipelineError> {
    if inputs.is_empty() {
        return Err(ScorePipelineError::NoInputs);
    }
    if opts.model.is_none() {
        if opts.aesthetic_head.is_some() {
            return Err(ScorePipelineError::NeedsModel("--aesthetic-head"));
        }
        if !opts.prompts.is_empty() {
            return Err(ScorePipelineError::NeedsModel("--prompt"));
        }
    }
    let model: Option<AnyModel> = match &opts.model {
        Some(ModelSource::Dir(d)) => Some(load_dir(d, opts.device)?),
        Some(ModelSource::Id(id)) => {
            Some(load_pretrained(id, &HubOptions::default(), opts.device)?)
        }
        None => None,
    };
    let head = opts
        .aesthetic_head
        .as_ref()
        .map(AestheticHead::load)
        .transpose()?;
    let prompts = match (&model, opts.prompts.is_empty()) {
        (Some(m), false) => {
            let t = m.as_text_embedder().ok_or_else(|| {
                EmbedError::InvalidInput(format!(
                    "{} has no text tower: --prompt needs a CLIP model",
                    m.model_id()
                ))
            })?;
            let refs: Vec<&str> = opts.prompts.iter().map(String::as_str).collect();
            Some(t.embed_texts(&refs)?)
        }
        _ => None,
    };
    // Embeds a batch of frames into `into` when a model is loaded.
    let embed_batch = |batch: &mut Vec<image::RgbImage>,
                       into: &mut Option<Embeddings>|
     -> Result<(), ScorePipelineError> {
        if let (Some(m), false) = (&model, batch.is_empty()) {
            let e = m.embed_images(batch)?;
            match into {
                Some(all) => all.extend(&e).map_err(EmbedError::from)?,
                None => *into = Some(e),
            }
        }
        batch.clear();
        Ok(())
    };
    let exposure = &opts.config.exposure;
    // (input position, set rows) so the output keeps the input order.
    let mut sets: Vec<(Vec<usize>, Vec<ScoredFrame>)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut model_free = true;
    let mut push_set = |positions: Vec<usize>,
                        meta: Vec<(String, u64, f64)>,
                        measures: Vec<FrameMeasures>,
                        embeddings: Option<Embeddings>|
     -> Result<(), ScorePipelineError> {
        let inputs = match (&model, &embeddings) {
            (Some(m), Some(e)) => Some(ModelInputs {
                image_embeddings: e,
                model_id: Some(m.model_id()),
                head: head.as_ref(),
                prompts: prompts.as_ref(),
            }),
            _ => None,
        };
        let set = score_frames(&measures, inputs.as_ref(), &opts.config)?;
        model_free &= set.model_free;
        for n in set.notes {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        let rows = meta
            .into_iter()
            .zip(set.rows)
            .map(|((source, frame, time), score)| ScoredFrame {
                source,
                frame,
                time,
                score,
            })
            .collect();
        sets.push((positions, rows));
        Ok(())
    };

    let (mut img_pos, mut img_meta, mut img_measures) = (Vec::new(), Vec::new(), Vec::new());
    let (mut img_batch, mut img_emb) = (Vec::new(), None);
    for (pos, path) in inputs.iter().enumerate() {
        if is_image(path) {
            let rgb = image::open(path)
                .map_err(|error| ScorePipelineError::Image {
                    path: path.clone(),
                    error,
                })?
                .to_rgb8();
            img_measures.push(FrameMeasures::from_rgb(&rgb, exposure)?);
            img_batch.push(rgb);
            embed_batch(&mut img_batch, &mut img_emb)?;
            img_meta.push((path.display().to_string(), 0, 0.0));
            img_pos.push(pos);
            on_frame();
            continue;
        }
        let video = decode::open(path)?;
        let frames = video.frames(&DecodeOptions::new().sampling(opts.sampling))?;
        let (mut meta, mut measures) = (Vec::new(), Vec::new());
        let (mut batch, mut emb) = (Vec::new(), None);
        for frame in frames {
            let frame = frame?;
            measures.push(FrameMeasures::from_rgb(&frame.image, exposure)?);
            meta.push((path.display().to_string(), frame.index, frame.time));
            batch.push(frame.image);
            if batch.len() == 16 {
                embed_batch(&mut batch, &mut emb)?;
            }
            on_frame();
        }
        embed_batch(&mut batch, &mut emb)?;
        if measures.is_empty() {
            return Err(ScorePipelineError::NoFrames {
                path: path.clone(),
                sampling: format!("{:?}", opts.sampling),
            });
        }
        push_set(vec![pos; meta.len()], meta, measures, emb)?;
    }
    if !img_measures.is_empty() {
        push_set(img_pos, img_meta, img_measures, img_emb)?;
    }
    let mut keyed: Vec<(usize, usize, ScoredFrame)> = Vec::new();
    for (positions, rows) in sets {
        for (k, (pos, row)) in positions.into_iter().zip(rows).enumerate() {
            keyed.push((pos, k, row));
        }
    }
    keyed.sort_by_key(|(pos, k, _)| (*pos, *k));
    Ok(ScoreReport {
        rows: keyed.into_iter().map(|(_, _, r)| r).collect(),
        model_free,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_requests_are_clear_errors() {
        let inputs = vec![PathBuf::from("a.png")];
        let opts = ScoreOptions {
            model: Some(ModelSource::Dir(PathBuf::from("/nonexistent/clip"))),
            ..Default::default()
        };
        let e = score(&inputs, &opts, || {}).unwrap_err();
        assert!(matches!(e, ScorePipelineError::Embed(_)), "{e}");
        assert!(e.to_string().contains("/nonexistent/clip"), "{e}");
        let opts = ScoreOptions {
            prompts: vec!["a cat".into()],
            ..Default::default()
        };
        assert!(matches!(
            score(&inputs, &opts, || {}),
            Err(ScorePipelineError::NeedsModel("--prompt"))
        ));
        assert!(matches!(
            score(&[], &ScoreOptions::default(), || {}),
            Err(ScorePipelineError::NoInputs)
        ));
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
        let report = score(&[b.clone(), a.clone()], &ScoreOptions::default(), || {}).unwrap();
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
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../embed/tests/fixtures/clip-quickgelu");
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
        let opts = ScoreOptions {
            model: Some(ModelSource::Dir(fixture)),
            prompts: vec!["a red square".into(), "a blue sky".into()],
            ..Default::default()
        };
        let report = score(&inputs, &opts, || {}).unwrap();
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
