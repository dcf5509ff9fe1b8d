//! Checkpoints read through candle-nn's `VarBuilder` (see [`Checkpoint`]).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::ModelError;

/// Builds tensors of a checkpoint on load: given the name a model asks for (after
/// [`Checkpoint::with_rename`]), returns the tensor, or `None` to leave the name to the
/// plain lookup (and to the next transform).
///
/// See [`FoldBatchNorm`] for an example.
pub trait Transform: Send + Sync {
    /// The tensor `name`, made from the checkpoint's stored tensors (read with
    /// [`TensorSource::get`]), or `None` when this transform does not make `name`.
    fn apply(&self, name: &str, source: &TensorSource<'_>) -> candle_core::Result<Option<Tensor>>;

    /// Whether [`Transform::apply`] would make `name` (for `contains_tensor`).
    fn provides(&self, name: &str, source: &TensorSource<'_>) -> bool;
}

/// Read access to a checkpoint's stored tensors, by stored name, for [`Transform`]s.
pub struct TensorSource<'a> {
    store: &'a Store,
}

impl TensorSource<'_> {
    /// Whether the checkpoint stores `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.store.routing.contains_key(name)
    }

    /// The stored tensor `name` on the CPU in its stored type, `None` when absent.
    pub fn get(&self, name: &str) -> candle_core::Result<Option<Tensor>> {
        self.store.load(name, &Device::Cpu)
    }
}

/// Maps a convolution's key prefix to its BatchNorm's.
type PrefixRule = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Folds an inference-mode BatchNorm into the convolution (or linear layer) before it:
/// `W' = W·γ/√(σ² + ε)` per output channel and `b' = (b − μ)·γ/√(σ² + ε) + β`, computed in
/// f64. A model written for checkpoints with the BatchNorms already folded (keys
/// `<conv>.weight`, `<conv>.bias`) then also reads checkpoints that keep them apart
/// (`<conv>.weight`, `<conv>.bias`, `<bn>.weight`, `<bn>.bias`, `<bn>.running_mean`,
/// `<bn>.running_var`).
///
/// The rule maps a convolution's key prefix to its BatchNorm's; a convolution whose
/// BatchNorm is not in the checkpoint (no `running_mean`/`running_var`) is read as stored.
/// A convolution stored without bias gets the folded bias all the same.
///
/// ```
/// use std::collections::HashMap;
/// use reelsmith_models::candle_core::{DType, Device, Tensor};
/// use reelsmith_models::{Checkpoint, FoldBatchNorm};
///
/// let dev = Device::Cpu;
/// let t = |v: &[f32]| Tensor::new(v, &dev).unwrap();
/// let tensors = HashMap::from([
///     ("block.conv_s1.weight".to_string(), t(&[1.0, 2.0]).reshape((2, 1, 1, 1))?),
///     ("block.conv_s1.bias".to_string(), t(&[0.5, 0.0])),
///     ("block.bn_s1.weight".to_string(), t(&[2.0, 1.0])),
///     ("block.bn_s1.bias".to_string(), t(&[0.0, 1.0])),
///     ("block.bn_s1.running_mean".to_string(), t(&[0.5, 1.0])),
///     ("block.bn_s1.running_var".to_string(), t(&[1.0, 4.0])),
/// ]);
/// let ckpt = Checkpoint::from_tensors(tensors, "upstream.pth")
///     .with_transform(FoldBatchNorm::with_suffixes("conv_s1", "bn_s1", 0.0));
/// let vb = ckpt.var_builder(DType::F32, &dev);
/// let w = vb.get((2, 1, 1, 1), "block.conv_s1.weight")?.flatten_all()?.to_vec1::<f32>()?;
/// let b = vb.get(2, "block.conv_s1.bias")?.to_vec1::<f32>()?;
/// ckpt.finish()?;
/// assert_eq!(w, [2.0, 1.0]); // scale γ/√σ² = [2, 0.5]
/// assert_eq!(b, [0.0, 0.5]); // (b − μ)·scale + β
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FoldBatchNorm {
    rule: Box<PrefixRule>,
    eps: f64,
    /// The type of the folded tensors; `None`: the convolution's stored type.
    dtype: Option<DType>,
}

impl FoldBatchNorm {
    /// Folding with a rule from the convolution's key prefix (`a.b.conv`) to its
    /// BatchNorm's (`a.b.bn`), `None` for prefixes that have none; `eps` is the
    /// BatchNorm's epsilon (PyTorch's default is 1e-5).
    pub fn new(eps: f64, rule: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            rule: Box::new(rule),
            eps,
            dtype: None,
        }
    }

    /// Hands the folded tensors out in `dtype` instead of the convolution's stored type.
    /// The folding is computed in f64 either way; a half-precision checkpoint read in f32
    /// should fold into f32 (`DType::F32`), so that the folded weights are rounded once,
    /// to f32, rather than to f16 first.
    pub fn in_dtype(mut self, dtype: DType) -> Self {
        self.dtype = Some(dtype);
        self
    }

    /// Folding where the convolution's prefix ends in `conv_suffix` and its BatchNorm's is
    /// the same with `bn_suffix` instead (`conv_s1` → `bn_s1`).
    pub fn with_suffixes(conv_suffix: &str, bn_suffix: &str, eps: f64) -> Self {
        let (c, b) = (conv_suffix.to_string(), bn_suffix.to_string());
        Self::new(eps, move |prefix| {
            prefix
                .strip_suffix(c.as_str())
                .map(|stem| format!("{stem}{b}"))
        })
    }

    /// `(conv prefix, bn prefix, is_weight)` when `name` is a foldable conv's weight or bias.
    fn target(&self, name: &str, source: &TensorSource<'_>) -> Option<(String, String, bool)> {
        let (prefix, is_weight) = if let Some(p) = name.strip_suffix(".weight") {
            (p, true)
        } else if let Some(p) = name.strip_suffix(".bias") {
            (p, false)
        } else {
            return None;
        };
        let bn = (self.rule)(prefix)?;
        let ok = source.contains(&format!("{prefix}.weight"))
            && source.contains(&format!("{bn}.running_mean"))
            && source.contains(&format!("{bn}.running_var"));
        ok.then(|| (prefix.to_string(), bn, is_weight))
    }
}

impl Transform for FoldBatchNorm {
    fn apply(&self, name: &str, source: &TensorSource<'_>) -> candle_core::Result<Option<Tensor>> {
        let Some((conv, bn, is_weight)) = self.target(name, source) else {
            return Ok(None);
        };
        let get = |n: &str| -> candle_core::Result<Option<Tensor>> {
            source.get(n)?.map(|t| t.to_dtype(DType::F64)).transpose()
        };
        let need = |n: String| -> candle_core::Result<Tensor> {
            get(&n)?.ok_or_else(|| candle_core::Error::CannotFindTensor { path: n }.bt())
        };
        let w = source
            .get(&format!("{conv}.weight"))?
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: conv.clone() }.bt())?;
        let stored = w.dtype();
        let w = w.to_dtype(DType::F64)?;
        let out = w.dim(0)?;
        let cpu = Device::Cpu;
        let mean = need(format!("{bn}.running_mean"))?;
        let var = need(format!("{bn}.running_var"))?;
        let gamma = match get(&format!("{bn}.weight"))? {
            Some(g) => g,
            None => Tensor::ones(out, DType::F64, &cpu)?,
        };
        let beta = match get(&format!("{bn}.bias"))? {
            Some(b) => b,
            None => Tensor::zeros(out, DType::F64, &cpu)?,
        };
        let scale = gamma.div(&(var + self.eps)?.sqrt()?)?;
        let folded = if is_weight {
            let mut shape = vec![1usize; w.rank()];
            shape[0] = out;
            w.broadcast_mul(&scale.reshape(shape)?)?
        } else {
            let b = match get(&format!("{conv}.bias"))? {
                Some(b) => b,
                None => Tensor::zeros(out, DType::F64, &cpu)?,
            };
            ((b - mean)? * scale)?.add(&beta)?
        };
        Ok(Some(folded.to_dtype(self.dtype.unwrap_or(stored))?))
    }

    fn provides(&self, name: &str, source: &TensorSource<'_>) -> bool {
        self.target(name, source).is_some()
    }
}

/// One memory-mapped safetensors file.
struct SafetensorsFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
    /// Byte offset of the data section (after the 8-byte length and the JSON header).
    data_start: usize,
    meta: safetensors::tensor::Metadata,
}

enum Part {
    Safetensors(SafetensorsFile),
    Pickle(candle_core::pickle::PthTensors, PathBuf),
    Memory(HashMap<String, Tensor>),
}

/// The stored tensors of every file of a checkpoint, by name.
struct Store {
    parts: Vec<Part>,
    /// Name → index in `parts` (a name in several files: the last one).
    routing: HashMap<String, usize>,
}

impl Store {
    fn load(&self, name: &str, device: &Device) -> candle_core::Result<Option<Tensor>> {
        let Some(&i) = self.routing.get(name) else {
            return Ok(None);
        };
        match &self.parts[i] {
            Part::Safetensors(f) => {
                let Some(info) = f.meta.info(name) else {
                    return Ok(None);
                };
                let (a, b) = info.data_offsets;
                let (start, end) = (f.data_start + a, f.data_start + b);
                if end > f.mmap.len() || start > end {
                    candle_core::bail!(
                        "{}: tensor {name} lies outside the file (truncated?)",
                        f.path.display()
                    );
                }
                let view = safetensors::tensor::TensorView::new(
                    info.dtype,
                    info.shape.clone(),
                    &f.mmap[start..end],
                )
                .map_err(|e| {
                    candle_core::Error::Msg(format!("{}: {name}: {e}", f.path.display()))
                })?;
                let t = view.load(device)?;
                // The tensor is copied out; let the kernel drop its pages from this process
                // so the file is not held a second time beside the weights.
                #[cfg(unix)]
                if end > start {
                    // SAFETY: the mapping is read-only and private to this struct; no slice
                    // into this range outlives `view` (dropped above by `load` returning an
                    // owned tensor). After MADV_DONTNEED a read faults the pages in again
                    // from the file, with the same contents.
                    let _ = unsafe {
                        f.mmap.unchecked_advise_range(
                            memmap2::UncheckedAdvice::DontNeed,
                            start,
                            end - start,
                        )
                    };
                }
                Ok(Some(t))
            }
            Part::Pickle(p, path) => match p.get(name) {
                Ok(Some(t)) => Ok(Some(t.to_device(device)?)),
                Ok(None) => Ok(None),
                Err(e) => Err(candle_core::Error::Msg(format!(
                    "{}: cannot read tensor {name}: {e}",
                    path.display()
                ))),
            },
            Part::Memory(m) => m.get(name).map(|t| t.to_device(device)).transpose(),
        }
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let &i = self.routing.get(name)?;
        match &self.parts[i] {
            Part::Safetensors(f) => f.meta.info(name).map(|i| i.shape.clone()),
            Part::Pickle(p, _) => p
                .tensor_infos()
                .get(name)
                .map(|i| i.layout.shape().dims().to_vec()),
            Part::Memory(m) => m.get(name).map(|t| t.dims().to_vec()),
        }
    }
}

#[derive(Default)]
struct Problems {
    missing: BTreeSet<String>,
    mismatched: Vec<String>,
}

type RenameFn = dyn Fn(&str) -> String + Send + Sync;

struct Inner {
    path: PathBuf,
    store: Arc<Store>,
    rename: Option<Arc<RenameFn>>,
    transforms: Vec<Arc<dyn Transform>>,
    problems: Mutex<Problems>,
}

impl Inner {
    fn stored_name(&self, name: &str) -> String {
        match &self.rename {
            Some(f) => f(name),
            None => name.to_string(),
        }
    }

    /// The tensor the model asks for as `name`: through the transforms, else stored.
    fn resolve(&self, name: &str, device: &Device) -> candle_core::Result<Option<Tensor>> {
        let stored = self.stored_name(name);
        let source = TensorSource { store: &self.store };
        for t in &self.transforms {
            if let Some(x) = t.apply(&stored, &source)? {
                return Ok(Some(x.to_device(device)?));
            }
        }
        self.store.load(&stored, device)
    }

    fn contains(&self, name: &str) -> bool {
        let stored = self.stored_name(name);
        let source = TensorSource { store: &self.store };
        self.store.routing.contains_key(&stored)
            || self.transforms.iter().any(|t| t.provides(&stored, &source))
    }

    fn label(&self, name: &str) -> String {
        let stored = self.stored_name(name);
        if stored == name {
            name.to_string()
        } else {
            format!("{name} (stored as {stored})")
        }
    }

    fn problems(&self) -> std::sync::MutexGuard<'_, Problems> {
        self.problems.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The [`SimpleBackend`] of [`Checkpoint::var_builder`].
struct Recording(Arc<Inner>);

fn strip_ones(dims: &[usize]) -> Vec<usize> {
    dims.iter().copied().filter(|&d| d != 1).collect()
}

impl SimpleBackend for Recording {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        match self.0.resolve(name, dev)? {
            Some(t) => {
                if t.shape() == &s {
                    return t.to_dtype(dtype);
                }
                if t.elem_count() == s.elem_count() && strip_ones(t.dims()) == strip_ones(s.dims())
                {
                    return t.reshape(s)?.to_dtype(dtype);
                }
                self.0.problems().mismatched.push(format!(
                    "{}: expected {:?}, found {:?}",
                    self.0.label(name),
                    s.dims(),
                    t.dims()
                ));
            }
            None => {
                self.0.problems().missing.insert(self.0.label(name));
            }
        }
        Tensor::zeros(s, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.0.resolve(name, dev)? {
            Some(t) => t.to_dtype(dtype),
            None => Err(candle_core::Error::Msg(format!(
                "{}: no tensor {}",
                self.0.path.display(),
                self.0.label(name)
            ))),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// A checkpoint: weight files read through candle-nn's [`VarBuilder`].
///
/// It opens safetensors files (memory-mapped), sharded checkpoints
/// (`*.safetensors.index.json`, `*.bin.index.json`) and PyTorch pickles (`.bin`, `.pt`,
/// `.pth`, zip format), and hands out a [`VarBuilder`] whose backend
///
/// - reads each tensor from the file when the model asks for it, converting it to the
///   requested type on the requested device — the weights are held once, in the model, and
///   the mapped file pages of a tensor are released as soon as it is copied out;
/// - records EVERY tensor that is missing or has another shape instead of failing at the
///   first, handing a zero placeholder back so that construction continues; then
///   [`Checkpoint::finish`] fails with one [`ModelError::Weights`] naming them all and the
///   file;
/// - accepts a shape that differs only by axes of size 1 (`cls_token` stored `[1, 1, d]`,
///   asked for as `[d]`);
/// - can rename keys ([`Checkpoint::with_rename`]), so a model written for one key layout
///   reads another (original vs diffusers names, a `model.` prefix...);
/// - can build tensors on load ([`Checkpoint::with_transform`]), such as folding a
///   BatchNorm into the convolution before it ([`FoldBatchNorm`]).
///
/// ```
/// use std::collections::HashMap;
/// use reelsmith_models::candle_core::{DType, Device, Tensor};
/// use reelsmith_models::{Checkpoint, ModelError};
///
/// let dev = Device::Cpu;
/// let tensors = HashMap::from([
///     ("model.fc.weight".to_string(), Tensor::zeros((4, 3), DType::F32, &dev)?),
/// ]);
/// // a model written without the `model.` prefix, reading this layout
/// let ckpt = Checkpoint::from_tensors(tensors, "weights.safetensors")
///     .with_rename(|name| format!("model.{name}"));
/// let vb = ckpt.var_builder(DType::F32, &dev);
/// assert!(vb.get((4, 3), "fc.weight").is_ok());
/// let _ = vb.get(4, "fc.bias")?; // missing: a placeholder, recorded
/// let _ = vb.get((2, 2), "fc.weight")?; // wrong shape: recorded too
/// match ckpt.finish() {
///     Err(ModelError::Weights { missing, mismatched, .. }) => {
///         assert_eq!(missing, ["fc.bias (stored as model.fc.bias)"]);
///         assert_eq!(mismatched.len(), 1);
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Checkpoint {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.inner.path)
            .field("tensors", &self.inner.store.routing.len())
            .finish_non_exhaustive()
    }
}

/// The shard file names listed in a `*.index.json` (its `weight_map` values, sorted, once
/// each).
pub(crate) fn shard_names(index: &Path) -> Result<Vec<String>, ModelError> {
    let v: serde_json::Value = crate::read_config(index)?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| {
            ModelError::config(
                index,
                "not a sharded-checkpoint index: it has no weight_map",
            )
        })?;
    let mut shards: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    shards.sort_unstable();
    shards.dedup();
    if shards.is_empty() {
        return Err(ModelError::config(index, "the weight_map lists no files"));
    }
    if let Some(bad) = shards
        .iter()
        .find(|s| s.contains("..") || Path::new(s).is_absolute())
    {
        return Err(ModelError::config(
            index,
            format!("shard {bad:?} points outside the checkpoint folder"),
        ));
    }
    Ok(shards)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Format {
    Safetensors,
    Pickle,
}

fn sniff(path: &Path) -> Result<Format, ModelError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut head = [0u8; 9];
    let n = f.read(&mut head).map_err(|e| ModelError::io(path, e))?;
    if n >= 4 && &head[..4] == b"PK\x03\x04" {
        return Ok(Format::Pickle);
    }
    if n == 9 && head[8] == b'{' {
        return Ok(Format::Safetensors);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".safetensors") {
        return Ok(Format::Safetensors);
    }
    if [".bin", ".pt", ".pth", ".ckpt"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        return Ok(Format::Pickle);
    }
    Err(ModelError::config(
        path,
        "neither safetensors nor a PyTorch zip checkpoint; convert it to safetensors",
    ))
}

fn open_safetensors(path: &Path) -> Result<SafetensorsFile, ModelError> {
    let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    // SAFETY: the file is mapped read-only; as with every memory-mapped file, it must not
    // be truncated or rewritten by another process while the checkpoint is open.
    let mmap =
        unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(|e| ModelError::io(path, e))?;
    let (header, meta) = safetensors::SafeTensors::read_metadata(&mmap[..]).map_err(|e| {
        ModelError::config(
            path,
            format!(
                "cannot read as safetensors: {e}; the file may be truncated or of another format"
            ),
        )
    })?;
    Ok(SafetensorsFile {
        path: path.to_path_buf(),
        mmap,
        data_start: 8 + header,
        meta,
    })
}

fn open_pickle(path: &Path) -> Result<candle_core::pickle::PthTensors, ModelError> {
    let bad = |e: candle_core::Error| {
        ModelError::config(
            path,
            format!(
                "cannot read as a PyTorch checkpoint: {e}; re-save it with torch.save (zip format) or convert it to safetensors"
            ),
        )
    };
    let p = candle_core::pickle::PthTensors::new(path, None).map_err(bad)?;
    if p.tensor_infos().is_empty() {
        // training checkpoints keep the weights under `state_dict`
        if let Ok(s) = candle_core::pickle::PthTensors::new(path, Some("state_dict")) {
            if !s.tensor_infos().is_empty() {
                return Ok(s);
            }
        }
    }
    Ok(p)
}

impl Checkpoint {
    /// Opens a weights file: `*.safetensors` (memory-mapped), a `*.index.json` of shards
    /// (safetensors or pickles, in the index's folder), or a PyTorch zip pickle (`.bin`,
    /// `.pt`, `.pth`; a `state_dict` entry is used where the top level holds no tensors).
    /// The format is recognised from the file's first bytes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(ModelError::not_found(
                path,
                "no such weights file; check the path",
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let files: Vec<PathBuf> = if name.ends_with(".index.json") {
            let dir = path.parent().unwrap_or(Path::new("."));
            shard_names(path)?.iter().map(|s| dir.join(s)).collect()
        } else {
            vec![path.to_path_buf()]
        };
        let ckpt = Self::open_files(&files)?;
        Ok(ckpt.with_settings(|i| i.path = path.to_path_buf()))
    }

    /// Opens several weight files as one checkpoint (a name in several files: the last
    /// one). Errors name the file at fault.
    pub fn open_files(paths: &[impl AsRef<Path>]) -> Result<Self, ModelError> {
        let Some(first) = paths.first() else {
            return Err(ModelError::InvalidInput("no weight files given".into()));
        };
        let mut parts = Vec::with_capacity(paths.len());
        let mut routing = HashMap::new();
        for (i, p) in paths.iter().enumerate() {
            let p = p.as_ref();
            if !p.is_file() {
                return Err(ModelError::not_found(
                    p,
                    "weight file missing (a shard listed in the index, or a wrong path)",
                ));
            }
            let part = match sniff(p)? {
                Format::Safetensors => {
                    let f = open_safetensors(p)?;
                    for name in f.meta.tensors().keys() {
                        routing.insert(name.clone(), i);
                    }
                    Part::Safetensors(f)
                }
                Format::Pickle => {
                    let t = open_pickle(p)?;
                    for name in t.tensor_infos().keys() {
                        routing.insert(name.clone(), i);
                    }
                    Part::Pickle(t, p.to_path_buf())
                }
            };
            parts.push(part);
        }
        Ok(Self::from_store(
            first.as_ref().to_path_buf(),
            Store { parts, routing },
        ))
    }

    /// A checkpoint of tensors in memory (converted weights, tests); `label` stands for the
    /// file in error messages.
    pub fn from_tensors(tensors: HashMap<String, Tensor>, label: impl Into<PathBuf>) -> Self {
        let routing = tensors.keys().map(|k| (k.clone(), 0)).collect();
        Self::from_store(
            label.into(),
            Store {
                parts: vec![Part::Memory(tensors)],
                routing,
            },
        )
    }

    fn from_store(path: PathBuf, store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                store: Arc::new(store),
                rename: None,
                transforms: Vec::new(),
                problems: Mutex::new(Problems::default()),
            }),
        }
    }

    /// A handle on the same files with changed settings (var builders made before keep
    /// theirs; the problem record starts empty).
    fn with_settings(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Inner {
            path: self.inner.path.clone(),
            store: self.inner.store.clone(),
            rename: self.inner.rename.clone(),
            transforms: self.inner.transforms.clone(),
            problems: Mutex::new(Problems::default()),
        };
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Renames keys: a model asks for `name`, the checkpoint is read at `rename(name)`
    /// (errors show both). Applies to var builders made afterwards.
    pub fn with_rename(self, rename: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.with_settings(|i| i.rename = Some(Arc::new(rename)))
    }

    /// Adds an on-load transform (tried in the order added, after renaming, before the
    /// plain lookup). Applies to var builders made afterwards.
    pub fn with_transform(self, t: impl Transform + 'static) -> Self {
        self.with_settings(|i| i.transforms.push(Arc::new(t)))
    }

    /// The file (the index for sharded checkpoints), as used in error messages.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The weight files read (every shard of a sharded checkpoint, in the index's sorted
    /// order; none for [`Checkpoint::from_tensors`]).
    pub fn files(&self) -> Vec<PathBuf> {
        self.inner
            .store
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Safetensors(f) => Some(f.path.clone()),
                Part::Pickle(_, path) => Some(path.clone()),
                Part::Memory(_) => None,
            })
            .collect()
    }

    /// Names of the stored tensors, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.store.routing.keys().cloned().collect();
        v.sort_unstable();
        v
    }

    /// Whether a tensor is stored under `name` (no renaming).
    pub fn contains(&self, name: &str) -> bool {
        self.inner.store.routing.contains_key(name)
    }

    /// The stored shape of `name` (no renaming), without reading the tensor.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.inner.store.shape(name)
    }

    /// The stored tensor `name` (no renaming, no transforms) as `dtype` on `device`.
    pub fn tensor(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor, ModelError> {
        match self.inner.store.load(name, device)? {
            Some(t) => Ok(t.to_dtype(dtype)?),
            None => Err(ModelError::Weights {
                path: self.inner.path.clone(),
                missing: vec![name.to_string()],
                mismatched: Vec::new(),
            }),
        }
    }

    /// A [`VarBuilder`] reading this checkpoint as `dtype` on `device`, recording missing
    /// and misshapen tensors for [`Checkpoint::finish`].
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(
            Box::new(Recording(self.inner.clone())),
            dtype,
            device.clone(),
        )
    }

    /// Fails with [`ModelError::Weights`] naming every tensor the var builders found
    /// missing or misshapen since the last call; call it after building the model.
    pub fn finish(&self) -> Result<(), ModelError> {
        let p = std::mem::take(&mut *self.inner.problems());
        if p.missing.is_empty() && p.mismatched.is_empty() {
            Ok(())
        } else {
            Err(ModelError::Weights {
                path: self.inner.path.clone(),
                missing: p.missing.into_iter().collect(),
                mismatched: p.mismatched,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A half-precision checkpoint folded with `in_dtype(F32)` keeps the f64 fold's
    /// precision in f32; without it, the folded weight is rounded to f16 first.
    #[test]
    fn folding_a_half_checkpoint_into_f32_rounds_once() {
        let dev = Device::Cpu;
        let h = |v: &[f32]| Tensor::new(v, &dev).unwrap().to_dtype(DType::F16).unwrap();
        let tensors = HashMap::from([
            ("c.conv_s1.weight".to_string(), h(&[1.0, 1.0])),
            ("c.conv_s1.bias".to_string(), h(&[0.0, 0.0])),
            ("c.bn_s1.weight".to_string(), h(&[1.0, 1.0])),
            ("c.bn_s1.bias".to_string(), h(&[0.0, 0.0])),
            ("c.bn_s1.running_mean".to_string(), h(&[0.0, 0.0])),
            ("c.bn_s1.running_var".to_string(), h(&[3.0, 7.0])),
        ]);
        let fold = || FoldBatchNorm::with_suffixes("conv_s1", "bn_s1", 0.0);
        let read = |ckpt: Checkpoint| {
            let w = ckpt
                .var_builder(DType::F32, &dev)
                .get(2, "c.conv_s1.weight")
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            ckpt.finish().unwrap();
            w
        };
        let exact = [1.0 / 3f64.sqrt(), 1.0 / 7f64.sqrt()];
        let f32_fold = read(
            Checkpoint::from_tensors(tensors.clone(), "h.pth")
                .with_transform(fold().in_dtype(DType::F32)),
        );
        let f16_fold = read(Checkpoint::from_tensors(tensors, "h.pth").with_transform(fold()));
        for i in 0..2 {
            assert_eq!(f32_fold[i], exact[i] as f32);
            assert!((f16_fold[i] as f64 - exact[i]).abs() > 1e-5, "{f16_fold:?}");
        }
    }

    #[test]
    fn files_lists_every_shard() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sharded");
        let ckpt = Checkpoint::open(Path::new(dir).join("model.safetensors.index.json")).unwrap();
        let files = ckpt.files();
        assert!(files.len() >= 2, "{files:?}");
        assert!(files.iter().all(|f| f.is_file() && f.starts_with(dir)));
        let mem = Checkpoint::from_tensors(HashMap::new(), "mem");
        assert!(mem.files().is_empty());
    }
}
