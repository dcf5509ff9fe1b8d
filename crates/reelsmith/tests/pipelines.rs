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
                    s.start_frame, frame as u64,
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
                assert!(len >= cfg.min_seconds - 1e-6, "{name}: segment {} {len:.2}s", s.number);
            }
            assert!(len <= cfg.max_seconds + 1e-6, "{name}: segment {} {len:.2}s", s.number);
            assert!((1..=4).contains(&s.keyframes.len()), "{name}");
            for k in &s.keyframes {
                assert!(k.time >= s.start - 1e-6 && k.time < s.end, "{name}");
                assert!(k.distance_to_centroid.is_finite() && k.distance_to_centroid >= 0.0);
                assert!(target.join(&k.path).is_file(), "{name}: {}", k.path);
            }
        }
        for p in ["keyframes_grid.jpg", "successor.png", "embeddings.png"] {
            assert!(r.pictures.iter().any(|x| x == p), "{name}: {p} not listed");
            assert!(target.join(p).metadata().unwrap().len() > 1000, "{name}: {p}");
        }
        assert!(r.embedder.starts_with("pixel"), "{}", r.embedder);
    }
}

#[test]
fn quantile_keyframes_match_the_numpy_reference_on_full_size_frames() {
    let Some(dir) = shared_videos() else { return };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keyframes_reference.json");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let q = reference["quantile"].as_f64().unwrap();
    let cfg = KeyframesConfig::default();
    assert_eq!(cfg.analysis_height, None, "full resolution is the default");
    assert_eq!(cfg.quantile, q);
    for (name, want) in reference["videos"].as_object().unwrap() {
        let variation = keyframes::variations(&dir.join(name), &cfg, &NoProgress).unwrap();
        assert_eq!(variation.len() as u64, want["frames"].as_u64().unwrap(), "{name}");
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
        eprintln!("{name}: {} vs {} keyframes, jaccard {jaccard:.3}, threshold {thr:?}", got.len(), want.len());
        // Two decoders convert YUV to RGB a little differently; frames near the threshold may
        // swap, nothing else.
        assert!(jaccard >= 0.9, "{name}: jaccard {jaccard:.3}: {got:?} vs {want:?}");
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
