//! Multi-head attention and the two-layer MLP of transformer blocks.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::{Activation, Linear, LinearConfig};
use crate::ops::{self, AttentionMask};

/// Key names of an attention layer's four projections, relative to the layer's prefix
/// (they may contain dots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionNames {
    /// Query projection.
    pub q: &'static str,
    /// Key projection.
    pub k: &'static str,
    /// Value projection.
    pub v: &'static str,
    /// Output projection.
    pub out: &'static str,
}

impl AttentionNames {
    /// transformers' CLIP, SigLIP, ViT-style names: `q_proj`, `k_proj`, `v_proj`,
    /// `out_proj`.
    pub const HF: Self = Self {
        q: "q_proj",
        k: "k_proj",
        v: "v_proj",
        out: "out_proj",
    };
    /// diffusers' names: `to_q`, `to_k`, `to_v`, `to_out.0`.
    pub const DIFFUSERS: Self = Self {
        q: "to_q",
        k: "to_k",
        v: "to_v",
        out: "to_out.0",
    };
    /// transformers' DINOv2 / ViT names under `attention`: `attention.query`,
    /// `attention.key`, `attention.value`, `output.dense`.
    pub const VIT: Self = Self {
        q: "attention.query",
        k: "attention.key",
        v: "attention.value",
        out: "output.dense",
    };
}

impl Default for AttentionNames {
    fn default() -> Self {
        Self::HF
    }
}

/// Settings of an [`Attention`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionConfig {
    /// Width of the queries' stream (and of the output).
    pub dim: usize,
    /// Number of heads; `dim` must be a multiple.
    pub heads: usize,
    /// Width of the keys' and values' stream for cross-attention (`None`: `dim`).
    pub kv_dim: Option<usize>,
    /// Whether the query, key and value projections have biases.
    pub qkv_bias: bool,
    /// Whether the output projection has a bias.
    pub out_bias: bool,
    /// Key names of the projections.
    pub names: AttentionNames,
}

impl AttentionConfig {
    /// Self-attention with biases everywhere and transformers' names.
    pub fn new(dim: usize, heads: usize) -> Self {
        Self {
            dim,
            heads,
            kv_dim: None,
            qkv_bias: true,
            out_bias: true,
            names: AttentionNames::HF,
        }
    }
}

/// Multi-head attention, self or cross, with an optional mask: four linear projections
/// around [`ops::attention`] (fused on the CPU without gradients, composed and
/// differentiable otherwise).
///
/// ```
/// use reelsmith_models::candle_core::{DType, Device, Module, Tensor};
/// use reelsmith_models::candle_nn::VarMap;
/// use reelsmith_models::ops::AttentionMask;
/// use reelsmith_models::{seeded_var_builder, Attention, AttentionConfig};
///
/// let vars = VarMap::new();
/// let vb = seeded_var_builder(&vars, 0, DType::F32, &Device::Cpu);
/// let attn = Attention::new(vb.pp("attn"), &AttentionConfig::new(16, 4))?;
/// let x = Tensor::ones((2, 5, 16), DType::F32, &Device::Cpu)?;
/// assert_eq!(attn.forward(&x)?.dims(), &[2, 5, 16]);
/// let causal = attn.forward_masked(&x, AttentionMask::Causal)?;
/// let ctx = Tensor::ones((2, 7, 16), DType::F32, &Device::Cpu)?;
/// assert_eq!(attn.forward_cross(&x, &ctx, AttentionMask::None)?.dims(), &[2, 5, 16]);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// For inference on the CPU (f32 weights that track no gradient) the query, key and value
/// weights are laid out side by side in one `[in, q + k + v]` matrix when they are read, and
/// self-attention projects with one matrix product instead of three; the three projections
/// are views into that matrix, so the weights are still held once. Trainable weights
/// (variables) keep their own storage and the three products.
#[derive(Debug, Clone)]
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    /// The query, key and value projections as one layer (a view of the same storage),
    /// when they were fused for CPU inference.
    qkv: Option<Linear>,
    heads: usize,
    head_dim: usize,
    scale: f64,
}

/// The query, key and value projections of CPU inference weights laid out in one
/// `[in, q + k + v]` matrix (and one bias), returned as the fused layer and the three
/// projections re-pointed at views of it; `None` where they cannot be fused (a weight
/// that trains, another device or dtype, different input widths, biases on some only).
fn fuse_qkv(q: &Linear, k: &Linear, v: &Linear) -> Result<Option<(Linear, [Linear; 3])>> {
    let parts = [q, k, v];
    let weights: Vec<&Tensor> = parts.iter().map(|l| l.weight()).collect();
    if !ops::fused_cpu(&weights)
        || weights.iter().any(|w| w.rank() != 2)
        || k.in_dim() != q.in_dim()
        || v.in_dim() != q.in_dim()
    {
        return Ok(None);
    }
    let biases: Vec<&Tensor> = parts.iter().filter_map(|l| l.bias()).collect();
    if !(biases.is_empty() || biases.len() == 3 && ops::fused_cpu(&biases)) {
        return Ok(None);
    }
    // [in, q + k + v], contiguous: each weight [out, in] transposed into its columns
    let transposed = weights.iter().map(|w| w.t()).collect::<Result<Vec<_>>>()?;
    let wt = Tensor::cat(&transposed, 1)?.contiguous()?;
    let bias = if biases.is_empty() {
        None
    } else {
        Some(Tensor::cat(&biases, 0)?.contiguous()?)
    };
    let mut views = Vec::with_capacity(3);
    let mut start = 0;
    for part in parts {
        let n = part.out_dim();
        let w = wt.narrow(1, start, n)?.t()?;
        let b = bias.as_ref().map(|b| b.narrow(0, start, n)).transpose()?;
        views.push(Linear::from_weights(w, b));
        start += n;
    }
    let [vq, vk, vv]: [Linear; 3] = views
        .try_into()
        .map_err(|_| candle_core::Error::Msg("attention: three projections".into()))?;
    Ok(Some((Linear::from_weights(wt.t()?, bias), [vq, vk, vv])))
}

impl Attention {
    /// Reads the four projections under `cfg.names`.
    pub fn new(vb: VarBuilder, cfg: &AttentionConfig) -> Result<Self> {
        let kv = cfg.kv_dim.unwrap_or(cfg.dim);
        let lin = |name: &str, i, o, bias| {
            Linear::new(
                vb.pp(name),
                &LinearConfig {
                    in_dim: i,
                    out_dim: o,
                    bias,
                },
            )
        };
        Self::from_linears(
            lin(cfg.names.q, cfg.dim, cfg.dim, cfg.qkv_bias)?,
            lin(cfg.names.k, kv, cfg.dim, cfg.qkv_bias)?,
            lin(cfg.names.v, kv, cfg.dim, cfg.qkv_bias)?,
            lin(cfg.names.out, cfg.dim, cfg.dim, cfg.out_bias)?,
            cfg.heads,
        )
    }

    /// An attention layer from its projections; the queries' width must be a multiple of
    /// `heads` and the keys' equal to it.
    pub fn from_linears(
        q: Linear,
        k: Linear,
        v: Linear,
        out: Linear,
        heads: usize,
    ) -> Result<Self> {
        let dim = q.out_dim();
        if heads == 0 || !dim.is_multiple_of(heads) {
            candle_core::bail!("attention: width {dim} is not a multiple of {heads} heads");
        }
        if k.out_dim() != dim || !v.out_dim().is_multiple_of(heads) {
            candle_core::bail!(
                "attention: query width {dim}, key width {}, value width {} do not fit {heads} heads",
                k.out_dim(),
                v.out_dim()
            );
        }
        let head_dim = dim / heads;
        let (qkv, q, k, v) = match fuse_qkv(&q, &k, &v)? {
            Some((qkv, [q, k, v])) => (Some(qkv), q, k, v),
            None => (None, q, k, v),
        };
        Ok(Self {
            q,
            k,
            v,
            out,
            qkv,
            heads,
            head_dim,
            scale: 1.0 / (head_dim as f64).sqrt(),
        })
    }

    /// Number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Width of each head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The projections `(q, k, v, out)`.
    pub fn projections(&self) -> (&Linear, &Linear, &Linear, &Linear) {
        (&self.q, &self.k, &self.v, &self.out)
    }

    /// Self-attention of `x` `[b, t, dim]` with a mask.
    pub fn forward_masked(&self, x: &Tensor, mask: AttentionMask<'_>) -> Result<Tensor> {
        let Some(qkv) = &self.qkv else {
            return self.forward_cross(x, x, mask);
        };
        let (b, t, _) = x.dims3()?;
        let (h, d) = (self.heads, self.head_dim);
        let dv = self.v.out_dim() / h;
        // one product; q, k and v are strided views of its rows (no copies)
        let y = qkv.forward(x)?;
        let (q, k, v) = if dv == d {
            let y = y.reshape((b, t, 3, h, d))?;
            let part = |i: usize| y.narrow(2, i, 1)?.squeeze(2);
            (part(0)?, part(1)?, part(2)?)
        } else {
            let part = |start: usize, width: usize| {
                y.narrow(2, start, h * width)?.reshape((b, t, h, width))
            };
            (part(0, d)?, part(h * d, d)?, part(2 * h * d, dv)?)
        };
        let o = ops::attention(&q, &k, &v, mask, self.scale)?.reshape((b, t, h * dv))?;
        self.out.forward(&o)
    }

    /// Attention of the queries from `x` `[b, tq, dim]` to the keys and values from
    /// `context` `[b, tk, kv_dim]`.
    pub fn forward_cross(
        &self,
        x: &Tensor,
        context: &Tensor,
        mask: AttentionMask<'_>,
    ) -> Result<Tensor> {
        let (b, tq, _) = x.dims3()?;
        let (cb, tk, _) = context.dims3()?;
        if cb != b {
            candle_core::bail!("attention: {b} queries' batch but {cb} in the context");
        }
        let h = self.heads;
        let q = self.q.forward(x)?.reshape((b, tq, h, self.head_dim))?;
        let k = self
            .k
            .forward(context)?
            .reshape((b, tk, h, self.head_dim))?;
        let v = self.v.forward(context)?;
        let dv = v.dim(2)? / h;
        let v = v.reshape((b, tk, h, dv))?;
        let o = ops::attention(&q, &k, &v, mask, self.scale)?.reshape((b, tq, h * dv))?;
        self.out.forward(&o)
    }
}

impl Module for Attention {
    /// Self-attention without a mask.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_masked(x, AttentionMask::None)
    }
}

/// Settings of an [`Mlp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlpConfig {
    /// Input and output width.
    pub dim: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Activation between the layers.
    pub act: Activation,
    /// Whether both layers have biases.
    pub bias: bool,
    /// Key names of the two layers (default `fc1`, `fc2`; diffusers' feed-forward is
    /// `net.0.proj`, `net.2`).
    pub names: (&'static str, &'static str),
}

impl MlpConfig {
    /// An MLP with biases named `fc1`, `fc2`.
    pub fn new(dim: usize, hidden: usize, act: Activation) -> Self {
        Self {
            dim,
            hidden,
            act,
            bias: true,
            names: ("fc1", "fc2"),
        }
    }
}

/// The transformer MLP `fc2(act(fc1(x)))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl Mlp {
    /// Reads both layers under `cfg.names`.
    pub fn new(vb: VarBuilder, cfg: &MlpConfig) -> Result<Self> {
        let c = |i, o| LinearConfig {
            in_dim: i,
            out_dim: o,
            bias: cfg.bias,
        };
        Ok(Self {
            fc1: Linear::new(vb.pp(cfg.names.0), &c(cfg.dim, cfg.hidden))?,
            fc2: Linear::new(vb.pp(cfg.names.1), &c(cfg.hidden, cfg.dim))?,
            act: cfg.act,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.act.forward(&self.fc1.forward(x)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;
    use candle_core::{DType, Device, Var};

    fn randn(seed: u64, shape: &[usize]) -> Tensor {
        SeededRng::new(seed)
            .randn(shape, DType::F32, &Device::Cpu)
            .unwrap()
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.max(0))
            .and_then(|t| t.to_scalar::<f32>())
            .unwrap()
    }

    fn layer(weights: &[Tensor], bias: bool, trainable: bool, heads: usize) -> Attention {
        let lin = |i: usize| {
            let w = weights[2 * i].clone();
            let b = bias.then(|| weights[2 * i + 1].clone());
            if trainable {
                let w = Var::from_tensor(&w).unwrap().as_tensor().clone();
                let b = b.map(|b| Var::from_tensor(&b).unwrap().as_tensor().clone());
                Linear::from_weights(w, b)
            } else {
                Linear::from_weights(w, b)
            }
        };
        Attention::from_linears(lin(0), lin(1), lin(2), lin(3), heads).unwrap()
    }

    /// The fused QKV projection of inference weights gives the three separate products'
    /// numbers (the trainable layer keeps them separate), with and without biases, for
    /// values as wide as the keys and wider.
    #[test]
    fn fused_qkv_equals_separate_projections() {
        for (bias, dv) in [(true, 12), (false, 12), (true, 18)] {
            let (dim, heads) = (12, 3);
            let shapes = [
                vec![dim, dim],
                vec![dim],
                vec![dim, dim],
                vec![dim],
                vec![dv, dim],
                vec![dv],
                vec![dim, dv],
                vec![dim],
            ];
            let weights: Vec<Tensor> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| randn(i as u64, s))
                .collect();
            let fused = layer(&weights, bias, false, heads);
            let separate = layer(&weights, bias, true, heads);
            assert!(fused.qkv.is_some() && separate.qkv.is_none());
            let x = randn(99, &[2, 7, dim]);
            for mask in [AttentionMask::None, AttentionMask::Causal] {
                let a = fused.forward_masked(&x, mask).unwrap();
                let b = separate.forward_masked(&x, mask).unwrap();
                let scale = max_abs(&b);
                let d = max_abs(&(a - b).unwrap());
                // f32 sums in another order: relative to the output's magnitude
                assert!(
                    d <= 1e-6 * scale.max(1.0),
                    "bias {bias}, dv {dv}: {d} of {scale}"
                );
            }
            // the projections are views of the fused weight, read as before
            let y = fused.projections().2.forward(&x).unwrap();
            let z = separate.projections().2.forward(&x).unwrap();
            let d = max_abs(&(y - z).unwrap());
            assert!(d < 1e-5, "value projection view: {d}");
        }
    }
}
