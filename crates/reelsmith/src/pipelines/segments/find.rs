//! Where segments begin: successor seams on the sampled embeddings combined with the shot
//! detector's transitions on every frame, under the minimum and maximum duration.

use reelsmith_core::{Embeddings, FrameRef};
use reelsmith_segment::boundaries::{self, BoundaryKind, Candidate};
use reelsmith_segment::seams::thresholds as rule_thresholds;
use reelsmith_segment::shots::{Transition, TransitionKind};
use reelsmith_segment::successor_distances;
use reelsmith_segment::surveyor::{surveyor_seam_thresholds, SurveyorOptions};

use super::{SegmentsConfig, ThresholdRule};

/// Every frame of the video as the analysis decode saw it.
pub(super) struct AllFrames<'a> {
    /// Presentation time of every frame.
    pub times: &'a [f64],
    /// Pixel-embedder rows of every frame (for snapping seams to the frame that changes).
    pub rows: &'a Embeddings,
    /// Shot transitions found on them (empty when shot detection is off).
    pub transitions: &'a [Transition],
}

/// A boundary: the first frame of a new segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Boundary {
    /// Decoded-frame index of the segment's first frame.
    pub frame: usize,
    /// Its time.
    pub time: f64,
    /// Why a segment starts here.
    pub kind: BoundaryKind,
}

/// The successor curve and the seams on it, for the report and `successor.png`.
pub(super) struct Successor {
    /// Time of the later frame of each sampled pair.
    pub times: Vec<f64>,
    /// Successor distances, min-max normalised to `[0, 1]`.
    pub score: Vec<f32>,
    /// The threshold each one was compared with (same scale).
    pub threshold: Vec<f32>,
}

/// What [`find`] decided.
pub(super) struct Found {
    /// Boundaries in time order (the first segment starts at 0 and has none).
    pub boundaries: Vec<Boundary>,
    /// The successor curve.
    pub successor: Successor,
    /// Seams that passed the threshold, as (sample index of the later frame).
    pub seam_samples: Vec<usize>,
}

/// The normalised successor distances of `emb` and their thresholds under `config`.
pub(super) fn successor(emb: &Embeddings, config: &SegmentsConfig) -> (Vec<f32>, Vec<f32>) {
    let raw = successor_distances(emb, config.metric.metric());
    let (lo, hi) = raw
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    let norm = |v: f32| {
        if range > 0.0 && range.is_finite() {
            (v - lo) / range
        } else {
            0.0
        }
    };
    let score: Vec<f32> = raw.iter().map(|&v| norm(v)).collect();
    let window = ((config.window_seconds * config.fps).round() as usize).max(1);
    let mut thr = match config.threshold {
        ThresholdRule::Fixed(v) => {
            rule_thresholds(&score, reelsmith_segment::seams::Threshold::Fixed(v))
        }
        ThresholdRule::Dynamic(k) => rule_thresholds(
            &score,
            reelsmith_segment::seams::Threshold::Dynamic { window, k },
        ),
    };
    if config.surveyor {
        let opts = SurveyorOptions {
            window: ((config.surveyor_window_seconds * config.fps).round() as usize).max(2),
            step: ((config.surveyor_window_seconds * config.fps / 2.0).round() as usize).max(1),
            ..SurveyorOptions::for_fps(config.fps)
        };
        let surveyed = surveyor_seam_thresholds(emb, &opts);
        for (t, s) in thr.iter_mut().zip(surveyed) {
            // The surveyor's raw-distance threshold on the normalised scale; both must pass.
            let s = if s.is_finite() {
                norm(s)
            } else {
                f32::INFINITY
            };
            if s > *t {
                *t = s;
            }
        }
    }
    (score, thr)
}

/// Finds the segment boundaries.
pub(super) fn find(
    sampled: &[FrameRef],
    emb: &Embeddings,
    all: &AllFrames<'_>,
    end: f64,
    config: &SegmentsConfig,
) -> Found {
    let (score, threshold) = successor(emb, config);
    let n_frames = all.times.len();
    let time_of = |f: usize| all.times.get(f).copied();
    // Per frame: how much it differs from the one before (analysis rows, L1).
    let change: Vec<f32> = (0..n_frames)
        .map(|i| {
            if i == 0 || i >= all.rows.len() {
                0.0
            } else {
                reelsmith_segment::Metric::L1.distance(all.rows.row(i - 1), all.rows.row(i))
            }
        })
        .collect();
    // The frame in (a, b] that changes most: where a seam between samples a and b lies.
    let snap = |a: usize, b: usize| -> usize {
        let hi = b.min(n_frames.saturating_sub(1));
        ((a + 1)..=hi)
            .max_by(|&x, &y| change[x].total_cmp(&change[y]).then(y.cmp(&x)))
            .unwrap_or(b)
    };
    let mut cands: Vec<(Candidate, usize)> = Vec::new();
    for t in all.transitions {
        let Some(at) = time_of(t.frame) else { continue };
        let kind = match t.kind {
            TransitionKind::Cut => BoundaryKind::Cut,
            TransitionKind::Gradual => BoundaryKind::Gradual,
        };
        cands.push((
            Candidate {
                at,
                kind,
                strength: t.score,
            },
            t.frame,
        ));
    }
    let covered = |a: usize, b: usize| {
        all.transitions.iter().any(|t| {
            let (s, e) = t.span.unwrap_or((t.frame, t.frame));
            // The transition touches the sampling interval (a, b].
            e > a && s <= b
        })
    };
    let mut seam_samples = Vec::new();
    // Every sampled gap, snapped: candidates for seams and for splits.
    let mut gaps: Vec<(f64, f32, usize)> = Vec::with_capacity(score.len());
    for (j, (&d, &thr)) in score.iter().zip(&threshold).enumerate() {
        let (a, b) = (sampled[j].index as usize, sampled[j + 1].index as usize);
        let frame = if n_frames > 0 { snap(a, b) } else { b };
        let at = time_of(frame).unwrap_or(sampled[j + 1].time);
        gaps.push((at, d, frame));
        if d > thr {
            seam_samples.push(j + 1);
            if !covered(a, b) {
                cands.push((
                    Candidate {
                        at,
                        kind: BoundaryKind::Seam,
                        strength: d,
                    },
                    frame,
                ));
            }
        }
    }
    let min_len = config.min_seconds;
    let chosen = boundaries::select(
        &cands.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        end,
        min_len,
    );
    let frame_at = |at: f64, kind: BoundaryKind| {
        cands
            .iter()
            .find(|(c, _)| c.at == at && c.kind == kind)
            .map(|(_, f)| *f)
    };
    let mut out: Vec<Boundary> = chosen
        .iter()
        .filter_map(|c| {
            Some(Boundary {
                frame: frame_at(c.at, c.kind)?,
                time: c.at,
                kind: c.kind,
            })
        })
        .collect();
    let starts: Vec<f64> = out.iter().map(|b| b.time).collect();
    let split_at: Vec<(f64, f32)> = gaps.iter().map(|g| (g.0, g.1)).collect();
    for s in boundaries::split_long(&starts, end, min_len, config.max_seconds, &split_at) {
        let frame = gaps
            .iter()
            .find(|g| g.0 == s)
            .map(|g| g.2)
            .unwrap_or_else(|| frame_of_time(all.times, s));
        out.push(Boundary {
            frame,
            time: time_of(frame).unwrap_or(s),
            kind: BoundaryKind::Split,
        });
    }
    out.sort_by(|a, b| a.time.total_cmp(&b.time));
    out.dedup_by(|a, b| a.frame == b.frame);
    Found {
        boundaries: out,
        successor: Successor {
            times: sampled.iter().skip(1).map(|f| f.time).collect(),
            score,
            threshold,
        },
        seam_samples,
    }
}

/// The first frame at or after `t` (the last frame when none).
fn frame_of_time(times: &[f64], t: f64) -> usize {
    times
        .partition_point(|&x| x < t - 1e-9)
        .min(times.len().saturating_sub(1))
}

/// Sampled rows at `fps` from every frame's times, as FFmpeg's `fps` filter picks them:
/// slot `k` holds the times that round to `k / fps`, and the last frame of a slot is kept.
pub(super) fn sample_at_fps(times: &[f64], fps: f64) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    let mut last_slot: Option<i64> = None;
    for (i, &t) in times.iter().enumerate() {
        let slot = (t * fps).round() as i64;
        if last_slot == Some(slot) {
            if let Some(l) = out.last_mut() {
                *l = i;
            }
        } else {
            out.push(i);
            last_slot = Some(slot);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_sampling_keeps_the_last_frame_of_each_slot() {
        let times: Vec<f64> = (0..25).map(|i| f64::from(i) / 10.0).collect();
        // Slots at 2 fps: t*2 rounds to 0 for t < 0.25 → frames 0, 1, 2 → keep 2.
        assert_eq!(sample_at_fps(&times, 2.0), vec![2, 7, 12, 17, 22, 24]);
        assert!(sample_at_fps(&[], 2.0).is_empty());
    }

    #[test]
    fn frame_of_time_is_the_first_at_or_after() {
        let times = [0.0, 0.04, 0.08, 0.12];
        assert_eq!(frame_of_time(&times, 0.05), 2);
        assert_eq!(frame_of_time(&times, 0.08), 2);
        assert_eq!(frame_of_time(&times, 9.0), 3);
    }
}
