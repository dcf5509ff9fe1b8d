//! Flow-matching schedulers, equal to diffusers step by step:
//!
//! - [`FlowMatchEuler`]: `FlowMatchEulerDiscreteScheduler` with a static `shift`.
//! - [`UniPc`]: `UniPCMultistepScheduler(use_flow_sigmas=True,
//!   prediction_type="flow_prediction")`, the multistep predictor–corrector Wan ships with.
//!
//! Both compute their sigma schedules with the same mix of f32 and f64 arithmetic as diffusers
//! (the timesteps the transformer sees are identical), and [`Scheduler`] picks one from a
//! `scheduler_config.json`.

use std::path::Path;

use candle_core::Tensor;
use serde::Deserialize;

use crate::error::{DiffusionError, Result};
use crate::loading::read_json;

/// numpy's `linspace(start, stop, num)` (endpoint included).
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

fn default_train() -> usize {
    1000
}
fn default_one() -> f64 {
    1.0
}
fn default_order() -> usize {
    2
}
fn default_bh2() -> String {
    "bh2".into()
}
fn default_true() -> bool {
    true
}
fn default_zero() -> String {
    "zero".into()
}

/// A `scheduler_config.json` of either scheduler (diffusers field names and defaults).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SchedulerConfig {
    /// `UniPCMultistepScheduler` or `FlowMatchEulerDiscreteScheduler`.
    #[serde(rename = "_class_name", default)]
    pub class_name: String,
    /// Training timesteps.
    #[serde(default = "default_train")]
    pub num_train_timesteps: usize,
    /// Euler's timestep shift.
    #[serde(default = "default_one")]
    pub shift: f64,
    /// UniPC's flow sigma shift.
    #[serde(default = "default_one")]
    pub flow_shift: f64,
    /// UniPC must use flow sigmas.
    #[serde(default)]
    pub use_flow_sigmas: bool,
    /// UniPC must predict the flow.
    #[serde(default)]
    pub prediction_type: Option<String>,
    /// UniPC's order.
    #[serde(default = "default_order")]
    pub solver_order: usize,
    /// `bh1` or `bh2`.
    #[serde(default = "default_bh2")]
    pub solver_type: String,
    /// Lower orders in the final steps.
    #[serde(default = "default_true")]
    pub lower_order_final: bool,
    /// Steps without the corrector.
    #[serde(default)]
    pub disable_corrector: Vec<usize>,
    /// UniPC's data-prediction form (required with flow sigmas).
    #[serde(default = "default_true")]
    pub predict_x0: bool,
    /// `zero` or `sigma_min`.
    #[serde(default = "default_zero")]
    pub final_sigmas_type: String,
    /// Resolution-dependent shifting (not supported).
    #[serde(default)]
    pub use_dynamic_shifting: bool,
    /// Karras sigmas (not supported).
    #[serde(default)]
    pub use_karras_sigmas: bool,
    /// Exponential sigmas (not supported).
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    /// Beta sigmas (not supported).
    #[serde(default)]
    pub use_beta_sigmas: bool,
    /// Terminal stretch (not supported).
    #[serde(default)]
    pub shift_terminal: Option<f64>,
    /// Inverted sigmas (not supported).
    #[serde(default)]
    pub invert_sigmas: bool,
    /// Stochastic Euler (not supported).
    #[serde(default)]
    pub stochastic_sampling: bool,
    /// Thresholding (not supported).
    #[serde(default)]
    pub thresholding: bool,
}

impl Default for SchedulerConfig {
    /// Wan's default: UniPC on flow sigmas, order 2, `bh2`, flow shift 5.
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({
            "_class_name": "UniPCMultistepScheduler",
            "use_flow_sigmas": true,
            "prediction_type": "flow_prediction",
            "flow_shift": 5.0,
        }))
        .expect("valid default scheduler config")
    }
}

/// Which scheduler to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerKind {
    /// UniPC multistep on flow sigmas.
    UniPc,
    /// Flow-match Euler.
    Euler,
}

impl std::str::FromStr for SchedulerKind {
    type Err = DiffusionError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "unipc" | "unipcmultistepscheduler" => Ok(SchedulerKind::UniPc),
            "euler" | "flowmatcheulerdiscretescheduler" => Ok(SchedulerKind::Euler),
            other => Err(DiffusionError::InvalidInput(format!(
                "unknown scheduler {other:?}: use unipc or euler"
            ))),
        }
    }
}

impl SchedulerConfig {
    /// Reads a `scheduler_config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        read_json(path)
    }

    /// The scheduler the config's `_class_name` names.
    pub fn kind(&self) -> Result<SchedulerKind> {
        self.class_name.parse()
    }

    /// The shift of the given scheduler kind.
    pub fn shift_for(&self, kind: SchedulerKind) -> f64 {
        match kind {
            SchedulerKind::UniPc => self.flow_shift,
            SchedulerKind::Euler => self.shift,
        }
    }
}

/// Flow-match Euler: `x ← x + (σ_next − σ) · v`.
#[derive(Debug, Clone)]
pub struct FlowMatchEuler {
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
    step_index: usize,
}

impl FlowMatchEuler {
    /// The schedule of `steps` steps with the given shift, as diffusers' `set_timesteps`.
    pub fn new(cfg: &SchedulerConfig, steps: usize, shift: f64) -> Result<Self> {
        let n = cfg.num_train_timesteps;
        // The training schedule, in f32, shifted once (it gives sigma_max and sigma_min).
        let shifted_f32 = |s: f32| -> f32 {
            let sh = shift as f32;
            sh * s / (1.0 + (sh - 1.0) * s)
        };
        // The training schedule's first sigma is 1 (timestep N / N).
        let sigma_max = shifted_f32(1.0) as f64;
        let sigma_min = shifted_f32(1.0f32 / n as f32) as f64;
        let ts = linspace(sigma_max * n as f64, sigma_min * n as f64, steps);
        let mut sigmas: Vec<f32> = ts
            .iter()
            .map(|t| {
                let s = t / n as f64;
                (shift * s / (1.0 + (shift - 1.0) * s)) as f32
            })
            .collect();
        let timesteps = sigmas.iter().map(|s| s * n as f32).collect();
        sigmas.push(0.0);
        Ok(Self {
            timesteps,
            sigmas,
            step_index: 0,
        })
    }

    /// One step from `sample` with the model's flow prediction.
    pub fn step(&mut self, model_output: &Tensor, sample: &Tensor) -> Result<Tensor> {
        let i = self.step_index;
        let dt = self.sigmas[i + 1] - self.sigmas[i];
        self.step_index += 1;
        Ok((sample + (model_output * dt as f64)?)?)
    }
}

/// UniPC multistep (predictor UniP, corrector UniC) on flow sigmas.
#[derive(Debug, Clone)]
pub struct UniPc {
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
    order: usize,
    bh2: bool,
    lower_order_final: bool,
    disable_corrector: Vec<usize>,
    step_index: usize,
    model_outputs: Vec<Option<Tensor>>,
    lower_order_nums: usize,
    last_sample: Option<Tensor>,
    this_order: usize,
}

/// `(α, σ, λ)` of a flow sigma, in f32 as diffusers computes them.
fn alpha_sigma_lambda(sigma: f32) -> (f32, f32, f32) {
    let alpha = 1.0 - sigma;
    (alpha, sigma, alpha.ln() - sigma.ln())
}

/// Solves `a x = b` (small, dense) by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, piv);
        b.swap(col, piv);
        let pivot_row = a[col].clone();
        for row in col + 1..n {
            let f = a[row][col] / pivot_row[col];
            for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| a[i][k] * x[k]).sum();
        x[i] = (b[i] - s) / a[i][i];
    }
    x
}

impl UniPc {
    /// The schedule of `steps` steps with the given flow shift, as diffusers' `set_timesteps`.
    pub fn new(cfg: &SchedulerConfig, steps: usize, shift: f64) -> Result<Self> {
        let n = cfg.num_train_timesteps as f64;
        let mut s: Vec<f64> = linspace(1.0, 1.0 / n, steps + 1);
        s.pop();
        let mut sigmas: Vec<f64> = s
            .iter()
            .map(|&x| shift * x / (1.0 + (shift - 1.0) * x))
            .collect();
        if (sigmas[0] - 1.0).abs() < 1e-6 {
            sigmas[0] -= 1e-6;
        }
        // diffusers casts the timesteps to int64 (truncation).
        let timesteps: Vec<f32> = sigmas.iter().map(|&x| (x * n).trunc() as f32).collect();
        let last = if cfg.final_sigmas_type == "sigma_min" {
            *sigmas.last().unwrap_or(&0.0)
        } else {
            0.0
        };
        let mut sigmas: Vec<f32> = sigmas.iter().map(|&x| x as f32).collect();
        sigmas.push(last as f32);
        Ok(Self {
            timesteps,
            sigmas,
            order: cfg.solver_order,
            bh2: cfg.solver_type != "bh1",
            lower_order_final: cfg.lower_order_final,
            disable_corrector: cfg.disable_corrector.clone(),
            step_index: 0,
            model_outputs: vec![None; cfg.solver_order],
            lower_order_nums: 0,
            last_sample: None,
            this_order: 1,
        })
    }

    fn output(&self, back: usize) -> &Tensor {
        self.model_outputs[self.order - 1 - back]
            .as_ref()
            .expect("model output history filled before use")
    }

    /// The coefficients shared by predictor and corrector: `(h_phi_1, B_h, R, b, rks)` for a
    /// step from `s0` to `t` with history sigmas `hist` (most recent first).
    fn coefficients(
        &self,
        sigma_t: f32,
        sigma_s0: f32,
        hist: &[f32],
        order: usize,
    ) -> (f32, f32, Vec<Vec<f64>>, Vec<f64>, Vec<f32>) {
        let (_, _, lambda_t) = alpha_sigma_lambda(sigma_t);
        let (_, _, lambda_s0) = alpha_sigma_lambda(sigma_s0);
        let h = lambda_t - lambda_s0;
        let mut rks: Vec<f32> = hist
            .iter()
            .map(|&s| (alpha_sigma_lambda(s).2 - lambda_s0) / h)
            .collect();
        rks.push(1.0);
        let hh = -h;
        let h_phi_1 = hh.exp_m1();
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let mut factorial = 1.0f32;
        let b_h = if self.bh2 { hh.exp_m1() } else { hh };
        let mut r = Vec::with_capacity(order);
        let mut b = Vec::with_capacity(order);
        for i in 1..=order {
            r.push(rks.iter().map(|&x| x.powi(i as i32 - 1) as f64).collect());
            b.push((h_phi_k * factorial / b_h) as f64);
            factorial *= (i + 1) as f32;
            h_phi_k = h_phi_k / hh - 1.0 / factorial;
        }
        (h_phi_1, b_h, r, b, rks)
    }

    fn predictor(&self, x: &Tensor, order: usize) -> Result<Tensor> {
        let i = self.step_index;
        let m0 = self.output(0);
        let (sigma_t, sigma_s0) = (self.sigmas[i + 1], self.sigmas[i]);
        let hist: Vec<f32> = (1..order).map(|k| self.sigmas[i - k]).collect();
        let (h_phi_1, b_h, r, b, rks) = self.coefficients(sigma_t, sigma_s0, &hist, order);
        let alpha_t = 1.0 - sigma_t;
        let mut x_t = ((x * (sigma_t / sigma_s0) as f64)? - (m0 * (alpha_t * h_phi_1) as f64)?)?;
        if order > 1 {
            let rhos: Vec<f64> = if order == 2 {
                vec![0.5]
            } else {
                let ra: Vec<Vec<f64>> = r[..order - 1]
                    .iter()
                    .map(|row| row[..order - 1].to_vec())
                    .collect();
                solve(ra, b[..order - 1].to_vec())
            };
            let mut res: Option<Tensor> = None;
            for k in 1..order {
                let d = ((self.output(k) - m0)? / rks[k - 1] as f64)?;
                let term = (d * (rhos[k - 1] as f32) as f64)?;
                res = Some(match res {
                    None => term,
                    Some(acc) => (acc + term)?,
                });
            }
            if let Some(res) = res {
                x_t = (x_t - (res * (alpha_t * b_h) as f64)?)?;
            }
        }
        Ok(x_t)
    }

    fn corrector(&self, model_t: &Tensor, last: &Tensor, order: usize) -> Result<Tensor> {
        let i = self.step_index;
        let m0 = self.output(0);
        let (sigma_t, sigma_s0) = (self.sigmas[i], self.sigmas[i - 1]);
        let hist: Vec<f32> = (1..order).map(|k| self.sigmas[i - k - 1]).collect();
        let (h_phi_1, b_h, r, b, rks) = self.coefficients(sigma_t, sigma_s0, &hist, order);
        let alpha_t = 1.0 - sigma_t;
        let rhos: Vec<f64> = if order == 1 { vec![0.5] } else { solve(r, b) };
        let x_t_ = ((last * (sigma_t / sigma_s0) as f64)? - (m0 * (alpha_t * h_phi_1) as f64)?)?;
        let mut res = ((model_t - m0)? * (rhos[order - 1] as f32) as f64)?;
        for k in 1..order {
            let d = ((self.output(k) - m0)? / rks[k - 1] as f64)?;
            res = (res + (d * (rhos[k - 1] as f32) as f64)?)?;
        }
        Ok((x_t_ - (res * (alpha_t * b_h) as f64)?)?)
    }

    /// One predictor–corrector step from `sample` with the model's flow prediction.
    pub fn step(&mut self, model_output: &Tensor, sample: &Tensor) -> Result<Tensor> {
        let i = self.step_index;
        let use_corrector =
            i > 0 && !self.disable_corrector.contains(&(i - 1)) && self.last_sample.is_some();
        // Flow prediction → data prediction x0 = x − σ·v.
        let converted = (sample - (model_output * self.sigmas[i] as f64)?)?;
        let sample = if use_corrector {
            let last = self.last_sample.clone().expect("checked above");
            self.corrector(&converted, &last, self.this_order)?
        } else {
            sample.clone()
        };
        self.model_outputs.remove(0);
        self.model_outputs.push(Some(converted));
        let mut order = if self.lower_order_final {
            self.order.min(self.timesteps.len() - i)
        } else {
            self.order
        };
        order = order.min(self.lower_order_nums + 1);
        self.this_order = order;
        let prev = self.predictor(&sample, order)?;
        self.last_sample = Some(sample);
        if self.lower_order_nums < self.order {
            self.lower_order_nums += 1;
        }
        self.step_index += 1;
        Ok(prev)
    }
}

/// Either scheduler behind one interface.
#[derive(Debug, Clone)]
pub enum Scheduler {
    /// Flow-match Euler.
    Euler(FlowMatchEuler),
    /// UniPC multistep.
    UniPc(UniPc),
}

impl Scheduler {
    /// A scheduler for `steps` steps. `kind` and `shift` override the config's class and
    /// shift when given.
    pub fn new(
        cfg: &SchedulerConfig,
        steps: usize,
        kind: Option<SchedulerKind>,
        shift: Option<f64>,
    ) -> Result<Self> {
        let unsupported = |what: &str| {
            Err(DiffusionError::InvalidInput(format!(
                "scheduler option {what} is not supported (Wan's configs do not use it)"
            )))
        };
        if steps == 0 {
            return Err(DiffusionError::InvalidInput(
                "the number of steps must be at least 1".into(),
            ));
        }
        if cfg.use_dynamic_shifting {
            return unsupported("use_dynamic_shifting");
        }
        if cfg.use_karras_sigmas || cfg.use_exponential_sigmas || cfg.use_beta_sigmas {
            return unsupported("karras/exponential/beta sigmas");
        }
        if cfg.shift_terminal.is_some() || cfg.invert_sigmas || cfg.stochastic_sampling {
            return unsupported("shift_terminal/invert_sigmas/stochastic_sampling");
        }
        if cfg.thresholding {
            return unsupported("thresholding");
        }
        let kind = match kind {
            Some(k) => k,
            None => cfg.kind()?,
        };
        let shift = shift.unwrap_or_else(|| cfg.shift_for(kind));
        if !(shift.is_finite() && shift > 0.0) {
            return Err(DiffusionError::InvalidInput(format!(
                "the shift must be positive; got {shift}"
            )));
        }
        Ok(match kind {
            SchedulerKind::Euler => Scheduler::Euler(FlowMatchEuler::new(cfg, steps, shift)?),
            SchedulerKind::UniPc => {
                if cfg.kind()? == SchedulerKind::UniPc {
                    if !cfg.use_flow_sigmas
                        || cfg.prediction_type.as_deref() != Some("flow_prediction")
                        || !cfg.predict_x0
                    {
                        return unsupported(
                            "UniPC without use_flow_sigmas=true, prediction_type=flow_prediction, predict_x0=true",
                        );
                    }
                    if cfg.solver_order == 0 {
                        return unsupported("solver_order 0");
                    }
                }
                let mut c = cfg.clone();
                if cfg.kind()? != SchedulerKind::UniPc {
                    // UniPC built from an Euler config: Wan's UniPC defaults.
                    c = SchedulerConfig {
                        num_train_timesteps: cfg.num_train_timesteps,
                        ..SchedulerConfig::default()
                    };
                }
                Scheduler::UniPc(UniPc::new(&c, steps, shift)?)
            }
        })
    }

    /// The timesteps the transformer is given, one per step (UniPC's are whole numbers).
    pub fn timesteps(&self) -> &[f32] {
        match self {
            Scheduler::Euler(s) => &s.timesteps,
            Scheduler::UniPc(s) => &s.timesteps,
        }
    }

    /// The sigmas, one per step plus the final one.
    pub fn sigmas(&self) -> &[f32] {
        match self {
            Scheduler::Euler(s) => &s.sigmas,
            Scheduler::UniPc(s) => &s.sigmas,
        }
    }

    /// One step from `sample` with the model's flow prediction.
    pub fn step(&mut self, model_output: &Tensor, sample: &Tensor) -> Result<Tensor> {
        match self {
            Scheduler::Euler(s) => s.step(model_output, sample),
            Scheduler::UniPc(s) => s.step(model_output, sample),
        }
    }
}
