//! Embeddings of images, sampled video frames and texts with a CLIP or DINOv2 model, as a
//! safetensors file (`images` n×d, `texts` m×d, `times` n, `source` n) or in memory.
//!
//! Videos are sampled at [`EmbedConfig::fps`] and embedded in batches as they decode; with
//! a cache folder, a video's rows are stored under a key of the file (path, length,
//! modification time), the model and the sampling, and read back instead of decoding.
//!
//! ```no_run
//! use reelsmith::models::{ModelChoice, Models};
//! use reelsmith::pipelines::embed::{self, EmbedConfig, EmbedInput};
//! use reelsmith::progress::NoProgress;
//!
//! let config = EmbedConfig { model: ModelChoice::Hub("clip-b32".into()), ..Default::default() };
//! let files = ["holiday.mp4".into()];
//! let texts = ["a dog on a beach".to_string()];
//! let input = EmbedInput { files: &files, texts: &texts, output: None, models: &Models::new() };
//! let report = embed::run(&input, &config, &NoProgress)?;
//! println!("{} rows of width {}", report.images.len(), report.dim);
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use reelsmith_core::{Embeddings, FrameRef};
use reelsmith_decode::{DecodeOptions, Sampling};
use reelsmith_embed::candle_core::{Device, Tensor};
use reelsmith_embed::{AnyModel, CacheKey, Embedder, EmbeddingCache};
use serde::{Deserialize, Serialize};

use crate::embed_loop::{embed_error, embed_frames};
use crate::error::num;
use crate::models::{ModelChoice, Models};
use crate::pipelines::score::is_image;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// Settings of the embed pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// The model (required: a hub id or a folder).
    pub model: ModelChoice,
    /// Frames per second sampled from videos (default 1).
    pub fps: f64,
    /// Images per forward pass (default 16).
    pub batch: usize,
    /// Reuse and store video embeddings in this folder.
    #[serde(serialize_with = "reelsmith_core::paths::lossy_option")]
    pub cache: Option<PathBuf>,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            model: ModelChoice::None,
            fps: 1.0,
            batch: 16,
            cache: None,
        }
    }
}

impl EmbedConfig {
    /// Checks every range; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if !self.model.is_some() || self.model == ModelChoice::Auto {
            return Err(Error::config(
                "model",
                "embedding needs a model: a hub id (such as clip-b32) or a local folder",
            ));
        }
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 1000.0) {
            return Err(Error::config(
                "fps",
                format!("{} is not in (0, 1000]", num(self.fps)),
            ));
        }
        if !(1..=4096).contains(&self.batch) {
            return Err(Error::config(
                "batch",
                format!("{} is not in 1..=4096", self.batch),
            ));
        }
        Ok(())
    }
}

/// The files, texts, output file and models of an embed run.
#[derive(Debug, Clone, Copy)]
pub struct EmbedInput<'a> {
    /// Images and videos (by extension, see [`is_image`]), embedded in this order.
    pub files: &'a [PathBuf],
    /// Texts for the model's text side (CLIP only).
    pub texts: &'a [String],
    /// The safetensors file to write, if any.
    pub output: Option<&'a Path>,
    /// Where models come from.
    pub models: &'a Models,
}

/// The embeddings of a run.
#[derive(Debug, Clone)]
pub struct EmbedReport {
    /// The model's id.
    pub model: String,
    /// Width of every row.
    pub dim: usize,
    /// One row per image and sampled frame, in input order.
    pub images: Embeddings,
    /// One row per text.
    pub texts: Embeddings,
    /// Per image row: the frame's time in seconds (0 for still images).
    pub times: Vec<f64>,
    /// Per image row: the index of the input file it comes from.
    pub sources: Vec<u32>,
    /// Per video input: (input index, frames, whether they came from the cache).
    pub videos: Vec<(usize, usize, bool)>,
}

/// Embeds the inputs (see the [module docs](self)) and writes the safetensors file when an
/// output is given.
pub fn run(
    input: &EmbedInput<'_>,
    config: &EmbedConfig,
    progress: &dyn Progress,
) -> Result<EmbedReport, Error> {
    if input.files.is_empty() && input.texts.is_empty() {
        return Err(Error::NoInputs);
    }
    config.validate()?;
    if let Some(out) = input.output {
        crate::output::check_output_file(out, input.files)?;
    }
    let model = input
        .models
        .resolve(&config.model, "")?
        .model
        .ok_or_else(|| Error::config("model", "no model was loaded"))?;
    let text_side = model.as_text_embedder();
    if !input.texts.is_empty() && text_side.is_none() {
        return Err(Error::NeedsModel { what: "texts" });
    }
    let dim = model.dim();
    let mut report = EmbedReport {
        model: model.model_id().to_string(),
        dim,
        images: Embeddings::empty(dim).map_err(|e| core_err(e, input.files))?,
        texts: Embeddings::empty(dim).map_err(|e| core_err(e, input.files))?,
        times: Vec::new(),
        sources: Vec::new(),
        videos: Vec::new(),
    };
    let cache = config.cache.as_ref().map(EmbeddingCache::new);
    let mut stills: Vec<(usize, image::RgbImage)> = Vec::new();
    for (i, path) in input.files.iter().enumerate() {
        if is_image(path) {
            let img = image::open(path)
                .map_err(|error| Error::Image {
                    path: path.clone(),
                    error,
                })?
                .to_rgb8();
            stills.push((i, img));
            if stills.len() == config.batch {
                embed_stills(&model, &mut stills, &mut report, path)?;
            }
            continue;
        }
        if let Some(last) = stills.last().map(|s| s.0) {
            embed_stills(&model, &mut stills, &mut report, &input.files[last])?;
        }
        let (frames, rows, cached) = embed_video(path, &model, config, cache.as_ref(), progress)?;
        report
            .images
            .extend(&rows)
            .map_err(|e| embed_error(path)(e.into()))?;
        report.times.extend(frames.iter().map(|f| f.time));
        report
            .sources
            .extend(std::iter::repeat_n(i as u32, frames.len()));
        report.videos.push((i, frames.len(), cached));
    }
    if let Some(last) = stills.last().map(|s| s.0) {
        embed_stills(&model, &mut stills, &mut report, &input.files[last])?;
    }
    if let Some(t) = text_side.filter(|_| !input.texts.is_empty()) {
        let refs: Vec<&str> = input.texts.iter().map(String::as_str).collect();
        report.texts = t.embed_texts(&refs).map_err(|source| Error::Model {
            model: report.model.clone(),
            source,
        })?;
    }
    if let Some(out) = input.output {
        write_safetensors(out, &report)?;
    }
    Ok(report)
}

fn core_err(e: reelsmith_core::CoreError, files: &[PathBuf]) -> Error {
    let path = files.first().cloned().unwrap_or_default();
    Error::Embed {
        path,
        source: e.into(),
    }
}

/// Embeds the pending still images into the report.
fn embed_stills(
    model: &AnyModel,
    stills: &mut Vec<(usize, image::RgbImage)>,
    report: &mut EmbedReport,
    path: &Path,
) -> Result<(), Error> {
    let images: Vec<image::RgbImage> = stills.iter().map(|(_, i)| i.clone()).collect();
    let rows = model.embed_images(&images).map_err(embed_error(path))?;
    crate::embed_loop::check_finite(&rows, path, model.model_id())?;
    report
        .images
        .extend(&rows)
        .map_err(|e| embed_error(path)(e.into()))?;
    for (src, _) in stills.drain(..) {
        report.times.push(0.0);
        report.sources.push(src as u32);
    }
    Ok(())
}

/// One video's frames and rows, from the cache when it has them.
fn embed_video(
    path: &Path,
    model: &AnyModel,
    config: &EmbedConfig,
    cache: Option<&EmbeddingCache>,
    progress: &dyn Progress,
) -> Result<(Vec<FrameRef>, Embeddings, bool), Error> {
    let err = embed_error(path);
    let opts = DecodeOptions::new().sampling(Sampling::Fps(config.fps));
    let key = match cache {
        Some(_) => Some(
            CacheKey::for_file(
                path,
                model.model_id(),
                format!("{:?}", opts.sampling),
                format!("{:?}", opts.scale),
            )
            .map_err(&err)?,
        ),
        None => None,
    };
    if let (Some(c), Some(k)) = (cache, &key) {
        if let Some(hit) = c.get(k).map_err(&err)? {
            if hit.frames.len() == hit.embeddings.len() && hit.embeddings.dim() == model.dim() {
                return Ok((hit.frames, hit.embeddings, true));
            }
        }
    }
    let video = reelsmith_decode::open(path)?;
    let expected = (video.info().duration * config.fps).ceil() as u64;
    let stage = StageGuard::start(progress, Stage::Embed, Some(expected));
    let sampled = embed_frames(&video, &opts, model, config.batch, &stage, |_| Ok(()))?;
    if let (Some(c), Some(k)) = (cache, &key) {
        c.put(k, &sampled.embeddings, &sampled.frames)
            .map_err(&err)?;
    }
    Ok((sampled.frames, sampled.embeddings, false))
}

/// Writes `images`, `texts`, `times` and `source` as one safetensors file, atomically.
fn write_safetensors(path: &Path, r: &EmbedReport) -> Result<(), Error> {
    let werr = |e: reelsmith_embed::candle_core::Error| crate::output::write_err(path, e);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let (n, m, dim) = (r.images.len(), r.texts.len(), r.dim);
    tensors.insert(
        "images".into(),
        Tensor::from_vec(r.images.as_slice().to_vec(), (n, dim), &Device::Cpu).map_err(werr)?,
    );
    tensors.insert(
        "texts".into(),
        Tensor::from_vec(r.texts.as_slice().to_vec(), (m, dim), &Device::Cpu).map_err(werr)?,
    );
    tensors.insert(
        "times".into(),
        Tensor::from_vec(r.times.clone(), n, &Device::Cpu).map_err(werr)?,
    );
    tensors.insert(
        "source".into(),
        Tensor::from_vec(r.sources.clone(), n, &Device::Cpu).map_err(werr)?,
    );
    crate::output::write_with(path, |tmp| {
        reelsmith_embed::candle_core::safetensors::save(&tensors, tmp)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
}
