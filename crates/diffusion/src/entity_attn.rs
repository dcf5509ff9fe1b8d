//! Entity cross-attention: FFGo's second step, video tokens attending to the entities of
//! the composed first frame.
//!
//! The LoRA alone sees the composed frame only through the image-to-video condition (its
//! VAE latent in the first latent frame). [`EntityAttention`] adds a direct path: one
//! embedding per entity of the first frame (the entity crate's segmenter + a DINOv2 or CLIP
//! embedder, computed by the facade), optionally with the entity's centroid and area, is
//! projected to the model width and attended to from the video tokens of selected blocks.
//!
//! Per entity token: `e = LN(W_in · embedding + b_in + W_geo · [cx, cy, area])` (a learned
//! input projection shared by all blocks, plain layer norm). In block `i` (every
//! [`EntityAttnConfig::every`]-th block), after the text cross-attention:
//!
//! ```text
//! q = W_q · LN(x),  k = W_k · e,  v = W_v · e        (heads × head_dim wide)
//! x ← x + present · scale · W_out · softmax(q kᵀ / √head_dim + mask) v
//! ```
//!
//! - `W_out` and its bias are **zero-initialised**: a fresh module changes nothing, so
//!   training starts from the unchanged base model (with the LoRA's zero `up`, exactly).
//! - Padded entity slots (examples of a batch have different entity counts) get a
//!   `-1e9` score bias (their weight is exactly 0); a sample with no entity at all
//!   (`present = 0`) gets no update.
//! - The residual add is ungated, like Wan's text cross-attention; `scale` is the LoRA
//!   scale the adapter is attached at (0 gives the base model).
//! - Every operation is differentiable ([`reelsmith_models::ops`] composed paths when a
//!   variable is involved): no candle op that drops gradients.
//!
//! The parameters are f32 variables (like the LoRA's) and live in the adapter file under
//! the `entity_attn.` key prefix ([`ENTITY_ATTN_PREFIX`]), the configuration in the
//! metadata (`entity_attn_config`); see [`crate::lora::WanLora`].

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
use reelsmith_models::ops;
use serde::{Deserialize, Serialize};

use crate::error::{DiffusionError, Result};
use crate::layers::{layer_normalize, softmax_last_dim};
use crate::transformer::WanTransformerConfig;

/// The key prefix of the entity-attention tensors in an adapter file.
pub const ENTITY_ATTN_PREFIX: &str = "entity_attn.";

/// The score bias of padded entity slots (finite, so that a row of padded slots only
/// gives a finite average, which `present = 0` then drops).
const MASKED: f64 = -1e9;

fn default_every() -> usize {
    4
}
fn default_heads() -> usize {
    8
}
fn default_true() -> bool {
    true
}

/// Settings of the entity cross-attention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityAttnConfig {
    /// Width of the entity embeddings (DINOv2-base: 768, DINOv2-small: 384, CLIP ViT-B:
    /// 512). 0 = taken from the training data.
    #[serde(default)]
    pub entity_dim: usize,
    /// An entity cross-attention in every `every`-th block (blocks 0, `every`,
    /// `2·every`, …; default 4). Every block (1) quadruples the parameters for little gain:
    /// the few entity tokens carry one vector each, and the residual stream passes what an
    /// early block reads on to the blocks after it.
    #[serde(default = "default_every")]
    pub every: usize,
    /// Attention heads (default 8).
    #[serde(default = "default_heads")]
    pub heads: usize,
    /// Channels per head (default 0: the transformer's `attention_head_dim`, 128 in Wan).
    /// The attention is `heads × head_dim` wide (1024 by default), narrower than Wan's
    /// 5120: enough for a handful of entity tokens, a fifth of the parameters.
    #[serde(default)]
    pub head_dim: usize,
    /// A learned encoding of each entity's centroid and area (`[cx, cy, area]`, fractions
    /// of the frame) added to its token (default true; 3 × width parameters).
    #[serde(default = "default_true")]
    pub geometry: bool,
    /// How the entity embeddings were made (the facade records its segmenter and embedder
    /// settings here, so sampling computes them the same way). Not read by this crate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<serde_json::Value>,
}

impl Default for EntityAttnConfig {
    fn default() -> Self {
        Self {
            entity_dim: 0,
            every: default_every(),
            heads: default_heads(),
            head_dim: 0,
            geometry: true,
            source: None,
        }
    }
}

impl EntityAttnConfig {
    /// Checks the values; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(DiffusionError::InvalidInput(format!("entity_attn: {m}")));
        if self.every == 0 {
            return bad("every must be at least 1 (1 = every block)");
        }
        if self.heads == 0 {
            return bad("heads must be at least 1");
        }
        if self.entity_dim > 65536 || self.head_dim > 4096 || self.heads > 256 {
            return bad("entity_dim, heads or head_dim is implausibly large");
        }
        Ok(())
    }

    /// The blocks of a `num_layers`-block transformer that get an entity cross-attention.
    pub fn blocks(&self, num_layers: usize) -> Vec<usize> {
        (0..num_layers).step_by(self.every.max(1)).collect()
    }

    fn head_dim_for(&self, model: &WanTransformerConfig) -> usize {
        if self.head_dim == 0 {
            model.attention_head_dim
        } else {
            self.head_dim
        }
    }

    /// Parameters of the module on a transformer of `model`'s size with `entity_dim`-wide
    /// embeddings.
    pub fn parameter_count(&self, model: &WanTransformerConfig, entity_dim: usize) -> u64 {
        let d = model.inner_dim() as u64;
        let a = (self.heads * self.head_dim_for(model)) as u64;
        let e = entity_dim as u64;
        let input = e * d + d + if self.geometry { 3 * d } else { 0 };
        let block = 3 * d * a + 2 * a + (a * d + d);
        input + self.blocks(model.num_layers).len() as u64 * block
    }
}

/// The entities of one example: embeddings `[n, entity_dim]` and, optionally, geometry
/// `[n, 3]` (`[cx, cy, area]`, fractions of the frame). `n` may be 0.
#[derive(Debug, Clone)]
pub struct EntitySet {
    /// `[n, entity_dim]`.
    pub embeddings: Tensor,
    /// `[n, 3]`, or none.
    pub geometry: Option<Tensor>,
}

impl EntitySet {
    /// Entities in the set.
    pub fn len(&self) -> usize {
        self.embeddings.dims().first().copied().unwrap_or(0)
    }

    /// Whether the set holds no entity.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Width of the embeddings.
    pub fn dim(&self) -> usize {
        self.embeddings.dims().get(1).copied().unwrap_or(0)
    }

    fn check(&self, what: &str) -> Result<()> {
        let bad = |m: String| Err(DiffusionError::InvalidInput(format!("{what}: {m}")));
        if self.embeddings.rank() != 2 {
            return bad(format!(
                "entity embeddings must be [entities, dim]; got {:?}",
                self.embeddings.dims()
            ));
        }
        if let Some(g) = &self.geometry {
            if g.dims() != [self.len(), 3] {
                return bad(format!(
                    "entity geometry must be [entities, 3] = [{}, 3] ([cx, cy, area]); got {:?}",
                    self.len(),
                    g.dims()
                ));
            }
        }
        Ok(())
    }
}

/// A batch of entity tokens: embeddings `[b, n, entity_dim]`, optional geometry
/// `[b, n, 3]` and a mask `[b, n]` (1 for a real entity, 0 for a padded slot; none = all
/// real).
#[derive(Debug, Clone)]
pub struct EntityTokens {
    /// `[b, n, entity_dim]`.
    pub embeddings: Tensor,
    /// `[b, n, 3]`, or none.
    pub geometry: Option<Tensor>,
    /// `[b, n]`, or none when every slot is a real entity.
    pub mask: Option<Tensor>,
}

impl EntityTokens {
    /// Batches per-example entity sets of `dim`-wide embeddings, padding to the largest
    /// count (a batch where no example has an entity gets one padded slot each). Geometry
    /// is kept when every non-empty set has it. Tensors are f32 on `device`.
    pub fn batch(sets: &[&EntitySet], dim: usize, device: &Device) -> Result<Self> {
        if sets.is_empty() {
            return Err(DiffusionError::InvalidInput(
                "no entity sets to batch".into(),
            ));
        }
        for (i, s) in sets.iter().enumerate() {
            s.check(&format!("entity set {i}"))?;
            if !s.is_empty() && s.dim() != dim {
                return Err(DiffusionError::InvalidInput(format!(
                    "entity set {i} has {}-wide embeddings, expected {dim}: use the embedding model the adapter was trained with",
                    s.dim()
                )));
            }
        }
        let n = sets.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let geometry = sets.iter().all(|s| s.geometry.is_some() || s.is_empty())
            && sets.iter().any(|s| s.geometry.is_some());
        let pad = |t: &Tensor, width: usize| -> Result<Tensor> {
            let t = t.to_dtype(DType::F32)?.to_device(device)?;
            let k = t.dim(0)?;
            Ok(if k == n {
                t
            } else if k == 0 {
                Tensor::zeros((n, width), DType::F32, device)?
            } else {
                Tensor::cat(&[t, Tensor::zeros((n - k, width), DType::F32, device)?], 0)?
            })
        };
        let mut emb = Vec::with_capacity(sets.len());
        let mut geo = Vec::new();
        let mut mask = Vec::with_capacity(sets.len() * n);
        for s in sets {
            emb.push(pad(&s.embeddings, dim)?);
            if geometry {
                geo.push(match &s.geometry {
                    Some(g) => pad(g, 3)?,
                    None => Tensor::zeros((n, 3), DType::F32, device)?,
                });
            }
            mask.extend((0..n).map(|j| if j < s.len() { 1f32 } else { 0.0 }));
        }
        Ok(Self {
            embeddings: Tensor::stack(&emb, 0)?,
            geometry: if geometry {
                Some(Tensor::stack(&geo, 0)?)
            } else {
                None
            },
            mask: Some(Tensor::from_vec(mask, (sets.len(), n), device)?),
        })
    }

    /// Batch size.
    pub fn batch_size(&self) -> usize {
        self.embeddings.dims().first().copied().unwrap_or(0)
    }
}

/// A dense layer's tensors (`weight` `[out, in]`, `bias` `[out]`).
#[derive(Debug, Clone)]
struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Dense {
    fn new(
        vb: &VarBuilder,
        name: &str,
        i: usize,
        o: usize,
        zero: bool,
        bias: bool,
    ) -> Result<Self> {
        let init = if zero {
            Init::Const(0.0)
        } else {
            Init::Randn {
                mean: 0.0,
                stdev: 1.0 / (i as f64).sqrt(),
            }
        };
        let vb = vb.pp(name);
        Ok(Self {
            weight: vb.get_with_hints((o, i), "weight", init)?,
            bias: if bias {
                Some(vb.get_with_hints(o, "bias", Init::Const(0.0))?)
            } else {
                None
            },
        })
    }

    /// Applies the layer in `x`'s dtype (the weights are converted; f32 weights on an f32
    /// activation are used as they are).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.weight.to_dtype(x.dtype())?;
        let b = match &self.bias {
            Some(b) => Some(b.to_dtype(x.dtype())?),
            None => None,
        };
        Ok(ops::linear(x, &w, b.as_ref())?)
    }
}

/// The cross-attention of one block.
#[derive(Debug, Clone)]
struct EntityBlock {
    to_q: Dense,
    to_k: Dense,
    to_v: Dense,
    to_out: Dense,
}

/// The entity tokens of one forward, projected once for all blocks.
#[derive(Clone)]
pub(crate) struct EncodedEntities {
    /// `[b, n, dim]`, layer-normalised.
    pub(crate) tokens: Tensor,
    /// `[b, 1, 1, n]`: 0 for real entities, `-1e9` for padded slots.
    bias: Tensor,
    /// `[b, 1, 1]`: 1 where the sample has at least one entity.
    present: Tensor,
}

/// What one block needs: its layers, the encoded tokens and the scale.
pub(crate) struct BlockEntities<'a> {
    block: &'a EntityBlock,
    enc: &'a EncodedEntities,
    heads: usize,
    scale: f64,
}

impl BlockEntities<'_> {
    /// The residual update of hidden states `x` `[b, s, dim]` (in their compute dtype).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let dtype = x.dtype();
        let h = self.heads;
        let tokens = self.enc.tokens.to_dtype(dtype)?;
        let n = tokens.dim(1)?;
        let q = self.block.to_q.forward(&layer_normalize(x, 1e-6)?)?;
        let k = self.block.to_k.forward(&tokens)?;
        let v = self.block.to_v.forward(&tokens)?;
        let a = q.dim(2)?;
        let hd = a / h;
        let q = q.reshape((b, s, h, hd))?.transpose(1, 2)?.contiguous()?;
        let k = k.reshape((b, n, h, hd))?.transpose(1, 2)?.contiguous()?;
        let v = v.reshape((b, n, h, hd))?.transpose(1, 2)?.contiguous()?;
        let scores = (q * (1.0 / (hd as f64).sqrt()))?.matmul(&k.t()?)?;
        let scores = scores.broadcast_add(&self.enc.bias.to_dtype(dtype)?)?;
        let p = softmax_last_dim(&scores)?;
        let o = p.matmul(&v)?.transpose(1, 2)?.reshape((b, s, a))?;
        let out = self.block.to_out.forward(&o)?;
        let gate = (self.enc.present.to_dtype(dtype)? * self.scale)?;
        Ok(out.broadcast_mul(&gate)?)
    }
}

/// The entity cross-attention of a Wan transformer (see the [module docs](self)).
#[derive(Clone)]
pub struct EntityAttention {
    cfg: EntityAttnConfig,
    dim: usize,
    proj_in: Dense,
    geometry: Option<Dense>,
    blocks: BTreeMap<usize, EntityBlock>,
    /// The variables by stored name (`entity_attn.…`), when trainable.
    vars: Vec<(String, Var)>,
}

impl std::fmt::Debug for EntityAttention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityAttention")
            .field("config", &self.cfg)
            .field("dim", &self.dim)
            .field("blocks", &self.blocks.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EntityAttention {
    /// Builds the module from `vb` (tensor names relative to it: `proj_in.weight`,
    /// `geometry.weight`, `blocks.{i}.to_q.weight`, …) for a transformer of `model`'s
    /// size. `cfg.entity_dim` must be set. Missing tensors are created as the init hints
    /// say when `vb` can create them (a seeded variable builder): normal with standard
    /// deviation `1/√fan_in`, biases zero, `to_out` all zero.
    pub fn new(
        vb: VarBuilder,
        cfg: &EntityAttnConfig,
        model: &WanTransformerConfig,
    ) -> Result<Self> {
        cfg.validate()?;
        if cfg.entity_dim == 0 {
            return Err(DiffusionError::InvalidInput(
                "entity_attn: entity_dim is not set (the width of the entity embeddings)".into(),
            ));
        }
        let d = model.inner_dim();
        let hd = cfg.head_dim_for(model);
        let a = cfg.heads * hd;
        let proj_in = Dense::new(&vb, "proj_in", cfg.entity_dim, d, false, true)?;
        let geometry = if cfg.geometry {
            Some(Dense::new(&vb, "geometry", 3, d, false, false)?)
        } else {
            None
        };
        let mut blocks = BTreeMap::new();
        for i in cfg.blocks(model.num_layers) {
            let bv = vb.pp(format!("blocks.{i}"));
            blocks.insert(
                i,
                EntityBlock {
                    to_q: Dense::new(&bv, "to_q", d, a, false, true)?,
                    // No key bias: it shifts every score of a row alike, which the
                    // softmax ignores (its gradient is zero).
                    to_k: Dense::new(&bv, "to_k", d, a, false, false)?,
                    to_v: Dense::new(&bv, "to_v", d, a, false, true)?,
                    to_out: Dense::new(&bv, "to_out", a, d, true, true)?,
                },
            );
        }
        Ok(Self {
            cfg: cfg.clone(),
            dim: d,
            proj_in,
            geometry,
            blocks,
            vars: Vec::new(),
        })
    }

    /// A fresh trainable module: f32 variables on `device`, each drawn from the project's
    /// seeded generator stream named by its key (so the values do not depend on the
    /// order of construction), the output projections zero.
    pub fn init(
        cfg: &EntityAttnConfig,
        model: &WanTransformerConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let map = VarMap::new();
        let vb = reelsmith_models::seeded_var_builder(&map, seed, DType::F32, device);
        let mut m = Self::new(vb.pp(ENTITY_ATTN_PREFIX.trim_end_matches('.')), cfg, model)?;
        let data = map.data().lock().unwrap_or_else(|p| p.into_inner());
        let mut vars: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        m.vars = vars;
        Ok(m)
    }

    /// The module from stored tensors (names with the `entity_attn.` prefix, as
    /// [`Self::tensors`] gives them), for a transformer of `model`'s size. The tensors
    /// become variables, so a loaded module can train on.
    pub fn from_tensors(
        tensors: &HashMap<String, Tensor>,
        cfg: &EntityAttnConfig,
        model: &WanTransformerConfig,
        device: &Device,
    ) -> Result<Self> {
        let map = VarMap::new();
        {
            let mut data = map.data().lock().unwrap_or_else(|p| p.into_inner());
            for (k, t) in tensors {
                let t = t.to_dtype(DType::F32)?.to_device(device)?;
                data.insert(k.clone(), Var::from_tensor(&t)?);
            }
        }
        let vb = VarBuilder::from_varmap(&map, DType::F32, device);
        let mut m = Self::new(vb.pp(ENTITY_ATTN_PREFIX.trim_end_matches('.')), cfg, model)?;
        let data = map.data().lock().unwrap_or_else(|p| p.into_inner());
        let mut vars: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let missing: Vec<&String> = vars
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !tensors.contains_key(*k))
            .collect();
        let unused: Vec<&String> = tensors
            .keys()
            .filter(|k| !vars.iter().any(|(n, _)| n == *k))
            .collect();
        if !missing.is_empty() || !unused.is_empty() {
            return Err(DiffusionError::InvalidInput(format!(
                "the entity attention tensors do not match its configuration (missing: {missing:?}; not used: {unused:?}); the adapter's entity_attn_config and tensors come from different runs"
            )));
        }
        m.vars = vars;
        Ok(m)
    }

    /// The configuration.
    pub fn config(&self) -> &EntityAttnConfig {
        &self.cfg
    }

    /// Width of the entity embeddings it takes.
    pub fn entity_dim(&self) -> usize {
        self.cfg.entity_dim
    }

    /// The model width it was built for.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The blocks that have an entity cross-attention.
    pub fn block_indices(&self) -> Vec<usize> {
        self.blocks.keys().copied().collect()
    }

    /// The trainable variables by stored name (`entity_attn.blocks.0.to_q.weight`, …),
    /// sorted by name.
    pub fn named_vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The current values by stored name, for saving.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// Parameters in all.
    pub fn parameter_count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Projects the entity tokens once for all blocks, in `dtype` (the blocks' compute
    /// dtype). `batch` is the hidden states' batch size.
    pub(crate) fn encode(
        &self,
        e: &EntityTokens,
        batch: usize,
        dtype: DType,
    ) -> Result<EncodedEntities> {
        let bad = |m: String| Err(DiffusionError::InvalidInput(m));
        let dims = e.embeddings.dims();
        if dims.len() != 3 || dims[0] != batch || dims[2] != self.cfg.entity_dim {
            return bad(format!(
                "entity embeddings must be [batch, entities, {}] with batch {batch}; got {dims:?} (embed the entities with the model the adapter was trained with)",
                self.cfg.entity_dim
            ));
        }
        let n = dims[1];
        let device = e.embeddings.device();
        let emb = e.embeddings.to_dtype(dtype)?;
        let mut tok = self.proj_in.forward(&emb)?;
        if let (Some(g), Some(geo)) = (&self.geometry, &e.geometry) {
            if geo.dims() != [batch, n, 3] {
                return bad(format!(
                    "entity geometry must be [{batch}, {n}, 3]; got {:?}",
                    geo.dims()
                ));
            }
            tok = (tok + g.forward(&geo.to_dtype(dtype)?)?)?;
        }
        let tokens = layer_normalize(&tok, 1e-6)?;
        let mask = match &e.mask {
            Some(m) => {
                if m.dims() != [batch, n] {
                    return bad(format!(
                        "entity mask must be [{batch}, {n}]; got {:?}",
                        m.dims()
                    ));
                }
                m.to_dtype(DType::F32)?
            }
            None => Tensor::ones((batch, n), DType::F32, device)?,
        };
        // 0 for real entities, MASKED for padded slots.
        let bias = ((mask.clone() - 1.0)? * -MASKED)?
            .reshape((batch, 1, 1, n))?
            .to_dtype(dtype)?;
        let present = mask
            .sum_keepdim(1)?
            .gt(0.0)?
            .to_dtype(dtype)?
            .reshape((batch, 1, 1))?;
        Ok(EncodedEntities {
            tokens,
            bias,
            present,
        })
    }

    /// What block `i` needs, if it has an entity cross-attention.
    pub(crate) fn for_block<'a>(
        &'a self,
        i: usize,
        enc: &'a EncodedEntities,
        scale: f64,
    ) -> Option<BlockEntities<'a>> {
        self.blocks.get(&i).map(|block| BlockEntities {
            block,
            enc,
            heads: self.cfg.heads,
            scale,
        })
    }
}
