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
#[derive(Debug, Clone)]
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
    scale: f64,
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
        Ok(Self {
            q,
            k,
            v,
            out,
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
        self.forward_cross(x, x, mask)
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
