//! A seeded Gaussian generator, the same on every platform, device and build.
//!
//! candle's CPU random generator cannot be seeded, and GPU generators differ from CPU ones, so
//! the starting noise of a sampling run is drawn here on the host (xoshiro256++ seeded through
//! SplitMix64, Gaussian pairs by Box–Muller in f64) and then moved to the device: a seed gives
//! the same video on the CPU and on a GPU. The sequence is part of the crate's contract: a
//! seed keeps giving the same noise across versions.
//!
//! **Why not the shared model layer's `reelsmith_models::SeededRng`.** It solves the same
//! problem (host-side, device-independent, seeded) but with another stream: ChaCha8 and
//! Box–Muller over uniforms in (0, 1], where this generator is xoshiro256++ seeded through
//! SplitMix64 with uniforms in [0, 1). A seed would give other noise, hence other videos,
//! than it gives with this crate today (`sequence_is_pinned` below pins the stream, and
//! saved runs and the documented seeds rely on it). The crate therefore keeps its own
//! generator; weight initialisation for training can use `SeededRng`, which has named
//! streams.

use candle_core::{DType, Device, Shape, Tensor};

use crate::error::Result;

/// A seeded generator of uniform and standard normal numbers.
///
/// ```
/// use reelsmith_diffusion::NoiseGenerator;
/// let mut a = NoiseGenerator::new(42);
/// let mut b = NoiseGenerator::new(42);
/// assert_eq!(a.normal(), b.normal());
/// ```
#[derive(Debug, Clone)]
pub struct NoiseGenerator {
    s: [u64; 4],
    spare: Option<f64>,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl NoiseGenerator {
    /// A generator whose whole sequence is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut st = seed;
        let s = [
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
        ];
        Self { s, spare: None }
    }

    /// The next 64 random bits (xoshiro256++).
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal number (Box–Muller; the second of each pair is kept for the next call).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        // u1 in (0, 1] so that the logarithm is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }

    /// A tensor of standard normal noise of this shape, in `dtype` on `device`, filled in
    /// row-major order.
    pub fn randn<S: Into<Shape>>(
        &mut self,
        shape: S,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let shape: Shape = shape.into();
        let data: Vec<f32> = (0..shape.elem_count())
            .map(|_| self.normal() as f32)
            .collect();
        Ok(Tensor::from_vec(data, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_repeat_and_differ() {
        let a: Vec<f64> = {
            let mut g = NoiseGenerator::new(7);
            (0..8).map(|_| g.normal()).collect()
        };
        let b: Vec<f64> = {
            let mut g = NoiseGenerator::new(7);
            (0..8).map(|_| g.normal()).collect()
        };
        let c: Vec<f64> = {
            let mut g = NoiseGenerator::new(8);
            (0..8).map(|_| g.normal()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn sequence_is_pinned() {
        // The noise of a seed is part of the contract (reproducible runs across versions).
        let mut g = NoiseGenerator::new(0);
        let first = g.next_u64();
        assert_eq!(first, 0x53175d61490b23df);
    }

    #[test]
    fn moments_are_standard_normal() {
        let mut g = NoiseGenerator::new(1234);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| g.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let kurt = xs.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n as f64 / var.powi(2);
        // Standard errors: mean ~0.0022, var ~0.0032, kurtosis ~0.011.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "var {var}");
        assert!((kurt - 3.0).abs() < 0.06, "kurtosis {kurt}");
        let tail = xs.iter().filter(|x| x.abs() > 1.96).count() as f64 / n as f64;
        assert!((tail - 0.05).abs() < 0.003, "two-sided 5% tail {tail}");
    }
}
