//! The Wan 2.x diffusion transformer (`WanTransformer3DModel` in diffusers).
//!
//! One config-driven implementation covers the family: Wan2.1-T2V (16 input channels),
//! Wan2.2-I2V-A14B (36 = noisy latent 16 + mask 4 + first-frame latent 16) and Wan2.2-TI2V-5B
//! (48 channels, per-token timesteps). The forward pass: a 1×2×2 patch embedding, sinusoidal
//! timestep and text embedders, blocks of self-attention (RMS norm of q and k across heads,
//! 3D rotary embedding with the head dimension split between time, height and width),
//! cross-attention to the text and a GELU-tanh feed-forward, each modulated by the
//! `scale_shift_table`, then the output head and unpatchify.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::entity_attn::{BlockEntities, EncodedEntities, EntityAttention, EntityTokens};
use crate::error::{DiffusionError, Result};
use crate::keymap::{detect_layout, KeyLayout};
use crate::layers::{
    attention, compute_dtype, inference_f32, layer_normalize, silu, LayerNorm, Linear, RmsNorm,
};
use crate::loading::{load_weights, read_json};
use crate::lora::{AdaptedLinear, LoraShared, WanLora};

fn default_patch() -> [usize; 3] {
    [1, 2, 2]
}
fn default_heads() -> usize {
    40
}
fn default_head_dim() -> usize {
    128
}
fn default_in() -> usize {
    16
}
fn default_text_dim() -> usize {
    4096
}
fn default_freq_dim() -> usize {
    256
}
fn default_ffn() -> usize {
    13824
}
fn default_layers() -> usize {
    40
}
fn default_true() -> bool {
    true
}
fn default_eps() -> f64 {
    1e-6
}
fn default_qk_norm() -> Option<String> {
    Some("rms_norm_across_heads".into())
}
fn default_rope_len() -> usize {
    1024
}

/// The transformer's `config.json` (diffusers field names and defaults).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WanTransformerConfig {
    /// Patch size (time, height, width); Wan uses `[1, 2, 2]`.
    #[serde(default = "default_patch")]
    pub patch_size: [usize; 3],
    /// Attention heads.
    #[serde(default = "default_heads")]
    pub num_attention_heads: usize,
    /// Channels per head.
    #[serde(default = "default_head_dim")]
    pub attention_head_dim: usize,
    /// Input latent channels (16, 36 or 48).
    #[serde(default = "default_in")]
    pub in_channels: usize,
    /// Output channels (defaults to `in_channels`).
    #[serde(default)]
    pub out_channels: Option<usize>,
    /// Width of the text encoder's embeddings (4096 for UMT5-XXL).
    #[serde(default = "default_text_dim")]
    pub text_dim: usize,
    /// Width of the sinusoidal timestep embedding.
    #[serde(default = "default_freq_dim")]
    pub freq_dim: usize,
    /// Hidden width of the feed-forward.
    #[serde(default = "default_ffn")]
    pub ffn_dim: usize,
    /// Transformer blocks.
    #[serde(default = "default_layers")]
    pub num_layers: usize,
    /// Whether a layer norm (with weights) precedes the cross-attention.
    #[serde(default = "default_true")]
    pub cross_attn_norm: bool,
    /// Query/key norm; only `rms_norm_across_heads` (or none) is used by Wan.
    #[serde(default = "default_qk_norm")]
    pub qk_norm: Option<String>,
    /// Epsilon of the norms.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Width of CLIP image embeddings (Wan 2.1 I2V only; not supported).
    #[serde(default)]
    pub image_dim: Option<usize>,
    /// Added key/value projections for image embeddings (Wan 2.1 I2V only; not supported).
    #[serde(default)]
    pub added_kv_proj_dim: Option<usize>,
    /// Positions the rotary tables were made for in diffusers (kept for reference; any
    /// length is computed here).
    #[serde(default = "default_rope_len")]
    pub rope_max_seq_len: usize,
    /// Image position embedding length (Wan 2.1 FLF2V only; not supported).
    #[serde(default)]
    pub pos_embed_seq_len: Option<usize>,
}

impl WanTransformerConfig {
    /// Model width (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Parameter count (computed from the configuration).
    pub fn parameter_count(&self) -> u64 {
        let d = self.inner_dim() as u64;
        let f = self.ffn_dim as u64;
        let p: u64 = self.patch_size.iter().map(|&x| x as u64).product();
        let cin = self.in_channels as u64;
        let cout = self.out_channels() as u64;
        let t = self.text_dim as u64;
        let fd = self.freq_dim as u64;
        let attn = 4 * (d * d + d) + 2 * d;
        let block = 2 * attn + 2 * d + (d * f + f) + (f * d + d) + 6 * d;
        let embed = cin * p * d
            + d
            + (fd * d + d)
            + (d * d + d)
            + (d * 6 * d + 6 * d)
            + (t * d + d)
            + (d * d + d);
        let head = d * cout * p + cout * p + 2 * d;
        embed + self.num_layers as u64 * block + head
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Err(DiffusionError::config(path, m));
        if self.image_dim.is_some() || self.added_kv_proj_dim.is_some() {
            return bad("this is a Wan 2.1 I2V/FLF2V transformer (CLIP image embeddings, `image_dim`/`added_kv_proj_dim`), which is not supported; use Wan2.2-I2V-A14B or Wan2.2-TI2V-5B for image-to-video".into());
        }
        if self.pos_embed_seq_len.is_some() {
            return bad("`pos_embed_seq_len` (Wan 2.1 FLF2V) is not supported".into());
        }
        match self.qk_norm.as_deref() {
            None | Some("rms_norm_across_heads") => {}
            Some(other) => {
                return bad(format!(
                    "qk_norm {other:?} is not supported (Wan uses \"rms_norm_across_heads\")"
                ))
            }
        }
        let hd = self.attention_head_dim;
        if hd < 6 || !hd.is_multiple_of(2) {
            return bad(format!(
                "attention_head_dim {hd} cannot be split into even rotary parts for time, height and width"
            ));
        }
        if self.num_attention_heads == 0 || self.num_layers == 0 || !self.freq_dim.is_multiple_of(2)
        {
            return bad(
                "num_attention_heads and num_layers must be positive and freq_dim even".into(),
            );
        }
        if self.patch_size.contains(&0) {
            return bad("patch_size entries must be positive".into());
        }
        Ok(())
    }
}

/// Scale, shift and gate vectors of one block, each broadcastable to `[b, seq, dim]`.
struct Modulation {
    shift: Tensor,
    scale: Tensor,
    gate: Tensor,
    c_shift: Tensor,
    c_scale: Tensor,
    c_gate: Tensor,
}

struct SelfAttention {
    to_q: AdaptedLinear,
    to_k: AdaptedLinear,
    to_v: AdaptedLinear,
    to_out: AdaptedLinear,
    norm_q: Option<RmsNorm>,
    norm_k: Option<RmsNorm>,
    heads: usize,
}

impl SelfAttention {
    fn new(vb: VarBuilder, dim: usize, heads: usize, eps: f64, qk_norm: bool) -> Result<Self> {
        let (norm_q, norm_k) = if qk_norm {
            (
                Some(RmsNorm::new(vb.pp("norm_q"), dim, eps)?),
                Some(RmsNorm::new(vb.pp("norm_k"), dim, eps)?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            to_q: AdaptedLinear::new(&vb, "to_q", dim, dim)?,
            to_k: AdaptedLinear::new(&vb, "to_k", dim, dim)?,
            to_v: AdaptedLinear::new(&vb, "to_v", dim, dim)?,
            to_out: AdaptedLinear::new(&vb, "to_out.0", dim, dim)?,
            norm_q,
            norm_k,
            heads,
        })
    }

    /// `[b, s, dim]` → `[b, heads, s, head_dim]`.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, s, d) = x.dims3()?;
        Ok(x.reshape((b, s, self.heads, d / self.heads))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    fn forward(&self, x: &Tensor, context: Option<&Tensor>, rope: Option<&Rope>) -> Result<Tensor> {
        let (q, k, v) = self.project(x, context, rope)?;
        let o = attention(&q, &k, &v, self.scale(&q)?)?;
        self.finish(&o)
    }

    /// `1 / √head_dim` for `q` `[b, heads, s, head_dim]`.
    fn scale(&self, q: &Tensor) -> Result<f64> {
        Ok(1.0 / (q.dim(3)? as f64).sqrt())
    }

    /// The queries, keys and values `[b, heads, s, head_dim]` (normalised and rotated) of
    /// `x` attending to `context` (itself when `None`).
    fn project(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
        rope: Option<&Rope>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let ctx = context.unwrap_or(x);
        let mut q = self.to_q.forward(x)?;
        let mut k = self.to_k.forward(ctx)?;
        let v = self.to_v.forward(ctx)?;
        if let Some(n) = &self.norm_q {
            q = n.forward(&q)?;
        }
        if let Some(n) = &self.norm_k {
            k = n.forward(&k)?;
        }
        let (q, k) = match rope {
            // Inference: heads first, then candle's fused interleaved rotary kernel.
            Some(r) if inference_f32(&[&q, &k, &r.cos]) => {
                let q = self.split_heads(&q)?;
                let k = self.split_heads(&k)?;
                (
                    candle_nn::rotary_emb::rope_i(&q, &r.cos2, &r.sin2)?,
                    candle_nn::rotary_emb::rope_i(&k, &r.cos2, &r.sin2)?,
                )
            }
            Some(r) => (
                self.split_heads(&r.apply(&q, self.heads)?)?,
                self.split_heads(&r.apply(&k, self.heads)?)?,
            ),
            None => (self.split_heads(&q)?, self.split_heads(&k)?),
        };
        Ok((q, k, self.split_heads(&v)?))
    }

    /// The output projection of the attention core's result `o` `[b, heads, s, head_dim]`.
    fn finish(&self, o: &Tensor) -> Result<Tensor> {
        let (b, h, s, hd) = o.dims4()?;
        let o = o.transpose(1, 2)?.reshape((b, s, h * hd))?;
        self.to_out.forward(&o)
    }
}

/// Rotary tables for one token grid: `cos`/`sin` of shape `[1, seq, 1, head_dim / 2, 1]`.
#[derive(Clone)]
pub(crate) struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// The same tables as `[seq, head_dim / 2]` for the fused kernel.
    cos2: Tensor,
    sin2: Tensor,
}

impl Rope {
    /// The tables diffusers' `WanRotaryPosEmbed` builds for a `frames × height × width` token
    /// grid: the head dimension split into time, height and width parts, frequencies
    /// `theta^(-2i/dim)` of each part evaluated at the token's coordinate (in f64).
    fn new(
        head_dim: usize,
        grid: (usize, usize, usize),
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let h_dim = 2 * (head_dim / 6);
        let w_dim = h_dim;
        let t_dim = head_dim - h_dim - w_dim;
        let theta = 10000f64;
        let freqs = |dim: usize| -> Vec<f64> {
            (0..dim / 2)
                .map(|i| 1.0 / theta.powf((2 * i) as f64 / dim as f64))
                .collect()
        };
        let (ft, fh, fw) = (freqs(t_dim), freqs(h_dim), freqs(w_dim));
        let (f, h, w) = grid;
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(f * h * w * half);
        let mut sin = Vec::with_capacity(f * h * w * half);
        for ti in 0..f {
            for hi in 0..h {
                for wi in 0..w {
                    for (pos, fr) in [(ti, &ft), (hi, &fh), (wi, &fw)] {
                        for &x in fr.iter() {
                            let a = pos as f64 * x;
                            cos.push(a.cos() as f32);
                            sin.push(a.sin() as f32);
                        }
                    }
                }
            }
        }
        let shape = (1, f * h * w, 1, half, 1);
        let cos = Tensor::from_vec(cos, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)?;
        let sin = Tensor::from_vec(sin, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)?;
        Ok(Self {
            cos2: cos.reshape((f * h * w, half))?,
            sin2: sin.reshape((f * h * w, half))?,
            cos,
            sin,
        })
    }

    /// Rotates consecutive channel pairs of each head of `x` `[b, s, heads * head_dim]`.
    fn apply(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, s, d) = x.dims3()?;
        let pairs = x.reshape((b, s, heads, d / heads / 2, 2))?;
        let x1 = pairs.narrow(4, 0, 1)?;
        let x2 = pairs.narrow(4, 1, 1)?;
        let r1 = (x1.broadcast_mul(&self.cos)? - x2.broadcast_mul(&self.sin)?)?;
        let r2 = (x1.broadcast_mul(&self.sin)? + x2.broadcast_mul(&self.cos)?)?;
        Ok(Tensor::cat(&[r1, r2], 4)?.reshape((b, s, d))?)
    }
}

struct Block {
    attn1: SelfAttention,
    attn2: SelfAttention,
    norm2: Option<LayerNorm>,
    ffn_up: AdaptedLinear,
    ffn_down: AdaptedLinear,
    /// `[1, 6, dim]`.
    scale_shift_table: Tensor,
    eps: f64,
}

impl Block {
    fn new(vb: VarBuilder, cfg: &WanTransformerConfig) -> Result<Self> {
        let dim = cfg.inner_dim();
        let heads = cfg.num_attention_heads;
        let qk = cfg.qk_norm.is_some();
        Ok(Self {
            attn1: SelfAttention::new(vb.pp("attn1"), dim, heads, cfg.eps, qk)?,
            attn2: SelfAttention::new(vb.pp("attn2"), dim, heads, cfg.eps, qk)?,
            norm2: if cfg.cross_attn_norm {
                Some(LayerNorm::new(vb.pp("norm2"), dim, cfg.eps)?)
            } else {
                None
            },
            ffn_up: AdaptedLinear::new(&vb, "ffn.net.0.proj", dim, cfg.ffn_dim)?,
            ffn_down: AdaptedLinear::new(&vb, "ffn.net.2", cfg.ffn_dim, dim)?,
            scale_shift_table: vb.get((1, 6, dim), "scale_shift_table")?,
            eps: cfg.eps,
        })
    }

    /// `temb_proj` is `[b, 6, dim]` (one timestep per sample) or `[b, seq, 6, dim]` (per token).
    fn modulation(&self, temb_proj: &Tensor) -> Result<Modulation> {
        let table = self
            .scale_shift_table
            .to_dtype(compute_dtype(self.scale_shift_table.dtype()))?;
        let parts: Vec<Tensor> = if temb_proj.rank() == 4 {
            let m = temb_proj.broadcast_add(&table.unsqueeze(0)?)?;
            (0..6)
                .map(|i| m.narrow(2, i, 1)?.squeeze(2))
                .collect::<candle_core::Result<_>>()?
        } else {
            let m = temb_proj.broadcast_add(&table)?;
            (0..6)
                .map(|i| m.narrow(1, i, 1))
                .collect::<candle_core::Result<_>>()?
        };
        let mut it = parts.into_iter();
        let mut next = || it.next().expect("six modulation parts");
        Ok(Modulation {
            shift: next(),
            scale: next(),
            gate: next(),
            c_shift: next(),
            c_scale: next(),
            c_gate: next(),
        })
    }

    /// One block; `entities` adds the entity cross-attention after the text
    /// cross-attention (see [`crate::entity_attn`]).
    fn forward(
        &self,
        x: &Tensor,
        context: &Tensor,
        temb_proj: &Tensor,
        rope: &Rope,
        entities: Option<&BlockEntities<'_>>,
    ) -> Result<Tensor> {
        let p = self.pre(x, temb_proj, rope)?;
        let o = attention(&p.q, &p.k, &p.v, self.attn1.scale(&p.q)?)?;
        self.post(&p, &o, context, entities)
    }

    /// The block up to its self-attention core: the residual stream in the compute dtype,
    /// the modulation and the self-attention's queries, keys and values.
    fn pre(&self, x: &Tensor, temb_proj: &Tensor, rope: &Rope) -> Result<BlockPre> {
        let dtype = x.dtype();
        let cd = compute_dtype(dtype);
        let m = self.modulation(temb_proj)?;
        let x32 = x.to_dtype(cd)?;
        let h = modulate(&layer_normalize(&x32, self.eps)?, &m.scale, &m.shift)?.to_dtype(dtype)?;
        let (q, k, v) = self.attn1.project(&h, None, Some(rope))?;
        Ok(BlockPre {
            x32,
            m,
            q,
            k,
            v,
            dtype,
        })
    }

    /// The rest of the block from the self-attention core's result `o`
    /// `[b, heads, s, head_dim]`: output projection, cross-attention, the entity
    /// cross-attention (when given), feed-forward.
    fn post(
        &self,
        p: &BlockPre,
        o: &Tensor,
        context: &Tensor,
        entities: Option<&BlockEntities<'_>>,
    ) -> Result<Tensor> {
        let (dtype, m) = (p.dtype, &p.m);
        let cd = compute_dtype(dtype);
        let a = self.attn1.finish(o)?;
        let x32 = (&p.x32 + a.to_dtype(cd)?.broadcast_mul(&m.gate)?)?;
        // 2. cross-attention
        let h = match &self.norm2 {
            Some(n) => n.forward(&x32)?,
            None => x32.clone(),
        }
        .to_dtype(dtype)?;
        let a = self.attn2.forward(&h, Some(context), None)?;
        let x32 = (x32 + a.to_dtype(cd)?)?;
        // 2b. entity cross-attention (adapters with entity conditioning only)
        let x32 = match entities {
            Some(e) => (&x32 + e.forward(&x32)?)?,
            None => x32,
        };
        // 3. feed-forward
        let h =
            modulate(&layer_normalize(&x32, self.eps)?, &m.c_scale, &m.c_shift)?.to_dtype(dtype)?;
        // The GELU-tanh feed-forward (`net.0.proj` → GELU → `net.2`).
        let f = self.ffn_down.forward(&self.ffn_up.forward(&h)?.gelu()?)?;
        let x32 = (x32 + f.to_dtype(cd)?.broadcast_mul(&m.c_gate)?)?;
        Ok(x32.to_dtype(dtype)?)
    }
}

/// A block's state before its self-attention core (see [`Block::pre`]).
struct BlockPre {
    x32: Tensor,
    m: Modulation,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dtype: DType,
}

/// Largest score matrix (elements) of one chunk of the attention core while training
/// with recompute: 2^24 (64 MiB in f32) whatever the length of the video.
const TRAIN_ATTENTION_CHUNK: usize = 1 << 24;

/// The attention core `softmax(q kᵀ · scale) v` on `[b, heads, s, head_dim]` without
/// gradients: the detached inputs take the bounded (chunked or fused) inference path.
fn attention_core_detached(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    attention(&q.detach(), &k.detach(), &v.detach(), scale)
}

/// The gradients of the attention core's inputs for the output gradient `g_o`, computed
/// one head and one chunk of queries at a time: each chunk's scores are recomputed with
/// gradients tracked and dropped after its backward, so memory stays at one chunk's
/// scores of at most `budget` elements (as a memory-efficient attention's backward does).
fn attention_core_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    g_o: &Tensor,
    budget: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, h, sq, d) = q.dims4()?;
    let sk = k.dim(2)?;
    let dv = v.dim(3)?;
    let n = b * h;
    let q3 = q.detach().reshape((n, sq, d))?;
    let k3 = k.detach().reshape((n, sk, d))?;
    let v3 = v.detach().reshape((n, sk, dv))?;
    let g3 = g_o.reshape((n, sq, dv))?;
    let rows = (budget / sk.max(1)).clamp(1, sq.max(1));
    let (mut gq, mut gk, mut gv) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..n {
        let kv = candle_core::Var::from_tensor(&k3.narrow(0, i, 1)?.unsqueeze(0)?)?;
        let vv = candle_core::Var::from_tensor(&v3.narrow(0, i, 1)?.unsqueeze(0)?)?;
        let (mut gk_i, mut gv_i): (Option<Tensor>, Option<Tensor>) = (None, None);
        let mut gq_i = Vec::with_capacity(sq.div_ceil(rows));
        let mut start = 0;
        while start < sq {
            let m = rows.min(sq - start);
            let qv = candle_core::Var::from_tensor(
                &q3.narrow(0, i, 1)?.narrow(1, start, m)?.unsqueeze(0)?,
            )?;
            let o = attention(qv.as_tensor(), kv.as_tensor(), vv.as_tensor(), scale)?;
            let g = g3.narrow(0, i, 1)?.narrow(1, start, m)?.unsqueeze(0)?;
            let surrogate = (o * g.to_dtype(q.dtype())?)?
                .to_dtype(DType::F32)?
                .sum_all()?;
            let grads = surrogate.backward()?;
            let take = |t: &Tensor| -> Result<Tensor> {
                match grads.get(t) {
                    Some(g) => Ok(g.clone()),
                    None => Ok(t.zeros_like()?),
                }
            };
            gq_i.push(take(qv.as_tensor())?);
            let (a, c) = (take(kv.as_tensor())?, take(vv.as_tensor())?);
            gk_i = Some(match gk_i {
                Some(x) => (x + a)?,
                None => a,
            });
            gv_i = Some(match gv_i {
                Some(x) => (x + c)?,
                None => c,
            });
            start += m;
        }
        gq.push(Tensor::cat(&gq_i, 2)?);
        gk.push(gk_i.expect("at least one chunk"));
        gv.push(gv_i.expect("at least one chunk"));
    }
    let join = |parts: Vec<Tensor>, s: usize, d: usize| -> Result<Tensor> {
        Ok(Tensor::cat(&parts, 0)?.reshape((b, h, s, d))?)
    };
    Ok((join(gq, sq, d)?, join(gk, sk, d)?, join(gv, sk, dv)?))
}

/// `x · (1 + scale) + shift`.
fn modulate(x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(shift)?)
}

/// The sinusoidal timestep embedding of diffusers' `Timesteps(flip_sin_to_cos=True,
/// downscale_freq_shift=0)`: `[cos(t·f), sin(t·f)]` with `f_i = exp(-ln(10000)·i/half)`, in f32
/// exactly as PyTorch computes it. `t` is a rank-1 f32 tensor.
fn timestep_embedding(t: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    let c = -(10000f64.ln()) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (c * i as f32 / half as f32).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let args = t
        .to_dtype(DType::F32)?
        .unsqueeze(1)?
        .broadcast_mul(&freqs)?;
    Ok(Tensor::cat(&[args.cos()?, args.sin()?], 1)?)
}

/// The Wan diffusion transformer.
pub struct WanTransformer {
    cfg: WanTransformerConfig,
    /// The patch embedding as a dense layer over flattened `c × pt × ph × pw` patches.
    patch_embedding: Linear,
    time_1: AdaptedLinear,
    time_2: AdaptedLinear,
    time_proj: AdaptedLinear,
    text_1: AdaptedLinear,
    text_2: AdaptedLinear,
    blocks: Vec<Block>,
    /// `[1, 2, dim]`.
    scale_shift_table: Tensor,
    proj_out: AdaptedLinear,
    /// Dropout generator and state shared by the adapters (see [`crate::lora`]).
    lora_shared: LoraShared,
    /// The entity cross-attention of an attached adapter, with its scale.
    entity_attn: Option<(EntityAttention, f64)>,
    dtype: DType,
    device: Device,
}

impl WanTransformer {
    /// Builds the model from a [`VarBuilder`] holding the diffusers tensor names.
    pub fn new(vb: VarBuilder, cfg: &WanTransformerConfig) -> Result<Self> {
        let d = cfg.inner_dim();
        let [pt, ph, pw] = cfg.patch_size;
        let patch_in = cfg.in_channels * pt * ph * pw;
        let pe = vb.pp("patch_embedding");
        let pw_ = pe.get((d, cfg.in_channels, pt, ph, pw), "weight")?;
        let patch_embedding =
            Linear::from_tensors(pw_.reshape((d, patch_in))?, Some(pe.get(d, "bias")?));
        let ce = vb.pp("condition_embedder");
        let blocks = (0..cfg.num_layers)
            .map(|i| Block::new(vb.pp(format!("blocks.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_embedding,
            time_1: AdaptedLinear::new(&ce, "time_embedder.linear_1", cfg.freq_dim, d)?,
            time_2: AdaptedLinear::new(&ce, "time_embedder.linear_2", d, d)?,
            time_proj: AdaptedLinear::new(&ce, "time_proj", d, 6 * d)?,
            text_1: AdaptedLinear::new(&ce, "text_embedder.linear_1", cfg.text_dim, d)?,
            text_2: AdaptedLinear::new(&ce, "text_embedder.linear_2", d, d)?,
            blocks,
            scale_shift_table: vb.get((1, 2, d), "scale_shift_table")?,
            proj_out: AdaptedLinear::new(&vb, "proj_out", d, cfg.out_channels() * pt * ph * pw)?,
            lora_shared: LoraShared::default(),
            entity_attn: None,
            cfg: cfg.clone(),
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// Loads a transformer folder (`config.json` + `diffusion_pytorch_model.safetensors` or
    /// sharded safetensors). Weights in the original Wan single-file layout
    /// (`blocks.0.self_attn.q.weight`, optionally under `model.diffusion_model.`) are read
    /// through the key map; `weights` may name such a single file to use with the folder's
    /// config.
    pub fn load(dir: &Path, weights: Option<&Path>, dtype: DType, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg: WanTransformerConfig = read_json(&cfg_path)?;
        cfg.check(&cfg_path)?;
        let src = weights.unwrap_or(dir);
        let probe = load_weights(
            src,
            &["diffusion_pytorch_model", "model"],
            dtype,
            device,
            None,
        )?;
        let layout = detect_layout(probe.names());
        let w = match layout {
            KeyLayout::Diffusers => probe,
            other => load_weights(
                src,
                &["diffusion_pytorch_model", "model"],
                dtype,
                device,
                Some(other.map()),
            )?,
        };
        let model = Self::new(w.vb(), &cfg)?;
        w.finish()?;
        Ok(model)
    }

    fn linears(&self) -> Vec<&AdaptedLinear> {
        let mut v = vec![
            &self.time_1,
            &self.time_2,
            &self.time_proj,
            &self.text_1,
            &self.text_2,
        ];
        for b in &self.blocks {
            for a in [&b.attn1, &b.attn2] {
                v.extend([&a.to_q, &a.to_k, &a.to_v, &a.to_out]);
            }
            v.extend([&b.ffn_up, &b.ffn_down]);
        }
        v.push(&self.proj_out);
        v
    }

    fn linears_mut(&mut self) -> Vec<&mut AdaptedLinear> {
        let mut v = vec![
            &mut self.time_1,
            &mut self.time_2,
            &mut self.time_proj,
            &mut self.text_1,
            &mut self.text_2,
        ];
        for b in &mut self.blocks {
            for a in [&mut b.attn1, &mut b.attn2] {
                v.extend([&mut a.to_q, &mut a.to_k, &mut a.to_v, &mut a.to_out]);
            }
            v.extend([&mut b.ffn_up, &mut b.ffn_down]);
        }
        v.push(&mut self.proj_out);
        v
    }

    /// Every dense layer that can take a LoRA adapter, as (diffusers module name, input
    /// features, output features): the condition embedder's, each block's self- and
    /// cross-attention `to_q`, `to_k`, `to_v`, `to_out.0`, the feed-forward's `ffn.net.0.proj`
    /// and `ffn.net.2`, and `proj_out`. (The patch embedding is a convolution and takes none.)
    pub fn linear_modules(&self) -> Vec<(String, usize, usize)> {
        self.linears()
            .iter()
            .map(|l| (l.name().to_string(), l.in_dim(), l.out_dim()))
            .collect()
    }

    /// The base weight `[out, in]` of the dense layer `name` (as loaded; a merged adapter is
    /// not included), if there is one.
    pub fn base_weight(&self, name: &str) -> Option<&Tensor> {
        self.linears()
            .into_iter()
            .find(|l| l.name() == name)
            .map(|l| l.base_weight())
    }

    /// Attaches the adapters of `lora` at `scale` (replacing any attached before). Every
    /// adapter must name one of [`Self::linear_modules`] with the same shape; the error lists
    /// those that do not. The adapters' variables are shared, not copied: an optimiser
    /// updating `lora`'s variables updates this model.
    pub fn add_lora(&mut self, lora: &WanLora, scale: f64) -> Result<()> {
        let known = self.linear_modules();
        let mut bad = Vec::new();
        for (name, l) in lora.layers() {
            match known.iter().find(|(n, _, _)| n == name) {
                Some((_, i, o)) if *i == l.in_dim() && *o == l.out_dim() => {}
                Some((_, i, o)) => bad.push(format!(
                    "{name}: adapter {}→{} but the layer is {i}→{o}",
                    l.in_dim(),
                    l.out_dim()
                )),
                None => bad.push(format!("{name}: no such dense layer in this transformer")),
            }
        }
        if !bad.is_empty() {
            return Err(DiffusionError::InvalidInput(format!(
                "the LoRA does not fit this transformer (a different model size or variant?): {}",
                bad.join("; ")
            )));
        }
        if let Some(e) = lora.entity_attention() {
            self.check_entity_attention(e)?;
        }
        self.remove_lora();
        let shared = self.lora_shared.clone();
        for lin in self.linears_mut() {
            if let Some(l) = lora.layers().get(lin.name()) {
                lin.attach(l.clone(), scale, lora.config().dropout, shared.clone());
            }
        }
        self.entity_attn = lora.entity_attention().map(|e| (e.clone(), scale));
        Ok(())
    }

    fn check_entity_attention(&self, e: &EntityAttention) -> Result<()> {
        let last = e.block_indices().last().copied().unwrap_or(0);
        if e.dim() != self.cfg.inner_dim() || last >= self.cfg.num_layers {
            return Err(DiffusionError::InvalidInput(format!(
                "the adapter's entity attention was made for width {} and at least {} blocks; this transformer has width {} and {} blocks (a different model size?)",
                e.dim(),
                last + 1,
                self.cfg.inner_dim(),
                self.cfg.num_layers
            )));
        }
        Ok(())
    }

    /// The entity cross-attention of the attached adapter, if it has one.
    pub fn entity_attention(&self) -> Option<&EntityAttention> {
        self.entity_attn.as_ref().map(|(e, _)| e)
    }

    /// Attaches (or detaches) an entity cross-attention alone, at `scale` (tests).
    #[cfg(test)]
    pub(crate) fn set_entity_attention(&mut self, e: Option<(EntityAttention, f64)>) {
        self.entity_attn = e;
    }

    /// Detaches every adapter (unmerging first where merged): the model is the base again,
    /// bit for bit.
    pub fn remove_lora(&mut self) {
        for lin in self.linears_mut() {
            lin.detach();
        }
        self.entity_attn = None;
    }

    /// Merges the attached adapters into the base weights (`W + scale · alpha / rank · B A`),
    /// so inference runs at the base model's speed. The original weights are kept for
    /// [`Self::unmerge_lora`]. An entity cross-attention cannot be merged: it stays a
    /// separate layer.
    pub fn merge_lora(&mut self) -> Result<()> {
        for lin in self.linears_mut() {
            lin.merge()?;
        }
        Ok(())
    }

    /// Restores the original base weights after [`Self::merge_lora`] (exactly: the originals
    /// were kept, not recomputed); the adapters stay attached and unmerged.
    pub fn unmerge_lora(&mut self) {
        for lin in self.linears_mut() {
            lin.unmerge();
        }
    }

    /// Whether adapters are attached and whether they are merged: `(attached, merged)`.
    pub fn lora_state(&self) -> (usize, usize) {
        let ls = self.linears();
        (
            ls.iter().filter(|l| l.has_adapter()).count(),
            ls.iter().filter(|l| l.is_merged()).count(),
        )
    }

    /// Turns adapter dropout on (with this generator, for one training step) or off (`None`,
    /// inference). Dropout also needs a dropout probability in the LoRA's config.
    pub fn set_lora_dropout(&self, rng: Option<reelsmith_models::SeededRng>) {
        self.lora_shared.set_rng(rng);
    }

    /// The configuration.
    pub fn config(&self) -> &WanTransformerConfig {
        &self.cfg
    }

    /// The dtype of the weights and activations.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn check_input(&self, x: &Tensor, timestep: &Tensor, context: &Tensor) -> Result<()> {
        let dims = x.dims();
        let bad = |m: String| Err(DiffusionError::InvalidInput(m));
        if dims.len() != 5 {
            return bad(format!(
                "the transformer takes latents [batch, channels, frames, height, width]; got {dims:?}"
            ));
        }
        let (b, c, f, h, w) = (dims[0], dims[1], dims[2], dims[3], dims[4]);
        if c != self.cfg.in_channels {
            return bad(format!(
                "this transformer takes {} input channels ({}); got {c}. Use the latents of the matching VAE and variant",
                self.cfg.in_channels,
                match self.cfg.in_channels {
                    16 => "Wan2.1-T2V: the noisy latent",
                    36 => "Wan2.2-I2V: noisy latent 16 + mask 4 + first-frame latent 16",
                    48 => "Wan2.2-TI2V-5B: the z48 latent",
                    _ => "as its config.json says",
                }
            ));
        }
        let [pt, ph, pw] = self.cfg.patch_size;
        if f % pt != 0 || h % ph != 0 || w % pw != 0 {
            return bad(format!(
                "latent frames×height×width {f}×{h}×{w} must be multiples of the patch size {pt}×{ph}×{pw}"
            ));
        }
        match timestep.dims() {
            [tb] if *tb == b => {}
            [tb, ts] if *tb == b && *ts == (f / pt) * (h / ph) * (w / pw) => {}
            other => {
                return bad(format!(
                "timestep must be [batch] or [batch, tokens] = [{b}] or [{b}, {}]; got {other:?}",
                (f / pt) * (h / ph) * (w / pw)
            ))
            }
        }
        match context.dims() {
            [cb, _, cd] if *cb == b && *cd == self.cfg.text_dim => {}
            other => {
                return bad(format!(
                    "text context must be [batch, tokens, {}] with batch {b}; got {other:?}",
                    self.cfg.text_dim
                ))
            }
        }
        Ok(())
    }

    /// Predicts the flow (velocity) for latents `x` `[b, in_channels, f, h, w]` at `timestep`
    /// (`[b]`, or `[b, tokens]` for per-token timesteps as in TI2V) given text embeddings
    /// `context` `[b, tokens, text_dim]`. Returns `[b, out_channels, f, h, w]`.
    pub fn forward(&self, x: &Tensor, timestep: &Tensor, context: &Tensor) -> Result<Tensor> {
        self.forward_with_entities(x, timestep, context, None)
    }

    /// [`Self::forward`] with the entity tokens of the first frame (`[b, entities, dim]`,
    /// see [`EntityTokens`]) for an attached adapter's entity cross-attention. Without
    /// entity attention attached, or with `entities` `None`, this is [`Self::forward`].
    pub fn forward_with_entities(
        &self,
        x: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        entities: Option<&EntityTokens>,
    ) -> Result<Tensor> {
        let (mut hs, inputs) = self.embed(x, timestep, context, entities)?;
        for i in 0..self.blocks.len() {
            hs = self.block_forward(i, &hs, &inputs)?;
        }
        self.head(&hs, &inputs)
    }

    /// Number of transformer blocks.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The first stage of [`Self::forward`]: the patch embedding of `x` (the hidden states
    /// `[b, seq, dim]` the blocks start from) and what every block shares (text, timestep
    /// and rotary embeddings, the encoded entity tokens). The trainer runs the stages one
    /// by one to recompute each block's activations during the backward pass.
    pub(crate) fn embed(
        &self,
        x: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        entities: Option<&EntityTokens>,
    ) -> Result<(Tensor, BlockInputs)> {
        self.check_input(x, timestep, context)?;
        let (b, c, f, h, w) = x.dims5()?;
        let [pt, ph, pw] = self.cfg.patch_size;
        let (gf, gh, gw) = (f / pt, h / ph, w / pw);
        let seq = gf * gh * gw;
        let d = self.cfg.inner_dim();
        let x = x.to_dtype(self.dtype)?;

        let rope = Rope::new(
            self.cfg.attention_head_dim,
            (gf, gh, gw),
            self.dtype,
            &self.device,
        )?;

        // Patch embedding: [b, c, gf, pt, gh, ph, gw, pw] → [b, seq, c·pt·ph·pw].
        let patches = x
            .reshape(vec![b, c, gf, pt, gh, ph, gw, pw])?
            .permute(vec![0, 2, 4, 6, 1, 3, 5, 7])?
            .reshape((b, seq, c * pt * ph * pw))?;
        let hs = self.patch_embedding.forward(&patches)?;

        // Timestep and text embeddings.
        let per_token = timestep.rank() == 2;
        let t_flat = timestep.flatten_all()?;
        let t_emb = timestep_embedding(&t_flat, self.cfg.freq_dim)?.to_dtype(self.dtype)?;
        let temb = self.time_2.forward(&silu(&self.time_1.forward(&t_emb)?)?)?;
        let cd = compute_dtype(self.dtype);
        let temb_proj = self.time_proj.forward(&silu(&temb)?)?.to_dtype(cd)?;
        let (temb, temb_proj) = if per_token {
            (
                temb.reshape((b, seq, d))?,
                temb_proj.reshape((b, seq, 6, d))?,
            )
        } else {
            (temb.reshape((b, 1, d))?, temb_proj.reshape((b, 6, d))?)
        };
        let ctx = context.to_dtype(self.dtype)?;
        let ctx = self.text_2.forward(&self.text_1.forward(&ctx)?.gelu()?)?;
        let entities = match (&self.entity_attn, entities) {
            (Some((ea, _)), Some(e)) => Some(ea.encode(e, b, cd)?),
            _ => None,
        };
        Ok((
            hs,
            BlockInputs {
                ctx,
                temb,
                temb_proj,
                rope,
                grid: [b, f, h, w],
                entities,
            },
        ))
    }

    /// Block `i` of [`Self::forward`] on hidden states `hs` `[b, seq, dim]`.
    pub(crate) fn block_forward(
        &self,
        i: usize,
        hs: &Tensor,
        inputs: &BlockInputs,
    ) -> Result<Tensor> {
        let e = self.block_entities(i, inputs);
        self.blocks[i].forward(hs, &inputs.ctx, &inputs.temb_proj, &inputs.rope, e.as_ref())
    }

    /// Block `i`'s entity cross-attention for this forward, if it has one.
    fn block_entities<'a>(
        &'a self,
        i: usize,
        inputs: &'a BlockInputs,
    ) -> Option<BlockEntities<'a>> {
        match (&self.entity_attn, &inputs.entities) {
            (Some((ea, scale)), Some(enc)) => ea.for_block(i, enc, *scale),
            _ => None,
        }
    }

    /// Block `i` without keeping its self-attention scores for a backward pass (the core
    /// runs on detached inputs): the forward pass of training with recompute.
    pub(crate) fn block_forward_bounded(
        &self,
        i: usize,
        hs: &Tensor,
        inputs: &BlockInputs,
    ) -> Result<Tensor> {
        let b = &self.blocks[i];
        let p = b.pre(hs, &inputs.temb_proj, &inputs.rope)?;
        let o = attention_core_detached(&p.q, &p.k, &p.v, b.attn1.scale(&p.q)?)?;
        b.post(&p, &o, &inputs.ctx, self.block_entities(i, inputs).as_ref())
    }

    /// The backward pass of block `i` at input `hs` for the output gradient `g_out`,
    /// recomputing the block in three parts so that no full self-attention score matrix is
    /// ever held: the part before the attention core and the part after it are run with
    /// gradients tracked and back-propagated; the core's gradients come chunk by chunk
    /// ([`attention_core_backward`]). `on_grads` receives each backward's gradients (the
    /// caller takes its parameters' and the shared inputs' from them). Returns the gradient
    /// of `hs`.
    pub(crate) fn block_backward(
        &self,
        i: usize,
        hs: &Tensor,
        inputs: &BlockInputs,
        g_out: &Tensor,
        on_grads: &mut dyn FnMut(&candle_core::backprop::GradStore) -> Result<()>,
    ) -> Result<Option<Tensor>> {
        let b = &self.blocks[i];
        let x = candle_core::Var::from_tensor(&hs.detach())?;
        let p = b.pre(x.as_tensor(), &inputs.temb_proj, &inputs.rope)?;
        let scale = b.attn1.scale(&p.q)?;
        let o = candle_core::Var::from_tensor(&attention_core_detached(&p.q, &p.k, &p.v, scale)?)?;
        // After the core.
        let e = self.block_entities(i, inputs);
        let out = b.post(&p, o.as_tensor(), &inputs.ctx, e.as_ref())?;
        let s = (out * g_out.to_dtype(hs.dtype())?)?
            .to_dtype(DType::F32)?
            .sum_all()?;
        let grads = s.backward()?;
        on_grads(&grads)?;
        let mut g_x = grads.get(x.as_tensor()).cloned();
        let Some(g_o) = grads.get(o.as_tensor()).cloned() else {
            return Ok(g_x);
        };
        drop(grads);
        // The core, chunk by chunk; then the part before it.
        let (gq, gk, gv) =
            attention_core_backward(&p.q, &p.k, &p.v, scale, &g_o, TRAIN_ATTENTION_CHUNK)?;
        let dot = |a: &Tensor, g: &Tensor| -> Result<Tensor> {
            Ok((a * g.to_dtype(a.dtype())?)?
                .to_dtype(DType::F32)?
                .sum_all()?)
        };
        let s = ((dot(&p.q, &gq)? + dot(&p.k, &gk)?)? + dot(&p.v, &gv)?)?;
        let grads = s.backward()?;
        on_grads(&grads)?;
        if let Some(g) = grads.get(x.as_tensor()) {
            g_x = Some(match g_x {
                Some(a) => (a + g)?,
                None => g.clone(),
            });
        }
        Ok(g_x)
    }

    /// The last stage of [`Self::forward`]: output head and unpatchify.
    pub(crate) fn head(&self, hs: &Tensor, inputs: &BlockInputs) -> Result<Tensor> {
        let [b, f, h, w] = inputs.grid;
        let [pt, ph, pw] = self.cfg.patch_size;
        let (gf, gh, gw) = (f / pt, h / ph, w / pw);
        // Output head: shift/scale from the table plus the time embedding.
        let cd = compute_dtype(self.dtype);
        let table = self.scale_shift_table.to_dtype(cd)?;
        let temb = inputs.temb.to_dtype(cd)?;
        let shift = temb.broadcast_add(&table.narrow(1, 0, 1)?)?;
        let scale = temb.broadcast_add(&table.narrow(1, 1, 1)?)?;
        let hs32 = hs.to_dtype(cd)?;
        let hs = modulate(&layer_normalize(&hs32, self.cfg.eps)?, &scale, &shift)?
            .to_dtype(self.dtype)?;
        let out = self.proj_out.forward(&hs)?;

        // Unpatchify: [b, gf, gh, gw, pt, ph, pw, c_out] → [b, c_out, f, h, w].
        let co = self.cfg.out_channels();
        Ok(out
            .reshape(vec![b, gf, gh, gw, pt, ph, pw, co])?
            .permute(vec![0, 7, 1, 4, 2, 5, 3, 6])?
            .reshape((b, co, f, h, w))?)
    }
}

/// What every block of one forward shares (see [`WanTransformer::embed`]).
#[derive(Clone)]
pub(crate) struct BlockInputs {
    /// Projected text embeddings `[b, tokens, dim]`.
    pub(crate) ctx: Tensor,
    /// Time embedding `[b, 1, dim]` or `[b, seq, dim]` (the output head's modulation).
    pub(crate) temb: Tensor,
    /// The blocks' modulation input `[b, 6, dim]` or `[b, seq, 6, dim]`.
    pub(crate) temb_proj: Tensor,
    rope: Rope,
    /// `[b, f, h, w]` of the latents.
    grid: [usize; 4],
    /// The entity tokens, projected once for all blocks (adapters with entity attention).
    pub(crate) entities: Option<EncodedEntities>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::grad_tests::grad_check;
    use crate::rng::NoiseGenerator;
    use candle_core::Shape;
    use candle_nn::var_builder::SimpleBackend;
    use std::collections::HashMap;

    /// Seeded random tensors by name (norm weights near 1), with some names overridden.
    struct RandomBackend {
        overrides: HashMap<String, Tensor>,
    }

    fn fnv(s: &str) -> u64 {
        s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        })
    }

    pub(crate) fn random_tensor(name: &str, shape: &[usize], dtype: DType) -> Tensor {
        let mut g = NoiseGenerator::new(fnv(name));
        let n: usize = shape.iter().product();
        let fan_in = if shape.len() >= 2 { n / shape[0] } else { 1 };
        let (scale, offset) = if name.contains("norm") {
            (0.2, 1.0)
        } else if shape.len() >= 2 && !name.contains("scale_shift_table") {
            (1.0 / (fan_in as f64).sqrt(), 0.0)
        } else {
            (0.2, 0.0)
        };
        ((g.randn(shape, dtype, &Device::Cpu).unwrap() * scale).unwrap() + offset).unwrap()
    }

    impl SimpleBackend for RandomBackend {
        fn get(
            &self,
            s: Shape,
            name: &str,
            _: candle_nn::Init,
            dtype: DType,
            _: &Device,
        ) -> candle_core::Result<Tensor> {
            Ok(match self.overrides.get(name) {
                Some(t) => t.clone(),
                None => random_tensor(name, s.dims(), dtype),
            })
        }
        fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
            candle_core::bail!("no shape for {name}")
        }
        fn contains_tensor(&self, _: &str) -> bool {
            true
        }
    }

    fn tiny_config(in_channels: usize) -> WanTransformerConfig {
        serde_json::from_value(serde_json::json!({
            "num_attention_heads": 2, "attention_head_dim": 6, "in_channels": in_channels,
            "out_channels": 4, "text_dim": 5, "freq_dim": 8, "ffn_dim": 10, "num_layers": 1
        }))
        .unwrap()
    }

    fn build(cfg: &WanTransformerConfig, overrides: HashMap<String, Tensor>) -> WanTransformer {
        let vb = VarBuilder::from_backend(
            Box::new(RandomBackend { overrides }),
            DType::F64,
            Device::Cpu,
        );
        WanTransformer::new(vb, cfg).unwrap()
    }

    /// The largest absolute difference of two tensors of the same shape.
    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// The chunked backward of the attention core equals autograd through the whole core,
    /// with several query chunks per head.
    #[test]
    fn chunked_attention_backward_equals_autograd() {
        let mut g = NoiseGenerator::new(5);
        let dev = Device::Cpu;
        let q = g.randn((2, 3, 7, 4), DType::F64, &dev).unwrap();
        let k = g.randn((2, 3, 5, 4), DType::F64, &dev).unwrap();
        let v = g.randn((2, 3, 5, 6), DType::F64, &dev).unwrap();
        let g_o = g.randn((2, 3, 7, 6), DType::F64, &dev).unwrap();
        let (qv, kv, vv) = (
            candle_core::Var::from_tensor(&q).unwrap(),
            candle_core::Var::from_tensor(&k).unwrap(),
            candle_core::Var::from_tensor(&v).unwrap(),
        );
        let o = attention(qv.as_tensor(), kv.as_tensor(), vv.as_tensor(), 0.5).unwrap();
        let grads = (o * &g_o).unwrap().sum_all().unwrap().backward().unwrap();
        // 2 score rows of 5 keys per chunk: 4 chunks per head.
        let (gq, gk, gv) = attention_core_backward(&q, &k, &v, 0.5, &g_o, 10).unwrap();
        for (want, got) in [(&qv, gq), (&kv, gk), (&vv, gv)] {
            let d = max_abs_diff(grads.get(want.as_tensor()).unwrap(), &got);
            assert!(d < 1e-12, "{d}");
        }
    }

    /// With a gradient-tracked input every layer takes its composed, differentiable path
    /// (training); without, the fused inference kernels. Both give the same output.
    #[test]
    fn training_path_equals_inference_path() {
        let cfg: WanTransformerConfig = serde_json::from_value(serde_json::json!({
            "num_attention_heads": 2, "attention_head_dim": 12, "in_channels": 4,
            "out_channels": 4, "text_dim": 8, "freq_dim": 16, "ffn_dim": 32, "num_layers": 2
        }))
        .unwrap();
        let vb = VarBuilder::from_backend(
            Box::new(RandomBackend {
                overrides: HashMap::new(),
            }),
            DType::F32,
            Device::Cpu,
        );
        let m = WanTransformer::new(vb, &cfg).unwrap();
        let mut g = NoiseGenerator::new(12);
        let x = g.randn((1, 4, 3, 4, 6), DType::F32, &Device::Cpu).unwrap();
        let ctx = g.randn((1, 5, 8), DType::F32, &Device::Cpu).unwrap();
        let t = Tensor::new(&[640f32], &Device::Cpu).unwrap();
        let fused = m.forward(&x, &t, &ctx).unwrap();
        let xv = candle_core::Var::from_tensor(&x).unwrap();
        let composed = m.forward(xv.as_tensor(), &t, &ctx).unwrap();
        assert!(composed.track_op() && !fused.track_op());
        let d = max_abs_diff(&fused, &composed);
        assert!(d < 1e-5, "{d}");
    }

    /// The entity cross-attention inside the transformer (input projection, geometry
    /// encoding, q/k/v/out of the block, masked softmax) has true gradients with respect to
    /// the entity embeddings, their geometry, the hidden states and every weight.
    #[test]
    fn entity_attention_has_true_gradients() {
        use crate::entity_attn::{EntityAttention, EntityAttnConfig, EntityTokens};
        let cfg = tiny_config(3);
        let ecfg = EntityAttnConfig {
            entity_dim: 5,
            every: 1,
            heads: 2,
            ..Default::default()
        };
        let mut g = NoiseGenerator::new(21);
        let x = g.randn((1, 3, 2, 2, 4), DType::F64, &Device::Cpu).unwrap();
        let ctx = g.randn((1, 3, 5), DType::F64, &Device::Cpu).unwrap();
        let t = Tensor::new(&[700f64], &Device::Cpu).unwrap();
        let emb = g.randn((1, 3, 5), DType::F64, &Device::Cpu).unwrap();
        let geo =
            ((g.randn((1, 3, 3), DType::F64, &Device::Cpu).unwrap() * 0.2).unwrap() + 0.5).unwrap();
        // The third slot is padding.
        let mask = Tensor::new(&[[1f64, 1.0, 0.0]], &Device::Cpu).unwrap();
        let mut names: Vec<(String, Vec<usize>)> = vec![
            ("proj_in.weight".into(), vec![12, 5]),
            ("proj_in.bias".into(), vec![12]),
            ("geometry.weight".into(), vec![12, 3]),
        ];
        for l in ["to_q", "to_k", "to_v", "to_out"] {
            names.push((format!("blocks.0.{l}.weight"), vec![12, 12]));
            // (no key bias: softmax would ignore it)
            if l != "to_k" {
                names.push((format!("blocks.0.{l}.bias"), vec![12]));
            }
        }
        let mut inputs = vec![x, emb, geo];
        for (n, s) in &names {
            inputs.push(random_tensor(n, s, DType::F64));
        }
        grad_check(
            &|ts| {
                let map: HashMap<String, Tensor> = names
                    .iter()
                    .zip(&ts[3..])
                    .map(|((n, _), t)| (n.clone(), t.clone()))
                    .collect();
                let vb = VarBuilder::from_tensors(map, DType::F64, &Device::Cpu);
                let ea = EntityAttention::new(vb, &ecfg, &cfg)?;
                let mut m = build(&cfg, HashMap::new());
                m.set_entity_attention(Some((ea, 1.0)));
                let tokens = EntityTokens {
                    embeddings: ts[1].clone(),
                    geometry: Some(ts[2].clone()),
                    mask: Some(mask.clone()),
                };
                m.forward_with_entities(&ts[0], &t, &ctx, Some(&tokens))
            },
            &inputs,
            12,
        );
    }

    /// The whole transformer (patch embedding, modulation, both attentions with RMS q/k norms
    /// and rotary embedding, feed-forward, head) has true gradients with respect to its input
    /// and to weights of every kind, as LoRA training needs.
    #[test]
    fn transformer_has_true_gradients() {
        for per_token in [false, true] {
            let cfg = tiny_config(3);
            let mut g = NoiseGenerator::new(11);
            let x = g.randn((1, 3, 2, 2, 4), DType::F64, &Device::Cpu).unwrap();
            let ctx = g.randn((1, 3, 5), DType::F64, &Device::Cpu).unwrap();
            let t = if per_token {
                Tensor::new(&[[0f64, 0.0, 700.0, 700.0]], &Device::Cpu).unwrap()
            } else {
                Tensor::new(&[700f64], &Device::Cpu).unwrap()
            };
            let names = [
                ("blocks.0.attn1.to_q.weight", vec![12, 12]),
                ("blocks.0.attn1.norm_k.weight", vec![12]),
                ("blocks.0.attn2.to_v.weight", vec![12, 12]),
                ("blocks.0.norm2.weight", vec![12]),
                ("blocks.0.ffn.net.0.proj.weight", vec![10, 12]),
                ("blocks.0.scale_shift_table", vec![1, 6, 12]),
                (
                    "condition_embedder.time_embedder.linear_1.weight",
                    vec![12, 8],
                ),
            ];
            let mut inputs = vec![x, ctx];
            for (n, s) in &names {
                inputs.push(random_tensor(n, s, DType::F64));
            }
            grad_check(
                &|ts| {
                    let overrides = names
                        .iter()
                        .zip(&ts[2..])
                        .map(|((n, _), t)| (n.to_string(), t.clone()))
                        .collect();
                    build(&cfg, overrides).forward(&ts[0], &t, &ts[1])
                },
                &inputs,
                12,
            );
        }
    }
}
