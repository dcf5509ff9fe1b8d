//! Per-frame measurements and their weighted combination.

use image::{GrayImage, RgbImage};
use reelsmith_core::Embeddings;
use serde::{Deserialize, Serialize};

use crate::{
    laplacian_stats, prompt_similarity, rgb_to_gray, AestheticHead, AestheticMapping, Exposure,
    ExposureParams, SaliencyMapping, ScoreError, SharpnessNorm,
};

/// The model-free measurements of one frame: sharpness (raw) and exposure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameMeasures {
    /// Variance of the Laplacian of the gray frame (OpenCV-compatible, see
    /// [`crate::laplacian_variance`]).
    pub sharpness_var: f64,
    /// Exposure penalty and the fractions behind it.
    pub exposure: Exposure,
}

impl FrameMeasures {
    /// Measures an RGB frame: converts it to gray like OpenCV ([`rgb_to_gray`]), then one
    /// pass for the Laplacian and one for the exposure ([`ExposureParams::measure_luma`]).
    pub fn from_rgb(rgb: &RgbImage, params: &ExposureParams) -> Result<Self, ScoreError> {
        Self::from_gray(&rgb_to_gray(rgb), params)
    }

    /// Measures a gray frame.
    pub fn from_gray(gray: &GrayImage, params: &ExposureParams) -> Result<Self, ScoreError> {
        let stats = laplacian_stats(gray.as_raw(), gray.width() as usize, gray.height() as usize)?;
        Ok(Self {
            sharpness_var: stats.variance(),
            exposure: params.measure_luma(gray.as_raw()),
        })
    }
}

/// Weights of the composite score `S = w_a·aesthetics + w_s·sharpness − w_e·exposure +
/// w_c·saliency`. All must be finite and non-negative.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// `w_a`, default 0.4.
    pub aesthetics: f64,
    /// `w_s`, default 0.3.
    pub sharpness: f64,
    /// `w_e`, default 0.2 (exposure is a penalty: it is subtracted).
    pub exposure: f64,
    /// `w_c`, default 0.1 (used only when prompts are given).
    pub saliency: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            aesthetics: 0.4,
            sharpness: 0.3,
            exposure: 0.2,
            saliency: 0.1,
        }
    }
}

/// Everything that tunes [`score_frames`]. Every field has a default, so a configuration
/// file may give only the parts it changes (`[score.weights]` alone, say).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreConfig {
    /// Component weights.
    pub weights: Weights,
    /// How raw Laplacian variances become 0..1 across the set.
    pub sharpness_norm: SharpnessNorm,
    /// Exposure penalty thresholds.
    pub exposure: ExposureParams,
    /// Raw aesthetic score → 0..1.
    pub aesthetic_mapping: AestheticMapping,
    /// Cosine similarity → 0..1 saliency.
    pub saliency_mapping: SaliencyMapping,
}

impl ScoreConfig {
    /// Checks every value: weights finite and non-negative, sharpness percentiles
    /// `0 <= low < high <= 100`, a positive absolute half-point, exposure levels and
    /// fractions in range, finite mappings. The error names the value at fault.
    ///
    /// ```
    /// use reelsmith_score::{ScoreConfig, SharpnessNorm};
    /// let mut c = ScoreConfig::default();
    /// assert!(c.validate().is_ok());
    /// c.sharpness_norm = SharpnessNorm::Percentile { low: 95.0, high: 5.0, log: true };
    /// assert!(c.validate().unwrap_err().to_string().contains("percentile"));
    /// ```
    pub fn validate(&self) -> Result<(), ScoreError> {
        let bad = |m: String| Err(ScoreError::InvalidWeights(m));
        let w = self.weights;
        for (name, v) in [
            ("aesthetics", w.aesthetics),
            ("sharpness", w.sharpness),
            ("exposure", w.exposure),
            ("saliency", w.saliency),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!(
                    "the {name} weight is {v}; weights must be finite and non-negative"
                ));
            }
        }
        match self.sharpness_norm {
            SharpnessNorm::Percentile { low, high, .. }
                if !(low.is_finite()
                    && high.is_finite()
                    && 0.0 <= low
                    && low < high
                    && high <= 100.0) =>
            {
                return bad(format!(
                    "sharpness percentiles {low} and {high}: need 0 <= low < high <= 100 (e.g. 5 and 95)"
                ));
            }
            SharpnessNorm::Absolute { half } if !(half.is_finite() && half > 0.0) => {
                return bad(format!(
                    "sharpness half-point {half}: must be a positive number"
                ));
            }
            _ => {}
        }
        let e = self.exposure;
        for (name, v) in [
            ("dark_tolerance", e.dark_tolerance),
            ("dark_full", e.dark_full),
            ("bright_tolerance", e.bright_tolerance),
            ("bright_full", e.bright_full),
        ] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return bad(format!("exposure {name} is {v}; a fraction lies in [0, 1]"));
            }
        }
        if e.dark_tolerance >= e.dark_full || e.bright_tolerance >= e.bright_full {
            return bad("exposure tolerances must be below their full-penalty fractions".into());
        }
        let m = self.aesthetic_mapping;
        if !(m.low.is_finite() && m.high.is_finite()) {
            return bad(format!(
                "aesthetic mapping {}..{} is not finite",
                m.low, m.high
            ));
        }
        Ok(())
    }
}

/// The CLIP side of scoring: image embeddings of the frames (one row per frame, in order)
/// and optionally an aesthetic head and prompt embeddings from the same model.
#[derive(Debug, Clone, Copy)]
pub struct ModelInputs<'a> {
    /// CLIP image embeddings, one row per frame.
    pub image_embeddings: &'a Embeddings,
    /// The embedder's model id (e.g. `openai/clip-vit-large-patch14`), compared with the
    /// head's CLIP family.
    pub model_id: Option<&'a str>,
    /// LAION aesthetic head; aesthetics are not computed without one.
    pub head: Option<&'a AestheticHead>,
    /// CLIP text embeddings of the prompts; saliency is not computed without them.
    pub prompts: Option<&'a Embeddings>,
}

/// All components and the composite score of one frame. Components that were not computed
/// are `None` (`null` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameScore {
    /// Raw variance of the Laplacian.
    pub sharpness_var: f64,
    /// Sharpness normalised across the set, 0..1.
    pub sharpness: f64,
    /// Exposure penalty, 0..1 (higher is worse).
    pub exposure: f64,
    /// Raw LAION aesthetic score (about 1–10).
    pub aesthetics_raw: Option<f64>,
    /// Aesthetic score mapped to 0..1.
    pub aesthetics: Option<f64>,
    /// Text saliency, 0..1.
    pub saliency: Option<f64>,
    /// The composite score, 0..1 (see [`score_frames`]).
    pub score: f64,
}

/// Scores of a set of frames, with the weights actually used and notes on what was left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreSet {
    /// One row per input frame, in order.
    pub rows: Vec<FrameScore>,
    /// The weights used; components not computed have weight 0.
    pub weights: Weights,
    /// True when neither aesthetics nor saliency was computed (no model): the score rests on
    /// sharpness and exposure alone.
    pub model_free: bool,
    /// Human-readable notes: missing model or head, CLIP family mismatches.
    pub notes: Vec<String>,
}

/// Scores a set of frames (a video's sampled frames, or a batch of images).
///
/// Sharpness is normalised across the set with `config.sharpness_norm`. With `model`,
/// aesthetics come from its head and saliency from its prompts; whatever is missing is
/// left out (`None`), its weight set to 0 and, for a missing model or head, a note added.
///
/// The composite over the computed components `C` (exposure always computed) is
///
/// ```text
/// S     = Σ_{c∈C} w_c·c − w_e·exposure          ∈ [−w_e, Σ_{c∈C} w_c]
/// score = (S + w_e) / (Σ_{c∈C} w_c + w_e)        ∈ [0, 1]
/// ```
///
/// a linear map of `S` from its attainable range onto 0..1, which keeps the ranking by `S`
/// and makes scores with and without a model comparable in scale. With the default weights
/// and every component present the denominator is 1, so `score = S + 0.2`.
///
/// ```
/// use reelsmith_score::*;
/// let sharp = image::GrayImage::from_fn(64, 64, |x, y| image::Luma([60 + ((x ^ y) & 1) as u8 * 120]));
/// let flat = image::GrayImage::from_pixel(64, 64, image::Luma([128]));
/// let p = ExposureParams::default();
/// let m = [FrameMeasures::from_gray(&sharp, &p)?, FrameMeasures::from_gray(&flat, &p)?];
/// let set = score_frames(&m, None, &ScoreConfig::default())?;
/// assert!(set.model_free);
/// assert_eq!(set.rows[0].sharpness, 1.0);
/// assert_eq!(set.rows[0].score, 1.0); // (0.3·1 − 0.2·0 + 0.2) / (0.3 + 0.2)
/// assert_eq!(set.rows[1].score, 0.4); // (0.3·0 − 0 + 0.2) / 0.5
/// # Ok::<(), ScoreError>(())
/// ```
pub fn score_frames(
    measures: &[FrameMeasures],
    model: Option<&ModelInputs<'_>>,
    config: &ScoreConfig,
) -> Result<ScoreSet, ScoreError> {
    config.validate()?;
    let w = config.weights;
    let n = measures.len();
    let vars: Vec<f64> = measures.iter().map(|m| m.sharpness_var).collect();
    let sharpness = crate::normalize_sharpness(&vars, config.sharpness_norm);

    let mut notes = Vec::new();
    let mut aesthetics: Option<Vec<f32>> = None;
    let mut saliency: Option<Vec<f32>> = None;
    match model {
        None => notes.push(
            "no CLIP model: aesthetics and saliency not computed; the score uses sharpness and \
             exposure only"
                .to_string(),
        ),
        Some(m) => {
            if m.image_embeddings.len() != n {
                return Err(ScoreError::RowCount {
                    what: "image embeddings",
                    expected: n,
                    got: m.image_embeddings.len(),
                });
            }
            match m.head {
                Some(head) => {
                    if let Some(note) = head.check_embedder(m.image_embeddings.dim(), m.model_id)? {
                        notes.push(note);
                    }
                    aesthetics = Some(head.predict_all(m.image_embeddings)?);
                }
                None => notes.push(
                    "no aesthetic head: aesthetics not computed and left out of the score".into(),
                ),
            }
            if let Some(p) = m.prompts {
                saliency = Some(prompt_similarity(m.image_embeddings, p)?);
            }
        }
    }

    let used = Weights {
        aesthetics: if aesthetics.is_some() {
            w.aesthetics
        } else {
            0.0
        },
        sharpness: w.sharpness,
        exposure: w.exposure,
        saliency: if saliency.is_some() { w.saliency } else { 0.0 },
    };
    let positive = used.aesthetics + used.sharpness + used.saliency;
    let denom = positive + used.exposure;
    if denom <= 0.0 {
        return Err(ScoreError::InvalidWeights(
            "all weights of the computed components are 0".into(),
        ));
    }

    let rows = (0..n)
        .map(|i| {
            let aesthetics_raw = aesthetics.as_ref().map(|a| f64::from(a[i]));
            let aesthetics_01 = aesthetics
                .as_ref()
                .map(|a| f64::from(config.aesthetic_mapping.map(a[i])));
            let saliency_01 = saliency
                .as_ref()
                .map(|s| f64::from(config.saliency_mapping.map(s[i])));
            let exposure = measures[i].exposure.penalty;
            let s = used.aesthetics * aesthetics_01.unwrap_or(0.0)
                + used.sharpness * sharpness[i]
                + used.saliency * saliency_01.unwrap_or(0.0)
                - used.exposure * exposure;
            FrameScore {
                sharpness_var: measures[i].sharpness_var,
                sharpness: sharpness[i],
                exposure,
                aesthetics_raw,
                aesthetics: aesthetics_01,
                saliency: saliency_01,
                score: ((s + used.exposure) / denom).clamp(0.0, 1.0),
            }
        })
        .collect();
    Ok(ScoreSet {
        rows,
        weights: used,
        model_free: aesthetics.is_none() && saliency.is_none(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measures(vars: &[f64], exposure: &[f64]) -> Vec<FrameMeasures> {
        vars.iter()
            .zip(exposure)
            .map(|(&v, &e)| FrameMeasures {
                sharpness_var: v,
                exposure: Exposure {
                    dark_fraction: 0.0,
                    bright_fraction: 0.0,
                    penalty: e,
                },
            })
            .collect()
    }

    #[test]
    fn full_model_composite() {
        let m = measures(&[0.0, 50.0, 100.0], &[0.0, 1.0, 0.5]);
        // Head: score = 1 + 9·x0 on the normalised embedding → raw 10 and 1.
        let head = AestheticHead::from_layers(vec![(vec![9.0, 0.0], vec![1.0])]).unwrap();
        let emb = Embeddings::from_rows(&[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]).unwrap();
        let prompts = Embeddings::from_rows(&[[0.0, 1.0]]).unwrap();
        let inputs = ModelInputs {
            image_embeddings: &emb,
            model_id: None,
            head: Some(&head),
            prompts: Some(&prompts),
        };
        let cfg = ScoreConfig {
            sharpness_norm: SharpnessNorm::MinMax { log: false },
            ..Default::default()
        };
        let set = score_frames(&m, Some(&inputs), &cfg).unwrap();
        assert!(!set.model_free);
        assert!(set.notes.is_empty());
        let r = &set.rows;
        assert_eq!(r[0].aesthetics, Some(1.0));
        assert_eq!(r[1].aesthetics, Some(0.0));
        assert_eq!(r[0].saliency, Some(0.0));
        assert_eq!(r[1].saliency, Some(1.0));
        // Row 0: 0.4·1 + 0.3·0 + 0.1·0 − 0 + 0.2 = 0.6.
        assert!((r[0].score - 0.6).abs() < 1e-9, "{:?}", r[0]);
        // Row 1: 0 + 0.15 + 0.1 − 0.2 + 0.2 = 0.25.
        assert!((r[1].score - 0.25).abs() < 1e-9, "{:?}", r[1]);
        let json = serde_json::to_value(r[0]).unwrap();
        for k in [
            "sharpness_var",
            "sharpness",
            "exposure",
            "aesthetics_raw",
            "aesthetics",
            "saliency",
            "score",
        ] {
            assert!(json.get(k).is_some(), "{k}");
        }
    }

    #[test]
    fn missing_pieces_are_reported() {
        let m = measures(&[1.0, 2.0], &[0.0, 0.0]);
        let emb = Embeddings::from_rows(&[[1.0, 0.0], [0.0, 1.0]]).unwrap();
        let no_head = ModelInputs {
            image_embeddings: &emb,
            model_id: None,
            head: None,
            prompts: None,
        };
        let set = score_frames(&m, Some(&no_head), &ScoreConfig::default()).unwrap();
        assert!(set.model_free);
        assert_eq!(set.weights.aesthetics, 0.0);
        assert_eq!(set.weights.saliency, 0.0);
        assert!(set.notes[0].contains("no aesthetic head"));
        let json = serde_json::to_value(set.rows[0]).unwrap();
        assert!(json["aesthetics"].is_null() && json["saliency"].is_null());

        let short = Embeddings::from_rows(&[[1.0, 0.0]]).unwrap();
        let bad = ModelInputs {
            image_embeddings: &short,
            ..no_head
        };
        assert!(matches!(
            score_frames(&m, Some(&bad), &ScoreConfig::default()),
            Err(ScoreError::RowCount {
                expected: 2,
                got: 1,
                ..
            })
        ));
        let wide = Embeddings::from_rows(&[[1.0, 0.0, 0.0]]).unwrap();
        let bad = ModelInputs {
            prompts: Some(&wide),
            ..no_head
        };
        assert!(matches!(
            score_frames(&m, Some(&bad), &ScoreConfig::default()),
            Err(ScoreError::DimMismatch { .. })
        ));
        let mut cfg = ScoreConfig::default();
        cfg.weights.sharpness = -1.0;
        assert!(matches!(
            score_frames(&m, None, &cfg),
            Err(ScoreError::InvalidWeights(_))
        ));
    }
}
