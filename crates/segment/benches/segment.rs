//! Criterion benchmarks of the segmentation algorithms at 1 M frames × 512 dims where it
//! applies (the embedding-wide ones), 1 M-value series for the series ones, and smaller
//! sizes for the surveyor (its k-nearest neighbours per window make it linear with a large constant).
//!
//! Run with `cargo bench -p reelsmith-segment`; `REELSMITH_BENCH_FRAMES` overrides the frame
//! count (for a quick look).
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use reelsmith_core::Embeddings;
use reelsmith_segment::{
    diversity::diverse,
    keyframes::quantile_keyframes,
    peaks::{find_peaks, smooth, top_k},
    seams::{seams, SeamOptions},
    shots::{detect_shots, ShotOptions},
    successor_distances,
    summary::summarize,
    surveyor::{survey, SurveyorOptions},
    Metric,
};

fn frames() -> usize {
    std::env::var("REELSMITH_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Deterministic pseudo-random embeddings with a shot change every 100 frames.
fn embeddings(n: usize, dim: usize) -> Embeddings {
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut base: Vec<f32> = (0..dim).map(|_| next()).collect();
    let mut data = Vec::with_capacity(n * dim);
    for i in 0..n {
        if i % 100 == 0 {
            base.iter_mut().for_each(|v| *v = next());
        }
        data.extend(base.iter().map(|b| (b + 0.01 * next()) / dim as f32));
    }
    Embeddings::new(data, dim).expect("shape is consistent")
}

fn bench(c: &mut Criterion) {
    let n = frames();
    let e = embeddings(n, 512);
    let d = successor_distances(&e, Metric::Euclidean);
    let mut g = c.benchmark_group("segment");
    g.sample_size(10);
    g.bench_function("successor_distances_1Mx512", |b| {
        b.iter(|| successor_distances(&e, Metric::Euclidean))
    });
    g.bench_function("seams_dynamic_1M", |b| {
        b.iter(|| {
            seams(
                &d,
                &SeamOptions {
                    max_len: Some(1000),
                    ..Default::default()
                },
            )
        })
    });
    g.bench_function("quantile_keyframes_1M", |b| {
        b.iter(|| quantile_keyframes(&d, 0.85))
    });
    g.bench_function("smooth_peaks_topk_1M", |b| {
        b.iter(|| {
            let s = smooth(&d, 9);
            let p = find_peaks(&s, 25);
            top_k(&s, 100).len() + p.len()
        })
    });
    let cand: Vec<usize> = (0..n).step_by(97).collect();
    let scores: Vec<f32> = cand
        .iter()
        .map(|&i| d.get(i).copied().unwrap_or(0.0))
        .collect();
    g.bench_function("diversity_10k_candidates", |b| {
        b.iter(|| diverse(&e, &cand, &scores, 0.05, 64))
    });
    let ranges: Vec<_> = (0..n).step_by(100).map(|s| s..(s + 100).min(n)).collect();
    g.bench_function("summarize_1Mx512", |b| {
        b.iter(|| summarize(&e, &ranges, 25.0))
    });
    let opts = ShotOptions {
        metric: Metric::L1,
        ..ShotOptions::for_fps(25.0)
    };
    g.bench_function("detect_shots_1Mx512", |b| {
        b.iter(|| detect_shots(&e, &opts))
    });
    let small = embeddings((n / 10).max(2), 512);
    g.bench_function("surveyor_100kx512", |b| {
        b.iter(|| survey(&small, &SurveyorOptions::for_fps(25.0)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
