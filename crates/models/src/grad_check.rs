//! Finite-difference gradient checks: does `backward()` give the true gradient of a
//! function, for every input?
//!
//! candle silently drops gradients through operations without a backward pass (its fused
//! `softmax_last_dim`, `layer_norm`, `rms_norm`): the loss still goes down for the
//! parameters before them... or does not, and nothing says why. [`grad_check`] catches
//! both a missing gradient ([`GradCheckError::NoGradient`]) and a wrong one
//! ([`GradCheckError::Mismatch`]).
//!
//! The check runs in f64 on the CPU: the inputs are converted, the function's output is
//! reduced to a scalar with fixed random weights (so every output element counts), the
//! analytic gradient comes from `backward()` and the numeric one from central differences
//! `(L(x + ε) − L(x − ε)) / 2ε` on every element (or on a seeded sample of
//! [`GradCheck::max_elements`] elements of large inputs).
//!
//! ```
//! use reelsmith_models::candle_core::{DType, Device, Tensor};
//! use reelsmith_models::{grad_check, ops, randn};
//!
//! let x = randn(0, (3, 8), DType::F64, &Device::Cpu)?;
//! let w = randn(1, 8, DType::F64, &Device::Cpu)?;
//! // gradients of RMS norm with respect to the input and the weight
//! let report = grad_check(&[x, w], |t| ops::rms_norm(&t[0], Some(&t[1]), 1e-6))?;
//! assert!(report.max_abs_error < 1e-6);
//! // candle's own rms_norm has no backward: the check says so
//! let (x, w) = (randn(0, (3, 8), DType::F64, &Device::Cpu)?, randn(1, 8, DType::F64, &Device::Cpu)?);
//! let err = grad_check(&[x, w], |t| {
//!     candle_nn::ops::rms_norm(&t[0].to_dtype(DType::F32)?, &t[1].to_dtype(DType::F32)?, 1e-6)?
//!         .to_dtype(DType::F64)
//! })
//! .unwrap_err();
//! assert!(err.to_string().contains("no gradient"), "{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use candle_core::{DType, Device, Tensor, Var};

use crate::rng::SeededRng;

/// Why a gradient check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GradCheckError {
    /// `backward()` produced no gradient for this input: an operation on the way has no
    /// backward pass (or the input is not used).
    #[error("no gradient reached input {input}: an operation between it and the output has no backward pass (or the input is unused)")]
    NoGradient {
        /// Index of the input.
        input: usize,
    },
    /// The analytic gradient differs from the finite difference.
    #[error("input {input}, element {element}: backward gives {analytic:.6e}, the finite difference {numeric:.6e}")]
    Mismatch {
        /// Index of the input.
        input: usize,
        /// Flat (row-major) index of the element.
        element: usize,
        /// The gradient from `backward()`.
        analytic: f64,
        /// The central difference.
        numeric: f64,
    },
    /// The function's value is not finite at the inputs.
    #[error("the function is not finite at the given inputs")]
    NotFinite,
    /// The function or candle failed.
    #[error("tensor backend: {0}")]
    Backend(#[from] candle_core::Error),
}

/// What a passing check measured.
#[derive(Debug, Clone, PartialEq)]
pub struct GradReport {
    /// Elements compared, per input.
    pub checked: Vec<usize>,
    /// Largest `|analytic − numeric|`.
    pub max_abs_error: f64,
    /// Largest `|analytic − numeric| / max(|analytic|, |numeric|)` among elements whose
    /// gradient is not negligible (above the absolute tolerance).
    pub max_rel_error: f64,
}

/// Settings of a gradient check; [`grad_check`] uses the defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradCheck {
    /// Step of the central difference (default 1e-6).
    pub eps: f64,
    /// Absolute tolerance (default 1e-6).
    pub atol: f64,
    /// Relative tolerance (default 1e-4).
    pub rtol: f64,
    /// Elements checked per input at most (default 64; a seeded sample of larger inputs).
    pub max_elements: usize,
    /// Seed of the output weights and of the sample.
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        Self {
            eps: 1e-6,
            atol: 1e-6,
            rtol: 1e-4,
            max_elements: 64,
            seed: 0,
        }
    }
}

impl GradCheck {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the tolerances.
    pub fn tolerance(mut self, atol: f64, rtol: f64) -> Self {
        self.atol = atol;
        self.rtol = rtol;
        self
    }

    /// Sets the finite-difference step.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets how many elements per input are checked at most.
    pub fn max_elements(mut self, n: usize) -> Self {
        self.max_elements = n.max(1);
        self
    }

    /// Checks the gradients of `f` with respect to every tensor of `inputs` (converted to
    /// f64 on the CPU; `f` gets them as variables for the analytic pass and as plain
    /// tensors for the numeric one, so it must not depend on that difference).
    pub fn check<F>(&self, inputs: &[Tensor], f: F) -> Result<GradReport, GradCheckError>
    where
        F: Fn(&[Tensor]) -> candle_core::Result<Tensor>,
    {
        let base: Vec<Tensor> = inputs
            .iter()
            .map(|t| t.to_device(&Device::Cpu)?.to_dtype(DType::F64))
            .collect::<candle_core::Result<_>>()?;
        let vars: Vec<Var> = base
            .iter()
            .map(Var::from_tensor)
            .collect::<candle_core::Result<_>>()?;
        let var_tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&var_tensors)?.to_dtype(DType::F64)?;
        let mut rng = SeededRng::new(self.seed).stream("grad_check/weights");
        let weights = rng.randn(y.shape(), DType::F64, &Device::Cpu)?;
        let loss_of = |y: &Tensor| -> candle_core::Result<f64> {
            (y.to_dtype(DType::F64)? * &weights)?
                .sum_all()?
                .to_scalar::<f64>()
        };
        let loss = (&y * &weights)?.sum_all()?;
        if !loss.to_scalar::<f64>()?.is_finite() {
            return Err(GradCheckError::NotFinite);
        }
        let grads = loss.backward()?;
        let mut sample = SeededRng::new(self.seed).stream("grad_check/sample");
        let mut report = GradReport {
            checked: Vec::with_capacity(inputs.len()),
            max_abs_error: 0.0,
            max_rel_error: 0.0,
        };
        for (i, (x, v)) in base.iter().zip(&var_tensors).enumerate() {
            let Some(g) = grads.get(v) else {
                return Err(GradCheckError::NoGradient { input: i });
            };
            let g: Vec<f64> = g.flatten_all()?.to_vec1()?;
            let values: Vec<f64> = x.flatten_all()?.to_vec1()?;
            let n = values.len();
            let elements: Vec<usize> = if n <= self.max_elements {
                (0..n).collect()
            } else {
                let mut idx: Vec<usize> = (0..self.max_elements)
                    .map(|_| ((sample.uniform(0.0, 1.0) * n as f64) as usize).min(n - 1))
                    .collect();
                idx.sort_unstable();
                idx.dedup();
                idx
            };
            for &e in &elements {
                let at = |delta: f64| -> candle_core::Result<f64> {
                    let mut moved = values.clone();
                    moved[e] += delta;
                    let moved = Tensor::from_vec(moved, x.shape(), &Device::Cpu)?;
                    let mut args = base.clone();
                    args[i] = moved;
                    loss_of(&f(&args)?)
                };
                let numeric = (at(self.eps)? - at(-self.eps)?) / (2.0 * self.eps);
                let analytic = g[e];
                let err = (analytic - numeric).abs();
                let size = analytic.abs().max(numeric.abs());
                if !numeric.is_finite() || err > self.atol + self.rtol * size {
                    return Err(GradCheckError::Mismatch {
                        input: i,
                        element: e,
                        analytic,
                        numeric,
                    });
                }
                report.max_abs_error = report.max_abs_error.max(err);
                if size > self.atol {
                    report.max_rel_error = report.max_rel_error.max(err / size);
                }
            }
            report.checked.push(elements.len());
        }
        Ok(report)
    }
}

/// Checks the gradients of `f` with respect to every input with the default settings
/// ([`GradCheck::default`]); see the [module docs](self).
pub fn grad_check<F>(inputs: &[Tensor], f: F) -> Result<GradReport, GradCheckError>
where
    F: Fn(&[Tensor]) -> candle_core::Result<Tensor>,
{
    GradCheck::default().check(inputs, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_gradient_is_caught() {
        let x = crate::randn(0, (2, 3), DType::F64, &Device::Cpu).unwrap();
        // forward x², backward says 3x (a custom op with a deliberately wrong bwd)
        struct Wrong;
        impl candle_core::CustomOp1 for Wrong {
            fn name(&self) -> &'static str {
                "wrong-square"
            }
            fn cpu_fwd(
                &self,
                s: &candle_core::CpuStorage,
                l: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                let candle_core::CpuStorage::F64(v) = s else {
                    candle_core::bail!("f64 only")
                };
                let (a, b) = l.contiguous_offsets().unwrap();
                let out = v[a..b].iter().map(|x| x * x).collect();
                Ok((candle_core::CpuStorage::F64(out), l.shape().clone()))
            }
            fn bwd(
                &self,
                arg: &Tensor,
                _res: &Tensor,
                g: &Tensor,
            ) -> candle_core::Result<Option<Tensor>> {
                Ok(Some((arg * 3.0)?.mul(g)?))
            }
        }
        let err = grad_check(std::slice::from_ref(&x), |t| t[0].apply_op1(Wrong)).unwrap_err();
        assert!(
            matches!(err, GradCheckError::Mismatch { input: 0, .. }),
            "{err}"
        );
        let ok = grad_check(&[x], |t| t[0].sqr()).unwrap();
        assert_eq!(ok.checked, [6]);
        assert!(ok.max_abs_error < 1e-7);
    }

    #[test]
    fn unused_and_dropped_inputs_are_reported_by_index() {
        let a = crate::randn(1, 4, DType::F64, &Device::Cpu).unwrap();
        let b = crate::randn(2, 4, DType::F64, &Device::Cpu).unwrap();
        let err = grad_check(&[a.clone(), b.clone()], |t| t[0].exp()).unwrap_err();
        assert!(
            matches!(err, GradCheckError::NoGradient { input: 1 }),
            "{err}"
        );
        // candle's softmax_last_dim drops the gradient
        let err = grad_check(&[a.reshape((1, 4)).unwrap()], |t| {
            candle_nn::ops::softmax_last_dim(&t[0])
        })
        .unwrap_err();
        assert!(
            matches!(err, GradCheckError::NoGradient { input: 0 }),
            "{err}"
        );
    }

    #[test]
    fn large_inputs_are_sampled() {
        let x = crate::randn(3, (40, 40), DType::F64, &Device::Cpu).unwrap();
        let r = GradCheck::new()
            .max_elements(10)
            .check(&[x], |t| t[0].tanh())
            .unwrap();
        assert!(r.checked[0] <= 10 && r.checked[0] >= 5);
    }
}
