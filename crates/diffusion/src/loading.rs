//! Reading checkpoints: the one place that turns safetensors files into a
//! [`candle_nn::VarBuilder`].
//!
//! [`load_weights`] takes a component folder of the diffusers layout
//! (`diffusion_pytorch_model.safetensors`, `model.safetensors`, or a sharded
//! `*.safetensors.index.json`) or a single `.safetensors` file, memory-maps it, and hands out
//! tensors in the requested dtype on the requested device. Missing tensors and tensors of the
//! wrong shape do not stop the model's construction at the first one: each is recorded and a
//! zero placeholder returned, and [`Weights::finish`] then fails with one
//! [`DiffusionError::Weights`] naming every problem. A key map lets the same model code read
//! other key layouts (the original Wan single-file names, see [`crate::keymap`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::error::{DiffusionError, Result};

/// Maps a diffusers tensor name to the name stored in the file.
pub type KeyMap = Arc<dyn Fn(&str) -> String + Send + Sync>;

#[derive(Default)]
struct Problems {
    missing: Vec<String>,
    mismatched: Vec<String>,
    used: BTreeSet<String>,
}

struct CheckedBackend {
    st: MmapedSafetensors,
    map: Option<KeyMap>,
    problems: Arc<Mutex<Problems>>,
}

impl CheckedBackend {
    fn stored_name(&self, name: &str) -> String {
        match &self.map {
            Some(f) => f(name),
            None => name.to_string(),
        }
    }
}

impl SimpleBackend for CheckedBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let key = self.stored_name(name);
        let mut problems = self.problems.lock().expect("weights problem list poisoned");
        match self.st.get(&key) {
            Ok(view) => {
                if view.shape() != s.dims() {
                    problems.mismatched.push(format!(
                        "{key}: expected {:?}, found {:?}",
                        s.dims(),
                        view.shape()
                    ));
                    return Tensor::zeros(s, dtype, dev);
                }
                problems.used.insert(key.clone());
                drop(problems);
                self.st.load(&key, dev)?.to_dtype(dtype)
            }
            Err(_) => {
                problems.missing.push(key);
                Tensor::zeros(s, dtype, dev)
            }
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let key = self.stored_name(name);
        self.problems
            .lock()
            .expect("weights problem list poisoned")
            .used
            .insert(key.clone());
        self.st.load(&key, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.st.get(&self.stored_name(name)).is_ok()
    }
}

/// Tensors of one checkpoint, handed out through [`Weights::vb`].
pub struct Weights {
    vb: VarBuilder<'static>,
    problems: Arc<Mutex<Problems>>,
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
    /// had another shape. Tensors present but never read are logged (at debug level).
    pub fn finish(self) -> Result<()> {
        let p = self.problems.lock().expect("weights problem list poisoned");
        if !p.missing.is_empty() || !p.mismatched.is_empty() {
            return Err(DiffusionError::Weights {
                path: self.path.clone(),
                missing: p.missing.clone(),
                mismatched: p.mismatched.clone(),
            });
        }
        let unused = self.names.iter().filter(|n| !p.used.contains(*n)).count();
        if unused > 0 {
            tracing::debug!(
                "{}: {unused} stored tensors are not used by the model",
                self.path.display()
            );
        }
        Ok(())
    }
}

/// The weight files of a component: a folder with `{stem}.safetensors` or a sharded
/// `{stem}.safetensors.index.json` (diffusers' `diffusion_pytorch_model`, transformers'
/// `model`), or a single `.safetensors` file.
pub fn weight_files(path: &Path, stems: &[&str]) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        let name = path.to_string_lossy();
        if name.ends_with(".index.json") {
            return shards(path);
        }
        return Ok(vec![path.to_path_buf()]);
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
            return Ok(vec![single]);
        }
        let index = path.join(format!("{stem}.safetensors.index.json"));
        if index.is_file() {
            return shards(&index);
        }
    }
    Err(DiffusionError::config(
        path,
        format!(
            "no weights here: expected {} (PyTorch .bin checkpoints are not read; convert them to safetensors)",
            stems
                .iter()
                .map(|s| format!("{s}.safetensors or {s}.safetensors.index.json"))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    ))
}

fn shards(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|e| DiffusionError::io(index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| DiffusionError::config(index, format!("not a safetensors index: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| DiffusionError::config(index, "no `weight_map` in the safetensors index"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let p = dir.join(f);
        if !p.is_file() {
            return Err(DiffusionError::config(
                index,
                format!("shard {f} named in the index is missing; download all shards"),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

/// Memory-maps the weight files of a component (see [`weight_files`]) and returns a
/// [`Weights`] whose builder yields `dtype` tensors on `device`. `map`, when given, turns the
/// diffusers names the model asks for into the names stored in the files.
pub fn load_weights(
    path: &Path,
    stems: &[&str],
    dtype: DType,
    device: &Device,
    map: Option<KeyMap>,
) -> Result<Weights> {
    let files = weight_files(path, stems)?;
    // SAFETY: the files are memory-mapped read-only; like every safetensors reader we rely on
    // them not being truncated while the model is being built.
    let st = unsafe { MmapedSafetensors::multi(&files) }.map_err(|e| {
        DiffusionError::config(
            &files[0],
            format!("cannot read as safetensors ({e}); is the download complete?"),
        )
    })?;
    let names: Vec<String> = st.tensors().into_iter().map(|(n, _)| n).collect();
    let problems = Arc::new(Mutex::new(Problems::default()));
    let backend = CheckedBackend {
        st,
        map,
        problems: problems.clone(),
    };
    let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
    Ok(Weights {
        vb,
        problems,
        names,
        path: if files.len() == 1 {
            files[0].clone()
        } else {
            path.to_path_buf()
        },
    })
}

/// Reads and parses a JSON configuration file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| DiffusionError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| DiffusionError::config(path, format!("{e}")))
}
