//! The subcommands, and what they share: configuration files, model flags, hints.

pub mod compose;
pub mod embed;
pub mod entities;
pub mod frames;
pub mod generate;
pub mod highlights;
pub mod keyframes;
pub mod probe;
pub mod retention;
pub mod score;
pub mod segments;
pub mod shots;

use std::path::{Path, PathBuf};

use anyhow::Result;
use reelsmith::embed::{DeviceChoice, HubOptions};
use reelsmith::models::{ModelChoice, Models};

/// The configuration a command starts from: the pipeline's defaults, or the `--config`
/// file merged over them.
pub fn base_config<T: serde::de::DeserializeOwned + Default>(file: Option<&Path>) -> Result<T> {
    Ok(match file {
        Some(p) => reelsmith::config::load(p)?,
        None => T::default(),
    })
}

/// The flags that choose a model, shared by the commands that can use one.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Model: a Hugging Face hub id or alias (clip-b32, clip-b16, clip-l14, laion-b32,
    /// dinov2-small, ...), loaded through the local cache.
    #[arg(long, value_name = "ID", conflicts_with = "model_dir")]
    pub model: Option<String>,
    /// Model: a local checkpoint folder in the Hugging Face layout.
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// Device for the model: cpu, cuda[:N], metal[:N] or auto.
    #[arg(long, default_value = "cpu", value_name = "D")]
    pub device: String,
}

impl ModelArgs {
    /// The model the flags ask for, if any.
    pub fn choice(&self) -> Option<ModelChoice> {
        match (&self.model, &self.model_dir) {
            (_, Some(dir)) => Some(ModelChoice::Dir(dir.clone())),
            (Some(id), None) => Some(ModelChoice::Hub(id.clone())),
            (None, None) => None,
        }
    }

    /// A model registry on the chosen device, with download progress unless `quiet`.
    pub fn models(&self, hub: HubOptions, quiet: bool) -> Result<Models> {
        let device: DeviceChoice = self.device.parse()?;
        Ok(Models::new()
            .with_hub(hub.progress(!quiet))
            .with_device(device))
    }
}

/// The flag (or flags) that set a configuration field.
fn flag_for(setting: &str) -> Option<&'static str> {
    Some(match setting {
        "fps" => "--fps",
        "every" => "--every",
        "height" => "--height",
        "quality" => "--quality",
        "quantile" => "--quantile",
        "top_k" => "--top-k",
        "smooth_seconds" => "--smooth",
        "min_separation_seconds" => "--min-separation",
        "min_score" => "--min-score",
        "pre_roll" => "--pre-roll",
        "post_roll" => "--post-roll",
        "min_duration" => "--min-duration",
        "max_duration" => "--max-duration",
        "diversity_threshold" => "--diversity-threshold",
        "crf" => "--crf",
        "min_seconds" => "--min-seconds",
        "max_seconds" => "--max-seconds",
        "window_seconds" => "--window",
        "k" => "--k",
        "batch" => "--batch",
        "score" => "--robust (or the [score] section of --config)",
        "model" => "--model ID or --model-dir DIR",
        // entities, compose, retention, generate
        "frame" => "--frame",
        "time" => "--time",
        "segmenter" => "--segmenter",
        "segmenter_weights" => "--weights FILE or --model-dir DIR",
        "sam_variant" => "--sam-variant",
        "threshold" => "--threshold",
        "min_area" => "--min-area",
        "max_entities" => "--max-entities",
        "points_per_side" | "pred_iou_thresh" | "stability_score_thresh" => {
            "the [segment] section of --config"
        }
        "embed_model" => "--embed-model ID or --embed-model-dir DIR",
        "presence_threshold" => "--presence-threshold",
        "size" => "--size WxH",
        "layout" => "--layout",
        "prompt" => "--prompt",
        "prompt_embeddings" => "--prompt-embeddings",
        "frames" => "--frames",
        "steps" => "--steps",
        "guidance" => "--guidance",
        "guidance_2" => "--guidance-2",
        "shift" => "--shift",
        "scheduler" => "--scheduler",
        "latents" => "--latents",
        "drop_first" => "--drop-first",
        "dtype" => "--dtype",
        _ => return None,
    })
}

/// A hint for an error that concerns a setting: the flag that sets it.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    let e = e.downcast_ref::<reelsmith::Error>()?;
    if let reelsmith::Error::Model { .. } = e {
        return Some(
            "pass a local checkpoint folder with --model-dir DIR, or download the model once \
             (`huggingface-cli download ID`) and pass --model ID"
                .into(),
        );
    }
    let flag = flag_for(e.setting()?)?;
    Some(format!(
        "set it with {flag}, or in the file given to --config"
    ))
}
