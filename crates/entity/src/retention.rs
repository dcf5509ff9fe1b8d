//! Retention: how well a video keeps the remembered entities. Per sampled frame, the caller
//! segments the frame and embeds the candidates (with the same embedder as the memory);
//! [`Retention::observe`] matches candidates to entities by cosine similarity, one candidate
//! per entity (greedy on the highest similarity first), and records each entity's best
//! similarity and whether it counts as present. [`Retention::report`] summarises; the
//! writers produce `retention.csv`, `retention.png` and `retention.json`.

use std::path::Path;

use plotters::prelude::*;
use reelsmith_core::{cosine_similarity, FrameRef};
use serde::{Deserialize, Serialize};

use crate::entity::FrameEntities;
use crate::mask::BBox;
use crate::output::{font_available, png_bytes, write_atomic};
use crate::EntityError;

/// One segmented region of a sampled frame, embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its embedding (same embedder and dimension as the memory's entities).
    pub embedding: Vec<f32>,
    /// Where it is in the frame, if known.
    pub bbox: Option<BBox>,
    /// The segmenter's confidence.
    pub score: f32,
}

/// Matching settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetentionOptions {
    /// An entity is present in a frame when its matched candidate's cosine similarity is at
    /// least this (0.5). The right value depends on the embedder: same-object DINOv2 crops
    /// typically score well above 0.5, unrelated objects near 0.
    pub presence_threshold: f32,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        Self {
            presence_threshold: 0.5,
        }
    }
}

/// One entity in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EntityMatch {
    /// The entity's id.
    pub entity: usize,
    /// Index of the matched candidate, `None` when no candidate was left for it.
    pub candidate: Option<usize>,
    /// Cosine similarity of the match (0 when unmatched).
    pub similarity: f32,
    /// Whether the similarity reaches the presence threshold.
    pub present: bool,
    /// The matched candidate's box.
    pub bbox: Option<BBox>,
}

/// All entities in one sampled frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameObservation {
    /// The sampled frame.
    pub frame: FrameRef,
    /// How many candidates the frame had.
    pub candidates: usize,
    /// One match per entity, in memory order.
    pub matches: Vec<EntityMatch>,
}

/// Per-entity summary over the video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntitySummary {
    /// The entity's id.
    pub entity: usize,
    /// Its label, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Mean over sampled frames of the best similarity (unmatched frames count 0).
    pub mean_best_similarity: f32,
    /// Lowest best similarity over the frames.
    pub min_best_similarity: f32,
    /// Fraction of sampled frames where the entity is present.
    pub fraction_present: f32,
    /// First sampled frame where it is not present (`None`: never lost).
    pub first_frame_lost: Option<FrameRef>,
}

/// The retention summary (`retention.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// Sampled frames.
    pub frames: usize,
    /// The settings used.
    pub options: RetentionOptions,
    /// Mean of the entities' `mean_best_similarity` (the number to compare fine-tunes by).
    pub mean_best_similarity: f32,
    /// Mean of the entities' `fraction_present`.
    pub fraction_present: f32,
    /// Per entity.
    pub entities: Vec<EntitySummary>,
}

/// Matches remembered entities against the candidates of sampled frames.
#[derive(Debug, Clone)]
pub struct Retention {
    ids: Vec<usize>,
    labels: Vec<Option<String>>,
    embeddings: Vec<Vec<f32>>,
    options: RetentionOptions,
    observations: Vec<FrameObservation>,
}

impl Retention {
    /// From an entity memory whose entities all have embeddings.
    pub fn new(memory: &FrameEntities, options: RetentionOptions) -> Result<Self, EntityError> {
        let mut embeddings = Vec::with_capacity(memory.entities.len());
        for e in &memory.entities {
            embeddings.push(e.embedding.clone().ok_or_else(|| {
                EntityError::Invalid(format!(
                    "entity {} has no embedding; build the memory with embeddings to measure retention",
                    e.id
                ))
            })?);
        }
        let mut r = Self::from_embeddings(embeddings, options)?;
        r.ids = memory.entities.iter().map(|e| e.id).collect();
        r.labels = memory.entities.iter().map(|e| e.label.clone()).collect();
        Ok(r)
    }

    /// From bare embeddings (ids 0, 1, …); all of one non-zero dimension.
    pub fn from_embeddings(
        embeddings: Vec<Vec<f32>>,
        options: RetentionOptions,
    ) -> Result<Self, EntityError> {
        if embeddings.is_empty() {
            return Err(EntityError::Invalid("no entities to follow".into()));
        }
        let d = embeddings[0].len();
        if d == 0 || embeddings.iter().any(|e| e.len() != d) {
            return Err(EntityError::Invalid(
                "entity embeddings must share one non-zero dimension".into(),
            ));
        }
        if !options.presence_threshold.is_finite() {
            return Err(EntityError::Invalid(
                "presence threshold must be finite".into(),
            ));
        }
        Ok(Self {
            ids: (0..embeddings.len()).collect(),
            labels: vec![None; embeddings.len()],
            embeddings,
            options,
            observations: Vec::new(),
        })
    }

    /// Matches one frame's candidates (one candidate per entity, greedy on the highest
    /// similarity) and records it. Errors on a candidate of the wrong dimension.
    pub fn observe(
        &mut self,
        frame: FrameRef,
        candidates: &[Candidate],
    ) -> Result<&FrameObservation, EntityError> {
        let d = self.embeddings[0].len();
        if let Some((i, c)) = candidates
            .iter()
            .enumerate()
            .find(|(_, c)| c.embedding.len() != d)
        {
            return Err(EntityError::Invalid(format!(
                "candidate {i} of frame {} has dimension {}, the entities {d}: embed both with the same model",
                frame.index,
                c.embedding.len()
            )));
        }
        let mut pairs = Vec::with_capacity(self.embeddings.len() * candidates.len());
        for (e, emb) in self.embeddings.iter().enumerate() {
            for (c, cand) in candidates.iter().enumerate() {
                let s = cosine_similarity(emb, &cand.embedding);
                pairs.push((if s.is_finite() { s } else { 0.0 }, e, c));
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut matches: Vec<EntityMatch> = self
            .ids
            .iter()
            .map(|&id| EntityMatch {
                entity: id,
                candidate: None,
                similarity: 0.0,
                present: false,
                bbox: None,
            })
            .collect();
        let mut taken = vec![false; candidates.len()];
        for (s, e, c) in pairs {
            if matches[e].candidate.is_some() || taken[c] {
                continue;
            }
            taken[c] = true;
            matches[e] = EntityMatch {
                entity: self.ids[e],
                candidate: Some(c),
                similarity: s,
                present: s >= self.options.presence_threshold,
                bbox: candidates[c].bbox,
            };
        }
        self.observations.push(FrameObservation {
            frame,
            candidates: candidates.len(),
            matches,
        });
        Ok(self.observations.last().expect("just pushed"))
    }

    /// The recorded frames, in observation order.
    pub fn observations(&self) -> &[FrameObservation] {
        &self.observations
    }

    /// The summary over all observed frames.
    pub fn report(&self) -> RetentionReport {
        let n = self.observations.len();
        let entities: Vec<EntitySummary> = (0..self.ids.len())
            .map(|e| {
                let sims: Vec<f32> = self
                    .observations
                    .iter()
                    .map(|o| o.matches[e].similarity)
                    .collect();
                let present = self
                    .observations
                    .iter()
                    .filter(|o| o.matches[e].present)
                    .count();
                EntitySummary {
                    entity: self.ids[e],
                    label: self.labels[e].clone(),
                    mean_best_similarity: mean(&sims),
                    min_best_similarity: sims
                        .iter()
                        .copied()
                        .fold(f32::INFINITY, f32::min)
                        .min(if n == 0 { 0.0 } else { f32::INFINITY }),
                    fraction_present: if n == 0 {
                        0.0
                    } else {
                        present as f32 / n as f32
                    },
                    first_frame_lost: self
                        .observations
                        .iter()
                        .find(|o| !o.matches[e].present)
                        .map(|o| o.frame),
                }
            })
            .collect();
        RetentionReport {
            frames: n,
            options: self.options,
            mean_best_similarity: mean(
                &entities
                    .iter()
                    .map(|s| s.mean_best_similarity)
                    .collect::<Vec<_>>(),
            ),
            fraction_present: mean(
                &entities
                    .iter()
                    .map(|s| s.fraction_present)
                    .collect::<Vec<_>>(),
            ),
            entities,
        }
    }

    /// `retention.csv`: one row per frame and entity (frame, time, entity, similarity,
    /// present, candidate, box).
    pub fn write_csv(&self, path: &Path) -> Result<(), EntityError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let err = |e: csv::Error| EntityError::Invalid(format!("{}: {e}", path.display()));
        w.write_record([
            "frame",
            "time",
            "entity",
            "similarity",
            "present",
            "candidate",
            "x",
            "y",
            "width",
            "height",
        ])
        .map_err(err)?;
        for o in &self.observations {
            for m in &o.matches {
                let b = m.bbox;
                let f = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
                w.write_record([
                    o.frame.index.to_string(),
                    format!("{:.4}", o.frame.time),
                    m.entity.to_string(),
                    format!("{:.6}", m.similarity),
                    u8::from(m.present).to_string(),
                    m.candidate.map(|c| c.to_string()).unwrap_or_default(),
                    f(b.map(|b| b.x)),
                    f(b.map(|b| b.y)),
                    f(b.map(|b| b.width)),
                    f(b.map(|b| b.height)),
                ])
                .map_err(err)?;
            }
        }
        let bytes = w
            .into_inner()
            .map_err(|e| EntityError::Invalid(e.to_string()))?;
        write_atomic(path, &bytes)
    }

    /// `retention.json`: the [`RetentionReport`].
    pub fn write_json(&self, path: &Path) -> Result<(), EntityError> {
        let bytes = serde_json::to_vec_pretty(&self.report()).map_err(|e| EntityError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        write_atomic(path, &bytes)
    }

    /// `retention.png`: best similarity over time per entity (solid lines in the overlay's
    /// colours) and the presence threshold (dashed).
    pub fn write_plot(&self, path: &Path) -> Result<(), EntityError> {
        let (w, h) = (1000u32, 420u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        let text = font_available();
        let perr = |e: &dyn std::fmt::Display| {
            EntityError::Invalid(format!("{}: cannot draw the plot: {e}", path.display()))
        };
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| perr(&e))?;
            let t_max = self
                .observations
                .iter()
                .map(|o| o.frame.time)
                .fold(0.0f64, f64::max)
                .max(1e-3);
            let lo = self
                .observations
                .iter()
                .flat_map(|o| o.matches.iter().map(|m| m.similarity))
                .fold(0.0f32, f32::min)
                .min(0.0) as f64;
            let mut b = ChartBuilder::on(&root);
            b.margin(12);
            if text {
                b.caption("entity retention", ("sans-serif", 20))
                    .x_label_area_size(36)
                    .y_label_area_size(48);
            }
            let mut chart = b
                .build_cartesian_2d(0f64..t_max, lo..1.0f64)
                .map_err(|e| perr(&e))?;
            if text {
                chart
                    .configure_mesh()
                    .x_desc("time (s)")
                    .y_desc("best cosine similarity")
                    .draw()
                    .map_err(|e| perr(&e))?;
            }
            let thr = self.options.presence_threshold as f64;
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, thr), (t_max, thr)],
                    6,
                    4,
                    BLACK.stroke_width(1),
                ))
                .map_err(|e| perr(&e))?;
            for e in 0..self.ids.len() {
                let [r, g, bl] = crate::entity::palette(e);
                let color = RGBColor(r, g, bl);
                let pts: Vec<(f64, f64)> = self
                    .observations
                    .iter()
                    .map(|o| (o.frame.time, o.matches[e].similarity as f64))
                    .collect();
                let s = chart
                    .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                    .map_err(|e| perr(&e))?;
                if text {
                    s.label(format!("entity {}", self.ids[e]))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                        });
                }
            }
            if text && !self.ids.is_empty() {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| perr(&e))?;
            }
            root.present().map_err(|e| perr(&e))?;
        }
        let img = image::RgbImage::from_raw(w, h, buf).expect("plot buffer of w*h*3");
        write_atomic(path, &png_bytes(&img)?)
    }
}

fn mean(v: &[f32]) -> f32 {
    if v.is_empty() {
        0.0
    } else {
        (v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(v: &[f32]) -> Candidate {
        Candidate {
            embedding: v.to_vec(),
            bbox: None,
            score: 1.0,
        }
    }

    fn fr(i: u64) -> FrameRef {
        FrameRef {
            index: i,
            time: i as f64 / 10.0,
        }
    }

    #[test]
    fn one_candidate_per_entity_greedy_on_similarity() {
        let mut r = Retention::from_embeddings(
            vec![vec![1.0, 0.0, 0.0], vec![0.9, 0.1, 0.0]],
            RetentionOptions::default(),
        )
        .unwrap();
        // Both entities like candidate 0 best; entity 0 (higher similarity) takes it, entity
        // 1 falls back to candidate 1.
        let o = r
            .observe(fr(0), &[cand(&[1.0, 0.0, 0.0]), cand(&[0.0, 1.0, 0.0])])
            .unwrap()
            .clone();
        assert_eq!(o.matches[0].candidate, Some(0));
        assert!((o.matches[0].similarity - 1.0).abs() < 1e-6);
        assert_eq!(o.matches[1].candidate, Some(1));
        assert!(!o.matches[1].present);
        // No candidates: nobody present, similarity 0.
        r.observe(fr(1), &[]).unwrap();
        r.observe(fr(2), &[cand(&[0.9, 0.1, 0.0]), cand(&[1.0, 0.0, 0.0])])
            .unwrap();
        let rep = r.report();
        assert_eq!(rep.frames, 3);
        let e0 = &rep.entities[0];
        assert!((e0.fraction_present - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(e0.first_frame_lost, Some(fr(1)));
        assert_eq!(e0.min_best_similarity, 0.0);
        let e1 = &rep.entities[1];
        assert_eq!(e1.first_frame_lost, Some(fr(0)));
        // Wrong dimension: an error naming the frame, nothing recorded.
        assert!(r.observe(fr(3), &[cand(&[1.0])]).is_err());
        assert_eq!(r.observations().len(), 3);
    }

    #[test]
    fn writers_produce_csv_json_png() {
        let mut r =
            Retention::from_embeddings(vec![vec![1.0, 0.0]], RetentionOptions::default()).unwrap();
        for i in 0..5 {
            let a = i as f32 * 0.3;
            r.observe(fr(i), &[cand(&[a.cos(), a.sin()])]).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        r.write_csv(&dir.path().join("retention.csv")).unwrap();
        r.write_json(&dir.path().join("retention.json")).unwrap();
        r.write_plot(&dir.path().join("retention.png")).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("retention.csv")).unwrap();
        assert_eq!(csv.lines().count(), 6);
        assert!(csv
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("0,0.0000,0,1.000000,1,0"));
        let rep: RetentionReport =
            serde_json::from_slice(&std::fs::read(dir.path().join("retention.json")).unwrap())
                .unwrap();
        assert_eq!(rep.entities[0].first_frame_lost.map(|f| f.index), Some(4));
        let png = image::open(dir.path().join("retention.png")).unwrap();
        assert_eq!((png.width(), png.height()), (1000, 420));
        assert!(Retention::from_embeddings(vec![], RetentionOptions::default()).is_err());
    }
}
