//! Integration tests for reelsmith-decode: synthetic videos encoded with video-rs, the real
//! clips in $REELSMITH_SHARED/videos (skipped when unset), and damaged inputs.

use std::path::{Path, PathBuf};

use reelsmith_test_support::{ground_truth, shared_videos};

use reelsmith_decode::{
    export_clip, export_clips, open, ClipJob, ClipMode, ClipOptions, DecodeError, DecodeOptions,
    Sampling, Scale,
};

const W: usize = 64;
const H: usize = 48;
const FPS: usize = 25;
const N: usize = 60;

/// Grey level that encodes frame `k` (survives H.264 within a couple of levels).
fn level(k: usize) -> u8 {
    (20 + k * 3) as u8
}

/// Encodes `frames` (RGB, `W`×`H`) at 25 fps into an H.264 MP4 with x264 `preset` and
/// `params` (its `x264-params`), a keyframe every 12 frames.
fn encode_h264(
    path: &Path,
    preset: &str,
    params: &str,
    frames: impl Iterator<Item = ndarray::Array3<u8>>,
) {
    video_rs::init().unwrap();
    let opts: std::collections::HashMap<String, String> = [
        ("preset".to_string(), preset.to_string()),
        ("x264-params".to_string(), params.to_string()),
    ]
    .into_iter()
    .collect();
    let settings = video_rs::encode::Settings::preset_h264_custom(
        W,
        H,
        video_rs::ffmpeg::format::Pixel::YUV420P,
        opts.into(),
    )
    .with_keyframe_interval(12);
    let mut enc = video_rs::Encoder::new(path, settings).unwrap();
    for (k, frame) in frames.enumerate() {
        enc.encode(&frame, video_rs::Time::from_units(k, FPS))
            .unwrap();
    }
    enc.finish().unwrap();
}

/// Writes an H.264 MP4 of `N` solid grey frames at 25 fps, keyframe every 12 frames.
fn synthetic(dir: &Path) -> PathBuf {
    let path = dir.join("synthetic.mp4");
    let frames = (0..N).map(|k| ndarray::Array3::<u8>::from_elem((H, W, 3), level(k)));
    encode_h264(
        &path,
        "ultrafast",
        "keyint=12:min-keyint=12:scenecut=0",
        frames,
    );
    path
}

fn mean_level(img: &image::RgbImage) -> f64 {
    let s: u64 = img.as_raw().iter().map(|&v| u64::from(v)).sum();
    s as f64 / img.as_raw().len() as f64
}

/// Index of the frame whose grey level is nearest to the image's mean.
fn which_frame(img: &image::RgbImage) -> usize {
    let m = mean_level(img);
    (0..N)
        .min_by(|&a, &b| {
            (f64::from(level(a)) - m)
                .abs()
                .total_cmp(&(f64::from(level(b)) - m).abs())
        })
        .unwrap()
}

#[test]
fn synthetic_probe_and_full_decode() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path());
    let v = open(&path).unwrap();
    let i = v.info();
    assert_eq!((i.width, i.height), (W as u32, H as u32));
    assert_eq!(i.codec, "h264");
    assert!((i.fps - FPS as f64).abs() < 1e-6, "fps {}", i.fps);
    assert!(!i.has_audio);
    assert_eq!(i.rotation, 0);
    // video-rs leaves the last packet without a duration, so the MP4 edit list may hide the
    // last frame (FFmpeg's own decoder shows N-1 then, as we do); the packets are all there.
    assert_eq!(v.count_packets().unwrap(), N as u64);
    let decodable = v.count_frames().unwrap() as usize;
    assert!(
        decodable == N || decodable == N - 1,
        "{decodable} decodable frames"
    );
    let frames: Vec<_> = v
        .frames(&DecodeOptions::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(frames.len(), decodable);
    for (k, f) in frames.iter().enumerate() {
        assert_eq!(f.index, k as u64);
        assert!(
            (f.time - k as f64 / FPS as f64).abs() < 1e-3,
            "frame {k} at {}",
            f.time
        );
        assert_eq!(which_frame(&f.image), k, "content of frame {k}");
        assert_eq!(f.image.dimensions(), (W as u32, H as u32));
    }
}

#[test]
fn synthetic_sampling_and_scaling() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path());
    let v = open(&path).unwrap();
    let nth: Vec<u64> = v
        .frames(&DecodeOptions::new().sampling(Sampling::EveryNth(7)))
        .unwrap()
        .map(|f| f.unwrap().index)
        .collect();
    assert_eq!(nth, (0..N as u64 - 1).step_by(7).collect::<Vec<_>>());

    // 5 fps from 25 fps: slot k keeps the last frame with round(t*5) == k, i.e. frames
    // 2, 7, 12, ... (FFmpeg's fps filter picks the same ones).
    let fps: Vec<_> = v
        .frames(&DecodeOptions::new().sampling(Sampling::Fps(5.0)))
        .unwrap()
        .map(|f| f.unwrap())
        .collect();
    let idx: Vec<u64> = fps.iter().map(|f| f.index).collect();
    assert_eq!(idx, (2..N as u64 - 1).step_by(5).collect::<Vec<_>>());
    for f in &fps {
        assert_eq!(which_frame(&f.image) as u64, f.index);
    }

    let scaled = v
        .frames(&DecodeOptions::new().scale(Scale::Height(30)))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    // 64x48 to height 30: width 2*round(30*64/96) = 40.
    assert_eq!(scaled.image.dimensions(), (40, 30));
    let exact = v
        .frames(&DecodeOptions::new().scale(Scale::Exact {
            width: 17,
            height: 9,
        }))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(exact.image.dimensions(), (17, 9));
    let not_enlarged = v
        .frames(&DecodeOptions::new().scale(Scale::MaxHeight(480)))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(not_enlarged.image.dimensions(), (W as u32, H as u32));

    for bad in [
        DecodeOptions::new().sampling(Sampling::EveryNth(0)),
        DecodeOptions::new().sampling(Sampling::Fps(0.0)),
        DecodeOptions::new().sampling(Sampling::Fps(f64::NAN)),
        DecodeOptions::new().scale(Scale::Height(0)),
        DecodeOptions::new().scale(Scale::Exact {
            width: 0,
            height: 5,
        }),
    ] {
        assert!(
            matches!(v.frames(&bad), Err(DecodeError::InvalidArgument { .. })),
            "{bad:?}"
        );
    }
}

/// The first frame shown at or after `t`, found by seeking.
fn first_frame_from(v: &reelsmith_decode::Video, t: f64) -> reelsmith_decode::Frame {
    v.frames_from(t, &DecodeOptions::new())
        .unwrap()
        .next()
        .expect("a frame after the seek")
        .unwrap()
}

#[test]
fn synthetic_exact_seek() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path());
    let v = open(&path).unwrap();
    // Frame 30 is a keyframe only by accident of the 12-frame GOP; 17, 29 and 41 are not.
    for k in [0usize, 17, 29, 41, 58] {
        let t = k as f64 / FPS as f64;
        let f = first_frame_from(&v, t);
        assert!((f.time - t).abs() < 1e-3, "seek to {t}: got {}", f.time);
        assert_eq!(f.index, k as u64);
        assert_eq!(which_frame(&f.image), k);
    }
    // Between frames: the next frame.
    let f = v
        .frames_from(17.5 / FPS as f64, &DecodeOptions::new())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(which_frame(&f.image), 18);
    assert!(v.frames_from(-1.0, &DecodeOptions::new()).is_err());
    assert!(v
        .frames_from(100.0, &DecodeOptions::new())
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn synthetic_clip_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path());
    let v = open(&path).unwrap();
    let out = dir.path().join("clip.mp4");
    // [0.7, 1.5) s = frames 18..37 (1.5 s is frame 38's start, excluded... 37.5 -> 38).
    let r = export_clip(&v, 0.7, 1.5, &out, &ClipOptions::default()).unwrap();
    assert_eq!(r.frames, 20);
    assert!((r.start - 0.72).abs() < 1e-3);
    let clip = open(&out).unwrap();
    assert_eq!(clip.count_frames().unwrap(), 20);
    let frames: Vec<_> = clip
        .frames(&DecodeOptions::new())
        .unwrap()
        .map(|f| f.unwrap())
        .collect();
    assert_eq!(which_frame(&frames[0].image), 18);
    assert_eq!(which_frame(&frames[19].image), 37);
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty());
    // The clip is readable as any new file is (its temporary file was owner-only).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out), mode(&plain));
    }

    // Stream copy starts on the keyframe at or before 0.7 s (frame 12 at 0.48 s).
    let out2 = dir.path().join("copy.mp4");
    let opts = ClipOptions {
        mode: ClipMode::StreamCopy,
        ..ClipOptions::default()
    };
    let r = export_clip(&v, 0.7, 1.5, &out2, &opts).unwrap();
    assert!(r.snapped_to_keyframe);
    assert!((r.start - 0.48).abs() < 1e-3, "copy starts at {}", r.start);
    let first = open(&out2)
        .unwrap()
        .frames(&DecodeOptions::new())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(which_frame(&first.image), 12);

    // Empty and out-of-range requests are errors and leave nothing behind.
    let out3 = dir.path().join("none.mp4");
    assert!(export_clip(&v, 1.0, 1.0, &out3, &ClipOptions::default()).is_err());
    assert!(export_clip(&v, 50.0, 51.0, &out3, &ClipOptions::default()).is_err());
    assert!(!out3.exists());
}

#[test]
fn synthetic_clips_cut_several_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path());
    let v = open(&path).unwrap();
    let spans = [(0.0, 0.4), (0.7, 1.5), (1.2, 2.0), (2.0, 2.4)];
    let jobs: Vec<ClipJob> = spans
        .iter()
        .enumerate()
        .map(|(i, &(start, end))| {
            // Stills: inside, at the very start, before the clip and after it.
            ClipJob::new(start, end, dir.path().join(format!("c{i}.mp4"))).with_stills([
                start + 0.13,
                start,
                start - 0.2,
                end + 0.1,
            ])
        })
        .collect();
    let mut seen = Vec::new();
    let reports = export_clips(&v, &jobs, &ClipOptions::default(), |i, r| {
        seen.push((i, r.frames))
    })
    .unwrap();
    seen.sort();
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    for (i, (job, r)) in jobs.iter().zip(&reports).enumerate() {
        // Reports come back in job order, each as its own sequential cut reports it.
        let alone = dir.path().join("alone.mp4");
        let want = export_clip(&v, job.start, job.end, &alone, &ClipOptions::default()).unwrap();
        assert_eq!(r.path, job.out, "clip {i}");
        assert_eq!((r.frames, r.start), (want.frames, want.start), "clip {i}");
        assert_eq!(seen[i].1, r.frames);
        // The stills are the frames a seek would give, and none outside the clip.
        assert_eq!(r.stills.len(), 4);
        for (k, &at) in job.stills[..2].iter().enumerate() {
            let seek = first_frame_from(&v, at);
            let still = r.stills[k].as_ref().expect("a still inside the clip");
            assert_eq!(
                (still.time, still.index),
                (seek.time, seek.index),
                "clip {i}"
            );
            assert!(still.image == seek.image, "clip {i} still {k} differs");
        }
        assert!(r.stills[2].is_none() && r.stills[3].is_none(), "clip {i}");
        let frames: Vec<usize> = open(&job.out)
            .unwrap()
            .frames(&DecodeOptions::new())
            .unwrap()
            .map(|f| which_frame(&f.unwrap().image))
            .collect();
        let first = (job.start * FPS as f64).round() as usize;
        let want_frames: Vec<usize> = (first..first + frames.len()).collect();
        assert_eq!(frames, want_frames, "clip {i} holds the wrong frames");
    }

    // Stream copy decodes nothing, so it has no stills to give.
    let copy = ClipOptions {
        mode: ClipMode::StreamCopy,
        ..ClipOptions::default()
    };
    let r = export_clips(&v, &jobs[..1], &copy, |_, _| {}).unwrap();
    assert_eq!(r[0].stills, vec![None; 4]);

    // A bad job fails the whole call with its own error; the good ones are complete files
    // and nothing half-written is left.
    let mut bad = jobs.clone();
    bad[2].start = 50.0;
    bad[2].end = 51.0;
    for j in &bad {
        let _ = std::fs::remove_file(&j.out);
    }
    let err = export_clips(&v, &bad, &ClipOptions::default(), |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("50.000"), "{err}");
    assert!(!bad[2].out.exists());
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn bad_inputs_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.mp4");
    assert!(matches!(open(&missing), Err(DecodeError::NotFound { .. })));

    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(open(&empty), Err(DecodeError::EmptyFile { .. })));

    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video, just some words\n".repeat(50)).unwrap();
    let e = open(&text).unwrap_err();
    assert!(matches!(e, DecodeError::NotAVideo { .. }), "{e}");
    assert!(e.to_string().contains("notes.mp4"));

    assert!(matches!(
        open(dir.path()),
        Err(DecodeError::InvalidArgument { .. })
    ));

    // A WAV file: a real container with audio only.
    let wav = dir.path().join("tone.wav");
    std::fs::write(&wav, wav_bytes(8000, 4000)).unwrap();
    let e = open(&wav).unwrap_err();
    assert!(matches!(e, DecodeError::NoVideoStream { .. }), "{e}");
}

/// A mono 16-bit PCM WAV file of `samples` samples of a square wave.
fn wav_bytes(rate: u32, samples: u32) -> Vec<u8> {
    let mut b = Vec::new();
    let data_len = samples * 2;
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let v: i16 = if (i / 20) % 2 == 0 { 8000 } else { -8000 };
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

/// Decodes everything it can; returns Ok(frame count) or the first error.
fn drain(path: &Path) -> Result<usize, DecodeError> {
    let v = open(path)?;
    let mut n = 0;
    for f in v.frames(&DecodeOptions::new().scale(Scale::Height(32)))? {
        f?;
        n += 1;
    }
    Ok(n)
}

fn damaged_copies(src: &Path, dir: &Path) -> Vec<(String, PathBuf)> {
    let bytes = std::fs::read(src).unwrap();
    let mut out = Vec::new();
    for frac in [0.01, 0.1, 0.5, 0.9] {
        let p = dir.join(format!("trunc{frac}.mp4"));
        std::fs::write(&p, &bytes[..(bytes.len() as f64 * frac) as usize]).unwrap();
        out.push((format!("truncated to {frac}"), p));
    }
    // Deterministic bit flips (xorshift) over the whole file, headers included.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for (n, flips) in [(0, 10usize), (1, 100), (2, 1000)] {
        let mut b = bytes.clone();
        for _ in 0..flips {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let pos = (state % b.len() as u64) as usize;
            b[pos] ^= 1 << (state % 8);
        }
        let p = dir.join(format!("flip{n}.mp4"));
        std::fs::write(&p, &b).unwrap();
        out.push((format!("{flips} bit flips"), p));
    }
    out
}

#[test]
fn damaged_synthetic_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = synthetic(dir.path());
    let full = drain(&path).unwrap();
    for (what, p) in damaged_copies(&path, dir.path()) {
        match drain(&p) {
            Ok(n) => assert!(
                n <= full,
                "{what}: {n} frames from a damaged copy of {full}"
            ),
            Err(e) => assert_eq!(e.path(), p.as_path(), "{what}: error names the file"),
        }
    }
    // A copy cut to its first 1% loses the index: that must be an error, not frames.
    let cut = dir.path().join("trunc0.01.mp4");
    assert!(drain(&cut).is_err());
}

// ---- Real clips from $REELSMITH_SHARED/videos --------------------------------------------

#[test]
fn real_clips_match_ground_truth() {
    let Some(dir) = shared_videos() else { return };
    let gt = ground_truth(&dir);
    let videos = gt["videos"].as_object().unwrap();
    assert!(videos.len() >= 5);
    for (name, meta) in videos {
        let path = dir.join(name);
        let v = open(&path).unwrap();
        let i = v.info().clone();
        let frames = meta["frames"].as_u64().unwrap();
        assert_eq!(
            v.count_packets().unwrap(),
            frames,
            "{name}: counted packets"
        );
        assert_eq!(v.count_frames().unwrap(), frames, "{name}: counted frames");
        let (gw, gh) = (
            meta["width"].as_u64().unwrap() as u32,
            meta["height"].as_u64().unwrap() as u32,
        );
        // ground_truth lists coded sizes; the probe reports the displayed ones.
        if i.rotation % 180 == 90 {
            assert_eq!((i.width, i.height), (gh, gw), "{name}: rotated size");
        } else {
            assert_eq!((i.width, i.height), (gw, gh), "{name}: size");
        }
        // Decode every frame small and check the count, monotonic times and the cuts:
        // the frame difference at each annotated cut is the largest in its neighbourhood.
        let opts = DecodeOptions::new().scale(Scale::Exact {
            width: 32,
            height: 18,
        });
        let mut diffs = Vec::new();
        let mut prev: Option<image::RgbImage> = None;
        let mut last_t = f64::NEG_INFINITY;
        let mut n = 0u64;
        for f in v.frames(&opts).unwrap() {
            let f = f.unwrap();
            assert_eq!(f.index, n);
            assert!(f.time > last_t, "{name}: time goes back at frame {n}");
            last_t = f.time;
            if let Some(p) = &prev {
                let d: u64 = p
                    .as_raw()
                    .iter()
                    .zip(f.image.as_raw())
                    .map(|(a, b)| u64::from(a.abs_diff(*b)))
                    .sum();
                diffs.push(d);
            } else {
                diffs.push(0);
            }
            prev = Some(f.image);
            n += 1;
        }
        assert_eq!(n, frames, "{name}: decoded frames");
        assert!(
            last_t <= i.duration + 1e-3,
            "{name}: last frame after the end"
        );
        for cut in meta["cuts"].as_array().unwrap() {
            let c = cut.as_u64().unwrap() as usize;
            let lo = c.saturating_sub(3).max(1);
            let hi = (c + 3).min(diffs.len() - 1);
            let best = (lo..=hi).max_by_key(|&k| diffs[k]).unwrap();
            assert_eq!(
                best, c,
                "{name}: cut at {c} but the largest change is at {best}"
            );
        }
    }
}

#[test]
fn real_vfr_times_match_ffprobe() {
    let Some(dir) = shared_videos() else { return };
    let path = dir.join("goldeneye-vfr-drop3.mp4");
    let out = match std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=best_effort_timestamp_time",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
    {
        Ok(o) if o.status.success() => o,
        _ => {
            eprintln!("skipped: ffprobe is not installed");
            return;
        }
    };
    let expected: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    let v = open(&path).unwrap();
    let got: Vec<f64> = v
        .frames(&DecodeOptions::new().scale(Scale::Exact {
            width: 16,
            height: 16,
        }))
        .unwrap()
        .map(|f| f.unwrap().time)
        .collect();
    assert_eq!(got.len(), expected.len());
    // The clip has dropped frames: gaps of two and more frame durations must show.
    let max_gap = got.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(max_gap > 1.5 / 23.976, "no gap found in a VFR clip");
    for (k, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert!((g - e).abs() < 1e-4, "frame {k}: {g} vs ffprobe {e}");
    }
}

#[test]
fn real_rotated_and_webm_and_damaged() {
    let Some(dir) = shared_videos() else { return };
    let rot = open(dir.join("issue-134-rotate.mp4")).unwrap();
    assert_eq!(rot.info().rotation, 90);
    let f = rot
        .frames(
            &DecodeOptions::new()
                .sampling(Sampling::Fps(1.0))
                .scale(Scale::Height(320)),
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(f.image.dimensions(), (136, 320));

    let webm = open(dir.join("big_buck_bunny_0_30.webm")).unwrap();
    assert_eq!(webm.info().codec, "vp8");
    let clip_dir = tempfile::tempdir().unwrap();
    // Vorbis audio cannot go into MP4 as it is: re-encode gives AAC, audio kept.
    let out = clip_dir.path().join("webm.mp4");
    let r = export_clip(
        &webm,
        10.0,
        12.0,
        &out,
        &ClipOptions {
            preset: reelsmith_decode::X264Preset::Ultrafast,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.audio);
    assert_eq!(r.frames, 48);
    let c = open(&out).unwrap();
    assert!(c.info().has_audio);
    assert_eq!(c.count_frames().unwrap(), 48);

    let damaged = tempfile::tempdir().unwrap();
    let src = dir.join("bikes.mp4");
    for (what, p) in damaged_copies(&src, damaged.path()) {
        if let Err(e) = drain(&p) {
            assert_eq!(e.path(), p.as_path(), "{what}");
        }
    }
}

#[test]
fn real_skip_loop_filter_changes_pixels_not_frames() {
    let Some(dir) = shared_videos() else { return };
    // H.264 and VP8 both have an in-loop filter; skipping it must keep every frame, index
    // and timestamp, change some pixels (the option takes effect), and only a little.
    for name in ["bikes.mp4", "big_buck_bunny_0_30.webm"] {
        let v = open(dir.join(name)).unwrap();
        let small = DecodeOptions::new().scale(Scale::Exact {
            width: 64,
            height: 36,
        });
        let normal: Vec<_> = v.frames(&small).unwrap().map(Result::unwrap).collect();
        let fast: Vec<_> = v
            .frames(&small.clone().skip_loop_filter(true))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(normal.len(), fast.len(), "{name}: frame count");
        let mut changed = 0;
        let mut total_diff = 0f64;
        for (a, b) in normal.iter().zip(&fast) {
            assert_eq!(a.index, b.index, "{name}");
            assert_eq!(a.time, b.time, "{name}: frame {}", a.index);
            let d: u64 = a
                .image
                .as_raw()
                .iter()
                .zip(b.image.as_raw())
                .map(|(x, y)| u64::from(x.abs_diff(*y)))
                .sum();
            changed += usize::from(d > 0);
            total_diff += d as f64 / a.image.as_raw().len() as f64;
        }
        assert!(
            changed > 0,
            "{name}: skipping the loop filter changed nothing"
        );
        let mean = total_diff / normal.len() as f64;
        assert!(mean < 4.0, "{name}: mean abs difference {mean} levels");
    }
}

/// Writes a 10 s, 25 fps H.264 MP4 whose frames change grey level and position of a bar
/// every frame; keyframes every 12 frames, with B-frames and open GOPs when `open_gop`.
fn synthetic_long(dir: &Path, open_gop: bool) -> PathBuf {
    let path = dir.join(if open_gop {
        "long-open.mp4"
    } else {
        "long.mp4"
    });
    let params = if open_gop {
        "keyint=12:min-keyint=12:scenecut=0:bframes=3:open-gop=1"
    } else {
        "keyint=12:min-keyint=12:scenecut=0"
    };
    let frames = (0..250).map(|k| {
        let mut frame = ndarray::Array3::<u8>::from_elem((H, W, 3), (20 + (k * 7) % 200) as u8);
        let x = (k * 3) % (W - 8);
        frame.slice_mut(ndarray::s![.., x..x + 8, ..]).fill(250);
        frame
    });
    encode_h264(&path, "veryfast", params, frames);
    path
}

/// `map_frames` must give exactly what a sequential pass gives: same frames, indices,
/// times and pixels, for every-frame and fps sampling.
fn assert_parallel_matches(path: &Path, opts: &DecodeOptions) -> bool {
    let v = open(path).unwrap();
    let seq: Vec<_> = v.frames(opts).unwrap().map(Result::unwrap).collect();
    let par = open(path)
        .unwrap()
        .map_frames(
            opts,
            2,
            |f| Ok::<_, DecodeError>((f.index, f.image)),
            |_| {},
        )
        .unwrap();
    let name = path.display();
    assert_eq!(seq.len(), par.len(), "{name} {opts:?}: frame count");
    let mut chunked = false;
    for (s, p) in seq.iter().zip(&par) {
        assert_eq!(s.index, p.index, "{name} {opts:?}: index");
        assert_eq!(s.time, p.time, "{name} {opts:?}: time of frame {}", s.index);
        assert!(
            s.image == p.value.1,
            "{name} {opts:?}: pixels of frame {}",
            s.index
        );
        chunked |= p.value.0 != p.index;
    }
    chunked
}

#[test]
fn parallel_map_matches_sequential() {
    let dir = tempfile::tempdir().unwrap();
    for open_gop in [false, true] {
        let path = synthetic_long(dir.path(), open_gop);
        for sampling in [Sampling::All, Sampling::Fps(3.0), Sampling::Fps(7.0)] {
            let opts = DecodeOptions::new().sampling(sampling);
            let chunked = assert_parallel_matches(&path, &opts);
            // 10 s with a keyframe every 0.48 s: the video is split into chunks.
            assert!(
                chunked,
                "open_gop={open_gop} {sampling:?}: no chunks were used"
            );
        }
        // Counting decodes in chunks too, without converting: the same count as a pass.
        let frames = open(&path)
            .unwrap()
            .frames(&DecodeOptions::new())
            .unwrap()
            .count();
        assert!(frames > 200, "{frames} frames decoded");
        assert_eq!(open(&path).unwrap().count_frames().unwrap(), frames as u64);
        // EveryNth counts from the start: the sequential pass, same results.
        let opts = DecodeOptions::new().sampling(Sampling::EveryNth(5));
        assert!(!assert_parallel_matches(&path, &opts));
    }
    // A failing frame function fails the call with its own error.
    let path = synthetic_long(dir.path(), false);
    let err = open(&path)
        .unwrap()
        .map_frames(
            &DecodeOptions::new(),
            2,
            |f| {
                if f.time > 7.0 {
                    Err(DecodeError::InvalidArgument {
                        path: path.clone(),
                        detail: "stop".into(),
                    })
                } else {
                    Ok(())
                }
            },
            |_| {},
        )
        .unwrap_err();
    assert!(err.to_string().contains("stop"), "{err}");
}

#[test]
fn real_parallel_map_matches_sequential() {
    let Some(dir) = shared_videos() else { return };
    let gt = ground_truth(&dir);
    let mut chunked = 0;
    for name in gt["videos"].as_object().unwrap().keys() {
        let path = dir.join(name);
        let small = DecodeOptions::new()
            .scale(Scale::Exact {
                width: 64,
                height: 36,
            })
            .skip_loop_filter(true);
        chunked += usize::from(assert_parallel_matches(&path, &small));
        let sampled = DecodeOptions::new()
            .sampling(Sampling::Fps(3.0))
            .scale(Scale::MaxHeight(144));
        chunked += usize::from(assert_parallel_matches(&path, &sampled));
    }
    assert!(chunked > 0, "no real clip was decoded in chunks");
}

/// After a seek the non-reference frames before the asked time are not decoded: the
/// frames from there on must still be exactly those of a full pass (times, indices,
/// pixels), with one decoder thread and with frame threads.
fn assert_seek_matches(path: &Path, at: &[f64]) {
    let name = path.display();
    let v = open(path).unwrap();
    let full: Vec<_> = v
        .frames(&DecodeOptions::new())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for threads in [1, 0] {
        let opts = DecodeOptions::new().threads(threads);
        for &t in at {
            let want: Vec<_> = full
                .iter()
                .filter(|f| f.time >= t - 5e-4)
                .take(12)
                .collect();
            let got: Vec<_> = v
                .frames_from(t, &opts)
                .unwrap()
                .take(12)
                .map(Result::unwrap)
                .collect();
            assert_eq!(got.len(), want.len(), "{name} from {t}s, {threads} threads");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.time, w.time, "{name} from {t}s, {threads} threads");
                assert!(
                    g.image == w.image,
                    "{name} from {t}s, {threads} threads: pixels at {}s",
                    w.time
                );
            }
        }
    }
}

#[test]
fn seeks_skip_unreferenced_frames_and_give_the_frames_of_a_full_pass() {
    let dir = tempfile::tempdir().unwrap();
    // B-frames in an open GOP, keyframes every 0.48 s: seeks land mid-GOP.
    let path = synthetic_long(dir.path(), true);
    assert_seek_matches(&path, &[0.0, 0.44, 1.3, 5.02, 9.9]);
    // A frame-accurate cut from a B-frame shown before its GOP's keyframe starts there.
    let v = open(&path).unwrap();
    let out = dir.path().join("open-gop-cut.mp4");
    let r = export_clip(&v, 0.44, 1.0, &out, &ClipOptions::default()).unwrap();
    assert!((r.start - 0.44).abs() < 1e-3, "cut starts at {}", r.start);
    assert_eq!(r.frames, 14);
    let Some(videos) = shared_videos() else {
        return;
    };
    // The shared clips with B-frames (bikes 70 %, goldeneye 73 %, chaplin 31 %).
    for name in ["bikes.mp4", "goldeneye-vfr-drop3.mp4", "chaplin.mp4"] {
        assert_seek_matches(&videos.join(name), &[1.0, 3.37, 6.5]);
    }
}

// ---- Hostile input (issue 19) ---------------------------------------------------------------

/// Runs the ffmpeg command line (scripts/setup-system.sh installs it) to build a test input.
fn ffmpeg(args: &[&str]) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .status()
        .expect("the ffmpeg command line builds these inputs: run scripts/setup-system.sh");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// The frames of `path` whose times lie in `[start, end)`, as a sequential pass gives them.
fn frames_in(path: &Path, start: f64, end: f64) -> u64 {
    open(path)
        .unwrap()
        .frames(&DecodeOptions::new())
        .unwrap()
        .map(Result::unwrap)
        .filter(|f| f.time >= start - 5e-4 && f.time < end - 5e-4)
        .count() as u64
}

fn temp_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

#[cfg(unix)]
#[test]
fn paths_that_are_not_utf8_are_read_and_written() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let src = synthetic(dir.path());
    let odd = |bytes: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(bytes));
    let input = dir.path().join(odd(b"caf\xe9.mp4"));
    std::fs::copy(&src, &input).unwrap();
    let v = open(&input).unwrap();
    assert_eq!(v.path(), input.as_path());
    let n = v.frames(&DecodeOptions::new()).unwrap().count() as u64;
    assert_eq!(n, v.count_frames().unwrap());
    let out_dir = dir.path().join(odd(b"out\xff"));
    std::fs::create_dir(&out_dir).unwrap();
    for mode in [ClipMode::Reencode, ClipMode::StreamCopy] {
        let mut name = format!("clip-{mode:?}-").into_bytes();
        name.extend_from_slice(b"\xe9.mp4");
        let out = out_dir.join(odd(&name));
        let opts = ClipOptions {
            mode,
            ..ClipOptions::default()
        };
        let r = export_clip(&v, 0.5, 1.5, &out, &opts).unwrap();
        assert_eq!(open(&out).unwrap().count_frames().unwrap(), r.frames);
    }
    let image = out_dir.join(odd(b"still\xe9.png"));
    let f = v
        .frames(&DecodeOptions::new())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    reelsmith_decode::save_image(&f.image, &image, Some(reelsmith_decode::ImageFormat::Png))
        .unwrap();
    assert_eq!(image::open(&image).unwrap().to_rgb8(), f.image);
    assert!(temp_leftovers(&out_dir).is_empty());
}

#[test]
fn scale_requests_beyond_the_limits_are_refused_before_allocating() {
    use reelsmith_decode::{MAX_FRAME_PIXELS, MAX_FRAME_SIDE};
    let dir = tempfile::tempdir().unwrap();
    let v = open(synthetic(dir.path())).unwrap();
    let first = |scale: Scale| {
        v.frames(&DecodeOptions::new().scale(scale))
            .and_then(|mut f| f.next().unwrap())
    };
    // 64x48 to height 16000 would be 21334 pixels wide.
    for scale in [
        Scale::Height(16_000),
        Scale::Height(u32::MAX),
        Scale::Exact {
            width: MAX_FRAME_SIDE + 1,
            height: 2,
        },
        Scale::Exact {
            width: 2,
            height: u32::MAX,
        },
        Scale::Exact {
            width: 16_000,
            height: 16_000,
        },
    ] {
        let e = first(scale).unwrap_err();
        assert!(
            matches!(e, DecodeError::InvalidArgument { .. }),
            "{scale:?}: {e}"
        );
        assert!(e.to_string().contains("16384"), "{scale:?}: {e}");
    }
    // At the limits it works.
    let wide = first(Scale::Exact {
        width: MAX_FRAME_SIDE,
        height: 2,
    })
    .unwrap();
    assert_eq!(wide.image.dimensions(), (MAX_FRAME_SIDE, 2));
    let side = (MAX_FRAME_PIXELS as f64).sqrt() as u32;
    let big = first(Scale::Exact {
        width: side,
        height: side,
    })
    .unwrap();
    assert_eq!(big.image.dimensions(), (side, side));
    // MaxHeight never enlarges, so a huge one is fine.
    assert_eq!(
        first(Scale::MaxHeight(16_000)).unwrap().image.dimensions(),
        (W as u32, H as u32)
    );
}

/// Patches every sample delta of the first `stts` box (the video track of `src`) to 0: all
/// decode timestamps equal, as in a damaged `moov`.
fn zero_stts(src: &Path, dst: &Path) {
    let mut b = std::fs::read(src).unwrap();
    let i = b
        .windows(4)
        .position(|w| w == b"stts")
        .expect("an stts box");
    let entries = u32::from_be_bytes(b[i + 8..i + 12].try_into().unwrap()) as usize;
    assert!(entries > 0);
    for k in 0..entries {
        let at = i + 16 + 8 * k;
        b[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
    }
    std::fs::write(dst, b).unwrap();
}

#[test]
fn unusual_timestamps_cut_to_valid_clips() {
    let dir = tempfile::tempdir().unwrap();
    // A time base of one second: frames one second apart, two of them at the same second.
    let tb1 = dir.path().join("tb1.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=25:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-video_track_timescale",
        "1",
        tb1.to_str().unwrap(),
    ]);
    // Every sample duration 0 in the index: FFmpeg's demuxer makes up times that differ
    // between a pass from the start and one after a seek, and repeat.
    let flat = dir.path().join("flat-stts.mp4");
    zero_stts(&synthetic(dir.path()), &flat);
    let copy = ClipOptions {
        mode: ClipMode::StreamCopy,
        ..ClipOptions::default()
    };
    for (src, (start, end)) in [(&tb1, (0.0, 100.0)), (&flat, (0.0, 1.0))] {
        let v = open(src).unwrap();
        let name = src.file_name().unwrap().to_string_lossy().into_owned();
        for opts in [ClipOptions::default(), copy.clone()] {
            let what = format!("{name} {:?}", opts.mode);
            let out = dir.path().join(format!("{name}-{:?}.mp4", opts.mode));
            let r =
                export_clip(&v, start, end, &out, &opts).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(r.frames > 1, "{what}: {} frames", r.frames);
            // A valid MP4: it opens, holds every frame written, and decodes.
            let clip = open(&out).unwrap();
            assert_eq!(clip.count_packets().unwrap(), r.frames, "{what}");
            assert!(clip.count_frames().unwrap() > 0, "{what}");
            if src == &flat {
                assert!(
                    r.warnings.iter().any(|w| w.contains("timestamps")),
                    "{what}: {:?}",
                    r.warnings
                );
            }
        }
        // The time base of one second decodes the same from a seek: the re-encoded clip
        // holds exactly the frames of the range.
        if src == &tb1 {
            let out = dir.path().join("tb1-again.mp4");
            let r = export_clip(&v, start, end, &out, &ClipOptions::default()).unwrap();
            assert_eq!(r.frames, frames_in(src, start, end));
        }
    }
}

/// A 3 s, 64x48 H.264 video with 8 kHz PCM audio in Matroska (MP4 cannot hold PCM, so a
/// re-encoding cut encodes the audio to AAC).
fn pcm_mkv(path: &Path) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=25:duration=3",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=3:sample_rate=8000",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "pcm_s16le",
        "-shortest",
        path.to_str().unwrap(),
    ]);
}

#[test]
fn damaged_audio_is_left_out_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("pcm.mkv");
    pcm_mkv(&good);
    let r = export_clip(
        &open(&good).unwrap(),
        0.5,
        2.5,
        &dir.path().join("good.mp4"),
        &ClipOptions::default(),
    )
    .unwrap();
    assert!(r.audio && r.warnings.is_empty(), "{r:?}");
    // Its SamplingFrequency (Matroska element 0xB5, an 8-byte float) set to 1 GHz: FFmpeg
    // decodes the file, the AAC encoder refuses the rate.
    let mut b = std::fs::read(&good).unwrap();
    let i = b
        .windows(2)
        .position(|w| w == [0xB5, 0x88])
        .expect("a SamplingFrequency element");
    b[i + 2..i + 10].copy_from_slice(&1e9f64.to_be_bytes());
    let bad = dir.path().join("bad-audio.mkv");
    std::fs::write(&bad, b).unwrap();
    let v = open(&bad).unwrap();
    assert!(v.info().has_audio);
    let out = dir.path().join("bad.mp4");
    let r = export_clip(&v, 0.5, 2.5, &out, &ClipOptions::default()).unwrap();
    assert!(!r.audio);
    assert_eq!(r.frames, 50);
    assert!(
        r.warnings
            .first()
            .is_some_and(|w| w.contains("audio") && w.contains("bad-audio.mkv")),
        "{:?}",
        r.warnings
    );
    let clip = open(&out).unwrap();
    assert!(!clip.info().has_audio);
    assert_eq!(clip.count_frames().unwrap(), 50);
    assert!(temp_leftovers(dir.path()).is_empty());
}

#[test]
fn odd_and_tiny_sizes_reencode() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("1x1.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=1x1:rate=25:duration=1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv444p",
        one.to_str().unwrap(),
    ]);
    let odd = dir.path().join("3x5.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=3x5:rate=25:duration=1",
        "-c:v",
        "ffv1",
        odd.to_str().unwrap(),
    ]);
    for (src, size) in [(&one, (2, 2)), (&odd, (2, 4))] {
        let v = open(src).unwrap();
        let out = dir.path().join("clip.mp4");
        let r = export_clip(&v, 0.0, 0.5, &out, &ClipOptions::default()).unwrap();
        assert_eq!(r.frames, 13, "{}", src.display());
        assert!(r.warnings.iter().any(|w| w.contains("even")), "{r:?}");
        let clip = open(&out).unwrap();
        assert_eq!((clip.info().width, clip.info().height), size);
        assert_eq!(clip.count_frames().unwrap(), 13);
    }
    // FFV1 cannot go into MP4 as it is: a stream copy says so and what to do instead.
    let copy = ClipOptions {
        mode: ClipMode::StreamCopy,
        ..ClipOptions::default()
    };
    let e = export_clip(
        &open(&odd).unwrap(),
        0.0,
        0.5,
        &dir.path().join("c.mp4"),
        &copy,
    )
    .unwrap_err();
    assert!(e.to_string().contains("re-encoding"), "{e}");
    assert_eq!(e.path(), odd.as_path());
    assert!(temp_leftovers(dir.path()).is_empty());
}

#[test]
fn special_files_and_empty_samplings_get_true_messages() {
    let dir = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    {
        for dev in ["/dev/zero", "/dev/urandom"] {
            let e = open(dev).unwrap_err();
            assert!(
                matches!(e, DecodeError::NotARegularFile { .. }),
                "{dev}: {e}"
            );
            assert!(e.to_string().contains("character device"), "{e}");
        }
        // A FIFO with no writer: refused without being opened (opening would block).
        let fifo = dir.path().join("pipe.mp4");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let e = open(&fifo).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        assert_eq!(e.path(), fifo.as_path());
    }
    // A YUV4MPEG2 header declaring a picture FFmpeg refuses.
    let y4m = dir.path().join("huge.y4m");
    let mut b = b"YUV4MPEG2 W30000 H30000 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    b.resize(b.len() + 4096, 0);
    std::fs::write(&y4m, b).unwrap();
    let e = open(&y4m).unwrap_err();
    assert!(matches!(e, DecodeError::UnreadableStream { .. }), "{e}");
    assert!(e.to_string().contains("30000x30000"), "{e}");

    // 0.1 fps keeps no frame of a 2.4 s video: the error says which sampling and what works.
    let v = open(synthetic(dir.path())).unwrap();
    let opts = DecodeOptions::new().sampling(Sampling::Fps(0.1));
    let e = v.frames(&opts).unwrap().find_map(Result::err).unwrap();
    assert!(matches!(e, DecodeError::NothingSampled { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("0.1 fps") && msg.contains("25.000 fps"),
        "{msg}"
    );
    let e = v
        .map_frames(&opts, 2, |f| Ok::<_, DecodeError>(f.index), |_| {})
        .unwrap_err();
    assert!(matches!(e, DecodeError::NothingSampled { .. }), "{e}");
    // The rate it suggests keeps frames.
    assert!(v
        .frames(&DecodeOptions::new().sampling(Sampling::Fps(25.0)))
        .unwrap()
        .next()
        .is_some_and(|f| f.is_ok()));
}

#[test]
fn outputs_are_never_written_through_links_onto_special_files_or_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let src = synthetic(dir.path());
    let v = open(&src).unwrap();
    let before = std::fs::read(&src).unwrap();
    let refused = |out: &Path| {
        let e = export_clip(&v, 0.0, 1.0, out, &ClipOptions::default()).unwrap_err();
        assert!(
            matches!(e, DecodeError::OutputRefused { .. }),
            "{}: {e}",
            out.display()
        );
        assert_eq!(e.path(), out);
    };
    // The input itself.
    refused(&src);
    assert_eq!(std::fs::read(&src).unwrap(), before);
    // A folder.
    let folder = dir.path().join("folder.mp4");
    std::fs::create_dir(&folder).unwrap();
    refused(&folder);
    #[cfg(unix)]
    {
        // A symbolic link: its target stays as it was.
        let target = dir.path().join("target.txt");
        std::fs::write(&target, b"keep me").unwrap();
        let link = dir.path().join("link.mp4");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        refused(&link);
        let img = image::RgbImage::new(4, 4);
        let link_png = dir.path().join("link.png");
        std::os::unix::fs::symlink(&target, &link_png).unwrap();
        let e = reelsmith_decode::save_image(&img, &link_png, None).unwrap_err();
        assert!(matches!(e, DecodeError::OutputRefused { .. }), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        // A device.
        refused(Path::new("/dev/null"));
    }
    // A failed write leaves no temporary file: an image with no pixels cannot be encoded.
    let e =
        reelsmith_decode::save_image(&image::RgbImage::new(0, 0), &dir.path().join("e.jpg"), None);
    assert!(e.is_err());
    assert!(temp_leftovers(dir.path()).is_empty());
    assert!(!dir.path().join("e.jpg").exists());

    // Leftover temporary files of this process are removed; other files and other
    // processes' temporary files stay.
    let mine = dir
        .path()
        .join(format!(".reelsmith-{}-abc123.part", std::process::id()));
    let theirs = dir.path().join(".reelsmith-1-abc123.part");
    for p in [&mine, &theirs] {
        std::fs::write(p, b"half").unwrap();
    }
    let removed = reelsmith_decode::remove_temp_files(dir.path()).unwrap();
    assert_eq!(removed, std::slice::from_ref(&mine));
    assert!(!mine.exists() && theirs.exists() && src.exists());
    let e = reelsmith_decode::remove_temp_files(&dir.path().join("missing")).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
}

/// The same frames written again give the same file, byte for byte. With x264's AVX-512
/// routines they did not: on an AVX-512 CPU the 57th encode of these frames came out
/// different in every run of this test (see `export/h264.rs`); the writer keeps x264 off
/// them.
#[test]
fn the_same_frames_make_the_same_file() {
    use reelsmith_decode::{write_video, WriterOptions};
    let dir = tempfile::tempdir().unwrap();
    // Five 32×32 frames side by side: a video the tiny random-weight Wan pipeline of the
    // test-support crate generated (seed 42, 9 frames, 2 steps, the first 4 dropped), noise
    // to an encoder, which gives its motion, mode and rate decisions plenty to choose from.
    let strip = image::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/noisy_frames.png"
    ))
    .unwrap()
    .to_rgb8();
    let frames: Vec<image::RgbImage> = (0..5)
        .map(|i| image::imageops::crop_imm(&strip, 32 * i, 0, 32, 32).to_image())
        .collect();
    let opts = WriterOptions::default();
    let path = dir.path().join("same.mp4");
    write_video(&path, &frames, &opts).unwrap();
    let first = std::fs::read(&path).unwrap();
    for i in 1..400 {
        write_video(&path, &frames, &opts).unwrap();
        assert!(
            std::fs::read(&path).unwrap() == first,
            "encode {i} differs from the first"
        );
    }
}

/// Frames written by `VideoWriter` decode back: count, size, timestamps at the asked rate,
/// colours within the 4:2:0 rounding; odd sizes become even; a frame of another size is
/// refused and an unfinished writer leaves nothing.
#[test]
fn written_videos_decode_back() {
    use reelsmith_decode::{write_video, VideoWriter, WriterOptions};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gen.mp4");
    let frames: Vec<image::RgbImage> = (0..9u8)
        .map(|k| image::RgbImage::from_pixel(48, 32, image::Rgb([20 + k * 20, 200 - k * 10, 90])))
        .collect();
    let opts = WriterOptions {
        fps: reelsmith_core::FrameRate { num: 8, den: 1 },
        crf: 0,
        ..WriterOptions::default()
    };
    write_video(&path, &frames, &opts).unwrap();
    let v = open(&path).unwrap();
    assert_eq!((v.info().width, v.info().height), (48, 32));
    let back: Vec<_> = v
        .frames(&DecodeOptions::new())
        .unwrap()
        .map(|f| f.unwrap())
        .collect();
    assert_eq!(back.len(), 9);
    for (k, (f, want)) in back.iter().zip(&frames).enumerate() {
        assert!(
            (f.time - k as f64 / 8.0).abs() < 1e-6,
            "frame {k} at {}",
            f.time
        );
        for (a, b) in f.image.as_raw().iter().zip(want.as_raw()) {
            assert!(a.abs_diff(*b) <= 3, "frame {k}: {a} vs {b}");
        }
    }
    // Odd sizes are made even.
    let odd = dir.path().join("odd.mp4");
    write_video(
        &odd,
        &[image::RgbImage::new(3, 5)],
        &WriterOptions::default(),
    )
    .unwrap();
    let v = open(&odd).unwrap();
    assert_eq!((v.info().width, v.info().height), (2, 4));
    // Another size is refused; an unfinished writer leaves nothing behind.
    let bad = dir.path().join("bad.mp4");
    let mut w = VideoWriter::create(&bad, 8, 8, &WriterOptions::default()).unwrap();
    assert!(w.push(&image::RgbImage::new(4, 4)).is_err());
    drop(w);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(write_video(&bad, std::iter::empty(), &WriterOptions::default()).is_err());
}
