//! LAION aesthetic predictor heads on CLIP image embeddings.

use std::path::{Path, PathBuf};

use reelsmith_core::{l2_norm, Embeddings};
use reelsmith_models::candle_core::{DType, Device, Tensor};
use reelsmith_models::{Checkpoint, ModelError};
use serde::{Deserialize, Serialize};

use crate::ScoreError;

/// A CLIP image tower family. Aesthetic heads are trained on the embeddings of one family
/// and are meaningless on another family's embeddings, even at the same width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClipFamily {
    /// ViT-B/32 (512-d).
    VitB32,
    /// ViT-B/16 (512-d).
    VitB16,
    /// ViT-L/14 at 224 px (768-d).
    VitL14,
    /// ViT-L/14 at 336 px (768-d).
    VitL14At336,
    /// ViT-H/14 (1024-d).
    VitH14,
    /// ViT-g/14 (1024-d).
    VitG14,
    /// ViT-bigG/14 (1280-d).
    VitBigG14,
}

impl ClipFamily {
    /// Embedding width of the family's image tower.
    pub fn dim(self) -> usize {
        match self {
            ClipFamily::VitB32 | ClipFamily::VitB16 => 512,
            ClipFamily::VitL14 | ClipFamily::VitL14At336 => 768,
            ClipFamily::VitH14 | ClipFamily::VitG14 => 1024,
            ClipFamily::VitBigG14 => 1280,
        }
    }

    /// The usual name, e.g. `ViT-B/32`.
    pub fn name(self) -> &'static str {
        match self {
            ClipFamily::VitB32 => "ViT-B/32",
            ClipFamily::VitB16 => "ViT-B/16",
            ClipFamily::VitL14 => "ViT-L/14",
            ClipFamily::VitL14At336 => "ViT-L/14@336px",
            ClipFamily::VitH14 => "ViT-H/14",
            ClipFamily::VitG14 => "ViT-g/14",
            ClipFamily::VitBigG14 => "ViT-bigG/14",
        }
    }

    /// Recognises the family in a model id or file name, case-insensitively:
    /// Hugging Face ids (`openai/clip-vit-base-patch32`, `laion/CLIP-ViT-H-14-…`),
    /// open_clip names (`ViT-B-32`, `ViT-L-14-336`) and the LAION head file names
    /// (`sa_0_4_vit_b_32_linear.pth`, `sac+logos+ava1-l14-linearMSE.pth`).
    ///
    /// ```
    /// use reelsmith_score::ClipFamily;
    /// assert_eq!(ClipFamily::detect("openai/clip-vit-base-patch32"), Some(ClipFamily::VitB32));
    /// assert_eq!(ClipFamily::detect("ViT-L-14-336"), Some(ClipFamily::VitL14At336));
    /// assert_eq!(ClipFamily::detect("sac+logos+ava1-l14-linearMSE.pth"), Some(ClipFamily::VitL14));
    /// assert_eq!(ClipFamily::detect("dinov2-small"), None);
    /// ```
    pub fn detect(text: &str) -> Option<ClipFamily> {
        let lower = text.to_ascii_lowercase();
        let compact: String = lower
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        // Longest, most specific spellings first.
        const LONG: &[(&str, ClipFamily)] = &[
            ("vitlargepatch14336", ClipFamily::VitL14At336),
            ("vitl14336", ClipFamily::VitL14At336),
            ("vitbigg14", ClipFamily::VitBigG14),
            ("vitbasepatch32", ClipFamily::VitB32),
            ("vitbasepatch16", ClipFamily::VitB16),
            ("vitlargepatch14", ClipFamily::VitL14),
            ("vithugepatch14", ClipFamily::VitH14),
            ("vitb32", ClipFamily::VitB32),
            ("vitb16", ClipFamily::VitB16),
            ("vitl14", ClipFamily::VitL14),
            ("vith14", ClipFamily::VitH14),
            ("vitg14", ClipFamily::VitG14),
        ];
        if let Some((_, f)) = LONG.iter().find(|(p, _)| compact.contains(p)) {
            return Some(*f);
        }
        // Short tokens such as `l14` in LAION head names must stand alone.
        const SHORT: &[(&str, ClipFamily)] = &[
            ("b32", ClipFamily::VitB32),
            ("b16", ClipFamily::VitB16),
            ("l14", ClipFamily::VitL14),
            ("h14", ClipFamily::VitH14),
        ];
        lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .find_map(|tok| SHORT.iter().find(|(p, _)| *p == tok).map(|(_, f)| *f))
    }
}

impl std::fmt::Display for ClipFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One affine layer `y = W·x + b`, `W` stored row-major `[out, in]`.
#[derive(Debug, Clone, PartialEq)]
struct Dense {
    weight: Vec<f32>,
    bias: Vec<f32>,
    input: usize,
    output: usize,
}

/// A LAION aesthetic predictor head: a chain of affine layers from a CLIP image embedding
/// to one score, applied to the L2-normalised embedding.
///
/// Both published kinds load:
/// - the linear heads (`sa_0_4_vit_*_linear.pth`): keys `weight` `[1, d]` and `bias` `[1]`;
/// - the improved predictor (`sac+logos+ava1-l14-linearMSE.pth`): keys `layers.N.weight` /
///   `layers.N.bias` for N = 0, 2, 4, 6, 7 (768→1024→128→64→16→1). The original model puts
///   only dropout between its linear layers (its activations are commented out), so at
///   inference the layers are applied back to back, in the order of N.
///
/// Scores are on the 1–10 rating scale of the training data (most photos land at 4–7);
/// see [`AestheticMapping`] for the 0..1 mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct AestheticHead {
    /// The layers collapsed into one affine map `w·x + b` (exact: there are no
    /// activations), computed in f64 at load time.
    w: Vec<f64>,
    b: f64,
    num_layers: usize,
    family: Option<ClipFamily>,
    source: String,
}

impl AestheticHead {
    /// Loads a head from a PyTorch `.pth` (zip pickle of a state dict) or a `.safetensors`
    /// file, read with [`reelsmith_models::Checkpoint`], with the key layout described on
    /// [`AestheticHead`]. The file format is recognised from its first bytes. The CLIP
    /// family is guessed from the file name ([`ClipFamily::detect`]); override it with
    /// [`AestheticHead::with_family`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ScoreError> {
        let path = path.as_ref();
        let head_err = |reason: String| ScoreError::Head {
            path: path.to_path_buf(),
            reason,
        };
        // PyTorch zip pickles (a `state_dict` entry where the top level holds no tensors)
        // and safetensors, recognised from the first bytes, through the shared loader.
        let ckpt = Checkpoint::open(path).map_err(|e| match e {
            ModelError::Io { path, source } => ScoreError::Io {
                path,
                error: source,
            },
            ModelError::Config { message, .. } => head_err(message),
            other => head_err(other.to_string()),
        })?;
        let tensors: Vec<(String, Tensor)> = ckpt
            .names()
            .into_iter()
            .map(|name| {
                let t = ckpt
                    .tensor(&name, DType::F32, &Device::Cpu)
                    .map_err(|e| head_err(format!("cannot read `{name}`: {e}")))?;
                Ok((name, t))
            })
            .collect::<Result<_, ScoreError>>()?;
        let mut head = Self::from_tensors(tensors).map_err(head_err)?;
        head.source = path.display().to_string();
        head.family = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(ClipFamily::detect);
        Ok(head)
    }

    /// Builds a head from raw layers `(weight [out × in] row-major, bias [out])`, in order.
    /// Fails unless the widths chain and the last layer has one output.
    pub fn from_layers(layers: Vec<(Vec<f32>, Vec<f32>)>) -> Result<Self, ScoreError> {
        let mut dense = Vec::with_capacity(layers.len());
        for (i, (weight, bias)) in layers.into_iter().enumerate() {
            let output = bias.len();
            if output == 0 || weight.len() % output != 0 || weight.is_empty() {
                return Err(ScoreError::Head {
                    path: PathBuf::new(),
                    reason: format!(
                        "layer {i}: a weight of {} values does not fit a bias of {output}",
                        weight.len()
                    ),
                });
            }
            let input = weight.len() / output;
            dense.push(Dense {
                weight,
                bias,
                input,
                output,
            });
        }
        Self::check_chain(&dense).map_err(|reason| ScoreError::Head {
            path: PathBuf::new(),
            reason,
        })?;
        let mut head = Self::collapse(&dense);
        head.source = "<memory>".into();
        Ok(head)
    }

    /// Folds the chain into one affine map, walking back from the output:
    /// `v ← v·W_k`, `b ← b + v·b_k`, starting from `v = W_last`, `b = b_last`.
    fn collapse(layers: &[Dense]) -> Self {
        let last = layers.last().expect("checked non-empty");
        let mut v: Vec<f64> = last.weight.iter().map(|&x| f64::from(x)).collect();
        let mut b = f64::from(last.bias[0]);
        for layer in layers[..layers.len() - 1].iter().rev() {
            b += v
                .iter()
                .zip(&layer.bias)
                .map(|(a, &c)| a * f64::from(c))
                .sum::<f64>();
            let mut next = vec![0f64; layer.input];
            for (a, row) in v.iter().zip(layer.weight.chunks_exact(layer.input)) {
                for (n, &w) in next.iter_mut().zip(row) {
                    *n += a * f64::from(w);
                }
            }
            v = next;
        }
        Self {
            w: v,
            b,
            num_layers: layers.len(),
            family: None,
            source: String::new(),
        }
    }

    fn from_tensors(tensors: Vec<(String, Tensor)>) -> Result<Self, String> {
        use std::collections::BTreeMap;
        // Group `<prefix>weight` / `<prefix>bias`; order groups by the last number in the
        // prefix (`layers.6.` < `layers.7.`), a bare `weight`/`bias` being the only layer.
        let mut groups: BTreeMap<(u64, String), (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
        for (name, t) in tensors {
            let (prefix, is_weight) = if let Some(p) = name.strip_suffix("weight") {
                (p.to_string(), true)
            } else if let Some(p) = name.strip_suffix("bias") {
                (p.to_string(), false)
            } else {
                return Err(format!(
                    "unexpected tensor `{name}`: an aesthetic head has only `weight`/`bias` keys"
                ));
            };
            let index = prefix
                .trim_end_matches('.')
                .rsplit('.')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            let e = groups.entry((index, prefix)).or_default();
            if is_weight {
                e.0 = Some(t);
            } else {
                e.1 = Some(t);
            }
        }
        if groups.is_empty() {
            return Err("the file holds no tensors".into());
        }
        let mut layers = Vec::with_capacity(groups.len());
        for ((_, prefix), (w, b)) in groups {
            let (Some(w), Some(b)) = (w, b) else {
                return Err(format!("layer `{prefix}` lacks its weight or its bias"));
            };
            let (out, inp) = match w.dims() {
                [o, i] => (*o, *i),
                d => {
                    return Err(format!(
                        "`{prefix}weight` has shape {d:?}, expected [out, in]"
                    ))
                }
            };
            if b.dims() != [out] {
                return Err(format!(
                    "`{prefix}bias` has shape {:?}, expected [{out}]",
                    b.dims()
                ));
            }
            let to_vec = |t: &Tensor| -> Result<Vec<f32>, String> {
                t.to_dtype(DType::F32)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(|e| format!("cannot read `{prefix}`: {e}"))
            };
            layers.push(Dense {
                weight: to_vec(&w)?,
                bias: to_vec(&b)?,
                input: inp,
                output: out,
            });
        }
        Self::check_chain(&layers)?;
        Ok(Self::collapse(&layers))
    }

    fn check_chain(layers: &[Dense]) -> Result<(), String> {
        if layers.is_empty() {
            return Err("no layers".into());
        }
        for (i, pair) in layers.windows(2).enumerate() {
            if pair[0].output != pair[1].input {
                return Err(format!(
                    "layer {i} gives {} values but layer {} takes {}",
                    pair[0].output,
                    i + 1,
                    pair[1].input
                ));
            }
        }
        let last = layers.last().expect("non-empty");
        if last.output != 1 {
            return Err(format!(
                "the last layer gives {} values; an aesthetic head gives one score",
                last.output
            ));
        }
        Ok(())
    }

    /// Sets the CLIP family the head was trained on (replacing the one guessed from its
    /// file name).
    pub fn with_family(mut self, family: Option<ClipFamily>) -> Self {
        self.family = family;
        self
    }

    /// The CLIP family the head was trained on, when known.
    pub fn family(&self) -> Option<ClipFamily> {
        self.family
    }

    /// Where the head was loaded from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Width of the embedding the head takes.
    pub fn input_dim(&self) -> usize {
        self.w.len()
    }

    /// Number of affine layers (1 for the linear heads, 5 for the improved predictor).
    pub fn num_layers(&self) -> usize {
        self.num_layers
    }

    /// Checks the head against an embedder: a width that differs from `dim` is an error
    /// ([`ScoreError::HeadDim`]); a known family that differs from the one recognised in
    /// `model_id` is logged with `tracing::warn!` and returned as a note, because the scores
    /// will be meaningless though computable.
    pub fn check_embedder(
        &self,
        dim: usize,
        model_id: Option<&str>,
    ) -> Result<Option<String>, ScoreError> {
        if dim != self.input_dim() {
            return Err(ScoreError::HeadDim {
                head: self.source.clone(),
                expected: self.input_dim(),
                got: dim,
            });
        }
        let model_family = model_id.and_then(ClipFamily::detect);
        if let (Some(h), Some(m)) = (self.family, model_family) {
            if h != m {
                let note = format!(
                    "aesthetic head {} was trained on CLIP {h} embeddings but the embedder {} is \
                     {m}: its scores will not be meaningful",
                    self.source,
                    model_id.unwrap_or_default()
                );
                tracing::warn!("{note}");
                return Ok(Some(note));
            }
        }
        Ok(None)
    }

    /// The raw aesthetic score (about 1–10) of one embedding, which is L2-normalised first
    /// (an all-zero embedding is used as is). Fails when its width is not
    /// [`AestheticHead::input_dim`].
    pub fn predict(&self, embedding: &[f32]) -> Result<f32, ScoreError> {
        if embedding.len() != self.input_dim() {
            return Err(ScoreError::HeadDim {
                head: self.source.clone(),
                expected: self.input_dim(),
                got: embedding.len(),
            });
        }
        let n = l2_norm(embedding);
        let scale = if n > 0.0 && n.is_finite() {
            1.0 / f64::from(n)
        } else {
            1.0
        };
        let dot: f64 = embedding
            .iter()
            .zip(&self.w)
            .map(|(&v, &w)| f64::from(v) * w)
            .sum();
        Ok((dot * scale + self.b) as f32)
    }

    /// Raw scores of every row of `embeddings`.
    pub fn predict_all(&self, embeddings: &Embeddings) -> Result<Vec<f32>, ScoreError> {
        embeddings.rows().map(|r| self.predict(r)).collect()
    }
}

/// Maps a raw aesthetic score to 0..1: `clamp((raw − low) / (high − low), 0, 1)`.
///
/// The default range is the 1–10 rating scale the LAION heads were trained on, so 0.5 is a
/// rating of 5.5. Narrow it (e.g. 3–8) to spread typical footage, which mostly rates 4–7.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AestheticMapping {
    /// Raw score mapped to 0.
    pub low: f32,
    /// Raw score mapped to 1.
    pub high: f32,
}

impl Default for AestheticMapping {
    fn default() -> Self {
        Self {
            low: 1.0,
            high: 10.0,
        }
    }
}

impl AestheticMapping {
    /// Applies the mapping; a degenerate range (`high <= low`) is a step at `low`.
    ///
    /// ```
    /// let m = reelsmith_score::AestheticMapping::default();
    /// assert_eq!(m.map(5.5), 0.5);
    /// assert_eq!(m.map(12.0), 1.0);
    /// ```
    pub fn map(&self, raw: f32) -> f32 {
        if !raw.is_finite() {
            return 0.0;
        }
        if self.high <= self.low {
            return if raw >= self.low { 1.0 } else { 0.0 };
        }
        ((raw - self.low) / (self.high - self.low)).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_families() {
        for (s, f) in [
            ("sa_0_4_vit_b_32_linear.pth", Some(ClipFamily::VitB32)),
            ("sa_0_4_vit_b_16_linear.pth", Some(ClipFamily::VitB16)),
            ("sa_0_4_vit_l_14_linear.pth", Some(ClipFamily::VitL14)),
            ("openai/clip-vit-large-patch14", Some(ClipFamily::VitL14)),
            (
                "openai/clip-vit-large-patch14-336",
                Some(ClipFamily::VitL14At336),
            ),
            (
                "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
                Some(ClipFamily::VitH14),
            ),
            (
                "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k",
                Some(ClipFamily::VitBigG14),
            ),
            ("ViT-B-16", Some(ClipFamily::VitB16)),
            ("random-tiny-clip", None),
        ] {
            assert_eq!(ClipFamily::detect(s), f, "{s}");
        }
    }

    #[test]
    fn layers_must_chain() {
        let ok = AestheticHead::from_layers(vec![
            (vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0]),
            (vec![2.0, 3.0], vec![1.0]),
        ])
        .unwrap();
        assert_eq!(ok.input_dim(), 2);
        // x = (0.6, 0.8) after normalisation → 2·0.6 + 3·0.8 + 1.
        assert!((ok.predict(&[3.0, 4.0]).unwrap() - 4.6).abs() < 1e-6);
        assert!(matches!(
            ok.predict(&[1.0]),
            Err(ScoreError::HeadDim {
                expected: 2,
                got: 1,
                ..
            })
        ));
        assert!(AestheticHead::from_layers(vec![(vec![1.0; 6], vec![0.0; 3])]).is_err());
        assert!(AestheticHead::from_layers(vec![
            (vec![1.0; 4], vec![0.0; 2]),
            (vec![1.0; 3], vec![0.0]),
        ])
        .is_err());
        assert!(AestheticHead::from_layers(vec![]).is_err());
    }

    #[test]
    fn family_mismatch_is_a_note_and_dim_mismatch_an_error() {
        let h = AestheticHead::from_layers(vec![(vec![0.0; 512], vec![5.0])])
            .unwrap()
            .with_family(Some(ClipFamily::VitB32));
        assert_eq!(
            h.check_embedder(512, Some("openai/clip-vit-base-patch32"))
                .unwrap(),
            None
        );
        assert_eq!(h.check_embedder(512, Some("unknown")).unwrap(), None);
        let note = h
            .check_embedder(512, Some("openai/clip-vit-base-patch16"))
            .unwrap()
            .unwrap();
        assert!(
            note.contains("ViT-B/32") && note.contains("ViT-B/16"),
            "{note}"
        );
        assert!(matches!(
            h.check_embedder(768, None),
            Err(ScoreError::HeadDim {
                expected: 512,
                got: 768,
                ..
            })
        ));
    }
}
