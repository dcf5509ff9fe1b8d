//! CLIP (Hugging Face `CLIPModel` layout): image and text towers with their projections.

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Module, Tensor};
use reelsmith_models::ops::AttentionMask;
use reelsmith_models::{
    Activation, Attention, AttentionConfig, Checkpoint, LayerNorm, LayerNormConfig, Linear,
    LinearConfig, Mlp, MlpConfig, PatchEmbed, PatchEmbedConfig, VarBuilder,
};
use serde::Deserialize;

use crate::hub::{self, ModelFiles};
use crate::manifest::ModelFamily;
use crate::preprocess::Preprocessor;
use crate::{DeviceChoice, EmbedError, Embedder, Embeddings, HubOptions, TextEmbedder};

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
        let cfg: ClipConfig = reelsmith_models::read_config(path)?;
        let bad = |message: String| EmbedError::Config {
            path: path.to_path_buf(),
            message,
        };
        for act in [&cfg.text_config.hidden_act, &cfg.vision_config.hidden_act] {
            if Activation::from_name(act).is_none() {
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

/// One pre-norm transformer layer of either tower: `layer_norm1`, `self_attn`,
/// `layer_norm2`, `mlp` (`fc1`, `fc2`).
#[derive(Debug, Clone)]
pub struct ClipEncoderLayer {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    mlp: Mlp,
}

/// The sizes of one tower's layers.
#[derive(Debug, Clone, Copy)]
struct LayerSizes {
    hidden: usize,
    inter: usize,
    heads: usize,
    act: Activation,
    eps: f64,
}

impl ClipEncoderLayer {
    fn new(vb: VarBuilder, c: &LayerSizes) -> candle_core::Result<Self> {
        Ok(Self {
            ln1: LayerNorm::new(vb.pp("layer_norm1"), &LayerNormConfig::new(c.hidden, c.eps))?,
            attn: Attention::new(vb.pp("self_attn"), &AttentionConfig::new(c.hidden, c.heads))?,
            ln2: LayerNorm::new(vb.pp("layer_norm2"), &LayerNormConfig::new(c.hidden, c.eps))?,
            mlp: Mlp::new(vb.pp("mlp"), &MlpConfig::new(c.hidden, c.inter, c.act))?,
        })
    }

    /// `x` `[b, t, hidden]` through the layer; the text tower's attention is causal.
    pub fn forward(&self, x: &Tensor, mask: AttentionMask<'_>) -> candle_core::Result<Tensor> {
        let h = self.attn.forward_masked(&self.ln1.forward(x)?, mask)?;
        let x = (x + h)?;
        let h = self.mlp.forward(&self.ln2.forward(&x)?)?;
        x + h
    }
}

fn activation(name: &str) -> candle_core::Result<Activation> {
    Activation::from_name(name)
        .ok_or_else(|| candle_core::Error::Msg(format!("unsupported activation {name:?}")))
}

/// CLIP's image tower (`vision_model` in the Hugging Face layout): patch embedding, class
/// token, position embeddings, pre-norm, encoder layers, post-norm of the class token.
#[derive(Debug, Clone)]
pub struct ClipVisionTransformer {
    patch: PatchEmbed,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_ln: LayerNorm,
    layers: Vec<ClipEncoderLayer>,
    post_ln: LayerNorm,
    image_size: usize,
}

impl ClipVisionTransformer {
    /// Reads the tower under `vb` (the `vision_model` prefix).
    pub fn new(vb: VarBuilder, c: &ClipVisionConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let grid = c.image_size / c.patch_size.max(1);
        let sizes = LayerSizes {
            hidden: h,
            inter: c.intermediate_size,
            heads: c.num_attention_heads,
            act: activation(&c.hidden_act)?,
            eps: c.layer_norm_eps,
        };
        let emb = vb.pp("embeddings");
        let enc = vb.pp("encoder.layers");
        Ok(Self {
            patch: PatchEmbed::new(
                emb.pp("patch_embedding"),
                &PatchEmbedConfig {
                    channels: c.num_channels,
                    dim: h,
                    patch: c.patch_size,
                    bias: false,
                },
            )?,
            class_embedding: emb.get(h, "class_embedding")?,
            position_embedding: emb.get((grid * grid + 1, h), "position_embedding.weight")?,
            pre_ln: LayerNorm::new(
                vb.pp("pre_layrnorm"),
                &LayerNormConfig::new(h, c.layer_norm_eps),
            )?,
            layers: (0..c.num_hidden_layers)
                .map(|i| ClipEncoderLayer::new(enc.pp(i), &sizes))
                .collect::<candle_core::Result<_>>()?,
            post_ln: LayerNorm::new(
                vb.pp("post_layernorm"),
                &LayerNormConfig::new(h, c.layer_norm_eps),
            )?,
            image_size: c.image_size,
        })
    }

    /// Pixels `[n, channels, image_size, image_size]` → (post-norm class token
    /// `[n, hidden]`, last hidden state `[n, 1 + patches, hidden]`).
    pub fn forward(&self, pixels: &Tensor) -> R<(Tensor, Tensor)> {
        let (b, _, h, w) = pixels.dims4()?;
        if h != self.image_size || w != self.image_size {
            return Err(EmbedError::InvalidInput(format!(
                "CLIP expects {s}x{s} pixels, got {w}x{h}",
                s = self.image_size
            )));
        }
        let (patches, _, _) = self.patch.forward_grid(pixels)?;
        let hidden = patches.dim(2)?;
        let cls = self
            .class_embedding
            .reshape((1, 1, hidden))?
            .broadcast_as((b, 1, hidden))?;
        let x = Tensor::cat(&[&cls, &patches], 1)?;
        let x = x.broadcast_add(&self.position_embedding.unsqueeze(0)?)?;
        let mut x = self.pre_ln.forward(&x)?;
        for layer in &self.layers {
            x = layer.forward(&x, AttentionMask::None)?;
        }
        let pooled = self.post_ln.forward(&x.i((.., 0))?.contiguous()?)?;
        Ok((pooled, x))
    }
}

/// CLIP's text tower (`text_model`): token and position embeddings, causal encoder layers,
/// final norm; pools the end-of-text token.
#[derive(Debug, Clone)]
pub struct ClipTextTransformer {
    token_embedding: Tensor,
    position_embedding: Tensor,
    layers: Vec<ClipEncoderLayer>,
    final_ln: LayerNorm,
    eos_token_id: i64,
    max_len: usize,
}

impl ClipTextTransformer {
    /// Reads the tower under `vb` (the `text_model` prefix).
    pub fn new(vb: VarBuilder, c: &ClipTextConfig) -> candle_core::Result<Self> {
        let h = c.hidden_size;
        let sizes = LayerSizes {
            hidden: h,
            inter: c.intermediate_size,
            heads: c.num_attention_heads,
            act: activation(&c.hidden_act)?,
            eps: c.layer_norm_eps,
        };
        let emb = vb.pp("embeddings");
        let enc = vb.pp("encoder.layers");
        Ok(Self {
            token_embedding: emb.get((c.vocab_size, h), "token_embedding.weight")?,
            position_embedding: emb
                .get((c.max_position_embeddings, h), "position_embedding.weight")?,
            layers: (0..c.num_hidden_layers)
                .map(|i| ClipEncoderLayer::new(enc.pp(i), &sizes))
                .collect::<candle_core::Result<_>>()?,
            final_ln: LayerNorm::new(
                vb.pp("final_layer_norm"),
                &LayerNormConfig::new(h, c.layer_norm_eps),
            )?,
            eos_token_id: c.eos_token_id,
            max_len: c.max_position_embeddings,
        })
    }

    /// Token ids (rows may differ in length; each should contain the end token) → the
    /// pooled end-of-text states `[n, hidden]` (transformers' `pooler_output`).
    pub fn forward(&self, ids: &[Vec<u32>]) -> R<Tensor> {
        let device = self.token_embedding.device().clone();
        if ids.is_empty() {
            return Err(EmbedError::InvalidInput("no texts".into()));
        }
        let len = ids.iter().map(Vec::len).max().unwrap_or(0);
        if len == 0 || len > self.max_len {
            return Err(EmbedError::InvalidInput(format!(
                "token rows must have 1 to {} ids, longest has {len}",
                self.max_len
            )));
        }
        let vocab = self.token_embedding.dim(0)?;
        if let Some(bad) = ids.iter().flatten().find(|&&v| v as usize >= vocab) {
            return Err(EmbedError::InvalidInput(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let pad = if self.eos_token_id >= 0 {
            self.eos_token_id as u32
        } else {
            0
        };
        let mut flat = Vec::with_capacity(ids.len() * len);
        let mut pool_at = Vec::with_capacity(ids.len());
        for row in ids {
            let pos = if self.eos_token_id == 2 {
                // legacy configs: the end token has the highest id (first maximum)
                let max = row.iter().copied().max().unwrap_or(0);
                row.iter().position(|&v| v == max).unwrap_or(0)
            } else {
                row.iter()
                    .position(|&v| v as i64 == self.eos_token_id)
                    .unwrap_or(0)
            };
            pool_at.push(pos as u32);
            flat.extend_from_slice(row);
            flat.extend(std::iter::repeat_n(pad, len - row.len()));
        }
        let b = ids.len();
        let ids_t = Tensor::from_vec(flat, (b * len,), &device)?;
        let hidden = self.token_embedding.dim(1)?;
        let x = self
            .token_embedding
            .index_select(&ids_t, 0)?
            .reshape((b, len, hidden))?;
        let mut x = x.broadcast_add(&self.position_embedding.narrow(0, 0, len)?.unsqueeze(0)?)?;
        for layer in &self.layers {
            x = layer.forward(&x, AttentionMask::Causal)?;
        }
        let x = self.final_ln.forward(&x)?;
        let idx: Vec<u32> = pool_at
            .iter()
            .enumerate()
            .map(|(i, &p)| i as u32 * len as u32 + p)
            .collect();
        let idx = Tensor::from_vec(idx, (b,), &device)?;
        Ok(x.reshape((b * len, hidden))?.index_select(&idx, 0)?)
    }
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
    vision: ClipVisionTransformer,
    visual_projection: Linear,
    text: ClipTextTransformer,
    text_projection: Linear,
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
        let ckpt = Checkpoint::open(&files.weights)?;
        // checkpoints saved from a wrapper keep the model under `clip.`
        let ckpt = if !ckpt.contains("vision_model.embeddings.class_embedding")
            && ckpt.contains("clip.vision_model.embeddings.class_embedding")
        {
            ckpt.with_rename(|n| format!("clip.{n}"))
        } else {
            ckpt
        };
        let model = Self::new(
            ckpt.var_builder(DType::F32, device),
            &config,
            preprocessor,
            tokenizer,
        );
        ckpt.finish()?;
        let mut model = model?;
        model.id = id;
        Ok(model)
    }

    /// Builds the model from a [`VarBuilder`] over the Hugging Face `CLIPModel` key layout
    /// (`vision_model.*`, `text_model.*`, `visual_projection`, `text_projection`), with
    /// its preprocessing and tokenizer; the id is `clip` until set by the loaders.
    pub fn new(
        vb: VarBuilder,
        config: &ClipConfig,
        preprocessor: Preprocessor,
        tokenizer: tokenizers::Tokenizer,
    ) -> R<Self> {
        let (h_v, h_t, p) = (
            config.vision_config.hidden_size,
            config.text_config.hidden_size,
            config.projection_dim,
        );
        Ok(Self {
            id: "clip".into(),
            config: config.clone(),
            vision: ClipVisionTransformer::new(vb.pp("vision_model"), &config.vision_config)?,
            visual_projection: Linear::new(
                vb.pp("visual_projection"),
                &LinearConfig::no_bias(h_v, p),
            )?,
            text: ClipTextTransformer::new(vb.pp("text_model"), &config.text_config)?,
            text_projection: Linear::new(vb.pp("text_projection"), &LinearConfig::no_bias(h_t, p))?,
            preprocessor,
            tokenizer,
            device: vb.device().clone(),
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
        let pixels = pixels.to_device(&self.device)?.to_dtype(DType::F32)?;
        let (pooled, last_hidden) = self.vision.forward(&pixels)?;
        let image_embeds = self.visual_projection.forward(&pooled)?;
        Ok(ClipVisionOutput {
            image_embeds,
            pooled,
            last_hidden,
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
        let pooled = self.text.forward(ids)?;
        let embeds = self.text_projection.forward(&pooled)?;
        Ok((embeds, pooled))
    }
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
