//! Segment Anything (SAM ViT-B/L/H and MobileSAM's TinyViT) through candle-transformers'
//! `segment_anything` modules, with point and box prompts and an automatic mask generator
//! (point grid, batched prompts, predicted-IoU and stability filters, box NMS, small-region
//! removal, COCO RLE output).
//!
//! Weights: candle's converted files on the hub (`lmz/candle-sam`: `sam_vit_b_01ec64.safetensors`,
//! `mobile_sam-tiny-vitt.safetensors`) or a local `.safetensors`/`.pth` with the upstream key
//! names (`image_encoder.*`, `prompt_encoder.*`, `mask_decoder.*`).
//!
//! **What was verified and what was not.** No SAM weights can be downloaded on the machines
//! this crate is developed on. The mask generator's post-processing (upscaling of the
//! low-resolution logits, IoU and stability filters, NMS, small-region removal, RLE) is tested
//! on constructed logits; the model plumbing (loading, preprocessing, prompt batching, output
//! shapes, prompt coordinates) is tested on a small random-weight checkpoint. The masks of real
//! SAM checkpoints have **not** been compared with the reference implementation here.

use std::path::Path;

use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::segment_anything::{
    image_encoder::ImageEncoderViT,
    mask_decoder::MaskDecoder,
    prompt_encoder::PromptEncoder,
    tiny_vit::{tiny_vit_5m, TinyViT},
};
use image::{GrayImage, Luma, RgbImage};

use crate::instances::Instance;
use crate::isnet::cpu::{resize_bilinear, Feat};
use crate::mask::{BBox, Mask, Rle};
use crate::segment::{check_image, Segmenter};
use crate::EntityError;

/// Side of SAM's square model input.
pub const SAM_INPUT: usize = 1024;
/// Side of the decoder's low-resolution mask logits.
pub const SAM_LOW_RES: usize = 256;
const PROMPT_DIM: usize = 256;

/// A ViT image encoder's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VitConfig {
    /// Token width.
    pub embed_dim: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Blocks with global (not windowed) attention.
    pub global_attn_indexes: Vec<usize>,
}

/// Which SAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamVariant {
    /// SAM ViT-B (91 M parameters).
    VitB,
    /// SAM ViT-L.
    VitL,
    /// SAM ViT-H.
    VitH,
    /// MobileSAM: the TinyViT-5M encoder with SAM's decoder.
    Mobile,
    /// A ViT encoder of another shape (e.g. a small test network).
    Custom(VitConfig),
}

impl SamVariant {
    /// The encoder shape (`None` for MobileSAM's TinyViT).
    pub fn vit(&self) -> Option<VitConfig> {
        let v = |embed_dim, depth, num_heads, g: [usize; 4]| VitConfig {
            embed_dim,
            depth,
            num_heads,
            global_attn_indexes: g.to_vec(),
        };
        match self {
            Self::VitB => Some(v(768, 12, 12, [2, 5, 8, 11])),
            Self::VitL => Some(v(1024, 24, 16, [5, 11, 17, 23])),
            Self::VitH => Some(v(1280, 32, 16, [7, 15, 23, 31])),
            Self::Mobile => None,
            Self::Custom(c) => Some(c.clone()),
        }
    }

    /// Which SAM a checkpoint holds, read from its tensor shapes without loading it: a
    /// TinyViT encoder (`image_encoder.layers.*`) is MobileSAM; a ViT encoder's width is
    /// `patch_embed.proj.weight`'s first dimension, its depth the number of `blocks.N`, its
    /// head width and global-attention blocks the shapes of each block's `rel_pos_h`
    /// (`[2·64−1, head_dim]` for global attention over the 64×64 token grid, `[2·14−1,
    /// head_dim]` for 14×14 windows). ViT-B/L/H come back as themselves, anything else as
    /// [`SamVariant::Custom`].
    pub fn detect(path: &Path) -> Result<Self, EntityError> {
        let err = |message: String| EntityError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let ckpt = crate::weights::open_checkpoint(
            path,
            "pass a SAM checkpoint (e.g. sam_vit_b_01ec64.safetensors from the lmz/candle-sam hub repository)",
        )?;
        let shapes = crate::weights::tensor_shapes(&ckpt);
        if shapes
            .iter()
            .any(|(n, _)| n.starts_with("image_encoder.layers."))
        {
            return Ok(Self::Mobile);
        }
        let Some((_, patch)) = shapes
            .iter()
            .find(|(n, _)| n == "image_encoder.patch_embed.proj.weight")
        else {
            return Err(err(
                "no image_encoder.patch_embed.proj.weight nor image_encoder.layers.*: not a \
                 Segment Anything checkpoint (keys image_encoder.*, prompt_encoder.*, mask_decoder.*)"
                    .into(),
            ));
        };
        let embed_dim = patch.first().copied().unwrap_or(0);
        let mut blocks: std::collections::BTreeMap<usize, usize> = Default::default();
        let mut head_dim = None;
        for (n, shape) in &shapes {
            let Some(rest) = n.strip_prefix("image_encoder.blocks.") else {
                continue;
            };
            let Some((i, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(i) = i.parse::<usize>() else { continue };
            let entry = blocks.entry(i).or_insert(0);
            if field == "attn.rel_pos_h" {
                if let [len, hd] = shape.as_slice() {
                    *entry = *len;
                    head_dim = Some(*hd);
                }
            }
        }
        let depth = blocks.keys().next_back().map_or(0, |i| i + 1);
        let (Some(head_dim), true) = (head_dim, depth == blocks.len() && embed_dim > 0) else {
            return Err(err(format!(
                "the ViT encoder's blocks are incomplete or have no rel_pos_h ({} of {depth} \
                 blocks found, width {embed_dim}); a full SAM checkpoint is needed",
                blocks.len()
            )));
        };
        if head_dim == 0 || embed_dim % head_dim != 0 {
            return Err(err(format!(
                "rel_pos_h has head width {head_dim}, which does not divide the encoder width {embed_dim}"
            )));
        }
        let grid = 2 * (SAM_INPUT / 16) - 1;
        let c = VitConfig {
            embed_dim,
            depth,
            num_heads: embed_dim / head_dim,
            global_attn_indexes: blocks
                .iter()
                .filter(|(_, &len)| len == grid)
                .map(|(&i, _)| i)
                .collect(),
        };
        Ok([Self::VitB, Self::VitL, Self::VitH]
            .into_iter()
            .find(|v| v.vit().as_ref() == Some(&c))
            .unwrap_or(Self::Custom(c)))
    }

    /// The hub repository and file of candle's converted weights, where there is one.
    pub fn hub_file(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::VitB => Some(("lmz/candle-sam", "sam_vit_b_01ec64.safetensors")),
            Self::Mobile => Some(("lmz/candle-sam", "mobile_sam-tiny-vitt.safetensors")),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Encoder {
    Vit(Box<ImageEncoderViT>),
    Tiny(Box<TinyViT>),
}

/// A SAM model: image encoder, prompt encoder, mask decoder.
#[derive(Debug)]
pub struct SamModel {
    encoder: Encoder,
    prompt: PromptEncoder,
    decoder: MaskDecoder,
    device: Device,
}

/// An image encoded once, for any number of prompts.
#[derive(Debug, Clone)]
pub struct SamImage {
    embedding: Tensor,
    /// Original `(width, height)`.
    pub size: (u32, u32),
    /// `(width, height)` after resizing the longest side to 1024.
    pub resized: (u32, u32),
}

/// One prompt: points (pixel coordinates of the original image, `true` = on the object)
/// and/or a box `[x0, y0, x1, y1]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prompt {
    /// Points with their labels.
    pub points: Vec<(f32, f32, bool)>,
    /// A box around the object.
    pub bbox: Option<[f32; 4]>,
}

/// The decoder's answer to one prompt: low-resolution logits and predicted IoU, one per
/// output mask (3 with `multimask`, else 1).
#[derive(Debug, Clone, PartialEq)]
pub struct LowResMasks {
    /// `SAM_LOW_RES²` logits per mask, row-major.
    pub logits: Vec<Vec<f32>>,
    /// The decoder's predicted IoU per mask.
    pub iou: Vec<f32>,
}

impl SamModel {
    /// Builds the model from `vb` (keys `image_encoder.*`, `prompt_encoder.*`, `mask_decoder.*`).
    pub fn new(vb: VarBuilder, variant: &SamVariant) -> candle_core::Result<Self> {
        let device = vb.device().clone();
        let emb = SAM_INPUT / 16;
        let encoder = match variant.vit() {
            Some(c) => Encoder::Vit(Box::new(ImageEncoderViT::new(
                SAM_INPUT,
                16,
                3,
                c.embed_dim,
                c.depth,
                c.num_heads,
                PROMPT_DIM,
                true,
                true,
                true,
                14,
                &c.global_attn_indexes,
                vb.pp("image_encoder"),
            )?)),
            None => Encoder::Tiny(Box::new(tiny_vit_5m(vb.pp("image_encoder"))?)),
        };
        let prompt = PromptEncoder::new(
            PROMPT_DIM,
            (emb, emb),
            (SAM_INPUT, SAM_INPUT),
            16,
            vb.pp("prompt_encoder"),
        )?;
        let decoder = MaskDecoder::new(PROMPT_DIM, 3, 3, 256, vb.pp("mask_decoder"))?;
        Ok(Self {
            encoder,
            prompt,
            decoder,
            device,
        })
    }

    /// Resizes (longest side 1024, aspect kept), normalises (ImageNet mean/std on 0–255),
    /// pads to 1024² and encodes the image.
    pub fn embed(&self, image: &RgbImage) -> Result<SamImage, EntityError> {
        check_image(image)?;
        let (w, h) = image.dimensions();
        let s = SAM_INPUT as f64 / w.max(h) as f64;
        let (rw, rh) = (
            ((w as f64 * s).round() as u32).clamp(1, SAM_INPUT as u32),
            ((h as f64 * s).round() as u32).clamp(1, SAM_INPUT as u32),
        );
        let resized = image::imageops::resize(image, rw, rh, image::imageops::FilterType::Triangle);
        let n = SAM_INPUT * SAM_INPUT;
        let mut data = vec![0f32; 3 * n];
        const MEAN: [f32; 3] = [123.675, 116.28, 103.53];
        const STD: [f32; 3] = [58.395, 57.12, 57.375];
        for (x, y, p) in resized.enumerate_pixels() {
            for c in 0..3 {
                data[c * n + y as usize * SAM_INPUT + x as usize] =
                    (p[c] as f32 - MEAN[c]) / STD[c];
            }
        }
        let x = Tensor::from_vec(data, (1, 3, SAM_INPUT, SAM_INPUT), &self.device)?;
        let embedding = match &self.encoder {
            Encoder::Vit(v) => v.forward(&x)?,
            Encoder::Tiny(t) => t.forward(&x)?,
        };
        Ok(SamImage {
            embedding,
            size: (w, h),
            resized: (rw, rh),
        })
    }

    /// Decodes prompts against an encoded image. Prompts of the same shape (same number of
    /// points, with or without a box) are batched together.
    pub fn predict(
        &self,
        image: &SamImage,
        prompts: &[Prompt],
        multimask: bool,
    ) -> Result<Vec<LowResMasks>, EntityError> {
        let sx = image.resized.0 as f32 / image.size.0 as f32;
        let sy = image.resized.1 as f32 / image.size.1 as f32;
        let mut out: Vec<Option<LowResMasks>> = vec![None; prompts.len()];
        let mut groups: std::collections::BTreeMap<(usize, bool), Vec<usize>> = Default::default();
        for (i, p) in prompts.iter().enumerate() {
            if p.points.is_empty() && p.bbox.is_none() {
                return Err(EntityError::Invalid(format!(
                    "prompt {i} has no point and no box"
                )));
            }
            if p.points
                .iter()
                .any(|&(x, y, _)| !x.is_finite() || !y.is_finite())
                || p.bbox.is_some_and(|b| b.iter().any(|v| !v.is_finite()))
            {
                return Err(EntityError::Invalid(format!(
                    "prompt {i} has non-finite coordinates"
                )));
            }
            groups
                .entry((p.points.len(), p.bbox.is_some()))
                .or_default()
                .push(i);
        }
        let pe = self.prompt.get_dense_pe()?;
        for ((np, has_box), idx) in groups {
            for chunk in idx.chunks(64) {
                let b = chunk.len();
                let points = if np > 0 {
                    let mut xy = Vec::with_capacity(b * np * 2);
                    let mut lab = Vec::with_capacity(b * np);
                    for &i in chunk {
                        for &(x, y, fg) in &prompts[i].points {
                            xy.extend([x * sx, y * sy]);
                            lab.push(if fg { 1f32 } else { 0f32 });
                        }
                    }
                    Some((
                        Tensor::from_vec(xy, (b, np, 2), &self.device)?,
                        Tensor::from_vec(lab, (b, np), &self.device)?,
                    ))
                } else {
                    None
                };
                let boxes = if has_box {
                    let mut v = Vec::with_capacity(b * 4);
                    for &i in chunk {
                        let [x0, y0, x1, y1] = prompts[i].bbox.unwrap_or_default();
                        v.extend([x0 * sx, y0 * sy, x1 * sx, y1 * sy]);
                    }
                    Some(Tensor::from_vec(v, (b, 4), &self.device)?)
                } else {
                    None
                };
                // candle-transformers 0.11's PromptEncoder returns box embeddings as
                // [B, 4·dim/2] and cannot concatenate them with points; the corner tokens are
                // reshaped here and the points are embedded with the box-less padding token,
                // which is dropped again when a box follows (upstream pads only without a box).
                let (sparse, dense) = match (&points, &boxes) {
                    (Some((xy, lab)), None) => self.prompt.forward(Some((xy, lab)), None, None)?,
                    (None, Some(bx)) => {
                        let (s, d) = self.prompt.forward(None, Some(bx), None)?;
                        (s.reshape((b, 2, PROMPT_DIM))?, d)
                    }
                    (Some((xy, lab)), Some(bx)) => {
                        let (sp, d) = self.prompt.forward(Some((xy, lab)), None, None)?;
                        let sp = sp.narrow(1, 0, np)?;
                        let (sb, _) = self.prompt.forward(None, Some(bx), None)?;
                        let sb = sb.reshape((b, 2, PROMPT_DIM))?;
                        (Tensor::cat(&[&sp, &sb], 1)?, d)
                    }
                    (None, None) => unreachable!("empty prompts are rejected above"),
                };
                let (masks, iou) =
                    self.decoder
                        .forward(&image.embedding, &pe, &sparse, &dense, multimask)?;
                let masks = masks.to_dtype(DType::F32)?;
                let iou = iou.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                for (j, &i) in chunk.iter().enumerate() {
                    let m = masks.i(j)?;
                    let k = m.dim(0)?;
                    let mut logits = Vec::with_capacity(k);
                    for q in 0..k {
                        logits.push(m.i(q)?.flatten_all()?.to_vec1::<f32>()?);
                    }
                    out[i] = Some(LowResMasks {
                        logits,
                        iou: iou[j].clone(),
                    });
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every prompt decoded"))
            .collect())
    }

    /// Automatic mask generation on the whole image (one crop): a grid of single-point
    /// prompts, decoded in batches, filtered and de-duplicated ([`postprocess_candidate`],
    /// [`finish_masks`]).
    pub fn generate(
        &self,
        image: &RgbImage,
        opts: &AutoMaskOptions,
    ) -> Result<Vec<AutoMask>, EntityError> {
        opts.check()?;
        let enc = self.embed(image)?;
        let (w, h) = enc.size;
        let n = opts.points_per_side;
        let mut cands = Vec::new();
        let grid: Vec<(f32, f32)> = (0..n)
            .flat_map(|iy| {
                (0..n).map(move |ix| {
                    (
                        (ix as f32 + 0.5) / n as f32 * w as f32,
                        (iy as f32 + 0.5) / n as f32 * h as f32,
                    )
                })
            })
            .collect();
        for batch in grid.chunks(opts.points_per_batch.max(1)) {
            let prompts: Vec<Prompt> = batch
                .iter()
                .map(|&(x, y)| Prompt {
                    points: vec![(x, y, true)],
                    bbox: None,
                })
                .collect();
            let preds = self.predict(&enc, &prompts, true)?;
            for (p, pt) in preds.iter().zip(batch) {
                for (logits, &iou) in p.logits.iter().zip(&p.iou) {
                    if let Some(m) =
                        postprocess_candidate(logits, iou, enc.resized, enc.size, *pt, opts)
                    {
                        cands.push(m);
                    }
                }
            }
        }
        Ok(finish_masks(cands, opts))
    }
}

/// Settings of the automatic mask generator (SAM's `SamAutomaticMaskGenerator` names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoMaskOptions {
    /// Grid points per side (16 here; SAM's default 32 decodes 4× more prompts).
    pub points_per_side: usize,
    /// Prompts per decoder batch (64).
    pub points_per_batch: usize,
    /// Minimum predicted IoU (0.88).
    pub pred_iou_thresh: f32,
    /// Minimum stability score (0.95): IoU of the masks thresholded at ±offset.
    pub stability_score_thresh: f32,
    /// Logit offset of the stability score (1.0).
    pub stability_score_offset: f32,
    /// Logit threshold of a mask (0.0).
    pub mask_threshold: f32,
    /// Box IoU above which the lower-scored mask is dropped (0.7).
    pub box_nms_thresh: f32,
    /// Islands and holes smaller than this many pixels are removed (0 = off, SAM's default).
    pub min_mask_region_area: u64,
}

impl Default for AutoMaskOptions {
    fn default() -> Self {
        Self {
            points_per_side: 16,
            points_per_batch: 64,
            pred_iou_thresh: 0.88,
            stability_score_thresh: 0.95,
            stability_score_offset: 1.0,
            mask_threshold: 0.0,
            box_nms_thresh: 0.7,
            min_mask_region_area: 0,
        }
    }
}

impl AutoMaskOptions {
    fn check(&self) -> Result<(), EntityError> {
        if self.points_per_side == 0 || self.points_per_side > 256 {
            return Err(EntityError::Invalid(format!(
                "points_per_side must be 1..=256, got {}",
                self.points_per_side
            )));
        }
        Ok(())
    }
}

/// One automatically generated mask.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoMask {
    /// The mask at the image's size.
    pub mask: Mask,
    /// Its tight box.
    pub bbox: BBox,
    /// The decoder's predicted IoU.
    pub predicted_iou: f32,
    /// IoU of the mask thresholded at `mask_threshold ± stability_score_offset`.
    pub stability_score: f32,
    /// The grid point that prompted it.
    pub point: (f32, f32),
}

impl AutoMask {
    /// COCO RLE of the mask.
    pub fn rle(&self) -> Rle {
        self.mask.to_rle()
    }
}

/// Low-resolution logits (`SAM_LOW_RES²`) to logits at the original image size, as SAM's
/// `postprocess_masks`: bilinear to 1024², crop the resized image's area, bilinear to the
/// original size (half-pixel centres, no antialias).
pub fn upscale_logits(low: &[f32], resized: (u32, u32), size: (u32, u32)) -> Vec<f32> {
    let f = Feat::new(1, SAM_LOW_RES, SAM_LOW_RES, low.to_vec());
    let big = resize_bilinear(&f, SAM_INPUT, SAM_INPUT);
    let (rw, rh) = (resized.0 as usize, resized.1 as usize);
    let mut crop = Vec::with_capacity(rw * rh);
    for y in 0..rh {
        crop.extend_from_slice(&big.data[y * SAM_INPUT..y * SAM_INPUT + rw]);
    }
    resize_bilinear(
        &Feat::new(1, rh, rw, crop),
        size.1 as usize,
        size.0 as usize,
    )
    .data
}

/// Filters one decoded mask: predicted IoU, then stability on the upscaled logits; returns
/// the binary mask when it passes (and is not empty).
pub fn postprocess_candidate(
    low: &[f32],
    predicted_iou: f32,
    resized: (u32, u32),
    size: (u32, u32),
    point: (f32, f32),
    opts: &AutoMaskOptions,
) -> Option<AutoMask> {
    if predicted_iou.is_nan()
        || predicted_iou < opts.pred_iou_thresh
        || low.len() != SAM_LOW_RES * SAM_LOW_RES
    {
        return None;
    }
    let logits = upscale_logits(low, resized, size);
    let (hi, lo) = (
        opts.mask_threshold + opts.stability_score_offset,
        opts.mask_threshold - opts.stability_score_offset,
    );
    let (mut inter, mut union) = (0u64, 0u64);
    for &v in &logits {
        inter += (v > hi) as u64;
        union += (v > lo) as u64;
    }
    let stability = if union == 0 {
        0.0
    } else {
        inter as f32 / union as f32
    };
    if stability < opts.stability_score_thresh {
        return None;
    }
    let bytes: Vec<u8> = logits
        .iter()
        .map(|&v| u8::from(v > opts.mask_threshold))
        .collect();
    let mask = Mask::from_bytes(size.0, size.1, &bytes).ok()?;
    let bbox = mask.bbox()?;
    Some(AutoMask {
        mask,
        bbox,
        predicted_iou,
        stability_score: stability,
        point,
    })
}

/// Greedy box NMS: keeps masks in `order`, dropping any whose box overlaps a kept one by
/// more than `thresh` IoU.
fn nms(masks: &[AutoMask], order: &[usize], thresh: f32) -> Vec<usize> {
    let mut keep: Vec<usize> = Vec::new();
    for &i in order {
        if keep
            .iter()
            .all(|&k| masks[k].bbox.iou(&masks[i].bbox) <= thresh)
        {
            keep.push(i);
        }
    }
    keep
}

/// Removes islands (`fill = false`) or fills holes (`fill = true`) smaller than `area`;
/// returns whether anything changed.
fn remove_small_regions(mask: &mut Mask, area: u64, fill: bool) -> bool {
    let (w, h) = (mask.width(), mask.height());
    let img = GrayImage::from_fn(w, h, |x, y| Luma([u8::from(mask.get(x, y) != fill) * 255]));
    let labels = crate::instances::components(&img);
    let mut sizes: Vec<u64> = Vec::new();
    for p in labels.pixels() {
        let l = p[0] as usize;
        if l > 0 {
            if sizes.len() < l {
                sizes.resize(l, 0);
            }
            sizes[l - 1] += 1;
        }
    }
    let small: Vec<bool> = sizes.iter().map(|&s| s < area).collect();
    if !small.iter().any(|&s| s) {
        return false;
    }
    if !fill && small.iter().all(|&s| s) {
        // Keep the largest island rather than erasing the whole mask (as SAM does).
        let biggest = sizes
            .iter()
            .enumerate()
            .max_by_key(|(_, &s)| s)
            .map(|(i, _)| i);
        let mut changed = false;
        for (x, y, p) in labels.enumerate_pixels() {
            let l = p[0] as usize;
            if l > 0 && Some(l - 1) != biggest {
                mask.set(x, y, false);
                changed = true;
            }
        }
        return changed;
    }
    for (x, y, p) in labels.enumerate_pixels() {
        let l = p[0] as usize;
        if l > 0 && small[l - 1] {
            mask.set(x, y, fill);
        }
    }
    true
}

/// Box NMS by predicted IoU, then (with `min_mask_region_area`) small islands removed and
/// small holes filled, boxes recomputed and NMS again preferring untouched masks (as SAM's
/// `postprocess_small_regions`). Sorted by predicted IoU, best first.
pub fn finish_masks(masks: Vec<AutoMask>, opts: &AutoMaskOptions) -> Vec<AutoMask> {
    let mut order: Vec<usize> = (0..masks.len()).collect();
    order.sort_by(|&a, &b| masks[b].predicted_iou.total_cmp(&masks[a].predicted_iou));
    let keep = nms(&masks, &order, opts.box_nms_thresh);
    let mut kept: Vec<AutoMask> = keep.into_iter().map(|i| masks[i].clone()).collect();
    if opts.min_mask_region_area > 0 && !kept.is_empty() {
        let mut unchanged = Vec::with_capacity(kept.len());
        for m in kept.iter_mut() {
            let a = remove_small_regions(&mut m.mask, opts.min_mask_region_area, true);
            let b = remove_small_regions(&mut m.mask, opts.min_mask_region_area, false);
            unchanged.push(!(a || b));
            if let Some(bb) = m.mask.bbox() {
                m.bbox = bb;
            }
        }
        let mut order: Vec<usize> = (0..kept.len())
            .filter(|&i| !kept[i].mask.is_empty())
            .collect();
        order.sort_by(|&a, &b| {
            unchanged[b]
                .cmp(&unchanged[a])
                .then(kept[b].predicted_iou.total_cmp(&kept[a].predicted_iou))
        });
        let keep = nms(&kept, &order, opts.box_nms_thresh);
        kept = keep.into_iter().map(|i| kept[i].clone()).collect();
        kept.sort_by(|a, b| b.predicted_iou.total_cmp(&a.predicted_iou));
    }
    kept
}

/// Loads SAM weights from a file — the one place that reads SAM checkpoints — through the
/// shared model layer ([`reelsmith_models::Checkpoint`]): `.safetensors` (memory-mapped,
/// checked against truncation), a sharded `*.index.json` or a PyTorch `.pth`/`.pt`/`.bin`,
/// as `f32` on `device`. Every missing or misshapen tensor is named in one error.
pub fn load_sam(
    path: &Path,
    variant: &SamVariant,
    device: &Device,
) -> Result<SamModel, EntityError> {
    let missing = format!(
        "pass a SAM checkpoint{}",
        variant
            .hub_file()
            .map(|(r, f)| format!(" (e.g. {f} from the {r} hub repository)"))
            .unwrap_or_default()
    );
    let ckpt = crate::weights::open_checkpoint(path, &missing)?;
    crate::weights::build_checked(
        &ckpt,
        device,
        &format!(
            "is this checkpoint a {variant:?}? SamVariant::detect reads the variant from the file"
        ),
        |vb| SamModel::new(vb, variant),
    )
}

/// SAM's automatic masks as a [`Segmenter`].
#[derive(Debug)]
pub struct SamSegmenter {
    /// The model.
    pub model: SamModel,
    /// Generator settings.
    pub options: AutoMaskOptions,
}

impl Segmenter for SamSegmenter {
    fn segment(&self, image: &RgbImage) -> Result<Vec<Instance>, EntityError> {
        Ok(self
            .model
            .generate(image, &self.options)?
            .into_iter()
            .map(|m| Instance {
                mask: m.mask,
                score: m.predicted_iou,
            })
            .collect())
    }

    fn name(&self) -> &str {
        "sam"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits of a disc: +`strength` inside, −`strength` outside, at the low resolution.
    fn disc(cx: f32, cy: f32, r: f32, strength: f32) -> Vec<f32> {
        let mut v = vec![0f32; SAM_LOW_RES * SAM_LOW_RES];
        for y in 0..SAM_LOW_RES {
            for x in 0..SAM_LOW_RES {
                let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                v[y * SAM_LOW_RES + x] = ((r - d) * strength).clamp(-20.0, 20.0);
            }
        }
        v
    }

    #[test]
    fn filters_nms_and_geometry_on_constructed_logits() {
        // A 640x360 image: resized to 1024x576, which fills the top 144 rows of the 256² logits.
        let (size, resized) = ((640, 360), (1024, 576));
        let o = AutoMaskOptions::default();
        let a = postprocess_candidate(
            &disc(64.0, 72.0, 30.0, 4.0),
            0.95,
            resized,
            size,
            (0.0, 0.0),
            &o,
        )
        .expect("sharp disc passes");
        // Centre 64 of 256 low-res = 256 of 1024 = 160 of 640 (x); 72 -> 288 -> 180 (y).
        let c = a.mask.centroid().unwrap();
        assert!(
            (c[0] - 159.5).abs() < 1.5 && (c[1] - 179.5).abs() < 1.5,
            "{c:?}"
        );
        assert!((a.bbox.width as f32 - 2.0 * 30.0 * 2.5).abs() < 4.0);
        // Low predicted IoU, and a blurry (unstable) disc, are dropped.
        assert!(postprocess_candidate(
            &disc(64.0, 72.0, 30.0, 4.0),
            0.5,
            resized,
            size,
            (0.0, 0.0),
            &o
        )
        .is_none());
        let blurry = postprocess_candidate(
            &disc(64.0, 72.0, 30.0, 0.05),
            0.95,
            resized,
            size,
            (0.0, 0.0),
            &o,
        );
        assert!(blurry.is_none());
        // Near-duplicates are removed by NMS (the higher predicted IoU wins), a separate
        // disc stays.
        let b = postprocess_candidate(
            &disc(65.0, 72.0, 30.0, 4.0),
            0.97,
            resized,
            size,
            (1.0, 0.0),
            &o,
        )
        .unwrap();
        let d = postprocess_candidate(
            &disc(190.0, 72.0, 20.0, 4.0),
            0.90,
            resized,
            size,
            (2.0, 0.0),
            &o,
        )
        .unwrap();
        let out = finish_masks(vec![a, b, d], &o);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].point, (1.0, 0.0));
        assert_eq!(out[1].point, (2.0, 0.0));
        // RLE round trip of a generated mask.
        assert_eq!(out[1].rle().to_mask().unwrap(), out[1].mask);
        // Logits of the wrong length are ignored, not a panic.
        assert!(postprocess_candidate(&[1.0; 10], 0.99, resized, size, (0.0, 0.0), &o).is_none());
    }

    #[test]
    fn small_regions_removed_and_holes_filled() {
        let mut m = Mask::from_fn(60, 40, |x, y| {
            (5..35).contains(&x) && (5..35).contains(&y) && !(x == 20 && y == 20)
        });
        m.set(50, 10, true); // an island
        let am = AutoMask {
            bbox: m.bbox().unwrap(),
            mask: m,
            predicted_iou: 0.9,
            stability_score: 1.0,
            point: (0.0, 0.0),
        };
        let o = AutoMaskOptions {
            min_mask_region_area: 10,
            ..Default::default()
        };
        let out = finish_masks(vec![am], &o);
        assert_eq!(out.len(), 1);
        assert!(out[0].mask.get(20, 20), "hole filled");
        assert!(!out[0].mask.get(50, 10), "island removed");
        assert_eq!(
            out[0].bbox,
            BBox {
                x: 5,
                y: 5,
                width: 30,
                height: 30
            }
        );
    }
}
