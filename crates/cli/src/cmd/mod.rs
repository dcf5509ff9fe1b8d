//! The subcommands, and what they share: configuration files, model flags, hints.

pub mod batch;
pub mod compose;
pub mod embed;
pub mod entities;
pub mod finetune;
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
        Some(p) => {
            let _ = CONFIG_FILE.set(p.to_path_buf());
            reelsmith::config::load(p)?
        }
        None => T::default(),
    })
}

/// The configuration file this run read, for the hints of errors about its settings.
static CONFIG_FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Where a setting can be changed besides its flag: the configuration file given, or
/// `--config` in general.
fn config_place() -> String {
    match CONFIG_FILE.get() {
        Some(p) => p.display().to_string(),
        None => "the file given to --config".to_string(),
    }
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
        "threshold" => "--threshold",
        "phash_distance" => "--phash-distance",
        "analysis_height" => "--analysis-height",
        "k" => "--k",
        "batch" => "--batch",
        "jobs" => "--jobs",
        "shard" => "--shard",
        "workers" => "--workers",
        "score" => "--robust (or the [score] section of --config)",
        "model" => "--model ID or --model-dir DIR",
        // entities, compose, retention, generate
        "frame" => "--frame",
        "time" => "--time",
        "segmenter" => "--segmenter",
        "segmenter_weights" => "--weights FILE or --model-dir DIR",
        "sam_variant" => "--sam-variant",
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
        "lora" => "--lora",
        "lora_2" => "--lora-2",
        "lora_scale" => "--lora-scale",
        "lora_drop_frames" => "--lora-drop-frames",
        // finetune
        "base" => "--base DIR",
        "expert" => "--expert high|low",
        "rank" => "--rank",
        "alpha" => "--alpha",
        "lr" => "--lr",
        "batch_size" => "--batch-size",
        "grad_accum" => "--grad-accum",
        "dropout" | "targets" | "weight_decay" | "max_grad_norm" => "--config FILE",
        "drop_frames" => "--drop-frames",
        "max_examples" => "--max-examples",
        "entities" => "the [entities] section of --config",
        _ => return None,
    })
}

/// The message of `e` and its causes, each said once (an error whose message already
/// holds its cause's text, as many I/O errors do, is not followed by it again), with the
/// paths of files in a run's staging folder given as where they were going: the staging
/// folder is gone when the message is read.
pub fn message(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    unstaged(&msg)
}

/// `text` without the staging-folder component of the paths in it
/// (`out/.reelsmith-staging-12-0/clip_001.mp4` → `out/clip_001.mp4`).
fn unstaged(text: &str) -> String {
    let prefix = reelsmith::output::STAGING_PREFIX;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let (before, after) = rest.split_at(i);
        // Only a whole path component: right after a separator.
        let Some(sep) = before.chars().last().filter(|c| *c == '/' || *c == '\\') else {
            out.push_str(before);
            out.push_str(prefix);
            rest = &after[prefix.len()..];
            continue;
        };
        out.push_str(&before[..before.len() - sep.len_utf8()]);
        let end = after.find(['/', '\\', ':', ' ']).unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Whether `e` is a failure to write an output file (a full disk, a file-size limit, no
/// permission).
fn is_write_failure(e: &anyhow::Error) -> bool {
    use reelsmith::decode::DecodeError;
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<reelsmith::Error>(),
            Some(
                reelsmith::Error::Write { .. }
                    | reelsmith::Error::Decode(DecodeError::Write { .. })
            )
        ) || matches!(
            c.downcast_ref::<DecodeError>(),
            Some(DecodeError::Write { .. })
        )
    })
}

/// A hint for an error: the flag that sets the setting at fault, how to get a model, or
/// what a failed write left behind.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    if is_write_failure(e) {
        return Some(
            "nothing was written: the output is as it was before the run; free some space \
             on its disk (or choose another place) and check that it can be written, then run \
             again"
                .into(),
        );
    }
    let e = e.downcast_ref::<reelsmith::Error>()?;
    if let reelsmith::Error::ForeignFolder { .. } = e {
        return Some(
            "pass --overwrite to write into it anyway (the files already there stay, unless \
             an output has the same name)"
                .into(),
        );
    }
    if let reelsmith::Error::Model { model, .. } = e {
        if Path::new(model).is_dir() {
            return Some(format!(
                "the checkpoint folder {model} is incomplete or damaged: replace the file named \
                 above (download the checkpoint again), or pass another folder with --model-dir"
            ));
        }
        return Some(
            "pass a local checkpoint folder with --model-dir DIR, or download the model once \
             (`huggingface-cli download ID`) and pass --model ID"
                .into(),
        );
    }
    let place = config_place();
    Some(match flag_for(e.setting()?) {
        Some(flag) => format!("set it with {flag}, or in {place}"),
        // a setting with no flag of its own comes from the configuration file
        None => format!("set it in {place}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_each_cause_once_and_name_the_final_paths() {
        let io = std::io::Error::from_raw_os_error(20);
        let e = anyhow::Error::new(reelsmith::Error::Write {
            path: "out/.reelsmith-staging-17-0/clip_001.mp4".into(),
            source: io,
        });
        let shown = message(&e);
        assert_eq!(
            shown,
            "out/clip_001.mp4: cannot write output: Not a directory (os error 20)"
        );
        // A cause not already in the message is kept.
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message(&e), "outer: inner");
        // The staging folder itself, and a name that only resembles one, unchanged otherwise.
        assert_eq!(unstaged("/a/b/.reelsmith-staging-1-2: gone"), "/a/b: gone");
        assert_eq!(
            unstaged("x.reelsmith-staging-1 stays"),
            "x.reelsmith-staging-1 stays"
        );
        assert!(hint(&e).is_none());
        // A failed write, also one reported by the decoder, says the output is as it was.
        let e = anyhow::Error::new(reelsmith::Error::Decode(
            reelsmith::decode::DecodeError::Write {
                path: "out/clip_001.mp4".into(),
                detail: "writing video: No space left on device".into(),
            },
        ));
        assert!(hint(&e).is_some_and(|h| h.contains("as it was")));
    }
}
