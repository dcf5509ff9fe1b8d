//! Generic layers built from differentiable operations: dense layers, RMS and layer norms,
//! softmax, attention, the GELU-tanh feed-forward, 2D and 3D convolutions.
//!
//! candle's fused `softmax_last_dim`, `layer_norm`, `rms_norm` (and `candle_nn::LayerNorm` on
//! contiguous input) carry no gradient. The dense layer, the norms, the softmax and (for
//! scores that fit a fixed budget) the attention core run on the shared model layer's
//! differentiable functions ([`reelsmith_models::ops`]): its fused CPU kernels for
//! inference, composed candle operations that train otherwise; the tests here check them
//! against finite differences. The types keep this crate's names and constructors (the Wan
//! modules are written against them). The GELU-tanh of [`FeedForward`] is
//! [`reelsmith_models::Activation::GeluTanh`]. The Wan-specific pieces (3D convolutions,
//! the chunked attention for long videos) are this crate's own.

use candle_core::{DType, Module, Tensor, D};
use candle_nn::VarBuilder;
use reelsmith_models::ops;

use crate::error::Result;

/// A dense layer `y = x Wᵀ + b` over the last axis of a tensor of any rank. The weight is
/// stored `[out, in]` as in PyTorch.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Reads `weight` `[out, in]` and, where `bias`, `bias` `[out]` from `vb`.
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// A layer from its tensors (`weight` `[out, in]`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Applies the layer over the last axis ([`reelsmith_models::ops::linear`]: one fused
    /// product with the bias on the CPU without gradients; OpenBLAS first with the
    /// `openblas` feature).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(not(feature = "openblas"))]
        {
            Ok(ops::linear(x, &self.weight, self.bias.as_ref())?)
        }
        #[cfg(feature = "openblas")]
        self.forward_blas(x)
    }

    #[cfg(feature = "openblas")]
    fn forward_blas(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = *dims.last().unwrap_or(&1);
        let rows = x.elem_count() / in_dim.max(1);
        let x2 = x.reshape((rows, in_dim))?;
        let y = match crate::blas::linear(&x2, &self.weight)? {
            Some(y) => match &self.bias {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            },
            None => return Ok(ops::linear(x, &self.weight, self.bias.as_ref())?),
        };
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.out_dim();
        Ok(y.reshape(out)?)
    }
}

/// The dtype to compute reductions in: f32 for half-precision inputs, the input's otherwise.
pub(crate) fn compute_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        other => other,
    }
}

/// Whether fused candle kernels (which have no backward pass) may be used: f32 tensors that
/// carry no gradient (inference). Training keeps the composed, differentiable operations.
pub(crate) fn inference_f32(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| !t.track_op() && t.dtype() == DType::F32)
}

/// `x / sqrt(mean(x²) + eps)` over the last axis, computed in f32 (f64 stays f64):
/// [`reelsmith_models::ops::rms_norm`] (candle's fused kernel on a GPU without gradients).
pub fn rms_normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    if inference_f32(&[x]) && !x.device().is_cpu() {
        let ones = Tensor::ones(x.dim(D::Minus1)?, DType::F32, x.device())?;
        return Ok(candle_nn::ops::rms_norm(
            &x.contiguous()?,
            &ones,
            eps as f32,
        )?);
    }
    Ok(ops::rms_norm(x, None, eps)?)
}

/// RMS norm over the last axis with a learned scale (`torch.nn.RMSNorm`).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Reads `weight` `[dim]`.
    pub fn new(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps,
        })
    }

    /// Normalises `x` over its last axis and scales it ([`reelsmith_models::ops::rms_norm`]).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::rms_norm(x, Some(&self.weight), self.eps)?)
    }
}

/// `(x - mean) / sqrt(var + eps)` over the last axis (biased variance), computed in f32
/// (f64 stays f64): [`reelsmith_models::ops::layer_norm`] (candle's fused kernel on a GPU
/// without gradients).
pub fn layer_normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    if inference_f32(&[x]) && !x.device().is_cpu() {
        let d = x.dim(D::Minus1)?;
        let ones = Tensor::ones(d, DType::F32, x.device())?;
        let zeros = Tensor::zeros(d, DType::F32, x.device())?;
        return Ok(candle_nn::ops::layer_norm(
            &x.contiguous()?,
            &ones,
            &zeros,
            eps as f32,
        )?);
    }
    Ok(ops::layer_norm(x, None, None, eps)?)
}

/// Layer norm over the last axis, with or without a learned scale and shift.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    affine: Option<(Tensor, Tensor)>,
    eps: f64,
}

impl LayerNorm {
    /// Without parameters (`elementwise_affine=False`).
    pub fn plain(eps: f64) -> Self {
        Self { affine: None, eps }
    }

    /// Reads `weight` and `bias` `[dim]`.
    pub fn new(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            affine: Some((vb.get(dim, "weight")?, vb.get(dim, "bias")?)),
            eps,
        })
    }

    /// Normalises `x` over its last axis ([`reelsmith_models::ops::layer_norm`]; candle's
    /// fused kernel on a GPU without gradients).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.affine {
            Some((w, b)) if inference_f32(&[x, w, b]) && !x.device().is_cpu() => Ok(
                candle_nn::ops::layer_norm(&x.contiguous()?, w, b, self.eps as f32)?,
            ),
            Some((w, b)) => Ok(ops::layer_norm(x, Some(w), Some(b), self.eps)?),
            None => layer_normalize(x, self.eps),
        }
    }
}

/// Softmax over the last axis ([`reelsmith_models::ops::softmax_last_dim`]): from
/// differentiable operations (the row maximum subtracted for stability and detached), a
/// fused kernel when no gradient is needed.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    Ok(ops::softmax_last_dim(x)?)
}

/// Batched `a · b` (`a · bᵀ` when `trans_b`), through OpenBLAS where the feature is on and the
/// tensors carry no gradient.
fn bmm(a: &Tensor, b: &Tensor, trans_b: bool) -> Result<Tensor> {
    #[cfg(feature = "openblas")]
    if let Some(c) = crate::blas::batched(a, b, trans_b)? {
        return Ok(c);
    }
    Ok(if trans_b {
        a.matmul(&b.t()?)?
    } else {
        a.matmul(b)?
    })
}

/// Largest score matrix (elements) materialised at once by [`attention`]; beyond it the
/// heads are processed one at a time and their queries in chunks.
const ATTENTION_CHUNK_ELEMENTS: usize = 1 << 26;

/// Scaled dot-product attention `softmax(q kᵀ · scale) v` on `[batch, heads, seq, head_dim]`
/// tensors. When the score matrix would exceed a fixed budget (long videos), each
/// batch-and-head slice is processed alone with its queries in chunks, so the scores stay
/// bounded in memory and every matrix product keeps many rows; the result is the same.
///
/// On the CPU without gradients (and without the `openblas` feature), when the score
/// matrices the threads hold at once fit the budget, the shared model layer's fused kernel
/// ([`reelsmith_models::ops::attention`], one task per batch item and head) runs instead.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    if let Some(o) = attention_fused(q, k, v, scale, ATTENTION_CHUNK_ELEMENTS)? {
        return Ok(o);
    }
    attention_bounded(q, k, v, scale, ATTENTION_CHUNK_ELEMENTS)
}

/// [`reelsmith_models::ops::attention`] on `[batch, heads, seq, head_dim]` views, where it
/// applies (CPU, f32, no gradient, no `openblas`) and the per-thread score matrices fit
/// `budget` elements; `None` otherwise.
fn attention_fused(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    budget: usize,
) -> Result<Option<Tensor>> {
    if cfg!(feature = "openblas") || !ops::fused_cpu(&[q, k, v]) {
        return Ok(None);
    }
    let (b, h, sq, _) = q.dims4()?;
    let sk = k.dim(2)?;
    let tasks = (b * h).min(candle_core::utils::get_num_threads().max(1));
    if sq * sk * tasks > budget {
        return Ok(None);
    }
    // The kernel takes `[batch, tokens, heads, dim]` with any strides: transposed views.
    let o = ops::attention(
        &q.transpose(1, 2)?,
        &k.transpose(1, 2)?,
        &v.transpose(1, 2)?,
        ops::AttentionMask::None,
        scale,
    )?;
    Ok(Some(o.transpose(1, 2)?))
}

fn attention_bounded(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    budget: usize,
) -> Result<Tensor> {
    let (b, h, sq, d) = q.dims4()?;
    let sk = k.dim(2)?;
    let dv = v.dim(3)?;
    let one = |q: &Tensor, k: &Tensor, v: &Tensor| -> Result<Tensor> {
        // Scaling the queries is cheaper than scaling the (larger) score matrix.
        let scores = bmm(&(q * scale)?, k, true)?;
        let dtype = scores.dtype();
        let p = softmax_last_dim(&scores.to_dtype(compute_dtype(dtype))?)?.to_dtype(dtype)?;
        bmm(&p, v, false)
    };
    if b * h * sq * sk <= budget {
        return one(q, k, v);
    }
    let n = b * h;
    let q3 = q.reshape((n, sq, d))?;
    let k3 = k.reshape((n, sk, d))?;
    let v3 = v.reshape((n, sk, dv))?;
    let rows = (budget / sk.max(1)).max(1);
    let mut heads = Vec::with_capacity(n);
    for i in 0..n {
        let (qi, ki, vi) = (
            q3.narrow(0, i, 1)?,
            k3.narrow(0, i, 1)?,
            v3.narrow(0, i, 1)?,
        );
        let mut parts = Vec::with_capacity(sq.div_ceil(rows));
        let mut start = 0;
        while start < sq {
            let m = rows.min(sq - start);
            parts.push(one(&qi.narrow(1, start, m)?.contiguous()?, &ki, &vi)?);
            start += m;
        }
        heads.push(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(&parts, 1)?
        });
    }
    Ok(Tensor::cat(&heads, 0)?.reshape((b, h, sq, dv))?)
}

/// The transformer feed-forward: `Linear → GELU (tanh approximation) → Linear`, with the
/// diffusers names `net.0.proj` and `net.2`.
#[derive(Debug, Clone)]
pub struct FeedForward {
    up: Linear,
    down: Linear,
}

impl FeedForward {
    /// Reads `net.0.proj` `[inner, dim]` and `net.2` `[dim, inner]`.
    pub fn new(vb: VarBuilder, dim: usize, inner: usize) -> Result<Self> {
        Ok(Self {
            up: Linear::new(vb.pp("net.0.proj"), dim, inner, true)?,
            down: Linear::new(vb.pp("net.2"), inner, dim, true)?,
        })
    }

    /// Applies the feed-forward over the last axis.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = reelsmith_models::Activation::GeluTanh.forward(&self.up.forward(x)?)?;
        self.down.forward(&h)
    }
}

/// A 2D convolution (`torch.nn.Conv2d`, no dilation, no groups) on `[batch, c, h, w]`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// Reads `weight` `[out, in, k, k]` and `bias` `[out]`.
    pub fn new(
        vb: VarBuilder,
        in_c: usize,
        out_c: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        Ok(Self {
            weight: vb.get((out_c, in_c, k, k), "weight")?,
            bias: Some(vb.get(out_c, "bias")?),
            stride,
            padding,
        })
    }

    /// Convolves `x` `[batch, c, h, w]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?,
            None => y,
        })
    }
}

/// A 3D convolution on `[batch, c, t, h, w]` (candle has none): the `kt` time taps are stacked
/// along the channels and one 2D convolution runs over all output frames at once. Time
/// padding is the caller's business (the VAE pads causally, with cached frames); `padding`
/// pads height and width with zeros.
#[derive(Debug, Clone)]
pub struct Conv3d {
    /// `[out, kt * in, kh, kw]`: the weight with the time taps moved next to the channels.
    weight2d: Tensor,
    bias: Option<Tensor>,
    in_c: usize,
    kt: usize,
    stride: (usize, usize),
    padding: usize,
}

impl Conv3d {
    /// Reads `weight` `[out, in, kt, k, k]` and `bias` `[out]`. `stride` is (time, space).
    pub fn new(
        vb: VarBuilder,
        in_c: usize,
        out_c: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: usize,
    ) -> Result<Self> {
        let (kt, k) = kernel;
        let weight = vb.get((out_c, in_c, kt, k, k), "weight")?;
        let bias = Some(vb.get(out_c, "bias")?);
        Self::from_tensors(weight, bias, stride, padding)
    }

    /// A convolution from its tensors (`weight` `[out, in, kt, kh, kw]`).
    pub fn from_tensors(
        weight: Tensor,
        bias: Option<Tensor>,
        stride: (usize, usize),
        padding: usize,
    ) -> Result<Self> {
        let (out_c, in_c, kt, kh, kw) = weight.dims5()?;
        let weight2d = weight
            .permute((0, 2, 1, 3, 4))?
            .reshape((out_c, kt * in_c, kh, kw))?
            .contiguous()?;
        Ok(Self {
            weight2d,
            bias,
            in_c,
            kt,
            stride,
            padding,
        })
    }

    /// Time taps of the kernel.
    pub fn kt(&self) -> usize {
        self.kt
    }

    /// Convolves `x` `[batch, c, t, h, w]`; `t` must be at least the kernel's time size.
    /// Output frames are computed in groups so that the stacked time taps stay within a fixed
    /// budget (large frames); the result is the same.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_bounded(x, CONV_STACK_ELEMENTS)
    }

    fn forward_bounded(&self, x: &Tensor, budget: usize) -> Result<Tensor> {
        let (b, c, t, h, w) = x.dims5()?;
        let st = self.stride.0;
        let t_out = (t - self.kt) / st + 1;
        let per_frame = (b * self.kt * c * h * w).max(1);
        let group = (budget / per_frame).max(1);
        if group >= t_out {
            return self.forward_frames(x, t_out);
        }
        let mut parts = Vec::with_capacity(t_out.div_ceil(group));
        let mut j = 0;
        while j < t_out {
            let g = group.min(t_out - j);
            let span = (g - 1) * st + self.kt;
            parts.push(self.forward_frames(&x.narrow(2, j * st, span)?, g)?);
            j += g;
        }
        Ok(Tensor::cat(&parts, 2)?)
    }

    /// All `t_out` output frames of `x` with one 2D convolution.
    fn forward_frames(&self, x: &Tensor, t_out: usize) -> Result<Tensor> {
        let (b, c, _, h, w) = x.dims5()?;
        debug_assert_eq!(c, self.in_c);
        let (st, ss) = self.stride;
        // [b, t, c, h, w] so that time slices are contiguous channel blocks.
        let xt = x.permute((0, 2, 1, 3, 4))?;
        let taps = (0..self.kt)
            .map(|i| {
                let span = xt.narrow(1, i, (t_out - 1) * st + 1)?;
                if st == 1 {
                    Ok(span)
                } else {
                    let idx: Vec<u32> = (0..t_out).map(|j| (j * st) as u32).collect();
                    let idx = Tensor::new(idx.as_slice(), x.device())?;
                    span.contiguous()?.index_select(&idx, 1)
                }
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let stacked = if taps.len() == 1 {
            taps[0].contiguous()?
        } else {
            Tensor::cat(&taps, 2)?
        };
        let stacked = stacked.reshape((b * t_out, self.kt * c, h, w))?;
        let mut y = stacked.conv2d(&self.weight2d, self.padding, ss, 1, 1)?;
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(&bias.reshape((1, bias.dim(0)?, 1, 1))?)?;
        }
        let (_, oc, oh, ow) = y.dims4()?;
        Ok(y.reshape((b, t_out, oc, oh, ow))?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()?)
    }
}

/// Largest stacked-taps tensor (elements) a [`Conv3d`] builds at once.
const CONV_STACK_ELEMENTS: usize = 1 << 27;

/// SiLU, `x · sigmoid(x)`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    Ok(x.silu()?)
}

/// Finite-difference gradient checks of the layers (f64, CPU): candle silently drops
/// gradients through some fused ops, which these tests would catch.
#[cfg(test)]
pub(crate) mod grad_tests {
    use super::*;
    use crate::rng::NoiseGenerator;
    use candle_core::{Device, Var};

    fn randn(g: &mut NoiseGenerator, shape: &[usize], scale: f64) -> Tensor {
        (g.randn(shape, DType::F64, &Device::Cpu).unwrap() * scale).unwrap()
    }

    /// Checks the gradient of `sum(f(inputs) · r)` for every input against central finite
    /// differences at up to `probes` coordinates per input.
    pub(crate) fn grad_check(
        f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
        inputs: &[Tensor],
        probes: usize,
    ) {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let vt: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&vt).unwrap();
        let mut g = NoiseGenerator::new(99);
        let r = randn(&mut g, out.dims(), 1.0);
        let loss =
            |o: &Tensor| -> f64 { (o * &r).unwrap().sum_all().unwrap().to_scalar().unwrap() };
        let grads = (&out * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, v) in vars.iter().enumerate() {
            let analytic: Vec<f64> = match grads.get(v.as_tensor()) {
                Some(t) => t.flatten_all().unwrap().to_vec1().unwrap(),
                None => vec![0.0; v.elem_count()],
            };
            let base: Vec<f64> = inputs[i].flatten_all().unwrap().to_vec1().unwrap();
            let n = base.len();
            let step = (n / probes).max(1);
            let mut checked = 0;
            let mut nonzero = false;
            for j in (0..n).step_by(step).take(probes) {
                let h = 1e-6;
                let eval = |delta: f64| -> f64 {
                    let mut x = base.clone();
                    x[j] += delta;
                    let xt = Tensor::from_vec(x, inputs[i].dims(), &Device::Cpu).unwrap();
                    let mut all: Vec<Tensor> = inputs.to_vec();
                    all[i] = xt;
                    loss(&f(&all).unwrap())
                };
                let numeric = (eval(h) - eval(-h)) / (2.0 * h);
                let a = analytic[j];
                assert!(
                    (a - numeric).abs() <= 1e-6 + 1e-5 * numeric.abs().max(a.abs()),
                    "input {i} coordinate {j}: analytic {a} vs numeric {numeric}"
                );
                nonzero |= numeric.abs() > 1e-8;
                checked += 1;
            }
            assert!(checked > 0);
            assert!(
                nonzero,
                "input {i}: all probed gradients are zero; the check proves nothing"
            );
        }
    }

    fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    /// Inference uses candle's fused kernels, training the composed operations: same values.
    #[test]
    fn composed_ops_equal_fused_kernels() {
        let mut g = NoiseGenerator::new(8);
        let x = (g.randn((3, 5, 16), DType::F32, &Device::Cpu).unwrap() * 2.0).unwrap();
        let w = g.randn(16, DType::F32, &Device::Cpu).unwrap();
        let b = g.randn(16, DType::F32, &Device::Cpu).unwrap();
        let xv = Var::from_tensor(&x).unwrap();
        let tracked = xv.as_tensor();
        assert!(tracked.track_op() && !x.track_op());
        let pairs = [
            (softmax_last_dim(&x), softmax_last_dim(tracked)),
            (rms_normalize(&x, 1e-6), rms_normalize(tracked, 1e-6)),
            (layer_normalize(&x, 1e-6), layer_normalize(tracked, 1e-6)),
            (
                RmsNorm {
                    weight: w.clone(),
                    eps: 1e-6,
                }
                .forward(&x),
                RmsNorm {
                    weight: w.clone(),
                    eps: 1e-6,
                }
                .forward(tracked),
            ),
            (
                LayerNorm {
                    affine: Some((w.clone(), b.clone())),
                    eps: 1e-6,
                }
                .forward(&x),
                LayerNorm {
                    affine: Some((w.clone(), b.clone())),
                    eps: 1e-6,
                }
                .forward(tracked),
            ),
        ];
        for (i, (fused, composed)) in pairs.into_iter().enumerate() {
            let d = max_abs(&fused.unwrap(), &composed.unwrap());
            assert!(d < 1e-5, "op {i}: {d}");
        }
    }

    #[test]
    fn rms_norm_has_true_gradients() {
        let mut g = NoiseGenerator::new(1);
        let x = randn(&mut g, &[3, 5, 8], 1.0);
        let w = (randn(&mut g, &[8], 0.2) + 1.0).unwrap();
        grad_check(
            &|t| Ok(rms_normalize(&t[0], 1e-6)?.broadcast_mul(&t[1])?),
            &[x, w],
            24,
        );
    }

    #[test]
    fn layer_norm_has_true_gradients() {
        let mut g = NoiseGenerator::new(2);
        let x = randn(&mut g, &[4, 7], 1.5);
        let w = (randn(&mut g, &[7], 0.2) + 1.0).unwrap();
        let b = randn(&mut g, &[7], 0.2);
        grad_check(
            &|t| {
                let n = LayerNorm {
                    affine: Some((t[1].clone(), t[2].clone())),
                    eps: 1e-6,
                };
                n.forward(&t[0])
            },
            &[x.clone(), w, b],
            28,
        );
        grad_check(&|t| layer_normalize(&t[0], 1e-6), &[x], 28);
    }

    #[test]
    fn softmax_and_attention_have_true_gradients() {
        let mut g = NoiseGenerator::new(3);
        let s = randn(&mut g, &[2, 3, 6], 2.0);
        grad_check(&|t| softmax_last_dim(&t[0]), &[s], 36);
        let q = randn(&mut g, &[1, 2, 5, 4], 1.0);
        let k = randn(&mut g, &[1, 2, 7, 4], 1.0);
        let v = randn(&mut g, &[1, 2, 7, 4], 1.0);
        grad_check(&|t| attention(&t[0], &t[1], &t[2], 0.5), &[q, k, v], 40);
    }

    #[test]
    fn chunked_attention_equals_direct_and_keeps_gradients() {
        let mut g = NoiseGenerator::new(6);
        let q = randn(&mut g, &[2, 3, 9, 4], 1.0);
        let k = randn(&mut g, &[2, 3, 7, 4], 1.0);
        let v = randn(&mut g, &[2, 3, 7, 5], 1.0);
        let direct = attention_bounded(&q, &k, &v, 0.5, usize::MAX).unwrap();
        let chunked = attention_bounded(&q, &k, &v, 0.5, 20).unwrap();
        let d: f64 = (direct - chunked)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-12, "{d}");
        grad_check(
            &|t| attention_bounded(&t[0], &t[1], &t[2], 0.5, 20),
            &[q, k, v],
            30,
        );
    }

    #[test]
    fn gelu_feed_forward_has_true_gradients() {
        let mut g = NoiseGenerator::new(4);
        let x = randn(&mut g, &[2, 3, 4], 1.0);
        let w1 = randn(&mut g, &[6, 4], 0.5);
        let b1 = randn(&mut g, &[6], 0.1);
        let w2 = randn(&mut g, &[4, 6], 0.5);
        let b2 = randn(&mut g, &[4], 0.1);
        grad_check(
            &|t| {
                let ff = FeedForward {
                    up: Linear::from_tensors(t[1].clone(), Some(t[2].clone())),
                    down: Linear::from_tensors(t[3].clone(), Some(t[4].clone())),
                };
                ff.forward(&t[0])
            },
            &[x, w1, b1, w2, b2],
            24,
        );
    }

    #[test]
    fn grouped_conv3d_equals_whole() {
        let mut g = NoiseGenerator::new(7);
        let x = randn(&mut g, &[1, 2, 9, 5, 5], 1.0);
        let w = randn(&mut g, &[3, 2, 3, 3, 3], 0.3);
        for stride in [1, 2] {
            let conv = Conv3d::from_tensors(w.clone(), None, (stride, 1), 1).unwrap();
            let whole = conv.forward_bounded(&x, usize::MAX).unwrap();
            let grouped = conv.forward_bounded(&x, 2 * 3 * 2 * 25).unwrap();
            let d: f64 = (whole - grouped)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(d < 1e-12, "stride {stride}: {d}");
        }
    }

    #[test]
    fn conv3d_has_true_gradients() {
        let mut g = NoiseGenerator::new(5);
        let x = randn(&mut g, &[1, 2, 5, 4, 4], 1.0);
        let w = randn(&mut g, &[3, 2, 3, 3, 3], 0.3);
        let b = randn(&mut g, &[3], 0.1);
        grad_check(
            &|t| Conv3d::from_tensors(t[1].clone(), Some(t[2].clone()), (2, 1), 1)?.forward(&t[0]),
            &[x, w, b],
            30,
        );
    }
}
