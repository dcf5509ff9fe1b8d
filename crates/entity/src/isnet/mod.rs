//! ISNet (the DIS `isnet-general-use` salient-object network) on candle.
//!
//! The model follows candle-transformers' shape: an [`IsnetConfig`], [`Isnet::new`] from a
//! [`VarBuilder`] and [`Module::forward`], which maps an RGB batch `[N, 3, H, W]` (normalised
//! as `(v − 128) / 256`) to the saliency probability `[N, 1, H, W]` (the sigmoid of the first
//! side output, upsampled to the input size). On a CPU device the forward pass runs on this
//! crate's own kernels (the private `cpu` module): stride-1 undilated convolutions (most of
//! ISNet's 160 GMAC) by Winograd F(2×2, 3×3) (2.25× fewer multiplications), the others by
//! panel-wise im2col or in-place row reads, all multiplied by one register-tiled AVX-512
//! kernel (a portable one elsewhere) with fused bias, ReLU and residual. On other devices (or
//! with [`Isnet::forward_candle`]) it runs on candle's own ops. Both are tested against each
//! other and against PyTorch; on the four shared frames the CPU path is within one 8-bit
//! level of onnxruntime's f32 references.
//!
//! Weights: [`load_isnet`] reads a `.safetensors` (any float dtype, loaded as `f32`) or an
//! upstream PyTorch checkpoint (`.pth`/`.pt`) through the shared model layer
//! (`reelsmith-models`' `Checkpoint`, opened by [`isnet_checkpoint`]); a `REBNCONV` given as
//! `conv_s1` + `bn_s1` (upstream) has its BatchNorm folded on load (`FoldBatchNorm`), one
//! given with BN already folded (the real checkpoint in the shared models) is used as is.
//! Every missing or misshapen tensor is named in one error.
//!
//! Only the first side output (`d1`, the one every DIS/rembg user reads) is computed; the
//! deep-supervision outputs `d2…d6` are training-only and skipped.

pub(crate) mod cpu;

use std::cell::RefCell;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use reelsmith_models::{Checkpoint, FoldBatchNorm};

use crate::EntityError;
use cpu::{ConvSpec, Feat};

/// ISNet's channel configuration (the DIS `ISNetDIS(in_ch, out_ch)` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsnetConfig {
    /// Input channels (3, RGB).
    pub in_channels: usize,
    /// Output channels of the side outputs (1, the saliency logit).
    pub out_channels: usize,
    /// Channel unit: every channel count of ISNetDIS is a multiple of 16 (conv_in has 4
    /// units, stage5 32…); 16 is the real network, smaller values build narrow test networks.
    pub unit: usize,
}

impl Default for IsnetConfig {
    /// `isnet-general-use`: RGB in, one saliency channel out.
    fn default() -> Self {
        Self {
            in_channels: 3,
            out_channels: 1,
            unit: 16,
        }
    }
}

impl IsnetConfig {
    /// The configuration of the network in a checkpoint (`.safetensors` or `.pth`), read
    /// from its tensor shapes without loading it: `conv_in.weight` is
    /// `[4·unit, in_channels, 3, 3]` and `side1.weight` `[out_channels, 4·unit, 3, 3]`. The
    /// real `isnet-general-use` gives [`IsnetConfig::default`]; narrow test networks give
    /// their own unit.
    pub fn detect(path: &Path) -> Result<Self, EntityError> {
        let err = |message: String| EntityError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let ckpt = crate::weights::open_checkpoint(path, NO_FILE)?;
        let shapes = crate::weights::tensor_shapes(&ckpt);
        let shape = |name: &str| shapes.iter().find(|(n, _)| n == name).map(|(_, s)| s);
        let conv_in = shape("conv_in.weight").ok_or_else(|| {
            err("no tensor conv_in.weight: not an ISNet (isnet-general-use) checkpoint".into())
        })?;
        let side1 = shape("side1.weight");
        match (conv_in.as_slice(), side1.map(|s| s.as_slice())) {
            ([c, i, 3, 3], Some([o, c1, 3, 3]))
                if *c > 0 && c % 4 == 0 && c1 == c && *i > 0 && *o > 0 =>
            {
                Ok(Self {
                    in_channels: *i,
                    out_channels: *o,
                    unit: c / 4,
                })
            }
            _ => Err(err(format!(
                "conv_in.weight is {conv_in:?} and side1.weight {side1:?}; an ISNet has \
                 [4·unit, 3, 3, 3] and [1, 4·unit, 3, 3]: not an ISNet checkpoint"
            ))),
        }
    }
}

/// BatchNorm epsilon of upstream `nn.BatchNorm2d`.
const BN_EPS: f64 = 1e-5;

/// Reads tensors and records every one that is missing or misshapen, so that loading fails
/// once with all of their names.
struct Loader<'a> {
    vb: VarBuilder<'a>,
    problems: RefCell<Vec<String>>,
    /// A plain [`VarBuilder`] ([`Isnet::new`]): presence is checked here and BatchNorms
    /// given separately are folded here. `false` for a [`Checkpoint`]'s var builder
    /// ([`load_isnet`]), which records missing tensors itself and folds on load.
    plain: bool,
}

impl Loader<'_> {
    fn get(&self, shape: &[usize], name: &str) -> candle_core::Result<Tensor> {
        if self.plain && !self.vb.contains_tensor(name) {
            self.problems
                .borrow_mut()
                .push(format!("{}{name} (missing)", prefix(&self.vb)));
            return Tensor::zeros(shape, DType::F32, self.vb.device());
        }
        match self.vb.get(shape, name) {
            Ok(t) => Ok(t),
            Err(e) => {
                self.problems
                    .borrow_mut()
                    .push(format!("{}{name} ({e})", prefix(&self.vb)));
                Tensor::zeros(shape, DType::F32, self.vb.device())
            }
        }
    }

    fn pp(&self, s: &str) -> Loader<'_> {
        Loader {
            vb: self.vb.pp(s),
            problems: RefCell::new(Vec::new()),
            plain: self.plain,
        }
    }

    fn absorb(&self, child: Loader<'_>) {
        self.problems
            .borrow_mut()
            .extend(child.problems.into_inner());
    }
}

fn prefix(vb: &VarBuilder) -> String {
    let p = vb.prefix();
    if p.is_empty() {
        p
    } else {
        format!("{p}.")
    }
}

/// A convolution's parameters: packed for this crate's kernels on the CPU (the `Tensor`
/// copy is dropped to halve the memory), as tensors on other devices.
#[derive(Debug, Clone)]
enum Params {
    Packed {
        weight: cpu::PackedWeights,
        bias: Vec<f32>,
    },
    /// Stride 1, dilation 1: Winograd F(2×2, 3×3) weights.
    Winograd {
        weight: cpu::WinoWeights,
        bias: Vec<f32>,
    },
    Tensors {
        weight: Tensor,
        bias: Tensor,
    },
}

/// One 3×3 convolution with bias (BatchNorm folded in where there was one), optional ReLU.
#[derive(Debug, Clone)]
struct Conv {
    params: Params,
    cin: usize,
    spec: ConvSpec,
}

impl Conv {
    /// A plain `nn.Conv2d(cin, cout, 3)` at `name` (conv_in, side convs).
    fn plain(
        ld: &Loader,
        name: &str,
        cin: usize,
        cout: usize,
        stride: usize,
    ) -> candle_core::Result<Self> {
        let l = ld.pp(name);
        let weight = l.get(&[cout, cin, 3, 3], "weight")?;
        let bias = l.get(&[cout], "bias")?;
        ld.absorb(l);
        let spec = ConvSpec {
            cout,
            stride,
            pad: 1,
            dil: 1,
            relu: false,
        };
        Self::build(weight, bias, cin, spec)
    }

    fn build(
        weight: Tensor,
        bias: Tensor,
        cin: usize,
        spec: ConvSpec,
    ) -> candle_core::Result<Self> {
        let params = if weight.device().is_cpu() {
            let w = weight
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            let bias = bias.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            if spec.stride == 1 && spec.dil == 1 && spec.pad == 1 {
                let weight = cpu::WinoWeights::from_3x3(&w, spec.cout, cin);
                Params::Winograd { weight, bias }
            } else {
                let weight = cpu::PackedWeights::pack(&w, spec.cout, cin * 9);
                Params::Packed { weight, bias }
            }
        } else {
            Params::Tensors { weight, bias }
        };
        Ok(Self { params, cin, spec })
    }

    /// A `REBNCONV(cin, cout, dirate)` at `name`: `conv_s1` (+ `bn_s1`, folded) + ReLU.
    fn rebn(
        ld: &Loader,
        name: &str,
        cin: usize,
        cout: usize,
        dil: usize,
    ) -> candle_core::Result<Self> {
        let l = ld.pp(name);
        let c = l.pp("conv_s1");
        let mut weight = c.get(&[cout, cin, 3, 3], "weight")?;
        let mut bias = c.get(&[cout], "bias")?;
        l.absorb(c);
        if l.plain
            && (l.vb.contains_tensor("bn_s1.running_mean") || l.vb.contains_tensor("bn_s1.weight"))
        {
            let b = l.pp("bn_s1");
            let gamma = b.get(&[cout], "weight")?;
            let beta = b.get(&[cout], "bias")?;
            let mean = b.get(&[cout], "running_mean")?;
            let var = b.get(&[cout], "running_var")?;
            l.absorb(b);
            let scale = gamma.div(&(var + BN_EPS)?.sqrt()?)?;
            weight = weight.broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?;
            bias = ((bias - mean)? * &scale)?.add(&beta)?;
        }
        ld.absorb(l);
        let spec = ConvSpec {
            cout,
            stride: 1,
            pad: dil,
            dil,
            relu: true,
        };
        Self::build(weight, bias, cin, spec)
    }

    fn cpu(&self, inputs: &[&Feat], residual: Option<&Feat>) -> candle_core::Result<Feat> {
        let cin: usize = inputs.iter().map(|f| f.c).sum();
        if cin != self.cin {
            candle_core::bail!("ISNet conv expects {} input channels, got {cin}", self.cin);
        }
        match &self.params {
            Params::Packed { weight, bias } => {
                Ok(cpu::conv3x3(inputs, weight, bias, self.spec, residual))
            }
            Params::Winograd { weight, bias } => Ok(cpu::conv3x3_winograd(
                inputs,
                weight,
                bias,
                self.spec.relu,
                residual,
            )),
            Params::Tensors { .. } => candle_core::bail!("ISNet CPU kernels need CPU weights"),
        }
    }

    /// The parameters as tensors on `device` (unpacked again for the CPU).
    fn tensors(&self, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
        match &self.params {
            Params::Tensors { weight, bias } => Ok((weight.clone(), bias.clone())),
            Params::Packed { weight, bias } => Ok((
                Tensor::from_vec(weight.unpack(), (self.spec.cout, self.cin, 3, 3), device)?,
                Tensor::from_slice(bias, self.spec.cout, device)?,
            )),
            Params::Winograd { weight, bias } => Ok((
                Tensor::from_vec(weight.to_3x3(), (self.spec.cout, self.cin, 3, 3), device)?,
                Tensor::from_slice(bias, self.spec.cout, device)?,
            )),
        }
    }

    fn candle(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let s = self.spec;
        let (weight, bias) = self.tensors(x.device())?;
        let y = x
            .conv2d(&weight.to_dtype(x.dtype())?, s.pad, s.stride, s.dil, 1)?
            .broadcast_add(&bias.to_dtype(x.dtype())?.reshape((1, s.cout, 1, 1))?)?;
        if s.relu {
            y.relu()
        } else {
            Ok(y)
        }
    }
}

/// A residual U-block: RSU-L (L = 7, 6, 5, 4, with pooling) or RSU-4F (dilations only).
#[derive(Debug, Clone)]
struct Rsu {
    /// L for RSU-L, `None` for RSU-4F.
    levels: Option<usize>,
    convin: Conv,
    /// `rebnconv1 … rebnconvL` (RSU-4F: 1…4 with dilations 1, 2, 4, 8).
    enc: Vec<Conv>,
    /// `rebnconv(L−1)d … rebnconv1d`.
    dec: Vec<Conv>,
}

impl Rsu {
    fn new(
        ld: &Loader,
        name: &str,
        levels: Option<usize>,
        cin: usize,
        mid: usize,
        out: usize,
    ) -> candle_core::Result<Self> {
        let l = ld.pp(name);
        let convin = Conv::rebn(&l, "rebnconvin", cin, out, 1)?;
        let n = levels.unwrap_or(4);
        let dil = |i: usize| match levels {
            // RSU-L: only the innermost conv is dilated (2).
            Some(_) => {
                if i == n {
                    2
                } else {
                    1
                }
            }
            // RSU-4F: 1, 2, 4, 8.
            None => 1 << (i - 1),
        };
        let mut enc = Vec::with_capacity(n);
        for i in 1..=n {
            let ci = if i == 1 { out } else { mid };
            enc.push(Conv::rebn(&l, &format!("rebnconv{i}"), ci, mid, dil(i))?);
        }
        let mut dec = Vec::with_capacity(n - 1);
        for i in (1..n).rev() {
            let co = if i == 1 { out } else { mid };
            dec.push(Conv::rebn(
                &l,
                &format!("rebnconv{i}d"),
                2 * mid,
                co,
                dil(i),
            )?);
        }
        ld.absorb(l);
        Ok(Self {
            levels,
            convin,
            enc,
            dec,
        })
    }

    fn cpu(&self, x: &[&Feat]) -> candle_core::Result<Feat> {
        let hxin = self.convin.cpu(x, None)?;
        let n = self.enc.len();
        let mut skips: Vec<Feat> = Vec::with_capacity(n);
        skips.push(self.enc[0].cpu(&[&hxin], None)?);
        for i in 1..n {
            let prev = &skips[i - 1];
            let next = if self.levels.is_some() && i < n - 1 {
                let p = cpu::maxpool2_ceil(prev);
                self.enc[i].cpu(&[&p], None)?
            } else {
                self.enc[i].cpu(&[prev], None)?
            };
            skips.push(next);
        }
        let mut d = skips.pop().expect("at least two levels");
        for (j, conv) in self.dec.iter().enumerate() {
            let skip = skips.pop().expect("one skip per decoder conv");
            let up = if self.levels.is_some() && (d.h, d.w) != (skip.h, skip.w) {
                cpu::resize_bilinear(&d, skip.h, skip.w)
            } else {
                d
            };
            let res = (j + 1 == self.dec.len()).then_some(&hxin);
            d = conv.cpu(&[&up, &skip], res)?;
        }
        Ok(d)
    }

    fn candle(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let hxin = self.convin.candle(x)?;
        let n = self.enc.len();
        let mut skips: Vec<Tensor> = Vec::with_capacity(n);
        skips.push(self.enc[0].candle(&hxin)?);
        for i in 1..n {
            let prev = &skips[i - 1];
            let next = if self.levels.is_some() && i < n - 1 {
                self.enc[i].candle(&maxpool_ceil_candle(prev)?)?
            } else {
                self.enc[i].candle(prev)?
            };
            skips.push(next);
        }
        let mut d = skips.pop().expect("at least two levels");
        for conv in &self.dec {
            let skip = skips.pop().expect("one skip per decoder conv");
            let up = upsample_like(&d, &skip)?;
            d = conv.candle(&Tensor::cat(&[&up, &skip], 1)?)?;
        }
        d + hxin
    }
}

/// 2×2/2 max pooling with `ceil_mode` on candle ops: an odd edge is padded by repeating it,
/// which leaves the maximum unchanged.
fn maxpool_ceil_candle(x: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let x = if h % 2 == 1 {
        x.pad_with_same(2, 0, 1)?
    } else {
        x.clone()
    };
    let x = if w % 2 == 1 {
        x.pad_with_same(3, 0, 1)?
    } else {
        x
    };
    x.max_pool2d(2)
}

fn upsample_like(x: &Tensor, like: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = like.dims4()?;
    let (_, _, xh, xw) = x.dims4()?;
    if (xh, xw) == (h, w) {
        Ok(x.clone())
    } else {
        x.upsample_bilinear2d(h, w, false)
    }
}

/// The ISNetDIS network (inference: first side output only).
#[derive(Debug, Clone)]
pub struct Isnet {
    conv_in: Conv,
    /// stage1 … stage6.
    enc: Vec<Rsu>,
    /// stage5d … stage1d.
    dec: Vec<Rsu>,
    side1: Conv,
    cfg: IsnetConfig,
}

impl Isnet {
    /// Builds the network from `vb` (the root of the checkpoint's key space). BatchNorms
    /// given separately (`bn_s1.*`) are folded into their convolutions. All missing or
    /// misshapen tensors are reported in one error.
    ///
    /// [`load_isnet`] reads a file through the shared model layer instead (BatchNorms folded
    /// on load by [`FoldBatchNorm`], the file named in errors).
    pub fn new(vb: VarBuilder, cfg: &IsnetConfig) -> candle_core::Result<Self> {
        Self::build(vb, cfg, true)
    }

    /// [`Isnet::new`]; `plain`: see `Loader::plain`.
    fn build(vb: VarBuilder, cfg: &IsnetConfig, plain: bool) -> candle_core::Result<Self> {
        let ld = Loader {
            vb,
            problems: RefCell::new(Vec::new()),
            plain,
        };
        let u = cfg.unit.max(1);
        let conv_in = Conv::plain(&ld, "conv_in", cfg.in_channels, 4 * u, 2)?;
        let enc = vec![
            Rsu::new(&ld, "stage1", Some(7), 4 * u, 2 * u, 4 * u)?,
            Rsu::new(&ld, "stage2", Some(6), 4 * u, 2 * u, 8 * u)?,
            Rsu::new(&ld, "stage3", Some(5), 8 * u, 4 * u, 16 * u)?,
            Rsu::new(&ld, "stage4", Some(4), 16 * u, 8 * u, 32 * u)?,
            Rsu::new(&ld, "stage5", None, 32 * u, 16 * u, 32 * u)?,
            Rsu::new(&ld, "stage6", None, 32 * u, 16 * u, 32 * u)?,
        ];
        let dec = vec![
            Rsu::new(&ld, "stage5d", None, 64 * u, 16 * u, 32 * u)?,
            Rsu::new(&ld, "stage4d", Some(4), 64 * u, 8 * u, 16 * u)?,
            Rsu::new(&ld, "stage3d", Some(5), 32 * u, 4 * u, 8 * u)?,
            Rsu::new(&ld, "stage2d", Some(6), 16 * u, 2 * u, 4 * u)?,
            Rsu::new(&ld, "stage1d", Some(7), 8 * u, u, 4 * u)?,
        ];
        let side1 = Conv::plain(&ld, "side1", 4 * u, cfg.out_channels, 1)?;
        let problems = ld.problems.into_inner();
        if !problems.is_empty() {
            candle_core::bail!(
                "{} ISNet tensor(s) missing or misshapen: {}",
                problems.len(),
                problems.join(", ")
            );
        }
        Ok(Self {
            conv_in,
            enc,
            dec,
            side1,
            cfg: *cfg,
        })
    }

    /// The configuration the network was built with.
    pub fn config(&self) -> &IsnetConfig {
        &self.cfg
    }

    /// The forward pass on candle's own ops (any device). Same result as
    /// [`Module::forward`]; on the CPU it is slower and builds a full-map im2col (over 1 GB
    /// at 1024²), so it is meant for GPUs and for cross-checking the CPU kernels.
    pub fn forward_candle(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let hxin = self.conv_in.candle(x)?;
        let mut skips = Vec::with_capacity(self.enc.len());
        let mut cur = hxin;
        for (i, stage) in self.enc.iter().enumerate() {
            let inp = if i == 0 {
                cur.clone()
            } else {
                maxpool_ceil_candle(&cur)?
            };
            cur = stage.candle(&inp)?;
            skips.push(cur.clone());
        }
        let mut d = skips.pop().expect("six stages");
        for stage in &self.dec {
            let skip = skips.pop().expect("one skip per decoder stage");
            let up = upsample_like(&d, &skip)?;
            d = stage.candle(&Tensor::cat(&[&up, &skip], 1)?)?;
        }
        let d1 = self.side1.candle(&d)?;
        let d1 = if d1.dims4()?.2 == h && d1.dims4()?.3 == w {
            d1
        } else {
            d1.upsample_bilinear2d(h, w, false)?
        };
        candle_nn::ops::sigmoid(&d1)
    }

    fn forward_cpu_one(&self, x: Feat) -> candle_core::Result<Feat> {
        let (h, w) = (x.h, x.w);
        let hxin = self.conv_in.cpu(&[&x], None)?;
        drop(x);
        let mut skips: Vec<Feat> = Vec::with_capacity(self.enc.len());
        for (i, stage) in self.enc.iter().enumerate() {
            let next = if i == 0 {
                stage.cpu(&[&hxin])?
            } else {
                let p = cpu::maxpool2_ceil(skips.last().expect("previous stage"));
                stage.cpu(&[&p])?
            };
            skips.push(next);
        }
        drop(hxin);
        let mut d = skips.pop().expect("six stages");
        for stage in &self.dec {
            let skip = skips.pop().expect("one skip per decoder stage");
            let up = cpu::resize_bilinear(&d, skip.h, skip.w);
            drop(d);
            d = stage.cpu(&[&up, &skip])?;
        }
        let d1 = self.side1.cpu(&[&d], None)?;
        let mut p = cpu::resize_bilinear(&d1, h, w);
        p.data
            .iter_mut()
            .for_each(|v| *v = 1.0 / (1.0 + (-*v).exp()));
        Ok(p)
    }
}

impl Module for Isnet {
    /// `[N, C, H, W]` normalised RGB → `[N, 1, H, W]` saliency probability.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        if c != self.cfg.in_channels {
            candle_core::bail!(
                "ISNet expects {} input channels, got {c}",
                self.cfg.in_channels
            );
        }
        if !x.device().is_cpu() {
            return self.forward_candle(x);
        }
        let x = &x.to_dtype(DType::F32)?;
        let mut outs = Vec::with_capacity(n);
        for i in 0..n {
            let data = x.get(i)?.flatten_all()?.to_vec1::<f32>()?;
            let p = self.forward_cpu_one(Feat::new(c, h, w, data))?;
            outs.push(Tensor::from_vec(p.data, (1, p.c, h, w), x.device())?);
        }
        Tensor::cat(&outs, 0)
    }
}

/// Advice when an ISNet checkpoint does not exist.
const NO_FILE: &str =
    "pass the ISNet checkpoint (isnet-general-use.safetensors or an upstream .pth)";

/// Opens an ISNet checkpoint through the shared model layer
/// ([`reelsmith_models::Checkpoint`]) with upstream BatchNorms folded on load: a `REBNCONV`
/// stored as `conv_s1` + `bn_s1` (upstream PyTorch) is read as the folded `conv_s1` that
/// [`Isnet`] expects ([`FoldBatchNorm`], ε = 1e-5, folded in f64 and handed out as f32);
/// one stored already folded (the converted `isnet-general-use.safetensors`) is read as is.
///
/// `.safetensors` (memory-mapped; a truncated file is named with its first cut tensor), a
/// sharded `*.index.json`, or a PyTorch pickle (`.pth`, `.pt`, `.bin`).
pub fn isnet_checkpoint(path: &Path) -> Result<Checkpoint, EntityError> {
    Ok(
        crate::weights::open_checkpoint(path, NO_FILE)?.with_transform(
            FoldBatchNorm::with_suffixes("conv_s1", "bn_s1", BN_EPS).in_dtype(DType::F32),
        ),
    )
}

/// Loads ISNet weights from a file through the shared model layer ([`isnet_checkpoint`]),
/// as `f32` on `device`.
///
/// `.safetensors` (any float dtype, converted to `f32`) or a PyTorch pickle (`.pth`, `.pt`,
/// `.bin`), with BatchNorms folded on load. Errors name the file; a truncated safetensors
/// names the first tensor whose data lies past the end of the file; missing and misshapen
/// tensors are all named in one error.
pub fn load_isnet(path: &Path, cfg: &IsnetConfig, device: &Device) -> Result<Isnet, EntityError> {
    let ckpt = isnet_checkpoint(path)?;
    crate::weights::build_checked(
        &ckpt,
        device,
        &format!("is this an ISNet checkpoint of {cfg:?}? IsnetConfig::detect reads the configuration from the file"),
        |vb| Isnet::build(vb, cfg, false),
    )
}
