//! Low-rank adapters (LoRA) for dense layers, and their files.
//!
//! A [`LoraLayer`] adds `scale · (alpha / rank) · up(down(dropout(x)))` to the output of a
//! frozen dense layer `y = x Wᵀ + b`: `down` `[rank, in]` starts Kaiming-uniform, `up`
//! `[out, rank]` starts at zero (so the adapted model starts equal to the base), and only
//! these two [`Var`]s train. [`LoraLayer::delta_weight`] gives the same change as a weight
//! update, for merging into the base weight.
//!
//! Which layers get an adapter is chosen by module-name patterns ([`LoraConfig::targets`],
//! [`pattern_matches`]). Files are safetensors in either of the two namings in use
//! ([`LoraNaming`]): PEFT/diffusers (`<prefix>.<module>.lora_A.weight`, `.lora_B.weight`)
//! and kohya/musubi (`lora_unet_<module with _>.lora_down.weight`, `.lora_up.weight`,
//! `.alpha`). Model crates map their own module names to the names in the file; the
//! parsing here keeps the stored module names as they are.
//!
//! ```
//! use reelsmith_models::candle_core::{DType, Device, Tensor};
//! use reelsmith_models::{LoraLayer, SeededRng};
//!
//! let mut rng = SeededRng::new(0);
//! let lora = LoraLayer::new(8, 4, 2, 2.0, &mut rng, DType::F32, &Device::Cpu)?;
//! let x = Tensor::ones((3, 8), DType::F32, &Device::Cpu)?;
//! // `up` starts at zero: the adapter adds nothing until it is trained.
//! let d = lora.delta(&x, 1.0, 0.0, None)?;
//! assert_eq!(d.dims(), &[3, 4]);
//! assert_eq!(d.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
//! # Ok::<(), reelsmith_models::ModelError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::rng::SeededRng;

type Result<T> = std::result::Result<T, ModelError>;

/// Which layers get adapters and how large they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the update (`down` is `[rank, in]`, `up` is `[out, rank]`).
    pub rank: usize,
    /// The update is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Dropout probability on the adapter's input while training (0 = none).
    pub dropout: f64,
    /// Extra multiplier at use (1 = as trained).
    pub scale: f64,
    /// Module-name patterns (see [`pattern_matches`]); a layer gets an adapter when one
    /// matches.
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 16.0,
            dropout: 0.0,
            scale: 1.0,
            targets: Vec::new(),
        }
    }
}

impl LoraConfig {
    /// A configuration with this rank and alpha, no dropout, scale 1 and no targets.
    pub fn new(rank: usize, alpha: f64) -> Self {
        Self {
            rank,
            alpha,
            ..Self::default()
        }
    }

    /// Whether `name` is one of the targets.
    pub fn matches(&self, name: &str) -> bool {
        self.targets.iter().any(|p| pattern_matches(p, name))
    }

    /// Checks the values; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::InvalidInput(m));
        if self.rank == 0 {
            return bad("LoRA rank must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(format!("LoRA alpha must be positive; got {}", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!(
                "LoRA dropout must be in [0, 1); got {}",
                self.dropout
            ));
        }
        if !self.scale.is_finite() {
            return bad(format!("LoRA scale must be finite; got {}", self.scale));
        }
        if self.targets.is_empty() {
            return bad("LoRA targets: give at least one module-name pattern".into());
        }
        Ok(())
    }
}

/// Whether module `name` matches `pattern`. `*` matches any run of characters (dots
/// included); a pattern without `*` matches the whole name or a dotted suffix of it, as
/// PEFT's `target_modules` do (`to_q` matches `blocks.0.attn1.to_q`).
///
/// ```
/// use reelsmith_models::pattern_matches;
/// assert!(pattern_matches("blocks.*.attn1.to_q", "blocks.12.attn1.to_q"));
/// assert!(pattern_matches("to_q", "blocks.0.attn2.to_q"));
/// assert!(!pattern_matches("to_q", "blocks.0.attn2.to_qk"));
/// assert!(!pattern_matches("blocks.*.ffn.net.2", "blocks.0.attn1.to_q"));
/// ```
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name == pattern || name.ends_with(&format!(".{pattern}"));
    }
    glob(pattern.as_bytes(), name.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative matcher with backtracking to the last `*`.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// One low-rank adapter: `down` `[rank, in]` and `up` `[out, rank]`, both trainable.
#[derive(Debug, Clone)]
pub struct LoraLayer {
    down: Var,
    up: Var,
    alpha: f64,
}

impl LoraLayer {
    /// A fresh adapter: `down` Kaiming-uniform (PEFT's default, bound `1/sqrt(in)`) from
    /// `rng`, `up` zero.
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        rank: usize,
        alpha: f64,
        rng: &mut SeededRng,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let bound = 1.0 / (in_dim.max(1) as f64).sqrt();
        let down = rng.rand_uniform((rank, in_dim), -bound, bound, dtype, device)?;
        let up = Tensor::zeros((out_dim, rank), dtype, device)?;
        Self::from_tensors(&down, &up, alpha)
    }

    /// An adapter from its tensors (copied into new [`Var`]s).
    pub fn from_tensors(down: &Tensor, up: &Tensor, alpha: f64) -> Result<Self> {
        let (r, _) = down.dims2()?;
        let (_, r2) = up.dims2()?;
        if r != r2 {
            return Err(ModelError::InvalidInput(format!(
                "LoRA down {:?} and up {:?} disagree on the rank",
                down.dims(),
                up.dims()
            )));
        }
        Ok(Self {
            down: Var::from_tensor(&down.copy()?)?,
            up: Var::from_tensor(&up.copy()?)?,
            alpha,
        })
    }

    /// `down` `[rank, in]` (`lora_A` / `lora_down`).
    pub fn down(&self) -> &Var {
        &self.down
    }

    /// `up` `[out, rank]` (`lora_B` / `lora_up`).
    pub fn up(&self) -> &Var {
        &self.up
    }

    /// The two trainable tensors.
    pub fn vars(&self) -> [&Var; 2] {
        [&self.down, &self.up]
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.down.dims()[0]
    }

    /// Input features.
    pub fn in_dim(&self) -> usize {
        self.down.dims()[1]
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.up.dims()[0]
    }

    /// Alpha (the update is scaled by `alpha / rank`).
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// `scale · alpha / rank`.
    pub fn multiplier(&self, scale: f64) -> f64 {
        scale * self.alpha / self.rank() as f64
    }

    /// The adapter's contribution for `x` `[.., in]` → `[.., out]`. With `dropout > 0` and
    /// an `rng`, input elements are zeroed with that probability and the rest scaled by
    /// `1 / (1 − dropout)` (inverted dropout, as PEFT does while training).
    pub fn delta(
        &self,
        x: &Tensor,
        scale: f64,
        dropout: f64,
        rng: Option<&mut SeededRng>,
    ) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = self.in_dim();
        if dims.last() != Some(&in_dim) {
            return Err(ModelError::InvalidInput(format!(
                "LoRA input must end in {in_dim} features; got {dims:?}"
            )));
        }
        let rows = x.elem_count() / in_dim;
        let mut x2 = x.reshape((rows, in_dim))?;
        if let (true, Some(rng)) = (dropout > 0.0, rng) {
            let keep: Vec<f32> = (0..rows * in_dim)
                .map(|_| {
                    if rng.uniform(0.0, 1.0) <= dropout {
                        0.0
                    } else {
                        (1.0 / (1.0 - dropout)) as f32
                    }
                })
                .collect();
            let mask = Tensor::from_vec(keep, (rows, in_dim), &Device::Cpu)?
                .to_dtype(x.dtype())?
                .to_device(x.device())?;
            x2 = (x2 * mask)?;
        }
        let down = self.down.as_tensor().to_dtype(x.dtype())?;
        let up = self.up.as_tensor().to_dtype(x.dtype())?;
        let h = x2.matmul(&down.t()?)?.matmul(&up.t()?)?;
        let h = (h * self.multiplier(scale))?;
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.out_dim();
        Ok(h.reshape(out)?)
    }

    /// The update as a weight `[out, in]`: `scale · alpha / rank · up · down`, detached.
    pub fn delta_weight(&self, scale: f64) -> Result<Tensor> {
        let w = self.up.as_tensor().matmul(self.down.as_tensor())?;
        Ok((w * self.multiplier(scale))?.detach())
    }
}

/// The two tensor namings of LoRA files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoraNaming {
    /// PEFT/diffusers: `<module>.lora_A.weight` (down), `<module>.lora_B.weight` (up); the
    /// alpha in the metadata (`lora_alpha`) or as `<module>.alpha`.
    Peft,
    /// kohya/musubi/VideoX-Fun: `<module>.lora_down.weight`, `<module>.lora_up.weight`,
    /// `<module>.alpha` (a scalar).
    Kohya,
}

/// One adapter as stored in a file, under its stored module name.
#[derive(Debug, Clone)]
pub struct StoredLora {
    /// `[rank, in]`.
    pub down: Tensor,
    /// `[out, rank]`.
    pub up: Tensor,
    /// The stored alpha, if the file has one for this module.
    pub alpha: Option<f64>,
}

/// The adapters of a LoRA file, by stored module name, with the file's naming and metadata.
#[derive(Debug, Clone)]
pub struct LoraFile {
    /// The naming the file uses.
    pub naming: LoraNaming,
    /// Adapters by the module name as stored (prefixes kept).
    pub layers: BTreeMap<String, StoredLora>,
    /// The safetensors metadata (string pairs), if any.
    pub metadata: HashMap<String, String>,
}

impl LoraFile {
    /// The alpha of a module: its own `.alpha`, else the metadata's `lora_alpha`, else the
    /// rank (PEFT's default when nothing says otherwise is `alpha = rank` only if so
    /// configured; files written here always record it).
    pub fn alpha_of(&self, name: &str) -> Option<f64> {
        let l = self.layers.get(name)?;
        l.alpha
            .or_else(|| {
                self.metadata
                    .get("lora_alpha")
                    .and_then(|a| a.parse::<f64>().ok())
            })
            .or(Some(l.down.dims()[0] as f64))
    }
}

/// Reads a LoRA safetensors file in either naming. Errors name the file and what is wrong.
pub fn read_lora_file(path: &Path, device: &Device) -> Result<LoraFile> {
    Ok(read_lora_file_split(path, device, &|_| false)?.0)
}

/// [`read_lora_file`] for files that hold other tensors beside the adapters (such as a
/// model's extra trained layers under their own key prefix): the tensors whose names
/// `is_extra` accepts are returned apart, by name, instead of being parsed as LoRA
/// tensors.
pub fn read_lora_file_split(
    path: &Path,
    device: &Device,
    is_extra: &dyn Fn(&str) -> bool,
) -> Result<(LoraFile, BTreeMap<String, Tensor>)> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let cfg_err = |m: String| ModelError::Config {
        path: path.to_path_buf(),
        message: m,
    };
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| cfg_err(format!("not a safetensors file: {e}")))?;
    let metadata: HashMap<String, String> = meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| cfg_err(format!("cannot read the tensors: {e}")))?;
    let mut downs = BTreeMap::new();
    let mut ups = BTreeMap::new();
    let mut alphas = BTreeMap::new();
    let mut extra = BTreeMap::new();
    let mut naming = None;
    let mut set_naming = |n: LoraNaming, key: &str| -> Result<()> {
        match naming {
            Some(m) if m != n => Err(cfg_err(format!(
                "mixes PEFT (lora_A/lora_B) and kohya (lora_down/lora_up) names (at {key}); write one naming per file"
            ))),
            _ => {
                naming = Some(n);
                Ok(())
            }
        }
    };
    for (key, t) in tensors {
        if is_extra(&key) {
            extra.insert(key, t);
        } else if let Some(m) = key.strip_suffix(".lora_A.weight") {
            set_naming(LoraNaming::Peft, &key)?;
            downs.insert(m.to_string(), t);
        } else if let Some(m) = key.strip_suffix(".lora_B.weight") {
            set_naming(LoraNaming::Peft, &key)?;
            ups.insert(m.to_string(), t);
        } else if let Some(m) = key.strip_suffix(".lora_down.weight") {
            set_naming(LoraNaming::Kohya, &key)?;
            downs.insert(m.to_string(), t);
        } else if let Some(m) = key.strip_suffix(".lora_up.weight") {
            set_naming(LoraNaming::Kohya, &key)?;
            ups.insert(m.to_string(), t);
        } else if let Some(m) = key.strip_suffix(".alpha") {
            let a = t
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?
                .first()
                .copied()
                .ok_or_else(|| cfg_err(format!("{key} is empty")))?;
            alphas.insert(m.to_string(), a);
        } else {
            return Err(cfg_err(format!(
                "{key} is not a LoRA tensor (expected names ending in .lora_A.weight/.lora_B.weight or .lora_down.weight/.lora_up.weight/.alpha)"
            )));
        }
    }
    let naming = naming.ok_or_else(|| cfg_err("holds no LoRA tensors".into()))?;
    let mut layers = BTreeMap::new();
    for (name, down) in downs {
        let up = ups
            .remove(&name)
            .ok_or_else(|| cfg_err(format!("{name} has a down (A) matrix but no up (B) matrix")))?;
        let (r, _) = down
            .dims2()
            .map_err(|_| cfg_err(format!("{name}: down must be 2D, got {:?}", down.dims())))?;
        let (_, r2) = up
            .dims2()
            .map_err(|_| cfg_err(format!("{name}: up must be 2D, got {:?}", up.dims())))?;
        if r != r2 {
            return Err(cfg_err(format!(
                "{name}: down {:?} and up {:?} disagree on the rank",
                down.dims(),
                up.dims()
            )));
        }
        let alpha = alphas.get(&name).copied();
        layers.insert(name, StoredLora { down, up, alpha });
    }
    if let Some(name) = ups.keys().next() {
        return Err(cfg_err(format!(
            "{name} has an up (B) matrix but no down (A) matrix"
        )));
    }
    Ok((
        LoraFile {
            naming,
            layers,
            metadata,
        },
        extra,
    ))
}

/// Writes adapters under the given stored module names in `naming`, with `metadata`
/// (PEFT files also get `lora_alpha`/`r` metadata when all alphas and ranks agree). Written
/// to a temporary file beside `path` and renamed, so the file is whole or absent.
pub fn write_lora_file(
    path: &Path,
    layers: &[(String, &LoraLayer)],
    naming: LoraNaming,
    metadata: &HashMap<String, String>,
) -> Result<()> {
    write_lora_file_with_extra(path, layers, naming, metadata, &[])
}

/// [`write_lora_file`] with other tensors stored beside the adapters under their own names
/// (read back apart by [`read_lora_file_split`]).
pub fn write_lora_file_with_extra(
    path: &Path,
    layers: &[(String, &LoraLayer)],
    naming: LoraNaming,
    metadata: &HashMap<String, String>,
    extra: &[(String, Tensor)],
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = extra.to_vec();
    for (name, l) in layers {
        let (d, u) = match naming {
            LoraNaming::Peft => ("lora_A.weight", "lora_B.weight"),
            LoraNaming::Kohya => ("lora_down.weight", "lora_up.weight"),
        };
        tensors.push((format!("{name}.{d}"), l.down.as_tensor().clone()));
        tensors.push((format!("{name}.{u}"), l.up.as_tensor().clone()));
        if naming == LoraNaming::Kohya {
            let a = Tensor::new(&[l.alpha as f32], &Device::Cpu)?.squeeze(0)?;
            tensors.push((format!("{name}.alpha"), a));
        }
    }
    let mut meta = metadata.clone();
    if naming == LoraNaming::Peft {
        if let Some((_, first)) = layers.first() {
            if layers
                .iter()
                .all(|(_, l)| l.alpha == first.alpha && l.rank() == first.rank())
            {
                meta.entry("lora_alpha".into())
                    .or_insert_with(|| first.alpha.to_string());
                meta.entry("r".into())
                    .or_insert_with(|| first.rank().to_string());
            }
        }
    }
    let views: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("safetensors.part");
    let data: Vec<(&str, &Tensor)> = views.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::serialize_to_file(data, Some(meta), &tmp).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    })?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grad_check::grad_check;

    fn trained(seed: u64) -> LoraLayer {
        let mut rng = SeededRng::new(seed);
        let l = LoraLayer::new(6, 5, 3, 4.0, &mut rng, DType::F64, &Device::Cpu).unwrap();
        l.up()
            .set(&rng.randn((5, 3), DType::F64, &Device::Cpu).unwrap())
            .unwrap();
        l
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "anything.at.all"));
        assert!(pattern_matches(
            "blocks.*.ffn.net.*",
            "blocks.3.ffn.net.0.proj"
        ));
        assert!(!pattern_matches(
            "blocks.*.ffn.net.0",
            "blocks.3.ffn.net.0.proj"
        ));
        assert!(pattern_matches("net.0.proj", "blocks.3.ffn.net.0.proj"));
        assert!(!pattern_matches("proj", "blocks.3.ffn.net.0.xproj"));
    }

    #[test]
    fn config_validation_names_the_setting() {
        let mut c = LoraConfig::new(0, 1.0);
        c.targets = vec!["to_q".into()];
        assert!(c.validate().unwrap_err().to_string().contains("rank"));
        c.rank = 2;
        c.dropout = 1.0;
        assert!(c.validate().unwrap_err().to_string().contains("dropout"));
        c.dropout = 0.1;
        assert!(c.validate().is_ok());
        c.targets.clear();
        assert!(c.validate().unwrap_err().to_string().contains("targets"));
    }

    /// `delta` equals `x · delta_weightᵀ`, so merging is exact up to rounding.
    #[test]
    fn delta_equals_delta_weight() {
        let l = trained(1);
        let x = crate::randn(2, (2, 4, 6), DType::F64, &Device::Cpu).unwrap();
        let a = l.delta(&x, 0.7, 0.0, None).unwrap();
        let w = l.delta_weight(0.7).unwrap();
        let b = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        let d: f64 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-12, "{d}");
    }

    /// Finite-difference gradients with respect to the input, `down` and `up`.
    #[test]
    fn gradients_are_true() {
        let l = trained(3);
        let x = crate::randn(4, (3, 6), DType::F64, &Device::Cpu).unwrap();
        let inputs = [x, l.down().as_tensor().clone(), l.up().as_tensor().clone()];
        let report = grad_check(&inputs, |t| {
            let l = LoraLayer {
                down: Var::from_tensor(&t[1])?,
                up: Var::from_tensor(&t[2])?,
                alpha: 4.0,
            };
            // (`Var::from_tensor` shares a variable input, so the gradient reaches it)
            l.delta(&t[0], 1.0, 0.0, None)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))
        })
        .unwrap();
        assert!(report.max_abs_error < 1e-6, "{report:?}");
        // and the layer's own Vars get gradients through `delta`
        let x = crate::randn(5, (3, 6), DType::F64, &Device::Cpu).unwrap();
        let loss = l.delta(&x, 1.0, 0.0, None).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        assert!(g.get(l.down().as_tensor()).is_some());
        assert!(g.get(l.up().as_tensor()).is_some());
    }

    #[test]
    fn dropout_is_seeded_and_inverted() {
        let l = trained(6);
        let x = Tensor::ones((50, 6), DType::F64, &Device::Cpu).unwrap();
        let a = l.delta(&x, 1.0, 0.5, Some(&mut SeededRng::new(9))).unwrap();
        let b = l.delta(&x, 1.0, 0.5, Some(&mut SeededRng::new(9))).unwrap();
        let c = l.delta(&x, 1.0, 0.0, None).unwrap();
        let diff = |p: &Tensor, q: &Tensor| -> f64 {
            (p - q)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        assert_eq!(diff(&a, &b), 0.0);
        assert!(diff(&a, &c) > 1e-3);
    }

    #[test]
    fn files_round_trip_in_both_namings() {
        let dir = tempfile::tempdir().unwrap();
        let (l1, l2) = (trained(7), trained(8));
        for naming in [LoraNaming::Peft, LoraNaming::Kohya] {
            let p = dir.path().join(format!("{naming:?}.safetensors"));
            let layers = vec![("m.a".to_string(), &l1), ("m.b".to_string(), &l2)];
            write_lora_file(&p, &layers, naming, &HashMap::new()).unwrap();
            let f = read_lora_file(&p, &Device::Cpu).unwrap();
            assert_eq!(f.naming, naming);
            assert_eq!(f.layers.len(), 2);
            let s = &f.layers["m.a"];
            assert_eq!(f.alpha_of("m.a"), Some(4.0));
            let d: f64 = (&s.up - l1.up().as_tensor())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(d, 0.0);
            assert!(!p.with_extension("safetensors.part").exists());
        }
    }

    #[test]
    fn malformed_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        let mut t = HashMap::new();
        t.insert(
            "m.lora_A.weight".to_string(),
            Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(),
        );
        candle_core::safetensors::save(&t, &p).unwrap();
        let e = read_lora_file(&p, &Device::Cpu).unwrap_err().to_string();
        assert!(
            e.contains("no up (B)") && e.contains("x.safetensors"),
            "{e}"
        );
        std::fs::write(&p, b"garbage").unwrap();
        assert!(read_lora_file(&p, &Device::Cpu).is_err());
    }
}
