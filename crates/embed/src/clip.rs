//! CLIP (Hugging Face `CLIPModel` layout): image and text towers with their projections.

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use serde::Deserialize;

use crate::hub::{self, HubOptions, ModelFiles};
use crate::manifest::ModelFamily;
use crate::nn::{Activation, Attention, LayerNorm, Linear, PatchEmbed};
use crate::preprocess::Preprocessor;
use crate::weights::{Checkpoint, Reader};
use crate::{DeviceChoice, EmbedError, Embedder, Embeddings, TextEmbedder};

type R<T> = Result<T, EmbedError>;

fn d_quick_gelu() -> String {
    "quick_gelu".into()
}
fn d_eps() -> f64 {
    1e-5
}

/// The text tower's settings (`text_config` of a CLIP `config.json`); defaults as
/// transformers' `CLIPTextConfig`.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct ClipTextConfig {
    /// Vocabulary size.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// Width of the residual stream.
    #[serde(default = "d_512")]
    pub hidden_size: usize,
    /// Width of the MLP.
    #[serde(default = "d_2048")]
    pub intermediate_size: usize,
    /// Number of layers.
    #[serde(default = "d_12")]
    pub num_hidden_layers: usize,
    /// Number of attention heads.
    #[serde(default = "d_8")]
    pub num_attention_heads: usize,
    /// Context length (77).
    #[serde(default = "d_77")]
    pub max_position_embeddings: usize,
    /// MLP activation.
    #[serde(default = "d_quick_gelu")]
    pub hidden_act: String,
    /// Layer norm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    /// End-of-text token id; `2` marks legacy configs where the pooled token is the one
    /// with the highest id.
    #[serde(default = "d_eos")]
    pub eos_token_id: i64,
}

/// The image tower's settings (`vision_config`); defaults as transformers'
/// `CLIPVisionConfig`.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct ClipVisionConfig {
    /// Width of the residual stream.
    #[serde(default = "d_768")]
    pub hidden_size: usize,
    /// Width of the MLP.
    #[serde(default = "d_3072")]
    pub intermediate_size: usize,
    /// Number of layers.
    #[serde(default = "d_12")]
    pub num_hidden_layers: usize,
    /// Number of attention heads.
    #[serde(default = "d_12")]
    pub num_attention_heads: usize,
    /// Colour channels.
    #[serde(default = "d_3")]
    pub num_channels: usize,
    /// Input side in pixels.
    #[serde(default = "d_224")]
    pub image_size: usize,
    /// Patch side in pixels.
    #[serde(default = "d_32")]
    pub patch_size: usize,
    /// MLP activation.
    #[serde(default = "d_quick_gelu")]
    pub hidden_act: String,
    /// Layer norm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
}

/// A CLIP `config.json`.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct ClipConfig {
    /// Width of the shared embedding space.
    #[serde(default = "d_512")]
    pub projection_dim: usize,
    /// Text tower.
    pub text_config: ClipTextConfig,
    /// Image tower.
    pub vision_config: ClipVisionConfig,
}

fn d_vocab() -> usize {
    49408
}
fn d_512() -> usize {
    512
}
fn d_2048() -> usize {
    2048
}
fn d_12() -> usize {
    12
}
fn d_8() -> usize {
    8
}
fn d_77() -> usize {
    77
}
fn d_eos() -> i64 {
    49407
}
fn d_768() -> usize {
    768
}
fn d_3072() -> usize {
    3072
}
fn d_3() -> usize {
    3
}
fn d_224() -> usize {
    224
}
fn d_32() -> usize {
    32
}

impl ClipConfig {
    /// Reads and checks a `config.json`.
    pub fn from_file(path: &Path) -> R<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| EmbedError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: ClipConfig = serde_json::from_str(&text).map_err(|e| EmbedError::Config {
            path: path.to_path_buf(),
            message: format!("not a CLIP config: {e}"),
        })?;
        let bad = |message: String| EmbedError::Config {
            path: path.to_path_buf(),
            message,
        };
        for act in [&cfg.text_config.hidden_act, &cfg.vision_config.hidden_act] {
            if Activation::parse(act).is_none() {
                return Err(bad(format!("unsupported activation {act:?}")));
            }
        }
        let t = &cfg.text_config;
        let v = &cfg.vision_config;
        if t.num_attention_heads == 0 || !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return Err(bad(
                "text hidden_size must be a multiple of num_attention_heads".into(),
            ));
        }
        if v.num_attention_heads == 0 || !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(bad(
                "vision hidden_size must be a multiple of num_attention_heads".into(),
            ));
        }
        if v.patch_size == 0 || v.image_size < v.patch_size {
            return Err(bad(
                "vision patch_size must be positive and at most image_size".into(),
            ));
        }
        Ok(cfg)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> R<Tensor> {
        let h = self.fc1.forward(x)?;
        let h = self.act.forward(&h)?;
        self.fc2.forward(&h)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    mlp: Mlp,
}

impl Layer {
    fn load(
        r: &Reader<'_>,
        p: &str,
        hidden: usize,
        inter: usize,
        heads: usize,
        act: Activation,
        eps: f64,
    ) -> R<Self> {
        let lin = |n: &str, i, o| Linear::load(r, &format!("{p}.{n}"), i, o, true);
        Ok(Self {
            ln1: LayerNorm::load(r, &format!("{p}.layer_norm1"), hidden, eps)?,
            attn: Attention::new(
                lin("self_attn.q_proj", hidden, hidden)?,
                lin("self_attn.k_proj", hidden, hidden)?,
                lin("self_attn.v_proj", hidden, hidden)?,
                lin("self_attn.out_proj", hidden, hidden)?,
                hidden,
                heads,
            )?,
            ln2: LayerNorm::load(r, &format!("{p}.layer_norm2"), hidden, eps)?,
            mlp: Mlp {
                fc1: lin("mlp.fc1", hidden, inter)?,
                fc2: lin("mlp.fc2", inter, hidden)?,
                act,
            },
        })
    }

    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> R<Tensor> {
        let h = self.attn.forward(&self.ln1.forward(x)?, mask)?;
        let x = (x + h)?;
        let h = self.mlp.forward(&self.ln2.forward(&x)?)?;
        Ok((x + h)?)
    }
}

#[derive(Debug, Clone)]
struct VisionTower {
    patch: PatchEmbed,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_ln: LayerNorm,
    layers: Vec<Layer>,
    post_ln: LayerNorm,
    projection: Linear,
    image_size: usize,
}

#[derive(Debug, Clone)]
struct TextTower {
    token_embedding: Tensor,
    position_embedding: Tensor,
    layers: Vec<Layer>,
    final_ln: LayerNorm,
    projection: Linear,
    eos_token_id: i64,
    max_len: usize,
}

/// The image tower's outputs for a batch of pixel tensors.
#[derive(Debug, Clone)]
pub struct ClipVisionOutput {
    /// Projected image embeddings `[n, projection_dim]` (transformers' `image_embeds`).
    pub image_embeds: Tensor,
    /// Post-layer-norm CLS token `[n, hidden]` (transformers' `pooler_output`).
    pub pooled: Tensor,
    /// All tokens of the last layer, CLS first, `[n, 1 + patches, hidden]`
    /// (transformers' `last_hidden_state`).
    pub last_hidden: Tensor,
}

/// A CLIP model: image and text towers, their projections, the preprocessing and the
/// tokenizer of one checkpoint.
pub struct ClipModel {
    id: String,
    config: ClipConfig,
    vision: VisionTower,
    text: TextTower,
    preprocessor: Preprocessor,
    tokenizer: tokenizers::Tokenizer,
    device: Device,
}

impl std::fmt::Debug for ClipModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipModel")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ClipModel {
    /// Loads a checkpoint folder in the Hugging Face layout: `config.json`,
    /// `preprocessor_config.json`, `tokenizer.json` and `model.safetensors` (or a sharded
    /// `model.safetensors.index.json`, or `pytorch_model.bin`).
    pub fn from_dir(dir: impl AsRef<Path>, device: DeviceChoice) -> R<Self> {
        let dir = dir.as_ref();
        let files = ModelFiles::from_dir(dir)?;
        let id = format!("clip:{}", dir.display());
        Self::from_files(&files, id, &device.device()?)
    }

    /// Loads `repo` (such as `openai/clip-vit-base-patch32`) from the Hugging Face cache,
    /// downloading what is missing unless offline. Known models use the revision pinned in
    /// their manifest; see [`HubOptions`].
    pub fn from_pretrained(repo: &str, opts: &HubOptions, device: DeviceChoice) -> R<Self> {
        let files = hub::fetch(repo, opts)?;
        let id = files.model_id.clone();
        let m = Self::from_files(&files, id, &device.device()?)?;
        files.check_dim(m.config.projection_dim)?;
        Ok(m)
    }

    pub(crate) fn from_files(files: &ModelFiles, id: String, device: &Device) -> R<Self> {
        if files.family != ModelFamily::Clip {
            return Err(EmbedError::Config {
                path: files.config.clone(),
                message: "not a CLIP checkpoint (model_type is not \"clip\"); use load_dir / load_pretrained".into(),
            });
        }
        let config = ClipConfig::from_file(&files.config)?;
        let preprocessor = files.preprocessor()?;
        let tok_path = files.tokenizer.as_ref().ok_or_else(|| EmbedError::Config {
            path: files.config.clone(),
            message: "CLIP needs a tokenizer.json beside config.json".into(),
        })?;
        let mut tokenizer = tokenizers::Tokenizer::from_file(tok_path)
            .map_err(|e| EmbedError::Tokenizer(format!("{}: {e}", tok_path.display())))?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: config.text_config.max_position_embeddings,
                ..Default::default()
            }))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        let ckpt = Checkpoint::load(&files.weights, device)?;
        let prefix = if ckpt.contains("vision_model.embeddings.class_embedding") {
            ""
        } else if ckpt.contains("clip.vision_model.embeddings.class_embedding") {
            "clip."
        } else {
            ""
        };
        let r = ckpt.reader(prefix);
        let vision = load_vision(&r, &config)?;
        let text = load_text(&r, &config)?;
        r.finish()?;
        Ok(Self {
            id,
            config,
            vision,
            text,
            preprocessor,
            tokenizer,
            device: device.clone(),
        })
    }

    /// The checkpoint's configuration.
    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// The image preprocessing in use.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Preprocesses images into the model's pixel tensor `[n, 3, s, s]`.
    pub fn pixels(&self, images: &[image::RgbImage]) -> R<Tensor> {
        self.preprocessor.pixels(images, &self.device)
    }

    /// Runs the image tower on preprocessed pixels `[n, 3, image_size, image_size]`.
    pub fn forward_pixels(&self, pixels: &Tensor) -> R<ClipVisionOutput> {
        let v = &self.vision;
        let (b, _, h, w) = pixels.dims4()?;
        if h != v.image_size || w != v.image_size {
            return Err(EmbedError::InvalidInput(format!(
                "CLIP expects {s}x{s} pixels, got {w}x{h}",
                s = v.image_size
            )));
        }
        let pixels = pixels.to_device(&self.device)?.to_dtype(DType::F32)?;
        let (patches, _, _) = v.patch.forward(&pixels)?;
        let hidden = patches.dim(2)?;
        let cls = v
            .class_embedding
            .reshape((1, 1, hidden))?
            .broadcast_as((b, 1, hidden))?;
        let x = Tensor::cat(&[&cls, &patches], 1)?;
        let x = x.broadcast_add(&v.position_embedding.unsqueeze(0)?)?;
        let mut x = v.pre_ln.forward(&x)?;
        for layer in &v.layers {
            x = layer.forward(&x, None)?;
        }
        let pooled = v.post_ln.forward(&x.i((.., 0))?.contiguous()?)?;
        let image_embeds = v.projection.forward(&pooled)?;
        Ok(ClipVisionOutput {
            image_embeds,
            pooled,
            last_hidden: x,
        })
    }

    /// Token ids of texts as the model sees them: start token, BPE tokens, end token,
    /// truncated to the context length, one row per text (not padded).
    pub fn tokenize(&self, texts: &[&str]) -> R<Vec<Vec<u32>>> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Runs the text tower on token ids (rows may differ in length; each must contain the
    /// end token). Returns (projected `text_embeds`, `pooler_output`).
    pub fn forward_ids(&self, ids: &[Vec<u32>]) -> R<(Tensor, Tensor)> {
        let t = &self.text;
        if ids.is_empty() {
            return Err(EmbedError::InvalidInput("no texts".into()));
        }
        let len = ids.iter().map(Vec::len).max().unwrap_or(0);
        if len == 0 || len > t.max_len {
            return Err(EmbedError::InvalidInput(format!(
                "token rows must have 1 to {} ids, longest has {len}",
                t.max_len
            )));
        }
        let pad = if t.eos_token_id >= 0 {
            t.eos_token_id as u32
        } else {
            0
        };
        let mut flat = Vec::with_capacity(ids.len() * len);
        let mut pool_at = Vec::with_capacity(ids.len());
        for row in ids {
            let pos = if t.eos_token_id == 2 {
                // legacy configs: the end token has the highest id (first maximum)
                let max = row.iter().copied().max().unwrap_or(0);
                row.iter().position(|&v| v == max).unwrap_or(0)
            } else {
                row.iter()
                    .position(|&v| v as i64 == t.eos_token_id)
                    .unwrap_or(0)
            };
            pool_at.push(pos as u32);
            flat.extend_from_slice(row);
            flat.extend(std::iter::repeat_n(pad, len - row.len()));
        }
        let b = ids.len();
        let ids_t = Tensor::from_vec(flat, (b * len,), &self.device)?;
        let vocab = t.token_embedding.dim(0)?;
        if let Some(bad) = ids.iter().flatten().find(|&&v| v as usize >= vocab) {
            return Err(EmbedError::InvalidInput(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let hidden = t.token_embedding.dim(1)?;
        let x = t
            .token_embedding
            .index_select(&ids_t, 0)?
            .reshape((b, len, hidden))?;
        let x = x.broadcast_add(&t.position_embedding.narrow(0, 0, len)?.unsqueeze(0)?)?;
        let mask = causal_mask(len, &self.device)?;
        let mut x = x;
        for layer in &t.layers {
            x = layer.forward(&x, Some(&mask))?;
        }
        let x = t.final_ln.forward(&x)?;
        let idx: Vec<u32> = pool_at
            .iter()
            .enumerate()
            .map(|(i, &p)| i as u32 * len as u32 + p)
            .collect();
        let idx = Tensor::from_vec(idx, (b,), &self.device)?;
        let pooled = x.reshape((b * len, hidden))?.index_select(&idx, 0)?;
        let embeds = t.projection.forward(&pooled)?;
        Ok((embeds, pooled))
    }
}

fn causal_mask(n: usize, device: &Device) -> R<Tensor> {
    let data: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(data, (n, n), device)?)
}

fn load_vision(r: &Reader<'_>, c: &ClipConfig) -> R<VisionTower> {
    let v = &c.vision_config;
    let h = v.hidden_size;
    let act = Activation::parse(&v.hidden_act).unwrap_or(Activation::QuickGelu);
    let grid = v.image_size / v.patch_size;
    let layers = (0..v.num_hidden_layers)
        .map(|i| {
            Layer::load(
                r,
                &format!("vision_model.encoder.layers.{i}"),
                h,
                v.intermediate_size,
                v.num_attention_heads,
                act,
                v.layer_norm_eps,
            )
        })
        .collect::<R<Vec<_>>>()?;
    Ok(VisionTower {
        patch: PatchEmbed::load(
            r,
            "vision_model.embeddings.patch_embedding",
            v.num_channels,
            h,
            v.patch_size,
            false,
        )?,
        class_embedding: r.get("vision_model.embeddings.class_embedding", &[h])?,
        position_embedding: r.get(
            "vision_model.embeddings.position_embedding.weight",
            &[grid * grid + 1, h],
        )?,
        pre_ln: LayerNorm::load(r, "vision_model.pre_layrnorm", h, v.layer_norm_eps)?,
        layers,
        post_ln: LayerNorm::load(r, "vision_model.post_layernorm", h, v.layer_norm_eps)?,
        projection: Linear::load(r, "visual_projection", h, c.projection_dim, false)?,
        image_size: v.image_size,
    })
}

fn load_text(r: &Reader<'_>, c: &ClipConfig) -> R<TextTower> {
    let t = &c.text_config;
    let h = t.hidden_size;
    let act = Activation::parse(&t.hidden_act).unwrap_or(Activation::QuickGelu);
    let layers = (0..t.num_hidden_layers)
        .map(|i| {
            Layer::load(
                r,
                &format!("text_model.encoder.layers.{i}"),
                h,
                t.intermediate_size,
                t.num_attention_heads,
                act,
                t.layer_norm_eps,
            )
        })
        .collect::<R<Vec<_>>>()?;
    Ok(TextTower {
        token_embedding: r.get(
            "text_model.embeddings.token_embedding.weight",
            &[t.vocab_size, h],
        )?,
        position_embedding: r.get(
            "text_model.embeddings.position_embedding.weight",
            &[t.max_position_embeddings, h],
        )?,
        layers,
        final_ln: LayerNorm::load(r, "text_model.final_layer_norm", h, t.layer_norm_eps)?,
        projection: Linear::load(r, "text_projection", h, c.projection_dim, false)?,
        eos_token_id: t.eos_token_id,
        max_len: t.max_position_embeddings,
    })
}

pub(crate) fn to_embeddings(t: &Tensor) -> R<Embeddings> {
    let t = t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let (_, d) = t.dims2()?;
    Ok(Embeddings::new(t.flatten_all()?.to_vec1::<f32>()?, d)?)
}

impl Embedder for ClipModel {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.config.projection_dim
    }

    /// Projected image embeddings (transformers' `image_embeds`), not normalised.
    fn embed_images(&self, images: &[image::RgbImage]) -> R<Embeddings> {
        if images.is_empty() {
            return Ok(Embeddings::empty(self.dim())?);
        }
        let px = self.pixels(images)?;
        to_embeddings(&self.forward_pixels(&px)?.image_embeds)
    }
}

impl TextEmbedder for ClipModel {
    /// Projected text embeddings (transformers' `text_embeds`), not normalised.
    fn embed_texts(&self, texts: &[&str]) -> R<Embeddings> {
        if texts.is_empty() {
            return Ok(Embeddings::empty(self.dim())?);
        }
        let ids = self.tokenize(texts)?;
        let (e, _) = self.forward_ids(&ids)?;
        to_embeddings(&e)
    }
}
