//! Property and behaviour tests of reelsmith-segment: empty, one-frame, constant and
//! non-finite inputs never panic and give the documented results; shot detection handles
//! cuts, flashes and dissolves on constructed embeddings.

use proptest::prelude::*;
use reelsmith_core::Embeddings;
use reelsmith_segment::{
    diversity::diverse,
    keyframes::{quantile, quantile_keyframes},
    min_max_normalize,
    peaks::{find_peaks, smooth, top_k},
    seams::{seams, segments_from_starts, SeamOptions, Threshold},
    shots::{detect_shots, ShotOptions, TransitionKind},
    successor_distances,
    summary::summarize,
    surveyor::{survey, survey_thresholds, SurveyorOptions},
    Metric,
};

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -10.0f32..10.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
    ]
}

fn emb_strategy() -> impl Strategy<Value = Embeddings> {
    (1usize..6, 0usize..40).prop_flat_map(|(dim, n)| {
        proptest::collection::vec(value(), dim * n)
            .prop_map(move |data| Embeddings::new(data, dim).expect("consistent shape"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn series_functions_never_panic(v in proptest::collection::vec(value(), 0..60), w in 0usize..10, q in -1.0f64..2.0) {
        let s = smooth(&v, w);
        prop_assert_eq!(s.len(), v.len());
        prop_assert!(s.iter().all(|x| x.is_finite()));
        let p = find_peaks(&v, w);
        prop_assert!(p.windows(2).all(|x| x[1] - x[0] >= w.max(1)));
        prop_assert!(p.iter().all(|&i| v[i].is_finite()));
        prop_assert_eq!(top_k(&v, 5).len(), v.len().min(5));
        let (k, t) = quantile_keyframes(&v, q);
        if let Some(t) = t {
            prop_assert!(k.iter().all(|&i| i >= 1 && f64::from(v[i]) > t));
        } else {
            prop_assert!(k.is_empty());
        }
        let mut m = v.clone();
        min_max_normalize(&mut m);
        prop_assert!(m.iter().all(|x| (0.0..=1.0).contains(x)));
        let st = seams(&v, &SeamOptions { min_len: w, max_len: Some(w + 3), ..Default::default() });
        prop_assert!(st.windows(2).all(|x| x[0] < x[1]));
        prop_assert!(st.iter().all(|&s| s >= 1 && s <= v.len()));
        let segs = segments_from_starts(&st, v.len() + 1);
        prop_assert!(segs.iter().all(|r| r.len() <= w + 3));
    }

    #[test]
    fn embedding_functions_never_panic(e in emb_strategy()) {
        for metric in [Metric::L1, Metric::Euclidean, Metric::Cosine] {
            let d = successor_distances(&e, metric);
            prop_assert_eq!(d.len(), e.len().saturating_sub(1));
            prop_assert!(d.iter().all(|x| x.is_finite() && *x >= 0.0));
            let det = detect_shots(&e, &ShotOptions { metric, ..ShotOptions::for_fps(10.0) });
            if e.is_empty() {
                prop_assert!(det.shots.is_empty());
            } else {
                prop_assert_eq!(det.shots.first().unwrap().start, 0);
                prop_assert_eq!(det.shots.last().unwrap().end, e.len() - 1);
                prop_assert_eq!(det.shots.len(), det.transitions.len() + 1);
                for w in det.shots.windows(2) {
                    prop_assert_eq!(w[0].end + 1, w[1].start);
                }
            }
        }
        let cand: Vec<usize> = (0..e.len() + 2).collect();
        let kept = diverse(&e, &cand, &[1.0; 3], 0.1, 4);
        prop_assert!(kept.len() <= 4 && kept.iter().all(|&k| k < e.len()));
        let whole = std::iter::once(0..e.len()).collect::<Vec<_>>();
        let sums = summarize(&e, &whole, 25.0);
        prop_assert_eq!(sums.len(), usize::from(!e.is_empty()));
        let opts = SurveyorOptions { window: 10, step: 5, ..SurveyorOptions::for_fps(1.0) };
        let w = survey(&e, &opts);
        prop_assert_eq!(survey_thresholds(&w, e.len()).len(), e.len().saturating_sub(1));
    }
}

#[test]
fn empty_one_and_constant_inputs() {
    let empty = Embeddings::empty(3).unwrap();
    let det = detect_shots(&empty, &ShotOptions::default());
    assert!(det.transitions.is_empty() && det.shots.is_empty());
    let one = Embeddings::from_rows(&[[1.0, 2.0]]).unwrap();
    let det = detect_shots(&one, &ShotOptions::default());
    assert_eq!(det.shots.len(), 1);
    assert_eq!((det.shots[0].start, det.shots[0].end), (0, 0));
    let constant = Embeddings::from_rows(&vec![[0.3f32, 0.1]; 500]).unwrap();
    let det = detect_shots(&constant, &ShotOptions::default());
    assert!(det.transitions.is_empty());
    assert!(seams(
        &successor_distances(&constant, Metric::L1),
        &SeamOptions::default()
    )
    .is_empty());
    assert_eq!(quantile(&[], 0.5), None);
    assert!(survey(&one, &SurveyorOptions::default()).is_empty());
    assert!(find_peaks(&[], 3).is_empty());
}

/// Frames of flat "pictures": each row is `dim` copies of a level scaled so that L1 equals
/// the level difference, plus a small deterministic wobble standing in for motion/noise.
fn flat_frames(levels: &[f32], dim: usize) -> Embeddings {
    let rows: Vec<Vec<f32>> = levels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (0..dim)
                .map(|k| {
                    let wob = 0.002 * (((i * 7 + k * 13) % 11) as f32 / 11.0 - 0.5);
                    (l + wob) / dim as f32
                })
                .collect()
        })
        .collect();
    Embeddings::from_rows(&rows).unwrap()
}

#[test]
fn cut_flash_and_dissolve() {
    let mut levels = vec![0.2f32; 60];
    levels.extend(vec![0.6; 60]); // hard cut at 60
    levels[90] = 0.95; // two-frame flash inside the second shot
    levels[91] = 0.95;
    let base = levels.len();
    levels.extend(vec![0.6; 40]);
    // a 20-frame dissolve from 0.6 to 0.1 starting at `base + 40`
    for k in 0..20 {
        levels.push(0.6 - 0.5 * (k + 1) as f32 / 21.0);
    }
    levels.extend(vec![0.1; 60]);
    let e = flat_frames(&levels, 8);
    let det = detect_shots(&e, &ShotOptions::for_fps(25.0));
    let cuts: Vec<usize> = det
        .transitions
        .iter()
        .filter(|t| t.kind == TransitionKind::Cut)
        .map(|t| t.frame)
        .collect();
    assert_eq!(cuts, vec![60], "flash must not cut: {:?}", det.transitions);
    let grad: Vec<_> = det
        .transitions
        .iter()
        .filter(|t| t.kind == TransitionKind::Gradual)
        .collect();
    assert_eq!(grad.len(), 1, "{:?}", det.transitions);
    let (a, b) = grad[0].span.unwrap();
    let (ga, gb) = (base + 40, base + 59);
    assert!(
        a + 3 >= ga && a <= ga + 3 && b + 3 >= gb && b <= gb + 3,
        "span {a}-{b}"
    );
}

#[test]
fn fixed_and_dynamic_thresholds_find_a_jump() {
    let mut d = vec![0.1f32; 100];
    d[50] = 1.0;
    for rule in [
        Threshold::Fixed(0.5),
        Threshold::Dynamic { window: 25, k: 2.0 },
    ] {
        let s = seams(
            &d,
            &SeamOptions {
                threshold: rule,
                ..Default::default()
            },
        );
        assert_eq!(s, vec![51]);
    }
}
