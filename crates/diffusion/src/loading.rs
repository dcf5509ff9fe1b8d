//! Reading checkpoints: the one place that turns weight files into a
//! [`candle_nn::VarBuilder`], through the shared model layer
//! ([`reelsmith_models::Checkpoint`]).
//!
//! [`load_weights`] takes a component folder of the diffusers layout
//! (`diffusion_pytorch_model.safetensors`, `model.safetensors`, or a sharded
//! `*.safetensors.index.json`) or a single weights file, memory-maps it, and hands out
//! tensors in the requested dtype on the requested device. Missing tensors and tensors of the
//! wrong shape do not stop the model's construction at the first one: each is recorded and a
//! zero placeholder returned, and [`Weights::finish`] then fails with one
//! [`DiffusionError::Weights`] naming every problem. A key map lets the same model code read
//! other key layouts (the original Wan single-file names, see [`crate::keymap`]); it is the
//! checkpoint's key renaming ([`reelsmith_models::Checkpoint::with_rename`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use reelsmith_models::{Checkpoint, ModelError};

use crate::error::{DiffusionError, Result};

/// Maps a diffusers tensor name to the name stored in the file.
pub type KeyMap = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Tensors of one checkpoint, handed out through [`Weights::vb`].
pub struct Weights {
    ckpt: Checkpoint,
    vb: VarBuilder<'static>,
    names: Vec<String>,
    path: PathBuf,
}

impl Weights {
    /// The builder the model constructors read from.
    pub fn vb(&self) -> VarBuilder<'static> {
        self.vb.clone()
    }

    /// The file or folder the tensors come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All tensor names stored in the checkpoint.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Fails with [`DiffusionError::Weights`] if any tensor the model asked for was missing or
    /// had another shape (a name read through a key map is given with its stored name:
    /// `blocks.0.attn1.to_q.weight (stored as blocks.0.self_attn.q.weight)`).
    pub fn finish(self) -> Result<()> {
        match self.ckpt.finish() {
            Ok(()) => Ok(()),
            Err(ModelError::Weights {
                missing,
                mismatched,
                ..
            }) => Err(DiffusionError::Weights {
                path: self.path,
                missing,
                mismatched,
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// The file to open for a component: a single weights file, or a folder's
/// `{stem}.safetensors` or sharded `{stem}.safetensors.index.json`.
fn weights_entry(path: &Path, stems: &[&str]) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        return Err(DiffusionError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    for stem in stems {
        let single = path.join(format!("{stem}.safetensors"));
        if single.is_file() {
            return Ok(single);
        }
        let index = path.join(format!("{stem}.safetensors.index.json"));
        if index.is_file() {
            return Ok(index);
        }
    }
    Err(DiffusionError::config(
        path,
        format!(
            "no weights here: expected {} (a PyTorch .bin checkpoint can be named as a file instead; safetensors load faster)",
            stems
                .iter()
                .map(|s| format!("{s}.safetensors or {s}.safetensors.index.json"))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    ))
}

/// The weight files of a component: a folder with `{stem}.safetensors` or a sharded
/// `{stem}.safetensors.index.json` (diffusers' `diffusion_pytorch_model`, transformers'
/// `model`), or a single weights file (`.safetensors`, a `*.index.json`, or a PyTorch
/// pickle). Every shard an index names must exist.
pub fn weight_files(path: &Path, stems: &[&str]) -> Result<Vec<PathBuf>> {
    Ok(Checkpoint::open(weights_entry(path, stems)?)?.files())
}

/// Memory-maps the weight files of a component (see [`weight_files`]) as one
/// [`Checkpoint`] and returns a [`Weights`] whose builder yields `dtype` tensors on `device`
/// (converted from the stored type on load). `map`, when given, turns the diffusers names the
/// model asks for into the names stored in the files.
pub fn load_weights(
    path: &Path,
    stems: &[&str],
    dtype: DType,
    device: &Device,
    map: Option<KeyMap>,
) -> Result<Weights> {
    let entry = weights_entry(path, stems)?;
    let mut ckpt = Checkpoint::open(&entry)?;
    let files = ckpt.files();
    if let Some(map) = map {
        ckpt = ckpt.with_rename(move |n| map(n));
    }
    let names = ckpt.names();
    let vb = ckpt.var_builder(dtype, device);
    Ok(Weights {
        ckpt,
        vb,
        names,
        path: match files.as_slice() {
            [one] => one.clone(),
            _ => path.to_path_buf(),
        },
    })
}

/// Reads and parses a JSON configuration file.
///
/// Through [`reelsmith_models::read_config`]: errors name the file and, for a value of the
/// wrong type, its key.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    Ok(reelsmith_models::read_config(path)?)
}
