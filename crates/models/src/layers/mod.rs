//! Layers written the candle-transformers way — a `Config`, `new(vb, &cfg)` reading the
//! weights through a [`VarBuilder`], [`Module::forward`] — that train: gradients reach
//! every weight and input (checked by finite differences in this crate's tests), while
//! inference on the CPU runs the fused kernels of [`crate::ops`].
//!
//! Weights are kept as the checkpoint stores them (a linear layer's `[out, in]`, a patch
//! embedding's convolution kernel reshaped without a copy), so that a model holds its
//! weights once and variables updated in place by an optimiser are seen by the next
//! forward pass.

mod attention;

pub use attention::{Attention, AttentionConfig, AttentionNames, Mlp, MlpConfig};

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::Deserialize;

use crate::ops;
use crate::ModelError;

/// Settings of a [`Linear`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearConfig {
    /// Input features.
    pub in_dim: usize,
    /// Output features.
    pub out_dim: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl LinearConfig {
    /// A layer with bias.
    pub fn new(in_dim: usize, out_dim: usize) -> Self {
        Self {
            in_dim,
            out_dim,
            bias: true,
        }
    }

    /// A layer without bias.
    pub fn no_bias(in_dim: usize, out_dim: usize) -> Self {
        Self {
            in_dim,
            out_dim,
            bias: false,
        }
    }
}

/// A dense layer `y = x Wᵀ + b` over the last axis of an input of any rank; `weight`
/// `[out, in]` (PyTorch's layout), `bias` `[out]`.
///
/// For inference on the CPU, [`Linear::new`] keeps a weight that tracks no gradient with
/// its storage transposed (`[in, out]` in memory, still `[out, in]` as a tensor, through
/// its strides): the CPU matrix product reads that layout up to 2.8× faster at the token
/// counts of a single image (50 × 768 × 3072: measured in `examples/linear_layout.rs`). The
/// weight is copied once while loading (the stored one is dropped), so it is still held
/// once. Variables, and weights on a GPU, are kept as they are.
///
/// ```
/// use reelsmith_models::candle_core::{DType, Device, Module, Tensor};
/// use reelsmith_models::candle_nn::VarBuilder;
/// use reelsmith_models::{Linear, LinearConfig};
///
/// let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
/// let fc = Linear::new(vb.pp("fc"), &LinearConfig::new(8, 4))?;
/// let y = fc.forward(&Tensor::ones((2, 5, 8), DType::F32, &Device::Cpu)?)?;
/// assert_eq!(y.dims(), &[2, 5, 4]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Reads `weight` `[out, in]` and, with `cfg.bias`, `bias` `[out]` (initialised as
    /// PyTorch does when the builder creates variables).
    pub fn new(vb: VarBuilder, cfg: &LinearConfig) -> Result<Self> {
        let weight = vb.get_with_hints(
            (cfg.out_dim, cfg.in_dim),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let weight = cpu_inference_layout(weight)?;
        let bias = if cfg.bias {
            let bound = 1.0 / (cfg.in_dim.max(1) as f64).sqrt();
            Some(vb.get_with_hints(
                cfg.out_dim,
                "bias",
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// A layer from its tensors.
    pub fn from_weights(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Input features.
    pub fn in_dim(&self) -> usize {
        self.weight.dims().get(1).copied().unwrap_or(0)
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.weight.dims().first().copied().unwrap_or(0)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::linear(x, &self.weight, self.bias.as_ref())
    }
}

/// `w` `[out, in]` with its storage transposed, for the fused CPU product, when it is an
/// f32 CPU tensor that tracks no gradient; otherwise `w` itself.
fn cpu_inference_layout(w: Tensor) -> Result<Tensor> {
    if ops::fused_cpu(&[&w]) && w.rank() == 2 && w.is_contiguous() {
        w.t()?.contiguous()?.t()
    } else {
        Ok(w)
    }
}

/// A linear layer with bias, as candle-nn's `linear`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    Linear::new(vb, &LinearConfig::new(in_dim, out_dim))
}

/// A linear layer without bias, as candle-nn's `linear_no_bias`.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    Linear::new(vb, &LinearConfig::no_bias(in_dim, out_dim))
}

/// Settings of a [`LayerNorm`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerNormConfig {
    /// Width of the normalised (last) axis.
    pub dim: usize,
    /// Added to the variance.
    pub eps: f64,
    /// Whether it has a learned `weight` and `bias` (PyTorch's `elementwise_affine`).
    pub affine: bool,
}

impl LayerNormConfig {
    /// An affine layer norm.
    pub fn new(dim: usize, eps: f64) -> Self {
        Self {
            dim,
            eps,
            affine: true,
        }
    }
}

/// Layer normalisation over the last axis, differentiable whatever the input's layout
/// (candle-nn's `LayerNorm` drops gradients on contiguous input); two-pass f64 statistics
/// in the fused CPU kernel.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    eps: f64,
}

impl LayerNorm {
    /// Reads `weight` and `bias` `[dim]` when affine.
    pub fn new(vb: VarBuilder, cfg: &LayerNormConfig) -> Result<Self> {
        let (weight, bias) = if cfg.affine {
            (
                Some(vb.get_with_hints(cfg.dim, "weight", Init::Const(1.0))?),
                Some(vb.get_with_hints(cfg.dim, "bias", Init::Const(0.0))?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            weight,
            bias,
            eps: cfg.eps,
        })
    }

    /// A layer norm from its tensors (either may be absent).
    pub fn from_weights(weight: Option<Tensor>, bias: Option<Tensor>, eps: f64) -> Self {
        Self { weight, bias, eps }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, self.weight.as_ref(), self.bias.as_ref(), self.eps)
    }
}

/// Settings of an [`RmsNorm`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsNormConfig {
    /// Width of the normalised (last) axis.
    pub dim: usize,
    /// Added to the mean square.
    pub eps: f64,
    /// Whether it has a learned `weight`.
    pub affine: bool,
}

impl RmsNormConfig {
    /// An RMS norm with a weight.
    pub fn new(dim: usize, eps: f64) -> Self {
        Self {
            dim,
            eps,
            affine: true,
        }
    }
}

/// RMS normalisation over the last axis, differentiable (candle-nn's `rms_norm` is not);
/// f64 statistics in the fused CPU kernel, f32 in the composed path for half-precision
/// input (as diffusers and transformers compute it).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Option<Tensor>,
    eps: f64,
}

impl RmsNorm {
    /// Reads `weight` `[dim]` when affine.
    pub fn new(vb: VarBuilder, cfg: &RmsNormConfig) -> Result<Self> {
        let weight = if cfg.affine {
            Some(vb.get_with_hints(cfg.dim, "weight", Init::Const(1.0))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            eps: cfg.eps,
        })
    }

    /// An RMS norm from its weight.
    pub fn from_weights(weight: Option<Tensor>, eps: f64) -> Self {
        Self { weight, eps }
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::rms_norm(x, self.weight.as_ref(), self.eps)
    }
}

/// The activations of transformer MLPs, named as in Hugging Face configs
/// (`hidden_act`): `quick_gelu`, `gelu` (exact, erf), `gelu_new` / `gelu_pytorch_tanh` /
/// `gelu_fast` (tanh approximation), `silu` / `swish`, `relu`.
///
/// ```
/// use reelsmith_models::Activation;
/// assert_eq!("gelu_pytorch_tanh".parse::<Activation>().unwrap(), Activation::GeluTanh);
/// let a: Activation = serde_json::from_str("\"quick_gelu\"").unwrap();
/// assert_eq!(a, Activation::QuickGelu);
/// assert!("mish".parse::<Activation>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Activation {
    /// `x·σ(1.702x)` (OpenAI CLIP).
    QuickGelu,
    /// Exact GELU `x·(1 + erf(x/√2))/2`.
    Gelu,
    /// GELU, tanh approximation.
    GeluTanh,
    /// `x·σ(x)`.
    Silu,
    /// `max(x, 0)`.
    Relu,
}

impl Activation {
    /// The activation of a Hugging Face `hidden_act` name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "quick_gelu" => Activation::QuickGelu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            "relu" => Activation::Relu,
            _ => return None,
        })
    }
}

impl std::str::FromStr for Activation {
    type Err = ModelError;

    fn from_str(s: &str) -> std::result::Result<Self, ModelError> {
        Activation::from_name(s).ok_or_else(|| {
            ModelError::InvalidInput(format!(
                "unsupported activation {s:?}: expected quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, silu, swish or relu"
            ))
        })
    }
}

impl TryFrom<String> for Activation {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse::<Activation>().map_err(|e| e.to_string())
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::QuickGelu => ops::quick_gelu(x),
            Activation::Gelu => ops::gelu_erf(x),
            Activation::GeluTanh => x.gelu(),
            Activation::Silu => x.silu(),
            Activation::Relu => x.relu(),
        }
    }
}

/// Settings of a [`PatchEmbed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchEmbedConfig {
    /// Colour channels of the input.
    pub channels: usize,
    /// Width of each token.
    pub dim: usize,
    /// Patch side in pixels (kernel = stride).
    pub patch: usize,
    /// Whether the convolution has a bias.
    pub bias: bool,
}

/// Patch embedding: a convolution with kernel = stride = `patch` (weight
/// `[dim, channels, patch, patch]`), done as one matrix product over the patches. Pixels
/// beyond the last whole patch are dropped, as the convolution does.
#[derive(Debug, Clone)]
pub struct PatchEmbed {
    proj: Linear,
    patch: usize,
    channels: usize,
}

impl PatchEmbed {
    /// Reads `weight` `[dim, channels, patch, patch]` and, with `cfg.bias`, `bias` `[dim]`.
    pub fn new(vb: VarBuilder, cfg: &PatchEmbedConfig) -> Result<Self> {
        if cfg.patch == 0 || cfg.channels == 0 {
            candle_core::bail!("patch embedding: patch size and channels must be positive");
        }
        let (p, c) = (cfg.patch, cfg.channels);
        let weight = vb.get_with_hints(
            (cfg.dim, c, p, p),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = if cfg.bias {
            Some(vb.get_with_hints(cfg.dim, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self {
            // a view of the same storage for variables (in-place updates are seen); the
            // inference layout of [`Linear`] otherwise
            proj: Linear::from_weights(
                cpu_inference_layout(weight.reshape((cfg.dim, c * p * p))?)?,
                bias,
            ),
            patch: p,
            channels: c,
        })
    }

    /// Patch side.
    pub fn patch_size(&self) -> usize {
        self.patch
    }

    /// `[b, c, h, w]` pixels → (`[b, gh·gw, dim]` tokens in row-major patch order, gh, gw).
    pub fn forward_grid(
        &self,
        pixels: &Tensor,
    ) -> std::result::Result<(Tensor, usize, usize), ModelError> {
        let (b, c, h, w) = pixels.dims4().map_err(|_| {
            ModelError::InvalidInput(format!(
                "patch embedding expects [batch, channels, height, width], got {:?}",
                pixels.dims()
            ))
        })?;
        if c != self.channels {
            return Err(ModelError::InvalidInput(format!(
                "expected {} colour channels, got {c}",
                self.channels
            )));
        }
        let p = self.patch;
        let (gh, gw) = (h / p, w / p);
        if gh == 0 || gw == 0 {
            return Err(ModelError::InvalidInput(format!(
                "input {w}x{h} is smaller than one {p}x{p} patch"
            )));
        }
        let x = pixels.narrow(2, 0, gh * p)?.narrow(3, 0, gw * p)?;
        let x = x
            .reshape((b, c, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))? // [b, gh, gw, c, p, p]
            .contiguous()?
            .reshape((b, gh * gw, c * p * p))?;
        Ok((self.proj.forward(&x)?, gh, gw))
    }
}

impl Module for PatchEmbed {
    fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        self.forward_grid(pixels)
            .map(|(t, _, _)| t)
            .map_err(|e| match e {
                ModelError::Backend(e) => e,
                other => candle_core::Error::Msg(other.to_string()),
            })
    }
}
