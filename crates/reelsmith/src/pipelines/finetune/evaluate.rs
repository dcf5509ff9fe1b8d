//! [`eval`]: an FFGo adapter judged by entity retention on held-out composed frames.
//!
//! held-out examples (FFGo's JSON list — `image_path` and `text` are used, `file_path` only
//! names the example — or a folder of composed frames, each with its caption in a `.txt`
//! file of the same name) → per example: the entity memory of the composed frame (the
//! [`entities`](crate::pipelines::entities) pipeline: segmenter + DINOv2/CLIP embeddings)
//! → a video from the base model **and** one with the adapter merged, from the same
//! caption, seed and starting noise, the same transition frames dropped from both (the
//! [`generate`](crate::pipelines::generate) pipeline) → the retention of the memory's
//! entities in each video (the [`retention`](crate::pipelines::retention) pipeline) → side
//! by side:
//!
//! - `eval.csv`: per example the entity count, mean best similarity and fraction present
//!   without and with the adapter, and their differences; a last `mean` row;
//! - `eval.png`: the mean best similarity per example, without and with the adapter;
//! - `NNN_base.mp4`, `NNN_lora.mp4`, `NNN_entities.png` (the memory's overlay) and
//!   `NNN_retention_base.csv` / `NNN_retention_lora.csv` (per frame and entity);
//! - `eval.json` (the [`EvalReport`]), written last.
//!
//! Examples that cannot be used (a missing or unreadable image, an empty caption, a composed
//! frame where the segmenter finds no entity) are reported with their reasons and left out.
//! The base videos are all generated first, then the adapter's, so the transformer is
//! reloaded once. An adapter with an entity cross-attention is given the composed frame's
//! entities found and embedded as its training cache did (the segmenter and embedder the
//! adapter records, which may differ from [`EvalConfig::entities`], the retention
//! measurement's).

use std::path::{Path, PathBuf};

use reelsmith_diffusion::dataset::{PhraseMode, Skipped, REPLACED_FRAMES, TRANSITION_PHRASE};
use serde::{Deserialize, Serialize};

use crate::config::Size;
use crate::first_frame::read_image;
use crate::models::{ModelChoice, Models};
use crate::output::OutputDir;
use crate::pipelines::entities::{self, EntitiesConfig, EntitiesInput};
use crate::pipelines::generate::{self, DtypeChoice, GenerateConfig, GenerateInput};
use crate::pipelines::retention::{self, RetentionConfig, RetentionInput};
use crate::pipelines::score::is_image;
use crate::progress::Progress;
use crate::Error;

/// Settings of [`eval`]. Sampling defaults are FFGo's (81 frames, 50 steps, guidance 6,
/// shift 5, adapter merged at scale 1, the 4 transition frames dropped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// The base Wan model (the folder the adapter was trained on, or a hub id).
    pub base: ModelChoice,
    /// The low-noise expert's adapter of a two-expert model (the adapter given in the
    /// input goes on the high-noise expert).
    pub lora_2: Option<PathBuf>,
    /// Scale the adapter is merged at (default 1).
    pub lora_scale: f64,
    /// Frames dropped from the start of **both** videos (default 4: the transition frames
    /// the composed frame took in training), so that they are compared on the same frames.
    pub drop_frames: usize,
    /// Frames generated, `4k + 1` (default 81).
    pub frames: usize,
    /// Video size (default 832x480).
    pub size: Size,
    /// Denoising steps (default 50).
    pub steps: usize,
    /// Classifier-free guidance scale (default 6; 1 or less turns it off).
    pub guidance: f64,
    /// The scheduler's shift (default 5).
    pub shift: Option<f64>,
    /// Seed of the starting noise, the same for both videos of an example (default 42).
    pub seed: u64,
    /// Model precision (default auto).
    pub dtype: DtypeChoice,
    /// The transition phrase captions start with (prepended where missing, as in training).
    pub transition_phrase: String,
    /// What to do with a caption without the phrase (default: prepend it).
    pub phrase_mode: PhraseMode,
    /// Evaluate at most this many (usable) examples, in list order (default: all).
    pub max_examples: Option<usize>,
    /// How the entities of each composed frame are found and embedded (the segmenter's
    /// checkpoint is required; `frame` and `time` do not apply to images).
    pub entities: EntitiesConfig,
    /// How retention is measured in each video (default: the memory's segmenter and
    /// embedding model, 2 frames per second). Its `segment` settings are replaced by
    /// `entities.segment`, so that the video frames are cut as the composed frames were.
    pub retention: RetentionConfig,
}

impl Default for EvalConfig {
    fn default() -> Self {
        let g = GenerateConfig::default();
        Self {
            base: ModelChoice::None,
            lora_2: None,
            lora_scale: 1.0,
            drop_frames: REPLACED_FRAMES,
            frames: 81,
            size: Size::new(832, 480),
            steps: g.steps,
            guidance: g.guidance,
            shift: g.shift,
            seed: 42,
            dtype: DtypeChoice::Auto,
            transition_phrase: TRANSITION_PHRASE.into(),
            phrase_mode: PhraseMode::Prepend,
            max_examples: None,
            entities: EntitiesConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

impl EvalConfig {
    /// The generate settings of one video (`lora`: the adapter, or none for the base).
    fn generate_config(&self, caption: &str, lora: Option<&Path>) -> GenerateConfig {
        GenerateConfig {
            model: self.base.clone(),
            prompt: caption.to_string(),
            frames: self.frames,
            size: self.size,
            steps: self.steps,
            guidance: self.guidance,
            shift: self.shift,
            seed: self.seed,
            dtype: self.dtype,
            drop_first: self.drop_frames,
            lora: lora.map(Path::to_path_buf),
            lora_2: lora.and(self.lora_2.clone()),
            lora_scale: self.lora_scale,
            lora_drop_frames: self.drop_frames,
            ..GenerateConfig::default()
        }
    }

    /// Checks every setting; the error names the one at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if !matches!(self.base, ModelChoice::Dir(_) | ModelChoice::Hub(_)) {
            return Err(Error::config(
                "base",
                "give the base Wan model the adapter was trained on (a folder in the diffusers \
                 layout)",
            ));
        }
        if self.entities.frame.is_some() || self.entities.time.is_some() {
            return Err(Error::config(
                "entities",
                "the entities of composed frames (images) are evaluated: leave frame and time \
                 unset",
            ));
        }
        if self.drop_frames >= self.frames {
            return Err(Error::config(
                "drop_frames",
                format!(
                    "dropping {} of {} frames leaves none",
                    self.drop_frames, self.frames
                ),
            ));
        }
        if self.max_examples == Some(0) {
            return Err(Error::config(
                "max_examples",
                "evaluate at least one example (or leave it unset for all)",
            ));
        }
        self.entities.validate()?;
        self.retention.validate()?;
        // The sampling settings are those of the generate pipeline.
        self.generate_config("x", Some(Path::new("adapter.safetensors")))
            .validate()?;
        Ok(())
    }
}

/// The examples, the adapter, the output folder and the models of an [`eval`] run.
#[derive(Debug, Clone, Copy)]
pub struct EvalInput<'a> {
    /// FFGo's JSON list of held-out examples, or a folder of composed frames with their
    /// captions (`NAME.png` + `NAME.txt`).
    pub examples: &'a Path,
    /// The adapter: `adapter.safetensors` or the folder holding it.
    pub adapter: &'a Path,
    /// The output folder.
    pub output: &'a Path,
    /// Where models come from (loaded once, shared across runs).
    pub models: &'a Models,
    /// Replace a folder holding files this pipeline did not write.
    pub overwrite: bool,
}

impl<'a> EvalInput<'a> {
    /// The input: `examples` and `adapter`, writing into `output`.
    pub fn new(
        examples: &'a (impl AsRef<Path> + ?Sized),
        adapter: &'a (impl AsRef<Path> + ?Sized),
        output: &'a (impl AsRef<Path> + ?Sized),
        models: &'a Models,
    ) -> Self {
        Self {
            examples: examples.as_ref(),
            adapter: adapter.as_ref(),
            output: output.as_ref(),
            models,
            overwrite: false,
        }
    }

    /// Sets [`EvalInput::overwrite`].
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// One held-out example: its composed frame and caption.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalEntry {
    /// Position in the list (or in the folder's sorted listing).
    pub index: usize,
    /// The example's name (`file_path` of the list, else the image's file name).
    pub name: String,
    /// The composed first frame.
    pub image: PathBuf,
    /// The caption, starting with the transition phrase.
    pub caption: String,
}

/// Reads held-out examples: FFGo's JSON list (`image_path` and `text` required, paths
/// relative to the list) or a folder of images with `.txt` captions beside them. Bad
/// entries become [`Skipped`]s; only an unreadable list or folder is an error.
pub fn read_eval_examples(
    path: &Path,
    phrase: &str,
    mode: PhraseMode,
) -> Result<(Vec<EvalEntry>, Vec<Skipped>), Error> {
    let bad = |detail: String| Error::InvalidInput {
        path: path.to_path_buf(),
        detail,
    };
    // (index, name, image, caption or why there is none)
    let mut raw: Vec<(usize, String, PathBuf, Result<String, String>)> = Vec::new();
    if path.is_dir() {
        let mut images: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| bad(format!("cannot list the folder: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image(p))
            .collect();
        images.sort();
        if images.is_empty() {
            return Err(bad(
                "holds no image: give composed first frames (NAME.png) with their captions \
                 (NAME.txt), or FFGo's JSON list"
                    .into(),
            ));
        }
        for (index, image) in images.into_iter().enumerate() {
            let name = image
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let txt = image.with_extension("txt");
            let caption = std::fs::read_to_string(&txt).map_err(|e| {
                format!(
                    "no caption: cannot read {} ({e}); write the caption there",
                    txt.display()
                )
            });
            raw.push((index, name, image, caption));
        }
    } else {
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let list: Vec<serde_json::Value> = serde_json::from_slice(&bytes).map_err(|e| {
            bad(format!(
                "neither a folder nor a JSON list of {{\"image_path\", \"text\"}} objects: {e}"
            ))
        })?;
        let root = path.parent().unwrap_or(Path::new("."));
        for (index, v) in list.into_iter().enumerate() {
            let field = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_string);
            let image = field("image_path");
            let name = field("file_path")
                .or_else(|| image.clone())
                .unwrap_or_else(|| "?".into());
            let Some(image) = image else {
                raw.push((
                    index,
                    name,
                    PathBuf::new(),
                    Err("needs \"image_path\" (the composed first frame)".into()),
                ));
                continue;
            };
            let caption = field("text").ok_or_else(|| "needs \"text\" (the caption)".to_string());
            raw.push((index, name, root.join(image), caption));
        }
    }
    let mut good = Vec::new();
    let mut skipped = Vec::new();
    for (index, name, image, caption) in raw {
        let mut skip = |reason: String| {
            skipped.push(Skipped {
                index,
                name: name.clone(),
                reason,
            })
        };
        let caption = match caption {
            Ok(c) => c.trim().to_string(),
            Err(r) => {
                skip(r);
                continue;
            }
        };
        if !image.is_file() {
            skip(format!(
                "the first frame {} does not exist",
                image.display()
            ));
            continue;
        }
        if caption.is_empty() {
            skip("the caption is empty".into());
            continue;
        }
        let caption = if phrase.is_empty() || caption.starts_with(phrase) {
            caption
        } else {
            match mode {
                PhraseMode::Prepend => format!("{phrase} {caption}"),
                PhraseMode::Require => {
                    skip(format!(
                        "the caption does not start with the transition phrase {phrase:?}; add \
                         it or let it be prepended"
                    ));
                    continue;
                }
            }
        };
        good.push(EvalEntry {
            index,
            name: name.clone(),
            image,
            caption,
        });
    }
    Ok((good, skipped))
}

/// Retention of one example without and with the adapter.
#[derive(Debug, Clone, Serialize)]
pub struct EvalExample {
    /// The example.
    #[serde(flatten)]
    pub entry: EvalEntry,
    /// Entities found in the composed frame.
    pub entities: usize,
    /// The base model's video (`NNN_base.mp4`).
    pub base_video: String,
    /// The adapter's video (`NNN_lora.mp4`).
    pub lora_video: String,
    /// Mean over entities of the mean best similarity, base model.
    pub base_similarity: f32,
    /// The same with the adapter.
    pub lora_similarity: f32,
    /// Mean over entities of the fraction of sampled frames where the entity is present,
    /// base model.
    pub base_presence: f32,
    /// The same with the adapter.
    pub lora_presence: f32,
}

/// What [`eval`] measured (`eval.json`).
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The examples list or folder.
    pub examples_source: PathBuf,
    /// The adapter file.
    pub adapter: PathBuf,
    /// Per example.
    pub examples: Vec<EvalExample>,
    /// Examples left out, with why.
    pub skipped: Vec<Skipped>,
    /// Mean over examples of [`EvalExample::base_similarity`].
    pub mean_base_similarity: f32,
    /// Mean over examples of [`EvalExample::lora_similarity`].
    pub mean_lora_similarity: f32,
    /// Mean over examples of [`EvalExample::base_presence`].
    pub mean_base_presence: f32,
    /// Mean over examples of [`EvalExample::lora_presence`].
    pub mean_lora_presence: f32,
    /// Examples whose similarity is higher with the adapter than without.
    pub lora_better: usize,
    /// `eval.csv`.
    pub csv: PathBuf,
    /// `eval.png`, when it could be drawn.
    pub plot: Option<PathBuf>,
    /// Seconds spent.
    pub seconds: f64,
    /// The settings.
    pub parameters: EvalConfig,
}

/// The adapter file: `path`, or `path/adapter.safetensors` for a folder.
fn adapter_file(path: &Path) -> Result<PathBuf, Error> {
    let file = if path.is_dir() {
        path.join("adapter.safetensors")
    } else {
        path.to_path_buf()
    };
    if !file.is_file() {
        return Err(Error::InvalidInput {
            path: file,
            detail: "no adapter here: give adapter.safetensors (or the folder training wrote)"
                .into(),
        });
    }
    Ok(file)
}

fn mean(v: impl Iterator<Item = f32>) -> f32 {
    let (s, n) = v.fold((0.0f64, 0usize), |(s, n), x| (s + x as f64, n + 1));
    if n == 0 {
        f32::NAN
    } else {
        (s / n as f64) as f32
    }
}

/// Evaluates an adapter: generates each held-out example without and with it and measures
/// the entity retention of both (see the [`finetune`](super) module docs).
pub fn eval(
    input: &EvalInput<'_>,
    config: &EvalConfig,
    progress: &dyn Progress,
) -> Result<EvalReport, Error> {
    config.validate()?;
    let started = std::time::Instant::now();
    let adapter = adapter_file(input.adapter)?;
    let (entries, mut skipped) = read_eval_examples(
        input.examples,
        &config.transition_phrase,
        config.phrase_mode,
    )?;
    let mut inputs = vec![input.examples.to_path_buf(), adapter.clone()];
    inputs.extend(config.lora_2.iter().cloned());
    let out = OutputDir::begin(input.output, "finetune-eval", input.overwrite)?.inputs(&inputs)?;
    let work = out.staging().join("work");
    std::fs::create_dir_all(&work).map_err(|e| Error::write(&work, e))?;

    // The entity memory of each composed frame; examples without entities are left out.
    let mut kept: Vec<(EvalEntry, PathBuf, usize)> = Vec::new();
    for e in entries {
        if config.max_examples.is_some_and(|m| kept.len() >= m) {
            break;
        }
        let mut skip = |reason: String| {
            skipped.push(Skipped {
                index: e.index,
                name: e.name.clone(),
                reason,
            })
        };
        if let Err(err) = read_image(&e.image, "first frame") {
            skip(format!("unreadable first frame: {err}"));
            continue;
        }
        let n = kept.len();
        let memory = work.join(format!("memory_{n:03}"));
        let r = entities::run(
            &EntitiesInput::new(&e.image, &memory, input.models),
            &config.entities,
            progress,
        )?;
        if r.memory.entities.is_empty() {
            skip(
                "the segmenter finds no entity in the composed frame, so there is nothing to \
                 retain; check the segmenter settings"
                    .into(),
            );
            continue;
        }
        if r.memory.entities.iter().any(|x| x.embedding.is_none()) {
            return Err(Error::config(
                "entities",
                "the entities were not embedded (no embedding model): retention needs one; \
                 give the embedding model (embed_model)",
            ));
        }
        let overlay = memory.join("overlay.png");
        if overlay.is_file() {
            let to = out.path(&format!("{n:03}_entities.png"))?;
            std::fs::copy(&overlay, &to).map_err(|err| Error::write(&to, err))?;
        }
        kept.push((e, memory, r.memory.entities.len()));
    }
    skipped.sort_by_key(|s| s.index);
    if kept.is_empty() {
        return Err(Error::InvalidInput {
            path: input.examples.to_path_buf(),
            detail: format!(
                "no usable example ({} left out: {})",
                skipped.len(),
                skipped
                    .iter()
                    .map(|s| format!("#{} {}: {}", s.index, s.name, s.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        });
    }

    // Base videos first, then the adapter's (one transformer reload), each measured.
    let retention_config = RetentionConfig {
        segment: config.entities.segment,
        ..config.retention.clone()
    };
    let mut measured: Vec<[(f32, f32); 2]> = vec![[(0.0, 0.0); 2]; kept.len()];
    for (arm, lora) in [(0usize, None), (1, Some(adapter.as_path()))] {
        let tag = if lora.is_some() { "lora" } else { "base" };
        for (n, (e, memory, _)) in kept.iter().enumerate() {
            let video = out.path(&format!("{n:03}_{tag}.mp4"))?;
            generate::run(
                &GenerateInput::new(Some(e.image.as_path()), &video, input.models),
                &config.generate_config(&e.caption, lora),
                progress,
            )?;
            let rdir = work.join(format!("retention_{tag}_{n:03}"));
            let r = retention::run(
                &RetentionInput::new(&video, memory, &rdir, input.models),
                &retention_config,
                progress,
            )?;
            let csv = out.path(&format!("{n:03}_retention_{tag}.csv"))?;
            std::fs::copy(rdir.join("retention.csv"), &csv)
                .map_err(|err| Error::write(&csv, err))?;
            measured[n][arm] = (r.summary.mean_best_similarity, r.summary.fraction_present);
        }
    }

    let examples: Vec<EvalExample> = kept
        .into_iter()
        .zip(&measured)
        .enumerate()
        .map(|(n, ((entry, _, entities), m))| EvalExample {
            entry,
            entities,
            base_video: format!("{n:03}_base.mp4"),
            lora_video: format!("{n:03}_lora.mp4"),
            base_similarity: m[0].0,
            lora_similarity: m[1].0,
            base_presence: m[0].1,
            lora_presence: m[1].1,
        })
        .collect();
    let mean_base_similarity = mean(examples.iter().map(|e| e.base_similarity));
    let mean_lora_similarity = mean(examples.iter().map(|e| e.lora_similarity));
    let mean_base_presence = mean(examples.iter().map(|e| e.base_presence));
    let mean_lora_presence = mean(examples.iter().map(|e| e.lora_presence));
    let f = |v: f32| format!("{v:.6}");
    let mut rows: Vec<Vec<String>> = examples
        .iter()
        .map(|e| {
            vec![
                e.entry.index.to_string(),
                e.entry.name.clone(),
                e.entities.to_string(),
                f(e.base_similarity),
                f(e.lora_similarity),
                f(e.lora_similarity - e.base_similarity),
                f(e.base_presence),
                f(e.lora_presence),
                f(e.lora_presence - e.base_presence),
            ]
        })
        .collect();
    rows.push(vec![
        "mean".into(),
        String::new(),
        f(mean(examples.iter().map(|e| e.entities as f32))),
        f(mean_base_similarity),
        f(mean_lora_similarity),
        f(mean_lora_similarity - mean_base_similarity),
        f(mean_base_presence),
        f(mean_lora_presence),
        f(mean_lora_presence - mean_base_presence),
    ]);
    let csv = out.path("eval.csv")?;
    crate::output::write_csv(
        &csv,
        &[
            "index",
            "name",
            "entities",
            "base_similarity",
            "lora_similarity",
            "similarity_delta",
            "base_presence",
            "lora_presence",
            "presence_delta",
        ],
        rows,
    )?;
    let png = out.path("eval.png")?;
    let mut labels: Vec<String> = (0..examples.len()).map(|n| format!("{n}")).collect();
    labels.push("mean".into());
    let mut base: Vec<f64> = examples.iter().map(|e| e.base_similarity as f64).collect();
    base.push(mean_base_similarity as f64);
    let mut with: Vec<f64> = examples.iter().map(|e| e.lora_similarity as f64).collect();
    with.push(mean_lora_similarity as f64);
    let plot = crate::output::paired_bar_plot(
        &png,
        "entity retention: mean best similarity",
        &labels,
        ("without the adapter", &base),
        ("with the adapter", &with),
    )
    .ok()
    .map(|_| input.output.join("eval.png"));
    let report = EvalReport {
        examples_source: input.examples.to_path_buf(),
        adapter,
        lora_better: examples
            .iter()
            .filter(|e| e.lora_similarity > e.base_similarity)
            .count(),
        examples,
        skipped,
        mean_base_similarity,
        mean_lora_similarity,
        mean_base_presence,
        mean_lora_presence,
        csv: input.output.join("eval.csv"),
        plot,
        seconds: started.elapsed().as_secs_f64(),
        parameters: config.clone(),
    };
    out.commit("eval.json", &report)?;
    Ok(report)
}
