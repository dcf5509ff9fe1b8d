//! Vectorised f32 math for the CPU kernels: `exp`, `erf`, the row softmax of attention and
//! the GELU activations.
//!
//! libm's `expf` and `erff` are scalar calls with branches, so a loop over them cannot use
//! the vector units; in DINOv2 they took about a sixth of the CPU time. Here each function
//! is a branch-free polynomial over plain arithmetic and bit operations, written so that
//! the compiler vectorises the loops. Each public function is compiled three times, for
//! AVX-512F, for AVX2 + FMA and for the baseline, and picks the widest the CPU has at run
//! time (see [`simd_dispatch`]).
//!
//! Accuracy (checked against `f64` references in the tests below): `exp` within 2 ulp,
//! `erf` within 4e-7 absolute (about 6 ulp near ±1, where f32 has only 6e-8 of resolution;
//! exact GELU's output moves by less than 3e-7 · |x|).

/// Defines `$vis fn $name` from a body that is compiled three times (AVX-512F, AVX2 + FMA,
/// baseline) and dispatched at run time on x86_64; elsewhere the body runs as it is (the
/// baseline of aarch64 has NEON already).
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn v4($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn v3($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { v3($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

/// Lanes of the accumulators in reductions: one AVX-512 register of f32.
const LANES: usize = 16;

/// `eˣ`, branch-free: `x = n·ln2 + r` with `|r| ≤ ln2/2` (Cody–Waite split of ln2, so
/// `n·ln2_hi` is exact), `eʳ` by its degree-7 Taylor polynomial (truncation below 6e-9),
/// and `2ⁿ` built in the exponent bits. Below -87.3 the result is 0 (the true value is
/// under 1.2e-38, where f32 turns subnormal); above 88.3 it stays 2.1e38 instead of rising to
/// infinity. NaN stays NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO; LN2_HI has 9 significant bits, so n·LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2²³ rounds to an integer (ties to even) and leaves it in the low bits.
    const SHIFT: f32 = 12_582_912.0;
    let xc = x.clamp(-87.3, 88.3);
    let shifted = xc * LOG2E + SHIFT;
    let n = shifted - SHIFT;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // bits(shifted) = bits(1.5·2²³) + n; n + 127 is the biased exponent of 2ⁿ (1..=254).
    let two_n = f32::from_bits(
        shifted
            .to_bits()
            .wrapping_sub(SHIFT.to_bits())
            .wrapping_add(127)
            << 23,
    );
    if x < -87.3 {
        0.0
    } else {
        p * two_n
    }
}

/// `erf(x)` as `x·P(x²)/Q(x²)`, a rational function fitted for minimum relative error on
/// `(0, 3.92]` (beyond, erf rounds to ±1 in f32) by `scripts/fit_erf.py`. NaN stays NaN.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const P: [f32; 6] = [
        std::f32::consts::FRAC_2_SQRT_PI, // erf′(0); the fit lands on it
        0.190_382_12,
        0.052_745_868,
        0.003_764_673_1,
        2.848_791_5e-4,
        2.050_506_5e-6,
    ];
    const Q: [f32; 6] = [
        1.0,
        0.502_054_5,
        0.114_099_376,
        0.014_967_312,
        0.001_162_339_6,
        3.809_586_6e-5,
    ];
    let z = x.clamp(-3.92, 3.92);
    let s = z * z;
    let mut p = P[5];
    let mut q = Q[5];
    for (&pc, &qc) in P[..5].iter().zip(&Q[..5]).rev() {
        p = p * s + pc;
        q = q * s + qc;
    }
    (z * p / q).clamp(-1.0, 1.0)
}

simd_dispatch! {
    /// Softmax of one row in place: `exp(x − max)` normalised to sum 1. An empty row is left
    /// as it is; NaN anywhere in the row (also from +∞, or a row of only −∞) makes the whole
    /// row NaN.
    pub(crate) fn softmax_in_place(row: &mut [f32]) {
        if row.is_empty() {
            return;
        }
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let (chunks, tail) = row.as_chunks::<LANES>();
        for c in chunks {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l = if v > *l { v } else { *l };
            }
        }
        let mut max = tail.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for l in lanes {
            max = max.max(l);
        }
        let mut sums = [0f32; LANES];
        let (chunks, tail) = row.as_chunks_mut::<LANES>();
        for c in chunks {
            for (s, v) in sums.iter_mut().zip(c.iter_mut()) {
                *v = exp(*v - max);
                *s += *v;
            }
        }
        let mut sum = 0f32;
        for v in tail {
            *v = exp(*v - max);
            sum += *v;
        }
        sum += sums.iter().sum::<f32>();
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

simd_dispatch! {
    /// Exact GELU `x·(1 + erf(x/√2))/2` of every element of `x` into `out` (same length).
    pub(crate) fn gelu_erf(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = (erf(v * std::f32::consts::FRAC_1_SQRT_2) + 1.0) * 0.5 * v;
        }
    }
}

simd_dispatch! {
    /// Quick GELU `x·σ(1.702x)` of every element of `x` into `out` (same length).
    pub(crate) fn quick_gelu(x: &[f32], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v * (1.0 / (1.0 + exp(-(v * 1.702))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two f32 of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    fn erf64(x: f64) -> f64 {
        // libm's erf in f64 as the reference
        libm::erf(x)
    }

    #[test]
    fn exp_is_within_two_ulp_over_the_whole_range() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.3 {
            let want = (x as f64).exp() as f32;
            let got = exp(x);
            worst = worst.max(ulps(got, want));
            x += 0.000_37;
        }
        assert!(worst <= 2, "exp off by {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1000.0) < 1e-37 && exp(-1000.0) >= 0.0);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
    }

    #[test]
    fn erf_is_within_4e7_of_the_f64_reference() {
        let mut worst = 0f64;
        let mut x = -6.0f32;
        while x < 6.0 {
            let want = erf64(x as f64);
            let got = erf(x) as f64;
            worst = worst.max((got - want).abs());
            // near 0 the error must be relative too
            if x.abs() < 0.5 && x != 0.0 {
                assert!(
                    ((got - want) / want).abs() < 3e-7,
                    "erf({x}) = {got}, want {want}"
                );
            }
            x += 0.000_29;
        }
        assert!(worst < 4e-7, "erf off by {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
        assert!(erf(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_sums_to_one_and_matches_the_scalar_formula() {
        for n in [1usize, 5, 16, 17, 257] {
            let row: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7)
                .collect();
            let mut got = row.clone();
            softmax_in_place(&mut got);
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            for (g, &v) in got.iter().zip(&row) {
                let want = (v as f64 - max).exp() / sum;
                assert!((*g as f64 - want).abs() <= 1e-6 * want.max(1e-3), "n={n}");
            }
            let total: f32 = got.iter().sum();
            assert!((total - 1.0).abs() < 1e-5, "n={n}: sums to {total}");
        }
        let mut empty: [f32; 0] = [];
        softmax_in_place(&mut empty);
        let mut nan = vec![0.0f32, f32::NAN, 1.0];
        softmax_in_place(&mut nan);
        assert!(nan.iter().all(|v| v.is_nan()));
        let mut inf = vec![0.0f32, f32::NEG_INFINITY, 1.0];
        softmax_in_place(&mut inf);
        assert_eq!(inf[1], 0.0);
        assert!((inf.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn activations_match_their_scalar_definitions() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.013).collect();
        let mut g = vec![0f32; x.len()];
        gelu_erf(&x, &mut g);
        let mut q = vec![0f32; x.len()];
        quick_gelu(&x, &mut q);
        for ((&v, &g), &q) in x.iter().zip(&g).zip(&q) {
            let v64 = v as f64;
            let want_g = 0.5 * v64 * (1.0 + erf64(v64 / std::f64::consts::SQRT_2));
            let want_q = v64 / (1.0 + (-1.702 * v64).exp());
            assert!(
                (g as f64 - want_g).abs() < 3e-7 * v64.abs().max(1.0),
                "gelu({v})"
            );
            assert!(
                (q as f64 - want_q).abs() < 1e-6 * v64.abs().max(1.0),
                "quick_gelu({v})"
            );
        }
    }
}
