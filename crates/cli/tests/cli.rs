//! The `reelsmith` binary end to end: output shapes on a real clip from
//! $REELSMITH_SHARED/videos (skipped when unset) and errors on bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use reelsmith_test_support::{
    encode_h264, shared, shared_videos, tiny_clip, tiny_dinov2, tiny_isnet, tiny_wan_i2v,
    write_png,
};

fn reelsmith() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reelsmith"))
}

/// `out`, after checking that the command succeeded (its stderr otherwise).
fn succeeded(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn shots_json_and_csv_shapes() {
    let Some(dir) = shared_videos() else { return };
    let video = dir.join("bikes.mp4");
    let out = succeeded(
        reelsmith()
            .args(["shots", "--json", "-q"])
            .arg(&video)
            .output()
            .unwrap(),
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["video"].as_str().unwrap(), video.to_str().unwrap());
    assert_eq!(j["fps"].as_f64().unwrap(), 25.0);
    assert_eq!(j["frames"].as_u64().unwrap(), 250);
    let cuts = j["cuts"].as_array().unwrap();
    let frames: Vec<u64> = cuts.iter().map(|c| c["frame"].as_u64().unwrap()).collect();
    assert_eq!(frames, [30, 76, 137, 187, 242]);
    for c in cuts {
        assert_eq!(c["kind"], "cut");
        assert!(c.get("span").is_none(), "span on a hard cut: {c}");
        let f = c["frame"].as_f64().unwrap();
        assert!((c["time"].as_f64().unwrap() - f / 25.0).abs() < 1e-6);
        assert!(c["score"].as_f64().unwrap() > 0.0);
    }
    let shots = j["shots"].as_array().unwrap();
    assert_eq!(shots.len(), 6);
    assert_eq!(shots[0]["start_frame"], 0);
    assert_eq!(shots[0]["end_frame"], 29);
    assert_eq!(shots[5]["end_frame"], 249);
    assert!((shots[5]["end"].as_f64().unwrap() - 10.0).abs() < 1e-6);

    let out = reelsmith()
        .args(["shots", "--csv", "-q"])
        .arg(&video)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Scene Number,Start Frame,Start Timecode,Start Time (seconds),End Frame,End Timecode,\
         End Time (seconds),Length (frames),Length (timecode),Length (seconds)"
    );
    assert_eq!(lines.len(), 7);
    // PySceneDetect's conventions: 1-based start frame, end frame = 1-based last frame.
    assert_eq!(
        lines[1],
        "1,1,00:00:00.000,0.000,30,00:00:01.200,1.200,30,00:00:01.200,1.200"
    );
    assert_eq!(
        lines[6],
        "6,243,00:00:09.680,9.680,250,00:00:10.000,10.000,8,00:00:00.320,0.320"
    );
}

#[test]
fn keyframes_writes_images_and_json() {
    let Some(dir) = shared_videos() else { return };
    let out = tempfile::tempdir().unwrap();
    let status = reelsmith()
        .args(["keyframes", "-q", "--method", "seams", "-o"])
        .arg(out.path())
        .arg(dir.join("issue-236-split-copy.mkv"))
        .status()
        .unwrap();
    assert!(status.success());
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("keyframes.json")).unwrap()).unwrap();
    let ks = j["keyframes"].as_array().unwrap();
    assert!(ks.len() >= 2, "{j}");
    for k in ks {
        let p = out.path().join(k["path"].as_str().unwrap());
        assert!(p.is_file(), "{}", p.display());
        assert!(k["frame"].as_u64().is_some() && k["time"].as_f64().is_some());
    }
    assert!(!out.path().join("keyframes.json.part").exists());
}

#[test]
fn missing_file_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-video.mp4");
    for sub in ["shots", "keyframes"] {
        let mut cmd = reelsmith();
        cmd.arg(sub).arg(&missing);
        if sub == "keyframes" {
            cmd.arg("-o").arg(dir.path().join("k"));
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{sub}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no-such-video.mp4"), "{sub}: {err}");
    }
}

/// Two small PNG inputs in `dir`: a wide and a tall one.
fn images(dir: &Path) -> [PathBuf; 2] {
    let (wide, tall) = (dir.join("wide.png"), dir.join("tall.png"));
    write_png(&wide, 64, 36, 10);
    write_png(&tall, 30, 50, 200);
    [wide, tall]
}

#[test]
fn embed_images_and_texts_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let out = succeeded(
        reelsmith()
            .args([
                "embed",
                "--json",
                "--text",
                "a photo of a cat",
                "--text",
                "a dog",
            ])
            .args(images(tmp.path()))
            .arg("--model-dir")
            .arg(tiny_clip())
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dim"], 8);
    assert_eq!(v["images"].as_array().unwrap().len(), 2);
    assert_eq!(v["texts"].as_array().unwrap().len(), 2);
    assert_eq!(v["images"][0].as_array().unwrap().len(), 8);
    // raw (not normalised) projected embeddings
    let norm: f64 = v["images"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((norm - 1.0).abs() > 1e-3, "looks normalised: {norm}");
}

#[test]
fn embed_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let [wide, _] = images(tmp.path());
    // DINOv2 has no text side
    let out = reelsmith()
        .args(["embed", "--json", "--text", "x", "--model-dir"])
        .arg(tiny_dinov2())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("texts needs a CLIP model"), "{err}");
    assert!(
        err.contains("hint: set it with --model ID or --model-dir DIR"),
        "{err}"
    );
    // an uncached model offline: quick, names the remedy
    let cache = tempfile::tempdir().unwrap();
    let out = reelsmith()
        .args(["embed", "--json", "--offline", "--model", "clip-b32"])
        .arg(&wide)
        .env("HF_HUB_CACHE", cache.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--model-dir") && err.contains("openai/clip-vit-base-patch32"),
        "{err}"
    );
}

#[test]
fn embed_video_writes_safetensors_and_reuses_the_cache() {
    let Some(dir) = shared_videos() else { return };
    let video = dir.join("bikes.mp4");
    let tmp = tempfile::tempdir().unwrap();
    let [wide, _] = images(tmp.path());
    let run = |out: &Path| {
        let o = reelsmith()
            .args(["embed", "--fps", "2"])
            .arg(&video)
            .arg(&wide)
            .arg("--model-dir")
            .arg(tiny_dinov2())
            .arg("--cache")
            .arg(tmp.path().join("cache"))
            .arg("-o")
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let first = run(&tmp.path().join("a.safetensors"));
    assert!(!first.contains("from cache"), "{first}");
    let second = run(&tmp.path().join("b.safetensors"));
    assert!(second.contains("from cache"), "{second}");
    let a = std::fs::read(tmp.path().join("a.safetensors")).unwrap();
    let b = std::fs::read(tmp.path().join("b.safetensors")).unwrap();
    assert_eq!(a, b, "cached run gives the same file");
    assert!(a.len() > 1000);
}

#[test]
fn highlights_with_a_clip_model_dir_and_prompt() {
    let Some(dir) = shared_videos() else { return };
    let out = tempfile::tempdir().unwrap();
    let o = reelsmith()
        .args(["-q", "highlights"])
        .arg(dir.join("bikes.mp4"))
        .arg("-o")
        .arg(out.path())
        .arg("--model-dir")
        .arg(tiny_clip())
        .args(["--prompt", "a bicycle", "--top-k", "2", "--no-clips"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("highlights.json")).unwrap())
            .unwrap();
    assert!(
        json["embedder"].as_str().unwrap().starts_with("clip"),
        "{}",
        json["embedder"]
    );
    let clips = json["clips"].as_array().unwrap();
    assert!(!clips.is_empty() && clips.len() <= 2);
    // With a prompt and a CLIP model, saliency is computed for every clip.
    for c in clips {
        assert!(c["components"]["saliency"].is_number(), "{c}");
    }
    assert_eq!(json["parameters"]["prompts"][0], "a bicycle");

    // An aesthetic head without a model is refused with a message naming the fix.
    let o = reelsmith()
        .args([
            "highlights",
            "--no-model",
            "--aesthetic-head",
            "x.pth",
            "-o",
        ])
        .arg(out.path())
        .arg(dir.join("bikes.mp4"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs a CLIP model"));
}

#[test]
fn highlights_without_a_cached_model_warns_once_and_scores_without_clip() {
    let Some(dir) = shared_videos() else { return };
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = succeeded(
        reelsmith()
            .env("HF_HOME", home.path())
            .env_remove("HF_HUB_CACHE")
            .env("HF_HUB_OFFLINE", "1")
            .env("NO_COLOR", "1")
            .args(["highlights", "--no-clips", "-o"])
            .arg(out.path())
            .arg(dir.join("bikes.mp4"))
            .output()
            .unwrap(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    // One warning that says what happened and how to get CLIP, not the hub's long story.
    assert_eq!(err.matches("no CLIP model").count(), 1, "{err}");
    assert!(
        err.contains("hint: choose a CLIP model with --model ID or --model-dir DIR"),
        "{err}"
    );
    assert!(!err.contains("HF_HUB_OFFLINE"), "{err}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("highlights.json")).unwrap())
            .unwrap();
    let clips = json["clips"].as_array().unwrap();
    assert!(!clips.is_empty());
    for c in clips {
        assert!(c["components"]["aesthetics"].is_null(), "{c}");
        assert!(c["components"]["sharpness"].is_number(), "{c}");
    }
}

/// SIGINT in the middle of a run: exit 130, and the output folder (new here) is gone
/// again with nothing half-written; a folder holding an earlier run keeps it.
#[cfg(unix)]
#[test]
fn an_interrupted_run_leaves_the_output_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    // 20 s of 640x360 keeps `frames` busy long enough to be interrupted.
    let video = tmp.path().join("long.mp4");
    let frames = (0..500usize).map(|k| {
        ndarray::Array3::from_shape_fn((360, 640, 3), |(y, x, c)| {
            ((x + y * 3 + k * 5 + c * 40) % 251) as u8
        })
    });
    reelsmith_test_support::encode_h264(&video, (640, 360, 25), 25, "ultrafast", "", frames);
    let out = tmp.path().join("frames");
    for earlier in [false, true] {
        if earlier {
            std::fs::create_dir(&out).unwrap();
            succeeded(
                reelsmith()
                    .args(["-q", "frames", "--every", "100", "-o"])
                    .arg(&out)
                    .arg(&video)
                    .output()
                    .unwrap(),
            );
        }
        let before = listing(&out);
        let mut child = reelsmith()
            .args(["-q", "frames", "-o"])
            .arg(&out)
            .arg(&video)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the run is staging its frames, then interrupt it.
        let t = std::time::Instant::now();
        while !staging_has_files(&out) && t.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(staging_has_files(&out), "the run never started staging");
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{status:?}");
        assert_eq!(listing(&out), before, "earlier run: {earlier}");
    }
}

/// The names in `dir` (sorted; empty when it does not exist).
#[cfg(unix)]
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether a staging folder in `dir` holds at least one file.
#[cfg(unix)]
fn staging_has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|r| {
        r.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".reelsmith-staging-")
                && std::fs::read_dir(e.path()).is_ok_and(|mut s| s.next().is_some())
        })
    })
}

/// `stderr` of a command that must fail.
fn failed(out: std::process::Output) -> String {
    assert!(!out.status.success(), "succeeded unexpectedly");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn entities_of_chaplin_frame_120_then_a_composed_first_frame() {
    let Some(videos) = shared_videos() else { return };
    let Some(isnet) = shared("models/isnet") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mem = tmp.path().join("chaplin");
    let out = succeeded(
        reelsmith()
            .arg("entities")
            .arg(videos.join("chaplin.mp4"))
            .args(["--frame", "120", "--model-dir"])
            .arg(&isnet)
            .arg("--embed-model-dir")
            .arg(tiny_dinov2())
            .arg("-o")
            .arg(&mem)
            .output()
            .unwrap(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 entities"), "{err}");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mem.join("entities.json")).unwrap()).unwrap();
    let ents = j["entities"].as_array().unwrap();
    assert_eq!(ents.len(), 2);
    assert_eq!(j["frame"]["index"], 120);
    assert_eq!(j["segmenter"], "isnet");
    for (i, e) in ents.iter().enumerate() {
        for key in ["bbox", "centroid", "area_fraction", "score", "mask_file", "cutout_file"] {
            assert!(!e[key].is_null(), "entity {i} has no {key}: {e}");
        }
        assert_eq!(e["cutout_file"], format!("entity_{i:02}.png"));
        assert!(mem.join(format!("mask_{i:02}.png")).is_file());
        let s = e["score"].as_f64().unwrap();
        assert!(s > 0.5 && s <= 1.0, "{s}");
    }
    for f in ["overlay.png", "embeddings.safetensors"] {
        assert!(mem.join(f).is_file(), "{f}");
    }
    // The same frame as the decoded reference PNG (ffmpeg): the overlay has its size.
    let frame = image::open(isnet.join("frames/chaplin_f0120.png")).unwrap();
    let overlay = image::open(mem.join("overlay.png")).unwrap();
    assert_eq!(overlay.width(), frame.width());

    // A first frame from the two cut-outs on a bikes frame, FFGo layout at 1280x720.
    let first = tmp.path().join("first_frame.png");
    succeeded(
        reelsmith()
            .arg("compose")
            .arg("--background")
            .arg(isnet.join("frames/bikes_f0000.png"))
            .arg("--entity")
            .arg(mem.join("entity_00.png"))
            .arg(mem.join("entity_01.png"))
            .arg("-o")
            .arg(&first)
            .output()
            .unwrap(),
    );
    let img = image::open(&first).unwrap();
    assert_eq!((img.width(), img.height()), (1280, 720));
    let layout: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("first_frame.layout.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(layout["entities"].as_array().unwrap().len(), 2);
}

#[test]
fn entities_and_retention_with_tiny_models_and_their_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // 2 s of a still scene (two bright shapes), lossless.
    let video = tmp.path().join("still.mp4");
    let frames = (0..20).map(|_| {
        ndarray::Array3::from_shape_fn((64, 96, 3), |(y, x, c)| {
            let a = (x as i32 - 28).pow(2) + (y as i32 - 30).pow(2) < 14 * 14;
            let b = (62..86).contains(&x) && (18..50).contains(&y);
            match (a, b) {
                (true, _) => [230, 60, 40][c],
                (_, true) => [40, 90, 230][c],
                _ => [20 + (x / 8) as u8, 20 + (y / 8) as u8, 24][c],
            }
        })
    });
    encode_h264(&video, (96, 64, 10), 10, "ultrafast", "qp=0", frames);
    let mem = tmp.path().join("mem");
    let out = succeeded(
        reelsmith()
            .arg("entities")
            .arg(&video)
            .args(["--time", "0.5", "--weights"])
            .arg(tiny_isnet())
            .arg("--embed-model-dir")
            .arg(tiny_dinov2())
            .arg("-o")
            .arg(&mem)
            .output()
            .unwrap(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("frame 5 at 0.500 s"), "{err}");
    let ret = tmp.path().join("ret");
    succeeded(
        reelsmith()
            .arg("retention")
            .arg(&video)
            .arg("--entities")
            .arg(&mem)
            .args(["--fps", "2", "-q", "-o"])
            .arg(&ret)
            .output()
            .unwrap(),
    );
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ret.join("retention.json")).unwrap()).unwrap();
    assert_eq!(j["frames"], 4);
    assert!(ret.join("retention.csv").is_file() && ret.join("retention.png").is_file());

    // Another embedding model: refused, with the flag to fix it.
    let err = failed(
        reelsmith()
            .arg("retention")
            .arg(&video)
            .arg("--entities")
            .arg(&mem)
            .arg("--embed-model-dir")
            .arg(tiny_clip())
            .arg("-o")
            .arg(tmp.path().join("r2"))
            .output()
            .unwrap(),
    );
    assert!(err.contains("cannot be compared"), "{err}");
    assert!(err.contains("hint: set it with --embed-model ID or --embed-model-dir DIR"), "{err}");
    // No segmenter weights; an opaque cut-out.
    let err = failed(
        reelsmith()
            .arg("entities")
            .arg(&video)
            .arg("-o")
            .arg(tmp.path().join("m2"))
            .output()
            .unwrap(),
    );
    assert!(err.contains("hint: set it with --weights FILE or --model-dir DIR"), "{err}");
    let rgb = tmp.path().join("opaque.png");
    write_png(&rgb, 40, 30, 3);
    let err = failed(
        reelsmith()
            .args(["compose", "--background"])
            .arg(&rgb)
            .arg("--entity")
            .arg(&rgb)
            .arg("-o")
            .arg(tmp.path().join("f.png"))
            .output()
            .unwrap(),
    );
    assert!(err.contains("no alpha channel"), "{err}");
    assert!(!tmp.path().join("m2").exists() && !tmp.path().join("f.png").exists());
}

#[test]
fn generate_an_mp4_and_png_frames_with_a_tiny_wan_model() {
    let tmp = tempfile::tempdir().unwrap();
    let wan = tiny_wan_i2v();
    let base = |out: &Path| {
        let mut c = reelsmith();
        c.arg("generate")
            .arg("--model-dir")
            .arg(&wan)
            .arg("--image")
            .arg(wan.join("first_frame.png"))
            .args(["--prompt", "A cat walks on the grass."])
            .args(["--frames", "5", "--size", "32x32", "--steps", "2", "--seed", "7"])
            .arg("-o")
            .arg(out);
        c
    };
    let mp4 = tmp.path().join("out.mp4");
    let out = succeeded(base(&mp4).output().unwrap());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("5 frames of 32x32"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = reelsmith::decode::open(&mp4).unwrap();
    assert_eq!((v.info().width, v.info().height), (32, 32));
    assert_eq!(v.count_frames().unwrap(), 5);

    let frames = tmp.path().join("frames/");
    succeeded(base(&frames).arg("-q").output().unwrap());
    for i in 0..5 {
        let f = image::open(frames.join(format!("frame_{i:04}.png"))).unwrap();
        assert_eq!((f.width(), f.height()), (32, 32));
    }
    assert!(frames.join("generate.json").is_file());

    // Settings the model cannot take, each with the flag that fixes it; nothing written.
    let bad = tmp.path().join("bad.mp4");
    for (args, hint) in [
        (vec!["--frames", "6"], "--frames"),
        (vec!["--size", "30x32"], "--size WxH"),
        (vec!["--guidance", "nan"], "--guidance"),
    ] {
        let err = failed(base(&bad).args(&args).output().unwrap());
        assert!(err.contains(&format!("hint: set it with {hint}")), "{args:?}: {err}");
    }
    let err = failed(
        reelsmith()
            .args(["generate", "--model", "Wan-AI/Wan2.2-I2V-A14B-Diffusers", "--prompt", "x", "-o"])
            .arg(&bad)
            .output()
            .unwrap(),
    );
    assert!(err.contains("not available yet") && err.contains("--model-dir"), "{err}");
    assert!(!bad.exists());
}
