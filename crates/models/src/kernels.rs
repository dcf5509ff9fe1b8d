//! Fused CPU kernels for inference (f32, no gradient): candle custom ops without backward,
//! used by [`crate::ops`] only when no input tracks a gradient.
//!
//! Each reads its inputs through their strides where that saves a copy (the weight of a
//! linear layer is read as stored, `[out, in]`, transposed through the strides; attention
//! reads `q`, `k`, `v` of any layout), computes in one pass on all cores and returns a
//! contiguous result.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape};
use rayon::prelude::*;

/// A contiguous f32 slice of a CPU storage (`what` names the op in errors).
fn contiguous_f32<'a>(what: &str, s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what}: f32 only");
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{what}: contiguous inputs only");
    };
    Ok(&v[a..b])
}

/// The whole f32 buffer of a CPU storage (for strided reads).
fn f32_buffer<'a>(what: &str, s: &'a CpuStorage) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what}: f32 only");
    };
    Ok(v)
}

fn parallelism() -> gemm::Parallelism {
    let threads = candle_core::utils::get_num_threads();
    if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// `y = x Wᵀ + b` on the CPU in one matrix product: `x` `[m, k]` contiguous, `W` `[n, k]`
/// of any 2-D strides (as stored, read transposed), `b` `[n]` contiguous. The output starts
/// as the bias rows and the product accumulates onto it, instead of a product followed by
/// a broadcast add over the whole output.
pub(crate) struct LinearBias;

impl CustomOp3 for LinearBias {
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
        let x = contiguous_f32("linear", xs, xl)?;
        let b = contiguous_f32("linear", bs, bl)?;
        let w = f32_buffer("linear", ws)?;
        let (m, k) = xl.shape().dims2()?;
        let (n, k2) = wl.shape().dims2()?;
        if k != k2 || b.len() != n {
            candle_core::bail!("linear: shapes [{m}, {k}] x [{n}, {k2}]ᵀ + [{}]", b.len());
        }
        let [w_row, w_col] = [wl.stride()[0], wl.stride()[1]];
        let w_off = wl.start_offset();
        if n > 0 && k > 0 && w_off + (n - 1) * w_row + (k - 1) * w_col >= w.len() {
            candle_core::bail!("linear: weight layout outside its storage");
        }
        let mut out = Vec::with_capacity(m * n);
        for _ in 0..m {
            out.extend_from_slice(b);
        }
        if m == 0 || n == 0 || k == 0 {
            return Ok((CpuStorage::F32(out), Shape::from((m, n))));
        }
        // SAFETY: `out` is m×n and `x` m×k, contiguous row-major; the rhs Wᵀ (k×n) is read
        // at w[off + j·w_row + c·w_col], inside the buffer as checked above.
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
                w.as_ptr().add(w_off),
                w_row as isize,
                w_col as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                parallelism(),
            );
        }
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

/// Layer normalisation over the last axis, two-pass in f64 (mean, then centred variance)
/// for precision on residual streams with large offsets; `(x, weight, bias)`.
pub(crate) struct LayerNorm {
    pub eps: f64,
}

impl CustomOp3 for LayerNorm {
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
        let x = contiguous_f32("layer norm", s1, l1)?;
        let w = contiguous_f32("layer norm", s2, l2)?;
        let b = contiguous_f32("layer norm", s3, l3)?;
        let dim = w.len();
        if dim == 0 || b.len() != dim || x.len() % dim != 0 {
            candle_core::bail!("layer norm: shapes do not match");
        }
        let mut out = vec![0f32; x.len()];
        let eps = self.eps;
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

/// RMS normalisation over the last axis (sum of squares in f64); `(x, weight)`.
pub(crate) struct RmsNorm {
    pub eps: f64,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "reelsmith-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32("rms norm", s1, l1)?;
        let w = contiguous_f32("rms norm", s2, l2)?;
        let dim = w.len();
        if dim == 0 || x.len() % dim != 0 {
            candle_core::bail!("rms norm: shapes do not match");
        }
        let mut out = vec![0f32; x.len()];
        let eps = self.eps;
        out.par_chunks_mut(dim)
            .zip(x.par_chunks(dim))
            .for_each(|(o, x)| {
                let ms = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / dim as f64;
                let inv = (1.0 / (ms + eps).sqrt()) as f32;
                for i in 0..dim {
                    o[i] = x[i] * inv * w[i];
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Runs the slice kernel `f(input, output)` over a contiguous f32 tensor in blocks of
/// `block` elements on the rayon pool (candle maps unary functions on one thread).
fn par_map(
    s: &CpuStorage,
    l: &Layout,
    what: &str,
    block: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let x = contiguous_f32(what, s, l)?;
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(block.max(1))
        .zip(x.par_chunks(block.max(1)))
        .for_each(|(o, x)| f(x, o));
    Ok((CpuStorage::F32(out), l.shape().clone()))
}

/// Element-wise activations with a vectorised kernel of their own ([`crate::vmath`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Unary {
    /// `x·σ(1.702x)`.
    QuickGelu,
    /// `x·(1 + erf(x/√2))/2`.
    GeluErf,
}

impl CustomOp1 for Unary {
    fn name(&self) -> &'static str {
        match self {
            Unary::QuickGelu => "reelsmith-quick-gelu",
            Unary::GeluErf => "reelsmith-gelu-erf",
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        match self {
            Unary::QuickGelu => par_map(s, l, "quick_gelu", 4096, crate::vmath::quick_gelu),
            Unary::GeluErf => par_map(s, l, "gelu", 4096, crate::vmath::gelu_erf),
        }
    }
}

/// Softmax over the last axis, row by row on all cores.
pub(crate) struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "reelsmith-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l.shape().dims();
        let Some(&last) = dims.last() else {
            candle_core::bail!("softmax: a scalar has no last axis");
        };
        let x = contiguous_f32("softmax", s, l)?;
        let mut out = x.to_vec();
        if last > 0 {
            out.par_chunks_mut(last)
                .for_each(crate::vmath::softmax_in_place);
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// `x + h · scale`, with `scale` (`[dim]`) broadcast over the last axis (DINOv2's layer
/// scale and residual add in one pass); `(x, h, scale)`, the same f32 operations as
/// `x + h.broadcast_mul(scale)`.
pub(crate) struct ScaledResidual;

impl CustomOp3 for ScaledResidual {
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
        let x = contiguous_f32("scaled residual", xs, xl)?;
        let h = contiguous_f32("scaled residual", hs, hl)?;
        let scale = contiguous_f32("scaled residual", ss, sl)?;
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

/// Raw pointer to the output buffer, shared by the attention tasks; each writes its own
/// disjoint (batch, head) block.
struct OutPtr(*mut f32);
// SAFETY: the tasks write disjoint regions (one head of one batch item each).
unsafe impl Sync for OutPtr {}
unsafe impl Send for OutPtr {}
impl OutPtr {
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// Scaled dot-product attention, one task per (batch item, head) on the rayon pool, each
/// doing `softmax(scale · q kᵀ [+ causal mask]) v` with two matrix products and a
/// vectorised row softmax, the score matrix never leaving the task.
///
/// `q` `[b, tq, h, d]`, `k` and `v` `[b, tk, h, d]`, any strides (views of a fused
/// projection, permuted tensors); output `[b, tq, h, d]` contiguous.
pub(crate) struct Attention {
    pub scale: f32,
    /// Mask keys after the query's position (`j > i + tk − tq`).
    pub causal: bool,
}

/// Start offset and strides of a 4-D layout, checked to stay inside `len` elements.
fn strided4(
    what: &str,
    l: &Layout,
    len: usize,
) -> candle_core::Result<(usize, [usize; 4], [usize; 4])> {
    let dims: [usize; 4] = l
        .shape()
        .dims()
        .try_into()
        .map_err(|_| candle_core::Error::Msg(format!("{what}: expected a 4-D tensor")))?;
    let st: [usize; 4] = l
        .stride()
        .try_into()
        .map_err(|_| candle_core::Error::Msg(format!("{what}: expected a 4-D tensor")))?;
    let last = l.start_offset()
        + dims
            .iter()
            .zip(&st)
            .map(|(&d, &s)| d.saturating_sub(1) * s)
            .sum::<usize>();
    if dims.iter().all(|&d| d > 0) && last >= len {
        candle_core::bail!("{what}: layout outside its storage");
    }
    Ok((l.start_offset(), dims, st))
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "reelsmith-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (q, k, v) = (
            f32_buffer("attention", qs)?,
            f32_buffer("attention", ks)?,
            f32_buffer("attention", vs)?,
        );
        let (qo, [b, tq, heads, d], qst) = strided4("attention q", ql, q.len())?;
        let (ko, [kb, tk, kh, kd], kst) = strided4("attention k", kl, k.len())?;
        let (vo, [vb, vt, vh, vd], vst) = strided4("attention v", vl, v.len())?;
        if (kb, kh, kd) != (b, heads, d) || (vb, vt, vh) != (b, tk, heads) {
            candle_core::bail!(
                "attention: q [{b}, {tq}, {heads}, {d}], k [{kb}, {tk}, {kh}, {kd}], v [{vb}, {vt}, {vh}, {vd}] do not fit"
            );
        }
        let dv = vd;
        let hidden = heads * dv;
        let mut out = vec![0f32; b * tq * hidden];
        if out.is_empty() {
            return Ok((CpuStorage::F32(out), Shape::from((b, tq, heads, dv))));
        }
        if tk == 0 {
            // softmax over no keys: NaN as in the composed formula
            out.fill(f32::NAN);
            return Ok((CpuStorage::F32(out), Shape::from((b, tq, heads, dv))));
        }
        let dst = OutPtr(out.as_mut_ptr());
        let (scale, causal) = (self.scale, self.causal);
        let shift = tk as isize - tq as isize;
        (0..b * heads).into_par_iter().for_each_init(
            || vec![0f32; tq * tk],
            |scores, task| {
                let (bi, hi) = (task / heads, task % heads);
                // SAFETY: the offsets and strides were checked against the buffers above;
                // this task writes only rows bi·tq.. of head hi in `out` (row stride hidden).
                unsafe {
                    let qp = q.as_ptr().add(qo + bi * qst[0] + hi * qst[2]);
                    let kp = k.as_ptr().add(ko + bi * kst[0] + hi * kst[2]);
                    let vp = v.as_ptr().add(vo + bi * vst[0] + hi * vst[2]);
                    // scores[i][j] = scale · Σ_c q[i][c] · k[j][c]
                    gemm::gemm(
                        tq,
                        tk,
                        d,
                        scores.as_mut_ptr(),
                        1,
                        tk as isize,
                        false,
                        qp,
                        qst[3] as isize,
                        qst[1] as isize,
                        kp,
                        kst[1] as isize,
                        kst[3] as isize,
                        0.0f32,
                        scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                    for (i, r) in scores.chunks_exact_mut(tk).enumerate() {
                        if causal {
                            let keep = (i as isize + shift + 1).clamp(0, tk as isize) as usize;
                            r[keep..].fill(f32::NEG_INFINITY);
                        }
                        crate::vmath::softmax_in_place(r);
                    }
                    // out[i][c] = Σ_j p[i][j] · v[j][c]
                    let o = dst.get().add(bi * tq * hidden + hi * dv);
                    gemm::gemm(
                        tq,
                        dv,
                        tk,
                        o,
                        1,
                        hidden as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        tk as isize,
                        vp,
                        vst[3] as isize,
                        vst[1] as isize,
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
        Ok((CpuStorage::F32(out), Shape::from((b, tq, heads, dv))))
    }
}
