//! End-to-end pipelines on the real clips in $REELSMITH_SHARED/videos (skipped when unset):
//! shot detection against ground_truth.json, keyframes written to disk, typed errors.

use std::path::{Path, PathBuf};

use reelsmith_test_support::{ground_truth, shared_videos};

use reelsmith::models::{ModelChoice, Models};
use reelsmith::pipelines::highlights::{self, HighlightsConfig, HighlightsInput};
use reelsmith::pipelines::keyframes::{self, KeyframeMethod, KeyframesConfig, KeyframesInput};
use reelsmith::pipelines::segments::{self, SegmentsConfig, SegmentsInput};
use reelsmith::pipelines::shots::{self, ShotsConfig, TransitionKind};
use reelsmith::progress::NoProgress;
use reelsmith::Error;

fn detect_shots(video: &Path, config: &ShotsConfig) -> Result<shots::ShotReport, Error> {
    shots::run(video, config, &NoProgress)
}

fn extract_keyframes(
    video: &Path,
    out: &Path,
    config: &KeyframesConfig,
) -> Result<Vec<keyframes::KeyframeImage>, Error> {
    let r = keyframes::run(&KeyframesInput::new(video, out), config, &NoProgress)?;
    Ok(r.keyframes)
}

/// The model-free highlights configuration of these tests (no hub cache lookups).
fn model_free() -> HighlightsConfig {
    HighlightsConfig {
        model: ModelChoice::None,
        ..HighlightsConfig::default()
    }
}

#[test]
fn shots_match_ground_truth_on_real_clips() {
    let Some(dir) = shared_videos() else { return };
    let gt = ground_truth(&dir);
    let videos = gt["videos"].as_object().unwrap();
    assert!(
        videos.len() >= 5,
        "ground truth lists {} videos",
        videos.len()
    );
    for (name, meta) in videos {
        let r = detect_shots(&dir.join(name), &ShotsConfig::default()).unwrap();
        assert_eq!(r.frames as u64, meta["frames"].as_u64().unwrap(), "{name}");
        assert_eq!(r.times.len(), r.frames, "{name}");
        let cuts: Vec<usize> = meta["cuts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap() as usize)
            .collect();
        let gradual: Vec<(usize, usize)> = meta["gradual"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["start"].as_u64().unwrap() as usize,
                    g["end"].as_u64().unwrap() as usize,
                )
            })
            .collect();
        // Hard cuts: every annotated cut found within 2 frames, as a cut.
        for &c in &cuts {
            assert!(
                r.transitions
                    .iter()
                    .any(|t| t.kind == TransitionKind::Cut && t.frame.abs_diff(c) <= 2),
                "{name}: cut at {c} missed; found {:?}",
                r.transitions
            );
        }
        // Nothing else: each transition is a listed cut (±2) or lies in a gradual span (±2).
        for t in &r.transitions {
            let on_cut = cuts.iter().any(|&c| t.frame.abs_diff(c) <= 2);
            let on_gradual = gradual
                .iter()
                .any(|&(s, e)| t.frame + 2 >= s && t.frame <= e + 2);
            assert!(on_cut || on_gradual, "{name}: false transition {t:?}");
        }
        if cuts.is_empty() && gradual.is_empty() {
            assert_eq!(r.shots.len(), 1, "{name}: single-shot clip split");
        }
        // Shots tile the frames and their times increase.
        assert_eq!(r.shots.first().unwrap().start, 0, "{name}");
        assert_eq!(r.shots.last().unwrap().end, r.frames - 1, "{name}");
        for w in r.shots.windows(2) {
            assert_eq!(w[0].end + 1, w[1].start, "{name}");
            assert!(r.shot_span(&w[0]).end <= r.shot_span(&w[1]).start + 1e-9);
        }
        assert!(r.end_time > *r.times.last().unwrap(), "{name}");
    }
}

/// A still "scene" of `w × h` pixels (smooth value noise at three scales, coloured),
/// different for each `seed`.
fn scene_picture(seed: u64, w: usize, h: usize) -> Vec<[f32; 3]> {
    let hash = |x: i64, y: i64, k: u64| {
        let mut z = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            ^ (seed * 31 + k).wrapping_mul(0x1656_67B1_9E37_79F9);
        z ^= z >> 29;
        z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z ^= z >> 32;
        (z % 1000) as f32 / 1000.0
    };
    let noise = |x: f32, y: f32, cell: f32, k: u64| {
        let (gx, gy) = (x / cell, y / cell);
        let (x0, y0) = (gx.floor(), gy.floor());
        let (fx, fy) = (gx - x0, gy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let top = hash(x0, y0, k) * (1.0 - fx) + hash(x0 + 1, y0, k) * fx;
        let bottom = hash(x0, y0 + 1, k) * (1.0 - fx) + hash(x0 + 1, y0 + 1, k) * fx;
        top * (1.0 - fy) + bottom * fy
    };
    (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as f32, (i / w) as f32);
            let v =
                0.5 * noise(x, y, 90.0, 1) + 0.3 * noise(x, y, 30.0, 2) + 0.2 * noise(x, y, 9.0, 3);
            let c = noise(x, y, 150.0, 4);
            [
                255.0 * (0.2 + 0.8 * v * (0.6 + 0.4 * c)),
                255.0 * (0.15 + 0.8 * v),
                255.0 * (0.2 + 0.8 * v * (1.0 - 0.4 * c)),
            ]
        })
        .collect()
}

/// A 160 × 90 view of `pic` (`pw` wide) through a window centred at `(cx, cy)` (pixels of
/// `pic`) and `scale` of `pic`'s width, averaged over the `views` (motion blur).
fn camera_view(pic: &[[f32; 3]], pw: usize, views: &[(f32, f32, f32)]) -> ndarray::Array3<u8> {
    let ph = pic.len() / pw;
    let (w, h) = (160usize, 90usize);
    let mut acc = vec![[0f32; 3]; w * h];
    for &(cx, cy, scale) in views {
        let cw = pw as f32 * scale;
        let step = cw / w as f32;
        for y in 0..h {
            for x in 0..w {
                let sx =
                    (cx + (x as f32 + 0.5 - w as f32 / 2.0) * step).clamp(0.0, pw as f32 - 1.0);
                let sy =
                    (cy + (y as f32 + 0.5 - h as f32 / 2.0) * step).clamp(0.0, ph as f32 - 1.0);
                let p = pic[sy as usize * pw + sx as usize];
                for c in 0..3 {
                    acc[y * w + x][c] += p[c] / views.len() as f32;
                }
            }
        }
    }
    ndarray::Array3::from_shape_fn((h, w, 3), |(y, x, c)| {
        acc[y * w + x][c].round().clamp(0.0, 255.0) as u8
    })
}

/// A 25 fps clip over still pictures: a hold, a whip pan (3 frames, motion-blurred), a
/// hold, a crash zoom in (3 frames, blurred), a hold, a hard cut to another picture at
/// frame 100, a hold. The only transition is the cut.
fn camera_moves_video(dir: &Path) -> PathBuf {
    let (pw, ph) = (960usize, 540usize);
    let a = scene_picture(7, pw, ph);
    let b = scene_picture(8, pw, ph);
    let ease = |t: f32| t * t * (3.0 - 2.0 * t);
    // (cx, cy, scale) of the camera at each frame, before motion blur.
    let mut path: Vec<(f32, f32, f32)> = Vec::new();
    let (x0, x1, y, s) = (260.0, 700.0, 270.0, 0.45);
    path.extend(std::iter::repeat_n((x0, y, s), 25));
    path.extend((1..=3).map(|k| (x0 + (x1 - x0) * ease(k as f32 / 3.0), y, s)));
    path.extend(std::iter::repeat_n((x1, y, s), 30));
    path.extend((1..=3).map(|k| (x1, y, s + (0.22 - s) * ease(k as f32 / 3.0))));
    path.extend(std::iter::repeat_n((x1, y, 0.22), 100 - path.len()));
    let mut frames: Vec<ndarray::Array3<u8>> = Vec::new();
    for i in 0..path.len() {
        let prev = path[i.saturating_sub(1)];
        let cur = path[i];
        let views: Vec<(f32, f32, f32)> = (0..6)
            .map(|k| {
                let u = k as f32 / 5.0;
                (
                    prev.0 + (cur.0 - prev.0) * u,
                    prev.1 + (cur.1 - prev.1) * u,
                    prev.2 + (cur.2 - prev.2) * u,
                )
            })
            .collect();
        frames.push(camera_view(&a, pw, &views));
    }
    for _ in 0..30 {
        frames.push(camera_view(&b, pw, &[(480.0, 270.0, 0.45)]));
    }
    let video = dir.join("camera_moves.mp4");
    reelsmith_test_support::encode_h264(
        &video,
        (160, 90, 25),
        25,
        "ultrafast",
        "qp=10",
        frames.into_iter(),
    );
    video
}

#[test]
fn shots_whip_pans_and_zooms_are_not_cuts_but_a_cut_is() {
    let dir = tempfile::tempdir().unwrap();
    let video = camera_moves_video(dir.path());
    let r = detect_shots(&video, &ShotsConfig::default()).unwrap();
    assert!(r.frames >= 125, "{} frames", r.frames);
    let found: Vec<(usize, TransitionKind)> =
        r.transitions.iter().map(|t| (t.frame, t.kind)).collect();
    assert_eq!(
        found,
        vec![(100, TransitionKind::Cut)],
        "{:?}",
        r.transitions
    );
    // Without the motion test the camera moves are taken for transitions: it is the
    // motion test that tells them from the cut.
    let mut off = ShotsConfig::default();
    off.detection.motion_max = 0.0;
    let r = detect_shots(&video, &off).unwrap();
    assert!(r.transitions.len() > 1, "{:?}", r.transitions);
}

#[test]
fn keyframes_are_written_in_frame_order() {
    let Some(dir) = shared_videos() else { return };
    let out = tempfile::tempdir().unwrap();
    let video = dir.join("bikes.mp4");
    // Seams: one representative per segment, so at least one per real shot (6).
    let opts = KeyframesConfig {
        method: KeyframeMethod::Seams,
        ..Default::default()
    };
    let ks = extract_keyframes(&video, &out.path().join("seams"), &opts).unwrap();
    assert!(ks.len() >= 6, "{} seam keyframes", ks.len());
    // Quantile 0.85: about 15 % of the 249 changes exceed the threshold.
    let opts = KeyframesConfig {
        method: KeyframeMethod::Quantile,
        ..Default::default()
    };
    let kq = extract_keyframes(&video, &out.path().join("quantile"), &opts).unwrap();
    assert!(
        (20..=45).contains(&kq.len()),
        "{} quantile keyframes",
        kq.len()
    );
    // The hard cuts are among the largest changes.
    for c in [30, 76, 137, 187, 242] {
        assert!(kq.iter().any(|k| k.frame == c), "cut {c} not a keyframe");
    }
    for (sub, ks) in [("seams", &ks), ("quantile", &kq)] {
        for w in ks.windows(2) {
            assert!(w[0].frame < w[1].frame && w[0].time < w[1].time);
        }
        for k in ks.iter() {
            let img = image::open(out.path().join(sub).join(&k.path)).unwrap();
            assert_eq!((img.width(), img.height()), (640, 272), "{:?}", k.path);
            assert!((k.time - k.frame as f64 / 25.0).abs() < 1e-6);
        }
    }
}

#[test]
fn missing_and_bad_inputs_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.mp4");
    let e = detect_shots(&missing, &ShotsConfig::default()).unwrap_err();
    assert_eq!(e.path(), Some(missing.as_path()));
    assert!(e.to_string().contains("nope.mp4"), "{e}");
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, b"not a video at all").unwrap();
    let e = detect_shots(&text, &ShotsConfig::default()).unwrap_err();
    assert!(e.to_string().contains("notes.mp4"), "{e}");
    let mut opts = ShotsConfig::default();
    opts.analysis.width = 0;
    let e = detect_shots(&text, &opts).unwrap_err();
    assert_eq!(e.setting(), Some("width"), "{e}");
    let bad_q = KeyframesConfig {
        quantile: 1.5,
        ..Default::default()
    };
    let e = extract_keyframes(&text, &dir.path().join("k"), &bad_q).unwrap_err();
    assert_eq!(e.setting(), Some("quantile"), "{e}");
    assert!(
        !e.to_string().contains("--"),
        "library errors name no flags: {e}"
    );
}

// ---- highlights ---------------------------------------------------------------------------

/// A 30 s, 10 fps, 160x90 video in three stretches: 0-10 s a smooth blurred gradient,
/// 10-20 s a sharp, well-exposed moving checkerboard, 20-30 s nearly black. The best
/// moments are in the middle stretch.
fn stretches_video(dir: &Path) -> PathBuf {
    let (w, h, fps, secs) = (160usize, 90usize, 10usize, 30usize);
    let path = dir.join("stretches.mp4");
    video_rs::init().unwrap();
    let settings = video_rs::encode::Settings::preset_h264_yuv420p(w, h, false);
    let mut enc = video_rs::Encoder::new(path.as_path(), settings).unwrap();
    for k in 0..fps * secs {
        let t = k / fps;
        let frame = ndarray::Array3::<u8>::from_shape_fn((h, w, 3), |(y, x, c)| {
            if t < 10 {
                // Blurred: a slow gradient, mid-grey.
                (90 + (x + y + k) % 60 / 2 + c * 5) as u8
            } else if t < 20 {
                // Sharp: 4-pixel checkerboard moving one pixel per frame, full range.
                if ((x + k) / 4 + y / 4) % 2 == 0 {
                    220
                } else {
                    35
                }
            } else {
                // Dark: crushed blacks.
                ((x + y + k) % 5) as u8
            }
        });
        enc.encode(&frame, video_rs::Time::from_units(k, fps))
            .unwrap();
    }
    enc.finish().unwrap();
    path
}

#[test]
fn highlights_pick_the_sharp_well_exposed_stretch() {
    let dir = tempfile::tempdir().unwrap();
    let video = stretches_video(dir.path());
    let out = dir.path().join("out");
    let cfg = HighlightsConfig {
        top_k: 2,
        preset: reelsmith::decode::X264Preset::Ultrafast,
        ..model_free()
    };
    let models = Models::new();
    let input = HighlightsInput::new(&video, &out, &models);
    let report = highlights::run(&input, &cfg, &NoProgress).unwrap();
    assert!(report.model_free);
    assert!(!report.clips.is_empty());
    let best = &report.clips[0];
    assert!(
        (10.0..20.0).contains(&best.peak_time),
        "best peak at {:.2}s, outside the sharp stretch",
        best.peak_time
    );
    assert!(best.start_time >= 0.0 && best.duration >= 3.0 - 1e-9 && best.duration <= 7.0 + 1e-9);
    assert!(best.components.exposure < 0.2);
    // Every clip and report file is there; the JSON has the documented fields.
    for c in &report.clips {
        let clip = reelsmith::decode::open(out.join(&c.filename)).unwrap();
        assert!(
            (clip.info().duration - c.duration).abs() < 0.25,
            "{}",
            c.filename
        );
    }
    for f in [
        "highlights.json",
        "timeline.csv",
        "similarity.csv",
        "scores.png",
        "contact_sheet.jpg",
    ] {
        assert!(out.join(f).metadata().unwrap().len() > 0, "{f} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("highlights.json")).unwrap())
            .unwrap();
    let c0 = &json["clips"][0];
    for key in [
        "filename",
        "source_video",
        "start_time",
        "duration",
        "peak_frame",
        "peak_time",
        "score",
    ] {
        assert!(!c0[key].is_null(), "clip field {key}");
    }
    for key in ["aesthetics", "sharpness", "exposure", "saliency"] {
        assert!(c0["components"].get(key).is_some(), "component {key}");
    }
    assert_eq!(json["parameters"]["top_k"], 2);
    let timeline = std::fs::read_to_string(out.join("timeline.csv")).unwrap();
    assert_eq!(timeline.lines().count(), 1 + report.timeline.len());
    assert!(timeline.starts_with("frame,time,sharpness_var,sharpness,exposure"));
    // Nothing half-written is left.
    for e in std::fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".part"), "{name} left behind");
    }
}

#[test]
fn highlights_edge_cases_say_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let video = stretches_video(dir.path());
    let models = Models::new();
    let input = HighlightsInput::new(&video, dir.path(), &models);
    let too_long = HighlightsConfig {
        min_duration: 40.0,
        max_duration: 45.0,
        ..model_free()
    };
    let e = highlights::analyse(&input, &too_long, &NoProgress).unwrap_err();
    assert!(matches!(e, Error::TooShort { .. }), "{e}");
    assert!(e.to_string().contains("min_duration"));
    assert_eq!(e.setting(), Some("min_duration"));

    let strict = HighlightsConfig {
        min_score: 1.5,
        ..model_free()
    };
    let e = highlights::analyse(&input, &strict, &NoProgress).unwrap_err();
    assert!(matches!(e, Error::NoPeak { .. }), "{e}");
    assert!(e.to_string().contains("min_score"));

    // Everything too similar: a threshold above any possible distance keeps only one.
    let picky = HighlightsConfig {
        diversity_threshold: 2.0,
        ..model_free()
    };
    let r = highlights::analyse(&input, &picky, &NoProgress).unwrap();
    assert_eq!(r.clips.len(), 1);
    assert!(
        r.notes.iter().any(|n| n.contains("diversity_threshold")),
        "{:?}",
        r.notes
    );
    for n in &r.notes {
        assert!(!n.contains("--"), "library notes name no flags: {n}");
    }

    let nope = dir.path().join("nope.mp4");
    let missing = highlights::analyse(
        &HighlightsInput::new(&nope, dir.path(), &models),
        &model_free(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(missing.to_string().contains("nope.mp4"));
}

#[test]
fn segments_split_at_the_content_changes() {
    let dir = tempfile::tempdir().unwrap();
    let video = stretches_video(dir.path());
    let out = dir.path().join("seg");
    let cfg = SegmentsConfig {
        preset: reelsmith::decode::X264Preset::Ultrafast,
        model: ModelChoice::None,
        ..SegmentsConfig::default()
    };
    let models = Models::new();
    let r = segments::run(
        &SegmentsInput::new(&video, &out, &models),
        &cfg,
        &NoProgress,
    )
    .unwrap();
    let bounds: Vec<f64> = r.segments.iter().skip(1).map(|s| s.start).collect();
    for want in [10.0, 20.0] {
        assert!(
            bounds.iter().any(|b| (b - want).abs() <= 0.6),
            "no segment boundary near {want}s: {bounds:?}"
        );
    }
    for s in &r.segments {
        assert!(
            s.end - s.start <= 15.0 + 1e-6,
            "segment {} too long",
            s.number
        );
        // 2-4 picked, near-duplicates (the static dark stretch) dropped by perceptual hash.
        assert!((1..=4).contains(&s.keyframes.len()));
        assert!(out.join(s.clip.as_ref().unwrap()).exists());
        for k in &s.keyframes {
            assert!(k.time >= s.start - 1e-6 && k.time < s.end);
            assert!(out.join(&k.path).exists(), "{}", k.path);
        }
    }
    assert_eq!(r.segments.first().unwrap().start, 0.0);
    assert!((r.segments.last().unwrap().end - r.duration).abs() < 1e-6);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("segments.json")).unwrap()).unwrap();
    assert_eq!(json["segments"].as_array().unwrap().len(), r.segments.len());
}

// ---- segments on real footage -------------------------------------------------------------

/// Ground-truth transitions of a shared clip as time spans `[start, end]` in seconds (a cut
/// is a point), with the frame of each hard cut.
#[allow(clippy::type_complexity)]
fn gt_transitions(meta: &serde_json::Value) -> (Vec<(f64, f64)>, Vec<(usize, f64)>) {
    let fps = meta["fps"].as_f64().unwrap();
    let cut_frames: Vec<usize> = meta["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as usize)
        .collect();
    // Variable-rate clips list their cut times; elsewhere frame / fps is exact.
    let cut_times: Vec<f64> = match meta["cut_times_s"].as_array() {
        Some(t) => t.iter().map(|v| v.as_f64().unwrap()).collect(),
        None => cut_frames.iter().map(|&f| f as f64 / fps).collect(),
    };
    let mut spans: Vec<(f64, f64)> = cut_times.iter().map(|&t| (t, t)).collect();
    for g in meta["gradual"].as_array().unwrap() {
        let (s, e) = (g["start"].as_f64().unwrap(), g["end"].as_f64().unwrap());
        spans.push((s / fps, e / fps));
    }
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    (spans, cut_frames.into_iter().zip(cut_times).collect())
}

#[test]
fn segments_begin_at_the_transitions_of_every_shared_clip() {
    let Some(dir) = shared_videos() else { return };
    let gt = ground_truth(&dir);
    let out = tempfile::tempdir().unwrap();
    let models = Models::new();
    let cfg = SegmentsConfig {
        model: ModelChoice::None,
        export_clips: false,
        ..SegmentsConfig::default()
    };
    for (name, meta) in gt["videos"].as_object().unwrap() {
        let target = out.path().join(name.replace('.', "_"));
        let video = dir.join(name);
        let input = SegmentsInput::new(&video, &target, &models);
        let r = segments::run(&input, &cfg, &NoProgress).unwrap();
        let (spans, cuts) = gt_transitions(meta);
        let near = |t: f64, s: &(f64, f64)| t >= s.0 - 0.75 && t <= s.1 + 0.75;
        let starts: Vec<f64> = r.segments.iter().skip(1).map(|s| s.start).collect();
        // Precision: every boundary lies at a transition.
        for s in &r.segments[1..] {
            assert!(
                spans.iter().any(|sp| near(s.start, sp)),
                "{name}: segment {} starts at {:.2}s, away from every transition {spans:?}",
                s.number,
                s.start
            );
        }
        // Recall: every transition between two shots of at least min_seconds is found.
        let duration = meta["duration_s"].as_f64().unwrap();
        let mut edges = vec![0.0];
        edges.extend(spans.iter().map(|s| (s.0 + s.1) / 2.0));
        edges.push(duration);
        for (i, sp) in spans.iter().enumerate() {
            let (before, after) = (edges[i + 1] - edges[i], edges[i + 2] - edges[i + 1]);
            if before >= cfg.min_seconds && after >= cfg.min_seconds {
                assert!(
                    starts.iter().any(|&t| near(t, sp)),
                    "{name}: transition {sp:?} between shots of {before:.2}s and {after:.2}s \
                     missed; segments start at {starts:?}"
                );
            }
        }
        // Snapped: a segment that starts at a hard cut starts on its exact frame.
        for s in &r.segments[1..] {
            if let Some(&(frame, _)) = cuts.iter().find(|(_, t)| (t - s.start).abs() <= 0.75) {
                assert_eq!(
                    s.start_frame,
                    frame as u64,
                    "{name}: segment {} opens {} frames off the cut",
                    s.number,
                    s.start_frame as i64 - frame as i64
                );
            }
        }
        // Durations, tiling, keyframes.
        assert_eq!(r.segments[0].start, 0.0, "{name}");
        assert!((r.segments.last().unwrap().end - r.duration).abs() < 1e-6);
        for w in r.segments.windows(2) {
            assert_eq!(w[0].end, w[1].start, "{name}");
            assert_eq!(w[0].end_frame + 1, w[1].start_frame, "{name}");
        }
        for s in &r.segments {
            let len = s.end - s.start;
            if r.duration >= cfg.min_seconds {
                assert!(
                    len >= cfg.min_seconds - 1e-6,
                    "{name}: segment {} {len:.2}s",
                    s.number
                );
            }
            assert!(
                len <= cfg.max_seconds + 1e-6,
                "{name}: segment {} {len:.2}s",
                s.number
            );
            assert!((1..=4).contains(&s.keyframes.len()), "{name}");
            for k in &s.keyframes {
                assert!(k.time >= s.start - 1e-6 && k.time < s.end, "{name}");
                assert!(k.distance_to_centroid.is_finite() && k.distance_to_centroid >= 0.0);
                assert!(target.join(&k.path).is_file(), "{name}: {}", k.path);
            }
        }
        for p in ["keyframes_grid.jpg", "successor.png", "embeddings.png"] {
            assert!(r.pictures.iter().any(|x| x == p), "{name}: {p} not listed");
            assert!(
                target.join(p).metadata().unwrap().len() > 1000,
                "{name}: {p}"
            );
        }
        assert!(r.embedder.starts_with("pixel"), "{}", r.embedder);
    }
}

#[test]
fn quantile_keyframes_match_the_numpy_reference_on_full_size_frames() {
    let Some(dir) = shared_videos() else { return };
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keyframes_reference.json");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let q = reference["quantile"].as_f64().unwrap();
    let cfg = KeyframesConfig::default();
    assert_eq!(cfg.analysis_height, None, "full resolution is the default");
    assert_eq!(cfg.quantile, q);
    for (name, want) in reference["videos"].as_object().unwrap() {
        let variation = keyframes::variations(&dir.join(name), &cfg, &NoProgress).unwrap();
        assert_eq!(
            variation.len() as u64,
            want["frames"].as_u64().unwrap(),
            "{name}"
        );
        let (got, thr) = reelsmith::segment::keyframes::quantile_keyframes(&variation, q);
        let want: Vec<usize> = want["keyframes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let common = got.iter().filter(|k| want.contains(k)).count();
        let union = got.len() + want.len() - common;
        let jaccard = common as f64 / union.max(1) as f64;
        eprintln!(
            "{name}: {} vs {} keyframes, jaccard {jaccard:.3}, threshold {thr:?}",
            got.len(),
            want.len()
        );
        // Two decoders convert YUV to RGB a little differently; frames near the threshold may
        // swap, nothing else.
        assert!(
            jaccard >= 0.9,
            "{name}: jaccard {jaccard:.3}: {got:?} vs {want:?}"
        );
    }
}

#[test]
fn segments_embed_with_a_given_model_and_report_it() {
    let dir = tempfile::tempdir().unwrap();
    let video = stretches_video(dir.path());
    let out = dir.path().join("seg");
    let cfg = SegmentsConfig {
        model: ModelChoice::Dir(reelsmith_test_support::tiny_clip()),
        export_clips: false,
        pictures: false,
        threshold: "fixed:0.5".parse().unwrap(),
        ..SegmentsConfig::default()
    };
    let models = Models::new();
    let r = segments::run(
        &SegmentsInput::new(&video, &out, &models),
        &cfg,
        &NoProgress,
    )
    .unwrap();
    assert!(!r.embedder.starts_with("pixel"), "{}", r.embedder);
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    // The shot pass still places the boundaries on the two changes of picture.
    let starts: Vec<f64> = r.segments.iter().skip(1).map(|s| s.start).collect();
    for want in [10.0, 20.0] {
        assert!(
            starts.iter().any(|b| (b - want).abs() <= 0.15),
            "no boundary at {want}s: {starts:?}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("segments.json")).unwrap()).unwrap();
    assert_eq!(json["parameters"]["threshold"], "fixed:0.5");
    assert_eq!(json["parameters"]["metric"], "euclidean");
    assert!(json["segments"][1]["starts_at"].is_string());
    assert!(json["segments"][0]["keyframes"][0]["distance_to_centroid"].is_number());
    // A bad rule is refused, naming the setting.
    let bad: Result<SegmentsConfig, _> = serde_json::from_str(r#"{"threshold": "fixed:3"}"#);
    assert!(bad.is_err());
    let e = segments::run(
        &SegmentsInput::new(&video, &out, &models),
        &SegmentsConfig {
            phash_distance: 65,
            ..cfg
        },
        &NoProgress,
    )
    .unwrap_err();
    assert_eq!(e.setting(), Some("phash_distance"));
}

/// The first-frame pipelines (entities, compose, retention, generate) on tiny random-weight
/// models from the test-support crate; parity of the models themselves is proven by the
/// entity and diffusion crates.
mod first_frame {
    use std::path::{Path, PathBuf};

    use image::{Rgb, RgbImage, Rgba, RgbaImage};
    use reelsmith::config::Size;
    use reelsmith::models::{ModelChoice, Models};
    use reelsmith::pipelines::compose::{self, ComposeConfig, ComposeInput, LayoutChoice};
    use reelsmith::pipelines::entities::{self, EntitiesConfig, EntitiesInput, SegmentSettings};
    use reelsmith::pipelines::generate::{self, GenerateConfig, GenerateInput};
    use reelsmith::pipelines::retention::{self, RetentionConfig, RetentionInput};
    use reelsmith::progress::NoProgress;
    use reelsmith_test_support::{encode_h264, tiny_clip, tiny_dinov2, tiny_isnet, tiny_wan_i2v};

    /// A scene with two bright objects on a dark ground.
    pub(super) fn scene() -> RgbImage {
        RgbImage::from_fn(96, 64, |x, y| {
            let a = (x as i32 - 28).pow(2) + (y as i32 - 30).pow(2) < 14 * 14;
            let b = (62..86).contains(&x) && (18..50).contains(&y);
            if a {
                Rgb([230, 60, 40])
            } else if b {
                Rgb([40, 90, 230])
            } else {
                Rgb([(x / 8) as u8 + 20, (y / 8) as u8 + 20, 24])
            }
        })
    }

    /// Entities of `scene` with the tiny ISNet, cut at a threshold that finds objects in its
    /// (random-weight) probability map, embedded with the tiny DINOv2.
    pub(super) fn tiny_config() -> EntitiesConfig {
        EntitiesConfig {
            segmenter_weights: Some(tiny_isnet()),
            segment: SegmentSettings {
                threshold: tiny_threshold(),
                ..SegmentSettings::default()
            },
            embed_model: ModelChoice::Dir(tiny_dinov2()),
            ..EntitiesConfig::default()
        }
    }

    /// A threshold that keeps the brightest fifth of the tiny (random-weight) ISNet's
    /// probability map of `scene`: its map has no meaning, so a fixed cut may keep nothing.
    fn tiny_threshold() -> f32 {
        static T: std::sync::OnceLock<f32> = std::sync::OnceLock::new();
        *T.get_or_init(|| {
            let device = reelsmith::embed::models::candle_core::Device::Cpu;
            let seg = reelsmith::entity::segment::IsnetSegmenter::new(
                reelsmith::entity::isnet::load_isnet(
                    &tiny_isnet(),
                    &reelsmith::entity::isnet::IsnetConfig::detect(&tiny_isnet()).unwrap(),
                    &device,
                )
                .unwrap(),
                device.clone(),
            );
            let mut p = seg.probability(&scene()).unwrap().data;
            p.sort_by(f32::total_cmp);
            p[p.len() * 4 / 5]
        })
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn entities_write_a_whole_memory_folder_and_load_each_model_once() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("scene.png");
        scene().save(&img).unwrap();
        let out = dir.path().join("memory");
        let models = Models::new();
        let r = entities::run(
            &EntitiesInput::new(&img, &out, &models),
            &tiny_config(),
            &NoProgress,
        )
        .unwrap();
        let n = r.memory.entities.len();
        assert!(
            n >= 1,
            "no entity at threshold {}: {:?}",
            tiny_threshold(),
            r.notes
        );
        let mut want = vec!["embeddings.safetensors", "entities.json", "overlay.png"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        for i in 0..n {
            want.push(format!("entity_{i:02}.png"));
            want.push(format!("mask_{i:02}.png"));
        }
        want.sort();
        assert_eq!(files(&out), want);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("entities.json")).unwrap()).unwrap();
        assert_eq!(json["segmenter"], "isnet");
        assert_eq!(
            json["segmenter_weights"].as_str().unwrap(),
            std::fs::canonicalize(tiny_isnet())
                .unwrap()
                .to_str()
                .unwrap()
        );
        assert!(json["embedder"].as_str().unwrap().starts_with("dinov2:"));
        for (e, rec) in r
            .memory
            .entities
            .iter()
            .zip(json["entities"].as_array().unwrap())
        {
            assert_eq!(rec["bbox"]["width"], e.bbox.width);
            let cut = image::open(out.join(rec["cutout_file"].as_str().unwrap())).unwrap();
            assert!(cut.color().has_alpha());
            assert_eq!((cut.width(), cut.height()), (e.bbox.width, e.bbox.height));
            assert_eq!(e.embedding.as_ref().unwrap().len(), 16);
        }
        let overlay = image::open(out.join("overlay.png")).unwrap();
        assert_eq!((overlay.width(), overlay.height()), (96, 64));
        // The folder loads back as a memory.
        let back = reelsmith::entity::entity::FrameEntities::load(&out).unwrap();
        assert_eq!(back.entities.len(), n);
        assert_eq!(back.frame_embedding.as_ref().unwrap().len(), 16);

        // A second run with the same registry reuses both models, and gives the same result.
        let out2 = dir.path().join("memory2");
        let t = std::time::Instant::now();
        let r2 = entities::run(
            &EntitiesInput::new(&img, &out2, &models),
            &tiny_config(),
            &NoProgress,
        )
        .unwrap();
        eprintln!("second run {:.2} s", t.elapsed().as_secs_f64());
        assert_eq!(r2.memory.entities.len(), n);
        assert_eq!(
            r2.memory.entities[0].embedding,
            r.memory.entities[0].embedding
        );

        // Without an embedding model: no embeddings file, and a note for `auto`.
        let plain = EntitiesConfig {
            embed_model: ModelChoice::None,
            ..tiny_config()
        };
        let out3 = dir.path().join("plain");
        let r3 = entities::run(
            &EntitiesInput::new(&img, &out3, &models),
            &plain,
            &NoProgress,
        )
        .unwrap();
        assert!(r3.memory.embedder.is_none());
        assert!(!out3.join("embeddings.safetensors").exists());
    }

    #[test]
    fn entities_refuse_bad_inputs_clearly_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let models = Models::new();
        let out = dir.path().join("memory");
        let run = |input: &Path, cfg: &EntitiesConfig| {
            entities::run(&EntitiesInput::new(input, &out, &models), cfg, &NoProgress)
        };
        let img = dir.path().join("scene.png");
        scene().save(&img).unwrap();
        // No weights: the setting is named.
        let e = run(&img, &EntitiesConfig::default()).unwrap_err();
        assert_eq!(e.setting(), Some("segmenter_weights"), "{e}");
        // Weights that are not ISNet: the tensor is named.
        let cfg = EntitiesConfig {
            segmenter_weights: Some(tiny_dinov2().join("model.safetensors")),
            ..tiny_config()
        };
        let e = run(&img, &cfg).unwrap_err().to_string();
        assert!(
            e.contains("conv_in.weight") && e.contains("model.safetensors"),
            "{e}"
        );
        // A truncated checkpoint.
        let cut = dir.path().join("cut.safetensors");
        let bytes = std::fs::read(tiny_isnet()).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let cfg = EntitiesConfig {
            segmenter_weights: Some(cut),
            ..tiny_config()
        };
        let e = run(&img, &cfg).unwrap_err().to_string();
        assert!(
            e.contains("truncated") && e.contains("cut.safetensors"),
            "{e}"
        );
        // 1x1 and black images.
        let one = dir.path().join("one.png");
        RgbImage::from_pixel(1, 1, Rgb([9, 9, 9]))
            .save(&one)
            .unwrap();
        let e = run(&one, &tiny_config()).unwrap_err().to_string();
        assert!(e.contains("1x1") && e.contains("one.png"), "{e}");
        // A frame index for an image, both frame and time.
        let e = run(
            &img,
            &EntitiesConfig {
                frame: Some(3),
                ..tiny_config()
            },
        )
        .unwrap_err();
        assert_eq!(e.setting(), Some("frame"));
        let e = EntitiesConfig {
            frame: Some(1),
            time: Some(1.0),
            ..tiny_config()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.setting(), Some("time"));
        assert!(!out.exists(), "a failed run leaves no folder");
    }

    #[test]
    fn entities_of_a_video_frame_and_retention_over_the_video() {
        let dir = tempfile::tempdir().unwrap();
        // 2 s at 10 fps: the scene, still (lossless 4:4:4 so that frames equal the scene).
        let video = dir.path().join("still.mp4");
        let s = scene();
        let frames = (0..20).map(|_| {
            ndarray::Array3::from_shape_fn((64, 96, 3), |(y, x, c)| {
                s.get_pixel(x as u32, y as u32)[c]
            })
        });
        encode_h264(&video, (96, 64, 10), 10, "ultrafast", "qp=0", frames);
        let memory = dir.path().join("memory");
        let models = Models::new();
        let cfg = EntitiesConfig {
            frame: Some(7),
            ..tiny_config()
        };
        let r = entities::run(
            &EntitiesInput::new(&video, &memory, &models),
            &cfg,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(r.memory.frame.unwrap().index, 7);
        assert!((r.memory.frame.unwrap().time - 0.7).abs() < 1e-6);
        let n = r.memory.entities.len();
        assert!(n >= 1);
        // A frame past the end names the setting and the frame count.
        let e = entities::run(
            &EntitiesInput::new(&video, &dir.path().join("x"), &models),
            &EntitiesConfig {
                frame: Some(500),
                ..tiny_config()
            },
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(e.setting(), Some("frame"));
        // (the encoder marks its last packet as discarded: FFmpeg shows 19 of the 20 frames)
        let total = reelsmith::decode::open(&video)
            .unwrap()
            .count_frames()
            .unwrap();
        assert!(e.to_string().contains(&format!("{total} frames")), "{e}");

        // Retention over the same still video: every entity is found in every sampled frame.
        let out = dir.path().join("retention");
        // (cut at the memory's threshold: the tiny model's map has no meaning at 0.5)
        let rc = RetentionConfig {
            segment: SegmentSettings {
                threshold: tiny_threshold(),
                ..SegmentSettings::default()
            },
            ..RetentionConfig::default()
        };
        let rep = retention::run(
            &RetentionInput::new(&video, &memory, &out, &models),
            &rc,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(rep.summary.frames, 4, "2 s at 2 fps");
        assert_eq!(rep.summary.entities.len(), n);
        for e in &rep.summary.entities {
            assert!(e.mean_best_similarity > 0.99, "{e:?}");
            assert_eq!(e.fraction_present, 1.0);
            assert!(e.first_frame_lost.is_none());
        }
        assert_eq!(
            files(&out),
            ["retention.csv", "retention.json", "retention.png"]
        );
        let csv = std::fs::read_to_string(out.join("retention.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + 4 * n);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("retention.json")).unwrap()).unwrap();
        assert_eq!(json["frames"], 4);
        assert!(json["embedder"].as_str().unwrap().starts_with("dinov2:"));

        // Another embedding model is refused, naming both.
        let e = retention::run(
            &RetentionInput::new(&video, &memory, &dir.path().join("r2"), &models),
            &RetentionConfig {
                embed_model: ModelChoice::Dir(tiny_clip()),
                ..RetentionConfig::default()
            },
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(e.setting(), Some("embed_model"), "{e}");
        assert!(
            e.to_string().contains("dinov2:") && e.to_string().contains("clip:"),
            "{e}"
        );
        // A memory without embeddings is refused.
        let plain = dir.path().join("plain");
        entities::run(
            &EntitiesInput::new(&video, &plain, &models),
            &EntitiesConfig {
                embed_model: ModelChoice::None,
                ..tiny_config()
            },
            &NoProgress,
        )
        .unwrap();
        let e = retention::run(
            &RetentionInput::new(&video, &plain, &dir.path().join("r3"), &models),
            &RetentionConfig::default(),
            &NoProgress,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no embeddings") && e.contains("plain"), "{e}");
        assert!(!dir.path().join("r2").exists() && !dir.path().join("r3").exists());
    }

    /// An RGBA cut-out: a disc, transparent around it.
    fn disc(path: &Path, colour: [u8; 3]) {
        RgbaImage::from_fn(40, 30, |x, y| {
            let inside = (x as i32 - 20).pow(2) + (y as i32 - 15).pow(2) < 12 * 12;
            let [r, g, b] = colour;
            Rgba([r, g, b, if inside { 255 } else { 0 }])
        })
        .save(path)
        .unwrap();
    }

    #[test]
    fn compose_lays_out_cutouts_ffgo_style_or_freely_and_refuses_bad_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let bg = dir.path().join("bg.png");
        RgbImage::from_pixel(320, 180, Rgb([20, 120, 40]))
            .save(&bg)
            .unwrap();
        let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
        disc(&a, [250, 0, 0]);
        disc(&b, [0, 0, 250]);
        let cut = [a.clone(), b.clone()];
        let out = dir.path().join("first.png");
        let r = compose::run(
            &ComposeInput::new(&bg, &cut, &out),
            &ComposeConfig::default(),
            &NoProgress,
        )
        .unwrap();
        let img = image::open(&out).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1280, 720));
        // FFGo: the background fills the right half (16:9 into 640x720: y 180..540), the
        // cut-outs are stacked in the left half on white.
        assert_eq!(*img.get_pixel(960, 360), Rgb([20, 120, 40]));
        assert_eq!(*img.get_pixel(960, 100), Rgb([255, 255, 255]));
        let (ra, rb) = (r.layout.entities[0].rect, r.layout.entities[1].rect);
        assert!(ra.x >= 0 && ra.x + ra.width as i64 <= 640 && ra.y + ra.height as i64 <= 360);
        assert!(rb.y >= 360);
        let ca = img.get_pixel(
            (ra.x + ra.width as i64 / 2) as u32,
            (ra.y + ra.height as i64 / 2) as u32,
        );
        assert!(ca[0] > 200 && ca[2] < 50, "{ca:?}");
        let layout: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("first.layout.json")).unwrap())
                .unwrap();
        assert_eq!(layout["layout"], "ffgo");
        assert_eq!(layout["entities"].as_array().unwrap().len(), 2);

        // A free layout at another size; a cut-out half off the canvas is clipped.
        let lf = dir.path().join("layout.json");
        std::fs::write(
            &lf,
            r#"{"background": "stretch", "entities": [{"center": [0.5, 0.5], "scale": 0.5},
                {"center": [1.0, 0.5], "scale": 0.3}]}"#,
        )
        .unwrap();
        let free = ComposeConfig {
            size: Size::new(832, 480),
            layout: LayoutChoice::File(lf.clone()),
            ..ComposeConfig::default()
        };
        let out2 = dir.path().join("free.jpg");
        let r = compose::run(&ComposeInput::new(&bg, &cut, &out2), &free, &NoProgress).unwrap();
        assert_eq!(image::open(&out2).unwrap().width(), 832);
        assert!(!r.layout.entities[0].clipped && r.layout.entities[1].clipped);

        // Refusals: an opaque cut-out, a layout off the canvas, too few placements, a bad
        // output name, a tiny background. Nothing is written.
        let rgb = dir.path().join("rgb.jpg");
        RgbImage::from_pixel(40, 30, Rgb([1, 2, 3]))
            .save(&rgb)
            .unwrap();
        let bad_out = dir.path().join("bad.png");
        let e = compose::run(
            &ComposeInput::new(&bg, &[rgb], &bad_out),
            &ComposeConfig::default(),
            &NoProgress,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("alpha") && e.contains("rgb.jpg"), "{e}");
        std::fs::write(&lf, r#"{"entities": [{"center": [3.0, 0.5], "scale": 0.3}, {"center": [0.5, 0.5], "scale": 0.3}]}"#).unwrap();
        let e = compose::run(&ComposeInput::new(&bg, &cut, &bad_out), &free, &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside") && e.contains("layout.json"), "{e}");
        std::fs::write(
            &lf,
            r#"{"entities": [{"center": [0.5, 0.5], "scale": 0.3}]}"#,
        )
        .unwrap();
        let e = compose::run(&ComposeInput::new(&bg, &cut, &bad_out), &free, &NoProgress)
            .unwrap_err()
            .to_string();
        assert!(e.contains("places 1 entities but 2"), "{e}");
        let e = compose::run(
            &ComposeInput::new(&bg, &cut, &dir.path().join("first.gif")),
            &ComposeConfig::default(),
            &NoProgress,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(".png"), "{e}");
        let tiny = dir.path().join("tiny.png");
        RgbImage::from_pixel(1, 1, Rgb([0, 0, 0]))
            .save(&tiny)
            .unwrap();
        let e = compose::run(
            &ComposeInput::new(&tiny, &cut, &bad_out),
            &ComposeConfig::default(),
            &NoProgress,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("1x1") && e.contains("background"), "{e}");
        let e = ComposeConfig {
            size: Size::new(8, 720),
            ..ComposeConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.setting(), Some("size"));
        assert!(!bad_out.exists() && !dir.path().join("bad.layout.json").exists());
    }

    fn reference() -> std::collections::HashMap<String, reelsmith::diffusion::candle_core::Tensor> {
        reelsmith::diffusion::candle_core::safetensors::load(
            tiny_wan_i2v().join("reference.safetensors"),
            &reelsmith::diffusion::candle_core::Device::Cpu,
        )
        .unwrap()
    }

    fn wan_config() -> GenerateConfig {
        GenerateConfig {
            model: ModelChoice::Dir(tiny_wan_i2v()),
            prompt: "A cat walks on the grass, realistic style.".into(),
            frames: 5,
            size: Size::new(32, 32),
            steps: 2,
            guidance: 5.0,
            ..GenerateConfig::default()
        }
    }

    #[test]
    fn generate_png_frames_equal_diffusers_and_an_mp4_decodes_back() {
        let dir = tempfile::tempdir().unwrap();
        let refs = reference();
        let noise = dir.path().join("noise.safetensors");
        reelsmith::diffusion::candle_core::safetensors::save(
            &[("latents".to_string(), refs["latents"].clone())]
                .into_iter()
                .collect(),
            &noise,
        )
        .unwrap();
        let first = tiny_wan_i2v().join("first_frame.png");
        let models = Models::new();
        let cfg = GenerateConfig {
            latents: Some(noise.clone()),
            ..wan_config()
        };
        let frames_dir = dir.path().join("frames/");
        let r = generate::run(
            &GenerateInput::new(Some(&first), &frames_dir, &models),
            &cfg,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(r.frames, 5);
        let want: Vec<f32> = refs["video"].flatten_all().unwrap().to_vec1().unwrap();
        let mut worst = 0f32;
        for i in 0..5 {
            let f = image::open(frames_dir.join(format!("frame_{i:04}.png")))
                .unwrap()
                .to_rgb8();
            assert_eq!(f.dimensions(), (32, 32));
            for (k, &v) in f.as_raw().iter().enumerate() {
                worst = worst.max((v as f32 / 255.0 - want[i * 32 * 32 * 3 + k]).abs());
            }
        }
        eprintln!("max |frame - diffusers| {worst:.2e}");
        assert!(worst <= 0.5 / 255.0 + 1e-3, "{worst}");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(frames_dir.join("generate.json")).unwrap())
                .unwrap();
        assert_eq!(json["files"].as_array().unwrap().len(), 5);

        // The same run as an MP4 (the model is reused), dropping the first frame.
        let mp4 = dir.path().join("out.mp4");
        let cfg = GenerateConfig {
            drop_first: 1,
            ..cfg
        };
        generate::run(
            &GenerateInput::new(Some(&first), &mp4, &models),
            &cfg,
            &NoProgress,
        )
        .unwrap();
        let v = reelsmith::decode::open(&mp4).unwrap();
        assert_eq!((v.info().width, v.info().height), (32, 32));
        assert_eq!(v.count_frames().unwrap(), 4);
        assert!((v.info().fps - 16.0).abs() < 1e-6);
    }

    /// Copies `from` into `to`, folders included.
    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                copy_tree(&p, &to.join(e.file_name()));
            } else {
                std::fs::copy(&p, to.join(e.file_name())).unwrap();
            }
        }
    }

    #[test]
    fn generate_reads_a_hub_model_from_the_hugging_face_cache() {
        // The tiny model as the hub cache holds a repository: snapshots/<commit>/ and
        // refs/main naming the commit; offline, so nothing may be downloaded.
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("hub");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let repo = cache.join("models--reelsmith-test--wan-i2v-tiny");
        copy_tree(&tiny_wan_i2v(), &repo.join("snapshots").join(commit));
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), commit).unwrap();
        let models = Models::new().with_hub(
            reelsmith::embed::HubOptions::default()
                .cache_dir(&cache)
                .offline(true)
                .progress(false),
        );
        let first = tiny_wan_i2v().join("first_frame.png");
        let out = dir.path().join("out.mp4");
        let cfg = GenerateConfig {
            model: ModelChoice::Hub("reelsmith-test/wan-i2v-tiny".into()),
            ..wan_config()
        };
        let r = generate::run(
            &GenerateInput::new(Some(&first), &out, &models),
            &cfg,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(r.frames, 5);
        assert!(out.is_file());
        // A component the index names but the cache lacks: the error names the file.
        std::fs::remove_file(
            repo.join("snapshots")
                .join(commit)
                .join("scheduler/scheduler_config.json"),
        )
        .unwrap();
        let out2 = dir.path().join("out2.mp4");
        let e = generate::run(
            &GenerateInput::new(Some(&first), &out2, &models),
            &cfg,
            &NoProgress,
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("scheduler/scheduler_config.json"), "{msg}");
        assert!(!out2.exists());
        // A repository that is not cached at all.
        let e = generate::run(
            &GenerateInput::new(Some(&first), &out2, &models),
            &GenerateConfig {
                model: ModelChoice::Hub("reelsmith-test/absent".into()),
                ..wan_config()
            },
            &NoProgress,
        )
        .unwrap_err();
        assert!(e.to_string().contains("model_index.json"), "{e}");
    }

    #[test]
    fn generate_refuses_bad_settings_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let first = tiny_wan_i2v().join("first_frame.png");
        let models = Models::new();
        let out = dir.path().join("out.mp4");
        let run = |cfg: &GenerateConfig, image: Option<&Path>| {
            generate::run(&GenerateInput::new(image, &out, &models), cfg, &NoProgress)
        };
        for (cfg, setting) in [
            (
                GenerateConfig {
                    frames: 6,
                    ..wan_config()
                },
                "frames",
            ),
            (
                GenerateConfig {
                    size: Size::new(30, 32),
                    ..wan_config()
                },
                "size",
            ),
            (
                GenerateConfig {
                    steps: 0,
                    ..wan_config()
                },
                "steps",
            ),
            (
                GenerateConfig {
                    drop_first: 5,
                    ..wan_config()
                },
                "drop_first",
            ),
            (
                GenerateConfig {
                    model: ModelChoice::None,
                    ..wan_config()
                },
                "model",
            ),
            (
                GenerateConfig {
                    prompt: " ".into(),
                    ..wan_config()
                },
                "prompt",
            ),
        ] {
            let e = run(&cfg, Some(&first)).unwrap_err();
            assert_eq!(e.setting(), Some(setting), "{e}");
            let msg = e.to_string();
            assert!(!msg.contains("--"), "library messages name no flags: {msg}");
        }
        let e = run(
            &GenerateConfig {
                frames: 6,
                ..wan_config()
            },
            Some(&first),
        )
        .unwrap_err();
        assert!(e.to_string().contains("use 5 or 9"), "{e}");
        // Noise of the wrong shape.
        let noise = dir.path().join("noise.safetensors");
        reelsmith::diffusion::candle_core::safetensors::save(
            &[(
                "latents".to_string(),
                reelsmith::diffusion::candle_core::Tensor::zeros(
                    (1, 16, 3, 4, 4),
                    reelsmith::diffusion::candle_core::DType::F32,
                    &reelsmith::diffusion::candle_core::Device::Cpu,
                )
                .unwrap(),
            )]
            .into_iter()
            .collect(),
            &noise,
        )
        .unwrap();
        let e = run(
            &GenerateConfig {
                latents: Some(noise),
                ..wan_config()
            },
            Some(&first),
        )
        .unwrap_err();
        assert_eq!(e.setting(), Some("latents"), "{e}");
        assert!(e.to_string().contains("[1, 16, 2, 4, 4]"), "{e}");
        // An image-to-video model without its first frame; a model folder with a tensor
        // missing (named); an output that is neither .mp4 nor a folder.
        let e = run(&wan_config(), None).unwrap_err().to_string();
        assert!(e.contains("first frame"), "{e}");
        let broken = dir.path().join("broken");
        copy_dir(&tiny_wan_i2v(), &broken);
        let w = broken.join("transformer/diffusion_pytorch_model.safetensors");
        let mut t = reelsmith::diffusion::candle_core::safetensors::load(
            &w,
            &reelsmith::diffusion::candle_core::Device::Cpu,
        )
        .unwrap();
        t.remove("proj_out.weight").unwrap();
        reelsmith::diffusion::candle_core::safetensors::save(&t, &w).unwrap();
        let e = run(
            &GenerateConfig {
                model: ModelChoice::Dir(broken),
                ..wan_config()
            },
            Some(&first),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("proj_out.weight") && e.contains("missing"),
            "{e}"
        );
        let e = generate::run(
            &GenerateInput::new(Some(&first), &dir.path().join("out.avi"), &models),
            &wan_config(),
            &NoProgress,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(".mp4"), "{e}");
        assert!(!out.exists());
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest: PathBuf = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }
}

mod finetune {
    use reelsmith::config::Size;
    use reelsmith::models::{ModelChoice, Models};
    use reelsmith::pipelines::finetune::{
        self, FinetuneConfig, PrepareConfig, PrepareInput, TrainInput,
    };
    use reelsmith::pipelines::generate::{self, GenerateConfig, GenerateInput};
    use reelsmith::progress::NoProgress;
    use reelsmith_test_support::{encode_h264, tiny_wan_i2v};

    fn clip(path: &std::path::Path, n: usize, seed: u8) {
        let frames = (0..n).map(move |i| {
            ndarray::Array3::from_shape_fn((32, 32, 3), |(y, x, c)| {
                ((x * 7 + y * 3 + i * 11 + c * 50) as u8).wrapping_add(seed)
            })
        });
        encode_h264(path, (32, 32, 16), 16, "ultrafast", "qp=0", frames);
    }

    /// FFGo's list → cache (bad examples reported and skipped) → LoRA training with a
    /// checkpoint and a resume → sampling with the adapter merged, transition frames dropped.
    #[test]
    fn prepare_train_resume_and_generate_with_the_lora() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("clips")).unwrap();
        clip(&d.join("clips/a.mp4"), 9, 0);
        clip(&d.join("clips/b.mp4"), 7, 90);
        clip(&d.join("clips/short.mp4"), 3, 10);
        let first = tiny_wan_i2v().join("first_frame.png");
        std::fs::copy(&first, d.join("a.png")).unwrap();
        std::fs::write(d.join("broken.png"), b"not a png").unwrap();
        // Materials: a round RGBA cut-out (and an opaque one, which composition refuses).
        image::RgbaImage::from_fn(20, 20, |x, y| {
            let inside = (x as i32 - 10).pow(2) + (y as i32 - 10).pow(2) < 64;
            image::Rgba([200, 30, 30, if inside { 255 } else { 0 }])
        })
        .save(d.join("ball.png"))
        .unwrap();
        image::RgbImage::from_pixel(20, 20, image::Rgb([9, 9, 9]))
            .save(d.join("opaque.png"))
            .unwrap();
        let list = d.join("train.json");
        std::fs::write(
            &list,
            serde_json::json!([
                {"file_path": "clips/a.mp4", "text": "A cat walks.", "image_path": "a.png", "type": "video"},
                {"file_path": "clips/b.mp4", "text": "ad23r2 the camera view suddenly changes. A dog.", "image_path": "a.png", "type": "video"},
                {"file_path": "clips/missing.mp4", "text": "x", "image_path": "a.png", "type": "video"},
                {"file_path": "clips/short.mp4", "text": "x", "image_path": "a.png", "type": "video"},
                {"file_path": "clips/a.mp4", "text": "x", "image_path": "broken.png", "type": "video"},
                {"file_path": "clips/b.mp4", "text": "A ball.", "background_path": "a.png", "entity_paths": ["ball.png"]},
                {"file_path": "clips/b.mp4", "text": "x", "background_path": "a.png", "entity_paths": ["opaque.png"]}
            ])
            .to_string(),
        )
        .unwrap();
        let models = Models::new();
        let cache = d.join("cache");
        let pcfg = PrepareConfig {
            base: ModelChoice::Dir(tiny_wan_i2v()),
            frames: 9,
            size: Size::new(32, 32),
            ..PrepareConfig::default()
        };
        let r = finetune::prepare(
            &PrepareInput::new(&list, &cache, &models),
            &pcfg,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(r.examples, 3, "{:?}", r.skipped);
        let why: Vec<(usize, String)> = r
            .skipped
            .iter()
            .map(|s| (s.index, s.reason.clone()))
            .collect();
        assert_eq!(
            why.iter().map(|w| w.0).collect::<Vec<_>>(),
            vec![2, 3, 4, 6],
            "{why:?}"
        );
        assert!(why[0].1.contains("does not exist"));
        assert!(why[1].1.contains("frame"), "{why:?}");
        assert!(why[2].1.contains("first frame"));
        assert!(why[3].1.contains("materials"), "{why:?}");
        // The frame composed from the materials is kept in the cache: the background's
        // picture with the red ball drawn on it.
        let composed = image::open(cache.join("first_frame_000002.png"))
            .unwrap()
            .to_rgb8();
        assert_eq!(composed.dimensions(), (32, 32));
        assert!(composed
            .pixels()
            .any(|p| p[0] > 150 && p[1] < 80 && p[2] < 80));
        assert!(!cache.join("first_frame_000000.png").exists());
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
        // b has 7 frames: bucketed to 5.
        assert_eq!(index["examples"][1]["frames"], 5);
        assert!(index["examples"][0]["caption"]
            .as_str()
            .unwrap()
            .starts_with("ad23r2 the camera view suddenly changes. A cat"));

        let adapter_dir = d.join("lora");
        let tcfg = FinetuneConfig {
            rank: 4,
            alpha: 4.0,
            lr: 1e-2,
            steps: 4,
            save_every: 2,
            ..FinetuneConfig::default()
        };
        let t = finetune::train(
            &TrainInput::new(&cache, &adapter_dir, &models),
            &tcfg,
            &NoProgress,
        )
        .unwrap();
        assert!(t.adapter.is_file() && adapter_dir.join("loss.png").is_file());
        assert_eq!(
            std::fs::read_to_string(&t.loss_csv)
                .unwrap()
                .lines()
                .count(),
            5
        );
        assert!(adapter_dir
            .join("checkpoints/step-000002/state.json")
            .is_file());
        // Expert on a one-transformer model is refused, naming the setting.
        let bad = FinetuneConfig {
            expert: Some(finetune::ExpertName::High),
            ..tcfg.clone()
        };
        let e = finetune::train(
            &TrainInput::new(&cache, &d.join("x"), &models),
            &bad,
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(e.setting(), Some("expert"));
        // Resume to 6 steps.
        let more = FinetuneConfig { steps: 6, ..tcfg };
        let more = &more;
        let t2 = finetune::train(
            &TrainInput::new(&cache, &adapter_dir, &models).resume(true),
            more,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(t2.resumed_from, Some(4));
        assert_eq!(t2.first_loss, t.first_loss);
        // Entity attention needs a cache with entities.
        let e = finetune::train(
            &TrainInput::new(&cache, &d.join("y"), &models),
            &FinetuneConfig {
                entity_attn: Some(finetune::EntityAttnConfig::default()),
                ..more.clone()
            },
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(e.setting(), Some("entity_attn"));
        assert!(e.to_string().contains("--entities"), "{e}");

        let gcfg = GenerateConfig {
            model: ModelChoice::Dir(tiny_wan_i2v()),
            prompt: "ad23r2 the camera view suddenly changes. A cat walks.".into(),
            frames: 9,
            size: Size::new(32, 32),
            steps: 2,
            guidance: 1.0,
            lora: Some(t2.adapter.clone()),
            ..GenerateConfig::default()
        };
        let out = d.join("out/");
        let g = generate::run(
            &GenerateInput::new(Some(&first), &out, &models),
            &gcfg,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(g.frames, 5, "the 4 transition frames are dropped");
        let bad = GenerateConfig {
            lora_scale: f64::NAN,
            ..gcfg
        };
        let e = generate::run(
            &GenerateInput::new(Some(&first), &d.join("o2/"), &models),
            &bad,
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(e.setting(), Some("lora_scale"));

        // Evaluation on held-out composed frames: with and without the adapter, side by side.
        eval_with_and_without_the_adapter(d, &t2.adapter, &models);
    }

    /// Entity conditioning: prepare caches the composed frames' entities (tiny ISNet +
    /// DINOv2 fixtures), training adds the entity cross-attention to the adapter, and
    /// sampling with that adapter computes the first frame's entities as the cache did.
    #[test]
    fn entities_are_cached_trained_on_and_used_when_sampling() {
        use reelsmith::diffusion::WanLora;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("clips")).unwrap();
        clip(&d.join("clips/a.mp4"), 9, 0);
        clip(&d.join("clips/b.mp4"), 9, 60);
        let scene = d.join("scene.png");
        super::first_frame::scene().save(&scene).unwrap();
        let list = d.join("train.json");
        std::fs::write(
            &list,
            serde_json::json!([
                {"file_path": "clips/a.mp4", "text": "A red ball.", "image_path": "scene.png", "type": "video"},
                {"file_path": "clips/b.mp4", "text": "A red ball rolls.", "image_path": "scene.png", "type": "video"}
            ])
            .to_string(),
        )
        .unwrap();
        let models = Models::new();
        let cache = d.join("cache");
        let pcfg = PrepareConfig {
            base: ModelChoice::Dir(tiny_wan_i2v()),
            frames: 9,
            size: Size::new(32, 32),
            entities: Some(super::first_frame::tiny_config()),
            ..PrepareConfig::default()
        };
        let r = finetune::prepare(
            &PrepareInput::new(&list, &cache, &models),
            &pcfg,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(r.examples, 2, "{:?}", r.skipped);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["version"], 2);
        assert!(
            index["entities"]["segmenter_weights"].is_string(),
            "{index}"
        );
        let t = reelsmith::diffusion::candle_core::safetensors::load(
            cache.join("example_000000.safetensors"),
            &reelsmith::diffusion::candle_core::Device::Cpu,
        )
        .unwrap();
        let (n, dim) = t["entities"].dims2().unwrap();
        assert!(n >= 1 && dim > 0);
        assert_eq!(t["entity_geometry"].dims(), &[n, 3]);

        let adapter_dir = d.join("lora");
        let tcfg = FinetuneConfig {
            rank: 4,
            alpha: 4.0,
            lr: 1e-2,
            steps: 2,
            save_every: 0,
            entity_attn: Some(finetune::EntityAttnConfig {
                every: 1,
                heads: 2,
                ..Default::default()
            }),
            ..FinetuneConfig::default()
        };
        let tr = finetune::train(
            &TrainInput::new(&cache, &adapter_dir, &models),
            &tcfg,
            &NoProgress,
        )
        .unwrap();
        assert!(tr.final_loss.is_finite());
        let ec = WanLora::entity_config_of(&tr.adapter)
            .unwrap()
            .expect("entity attention saved");
        assert_eq!(ec.entity_dim, dim);
        assert!(
            ec.source.is_some(),
            "the adapter records how the entities were made"
        );

        let gcfg = GenerateConfig {
            model: ModelChoice::Dir(tiny_wan_i2v()),
            prompt: "ad23r2 the camera view suddenly changes. A red ball.".into(),
            frames: 9,
            size: Size::new(32, 32),
            steps: 2,
            guidance: 1.0,
            lora: Some(tr.adapter.clone()),
            ..GenerateConfig::default()
        };
        let g = generate::run(
            &GenerateInput::new(Some(&scene), &d.join("out/"), &models),
            &gcfg,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(g.frames, 5);
        // Without a first frame there are no entities to read.
        let e = generate::run(
            &GenerateInput::new(None, &d.join("o2/"), &models),
            &gcfg,
            &NoProgress,
        )
        .unwrap_err();
        assert!(e.to_string().contains("first frame"), "{e}");
    }

    fn eval_with_and_without_the_adapter(
        d: &std::path::Path,
        adapter: &std::path::Path,
        models: &Models,
    ) {
        use reelsmith::pipelines::finetune::{EvalConfig, EvalInput};
        let held = d.join("held");
        std::fs::create_dir(&held).unwrap();
        super::first_frame::scene()
            .save(held.join("one.png"))
            .unwrap();
        super::first_frame::scene()
            .save(held.join("two.png"))
            .unwrap();
        let list = held.join("eval.json");
        std::fs::write(
            &list,
            serde_json::json!([
                {"file_path": "one.mp4", "text": "A red ball rolls.", "image_path": "one.png"},
                {"text": "A blue box.", "image_path": "missing.png"},
                {"image_path": "two.png", "text": "ad23r2 the camera view suddenly changes. A red ball rolls."},
                {"image_path": "two.png"}
            ])
            .to_string(),
        )
        .unwrap();
        let cfg = EvalConfig {
            base: ModelChoice::Dir(tiny_wan_i2v()),
            frames: 9,
            size: Size::new(32, 32),
            steps: 2,
            guidance: 1.0,
            entities: super::first_frame::tiny_config(),
            retention: reelsmith::pipelines::retention::RetentionConfig {
                fps: 16.0,
                ..Default::default()
            },
            ..EvalConfig::default()
        };
        let out = d.join("eval");
        let r = finetune::eval(
            &EvalInput::new(&list, adapter, &out, models),
            &cfg,
            &NoProgress,
        )
        .unwrap();
        // Examples 1 (no image) and 3 (no caption) are reported and left out.
        assert_eq!(
            r.skipped.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![1, 3],
            "{:?}",
            r.skipped
        );
        assert!(r.skipped[0].reason.contains("does not exist"));
        assert!(r.skipped[1].reason.contains("text"));
        assert_eq!(r.examples.len(), 2);
        assert_eq!(r.examples[0].entry.name, "one.mp4");
        assert!(r.examples[0]
            .entry
            .caption
            .starts_with("ad23r2 the camera view suddenly changes. A red ball"));
        for e in &r.examples {
            assert!(e.entities >= 1);
            for v in [e.base_similarity, e.lora_similarity] {
                assert!(v.is_finite() && (-1.0..=1.0).contains(&v), "{v}");
            }
            for v in [e.base_presence, e.lora_presence] {
                assert!((0.0..=1.0).contains(&v), "{v}");
            }
        }
        // Both examples are the same frame and caption with the same seed: the same videos,
        // byte for byte (x264's AVX-512 routines made about 1 run in 40 differ here), so the
        // same scores.
        for arm in ["base", "lora"] {
            let a = std::fs::read(out.join(format!("000_{arm}.mp4"))).unwrap();
            let b = std::fs::read(out.join(format!("001_{arm}.mp4"))).unwrap();
            assert!(a == b, "the two examples' {arm} videos differ");
        }
        let (e0, e1) = (&r.examples[0], &r.examples[1]);
        assert_eq!(
            (e0.base_similarity, e0.lora_similarity),
            (e1.base_similarity, e1.lora_similarity),
            "{e0:?} {e1:?}"
        );
        for f in [
            "eval.csv",
            "eval.png",
            "eval.json",
            "000_base.mp4",
            "000_lora.mp4",
            "001_lora.mp4",
            "000_retention_lora.csv",
        ] {
            assert!(out.join(f).is_file(), "{f}");
        }
        // The videos hold the frames left after the 4 transition frames.
        let frames = reelsmith::decode::open(out.join("000_base.mp4"))
            .unwrap()
            .count_frames()
            .unwrap();
        assert_eq!(frames, 5);
        let csv = std::fs::read_to_string(out.join("eval.csv")).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 4, "{csv}");
        assert!(rows[0].starts_with("index,name,entities,base_similarity,lora_similarity"));
        assert!(rows[3].starts_with("mean,"));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("eval.json")).unwrap()).unwrap();
        assert_eq!(json["examples"].as_array().unwrap().len(), 2);
        assert!(
            (json["mean_lora_similarity"].as_f64().unwrap() - r.mean_lora_similarity as f64).abs()
                < 1e-6
        );

        // A folder of frames with captions; a frame without its caption is reported.
        let (good, skipped) = finetune::read_eval_examples(
            &held,
            finetune::TRANSITION_PHRASE,
            finetune::PhraseMode::Require,
        )
        .unwrap();
        assert!(good.is_empty());
        assert_eq!(skipped.len(), 2);
        assert!(skipped[0].reason.contains("one.txt"), "{:?}", skipped);
        std::fs::write(
            held.join("one.txt"),
            "ad23r2 the camera view suddenly changes. A ball.",
        )
        .unwrap();
        let (good, _) = finetune::read_eval_examples(
            &held,
            finetune::TRANSITION_PHRASE,
            finetune::PhraseMode::Require,
        )
        .unwrap();
        assert_eq!(good.len(), 1);
        assert_eq!(good[0].name, "one.png");

        // Bad settings and inputs name what is wrong.
        let e = finetune::eval(
            &EvalInput::new(&list, adapter, &d.join("e2"), models),
            &EvalConfig {
                drop_frames: 9,
                ..cfg.clone()
            },
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(e.setting(), Some("drop_frames"));
        let e = finetune::eval(
            &EvalInput::new(&list, &d.join("nothing.safetensors"), &d.join("e3"), models),
            &cfg,
            &NoProgress,
        )
        .unwrap_err();
        assert!(e.to_string().contains("nothing.safetensors"), "{e}");
        let e = finetune::eval(
            &EvalInput::new(&list, adapter, &d.join("e4"), models),
            &EvalConfig {
                base: ModelChoice::None,
                ..cfg
            },
            &NoProgress,
        )
        .unwrap_err();
        assert_eq!(e.setting(), Some("base"));
        assert!(!d.join("e2").exists() && !d.join("e3").exists() && !d.join("e4").exists());
    }
}
