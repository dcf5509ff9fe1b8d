//! Greedy diversity filter.

use reelsmith_core::{cosine_similarity, Embeddings};

/// Walks `candidates` (row indices into `emb`) in descending `scores` order (ties by
/// position) and keeps one when its cosine distance to every kept one exceeds `tau`,
/// stopping at `max_count`. `scores[i]` belongs to `candidates[i]`; missing or non-finite
/// scores rank last. Out-of-range candidates are skipped. Returns kept row indices in the
/// order they were kept. Cost O(c · max_count · d).
///
/// ```
/// use reelsmith_core::Embeddings;
/// use reelsmith_segment::diversity::diverse;
/// let e = Embeddings::from_rows(&[[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]]).unwrap();
/// assert_eq!(diverse(&e, &[0, 1, 2], &[3.0, 2.0, 1.0], 0.1, 10), vec![0, 2]);
/// ```
pub fn diverse(
    emb: &Embeddings,
    candidates: &[usize],
    scores: &[f32],
    tau: f32,
    max_count: usize,
) -> Vec<usize> {
    let key = |p: usize| match scores.get(p) {
        Some(s) if s.is_finite() => *s,
        _ => f32::NEG_INFINITY,
    };
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    let mut kept: Vec<usize> = Vec::new();
    for p in order {
        if kept.len() >= max_count {
            break;
        }
        let c = candidates[p];
        let Some(row) = emb.get(c) else { continue };
        if kept
            .iter()
            .all(|&k| 1.0 - cosine_similarity(row, emb.row(k)) > tau)
        {
            kept.push(c);
        }
    }
    kept
}
