//! The best-shot highlights pipeline.
//!
//! sample frames (default 3 fps, at most 720 px high) → score every frame (sharpness,
//! exposure, and with a CLIP model aesthetics and prompt saliency) → smooth over 2.5 s →
//! peaks at least 5 s apart → best first → a clip around each peak (1 s before, 2 s after,
//! 3–7 s long, inside the video) → greedy diversity filter on the peak frames' embeddings
//! (cosine distance > 0.12) → top K (5) → export.
//!
//! The video is decoded once for scoring; memory holds per-frame numbers and embeddings,
//! never the frames themselves. The clip export hands back the peak frames for the contact
//! sheet, so nothing is decoded twice.
//!
//! ```no_run
//! use reelsmith::models::Models;
//! use reelsmith::pipelines::highlights::{self, HighlightsConfig, HighlightsInput};
//! use reelsmith::progress::NoProgress;
//!
//! let models = Models::new();
//! let config = HighlightsConfig { top_k: 3, ..HighlightsConfig::default() };
//! let input = HighlightsInput::new("match.mp4", "out/", &models);
//! let report = highlights::run(&input, &config, &NoProgress)?;
//! for clip in &report.clips {
//!     println!("{} at {:.1}s, score {:.2}", clip.filename, clip.start_time, clip.score);
//! }
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::Path;
use std::sync::Arc;

use reelsmith_core::{Embeddings, FrameRef};
use reelsmith_decode::{
    self as decode, ClipJob, ClipOptions, DecodeOptions, Sampling, Scale, Video,
};
use reelsmith_embed::{AnyModel, Embedder, PixelEmbedder};
use reelsmith_score::{AestheticHead, FrameMeasures, ModelInputs, ScoreSet};
use reelsmith_segment::{diversity::diverse, peaks};

use crate::embed_loop::{embed_error, embed_frames, DEFAULT_BATCH};
use crate::models::{ModelChoice, Models};
use crate::output::OutputDir;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

pub mod head;
mod report;
mod types;

pub use types::{
    clip_window, Components, HighlightClip, HighlightsConfig, HighlightsReport, TimelineRow,
    DEFAULT_MODEL,
};

/// What the pipeline works on: the video, the output folder, and the models to use.
#[derive(Debug, Clone, Copy)]
pub struct HighlightsInput<'a> {
    /// The video file.
    pub video: &'a Path,
    /// The output folder (created when missing).
    pub output: &'a Path,
    /// Where models come from (loaded once, shared across runs).
    pub models: &'a Models,
    /// Replace a folder that holds files this pipeline did not write (default false: such a
    /// folder is refused). A folder of an earlier run of the same pipeline is always
    /// reused, its stale files removed.
    pub overwrite: bool,
}

impl<'a> HighlightsInput<'a> {
    /// The input for `video`, writing into `output`, with models from `models`.
    pub fn new(
        video: &'a (impl AsRef<Path> + ?Sized),
        output: &'a (impl AsRef<Path> + ?Sized),
        models: &'a Models,
    ) -> Self {
        Self {
            video: video.as_ref(),
            output: output.as_ref(),
            models,
            overwrite: false,
        }
    }

    /// Sets [`HighlightsInput::overwrite`].
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// Runs the whole pipeline and writes everything into the output folder: the clips,
/// `highlights.json`, `timeline.csv`, `similarity.csv`, `scores.png` and
/// `contact_sheet.jpg`.
pub fn run(
    input: &HighlightsInput<'_>,
    config: &HighlightsConfig,
    progress: &dyn Progress,
) -> Result<HighlightsReport, Error> {
    config.validate()?;
    // The output folder is checked before the analysis, so a refused folder fails at once.
    let out = OutputDir::begin(input.output, "highlights", input.overwrite)?.inputs(
        &[Some(input.video), config.aesthetic_head.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
    )?;
    let t = std::time::Instant::now();
    let mut report = analyse(input, config, progress)?;
    tracing::info!("analysis took {:.2} s", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let video = decode::open(input.video)?;
    let mut peak_frames = vec![None; report.clips.len()];
    if config.export_clips {
        peak_frames = export(&video, &mut report, config, &out, progress)?;
        tracing::info!("clip export took {:.2} s", t.elapsed().as_secs_f64());
    }
    let t = std::time::Instant::now();
    report::write_all(&video, &report, peak_frames, &out)?;
    out.commit("highlights.json", &report)?;
    tracing::info!("reports took {:.2} s", t.elapsed().as_secs_f64());
    Ok(report)
}

/// Scores the video and picks the highlights without writing anything.
pub fn analyse(
    input: &HighlightsInput<'_>,
    config: &HighlightsConfig,
    progress: &dyn Progress,
) -> Result<HighlightsReport, Error> {
    config.validate()?;
    let video = decode::open(input.video)?;
    let info = video.info().clone();
    if info.duration > 0.0 && info.duration < config.min_duration {
        return Err(Error::TooShort {
            path: info.path.clone(),
            duration: info.duration,
            min: config.min_duration,
        });
    }
    let model = ModelParts::load(input.models, config)?;
    let measured = measure(&video, config, model.model.as_deref(), progress)?;
    let mut notes: Vec<String> = model.note.iter().cloned().collect();
    let set = score(&measured, config, &model, &info.path, &mut notes)?;

    // Smooth, peaks, candidates best first.
    let scores: Vec<f32> = set.rows.iter().map(|r| r.score as f32).collect();
    let to_frames = |secs: f64| ((secs * config.fps).round() as usize).max(1);
    let smoothed = peaks::smooth(&scores, to_frames(config.smooth_seconds));
    let mut candidates: Vec<usize> =
        peaks::find_peaks(&smoothed, to_frames(config.min_separation_seconds))
            .into_iter()
            .filter(|&i| f64::from(smoothed[i]) >= config.min_score)
            .collect();
    candidates.sort_by(|&a, &b| smoothed[b].total_cmp(&smoothed[a]).then(a.cmp(&b)));
    if candidates.is_empty() {
        let best = smoothed.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        return Err(Error::NoPeak {
            path: info.path.clone(),
            hint: format!(
                "the best smoothed score is {best:.3} and the minimum score (min_score) is {:.3}; \
                 lower min_score or the separation between peaks (min_separation_seconds)",
                config.min_score
            ),
        });
    }
    // Diversity on the peak frames' embeddings. Pixel embeddings are non-negative, so
    // their cosine distances crowd near 0; centring them on the video's mean row makes
    // distances comparable to CLIP's, where the default threshold comes from.
    let embeddings = if model.model.is_none() {
        crate::embed_loop::centre(&measured.embeddings)
    } else {
        measured.embeddings
    };
    let kept = pick_diverse(&embeddings, &candidates, &smoothed, config, &mut notes);
    let similarity: Vec<Vec<f32>> = candidates
        .iter()
        .map(|&a| {
            candidates
                .iter()
                .map(|&b| embeddings.cosine_distance(a, b))
                .collect()
        })
        .collect();
    let duration = if info.duration > 0.0 {
        info.duration
    } else {
        measured
            .frames
            .last()
            .map(|r| r.time + 1.0 / config.fps)
            .unwrap_or(0.0)
    };
    let clips = kept
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let peak = measured.frames[i];
            let (start, end) = clip_window(peak.time, duration, config);
            let r = &set.rows[i];
            HighlightClip {
                filename: format!("clip_{:03}.mp4", n + 1),
                source_video: info.path.clone(),
                start_time: start,
                duration: end - start,
                peak_frame: peak.index,
                peak_time: peak.time,
                score: f64::from(smoothed[i]),
                components: Components {
                    aesthetics: r.aesthetics,
                    sharpness: r.sharpness,
                    exposure: r.exposure,
                    saliency: r.saliency,
                },
            }
        })
        .collect();
    let timeline = set
        .rows
        .iter()
        .zip(&measured.frames)
        .zip(&smoothed)
        .map(|((r, f), &s)| TimelineRow {
            frame: f.index,
            time: f.time,
            score: *r,
            smoothed: f64::from(s),
        })
        .collect();
    Ok(HighlightsReport {
        source_video: info.path.clone(),
        duration,
        clips,
        parameters: config.clone(),
        embedder: measured.embedder,
        model_free: set.model_free,
        notes,
        timeline,
        candidates,
        similarity,
    })
}

/// The model side of a run: the embedding model (when any), its aesthetic head, and why no
/// model is used when `Auto` found none.
struct ModelParts {
    model: Option<Arc<AnyModel>>,
    head: Option<Arc<AestheticHead>>,
    note: Option<String>,
}

impl ModelParts {
    fn load(models: &Models, config: &HighlightsConfig) -> Result<Self, Error> {
        let resolved = models.resolve(&config.model, DEFAULT_MODEL)?;
        let mut note = resolved.note;
        let head = match (&config.aesthetic_head, resolved.model.as_deref()) {
            (Some(_), None) => {
                return Err(Error::NeedsModel {
                    what: "aesthetic_head",
                })
            }
            (Some(p), Some(_)) => Some(models.aesthetic_head(p)?),
            (None, Some(AnyModel::Clip(clip))) if config.aesthetic_auto => {
                let model_dir = match &config.model {
                    crate::models::ModelChoice::Dir(d) => Some(d.as_path()),
                    _ => None,
                };
                let dirs = head::search_dirs(model_dir);
                match head::find_head(clip.config(), &dirs) {
                    Some(p) => Some(models.aesthetic_head(&p)?),
                    None => {
                        let file = head::head_file(clip.config()).unwrap_or("aesthetic_head.pth");
                        let looked: Vec<String> =
                            dirs.iter().map(|d| d.display().to_string()).collect();
                        note = Some(format!(
                            "no aesthetic head for {}: aesthetics are not computed; put LAION's \
                             {file} into one of {} or set aesthetic_head",
                            clip.model_id(),
                            looked.join(", ")
                        ));
                        None
                    }
                }
            }
            _ => None,
        };
        Ok(Self {
            model: resolved.model,
            head,
            note,
        })
    }
}

/// Per sampled frame: its measures, its reference and its embedding row.
struct Measured {
    measures: Vec<FrameMeasures>,
    frames: Vec<FrameRef>,
    embeddings: Embeddings,
    /// The embedder's id.
    embedder: String,
}

/// Decodes the sampled frames once, measuring and embedding each.
fn measure(
    video: &Video,
    config: &HighlightsConfig,
    model: Option<&AnyModel>,
    progress: &dyn Progress,
) -> Result<Measured, Error> {
    let path = video.info().path.clone();
    let embed_err = embed_error(&path);
    let score_err = |source| Error::Score {
        path: path.clone(),
        source,
    };
    let opts = DecodeOptions::new()
        .sampling(Sampling::Fps(config.fps))
        .scale(Scale::MaxHeight(config.height));
    let expected = (video.info().duration * config.fps).ceil() as u64;
    let exposure = &config.score.exposure;
    let measured = if let Some(model) = model {
        // The model keeps the cores busy: decode sequentially, embed in batches.
        let stage = StageGuard::start(progress, Stage::Embed, Some(expected));
        let mut measures = Vec::new();
        let sampled = embed_frames(video, &opts, model, DEFAULT_BATCH, &stage, |frame| {
            measures.push(FrameMeasures::from_rgb(&frame.image, exposure).map_err(score_err)?);
            Ok(())
        })?;
        Measured {
            measures,
            frames: sampled.frames,
            embeddings: sampled.embeddings,
            embedder: model.model_id().to_string(),
        }
    } else {
        // Model-free: measures and pixel embeddings are cheap, so frames are decoded in
        // keyframe-aligned chunks on all cores and measured where they decode.
        let stage = StageGuard::start(progress, Stage::Score, Some(expected));
        let pixel = PixelEmbedder::new(16, 9).map_err(&embed_err)?;
        let dim = pixel.dim();
        let rows = video.map_frames(
            &opts,
            0,
            |frame| {
                let m = FrameMeasures::from_rgb(&frame.image, exposure).map_err(score_err)?;
                let mut row = vec![0.0; dim];
                pixel
                    .embed_into(&frame.image, &mut row)
                    .map_err(&embed_err)?;
                Ok::<_, Error>((m, row))
            },
            |_| stage.advance(1),
        )?;
        let mut measures = Vec::with_capacity(rows.len());
        let mut frames = Vec::with_capacity(rows.len());
        let mut data = Vec::with_capacity(rows.len() * dim);
        for r in rows {
            frames.push(FrameRef {
                index: r.index,
                time: r.time,
            });
            measures.push(r.value.0);
            data.extend_from_slice(&r.value.1);
        }
        Measured {
            measures,
            frames,
            embeddings: Embeddings::new(data, dim).map_err(|e| embed_err(e.into()))?,
            embedder: pixel.model_id().to_string(),
        }
    };
    if measured.measures.is_empty() {
        return Err(Error::NoFrames {
            path: path.clone(),
            sampling: format!("{:?}", opts.sampling),
        });
    }
    Ok(measured)
}

/// Combines the measures (and the model's embeddings, head and prompts) into scores.
fn score(
    measured: &Measured,
    config: &HighlightsConfig,
    model: &ModelParts,
    path: &Path,
    notes: &mut Vec<String>,
) -> Result<ScoreSet, Error> {
    let embed_err = embed_error(path);
    let text = model.model.as_deref().and_then(AnyModel::as_text_embedder);
    let prompts = match (text, config.prompts.is_empty()) {
        (Some(t), false) => {
            let refs: Vec<&str> = config.prompts.iter().map(String::as_str).collect();
            Some(t.embed_texts(&refs).map_err(&embed_err)?)
        }
        _ => None,
    };
    if !config.prompts.is_empty() && prompts.is_none() {
        notes.push(
            "prompts given but the model has no text side: saliency is not computed (choose a \
             CLIP model)"
                .into(),
        );
    }
    let model_inputs = model.model.as_deref().map(|m| ModelInputs {
        image_embeddings: &measured.embeddings,
        model_id: Some(m.model_id()),
        head: model.head.as_deref(),
        prompts: prompts.as_ref(),
    });
    let set =
        reelsmith_score::score_frames(&measured.measures, model_inputs.as_ref(), &config.score)
            .map_err(|source| Error::Score {
                path: path.to_path_buf(),
                source,
            })?;
    // With a note of our own on the missing model, the scorer's generic one would repeat
    // it; a run asked to go without a model needs no note on it.
    let skip = usize::from(
        model_inputs.is_none() && (model.note.is_some() || config.model == ModelChoice::None),
    );
    notes.extend(set.notes.iter().skip(skip).cloned());
    Ok(set)
}

/// The candidates kept by the diversity filter, best first, with notes on what was left.
fn pick_diverse(
    embeddings: &Embeddings,
    candidates: &[usize],
    smoothed: &[f32],
    config: &HighlightsConfig,
    notes: &mut Vec<String>,
) -> Vec<usize> {
    let cand_scores: Vec<f32> = candidates.iter().map(|&i| smoothed[i]).collect();
    let mut kept = diverse(
        embeddings,
        candidates,
        &cand_scores,
        config.diversity_threshold,
        config.top_k,
    );
    kept.sort_by(|&a, &b| smoothed[b].total_cmp(&smoothed[a]).then(a.cmp(&b)));
    if kept.len() < config.top_k.min(candidates.len()) {
        notes.push(format!(
            "{} of {} candidate peaks were too similar to a better one (cosine distance <= {}); \
             lower diversity_threshold to keep more",
            candidates.len() - kept.len(),
            candidates.len(),
            config.diversity_threshold
        ));
    }
    if kept.len() < config.top_k {
        notes.push(format!(
            "found {} highlights of the {} asked for; lower min_separation_seconds or min_score \
             for more",
            kept.len(),
            config.top_k
        ));
    }
    kept
}

/// Cuts the clips of `report` (adjusting stream-copied starts to their keyframe) and
/// returns each clip's peak frame as the cut decoded it.
fn export(
    video: &Video,
    report: &mut HighlightsReport,
    config: &HighlightsConfig,
    out: &OutputDir,
    progress: &dyn Progress,
) -> Result<Vec<Option<image::RgbImage>>, Error> {
    let stage = StageGuard::start(progress, Stage::Export, Some(report.clips.len() as u64));
    let opts = ClipOptions {
        mode: config.clip_mode,
        crf: config.crf,
        preset: config.preset,
        audio: config.audio,
        threads: 0,
    };
    let jobs = report
        .clips
        .iter()
        .map(|c| {
            // The peak frame comes back from the cut for the contact sheet.
            Ok(ClipJob::new(
                c.start_time,
                c.start_time + c.duration,
                out.path(&c.filename)?,
            )
            .with_stills([c.peak_time]))
        })
        .collect::<Result<Vec<ClipJob>, Error>>()?;
    let written = decode::export_clips(video, &jobs, &opts, |_, _| stage.advance(1))?;
    let mut peak_frames = vec![None; report.clips.len()];
    let mut warnings = Vec::new();
    for (n, (clip, r)) in report.clips.iter_mut().zip(written).enumerate() {
        warnings.extend(r.warnings.iter().map(|w| format!("{}: {w}", clip.filename)));
        if let Some(Some(f)) = r.stills.into_iter().next() {
            peak_frames[n] = Some(f.image);
        }
        if r.snapped_to_keyframe {
            clip.duration += clip.start_time - r.start;
            clip.start_time = r.start;
        }
    }
    report.notes.extend(warnings);
    Ok(peak_frames)
}
