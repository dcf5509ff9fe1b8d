//! `reelsmith embed IMAGE_OR_VIDEO... [--text T]... (--model ID | --model-dir DIR) [--fps F]
//! [--device D] (-o OUT.safetensors | --json)`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use reelsmith::decode::{DecodeOptions, Sampling};
use reelsmith::embed::candle_core::{Device, Tensor};
use reelsmith::embed::{
    load_dir, load_pretrained, AnyModel, DeviceChoice, Embedder, EmbeddingCache, HubOptions,
};
use reelsmith::Embeddings;
use serde::Serialize;

use crate::Ctx;

/// Arguments of `reelsmith embed`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("weights").required(true).args(["model", "model_dir"])))]
#[command(group(clap::ArgGroup::new("out").required(true).args(["output", "json"])))]
pub struct Args {
    /// Images (png, jpg, webp, bmp, gif, tiff) and videos (anything else); videos are
    /// sampled at --fps.
    inputs: Vec<PathBuf>,
    /// A text to embed with CLIP's text tower (repeatable).
    #[arg(long = "text", value_name = "T")]
    texts: Vec<String>,
    /// Hub id or manifest name (clip-b32, clip-b16, clip-l14, laion-b32, dinov2-small, ...),
    /// loaded through the Hugging Face cache.
    #[arg(long, value_name = "ID")]
    model: Option<String>,
    /// A checkpoint folder in the Hugging Face layout.
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// Hub revision (default: the one pinned in the model's manifest).
    #[arg(long, requires = "model")]
    revision: Option<String>,
    /// Use only the local Hugging Face cache (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    offline: bool,
    /// Frames per second sampled from videos.
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    fps: f64,
    /// cpu, cuda, cuda:N, metal, metal:N or auto.
    #[arg(long, default_value = "cpu", value_name = "D")]
    device: String,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Reuse and store video embeddings in this folder (keyed by file, model, sampling).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Write the embeddings as safetensors: `images` (n×d), `texts` (m×d), `times` (n)
    /// (seconds; 0 for still images), `source` (n: index of the input each row comes from).
    #[arg(long, short, value_name = "OUT.safetensors")]
    output: Option<PathBuf>,
    /// Print {"model", "dim", "images": [[...]], "texts": [[...]]} to stdout (raw projected
    /// CLIP or pooled DINOv2 embeddings, not normalised).
    #[arg(long)]
    json: bool,
}

const IMAGE_EXTS: [&str; 9] = [
    "png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff", "ppm",
];

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

#[derive(Serialize)]
struct JsonOut<'a> {
    model: &'a str,
    dim: usize,
    images: Vec<&'a [f32]>,
    texts: Vec<&'a [f32]>,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    if args.inputs.is_empty() && args.texts.is_empty() {
        bail!("nothing to embed: give images or videos, or --text");
    }
    if !(args.fps.is_finite() && args.fps > 0.0) {
        bail!("--fps must be a positive number");
    }
    for p in &args.inputs {
        if !p.is_file() {
            bail!("{}: no such file", p.display());
        }
    }
    let device: DeviceChoice = args.device.parse()?;
    let model: AnyModel = match (&args.model, &args.model_dir) {
        (_, Some(dir)) => load_dir(dir, device)?,
        (Some(id), None) => {
            let mut opts = HubOptions::default().progress(!ctx.quiet);
            if args.offline {
                opts = opts.offline(true);
            }
            if let Some(r) = &args.revision {
                opts = opts.revision(r.clone());
            }
            load_pretrained(id, &opts, device)?
        }
        (None, None) => unreachable!("clap requires --model or --model-dir"),
    };
    let text_side = model.as_text_embedder();
    if !args.texts.is_empty() && text_side.is_none() {
        bail!(
            "{} has no text tower: --text needs a CLIP model",
            model.model_id()
        );
    }
    let cache = args.cache.as_ref().map(EmbeddingCache::new);
    let batch = args.batch.max(1);

    let mut rows: Vec<f32> = Vec::new();
    let mut times: Vec<f64> = Vec::new();
    let mut sources: Vec<u32> = Vec::new();
    let mut still: Vec<(usize, reelsmith::embed::image::RgbImage)> = Vec::new();
    let embed_stills = |still: &mut Vec<(usize, reelsmith::embed::image::RgbImage)>,
                        rows: &mut Vec<f32>,
                        times: &mut Vec<f64>,
                        sources: &mut Vec<u32>|
     -> Result<()> {
        if still.is_empty() {
            return Ok(());
        }
        let imgs: Vec<_> = still.iter().map(|(_, i)| i.clone()).collect();
        let e = model.embed_images(&imgs)?;
        rows.extend_from_slice(e.as_slice());
        for (src, _) in still.drain(..) {
            times.push(0.0);
            sources.push(src as u32);
        }
        Ok(())
    };
    for (i, path) in args.inputs.iter().enumerate() {
        if is_image(path) {
            let img = reelsmith::embed::image::open(path)
                .with_context(|| format!("cannot read image {}", path.display()))?
                .to_rgb8();
            still.push((i, img));
            if still.len() == batch {
                embed_stills(&mut still, &mut rows, &mut times, &mut sources)?;
            }
            continue;
        }
        embed_stills(&mut still, &mut rows, &mut times, &mut sources)?;
        let info = reelsmith::decode::open(path)?.info().clone();
        let expected = (info.duration * args.fps).ceil() as u64;
        let pb = crate::progress::bar(expected, "embed", ctx.quiet);
        let opts = DecodeOptions::new().sampling(Sampling::Fps(args.fps));
        let out = reelsmith::embed_video(path, &model, &opts, batch, cache.as_ref(), |n| {
            pb.set_position(n)
        })?;
        pb.finish_and_clear();
        if !ctx.quiet {
            eprintln!(
                "{}: {} frames{}",
                path.display(),
                out.frames.len(),
                if out.from_cache { " (from cache)" } else { "" }
            );
        }
        rows.extend_from_slice(out.embeddings.as_slice());
        times.extend(out.frames.iter().map(|f| f.time));
        sources.extend(std::iter::repeat_n(i as u32, out.frames.len()));
    }
    embed_stills(&mut still, &mut rows, &mut times, &mut sources)?;

    let dim = model.dim();
    let images = if rows.is_empty() {
        Embeddings::empty(dim)?
    } else {
        Embeddings::new(rows, dim)?
    };
    let texts = match text_side {
        Some(t) if !args.texts.is_empty() => {
            let refs: Vec<&str> = args.texts.iter().map(String::as_str).collect();
            t.embed_texts(&refs)?
        }
        _ => Embeddings::empty(dim)?,
    };

    if args.json {
        let out = JsonOut {
            model: model.model_id(),
            dim,
            images: images.rows().collect(),
            texts: texts.rows().collect(),
        };
        println!("{}", serde_json::to_string(&out)?);
    }
    if let Some(path) = &args.output {
        write_safetensors(path, dim, &images, &texts, &times, &sources)?;
        if !ctx.quiet {
            eprintln!(
                "wrote {} image and {} text embeddings of width {dim} to {}",
                images.len(),
                texts.len(),
                path.display()
            );
        }
    }
    Ok(())
}

fn write_safetensors(
    path: &Path,
    dim: usize,
    images: &Embeddings,
    texts: &Embeddings,
    times: &[f64],
    sources: &[u32],
) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    tensors.insert(
        "images".into(),
        Tensor::from_vec(
            images.as_slice().to_vec(),
            (images.len(), dim),
            &Device::Cpu,
        )?,
    );
    tensors.insert(
        "texts".into(),
        Tensor::from_vec(texts.as_slice().to_vec(), (texts.len(), dim), &Device::Cpu)?,
    );
    tensors.insert(
        "times".into(),
        Tensor::from_vec(times.to_vec(), times.len(), &Device::Cpu)?,
    );
    tensors.insert(
        "source".into(),
        Tensor::from_vec(sources.to_vec(), sources.len(), &Device::Cpu)?,
    );
    let tmp = path.with_extension("safetensors.part");
    reelsmith::embed::candle_core::safetensors::save(&tensors, &tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(())
}
