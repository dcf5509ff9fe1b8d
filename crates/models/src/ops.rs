//! Differentiable tensor functions with fused CPU inference kernels.
//!
//! Each function picks one of two paths:
//!
//! - **fused**: on the CPU, in f32, when no input tracks a gradient
//!   ([`Tensor::track_op`] false for all of them — weights loaded from a checkpoint and
//!   the activations computed from them): one custom kernel, multi-threaded and
//!   vectorised (see `kernels.rs`);
//! - **composed**: otherwise (a [`candle_core::Var`] among the inputs, or an input computed
//!   from one; GPU; f16/bf16): candle's differentiable primitives, so that
//!   `backward()` reaches every input.
//!
//! The composed paths never use `candle_nn::ops::softmax_last_dim`, `layer_norm` or
//! `rms_norm`, which have no backward and silently drop gradients; on a GPU without
//! gradients those fast kernels are used. Norms and softmax of f16/bf16 inputs are computed
//! in f32 and converted back.
//!
//! ```
//! use reelsmith_models::candle_core::{Device, Tensor, Var};
//! use reelsmith_models::ops;
//!
//! let x = Var::from_tensor(&Tensor::new(&[[1f32, 2.0, 3.0]], &Device::Cpu)?)?;
//! let y = ops::softmax_last_dim(x.as_tensor())?;
//! let loss = (y.narrow(1, 2, 1)?.sum_all())?; // p₃
//! let grads = loss.backward()?;
//! let g = grads.get(x.as_tensor()).expect("gradient reaches x").to_vec2::<f32>()?;
//! // ∂p₃/∂x = p₃(δ − p)
//! let p: Vec<f32> = y.to_vec2::<f32>()?[0].clone();
//! for (j, gj) in g[0].iter().enumerate() {
//!     let want = p[2] * (if j == 2 { 1.0 } else { 0.0 } - p[j]);
//!     assert!((gj - want).abs() < 1e-6);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use candle_core::{DType, Device, Result, Tensor, D};

use crate::kernels;

/// Whether the fused CPU kernels apply: every input on the CPU, in f32, tracking no
/// gradient.
pub fn fused_cpu(inputs: &[&Tensor]) -> bool {
    inputs
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && !t.track_op())
}

fn untracked(inputs: &[&Tensor]) -> bool {
    inputs.iter().all(|t| !t.track_op())
}

/// Runs `f` in f32 for half-precision input, converting back.
fn in_f32(x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    match x.dtype() {
        DType::F16 | DType::BF16 => f(&x.to_dtype(DType::F32)?)?.to_dtype(x.dtype()),
        _ => f(x),
    }
}

/// `x Wᵀ + b` over the last axis of `x` (any rank), with `weight` `[out, in]` as stored
/// (read transposed through its strides, never copied).
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let Some(&in_dim) = dims.last() else {
        candle_core::bail!("linear: a scalar has no feature axis");
    };
    let (out_dim, w_in) = weight.dims2()?;
    if w_in != in_dim {
        candle_core::bail!(
            "linear: input has {in_dim} features, the weight [{out_dim}, {w_in}] takes {w_in}"
        );
    }
    let rows = x.elem_count() / in_dim.max(1);
    let x2 = x.reshape((rows, in_dim))?;
    let y = match bias {
        // With a BLAS feature candle's matmul calls the BLAS; keep that path.
        Some(b)
            if !cfg!(any(feature = "mkl", feature = "accelerate"))
                && fused_cpu(&[&x2, weight, b]) =>
        {
            x2.contiguous()?
                .apply_op3_no_bwd(weight, &b.contiguous()?, &kernels::LinearBias)?
        }
        Some(b) => x2.matmul(&weight.t()?)?.broadcast_add(b)?,
        None => x2.matmul(&weight.t()?)?,
    };
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = out_dim;
    y.reshape(out)
}

/// Softmax over the last axis, differentiable (`candle_nn::ops::softmax_last_dim` is not).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if fused_cpu(&[x]) {
        return x.contiguous()?.apply_op1_no_bwd(&kernels::Softmax);
    }
    if !x.device().is_cpu() && untracked(&[x]) {
        return candle_nn::ops::softmax_last_dim(&x.contiguous()?);
    }
    in_f32(x, |x| {
        // the row maximum is a constant for the gradient (softmax does not depend on it)
        let max = x.max_keepdim(D::Minus1)?.detach();
        let e = x.broadcast_sub(&max)?.exp()?;
        e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
    })
}

/// Layer normalisation over the last axis: `(x − mean) / √(var + eps) · weight + bias`
/// (either affine part optional), differentiable. The fused path accumulates in f64.
pub fn layer_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let dim = x.dim(D::Minus1)?;
    let mut all = vec![x];
    all.extend(weight);
    all.extend(bias);
    if fused_cpu(&all) {
        let ones;
        let zeros;
        let w = match weight {
            Some(w) => w.contiguous()?,
            None => {
                ones = Tensor::ones(dim, DType::F32, &Device::Cpu)?;
                ones.clone()
            }
        };
        let b = match bias {
            Some(b) => b.contiguous()?,
            None => {
                zeros = Tensor::zeros(dim, DType::F32, &Device::Cpu)?;
                zeros.clone()
            }
        };
        return x
            .contiguous()?
            .apply_op3_no_bwd(&w, &b, &kernels::LayerNorm { eps });
    }
    let y = in_f32(x, |x| {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        xc.broadcast_div(&(var + eps)?.sqrt()?)
    })?;
    affine(y, weight, bias)
}

fn affine(y: Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = match weight {
        Some(w) => y.broadcast_mul(&w.to_dtype(y.dtype())?)?,
        None => y,
    };
    match bias {
        Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?),
        None => Ok(y),
    }
}

/// RMS normalisation over the last axis: `x / √(mean(x²) + eps) · weight`, differentiable
/// (`candle_nn::ops::rms_norm` is not). The fused path accumulates in f64.
pub fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    let dim = x.dim(D::Minus1)?;
    let mut all = vec![x];
    all.extend(weight);
    if fused_cpu(&all) {
        let w = match weight {
            Some(w) => w.contiguous()?,
            None => Tensor::ones(dim, DType::F32, &Device::Cpu)?,
        };
        return x
            .contiguous()?
            .apply_op2_no_bwd(&w, &kernels::RmsNorm { eps });
    }
    if let (false, true, Some(w)) = (x.device().is_cpu(), untracked(&all), weight) {
        if x.dtype() == DType::F32 {
            return candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32);
        }
    }
    let y = in_f32(x, |x| {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + eps)?.sqrt()?)
    })?;
    affine(y, weight, None)
}

/// Which keys each query may attend to in [`attention`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum AttentionMask<'a> {
    /// All keys.
    None,
    /// Keys up to the query's position (`j ≤ i + tk − tq`; for `tq = tk`, `j ≤ i`), as in
    /// a text encoder or a decoder.
    Causal,
    /// An additive mask broadcastable to `[b, h, tq, tk]` (0 to keep, −∞ to drop; a
    /// `[tq, tk]` matrix or a `[b, 1, 1, tk]` padding mask).
    Additive(&'a Tensor),
}

/// Scaled dot-product attention `softmax(scale · q kᵀ + mask) v`, differentiable (candle
/// has no CPU `sdpa`).
///
/// Layout `[batch, tokens, heads, head_dim]` for `q` (`tq` tokens), `k` and `v` (`tk`
/// tokens), as a linear projection's output reshaped without a copy; any strides (the
/// fused kernel reads through them). Returns `[batch, tq, heads, head_dim_v]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: AttentionMask<'_>,
    scale: f64,
) -> Result<Tensor> {
    let (b, tq, h, d) = q.dims4()?;
    let (kb, tk, kh, kd) = k.dims4()?;
    let (vb, vt, vh, _) = v.dims4()?;
    if (kb, kh, kd) != (b, h, d) || (vb, vt, vh) != (b, tk, h) {
        candle_core::bail!(
            "attention: q {:?}, k {:?} and v {:?} do not fit ([batch, tokens, heads, head_dim])",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    let fused_mask = match mask {
        AttentionMask::None => Some(false),
        AttentionMask::Causal => Some(true),
        AttentionMask::Additive(_) => None,
    };
    if let (Some(causal), true) = (fused_mask, fused_cpu(&[q, k, v])) {
        return q.apply_op3_no_bwd(
            k,
            v,
            &kernels::Attention {
                scale: scale as f32,
                causal,
            },
        );
    }
    // composed: [b, h, t, d]
    let qh = q.transpose(1, 2)?.contiguous()?;
    let kh = k.transpose(1, 2)?.contiguous()?;
    let vh = v.transpose(1, 2)?.contiguous()?;
    let scores = (qh.matmul(&kh.t()?)? * scale)?;
    let scores = match mask {
        AttentionMask::None => scores,
        AttentionMask::Causal => {
            let m = causal_mask(tq, tk, scores.dtype(), scores.device())?;
            scores.broadcast_add(&m)?
        }
        AttentionMask::Additive(m) => scores.broadcast_add(&m.to_dtype(scores.dtype())?)?,
    };
    let p = softmax_last_dim(&scores)?;
    p.matmul(&vh)?.transpose(1, 2)
}

/// The additive causal mask `[tq, tk]`: 0 where `j ≤ i + tk − tq`, −∞ elsewhere.
pub fn causal_mask(tq: usize, tk: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let shift = tk as isize - tq as isize;
    let data: Vec<f32> = (0..tq)
        .flat_map(|i| {
            (0..tk).map(move |j| {
                if (j as isize) > i as isize + shift {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(data, (tq, tk), device)?.to_dtype(dtype)
}

/// `x + h · scale` with `scale` (`[dim]`) broadcast over the last axis (a layer scale and
/// the residual add), differentiable; one pass on the CPU without gradients.
pub fn scaled_residual(x: &Tensor, h: &Tensor, scale: &Tensor) -> Result<Tensor> {
    if fused_cpu(&[x, h, scale]) && x.shape() == h.shape() {
        let (x, h, s) = (x.contiguous()?, h.contiguous()?, scale.contiguous()?);
        return x.apply_op3_no_bwd(&h, &s, &kernels::ScaledResidual);
    }
    x + h.broadcast_mul(scale)?
}

/// Quick GELU `x·σ(1.702x)` (OpenAI CLIP), differentiable.
pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    if fused_cpu(&[x]) {
        return x.contiguous()?.apply_op1_no_bwd(&kernels::Unary::QuickGelu);
    }
    x * candle_nn::ops::sigmoid(&(x * 1.702)?)?
}

/// Exact GELU `x·(1 + erf(x/√2))/2`, differentiable.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if fused_cpu(&[x]) {
        return x.contiguous()?.apply_op1_no_bwd(&kernels::Unary::GeluErf);
    }
    x.gelu_erf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;
    use candle_core::Var;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn randn(seed: u64, shape: &[usize]) -> Tensor {
        SeededRng::new(seed)
            .randn(shape, DType::F32, &Device::Cpu)
            .unwrap()
    }

    /// The same function through a Var (composed path) gives the fused path's numbers.
    fn tracked(x: &Tensor) -> Tensor {
        let v = Var::from_tensor(x).unwrap();
        assert!(v.as_tensor().track_op());
        v.as_tensor().clone()
    }

    #[test]
    fn fused_and_composed_paths_agree() {
        let x = randn(1, &[3, 5, 16]).affine(3.0, 7.0).unwrap();
        let w = randn(2, &[16]);
        let b = randn(3, &[16]);
        let xt = tracked(&x);
        let cases: Vec<(&str, Tensor, Tensor, f32)> = vec![
            (
                "softmax",
                softmax_last_dim(&x).unwrap(),
                softmax_last_dim(&xt).unwrap(),
                1e-6,
            ),
            (
                "layer_norm",
                layer_norm(&x, Some(&w), Some(&b), 1e-5).unwrap(),
                layer_norm(&xt, Some(&w), Some(&b), 1e-5).unwrap(),
                2e-5,
            ),
            (
                "layer_norm without affine",
                layer_norm(&x, None, None, 1e-6).unwrap(),
                layer_norm(&xt, None, None, 1e-6).unwrap(),
                2e-5,
            ),
            (
                "rms_norm",
                rms_norm(&x, Some(&w), 1e-6).unwrap(),
                rms_norm(&xt, Some(&w), 1e-6).unwrap(),
                2e-5,
            ),
            (
                "quick_gelu",
                quick_gelu(&x).unwrap(),
                quick_gelu(&xt).unwrap(),
                1e-5,
            ),
            (
                "gelu_erf",
                gelu_erf(&x).unwrap(),
                gelu_erf(&xt).unwrap(),
                1e-5,
            ),
            (
                "scaled_residual",
                scaled_residual(&x, &(&x * 0.5).unwrap(), &w).unwrap(),
                scaled_residual(&xt, &(&x * 0.5).unwrap(), &w).unwrap(),
                1e-5,
            ),
        ];
        for (name, fused, composed, tol) in cases {
            assert!(!fused.track_op(), "{name}: fused path expected");
            assert!(composed.track_op(), "{name}: composed path expected");
            let d = max_diff(&fused, &composed);
            assert!(d <= tol, "{name}: fused and composed differ by {d}");
        }
    }

    #[test]
    fn fused_linear_reads_the_stored_weight_and_matches_matmul() {
        let x = randn(4, &[2, 7, 12]);
        let w = randn(5, &[9, 12]);
        let b = randn(6, &[9]);
        let fused = linear(&x, &w, Some(&b)).unwrap();
        assert_eq!(fused.dims(), &[2, 7, 9]);
        let want = x
            .reshape((14, 12))
            .unwrap()
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap()
            .reshape((2, 7, 9))
            .unwrap();
        assert!(max_diff(&fused, &want) < 1e-5);
        // a weight stored transposed (a view) is read through its strides
        let wt = w.t().unwrap().contiguous().unwrap().t().unwrap();
        assert!(!wt.is_contiguous());
        assert!(max_diff(&linear(&x, &wt, Some(&b)).unwrap(), &want) < 1e-5);
        assert!(linear(&x, &randn(7, &[9, 11]), None).is_err());
    }

    #[test]
    fn fused_attention_matches_the_composed_formula_for_any_layout() {
        // [b, t, h, d] views of one fused projection, as attention layers produce them
        let (b, t, h, d) = (2, 6, 3, 4);
        let qkv = randn(8, &[b, t, 3 * h * d]);
        let view = |i: usize| {
            qkv.narrow(2, i * h * d, h * d)
                .unwrap()
                .reshape((b, t, h, d))
                .unwrap()
        };
        let (q, k, v) = (view(0), view(1), view(2));
        let scale = 1.0 / (d as f64).sqrt();
        for mask in [AttentionMask::None, AttentionMask::Causal] {
            let fused = attention(&q, &k, &v, mask, scale).unwrap();
            let composed = attention(&tracked(&q), &k, &v, mask, scale).unwrap();
            assert_eq!(fused.dims(), &[b, t, h, d]);
            let diff = max_diff(&fused, &composed);
            assert!(diff < 1e-5, "{mask:?}: {diff}");
        }
        // causal as an explicit additive mask gives the same
        let m = causal_mask(t, t, DType::F32, &Device::Cpu).unwrap();
        let add = attention(&q, &k, &v, AttentionMask::Additive(&m), scale).unwrap();
        let causal = attention(&q, &k, &v, AttentionMask::Causal, scale).unwrap();
        assert!(max_diff(&add, &causal) < 1e-5);
        // cross attention: other token count for keys, a permuted query
        let kv = randn(9, &[b, 5, h, d]);
        let qp = randn(10, &[b, h, t, d]).transpose(1, 2).unwrap();
        let fused = attention(&qp, &kv, &kv, AttentionMask::None, scale).unwrap();
        let composed = attention(&tracked(&qp), &kv, &kv, AttentionMask::None, scale).unwrap();
        assert!(max_diff(&fused, &composed) < 1e-5);
        assert!(attention(
            &q,
            &kv.narrow(3, 0, 2).unwrap(),
            &kv,
            AttentionMask::None,
            1.0
        )
        .is_err());
    }
}
