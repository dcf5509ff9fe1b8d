//! Optional CPU matrix products through OpenBLAS (`openblas` feature) for inference.
//!
//! candle multiplies f32 matrices with the `gemm` crate, which on the AVX-512 CPU this was
//! measured on reaches 40 GFLOP per core-second where OpenBLAS (and MKL, which PyTorch uses)
//! reach about 100 (docs/diffusion.md). With this feature, products of contiguous f32 CPU
//! tensors that carry no gradient go to `cblas_sgemm`; everything else (training, GPUs, other
//! dtypes) keeps candle's path. Needs the system library (`libopenblas-dev` on Debian).

use std::os::raw::c_int;

use candle_core::{CpuStorage, DType, Storage, Tensor};

use crate::error::Result;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

#[link(name = "openblas")]
extern "C" {
    fn cblas_sgemm(
        layout: c_int,
        transa: c_int,
        transb: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
}

/// Whether a tensor can be handed to BLAS: f32 on the CPU, no gradient tracking.
fn eligible(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && !t.track_op()
}

/// Runs `f` on the contiguous f32 data of `t`.
fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
        return Err(candle_core::Error::Msg("blas: f32 CPU storage expected".into()).into());
    };
    let start = layout.start_offset();
    Ok(f(&v[start..start + t.elem_count()]))
}

/// `c[batch] = a[batch] · op(b[batch])` for row-major `a` `[batch, m, k]` and `b` `[batch, k,
/// n]` (or `[batch, n, k]` when `trans_b`); `b` may have batch 1 (shared).
#[allow(clippy::too_many_arguments)]
fn sgemm(
    a: &[f32],
    b: &[f32],
    batch: usize,
    b_shared: bool,
    m: usize,
    n: usize,
    k: usize,
    trans_b: bool,
) -> Vec<f32> {
    assert!(a.len() >= batch * m * k);
    assert!(b.len() >= if b_shared { 1 } else { batch } * k * n);
    let mut c = vec![0f32; batch * m * n];
    for i in 0..batch {
        let ai = &a[i * m * k..(i + 1) * m * k];
        let bi = if b_shared {
            &b[..k * n]
        } else {
            &b[i * k * n..(i + 1) * k * n]
        };
        let ci = &mut c[i * m * n..(i + 1) * m * n];
        let (tb, ldb) = if trans_b { (TRANS, k) } else { (NO_TRANS, n) };
        // SAFETY: the slices hold exactly m·k, k·n and m·n row-major elements (checked by the
        // asserts and slicing above), matching the dimensions and leading dimensions passed.
        unsafe {
            cblas_sgemm(
                ROW_MAJOR,
                NO_TRANS,
                tb,
                m as c_int,
                n as c_int,
                k as c_int,
                1.0,
                ai.as_ptr(),
                k as c_int,
                bi.as_ptr(),
                ldb as c_int,
                0.0,
                ci.as_mut_ptr(),
                n as c_int,
            );
        }
    }
    c
}

/// `x · wᵀ` for `x` `[rows, in]` and `w` `[out, in]`, when both are eligible.
pub(crate) fn linear(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    if !eligible(x) || !eligible(w) {
        return Ok(None);
    }
    let (m, k) = x.dims2()?;
    let (n, k2) = w.dims2()?;
    if k != k2 {
        return Ok(None);
    }
    let c = with_data(x, |a| with_data(w, |b| sgemm(a, b, 1, true, m, n, k, true)))??;
    Ok(Some(Tensor::from_vec(c, (m, n), x.device())?))
}

/// Batched `a · b` (or `a · bᵀ`) over all leading axes of rank-3+ tensors, when eligible.
pub(crate) fn batched(a: &Tensor, b: &Tensor, trans_b: bool) -> Result<Option<Tensor>> {
    if !eligible(a) || !eligible(b) || a.rank() < 3 || a.rank() != b.rank() {
        return Ok(None);
    }
    let ad = a.dims();
    let bd = b.dims();
    let r = ad.len();
    if ad[..r - 2] != bd[..r - 2] {
        return Ok(None);
    }
    let batch: usize = ad[..r - 2].iter().product();
    let (m, k) = (ad[r - 2], ad[r - 1]);
    let (n, kb) = if trans_b {
        (bd[r - 2], bd[r - 1])
    } else {
        (bd[r - 1], bd[r - 2])
    };
    if k != kb {
        return Ok(None);
    }
    let c = with_data(a, |av| {
        with_data(b, |bv| sgemm(av, bv, batch, false, m, n, k, trans_b))
    })??;
    let mut shape = ad[..r - 2].to_vec();
    shape.extend([m, n]);
    Ok(Some(Tensor::from_vec(c, shape, a.device())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn blas_products_equal_candle() {
        let x = Tensor::randn(0f32, 1.0, (7, 5), &Device::Cpu).unwrap();
        let w = Tensor::randn(0f32, 1.0, (3, 5), &Device::Cpu).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap();
        let got = linear(&x, &w).unwrap().unwrap();
        let d: f32 = (want - got)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-5);
        let a = Tensor::randn(0f32, 1.0, (2, 3, 4, 6), &Device::Cpu).unwrap();
        let b = Tensor::randn(0f32, 1.0, (2, 3, 5, 6), &Device::Cpu).unwrap();
        let want = a.matmul(&b.t().unwrap()).unwrap();
        let got = batched(&a, &b, true).unwrap().unwrap();
        let d: f32 = (want - got)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-5);
        let c = Tensor::randn(0f32, 1.0, (2, 3, 6, 5), &Device::Cpu).unwrap();
        let want = a.matmul(&c).unwrap();
        let got = batched(&a, &c, false).unwrap().unwrap();
        let d: f32 = (want - got)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-5);
    }
}
