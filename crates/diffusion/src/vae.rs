//! The Wan video VAE (`AutoencoderKLWan` in diffusers): Wan 2.1 (z 16, 8× spatial and 4×
//! temporal compression) and Wan 2.2 (z 48, 2×2 patchified input, residual down/up blocks,
//! 16× spatial).
//!
//! Every 3D convolution is causal in time. As in diffusers, a video is encoded as its first
//! frame alone and then chunks of four frames, and latents are decoded one latent frame at a
//! time; a feature cache carries the last input frames of each causal convolution from one
//! chunk to the next, so memory stays bounded by a chunk whatever the video's length.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::error::{DiffusionError, Result};
use crate::layers::{attention, compute_dtype, silu, Conv2d, Conv3d};
use crate::loading::{load_weights, read_json};

fn default_base() -> usize {
    96
}
fn default_z() -> usize {
    16
}
fn default_mult() -> Vec<usize> {
    vec![1, 2, 4, 4]
}
fn default_res() -> usize {
    2
}
fn default_tdown() -> Vec<bool> {
    vec![false, true, true]
}
fn default_rgb() -> usize {
    3
}
fn default_st() -> usize {
    4
}
fn default_ss() -> usize {
    8
}
fn wan21_mean() -> Vec<f64> {
    vec![
        -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715,
        0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
    ]
}
fn wan21_std() -> Vec<f64> {
    vec![
        2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652,
        1.5579, 1.6382, 1.1253, 2.8251, 1.916,
    ]
}

/// The VAE's `config.json` (diffusers field names and defaults).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WanVaeConfig {
    /// Channels of the encoder's first level.
    #[serde(default = "default_base")]
    pub base_dim: usize,
    /// Channels of the decoder's last level (defaults to `base_dim`).
    #[serde(default)]
    pub decoder_base_dim: Option<usize>,
    /// Latent channels (16 for Wan 2.1, 48 for Wan 2.2).
    #[serde(default = "default_z")]
    pub z_dim: usize,
    /// Channel multipliers per level.
    #[serde(default = "default_mult")]
    pub dim_mult: Vec<usize>,
    /// Residual blocks per level.
    #[serde(default = "default_res")]
    pub num_res_blocks: usize,
    /// Scales at which the encoder inserts attention blocks (empty for Wan).
    #[serde(default)]
    pub attn_scales: Vec<f64>,
    /// Which levels also halve time (the decoder mirrors it).
    #[serde(default = "default_tdown")]
    pub temperal_downsample: Vec<bool>,
    /// Per-channel latent means (latents are normalised as `(z - mean) / std`).
    #[serde(default = "wan21_mean")]
    pub latents_mean: Vec<f64>,
    /// Per-channel latent standard deviations.
    #[serde(default = "wan21_std")]
    pub latents_std: Vec<f64>,
    /// Wan 2.2's residual down/up blocks.
    #[serde(default)]
    pub is_residual: bool,
    /// Input channels of the encoder (12 for the patchified Wan 2.2 VAE).
    #[serde(default = "default_rgb")]
    pub in_channels: usize,
    /// Output channels of the decoder.
    #[serde(default = "default_rgb")]
    pub out_channels: usize,
    /// Pixel patch size folded into channels before encoding (2 for Wan 2.2).
    #[serde(default)]
    pub patch_size: Option<usize>,
    /// Frames per latent frame (after the first).
    #[serde(default = "default_st")]
    pub scale_factor_temporal: usize,
    /// Pixels per latent pixel.
    #[serde(default = "default_ss")]
    pub scale_factor_spatial: usize,
}

impl WanVaeConfig {
    fn check(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Err(DiffusionError::config(path, m));
        if self.dim_mult.is_empty() || self.temperal_downsample.len() + 1 < self.dim_mult.len() {
            return bad(format!(
                "dim_mult ({:?}) and temperal_downsample ({:?}) do not fit together",
                self.dim_mult, self.temperal_downsample
            ));
        }
        if self.latents_mean.len() != self.z_dim || self.latents_std.len() != self.z_dim {
            return bad(format!(
                "latents_mean and latents_std must have z_dim = {} entries",
                self.z_dim
            ));
        }
        let p = self.patch_size.unwrap_or(1);
        if self.in_channels != 3 * p * p || self.out_channels != 3 * p * p {
            return bad(format!(
                "in/out channels {}/{} do not fit RGB with patch size {p}",
                self.in_channels, self.out_channels
            ));
        }
        Ok(())
    }

    /// Latent frames of a clip of `frames` frames (`frames` ≥ 1).
    pub fn latent_frames(&self, frames: usize) -> usize {
        (frames - 1) / self.scale_factor_temporal + 1
    }
}

// ---------------------------------------------------------------------------------------------
// Feature cache
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
enum Slot {
    Empty,
    /// The first chunk went through an upsampling layer without its time convolution.
    Rep,
    Frames(Tensor),
}

/// Per-convolution memory of the last input frames across chunks.
struct FeatCache {
    slots: Vec<Slot>,
    idx: usize,
}

impl FeatCache {
    fn new() -> Self {
        Self {
            slots: Vec::new(),
            idx: 0,
        }
    }

    /// Starts a new chunk: convolutions take their slots from the first again.
    fn begin_chunk(&mut self) {
        self.idx = 0;
    }

    /// The next convolution's slot.
    fn next(&mut self) -> usize {
        let i = self.idx;
        self.idx += 1;
        if self.slots.len() <= i {
            self.slots.push(Slot::Empty);
        }
        i
    }
}

/// The last `n` frames (fewer if the tensor is shorter).
fn last_frames(x: &Tensor, n: usize) -> Result<Tensor> {
    let t = x.dim(2)?;
    let k = n.min(t);
    Ok(x.narrow(2, t - k, k)?.contiguous()?)
}

// ---------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------

/// A 3D convolution zero-padded causally in time (all time padding in front).
#[derive(Clone)]
pub(crate) struct CausalConv3d {
    conv: Conv3d,
    pad_t: usize,
}

impl CausalConv3d {
    /// `kernel` and `padding` as (time, space); the time padding `p` becomes `2p` frames in
    /// front.
    fn new(
        vb: VarBuilder,
        in_c: usize,
        out_c: usize,
        kernel: (usize, usize),
        stride_t: usize,
        padding: (usize, usize),
    ) -> Result<Self> {
        Ok(Self {
            conv: Conv3d::new(vb, in_c, out_c, kernel, (stride_t, 1), padding.1)?,
            pad_t: 2 * padding.0,
        })
    }

    /// Convolves `x`; `cache` (frames preceding `x`) replaces as much of the zero time padding.
    pub(crate) fn forward(&self, x: &Tensor, cache: Option<&Tensor>) -> Result<Tensor> {
        let mut x = x.clone();
        let mut pad = self.pad_t;
        if let (Some(c), true) = (cache, pad > 0) {
            x = Tensor::cat(&[c, &x], 2)?;
            pad = pad.saturating_sub(c.dim(2)?);
        }
        if pad > 0 {
            let (b, c, _, h, w) = x.dims5()?;
            let z = Tensor::zeros((b, c, pad, h, w), x.dtype(), x.device())?;
            x = Tensor::cat(&[&z, &x], 2)?;
        }
        self.conv.forward(&x)
    }

    /// Convolves one chunk with the feature cache: the chunk's last two input frames (with
    /// the previous chunk's last frame when the chunk has one) are kept for the next chunk.
    fn forward_cached(&self, x: &Tensor, cache: Option<&mut FeatCache>) -> Result<Tensor> {
        let Some(cache) = cache else {
            return self.forward(x, None);
        };
        let i = cache.next();
        let prev = match &cache.slots[i] {
            Slot::Frames(t) => Some(t.clone()),
            _ => None,
        };
        let mut keep = last_frames(x, 2)?;
        if keep.dim(2)? < 2 {
            if let Some(p) = &prev {
                keep = Tensor::cat(&[&last_frames(p, 1)?, &keep], 2)?;
            }
        }
        let out = self.forward(x, prev.as_ref())?;
        cache.slots[i] = Slot::Frames(keep);
        Ok(out)
    }
}

/// Wan's channel RMS norm: `x / ‖x‖₂ (over channels) · √C · γ`.
#[derive(Clone)]
struct ChannelRmsNorm {
    gamma: Tensor,
    scale: f64,
}

impl ChannelRmsNorm {
    /// `images`: γ is `[C, 1, 1]` (for `[n, C, h, w]` input), else `[C, 1, 1, 1]`.
    fn new(vb: VarBuilder, dim: usize, images: bool) -> Result<Self> {
        let gamma = if images {
            vb.get((dim, 1, 1), "gamma")?
        } else {
            vb.get((dim, 1, 1, 1), "gamma")?
        };
        Ok(Self {
            gamma,
            scale: (dim as f64).sqrt(),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let xf = x.to_dtype(compute_dtype(dtype))?;
        let norm = xf.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        let y = (xf.broadcast_div(&norm)? * self.scale)?.to_dtype(dtype)?;
        Ok(y.broadcast_mul(&self.gamma)?)
    }
}

#[derive(Clone)]
pub(crate) struct ResidualBlock {
    norm1: ChannelRmsNorm,
    conv1: CausalConv3d,
    norm2: ChannelRmsNorm,
    conv2: CausalConv3d,
    shortcut: Option<CausalConv3d>,
}

impl ResidualBlock {
    pub(crate) fn new(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(Self {
            norm1: ChannelRmsNorm::new(vb.pp("norm1"), in_dim, false)?,
            conv1: CausalConv3d::new(vb.pp("conv1"), in_dim, out_dim, (3, 3), 1, (1, 1))?,
            norm2: ChannelRmsNorm::new(vb.pp("norm2"), out_dim, false)?,
            conv2: CausalConv3d::new(vb.pp("conv2"), out_dim, out_dim, (3, 3), 1, (1, 1))?,
            shortcut: if in_dim != out_dim {
                Some(CausalConv3d::new(
                    vb.pp("conv_shortcut"),
                    in_dim,
                    out_dim,
                    (1, 1),
                    1,
                    (0, 0),
                )?)
            } else {
                None
            },
        })
    }

    fn forward(&self, x: &Tensor, mut cache: Option<&mut FeatCache>) -> Result<Tensor> {
        let h = match &self.shortcut {
            Some(s) => s.forward(x, None)?,
            None => x.clone(),
        };
        let y = silu(&self.norm1.forward(x)?)?;
        let y = self.conv1.forward_cached(&y, cache.as_deref_mut())?;
        let y = silu(&self.norm2.forward(&y)?)?;
        let y = self.conv2.forward_cached(&y, cache)?;
        Ok((y + h)?)
    }
}

/// Single-head self-attention over the pixels of each frame.
#[derive(Clone)]
struct AttentionBlock {
    norm: ChannelRmsNorm,
    to_qkv: Conv2d,
    proj: Conv2d,
}

impl AttentionBlock {
    fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        Ok(Self {
            norm: ChannelRmsNorm::new(vb.pp("norm"), dim, true)?,
            to_qkv: Conv2d::new(vb.pp("to_qkv"), dim, 3 * dim, 1, 1, 0)?,
            proj: Conv2d::new(vb.pp("proj"), dim, dim, 1, 1, 0)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t, h, w) = x.dims5()?;
        let frames = x.permute((0, 2, 1, 3, 4))?.reshape((b * t, c, h, w))?;
        let qkv = self.to_qkv.forward(&self.norm.forward(&frames)?)?;
        let qkv = qkv.reshape((b * t, 3 * c, h * w))?.transpose(1, 2)?;
        let part = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i * c, c)?
                .contiguous()?
                .reshape((b * t, 1, h * w, c))?)
        };
        let o = attention(&part(0)?, &part(1)?, &part(2)?, 1.0 / (c as f64).sqrt())?;
        let o = o
            .reshape((b * t, h * w, c))?
            .transpose(1, 2)?
            .reshape((b * t, c, h, w))?;
        let o = self.proj.forward(&o)?;
        let o = o.reshape((b, t, c, h, w))?.permute((0, 2, 1, 3, 4))?;
        Ok((o + x)?)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ResampleMode {
    Up2d,
    Up3d,
    Down2d,
    Down3d,
}

#[derive(Clone)]
struct Resample {
    mode: ResampleMode,
    conv: Conv2d,
    time_conv: Option<CausalConv3d>,
}

impl Resample {
    fn new(vb: VarBuilder, dim: usize, mode: ResampleMode, up_out: usize) -> Result<Self> {
        let (conv, time_conv) = match mode {
            ResampleMode::Up2d => (
                Conv2d::new(vb.pp("resample.1"), dim, up_out, 3, 1, 1)?,
                None,
            ),
            ResampleMode::Up3d => (
                Conv2d::new(vb.pp("resample.1"), dim, up_out, 3, 1, 1)?,
                Some(CausalConv3d::new(
                    vb.pp("time_conv"),
                    dim,
                    2 * dim,
                    (3, 1),
                    1,
                    (1, 0),
                )?),
            ),
            ResampleMode::Down2d => (Conv2d::new(vb.pp("resample.1"), dim, dim, 3, 2, 0)?, None),
            ResampleMode::Down3d => (
                Conv2d::new(vb.pp("resample.1"), dim, dim, 3, 2, 0)?,
                Some(CausalConv3d::new(
                    vb.pp("time_conv"),
                    dim,
                    dim,
                    (3, 1),
                    2,
                    (0, 0),
                )?),
            ),
        };
        Ok(Self {
            mode,
            conv,
            time_conv,
        })
    }

    fn forward(&self, x: &Tensor, cache: Option<&mut FeatCache>) -> Result<Tensor> {
        let mut x = x.clone();
        let mut cache = cache;
        if self.mode == ResampleMode::Up3d {
            if let (Some(c), Some(tc)) = (cache.as_deref_mut(), &self.time_conv) {
                let i = c.next();
                match c.slots[i].clone() {
                    Slot::Empty => c.slots[i] = Slot::Rep,
                    slot => {
                        let mut keep = last_frames(&x, 2)?;
                        if keep.dim(2)? < 2 {
                            let front = match &slot {
                                Slot::Frames(p) => last_frames(p, 1)?,
                                _ => keep.zeros_like()?,
                            };
                            keep = Tensor::cat(&[&front, &keep], 2)?;
                        }
                        let y = match &slot {
                            Slot::Frames(p) => tc.forward(&x, Some(p))?,
                            _ => tc.forward(&x, None)?,
                        };
                        c.slots[i] = Slot::Frames(keep);
                        // [b, 2c, t, h, w] → frames of the two halves interleaved: [b, c, 2t, h, w].
                        let (b, c2, t, h, w) = y.dims5()?;
                        let ch = c2 / 2;
                        x = y
                            .reshape(vec![b, 2, ch, t, h, w])?
                            .permute(vec![0, 2, 3, 1, 4, 5])?
                            .reshape((b, ch, 2 * t, h, w))?;
                    }
                }
            }
        }
        let (b, c, t, h, w) = x.dims5()?;
        let frames = x.permute((0, 2, 1, 3, 4))?.reshape((b * t, c, h, w))?;
        let y = match self.mode {
            ResampleMode::Up2d | ResampleMode::Up3d => self
                .conv
                .forward(&frames.upsample_nearest2d(2 * h, 2 * w)?)?,
            ResampleMode::Down2d | ResampleMode::Down3d => {
                let padded = frames.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
                self.conv.forward(&padded)?
            }
        };
        let (_, oc, oh, ow) = y.dims4()?;
        let mut x = y
            .reshape((b, t, oc, oh, ow))?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()?;
        if self.mode == ResampleMode::Down3d {
            if let (Some(c), Some(tc)) = (cache, &self.time_conv) {
                let i = c.next();
                match c.slots[i].clone() {
                    Slot::Frames(p) => {
                        let keep = last_frames(&x, 1)?;
                        x = tc.forward(&Tensor::cat(&[&last_frames(&p, 1)?, &x], 2)?, None)?;
                        c.slots[i] = Slot::Frames(keep);
                    }
                    _ => c.slots[i] = Slot::Frames(x.clone()),
                }
            }
        }
        Ok(x)
    }
}

/// Wan 2.2's parameter-free shortcut of a downsampling block: space and time folded into
/// channels, then channel groups averaged.
#[derive(Clone)]
struct AvgDown3d {
    out_c: usize,
    ft: usize,
    fs: usize,
}

impl AvgDown3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, t, h, w) = x.dims5()?;
        let pad_t = (self.ft - t % self.ft) % self.ft;
        let x = if pad_t > 0 {
            let z = Tensor::zeros((b, c, pad_t, h, w), x.dtype(), x.device())?;
            Tensor::cat(&[&z, x], 2)?
        } else {
            x.clone()
        };
        let t = t + pad_t;
        let (ft, fs) = (self.ft, self.fs);
        let (tt, hh, ww) = (t / ft, h / fs, w / fs);
        let factor = ft * fs * fs;
        let group = c * factor / self.out_c;
        let y = x
            .reshape(vec![b, c, tt, ft, hh, fs, ww, fs])?
            .permute(vec![0, 1, 3, 5, 7, 2, 4, 6])?
            .reshape(vec![b, self.out_c, group, tt, hh, ww])?;
        Ok(y.mean(2)?)
    }
}

/// Wan 2.2's parameter-free shortcut of an upsampling block: channels repeated and unfolded
/// into space and time.
#[derive(Clone)]
struct DupUp3d {
    out_c: usize,
    ft: usize,
    fs: usize,
    repeats: usize,
}

impl DupUp3d {
    fn forward(&self, x: &Tensor, first_chunk: bool) -> Result<Tensor> {
        let (b, c, t, h, w) = x.dims5()?;
        let (ft, fs) = (self.ft, self.fs);
        // repeat_interleave over channels.
        let x = x
            .unsqueeze(2)?
            .broadcast_as(vec![b, c, self.repeats, t, h, w])?
            .reshape(vec![b, c * self.repeats, t, h, w])?;
        let y = x
            .reshape(vec![b, self.out_c, ft, fs, fs, t, h, w])?
            .permute(vec![0, 1, 5, 2, 6, 3, 7, 4])?
            .reshape((b, self.out_c, t * ft, h * fs, w * fs))?;
        if first_chunk && ft > 1 {
            Ok(y.narrow(2, ft - 1, t * ft - (ft - 1))?)
        } else {
            Ok(y)
        }
    }
}

#[derive(Clone)]
struct MidBlock {
    res0: ResidualBlock,
    attn: AttentionBlock,
    res1: ResidualBlock,
}

impl MidBlock {
    fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        Ok(Self {
            res0: ResidualBlock::new(vb.pp("resnets.0"), dim, dim)?,
            attn: AttentionBlock::new(vb.pp("attentions.0"), dim)?,
            res1: ResidualBlock::new(vb.pp("resnets.1"), dim, dim)?,
        })
    }

    fn forward(&self, x: &Tensor, mut cache: Option<&mut FeatCache>) -> Result<Tensor> {
        let x = self.res0.forward(x, cache.as_deref_mut())?;
        let x = self.attn.forward(&x)?;
        self.res1.forward(&x, cache)
    }
}

#[derive(Clone)]
enum DownLayer {
    Res(ResidualBlock),
    Attn(AttentionBlock),
    Resample(Resample),
    /// Wan 2.2: residual blocks, optional downsampling, plus the averaging shortcut.
    ResidualDown {
        resnets: Vec<ResidualBlock>,
        down: Option<Resample>,
        shortcut: AvgDown3d,
    },
}

#[derive(Clone)]
struct Encoder {
    conv_in: CausalConv3d,
    layers: Vec<DownLayer>,
    mid: MidBlock,
    norm_out: ChannelRmsNorm,
    conv_out: CausalConv3d,
}

impl Encoder {
    fn new(vb: VarBuilder, cfg: &WanVaeConfig) -> Result<Self> {
        let base = cfg.base_dim;
        let dims: Vec<usize> = std::iter::once(1)
            .chain(cfg.dim_mult.iter().copied())
            .map(|m| base * m)
            .collect();
        let levels = cfg.dim_mult.len();
        let mut layers = Vec::new();
        let mut scale = 1.0f64;
        let vbd = vb.pp("down_blocks");
        for i in 0..levels {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            let last = i == levels - 1;
            let tdown = !last && cfg.temperal_downsample.get(i).copied().unwrap_or(false);
            if cfg.is_residual {
                let vbi = vbd.pp(i);
                let mut resnets = Vec::new();
                for j in 0..cfg.num_res_blocks {
                    resnets.push(ResidualBlock::new(
                        vbi.pp(format!("resnets.{j}")),
                        in_dim,
                        out_dim,
                    )?);
                    in_dim = out_dim;
                }
                let down = if last {
                    None
                } else {
                    let mode = if tdown {
                        ResampleMode::Down3d
                    } else {
                        ResampleMode::Down2d
                    };
                    Some(Resample::new(
                        vbi.pp("downsampler"),
                        out_dim,
                        mode,
                        out_dim,
                    )?)
                };
                let (ft, fs) = (if tdown { 2 } else { 1 }, if last { 1 } else { 2 });
                if !(dims[i] * ft * fs * fs).is_multiple_of(out_dim) {
                    return Err(DiffusionError::config(
                        "vae/config.json",
                        "channel counts of a residual down block do not divide",
                    ));
                }
                layers.push(DownLayer::ResidualDown {
                    resnets,
                    down,
                    shortcut: AvgDown3d {
                        out_c: out_dim,
                        ft,
                        fs,
                    },
                });
            } else {
                for _ in 0..cfg.num_res_blocks {
                    layers.push(DownLayer::Res(ResidualBlock::new(
                        vbd.pp(layers.len()),
                        in_dim,
                        out_dim,
                    )?));
                    if cfg.attn_scales.iter().any(|s| (s - scale).abs() < 1e-12) {
                        layers.push(DownLayer::Attn(AttentionBlock::new(
                            vbd.pp(layers.len()),
                            out_dim,
                        )?));
                    }
                    in_dim = out_dim;
                }
                if !last {
                    let mode = if tdown {
                        ResampleMode::Down3d
                    } else {
                        ResampleMode::Down2d
                    };
                    layers.push(DownLayer::Resample(Resample::new(
                        vbd.pp(layers.len()),
                        out_dim,
                        mode,
                        out_dim,
                    )?));
                    scale /= 2.0;
                }
            }
        }
        let out_dim = dims[levels];
        Ok(Self {
            conv_in: CausalConv3d::new(
                vb.pp("conv_in"),
                cfg.in_channels,
                dims[0],
                (3, 3),
                1,
                (1, 1),
            )?,
            layers,
            mid: MidBlock::new(vb.pp("mid_block"), out_dim)?,
            norm_out: ChannelRmsNorm::new(vb.pp("norm_out"), out_dim, false)?,
            conv_out: CausalConv3d::new(
                vb.pp("conv_out"),
                out_dim,
                2 * cfg.z_dim,
                (3, 3),
                1,
                (1, 1),
            )?,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let mut x = self.conv_in.forward_cached(x, Some(cache))?;
        for layer in &self.layers {
            x = match layer {
                DownLayer::Res(r) => r.forward(&x, Some(cache))?,
                DownLayer::Attn(a) => a.forward(&x)?,
                DownLayer::Resample(r) => r.forward(&x, Some(cache))?,
                DownLayer::ResidualDown {
                    resnets,
                    down,
                    shortcut,
                } => {
                    let skip = shortcut.forward(&x)?;
                    let mut y = x;
                    for r in resnets {
                        y = r.forward(&y, Some(cache))?;
                    }
                    if let Some(d) = down {
                        y = d.forward(&y, Some(cache))?;
                    }
                    (y + skip)?
                }
            };
        }
        let x = self.mid.forward(&x, Some(cache))?;
        let x = silu(&self.norm_out.forward(&x)?)?;
        self.conv_out.forward_cached(&x, Some(cache))
    }
}

#[derive(Clone)]
struct UpBlock {
    resnets: Vec<ResidualBlock>,
    up: Option<Resample>,
    /// Wan 2.2's duplicating shortcut.
    shortcut: Option<DupUp3d>,
}

impl UpBlock {
    fn forward(&self, x: &Tensor, cache: &mut FeatCache, first_chunk: bool) -> Result<Tensor> {
        let mut y = x.clone();
        for r in &self.resnets {
            y = r.forward(&y, Some(cache))?;
        }
        if let Some(u) = &self.up {
            y = u.forward(&y, Some(cache))?;
        }
        if let Some(s) = &self.shortcut {
            y = (y + s.forward(x, first_chunk)?)?;
        }
        Ok(y)
    }
}

#[derive(Clone)]
struct Decoder {
    conv_in: CausalConv3d,
    mid: MidBlock,
    blocks: Vec<UpBlock>,
    norm_out: ChannelRmsNorm,
    conv_out: CausalConv3d,
}

impl Decoder {
    fn new(vb: VarBuilder, cfg: &WanVaeConfig) -> Result<Self> {
        let base = cfg.decoder_base_dim.unwrap_or(cfg.base_dim);
        let levels = cfg.dim_mult.len();
        let top = *cfg.dim_mult.last().expect("dim_mult checked non-empty");
        let dims: Vec<usize> = std::iter::once(top)
            .chain(cfg.dim_mult.iter().rev().copied())
            .map(|m| base * m)
            .collect();
        let tup: Vec<bool> = cfg.temperal_downsample.iter().rev().copied().collect();
        let mut blocks = Vec::new();
        let vbu = vb.pp("up_blocks");
        for i in 0..levels {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            if i > 0 && !cfg.is_residual {
                in_dim /= 2;
            }
            let up_flag = i != levels - 1;
            let temporal = up_flag && tup.get(i).copied().unwrap_or(false);
            let mode = if temporal {
                ResampleMode::Up3d
            } else {
                ResampleMode::Up2d
            };
            let vbi = vbu.pp(i);
            let mut resnets = Vec::new();
            let mut cur = in_dim;
            for j in 0..=cfg.num_res_blocks {
                resnets.push(ResidualBlock::new(
                    vbi.pp(format!("resnets.{j}")),
                    cur,
                    out_dim,
                )?);
                cur = out_dim;
            }
            let (up, shortcut) = if !up_flag {
                (None, None)
            } else if cfg.is_residual {
                let ft = if temporal { 2 } else { 1 };
                let factor = ft * 4;
                if !(out_dim * factor).is_multiple_of(in_dim) {
                    return Err(DiffusionError::config(
                        "vae/config.json",
                        "channel counts of a residual up block do not divide",
                    ));
                }
                (
                    Some(Resample::new(vbi.pp("upsampler"), out_dim, mode, out_dim)?),
                    Some(DupUp3d {
                        out_c: out_dim,
                        ft,
                        fs: 2,
                        repeats: out_dim * factor / in_dim,
                    }),
                )
            } else {
                (
                    Some(Resample::new(
                        vbi.pp("upsamplers.0"),
                        out_dim,
                        mode,
                        out_dim / 2,
                    )?),
                    None,
                )
            };
            blocks.push(UpBlock {
                resnets,
                up,
                shortcut,
            });
        }
        let out_dim = dims[levels];
        Ok(Self {
            conv_in: CausalConv3d::new(vb.pp("conv_in"), cfg.z_dim, dims[0], (3, 3), 1, (1, 1))?,
            mid: MidBlock::new(vb.pp("mid_block"), dims[0])?,
            blocks,
            norm_out: ChannelRmsNorm::new(vb.pp("norm_out"), out_dim, false)?,
            conv_out: CausalConv3d::new(
                vb.pp("conv_out"),
                out_dim,
                cfg.out_channels,
                (3, 3),
                1,
                (1, 1),
            )?,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut FeatCache, first_chunk: bool) -> Result<Tensor> {
        let mut x = self.conv_in.forward_cached(x, Some(cache))?;
        x = self.mid.forward(&x, Some(cache))?;
        for b in &self.blocks {
            x = b.forward(&x, cache, first_chunk)?;
        }
        let x = silu(&self.norm_out.forward(&x)?)?;
        self.conv_out.forward_cached(&x, Some(cache))
    }
}

/// Folds `p × p` pixel patches into channels: `[b, c, f, h, w]` → `[b, c·p·p, f, h/p, w/p]`
/// with the channel index `c·p² + px·p + py` (diffusers' order).
fn patchify(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, f, h, w) = x.dims5()?;
    Ok(x.reshape(vec![b, c, f, h / p, p, w / p, p])?
        .permute(vec![0, 1, 6, 4, 2, 3, 5])?
        .reshape((b, c * p * p, f, h / p, w / p))?)
}

/// The inverse of [`patchify`].
fn unpatchify(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, cp, f, h, w) = x.dims5()?;
    let c = cp / (p * p);
    Ok(x.reshape(vec![b, c, p, p, f, h, w])?
        .permute(vec![0, 1, 4, 5, 3, 6, 2])?
        .reshape((b, c, f, h * p, w * p))?)
}

/// The posterior of an encoded video: a diagonal Gaussian per latent element.
#[derive(Debug, Clone)]
pub struct LatentDistribution {
    /// Means `[b, z, t, h, w]` (what the pipelines use, diffusers' `mode()`).
    pub mean: Tensor,
    /// Log-variances, clamped to [-30, 20] as diffusers does.
    pub logvar: Tensor,
}

impl LatentDistribution {
    /// A sample `mean + exp(logvar / 2) · ε` with `ε` from `noise`.
    pub fn sample(&self, noise: &mut crate::NoiseGenerator) -> Result<Tensor> {
        let eps = noise.randn(self.mean.dims(), self.mean.dtype(), self.mean.device())?;
        Ok((&self.mean + (self.logvar.clone() * 0.5)?.exp()?.mul(&eps)?)?)
    }
}

/// The Wan video VAE.
pub struct WanVae {
    cfg: WanVaeConfig,
    encoder: Encoder,
    quant_conv: CausalConv3d,
    post_quant_conv: CausalConv3d,
    decoder: Decoder,
    dtype: DType,
    device: Device,
}

impl WanVae {
    /// Builds the VAE from a [`VarBuilder`] holding the diffusers tensor names.
    pub fn new(vb: VarBuilder, cfg: &WanVaeConfig) -> Result<Self> {
        let z = cfg.z_dim;
        Ok(Self {
            encoder: Encoder::new(vb.pp("encoder"), cfg)?,
            quant_conv: CausalConv3d::new(vb.pp("quant_conv"), 2 * z, 2 * z, (1, 1), 1, (0, 0))?,
            post_quant_conv: CausalConv3d::new(vb.pp("post_quant_conv"), z, z, (1, 1), 1, (0, 0))?,
            decoder: Decoder::new(vb.pp("decoder"), cfg)?,
            cfg: cfg.clone(),
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// Loads a VAE folder (`config.json` + `diffusion_pytorch_model.safetensors`).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg: WanVaeConfig = read_json(&cfg_path)?;
        cfg.check(&cfg_path)?;
        let w = load_weights(dir, &["diffusion_pytorch_model"], dtype, device, None)?;
        let vae = Self::new(w.vb(), &cfg)?;
        w.finish()?;
        Ok(vae)
    }

    /// The configuration.
    pub fn config(&self) -> &WanVaeConfig {
        &self.cfg
    }

    /// Latent channels.
    pub fn z_dim(&self) -> usize {
        self.cfg.z_dim
    }

    /// Pixels per latent pixel (8 for Wan 2.1, 16 for Wan 2.2).
    pub fn spatial_factor(&self) -> usize {
        self.cfg.scale_factor_spatial
    }

    /// Frames per latent frame after the first (4).
    pub fn temporal_factor(&self) -> usize {
        self.cfg.scale_factor_temporal
    }

    /// Checks that a clip of `frames × height × width` can be encoded.
    pub fn check_video_size(&self, frames: usize, height: usize, width: usize) -> Result<()> {
        let st = self.cfg.scale_factor_temporal;
        if frames == 0 || !(frames - 1).is_multiple_of(st) {
            let lo = if frames == 0 {
                1
            } else {
                (frames - 1) / st * st + 1
            };
            return Err(DiffusionError::InvalidInput(format!(
                "the frame count must be {st}k+1 (1, 5, 9, ..., 81); got {frames}: use {lo} or {}",
                lo + st
            )));
        }
        let s = self.cfg.scale_factor_spatial;
        if !height.is_multiple_of(s) || !width.is_multiple_of(s) || height == 0 || width == 0 {
            return Err(DiffusionError::InvalidInput(format!(
                "height and width must be multiples of {s} for this VAE; got {width}x{height}: use {}x{}",
                (width / s).max(1) * s,
                (height / s).max(1) * s
            )));
        }
        Ok(())
    }

    /// Encodes a video `[b, 3, frames, h, w]` with values in `[-1, 1]` into the posterior over
    /// latents `[b, z, 1 + (frames-1)/4, h/s, w/s]` (not normalised; see
    /// [`WanVae::normalize`]). Frames must be `4k+1`, sizes multiples of the spatial factor.
    pub fn encode(&self, video: &Tensor) -> Result<LatentDistribution> {
        let (_, c, f, h, w) = video.dims5().map_err(|_| {
            DiffusionError::InvalidInput(format!(
                "the VAE encodes videos [batch, 3, frames, height, width]; got {:?}",
                video.dims()
            ))
        })?;
        if c != 3 {
            return Err(DiffusionError::InvalidInput(format!(
                "the VAE encodes RGB videos (3 channels); got {c}"
            )));
        }
        self.check_video_size(f, h, w)?;
        let mut x = video.to_dtype(self.dtype)?.to_device(&self.device)?;
        if let Some(p) = self.cfg.patch_size {
            x = patchify(&x, p)?;
        }
        let mut cache = FeatCache::new();
        let mut outs = Vec::new();
        let mut start = 0;
        while start < f {
            let n = if start == 0 { 1 } else { 4.min(f - start) };
            cache.begin_chunk();
            outs.push(self.encoder.forward(&x.narrow(2, start, n)?, &mut cache)?);
            start += n;
        }
        let enc = Tensor::cat(&outs, 2)?;
        let enc = self.quant_conv.forward(&enc, None)?;
        let z = self.cfg.z_dim;
        Ok(LatentDistribution {
            mean: enc.narrow(1, 0, z)?,
            logvar: enc.narrow(1, z, z)?.clamp(-30f32, 20f32)?,
        })
    }

    /// Decodes latents `[b, z, t, h, w]` (not normalised) into a video `[b, 3, 4(t-1)+1, h·s,
    /// w·s]` clamped to `[-1, 1]`, one latent frame at a time.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let dims = z.dims();
        if dims.len() != 5 || dims[1] != self.cfg.z_dim {
            return Err(DiffusionError::InvalidInput(format!(
                "the VAE decodes latents [batch, {}, frames, height, width]; got {dims:?}",
                self.cfg.z_dim
            )));
        }
        let z = z.to_dtype(self.dtype)?.to_device(&self.device)?;
        let x = self.post_quant_conv.forward(&z, None)?;
        let t = x.dim(2)?;
        let mut cache = FeatCache::new();
        let mut outs = Vec::with_capacity(t);
        for i in 0..t {
            cache.begin_chunk();
            outs.push(
                self.decoder
                    .forward(&x.narrow(2, i, 1)?, &mut cache, i == 0)?,
            );
        }
        let mut out = Tensor::cat(&outs, 2)?;
        if let Some(p) = self.cfg.patch_size {
            out = unpatchify(&out, p)?;
        }
        Ok(out.clamp(-1f32, 1f32)?)
    }

    fn stats(&self, like: &Tensor) -> Result<(Tensor, Tensor)> {
        let z = self.cfg.z_dim;
        let mean: Vec<f32> = self.cfg.latents_mean.iter().map(|&v| v as f32).collect();
        let std: Vec<f32> = self.cfg.latents_std.iter().map(|&v| v as f32).collect();
        let mk = |v: Vec<f32>| -> Result<Tensor> {
            Ok(Tensor::from_vec(v, (1, z, 1, 1, 1), like.device())?.to_dtype(like.dtype())?)
        };
        Ok((mk(mean)?, mk(std)?))
    }

    /// `(z - mean) / std` per channel: the latents the transformer works on.
    pub fn normalize(&self, z: &Tensor) -> Result<Tensor> {
        let (mean, std) = self.stats(z)?;
        // diffusers multiplies by 1/std.
        Ok(z.broadcast_sub(&mean)?.broadcast_mul(&std.recip()?)?)
    }

    /// `z · std + mean` per channel: back to what the decoder takes.
    pub fn denormalize(&self, z: &Tensor) -> Result<Tensor> {
        let (mean, std) = self.stats(z)?;
        Ok(z.broadcast_div(&std.recip()?)?.broadcast_add(&mean)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn refs() -> HashMap<String, Tensor> {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/refs/conv3d.safetensors");
        candle_core::safetensors::load(p, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn causal_and_strided_conv3d_match_pytorch() {
        let r = refs();
        let conv = CausalConv3d {
            conv: Conv3d::from_tensors(
                r["causal.weight"].clone(),
                Some(r["causal.bias"].clone()),
                (1, 1),
                1,
            )
            .unwrap(),
            pad_t: 2,
        };
        let d = max_diff(
            &conv.forward(&r["causal.x"], None).unwrap(),
            &r["causal.out"],
        );
        assert!(d < 1e-5, "causal conv3d: {d}");
        let down = CausalConv3d {
            conv: Conv3d::from_tensors(
                r["strided.weight"].clone(),
                Some(r["strided.bias"].clone()),
                (2, 1),
                0,
            )
            .unwrap(),
            pad_t: 0,
        };
        let d = max_diff(
            &down.forward(&r["strided.x"], None).unwrap(),
            &r["strided.out"],
        );
        assert!(d < 1e-5, "strided conv3d: {d}");
    }

    #[test]
    fn residual_block_with_feature_cache_matches_pytorch() {
        let r = refs();
        let tensors: HashMap<String, Tensor> = r
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("block.").map(|n| (n.to_string(), v.clone())))
            .collect();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let block = ResidualBlock::new(vb, 4, 6).unwrap();
        let x = &r["block.x"];
        let whole = block.forward(x, None).unwrap();
        let d = max_diff(&whole, &r["block.whole"]);
        assert!(d < 1e-5, "whole: {d}");
        let mut cache = FeatCache::new();
        let mut outs = Vec::new();
        for (s, n) in [(0, 1), (1, 4), (5, 4)] {
            cache.begin_chunk();
            outs.push(
                block
                    .forward(&x.narrow(2, s, n).unwrap(), Some(&mut cache))
                    .unwrap(),
            );
        }
        let chunked = Tensor::cat(&outs, 2).unwrap();
        let d = max_diff(&chunked, &r["block.chunked"]);
        assert!(d < 1e-5, "chunked: {d}");
    }

    #[test]
    fn patchify_inverts() {
        let x = Tensor::arange(0f32, 2.0 * 3.0 * 2.0 * 4.0 * 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3, 2, 4, 6))
            .unwrap();
        let p = patchify(&x, 2).unwrap();
        assert_eq!(p.dims(), &[2, 12, 2, 2, 3]);
        let back = unpatchify(&p, 2).unwrap();
        assert_eq!(max_diff(&back, &x), 0.0);
    }
}
