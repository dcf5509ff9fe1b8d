//! LoRA adapters on the Wan transformer: which layers, how they attach, merge and unmerge,
//! and their files in the PEFT/diffusers and kohya/musubi/VideoX-Fun namings.
//!
//! A [`WanLora`] is a set of [`LoraLayer`]s (from `reelsmith-models`) keyed by the diffusers
//! module name of the dense layer each adapts (`blocks.0.attn1.to_q`). FFGo's recipe puts
//! one on every dense layer of every block ([`WanLora::FFGO_TARGETS`]): self- and
//! cross-attention q, k, v, o and both feed-forward layers, plus the timestep projection,
//! rank 128, alpha 128.
//!
//! Files:
//! - PEFT/diffusers ([`LoraNaming::Peft`]): `transformer.blocks.0.attn1.to_q.lora_A.weight`
//!   and `.lora_B.weight`, alpha and rank in the metadata (`lora_alpha`, `r`), as diffusers'
//!   `load_lora_weights` and PEFT read them.
//! - kohya ([`LoraNaming::Kohya`]): the original Wan module names flattened with `_` under
//!   `lora_unet_`, as VideoX-Fun (FFGo) writes them: `lora_unet__blocks_0_self_attn_q.lora_down.weight`,
//!   `.lora_up.weight`, `.alpha`. musubi-tuner's single-underscore form
//!   (`lora_unet_blocks_0_self_attn_q`) and original names in PEFT files
//!   (`diffusion_model.blocks.0.self_attn.q.lora_A.weight`) load too.
//!
//! An adapter may also carry an entity cross-attention ([`EntityAttention`], FFGo's entity
//! conditioning): its tensors are stored in the same file under the `entity_attn.` key
//! prefix (`entity_attn.proj_in.weight`, `entity_attn.blocks.0.to_q.weight`, …) and its
//! configuration in the metadata (`entity_attn_config`), in either naming. Those keys are
//! separable: diffusers' `load_lora_weights` keeps only `transformer.`-prefixed keys, and a
//! PEFT state dict without them is the plain LoRA.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use reelsmith_models::{
    read_lora_file_split, write_lora_file_with_extra, LoraConfig, LoraLayer, LoraNaming, SeededRng,
};

use crate::entity_attn::{EntityAttention, EntityAttnConfig, ENTITY_ATTN_PREFIX};
use crate::error::{DiffusionError, Result};
use crate::keymap::diffusers_to_original;
use crate::layers::Linear;
use crate::transformer::WanTransformer;

fn model_err(e: reelsmith_models::ModelError) -> DiffusionError {
    DiffusionError::InvalidInput(e.to_string())
}

/// State shared by all adapters of one transformer: the dropout generator of the current
/// training step (`None` at inference).
#[derive(Clone, Default)]
pub(crate) struct LoraShared(Arc<Mutex<Option<SeededRng>>>);

impl LoraShared {
    pub(crate) fn set_rng(&self, rng: Option<SeededRng>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = rng;
    }
}

struct Attached {
    layer: LoraLayer,
    scale: f64,
    dropout: f64,
    shared: LoraShared,
}

/// A dense layer that can carry a LoRA adapter. Unmerged, its output is the base layer's
/// plus the adapter's; merged, the base weight holds the sum and the original is kept.
pub(crate) struct AdaptedLinear {
    name: String,
    base: Linear,
    adapter: Option<Attached>,
    /// The original layer while an adapter is merged into `base`.
    original: Option<Linear>,
}

impl AdaptedLinear {
    /// Reads `<vb prefix>.<sub>.weight` `[out, in]` and `.bias`.
    pub(crate) fn new(vb: &VarBuilder, sub: &str, in_dim: usize, out_dim: usize) -> Result<Self> {
        let prefix = vb.prefix();
        let name = if prefix.is_empty() {
            sub.to_string()
        } else {
            format!("{prefix}.{sub}")
        };
        Ok(Self {
            name,
            base: Linear::new(vb.pp(sub), in_dim, out_dim, true)?,
            adapter: None,
            original: None,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn in_dim(&self) -> usize {
        self.base.weight().dims()[1]
    }

    pub(crate) fn out_dim(&self) -> usize {
        self.base.out_dim()
    }

    pub(crate) fn base_weight(&self) -> &Tensor {
        self.original.as_ref().unwrap_or(&self.base).weight()
    }

    pub(crate) fn has_adapter(&self) -> bool {
        self.adapter.is_some()
    }

    pub(crate) fn is_merged(&self) -> bool {
        self.original.is_some()
    }

    pub(crate) fn attach(
        &mut self,
        layer: LoraLayer,
        scale: f64,
        dropout: f64,
        shared: LoraShared,
    ) {
        self.detach();
        self.adapter = Some(Attached {
            layer,
            scale,
            dropout,
            shared,
        });
    }

    pub(crate) fn detach(&mut self) {
        self.unmerge();
        self.adapter = None;
    }

    pub(crate) fn merge(&mut self) -> Result<()> {
        if self.original.is_some() {
            return Ok(());
        }
        if let Some(a) = &self.adapter {
            let w = self.base.weight();
            let delta = a
                .layer
                .delta_weight(a.scale)
                .map_err(model_err)?
                .to_dtype(DType::F32)?;
            let merged = (w.to_dtype(DType::F32)? + delta)?.to_dtype(w.dtype())?;
            let new = Linear::from_tensors(merged, self.base.bias().cloned());
            self.original = Some(std::mem::replace(&mut self.base, new));
        }
        Ok(())
    }

    pub(crate) fn unmerge(&mut self) {
        if let Some(o) = self.original.take() {
            self.base = o;
        }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.base.forward(x)?;
        match (&self.adapter, &self.original) {
            (Some(a), None) => {
                let mut rng = a.shared.0.lock().unwrap_or_else(|p| p.into_inner());
                let d = a
                    .layer
                    .delta(x, a.scale, a.dropout, rng.as_mut())
                    .map_err(model_err)?;
                Ok((y + d.to_dtype(x.dtype())?)?)
            }
            _ => Ok(y),
        }
    }
}

/// A set of LoRA adapters for a [`WanTransformer`], keyed by diffusers module name, and
/// optionally an entity cross-attention trained with them.
#[derive(Clone)]
pub struct WanLora {
    config: LoraConfig,
    layers: BTreeMap<String, LoraLayer>,
    entity_attn: Option<EntityAttention>,
}

/// The metadata key of the entity attention's configuration in an adapter file.
const ENTITY_ATTN_META: &str = "entity_attn_config";

/// The original-Wan name of a diffusers module name (`blocks.0.attn1.to_q` →
/// `blocks.0.self_attn.q`).
fn original_module(name: &str) -> String {
    let o = diffusers_to_original(&format!("{name}.weight"));
    o.strip_suffix(".weight").unwrap_or(&o).to_string()
}

impl WanLora {
    /// FFGo's targets: every dense layer of every block (self- and cross-attention q, k, v,
    /// o and both feed-forward layers) and the timestep projection
    /// (`condition_embedder.time_proj`, original Wan `time_projection.1`). FFGo's trainer
    /// selects layers by substring (`"q"`, `"k"`, `"v"`, `"o"`, `"ffn.0"`, `"ffn.2"` in the
    /// original Wan module name): every block layer matches (`blocks` holds an `o`) and so
    /// does `time_projection.1`, while the text and time embeddings and the output head do
    /// not.
    pub const FFGO_TARGETS: [&'static str; 5] = [
        "blocks.*.attn1.to_*",
        "blocks.*.attn2.to_*",
        "blocks.*.ffn.net.0.proj",
        "blocks.*.ffn.net.2",
        "condition_embedder.time_proj",
    ];

    /// FFGo's configuration: rank 128, alpha 128, no dropout, scale 1, [`Self::FFGO_TARGETS`].
    pub fn ffgo_config() -> LoraConfig {
        LoraConfig {
            rank: 128,
            alpha: 128.0,
            dropout: 0.0,
            scale: 1.0,
            targets: Self::FFGO_TARGETS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Fresh adapters on every dense layer of `model` that `config` targets: `down`
    /// initialised from a generator seeded by `seed` and the module name (so adding a target
    /// leaves the others unchanged), `up` zero. Variables are f32 on the model's device.
    pub fn new(model: &WanTransformer, config: &LoraConfig, seed: u64) -> Result<Self> {
        config.validate().map_err(model_err)?;
        let root = SeededRng::new(seed);
        let mut layers = BTreeMap::new();
        for (name, i, o) in model.linear_modules() {
            if config.matches(&name) {
                let mut rng = root.stream(&name);
                let l = LoraLayer::new(
                    i,
                    o,
                    config.rank,
                    config.alpha,
                    &mut rng,
                    DType::F32,
                    model.device(),
                )
                .map_err(model_err)?;
                layers.insert(name, l);
            }
        }
        if layers.is_empty() {
            return Err(DiffusionError::InvalidInput(format!(
                "the LoRA targets {:?} match no dense layer of this transformer (names look like blocks.0.attn1.to_q, blocks.0.ffn.net.2)",
                config.targets
            )));
        }
        Ok(Self {
            config: config.clone(),
            layers,
            entity_attn: None,
        })
    }

    /// Adds a fresh entity cross-attention for `model` (its variables seeded by `seed`,
    /// its output projections zero: the adapter still starts as the base model).
    /// `cfg.entity_dim` must be the width of the entity embeddings.
    pub fn add_entity_attention(
        &mut self,
        model: &WanTransformer,
        cfg: &EntityAttnConfig,
        seed: u64,
    ) -> Result<()> {
        self.entity_attn = Some(EntityAttention::init(
            cfg,
            model.config(),
            seed,
            model.device(),
        )?);
        Ok(())
    }

    /// The entity cross-attention, if the adapter has one.
    pub fn entity_attention(&self) -> Option<&EntityAttention> {
        self.entity_attn.as_ref()
    }

    /// The entity attention's configuration stored in an adapter file, without loading the
    /// file's tensors (`None` for a plain LoRA), so a caller can prepare the entity
    /// embeddings it needs.
    pub fn entity_config_of(path: &Path) -> Result<Option<EntityAttnConfig>> {
        use std::io::Read;
        // A safetensors file starts with the length of its JSON header (u64, little
        // endian) and the header; only those are read, not the tensors.
        let not_st =
            |m: String| DiffusionError::config(path, format!("not a safetensors file: {m}"));
        let mut f = std::fs::File::open(path).map_err(|e| DiffusionError::io(path, e))?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len)
            .map_err(|e| not_st(format!("no header ({e})")))?;
        let len = u64::from_le_bytes(len);
        if len > 100_000_000 {
            return Err(not_st(format!("a header of {len} bytes")));
        }
        let mut header = vec![0u8; len as usize];
        f.read_exact(&mut header)
            .map_err(|e| not_st(format!("truncated header ({e})")))?;
        let header: serde_json::Value =
            serde_json::from_slice(&header).map_err(|e| not_st(e.to_string()))?;
        let Some(text) = header
            .get("__metadata__")
            .and_then(|m| m.get(ENTITY_ATTN_META))
            .and_then(|v| v.as_str())
        else {
            return Ok(None);
        };
        serde_json::from_str(text).map(Some).map_err(|e| {
            DiffusionError::config(path, format!("unreadable {ENTITY_ATTN_META} metadata: {e}"))
        })
    }

    /// The configuration (for loaded files: rank and alpha of the first layer, the module
    /// names as targets).
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// Sets the dropout used while training.
    pub fn set_dropout(&mut self, p: f64) {
        self.config.dropout = p;
    }

    /// The adapters by diffusers module name.
    pub fn layers(&self) -> &BTreeMap<String, LoraLayer> {
        &self.layers
    }

    /// The trainable variables in a fixed order (by module name, `down` then `up`; then
    /// the entity attention's, by name).
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// The variables by stable names (`<module>.lora_A` / `.lora_B`, then the entity
    /// attention's `entity_attn.…`), for checkpoints.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut v: Vec<(String, Var)> = self
            .layers
            .iter()
            .flat_map(|(n, l)| {
                [
                    (format!("{n}.lora_A"), l.down().clone()),
                    (format!("{n}.lora_B"), l.up().clone()),
                ]
            })
            .collect();
        if let Some(e) = &self.entity_attn {
            v.extend(e.named_vars().iter().cloned());
        }
        v
    }

    /// The name a module is stored under in `naming`.
    pub fn stored_name(module: &str, naming: LoraNaming) -> String {
        match naming {
            LoraNaming::Peft => format!("transformer.{module}"),
            LoraNaming::Kohya => {
                format!("lora_unet__{}", original_module(module).replace('.', "_"))
            }
        }
    }

    /// Writes the adapters to a safetensors file in `naming` (whole or not at all), with
    /// metadata naming the format, rank, alpha and targets.
    pub fn save(&self, path: &Path, naming: LoraNaming) -> Result<()> {
        let named: Vec<(String, &LoraLayer)> = self
            .layers
            .iter()
            .map(|(n, l)| (Self::stored_name(n, naming), l))
            .collect();
        let mut meta = HashMap::new();
        meta.insert("format".into(), "reelsmith-lora".into());
        meta.insert("base_model".into(), "wan-transformer".into());
        meta.insert(
            "target_modules".into(),
            serde_json::to_string(&self.layers.keys().collect::<Vec<_>>()).unwrap_or_default(),
        );
        meta.insert(
            "lora_config".into(),
            serde_json::to_string(&self.config).unwrap_or_default(),
        );
        let extra = match &self.entity_attn {
            Some(e) => {
                meta.insert(
                    ENTITY_ATTN_META.into(),
                    serde_json::to_string(e.config()).unwrap_or_default(),
                );
                e.tensors()
            }
            None => Vec::new(),
        };
        write_lora_file_with_extra(path, &named, naming, &meta, &extra).map_err(model_err)
    }

    /// Reads an adapter file in either naming and maps its module names onto `model`'s
    /// (diffusers, original Wan, kohya-flattened with one or two underscores, with or without
    /// the `transformer.`, `base_model.model.`, `diffusion_model.` or
    /// `model.diffusion_model.` prefixes). Names that match no dense layer are all listed in
    /// the error. Variables are f32 on the model's device.
    ///
    /// An entity cross-attention stored with the adapter (keys under `entity_attn.`) is
    /// loaded with it; a file without one loads as a plain LoRA.
    pub fn load(path: &Path, model: &WanTransformer) -> Result<Self> {
        let (file, extra) =
            read_lora_file_split(path, &Device::Cpu, &|k| k.starts_with(ENTITY_ATTN_PREFIX))
                .map_err(model_err)?;
        let mut lookup: HashMap<String, String> = HashMap::new();
        for (n, _, _) in model.linear_modules() {
            let o = original_module(&n);
            for v in [
                n.clone(),
                o.clone(),
                n.replace('.', "_"),
                o.replace('.', "_"),
            ] {
                lookup.insert(v, n.clone());
            }
        }
        let resolve = |stored: &str| -> Option<String> {
            let mut s = stored;
            for p in [
                "base_model.model.",
                "transformer.",
                "model.diffusion_model.",
                "diffusion_model.",
                "lora_unet_",
                "lora_transformer_",
            ] {
                if let Some(r) = s.strip_prefix(p) {
                    s = r;
                }
            }
            let s = s.trim_start_matches('_');
            lookup.get(s).cloned()
        };
        let mut layers = BTreeMap::new();
        let mut unknown = Vec::new();
        let mut first: Option<(usize, f64)> = None;
        for (stored, l) in &file.layers {
            let Some(name) = resolve(stored) else {
                unknown.push(stored.clone());
                continue;
            };
            let alpha = file.alpha_of(stored).unwrap_or(l.down.dims()[0] as f64);
            let down = l.down.to_dtype(DType::F32)?.to_device(model.device())?;
            let up = l.up.to_dtype(DType::F32)?.to_device(model.device())?;
            let layer = LoraLayer::from_tensors(&down, &up, alpha).map_err(model_err)?;
            first.get_or_insert((layer.rank(), alpha));
            layers.insert(name, layer);
        }
        if !unknown.is_empty() {
            return Err(DiffusionError::config(
                path,
                format!(
                    "{} adapter(s) name no dense layer of this transformer: {}",
                    unknown.len(),
                    unknown.join(", ")
                ),
            ));
        }
        let (rank, alpha) =
            first.ok_or_else(|| DiffusionError::config(path, "holds no adapters"))?;
        let mut config = file
            .metadata
            .get("lora_config")
            .and_then(|c| serde_json::from_str::<LoraConfig>(c).ok())
            .unwrap_or_else(|| LoraConfig::new(rank, alpha));
        if config.targets.is_empty() {
            config.targets = layers.keys().cloned().collect();
        }
        let entity_attn = if extra.is_empty() {
            None
        } else {
            let text = file.metadata.get(ENTITY_ATTN_META).ok_or_else(|| {
                DiffusionError::config(
                    path,
                    format!("holds entity attention tensors (entity_attn.*) but no {ENTITY_ATTN_META} metadata; save the adapter with reelsmith"),
                )
            })?;
            let ecfg: EntityAttnConfig = serde_json::from_str(text).map_err(|e| {
                DiffusionError::config(path, format!("unreadable {ENTITY_ATTN_META}: {e}"))
            })?;
            let tensors: HashMap<String, Tensor> = extra.into_iter().collect();
            Some(
                EntityAttention::from_tensors(&tensors, &ecfg, model.config(), model.device())
                    .map_err(|e| DiffusionError::config(path, e.to_string()))?,
            )
        };
        Ok(Self {
            config,
            layers,
            entity_attn,
        })
    }

    /// Copies the values of another set's variables into this one's (same modules and
    /// shapes), e.g. to restore a checkpoint into the set a model is using.
    pub fn assign_from(&self, other: &WanLora) -> Result<()> {
        for (n, l) in &self.layers {
            let o = other.layers.get(n).ok_or_else(|| {
                DiffusionError::InvalidInput(format!("the other LoRA has no adapter for {n}"))
            })?;
            l.down()
                .set(&o.down().as_tensor().to_dtype(l.down().dtype())?)?;
            l.up().set(&o.up().as_tensor().to_dtype(l.up().dtype())?)?;
        }
        match (&self.entity_attn, &other.entity_attn) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                for ((n, v), (m, w)) in a.named_vars().iter().zip(b.named_vars()) {
                    if n != m || v.dims() != w.dims() {
                        return Err(DiffusionError::InvalidInput(format!(
                            "the other adapter's entity attention differs ({n} vs {m})"
                        )));
                    }
                    v.set(&w.as_tensor().to_dtype(v.dtype())?)?;
                }
            }
            _ => {
                return Err(DiffusionError::InvalidInput(
                    "one adapter has an entity attention and the other has none".into(),
                ))
            }
        }
        Ok(())
    }
}
