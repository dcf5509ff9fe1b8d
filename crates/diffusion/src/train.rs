//! LoRA training of the Wan transformer on pre-encoded examples, as FFGo does it.
//!
//! - Flow matching: `x_t = (1 − σ)·x0 + σ·ε`, the model predicts `ε − x0`, mean squared
//!   error. `σ` is drawn uniformly from the 1000 training sigmas of a flow-match schedule
//!   with shift 5 (`σ = s·u / (1 + (s − 1)·u)`, `u = 1, 0.999, …, 0.001`), restricted to the
//!   expert's timestep range for Wan2.2-A14B. As in FFGo's VideoX-Fun trainer, the schedule
//!   is split at the timestep closest to the boundary (`t = 1000σ` nearest 900): the
//!   high-noise expert trains on the timesteps before it (357 of 1000 at shift 5, all
//!   above 900), the low-noise expert on it and those after.
//! - The loss ignores elements whose error exceeds 50 in absolute value, as FFGo's does
//!   (a guard against outliers that does not act on ordinary latents).
//! - Only the LoRA variables train ([`WanLora`]); the base weights are never touched.
//! - AdamW (decoupled weight decay, bias-corrected moments) with global gradient-norm
//!   clipping, a linear warm-up then a constant learning rate, batches and gradient
//!   accumulation.
//! - Seeded and reproducible: the sample order of each epoch, the noise, the sigmas and the
//!   dropout of each step come from generators seeded by `(seed, epoch)` and `(seed, step)`,
//!   so a resumed run draws exactly what the uninterrupted run drew.
//! - Checkpoints every N steps (adapter, optimiser moments, step, loss history) under
//!   `OUT/checkpoints/step-NNNNNN/`; [`train`] with `resume` continues from the newest and
//!   gives the same loss curve as a run that was never interrupted. `OUT/loss.csv` holds
//!   one row per step; `OUT/adapter.safetensors` the final adapter.
//!
//! - Per-block recompute ([`TrainConfig::recompute`], on by default as FFGo trains with
//!   `--gradient_checkpointing`): candle has no activation checkpointing, so the trainer
//!   runs the transformer in stages (embedding, each block, head), keeps only each block's
//!   input during the forward pass and, going backwards, runs each block again with
//!   gradients tracked and back-propagates `Σ out·∂L/∂out` through it. Same gradients as
//!   the whole graph (tested), one block's activations in memory instead of all of them.
//!
//! A step runs only the transformer: latents, the first-frame condition and the text
//! embeddings come from the cache ([`crate::cache`]).
//! - With [`TrainConfig::entity_attn`], an entity cross-attention
//!   ([`crate::entity_attn`]) trains with the LoRA: its variables join the optimiser, its
//!   output projections start at zero (so step 1 starts from the base model), and each
//!   example's first-frame entities ([`TrainExample::entities`]) are batched with padding
//!   masks.
//!
//! A step runs only the transformer: latents, the first-frame condition, the text
//! embeddings and the entity embeddings come from the cache ([`crate::cache`]).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use reelsmith_models::{LoraConfig, LoraNaming, SeededRng};
use serde::{Deserialize, Serialize};

use crate::entity_attn::{EntityAttnConfig, EntitySet, EntityTokens};
use crate::error::{DiffusionError, Result};
use crate::lora::WanLora;
use crate::transformer::WanTransformer;

/// One pre-encoded training example.
#[derive(Debug, Clone)]
pub struct TrainExample {
    /// A name for reports (the clip's path).
    pub name: String,
    /// Normalised VAE latents of the clip `[channels, frames, height, width]`.
    pub latents: Tensor,
    /// The image-to-video condition `[mask 4 + latent channels, frames, height, width]`
    /// (Wan2.2-I2V), or `None` for text-to-video models.
    pub condition: Option<Tensor>,
    /// Text embeddings `[tokens, text_dim]`.
    pub context: Tensor,
    /// The entities of the composed first frame (embeddings `[n, dim]`, optional
    /// geometry), for entity attention; `None` when the cache was made without them.
    pub entities: Option<EntitySet>,
}

/// Loss elements whose absolute error exceeds this are left out of the mean (FFGo's
/// VideoX-Fun trainer does the same).
pub const LOSS_OUTLIER_THRESHOLD: f64 = 50.0;

/// Which timesteps a run trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimestepRange {
    /// All of them (single-transformer models).
    #[default]
    All,
    /// The timesteps before the one closest to `boundary · 1000` (all above it):
    /// Wan2.2-A14B's high-noise expert (`transformer`).
    High,
    /// That timestep and the ones after: the low-noise expert (`transformer_2`).
    Low,
}

/// Training settings. Defaults are FFGo's (LoRA rank 128, alpha 128 on every dense layer of
/// every block; AdamW lr 1e-4, weight decay 3e-2; shift 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The adapters.
    pub lora: LoraConfig,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW `β1, β2`.
    pub betas: [f64; 2],
    /// AdamW `ε`.
    pub adam_eps: f64,
    /// Gradients are scaled down when their global L2 norm exceeds this (0 = no clipping).
    pub max_grad_norm: f64,
    /// Linear warm-up from 0 over this many steps, then constant.
    pub warmup_steps: usize,
    /// Optimiser steps in all.
    pub steps: usize,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub grad_accum: usize,
    /// Seed of everything random.
    pub seed: u64,
    /// A checkpoint every this many steps (0 = only at the end).
    pub save_every: usize,
    /// Shift of the training sigmas.
    pub shift: f64,
    /// Training timesteps of the schedule.
    pub num_train_timesteps: usize,
    /// Timestep range (the expert).
    pub timesteps: TimestepRange,
    /// Boundary between the experts as a fraction of the timesteps (Wan2.2-A14B: 0.9).
    pub boundary: f64,
    /// Naming of `adapter.safetensors`.
    pub adapter_naming: LoraNaming,
    /// Recompute each block's activations during the backward pass instead of keeping the
    /// whole forward graph (activation checkpointing, as FFGo's `--gradient_checkpointing`):
    /// the memory of one block's activations instead of all of them, for about one more
    /// forward pass of compute. Gives the same gradients either way; may change on resume.
    pub recompute: bool,
    /// Train an entity cross-attention with the LoRA (`None`: the LoRA alone). Every
    /// example needs its first-frame entities.
    pub entity_attn: Option<EntityAttnConfig>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lora: WanLora::ffgo_config(),
            learning_rate: 1e-4,
            weight_decay: 3e-2,
            betas: [0.9, 0.999],
            adam_eps: 1e-10,
            max_grad_norm: 0.05,
            warmup_steps: 0,
            steps: 1000,
            batch_size: 1,
            grad_accum: 1,
            seed: 42,
            save_every: 100,
            shift: 5.0,
            num_train_timesteps: 1000,
            timesteps: TimestepRange::All,
            boundary: 0.9,
            adapter_naming: LoraNaming::Peft,
            recompute: true,
            entity_attn: None,
        }
    }
}

impl TrainConfig {
    /// Checks the values; the error names the setting and the fix.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DiffusionError::InvalidInput(m));
        self.lora
            .validate()
            .map_err(|e| DiffusionError::InvalidInput(e.to_string()))?;
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "learning_rate must be positive; got {}",
                self.learning_rate
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight_decay must be ≥ 0; got {}",
                self.weight_decay
            ));
        }
        if self.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return bad(format!("betas must be in [0, 1); got {:?}", self.betas));
        }
        if self.steps == 0 || self.batch_size == 0 || self.grad_accum == 0 {
            return bad("steps, batch_size and grad_accum must be at least 1".into());
        }
        if !(self.shift.is_finite() && self.shift > 0.0) || self.num_train_timesteps < 2 {
            return bad("shift must be positive and num_train_timesteps at least 2".into());
        }
        if !(0.0..=1.0).contains(&self.boundary) {
            return bad(format!("boundary must be in [0, 1]; got {}", self.boundary));
        }
        if self.max_grad_norm < 0.0 || !self.max_grad_norm.is_finite() {
            return bad("max_grad_norm must be ≥ 0 (0 turns clipping off)".into());
        }
        if let Some(e) = &self.entity_attn {
            e.validate()?;
        }
        Ok(())
    }

    /// The training sigmas allowed by [`Self::timesteps`], high to low.
    pub fn sigmas(&self) -> Vec<f64> {
        let n = self.num_train_timesteps;
        let s = self.shift;
        let b = self.boundary * n as f64;
        let all: Vec<f64> = (0..n)
            .map(|i| {
                let u = (n - i) as f64 / n as f64;
                s * u / (1.0 + (s - 1.0) * u)
            })
            .collect();
        // FFGo (VideoX-Fun) splits at the index of the timestep closest to the boundary.
        let split = all
            .iter()
            .enumerate()
            .min_by(|x, y| {
                (x.1 * n as f64 - b)
                    .abs()
                    .total_cmp(&(y.1 * n as f64 - b).abs())
            })
            .map(|(i, _)| i)
            .unwrap_or(0);
        match self.timesteps {
            TimestepRange::All => all,
            TimestepRange::High => all[..split].to_vec(),
            TimestepRange::Low => all[split..].to_vec(),
        }
    }

    /// The learning rate at optimiser step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            self.learning_rate * (step + 1) as f64 / (self.warmup_steps + 1) as f64
        } else {
            self.learning_rate
        }
    }
}

/// What [`train`] reports after each optimiser step.
#[derive(Debug, Clone)]
pub struct TrainStep {
    /// Steps done (1-based).
    pub step: usize,
    /// Steps in all.
    pub steps: usize,
    /// Mean loss of the step's examples.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Time since this run (or resume) started.
    pub elapsed: Duration,
    /// Estimated time to the end.
    pub eta: Duration,
    /// The checkpoint written after this step, if any.
    pub checkpoint: Option<PathBuf>,
}

/// What a training run produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Loss per step from step 1 (a resumed run includes the checkpoint's history).
    pub losses: Vec<f64>,
    /// `OUT/adapter.safetensors`.
    pub adapter: PathBuf,
    /// `OUT/loss.csv`.
    pub loss_csv: PathBuf,
    /// The step a resumed run continued from.
    pub resumed_from: Option<usize>,
}

/// Checkpoint state beside the tensors.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    config: TrainConfig,
    rows: Vec<LossRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LossRow {
    step: usize,
    loss: f64,
    lr: f64,
    grad_norm: f64,
}

/// AdamW with decoupled weight decay, as `torch.optim.AdamW`.
struct AdamW {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl AdamW {
    fn new(vars: &[Var]) -> Result<Self> {
        let z = |v: &Var| v.as_tensor().zeros_like();
        Ok(Self {
            m: vars.iter().map(z).collect::<candle_core::Result<_>>()?,
            v: vars.iter().map(z).collect::<candle_core::Result<_>>()?,
        })
    }

    /// One update at 1-based step `t`.
    fn step(
        &mut self,
        vars: &[Var],
        grads: &[Tensor],
        t: usize,
        lr: f64,
        cfg: &TrainConfig,
    ) -> Result<()> {
        let [b1, b2] = cfg.betas;
        let c1 = 1.0 - b1.powi(t as i32);
        let c2 = 1.0 - b2.powi(t as i32);
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            let m = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let p = var.as_tensor();
            let decayed = (p * (1.0 - lr * cfg.weight_decay))?;
            let denom = ((&v / c2)?.sqrt()? + cfg.adam_eps)?;
            let upd = ((&m / c1)? / denom)?;
            var.set(&(decayed - (upd * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes).map_err(|e| DiffusionError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| DiffusionError::io(path, e))
}

fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let tmp = path.with_extension("part");
    candle_core::safetensors::save(tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| DiffusionError::io(path, e))
}

fn checkpoint_dir(out: &Path, step: usize) -> PathBuf {
    out.join("checkpoints").join(format!("step-{step:06}"))
}

/// The newest complete checkpoint under `OUT/checkpoints` (one whose `state.json` exists).
fn newest_checkpoint(out: &Path) -> Option<(usize, PathBuf)> {
    let rd = std::fs::read_dir(out.join("checkpoints")).ok()?;
    rd.filter_map(|e| {
        let e = e.ok()?;
        let n = e.file_name().to_string_lossy().to_string();
        let step: usize = n.strip_prefix("step-")?.parse().ok()?;
        e.path()
            .join("state.json")
            .is_file()
            .then(|| (step, e.path()))
    })
    .max_by_key(|(s, _)| *s)
}

/// The PEFT `adapter_config.json` written beside the adapter.
fn adapter_config(lora: &WanLora) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "LORA",
        "r": lora.config().rank,
        "lora_alpha": lora.config().alpha,
        "lora_dropout": lora.config().dropout,
        "target_modules": lora.layers().keys().collect::<Vec<_>>(),
        "bias": "none",
        "init_lora_weights": true,
    })
}

/// The entity tokens of a group of examples (padded to the largest entity count).
fn stack_entities(items: &[&TrainExample], dim: usize, device: &Device) -> Result<EntityTokens> {
    let sets = items
        .iter()
        .map(|e| {
            e.entities
                .as_ref()
                .ok_or_else(|| DiffusionError::InvalidInput(format!("{} has no entities", e.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    EntityTokens::batch(&sets, dim, device)
}

/// Stacks a group of examples into a batch: `(input, target_x0, context)` pieces.
fn stack(items: &[&TrainExample], device: &Device) -> Result<(Tensor, Option<Tensor>, Tensor)> {
    let l: Vec<Tensor> = items.iter().map(|e| e.latents.clone()).collect();
    let c: Vec<Tensor> = items.iter().map(|e| e.context.clone()).collect();
    let lat = Tensor::stack(&l, 0)?
        .to_dtype(DType::F32)?
        .to_device(device)?;
    let ctx = Tensor::stack(&c, 0)?.to_device(device)?;
    let cond = match items[0].condition {
        Some(_) => {
            let cs = items
                .iter()
                .map(|e| {
                    e.condition.clone().ok_or_else(|| {
                        DiffusionError::InvalidInput(format!(
                            "{} has no image condition while others have one",
                            e.name
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Some(
                Tensor::stack(&cs, 0)?
                    .to_dtype(DType::F32)?
                    .to_device(device)?,
            )
        }
        None => None,
    };
    Ok((lat, cond, ctx))
}

/// The entity attention settings with the embedding width taken from the data (every
/// example must have its entities, all of one width).
fn entity_config(cfg: &EntityAttnConfig, data: &[TrainExample]) -> Result<EntityAttnConfig> {
    let mut dim = cfg.entity_dim;
    for e in data {
        let Some(set) = &e.entities else {
            return Err(DiffusionError::InvalidInput(format!(
                "{}: entity attention needs each example's first-frame entities, and this one has none; prepare the cache with entities (`reelsmith finetune prepare --entities`)",
                e.name
            )));
        };
        if set.embeddings.rank() != 2 {
            return Err(DiffusionError::InvalidInput(format!(
                "{}: entity embeddings {:?} are not [entities, dim]",
                e.name,
                set.embeddings.dims()
            )));
        }
        if set.is_empty() {
            // No entity in this composed frame: the attention leaves the example alone.
            continue;
        }
        if dim == 0 {
            dim = set.dim();
        } else if set.dim() != dim {
            return Err(DiffusionError::InvalidInput(format!(
                "{}: entity embeddings are {} wide, expected {dim}; embed every example with the same model",
                e.name,
                set.dim()
            )));
        }
    }
    if dim == 0 {
        return Err(DiffusionError::InvalidInput(
            "entity attention: no example has an entity in its composed frame, so there is nothing to attend to (check the segmenter settings of prepare)".into(),
        ));
    }
    Ok(EntityAttnConfig {
        entity_dim: dim,
        ..cfg.clone()
    })
}

fn check_data(model: &WanTransformer, data: &[TrainExample]) -> Result<()> {
    if data.is_empty() {
        return Err(DiffusionError::InvalidInput(
            "no training examples (all were skipped or the cache is empty)".into(),
        ));
    }
    let cfg = model.config();
    for e in data {
        let c = e.latents.dims().first().copied().unwrap_or(0);
        let cc = e.condition.as_ref().map_or(0, |t| t.dims()[0]);
        if e.latents.rank() != 4 || c + cc != cfg.in_channels || c != cfg.out_channels() {
            return Err(DiffusionError::InvalidInput(format!(
                "{}: latents {:?} + condition {:?} do not fit this transformer ({} input, {} output channels); prepare the cache with the same base model",
                e.name,
                e.latents.dims(),
                e.condition.as_ref().map(|t| t.dims().to_vec()),
                cfg.in_channels,
                cfg.out_channels()
            )));
        }
        if e.context.rank() != 2 || e.context.dims()[1] != cfg.text_dim {
            return Err(DiffusionError::InvalidInput(format!(
                "{}: text embeddings {:?} are not [tokens, {}]",
                e.name,
                e.context.dims(),
                cfg.text_dim
            )));
        }
    }
    Ok(())
}

/// Trains a LoRA on `model` from `data`, writing checkpoints, `loss.csv` and
/// `adapter.safetensors` (+ PEFT `adapter_config.json`) under `out`. With `resume`, continues
/// from the newest checkpoint in `out` (its config must equal `cfg` except for `steps` and
/// `save_every`); without, `out` must not hold checkpoints already. The trained adapter stays
/// attached to `model` (unmerged) afterwards.
pub fn train(
    model: &mut WanTransformer,
    data: &[TrainExample],
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(&TrainStep),
) -> Result<TrainOutcome> {
    cfg.validate()?;
    check_data(model, data)?;
    std::fs::create_dir_all(out).map_err(|e| DiffusionError::io(out, e))?;
    let device = model.device().clone();
    let mut lora = WanLora::new(model, &cfg.lora, cfg.seed)?;
    if let Some(e) = &cfg.entity_attn {
        lora.add_entity_attention(model, &entity_config(e, data)?, cfg.seed)?;
    }
    let entity_dim = lora.entity_attention().map(|e| e.entity_dim());
    let vars = lora.vars();
    let named = lora.named_vars();
    let mut opt = AdamW::new(&vars)?;
    let mut rows: Vec<LossRow> = Vec::new();
    let mut start = 0;
    let mut resumed_from = None;
    match (resume, newest_checkpoint(out)) {
        (true, Some((step, dir))) => {
            rows = load_checkpoint(&dir, step, cfg, &named, &mut opt, &device)?;
            start = step;
            resumed_from = Some(step);
        }
        (false, Some((_, dir))) => {
            return Err(DiffusionError::InvalidInput(format!(
                "{} already holds a training run (checkpoint {}); pass resume (--resume) to continue it or choose another output folder",
                out.display(),
                dir.display()
            )))
        }
        _ => {}
    }
    model.add_lora(&lora, 1.0)?;
    let (csv_path, mut csv_file) = open_loss_csv(out, &rows)?;

    let sigmas = cfg.sigmas();
    if sigmas.is_empty() {
        return Err(DiffusionError::InvalidInput(
            "no training timestep lies in the chosen range; check boundary and timesteps".into(),
        ));
    }
    let root = SeededRng::new(cfg.seed);
    let n = data.len();
    let mut perms: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut sample = |k: usize| -> usize {
        let epoch = k / n;
        let perm = perms.entry(epoch).or_insert_with(|| {
            let mut r = root.stream(&format!("epoch-{epoch}"));
            let mut p: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                let j = ((r.uniform(0.0, 1.0) * (i + 1) as f64) as usize).min(i);
                p.swap(i, j);
            }
            p
        });
        perm[k % n]
    };
    let per_step = cfg.batch_size * cfg.grad_accum;
    let began = Instant::now();
    let result = (|| -> Result<()> {
        for step in start..cfg.steps {
            let mut rng = root.stream(&format!("step-{step}"));
            let mut acc: Vec<Option<Tensor>> = vec![None; vars.len()];
            let mut loss_sum = 0.0;
            for micro in 0..cfg.grad_accum {
                let idx: Vec<usize> = (0..cfg.batch_size)
                    .map(|j| sample(step * per_step + micro * cfg.batch_size + j))
                    .collect();
                // Group equal shapes (buckets) into one forward each.
                let mut groups: Vec<Vec<&TrainExample>> = Vec::new();
                for &i in &idx {
                    let e = &data[i];
                    match groups.iter_mut().find(|g| {
                        g[0].latents.dims() == e.latents.dims()
                            && g[0].context.dims() == e.context.dims()
                    }) {
                        Some(g) => g.push(e),
                        None => groups.push(vec![e]),
                    }
                }
                for (gi, g) in groups.into_iter().enumerate() {
                    let b = g.len();
                    let (x0, cond, ctx) = stack(&g, &device)?;
                    let noise = rng.randn(x0.dims(), DType::F32, &device)?;
                    let sig: Vec<f32> = (0..b)
                        .map(|_| {
                            let k = ((rng.uniform(0.0, 1.0) * sigmas.len() as f64) as usize)
                                .min(sigmas.len() - 1);
                            sigmas[k] as f32
                        })
                        .collect();
                    let s = Tensor::from_vec(sig.clone(), (b, 1, 1, 1, 1), &device)?;
                    let xt = (x0.broadcast_mul(&(1.0 - &s)?)? + noise.broadcast_mul(&s)?)?;
                    let target = (&noise - &x0)?;
                    let input = match &cond {
                        Some(c) => Tensor::cat(&[&xt, c], 1)?,
                        None => xt,
                    };
                    let t: Vec<f32> = sig
                        .iter()
                        .map(|s| s * cfg.num_train_timesteps as f32)
                        .collect();
                    let t = Tensor::from_vec(t, b, &device)?;
                    let entities = match entity_dim {
                        Some(dim) => Some(stack_entities(&g, dim, &device)?),
                        None => None,
                    };
                    let dropout = (cfg.lora.dropout > 0.0)
                        .then(|| rng.stream(&format!("dropout-{micro}-{gi}")));
                    let batch = GroupBatch {
                        input: &input,
                        timestep: &t,
                        context: &ctx.to_dtype(model.dtype())?,
                        entities: entities.as_ref(),
                        target: &target,
                        weight: b as f64 / per_step as f64,
                    };
                    loss_sum +=
                        group_gradients(model, &vars, &batch, cfg.recompute, dropout, &mut acc)?;
                }
            }
            model.set_lora_dropout(None);
            let grads: Vec<Tensor> = acc
                .into_iter()
                .zip(&vars)
                .map(|(g, v)| g.map_or_else(|| v.as_tensor().zeros_like(), Ok))
                .collect::<candle_core::Result<_>>()?;
            let mut sq = 0f64;
            for g in &grads {
                sq += g
                    .to_dtype(DType::F64)?
                    .sqr()?
                    .sum_all()?
                    .to_scalar::<f64>()?;
            }
            let norm = sq.sqrt();
            let grads = if cfg.max_grad_norm > 0.0 && norm > cfg.max_grad_norm {
                let k = cfg.max_grad_norm / (norm + 1e-6);
                grads
                    .iter()
                    .map(|g| g * k)
                    .collect::<candle_core::Result<Vec<_>>>()?
            } else {
                grads
            };
            if !loss_sum.is_finite() {
                return Err(DiffusionError::InvalidInput(format!(
                    "the loss became {loss_sum} at step {}; lower the learning rate",
                    step + 1
                )));
            }
            let lr = cfg.lr_at(step);
            opt.step(&vars, &grads, step + 1, lr, cfg)?;
            let row = LossRow {
                step: step + 1,
                loss: loss_sum,
                lr,
                grad_norm: norm,
            };
            writeln!(
                csv_file,
                "{},{},{},{}",
                row.step, row.loss, row.lr, row.grad_norm
            )
            .map_err(|e| DiffusionError::io(&csv_path, e))?;
            rows.push(row);
            let done = step + 1;
            let checkpoint = if done == cfg.steps
                || (cfg.save_every > 0 && done.is_multiple_of(cfg.save_every))
            {
                Some(write_checkpoint(out, done, cfg, &named, &opt, &rows)?)
            } else {
                None
            };
            let elapsed = began.elapsed();
            let ran = done - start;
            let eta = elapsed.mul_f64((cfg.steps - done) as f64 / ran as f64);
            on_step(&TrainStep {
                step: done,
                steps: cfg.steps,
                loss: row_loss(&rows),
                lr,
                grad_norm: norm,
                elapsed,
                eta,
                checkpoint,
            });
        }
        Ok(())
    })();
    model.set_lora_dropout(None);
    result?;
    let adapter = out.join("adapter.safetensors");
    lora.save(&adapter, cfg.adapter_naming)?;
    write_atomic(
        &out.join("adapter_config.json"),
        &serde_json::to_vec_pretty(&adapter_config(&lora)).unwrap_or_default(),
    )?;
    Ok(TrainOutcome {
        losses: rows.iter().map(|r| r.loss).collect(),
        adapter,
        loss_csv: csv_path,
        resumed_from,
    })
}

/// One micro-batch group: latents with their condition, timesteps, text, the flow target
/// and the group's share of the optimiser step.
struct GroupBatch<'a> {
    input: &'a Tensor,
    timestep: &'a Tensor,
    context: &'a Tensor,
    entities: Option<&'a EntityTokens>,
    target: &'a Tensor,
    weight: f64,
}

/// FFGo's loss: mean squared error without the elements whose error exceeds
/// [`LOSS_OUTLIER_THRESHOLD`] (the mask is a constant: no gradient flows through it).
fn flow_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    let diff = (pred.to_dtype(DType::F32)? - target)?;
    let keep = diff
        .detach()
        .abs()?
        .le(LOSS_OUTLIER_THRESHOLD)?
        .to_dtype(DType::F32)?;
    Ok((diff.sqr()? * keep)?.mean_all()?)
}

/// Adds the gradients in `grads` of `vars` to `acc`.
fn accumulate(acc: &mut [Option<Tensor>], vars: &[Var], grads: &GradStore) -> Result<()> {
    for (a, v) in acc.iter_mut().zip(vars) {
        if let Some(g) = grads.get(v.as_tensor()) {
            *a = Some(match a.take() {
                Some(x) => (x + g)?,
                None => g.clone(),
            });
        }
    }
    Ok(())
}

/// `Σ a·g` as an f32 scalar, the surrogate whose gradient with respect to `a` is `g`
/// (`None` when `a` carries no graph or `g` is absent).
fn surrogate(a: &Tensor, g: Option<&Tensor>) -> Result<Option<Tensor>> {
    match g {
        Some(g) if a.track_op() => Ok(Some(
            (a * g.to_dtype(a.dtype())?)?
                .to_dtype(DType::F32)?
                .sum_all()?,
        )),
        _ => Ok(None),
    }
}

/// A detached copy of `t` that gradients can be taken with respect to.
fn leaf(t: &Tensor) -> Result<Var> {
    Ok(Var::from_tensor(&t.detach())?)
}

/// Adds `g` to the running sum `acc`.
fn add_to(acc: &mut Option<Tensor>, g: Option<&Tensor>) -> Result<()> {
    if let Some(g) = g {
        *acc = Some(match acc.take() {
            Some(x) => (x + g)?,
            None => g.clone(),
        });
    }
    Ok(())
}

/// Runs one group forward and backward, adds the weighted loss's gradients of `vars` to
/// `acc` and returns the weighted loss. The forward runs in stages (embedding, each block,
/// head), each with its own dropout stream, so that both modes draw the same dropout:
///
/// - `recompute == false`: the whole graph is kept and one backward runs through it.
/// - `recompute == true`: the blocks run without keeping their graphs (only each block's
///   input is kept); the backward then goes block by block from the last: the block is run
///   again from its saved input with gradients tracked, and the backward of `Σ out·∂L/∂out`
///   gives its parameters' gradients and `∂L/∂in` for the block before. The inputs the blocks
///   share (text, timestep modulation, entity tokens) are leaves whose gradients are summed over the blocks
///   and sent through the embedding stage at the end. The self-attention core is never
///   kept whole: its forward runs on detached inputs and its backward chunk by chunk
///   ([`WanTransformer::block_backward`]). Peak memory: one block's activations without
///   the self-attention scores, one chunk of scores, and the saved block inputs.
fn group_gradients(
    model: &WanTransformer,
    vars: &[Var],
    batch: &GroupBatch<'_>,
    recompute: bool,
    dropout: Option<SeededRng>,
    acc: &mut [Option<Tensor>],
) -> Result<f64> {
    let stage = |name: &str| {
        if let Some(r) = &dropout {
            model.set_lora_dropout(Some(r.stream(name)));
        }
    };
    let block_name = |i: usize| format!("block-{i}");
    stage("embed");
    let (hs0, inputs) = model.embed(batch.input, batch.timestep, batch.context, batch.entities)?;
    let n = model.num_blocks();
    let loss_value;
    if !recompute {
        let mut hs = hs0;
        for i in 0..n {
            stage(&block_name(i));
            hs = model.block_forward(i, &hs, &inputs)?;
        }
        stage("head");
        let loss = flow_loss(&model.head(&hs, &inputs)?, batch.target)?;
        loss_value = loss.to_scalar::<f32>()? as f64 * batch.weight;
        accumulate(acc, vars, &(loss * batch.weight)?.backward()?)?;
    } else {
        // The shared inputs as leaves; their gradients are summed over the stages.
        let (ctx_v, temb_v, proj_v) = (
            leaf(&inputs.ctx)?,
            leaf(&inputs.temb)?,
            leaf(&inputs.temb_proj)?,
        );
        let ent_v = match &inputs.entities {
            Some(e) => Some(leaf(&e.tokens)?),
            None => None,
        };
        let mut shared = inputs.clone();
        shared.ctx = ctx_v.as_tensor().clone();
        shared.temb = temb_v.as_tensor().clone();
        shared.temb_proj = proj_v.as_tensor().clone();
        if let (Some(e), Some(v)) = (shared.entities.as_mut(), &ent_v) {
            e.tokens = v.as_tensor().clone();
        }
        let (mut g_ctx, mut g_temb, mut g_proj, mut g_ent) = (None, None, None, None);
        let mut collect = |grads: &GradStore| -> Result<()> {
            add_to(&mut g_ctx, grads.get(ctx_v.as_tensor()))?;
            add_to(&mut g_temb, grads.get(temb_v.as_tensor()))?;
            if let Some(v) = &ent_v {
                add_to(&mut g_ent, grads.get(v.as_tensor()))?;
            }
            add_to(&mut g_proj, grads.get(proj_v.as_tensor()))
        };
        // Forward without keeping graphs: only each block's input stays.
        let mut saved = Vec::with_capacity(n);
        let mut hs = hs0.detach();
        for i in 0..n {
            stage(&block_name(i));
            let out = model.block_forward_bounded(i, &hs, &shared)?.detach();
            saved.push(hs);
            hs = out;
        }
        // Head.
        stage("head");
        let hv = leaf(&hs)?;
        drop(hs);
        let loss = flow_loss(&model.head(hv.as_tensor(), &shared)?, batch.target)?;
        loss_value = loss.to_scalar::<f32>()? as f64 * batch.weight;
        let grads = (loss * batch.weight)?.backward()?;
        accumulate(acc, vars, &grads)?;
        collect(&grads)?;
        let mut g = grads.get(hv.as_tensor()).cloned();
        drop(grads);
        // Blocks, last first, each recomputed from its saved input.
        for i in (0..n).rev() {
            let input = saved.pop().expect("one saved input per block");
            let Some(g_out) = g.take() else { break };
            stage(&block_name(i));
            g = model.block_backward(i, &input, &shared, &g_out, &mut |grads| {
                accumulate(acc, vars, grads)?;
                collect(grads)
            })?;
        }
        // The embedding stage, with the gradients of everything it produced.
        let terms = [
            surrogate(&hs0, g.as_ref())?,
            surrogate(&inputs.ctx, g_ctx.as_ref())?,
            surrogate(&inputs.temb, g_temb.as_ref())?,
            surrogate(&inputs.temb_proj, g_proj.as_ref())?,
            match &inputs.entities {
                Some(e) => surrogate(&e.tokens, g_ent.as_ref())?,
                None => None,
            },
        ];
        let mut total: Option<Tensor> = None;
        for t in terms.into_iter().flatten() {
            total = Some(match total {
                Some(x) => (x + t)?,
                None => t,
            });
        }
        if let Some(t) = total {
            accumulate(acc, vars, &t.backward()?)?;
        }
    }
    model.set_lora_dropout(None);
    Ok(loss_value)
}

/// Restores the adapter variables and AdamW moments of the checkpoint `dir` (written after
/// `step` steps) and returns its loss history; refuses a checkpoint trained with other
/// settings (only the steps, the checkpoint interval and recompute may change).
fn load_checkpoint(
    dir: &Path,
    step: usize,
    cfg: &TrainConfig,
    named: &[(String, Var)],
    opt: &mut AdamW,
    device: &Device,
) -> Result<Vec<LossRow>> {
    let sp = dir.join("state.json");
    let state: CheckpointState =
        serde_json::from_slice(&std::fs::read(&sp).map_err(|e| DiffusionError::io(&sp, e))?)
            .map_err(|e| {
                DiffusionError::config(&sp, format!("unreadable checkpoint state: {e}"))
            })?;
    let mut a = state.config.clone();
    let mut b = cfg.clone();
    (a.steps, a.save_every, b.steps, b.save_every) = (0, 0, 0, 0);
    (a.recompute, b.recompute) = (false, false);
    if a != b {
        return Err(DiffusionError::config(
            &sp,
            "the checkpoint was trained with other settings (only the steps, the checkpoint interval and recompute may change on resume); resume with the same settings or train into a new folder",
        ));
    }
    let tp = dir.join("training.safetensors");
    let t = candle_core::safetensors::load(&tp, device)
        .map_err(|e| DiffusionError::config(&tp, format!("unreadable checkpoint: {e}")))?;
    for (i, (n, v)) in named.iter().enumerate() {
        let get = |k: String| {
            t.get(&k)
                .cloned()
                .ok_or_else(|| DiffusionError::config(&tp, format!("the checkpoint lacks {k}")))
        };
        v.set(&get(n.clone())?)?;
        opt.m[i] = get(format!("{n}.exp_avg"))?;
        opt.v[i] = get(format!("{n}.exp_avg_sq"))?;
    }
    let mut rows = state.rows;
    rows.truncate(step);
    Ok(rows)
}

/// Writes the checkpoint after `done` steps (adapter variables, AdamW moments, settings,
/// loss history) and returns its folder. `state.json` goes last: its presence marks the
/// checkpoint complete.
fn write_checkpoint(
    out: &Path,
    done: usize,
    cfg: &TrainConfig,
    named: &[(String, Var)],
    opt: &AdamW,
    rows: &[LossRow],
) -> Result<PathBuf> {
    let dir = checkpoint_dir(out, done);
    std::fs::create_dir_all(&dir).map_err(|e| DiffusionError::io(&dir, e))?;
    let mut t = HashMap::new();
    for (i, (nme, v)) in named.iter().enumerate() {
        t.insert(nme.clone(), v.as_tensor().clone());
        t.insert(format!("{nme}.exp_avg"), opt.m[i].clone());
        t.insert(format!("{nme}.exp_avg_sq"), opt.v[i].clone());
    }
    save_tensors(&dir.join("training.safetensors"), &t)?;
    let state = CheckpointState {
        step: done,
        config: cfg.clone(),
        rows: rows.to_vec(),
    };
    write_atomic(
        &dir.join("state.json"),
        &serde_json::to_vec_pretty(&state).unwrap_or_default(),
    )?;
    Ok(dir)
}

/// `OUT/loss.csv` rewritten with the history `rows`, opened for appending a row per step.
fn open_loss_csv(out: &Path, rows: &[LossRow]) -> Result<(PathBuf, std::fs::File)> {
    let csv_path = out.join("loss.csv");
    let mut csv = String::from("step,loss,lr,grad_norm\n");
    for r in rows {
        csv.push_str(&format!("{},{},{},{}\n", r.step, r.loss, r.lr, r.grad_norm));
    }
    write_atomic(&csv_path, csv.as_bytes())?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&csv_path)
        .map_err(|e| DiffusionError::io(&csv_path, e))?;
    Ok((csv_path, file))
}

fn row_loss(rows: &[LossRow]) -> f64 {
    rows.last().map_or(f64::NAN, |r| r.loss)
}
