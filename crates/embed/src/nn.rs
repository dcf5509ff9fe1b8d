//! Transformer building blocks shared by CLIP and DINOv2.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor, D};

use crate::weights::Reader;
use crate::EmbedError;

type R<T> = Result<T, EmbedError>;

/// A dense layer `y = x Wᵀ + b` applied over the last axis of a tensor of any rank.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    /// `[in, out]`, contiguous (transposed once at load time).
    wt: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> R<Self> {
        Ok(Self {
            wt: weight.t()?.contiguous()?,
            bias,
        })
    }

    /// Reads `{name}.weight` `[out, in]` and, where `bias`, `{name}.bias` `[out]`.
    pub fn load(r: &Reader<'_>, name: &str, in_dim: usize, out_dim: usize, bias: bool) -> R<Self> {
        Self::load_any(r, &[name], in_dim, out_dim, bias)
    }

    /// Like [`Linear::load`], trying several names.
    pub fn load_any(
        r: &Reader<'_>,
        names: &[&str],
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> R<Self> {
        let wn: Vec<String> = names.iter().map(|n| format!("{n}.weight")).collect();
        let wn: Vec<&str> = wn.iter().map(String::as_str).collect();
        let w = r.get_any(&wn, &[out_dim, in_dim])?;
        let b = if bias {
            let bn: Vec<String> = names.iter().map(|n| format!("{n}.bias")).collect();
            let bn: Vec<&str> = bn.iter().map(String::as_str).collect();
            Some(r.get_any(&bn, &[out_dim])?)
        } else {
            None
        };
        Self::new(w, b)
    }

    /// Several linear layers on the same input fused into one matrix product (QKV).
    pub fn concat(parts: &[Linear]) -> R<Self> {
        let wts: Vec<&Tensor> = parts.iter().map(|p| &p.wt).collect();
        let wt = Tensor::cat(&wts, 1)?.contiguous()?;
        let bias = if parts.iter().all(|p| p.bias.is_some()) {
            let bs: Vec<&Tensor> = parts.iter().filter_map(|p| p.bias.as_ref()).collect();
            Some(Tensor::cat(&bs, 0)?)
        } else if parts.iter().all(|p| p.bias.is_none()) {
            None
        } else {
            let bs: Vec<Tensor> = parts
                .iter()
                .map(|p| match &p.bias {
                    Some(b) => Ok(b.clone()),
                    None => Tensor::zeros(p.wt.dim(1)?, p.wt.dtype(), p.wt.device()),
                })
                .collect::<Result<_, _>>()?;
            Some(Tensor::cat(&bs, 0)?)
        };
        Ok(Self { wt, bias })
    }

    pub fn out_dim(&self) -> usize {
        self.wt.dims()[1]
    }

    pub fn forward(&self, x: &Tensor) -> R<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim.max(1);
        let x2 = x.reshape((rows, in_dim))?;
        let y = match &self.bias {
            // With a BLAS feature candle's matmul calls the BLAS; keep that path.
            Some(b)
                if !cfg!(any(feature = "mkl", feature = "accelerate"))
                    && x2.device().is_cpu()
                    && x2.dtype() == candle_core::DType::F32
                    && self.wt.dtype() == candle_core::DType::F32
                    && b.dtype() == candle_core::DType::F32 =>
            {
                x2.contiguous()?
                    .apply_op3_no_bwd(&self.wt, b, &LinearBiasOp)?
            }
            Some(b) => x2.matmul(&self.wt)?.broadcast_add(b)?,
            None => x2.matmul(&self.wt)?,
        };
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.out_dim();
        Ok(y.reshape(out)?)
    }
}

/// The three inputs of a CPU op as contiguous f32 slices (`what` names the op in errors).
fn f32_inputs<'a>(
    what: &str,
    inputs: [(&'a CpuStorage, &Layout); 3],
) -> candle_core::Result<[&'a [f32]; 3]> {
    let slice = |(s, l): (&'a CpuStorage, &Layout)| -> candle_core::Result<&'a [f32]> {
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("{what}: f32 only");
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("{what}: contiguous inputs only");
        };
        Ok(&v[a..b])
    };
    Ok([slice(inputs[0])?, slice(inputs[1])?, slice(inputs[2])?])
}

/// `x W + b` on the CPU in one matrix product: the output starts as the bias rows and the
/// product accumulates onto it (the same `gemm` call candle's `matmul` makes, threaded the
/// same way), instead of a product followed by a broadcast add over the whole output.
struct LinearBiasOp;

impl CustomOp3 for LinearBiasOp {
    fn name(&self) -> &'static str {
        "reelsmith-linear-bias"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let [x, w, b] = f32_inputs("linear", [(xs, xl), (ws, wl), (bs, bl)])?;
        let (m, k) = xl.shape().dims2()?;
        let (k2, n) = wl.shape().dims2()?;
        if k != k2 || b.len() != n {
            candle_core::bail!("linear: shapes [{m}, {k}] x [{k2}, {n}] + [{}]", b.len());
        }
        let mut out = Vec::with_capacity(m * n);
        for _ in 0..m {
            out.extend_from_slice(b);
        }
        let threads = candle_core::utils::get_num_threads();
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: `out` is m×n, `x` m×k and `w` k×n, all contiguous row-major, as the
        // strides say.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                1,
                n as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                parallelism,
            );
        }
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

/// Layer normalisation over the last axis, two-pass (mean, then centred variance) for
/// precision on residual streams with large offsets.
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    pub fn load(r: &Reader<'_>, name: &str, dim: usize, eps: f64) -> R<Self> {
        Ok(Self {
            weight: r.get(&format!("{name}.weight"), &[dim])?,
            bias: r.get(&format!("{name}.bias"), &[dim])?,
            eps: eps as f32,
        })
    }

    pub fn forward(&self, x: &Tensor) -> R<Tensor> {
        let x = x.contiguous()?;
        if x.device().is_cpu() {
            Ok(x.apply_op3_no_bwd(&self.weight, &self.bias, &LayerNormOp { eps: self.eps })?)
        } else {
            let mean = x.mean_keepdim(D::Minus1)?;
            let xc = x.broadcast_sub(&mean)?;
            let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
            let y = xc.broadcast_div(&(var + self.eps as f64)?.sqrt()?)?;
            Ok(y.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)?)
        }
    }
}

struct LayerNormOp {
    eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "reelsmith-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let [x, w, b] = f32_inputs("layer norm", [(s1, l1), (s2, l2), (s3, l3)])?;
        let dim = w.len();
        let mut out = vec![0f32; x.len()];
        let eps = self.eps as f64;
        out.par_chunks_mut(dim)
            .zip(x.par_chunks(dim))
            .for_each(|(o, x)| {
                let mean = x.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
                let var = x
                    .iter()
                    .map(|&v| {
                        let d = v as f64 - mean;
                        d * d
                    })
                    .sum::<f64>()
                    / dim as f64;
                let inv = (1.0 / (var + eps).sqrt()) as f32;
                let mean = mean as f32;
                for i in 0..dim {
                    o[i] = (x[i] - mean) * inv * w[i] + b[i];
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The activations found in CLIP and DINOv2 configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// `x·σ(1.702x)` (OpenAI CLIP).
    QuickGelu,
    /// Exact GELU with erf.
    Gelu,
    /// GELU, tanh approximation.
    GeluTanh,
    /// `x·σ(x)`.
    Silu,
    /// max(x, 0).
    Relu,
}

impl Activation {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "quick_gelu" => Activation::QuickGelu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            "relu" => Activation::Relu,
            _ => return None,
        })
    }

    pub fn forward(self, x: &Tensor) -> R<Tensor> {
        Ok(match self {
            Activation::QuickGelu => {
                if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
                    x.contiguous()?.apply_op1_no_bwd(&ActivationOp(self))?
                } else {
                    (x * candle_nn::ops::sigmoid(&(x * 1.702)?)?)?
                }
            }
            Activation::Gelu => {
                if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
                    x.contiguous()?.apply_op1_no_bwd(&ActivationOp(self))?
                } else {
                    x.gelu_erf()?
                }
            }
            Activation::GeluTanh => x.gelu()?,
            Activation::Silu => candle_nn::ops::silu(x)?,
            Activation::Relu => x.relu()?,
        })
    }
}

/// `x + h · scale`, with `scale` (`[dim]`) broadcast over the last axis: DINOv2's layer
/// scale and residual add in one pass on the CPU (the same f32 operations as
/// `x + h.broadcast_mul(scale)`, so the same results), two graph operations elsewhere.
pub(crate) fn scaled_residual(x: &Tensor, h: &Tensor, scale: &Tensor) -> R<Tensor> {
    if x.device().is_cpu()
        && x.dtype() == candle_core::DType::F32
        && h.dtype() == candle_core::DType::F32
        && scale.dtype() == candle_core::DType::F32
        && x.shape() == h.shape()
    {
        let (x, h, scale) = (x.contiguous()?, h.contiguous()?, scale.contiguous()?);
        Ok(x.apply_op3_no_bwd(&h, &scale, &ScaledResidualOp)?)
    } else {
        Ok((x + h.broadcast_mul(scale)?)?)
    }
}

struct ScaledResidualOp;

impl CustomOp3 for ScaledResidualOp {
    fn name(&self) -> &'static str {
        "reelsmith-scaled-residual"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        hs: &CpuStorage,
        hl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let [x, h, scale] = f32_inputs("scaled residual", [(xs, xl), (hs, hl), (ss, sl)])?;
        let dim = scale.len();
        if dim == 0 || x.len() != h.len() || x.len() % dim != 0 {
            candle_core::bail!("scaled residual: shapes do not match");
        }
        let mut out = vec![0f32; x.len()];
        let rows = (4096 / dim).max(1) * dim;
        out.par_chunks_mut(rows)
            .zip(x.par_chunks(rows).zip(h.par_chunks(rows)))
            .for_each(|(o, (x, h))| {
                for ((o, x), h) in o.chunks_mut(dim).zip(x.chunks(dim)).zip(h.chunks(dim)) {
                    for (((o, &x), &h), &s) in o.iter_mut().zip(x).zip(h).zip(scale) {
                        *o = x + h * s;
                    }
                }
            });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
}

/// Runs the slice kernel `f(input, output)` over a contiguous f32 tensor in blocks on the
/// rayon pool (candle maps unary functions on one thread).
fn par_unary(
    s: &CpuStorage,
    l: &Layout,
    what: &str,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> candle_core::Result<(CpuStorage, Shape)> {
    use rayon::prelude::*;
    let CpuStorage::F32(x) = s else {
        candle_core::bail!("{what}: f32 only");
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{what}: contiguous input only");
    };
    let x = &x[a..b];
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(4096)
        .zip(x.par_chunks(4096))
        .for_each(|(o, x)| f(x, o));
    Ok((CpuStorage::F32(out), l.shape().clone()))
}

/// The activations with a CPU kernel of their own, vectorised ([`crate::vmath`]) and run on
/// all cores in one pass: `x·σ(1.702x)` (quick GELU) and exact GELU `x·(1 + erf(x/√2))/2`.
struct ActivationOp(Activation);

impl candle_core::CustomOp1 for ActivationOp {
    fn name(&self) -> &'static str {
        match self.0 {
            Activation::QuickGelu => "reelsmith-quick-gelu",
            _ => "reelsmith-gelu-erf",
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        match self.0 {
            Activation::QuickGelu => par_unary(s, l, "quick_gelu", crate::vmath::quick_gelu),
            Activation::Gelu => par_unary(s, l, "gelu", crate::vmath::gelu_erf),
            other => candle_core::bail!("{other:?}: no CPU kernel"),
        }
    }
}

/// Multi-head self-attention with fused QKV projection.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    qkv: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    pub fn new(
        q: Linear,
        k: Linear,
        v: Linear,
        out: Linear,
        hidden: usize,
        heads: usize,
    ) -> R<Self> {
        let head_dim = hidden / heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        // fold the 1/sqrt(d) of the scores into the query projection
        let q = Linear {
            wt: (q.wt * scale)?,
            bias: q.bias.map(|b| b * scale).transpose()?,
        };
        Ok(Self {
            qkv: Linear::concat(&[q, k, v])?,
            out,
            heads,
            head_dim,
        })
    }

    /// `x`: `[batch, tokens, hidden]`; `mask`: optional additive `[tokens, tokens]`.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> R<Tensor> {
        let (b, t, hidden) = x.dims3()?;
        let qkv = self.qkv.forward(x)?; // [b, t, 3h]
        if mask.is_none() && qkv.device().is_cpu() && qkv.dtype() == candle_core::DType::F32 {
            let op = FusedAttention {
                heads: self.heads,
                head_dim: self.head_dim,
            };
            let ctx = qkv.contiguous()?.apply_op1_no_bwd(&op)?; // [b, t, h]
            return self.out.forward(&ctx);
        }
        let qkv = qkv
            .reshape((b, t, 3, self.heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?; // [3, b, heads, t, hd]
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let mut scores = q.matmul(&k.t()?)?; // [b, heads, t, t]
        if let Some(m) = mask {
            scores = scores.broadcast_add(m)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?; // [b, heads, t, hd]
        let ctx = ctx.transpose(1, 2)?.reshape((b, t, hidden))?;
        self.out.forward(&ctx)
    }
}

/// Unmasked multi-head attention on the CPU, straight from the fused QKV projection
/// `[b, t, 3 · heads · head_dim]` (queries already scaled) to the context `[b, t, heads ·
/// head_dim]`: per (image, head), scores `Q Kᵀ`, a row softmax and `P V`, with the
/// matrices read and written in place through strides. One task per (image, head) on the
/// rayon pool, each multiplying single-threaded, replaces the head split and the three
/// copies, the batched products that split every small product across threads, and the
/// separate softmax pass of the unfused graph.
struct FusedAttention {
    heads: usize,
    head_dim: usize,
}

/// A raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes only the (image, head) block it owns.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

impl CustomOp1 for FusedAttention {
    fn name(&self) -> &'static str {
        "reelsmith-fused-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let CpuStorage::F32(x) = s else {
            candle_core::bail!("fused attention: f32 only");
        };
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("fused attention: contiguous input only");
        };
        let x = &x[start..end];
        let (b, t, width) = l.shape().dims3()?;
        let (heads, d) = (self.heads, self.head_dim);
        let hidden = heads * d;
        if width != 3 * hidden {
            candle_core::bail!("fused attention: width {width} is not 3 x {heads} x {d}");
        }
        let mut out = vec![0f32; b * t * hidden];
        let dst = OutPtr(out.as_mut_ptr());
        let row = (3 * hidden) as isize;
        (0..b * heads).into_par_iter().for_each_init(
            || vec![0f32; t * t],
            |scores, task| {
                let (bi, hi) = (task / heads, task % heads);
                let base = bi * t * 3 * hidden + hi * d;
                // SAFETY: every offset below stays inside `x` (rows of 3·hidden values per
                // token, this head's d columns in each third) and inside this task's block
                // of `out`; the strides describe exactly those layouts.
                unsafe {
                    let q = x.as_ptr().add(base);
                    let k = x.as_ptr().add(base + hidden);
                    let v = x.as_ptr().add(base + 2 * hidden);
                    // scores[i][j] = Σ_c q[i][c] · k[j][c]
                    gemm::gemm(
                        t,
                        t,
                        d,
                        scores.as_mut_ptr(),
                        1,
                        t as isize,
                        false,
                        q,
                        1,
                        row,
                        k,
                        row,
                        1,
                        0.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                    for r in scores.chunks_exact_mut(t) {
                        crate::vmath::softmax_in_place(r);
                    }
                    // out[i][c] = Σ_j p[i][j] · v[j][c]
                    let o = dst.get().add(bi * t * hidden + hi * d);
                    gemm::gemm(
                        t,
                        d,
                        t,
                        o,
                        1,
                        hidden as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        t as isize,
                        v,
                        1,
                        row,
                        0.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, t, hidden))))
    }
}

/// Patch embedding of a convolution with kernel = stride = `patch`, done as one matrix
/// product. Pixels beyond the last whole patch are dropped, as the convolution does.
#[derive(Debug, Clone)]
pub(crate) struct PatchEmbed {
    proj: Linear,
    patch: usize,
    channels: usize,
}

impl PatchEmbed {
    pub fn load(
        r: &Reader<'_>,
        name: &str,
        channels: usize,
        hidden: usize,
        patch: usize,
        bias: bool,
    ) -> R<Self> {
        let w = r.get(&format!("{name}.weight"), &[hidden, channels, patch, patch])?;
        let w = w.reshape((hidden, channels * patch * patch))?;
        let b = if bias {
            Some(r.get(&format!("{name}.bias"), &[hidden])?)
        } else {
            None
        };
        Ok(Self {
            proj: Linear::new(w, b)?,
            patch,
            channels,
        })
    }

    /// `[b, c, h, w]` → (`[b, gh·gw, hidden]`, gh, gw).
    pub fn forward(&self, pixels: &Tensor) -> R<(Tensor, usize, usize)> {
        let (b, c, h, w) = pixels.dims4()?;
        if c != self.channels {
            return Err(EmbedError::InvalidInput(format!(
                "expected {} colour channels, got {c}",
                self.channels
            )));
        }
        let p = self.patch;
        let (gh, gw) = (h / p, w / p);
        if gh == 0 || gw == 0 {
            return Err(EmbedError::InvalidInput(format!(
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
