//! Reading checkpoints (safetensors, sharded safetensors, PyTorch `.bin`) and checking that
//! every tensor a model needs is there with the right shape.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::EmbedError;

/// All tensors of a checkpoint, by name, in f32 on the target device.
pub(crate) struct Checkpoint {
    /// The file (or folder for sharded checkpoints) for error messages.
    pub path: PathBuf,
    tensors: HashMap<String, Tensor>,
    device: Device,
}

impl Checkpoint {
    /// Loads one weights file: `*.safetensors`, a `*.safetensors.index.json` of shards, or a
    /// PyTorch pickle (`*.bin`, `*.pt`, `*.pth`).
    pub fn load(path: &Path, device: &Device) -> Result<Self, EmbedError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut tensors = HashMap::new();
        if name.ends_with(".index.json") {
            let text = std::fs::read_to_string(path).map_err(|source| EmbedError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let index: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| EmbedError::Config {
                    path: path.to_path_buf(),
                    message: format!("not a safetensors index: {e}"),
                })?;
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| EmbedError::Config {
                    path: path.to_path_buf(),
                    message: "no weight_map in the safetensors index".into(),
                })?;
            let mut shards: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
            shards.sort_unstable();
            shards.dedup();
            let dir = path.parent().unwrap_or(Path::new("."));
            for shard in shards {
                load_safetensors(&dir.join(shard), device, &mut tensors)?;
            }
        } else if name.ends_with(".safetensors") {
            load_safetensors(path, device, &mut tensors)?;
        } else {
            if !path.exists() {
                return Err(EmbedError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                });
            }
            let all = candle_core::pickle::read_all(path).map_err(|e| EmbedError::Config {
                path: path.to_path_buf(),
                message: format!("cannot read as a PyTorch checkpoint: {e}"),
            })?;
            for (k, t) in all {
                tensors.insert(k, t.to_dtype(DType::F32)?.to_device(device)?);
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            device: device.clone(),
        })
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// A view that collects every missing or misshapen tensor instead of failing at the
    /// first, so that one error can name them all.
    pub fn reader(&self, prefix: &str) -> Reader<'_> {
        Reader {
            ckpt: self,
            prefix: prefix.to_string(),
            problems: RefCell::new((Vec::new(), Vec::new())),
        }
    }
}

fn load_safetensors(
    path: &Path,
    device: &Device,
    out: &mut HashMap<String, Tensor>,
) -> Result<(), EmbedError> {
    if !path.exists() {
        return Err(EmbedError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let all =
        candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| EmbedError::Config {
            path: path.to_path_buf(),
            message: format!("cannot read as safetensors: {e}"),
        })?;
    for (k, t) in all {
        out.insert(k, t.to_dtype(DType::F32)?.to_device(device)?);
    }
    Ok(())
}

/// Hands out tensors by name and records what is missing or has a wrong shape.
pub(crate) struct Reader<'a> {
    ckpt: &'a Checkpoint,
    prefix: String,
    problems: RefCell<(Vec<String>, Vec<String>)>,
}

impl Reader<'_> {
    fn full(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Whether the checkpoint has `name` (under the prefix).
    pub fn has(&self, name: &str) -> bool {
        self.ckpt.contains(&self.full(name))
    }

    /// The tensor `name` (under the prefix) with this shape; a zero placeholder when missing
    /// or misshapen (recorded, reported by [`Reader::finish`]).
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, EmbedError> {
        self.get_any(&[name], shape)
    }

    /// Like [`Reader::get`], trying several names (layouts of different library versions);
    /// a missing tensor is reported under the first.
    pub fn get_any(&self, names: &[&str], shape: &[usize]) -> Result<Tensor, EmbedError> {
        for name in names {
            if let Some(t) = self.ckpt.tensors.get(&self.full(name)) {
                if t.dims() == shape {
                    return Ok(t.clone());
                }
                // tolerate size-1 leading axes (e.g. cls_token stored as [1, 1, d])
                if t.elem_count() == shape.iter().product::<usize>()
                    && strip_ones(t.dims()) == strip_ones(shape)
                {
                    return Ok(t.reshape(shape)?);
                }
                self.problems.borrow_mut().1.push(format!(
                    "{}: expected {:?}, found {:?}",
                    self.full(name),
                    shape,
                    t.dims()
                ));
                return self.placeholder(shape);
            }
        }
        self.problems.borrow_mut().0.push(self.full(names[0]));
        self.placeholder(shape)
    }

    fn placeholder(&self, shape: &[usize]) -> Result<Tensor, EmbedError> {
        Ok(Tensor::zeros(shape, DType::F32, &self.ckpt.device)?)
    }

    /// Fails with [`EmbedError::Weights`] naming every missing and misshapen tensor.
    pub fn finish(self) -> Result<(), EmbedError> {
        let (missing, mismatched) = self.problems.into_inner();
        if missing.is_empty() && mismatched.is_empty() {
            Ok(())
        } else {
            Err(EmbedError::Weights {
                path: self.ckpt.path.clone(),
                missing,
                mismatched,
            })
        }
    }
}

fn strip_ones(dims: &[usize]) -> Vec<usize> {
    dims.iter().copied().filter(|&d| d != 1).collect()
}
