//! The `reelsmith` binary end to end: output shapes on a real clip from
//! $REELSMITH_SHARED/videos (skipped when unset) and errors on bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use reelsmith_test_support::{
    encode_h264, shared, shared_videos, tiny_clip, tiny_dinov2, tiny_isnet, tiny_wan_i2v, write_png,
};

mod batch;

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

// ---- Hostile input (issue 19): one test per point of the issue, then a seeded corpus -------

/// Runs the ffmpeg command line (scripts/setup-system.sh installs it) to build a test input.
fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .status()
        .expect("the ffmpeg command line builds these inputs: run scripts/setup-system.sh");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// `secs` seconds of FFmpeg's test pattern at `size` (e.g. "64x48") and 25 fps in H.264,
/// with a 440 Hz AAC tone, and `extra` output options.
fn test_video(path: &Path, size: &str, secs: u32, extra: &[&str]) {
    let video = format!("testsrc=size={size}:rate=25:duration={secs}");
    let tone = format!("sine=frequency=440:duration={secs}");
    let mut args = vec!["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &tone];
    args.extend(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]);
    args.extend(extra);
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
}

/// 6 s of 96x64: 3 s of flat dark grey, then 3 s of orange noise (a hard cut at 3 s). The
/// segments pipeline cuts it in two: a small clip of the flat half, a large one of the
/// noise.
fn flat_then_noise(path: &Path) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=0x202020:s=96x64:r=25:d=3",
        "-f",
        "lavfi",
        "-i",
        "color=c=0xd08040:s=96x64:r=25:d=3,noise=alls=60:allf=t+u",
        "-filter_complex",
        "[0][1]concat=n=2:v=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        path.to_str().unwrap(),
    ]);
}

/// What one run of the binary did.
struct Outcome {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Outcome {
    fn of(out: std::process::Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the run ended by itself (no signal) without a panic.
    fn no_panic(&self, what: &str) -> &Self {
        assert!(
            self.code.is_some_and(|c| c != 101) && !self.stderr.contains("panicked"),
            "{what}: exit {:?}\n{}",
            self.code,
            self.stderr
        );
        self
    }

    /// Asserts a clean failure (exit 1) whose message holds every one of `words`.
    fn fails_saying(&self, what: &str, words: &[&str]) -> &Self {
        self.no_panic(what);
        assert_eq!(self.code, Some(1), "{what}: {}", self.stderr);
        for w in words {
            assert!(
                self.stderr.contains(w),
                "{what}: no {w:?} in\n{}",
                self.stderr
            );
        }
        self
    }

    fn ok(&self, what: &str) -> &Self {
        self.no_panic(what);
        assert_eq!(self.code, Some(0), "{what}: {}", self.stderr);
        self
    }
}

fn run_with(args: &[&std::ffi::OsStr], setup: impl FnOnce(&mut Command)) -> Outcome {
    let mut cmd = reelsmith();
    cmd.args(args);
    setup(&mut cmd);
    Outcome::of(cmd.output().unwrap())
}

fn run(args: &[&std::ffi::OsStr]) -> Outcome {
    run_with(args, |_| {})
}

/// `OsStr`s of anything path-like, for [`run`].
macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(AsRef::<std::ffi::OsStr>::as_ref(&$a)),*] };
}

/// The names and contents of the files in `dir` (sorted; hidden ones too), to compare a
/// folder before and after a run.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, std::fs::read(e.path()).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs the binary with a file-size limit of `bytes` (RLIMIT_FSIZE, as `ulimit -f`): each
/// file it writes stops at that size, as on a disk that fills up.
#[cfg(unix)]
fn run_with_file_limit(args: &[&std::ffi::OsStr], bytes: u64) -> Outcome {
    use std::os::unix::process::CommandExt;
    run_with(args, |cmd| {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
}

fn probe_json(video: &Path) -> serde_json::Value {
    let o = run(args!["probe", "--json", video]);
    o.ok("probe");
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Issue 19.1: no panic on a path that is not UTF-8 (every command), on `frames --height
/// 16000`, or when stdout is full or its reader went away.
#[cfg(unix)]
#[test]
fn issue19_1_no_panics_on_odd_paths_huge_sizes_or_a_closed_stdout() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let odd = |b: &[u8]| tmp.path().join(std::ffi::OsStr::from_bytes(b));
    let video = odd(b"caf\xe9.mp4");
    let plain = tmp.path().join("plain.mp4");
    test_video(&plain, "64x48", 3, &[]);
    std::fs::rename(&plain, &video).unwrap();
    let image = odd(b"im\xe9.png");
    write_png(&image, 32, 24, 7);
    let dino = tiny_dinov2();
    let out = |n: &str| odd(&[n.as_bytes(), b"-\xff"].concat());
    for (what, o) in [
        ("probe", run(args!["probe", "--json", video])),
        ("shots", run(args!["shots", "--json", video])),
        (
            "frames",
            run(args![
                "-q",
                "frames",
                "--every",
                "25",
                video,
                "-o",
                out("f")
            ]),
        ),
        (
            "keyframes",
            run(args!["-q", "keyframes", video, "-o", out("k")]),
        ),
        ("score", run(args!["-q", "score", video, image])),
        (
            "highlights",
            run(args![
                "-q",
                "highlights",
                "--no-model",
                video,
                "-o",
                out("h")
            ]),
        ),
        (
            "segments",
            run(args!["-q", "segments", "--no-clips", video, "-o", out("s")]),
        ),
        (
            "embed",
            run(args![
                "-q",
                "embed",
                "--json",
                "--model-dir",
                dino,
                video,
                image
            ]),
        ),
    ] {
        o.ok(what);
    }
    assert!(out("h").join("clip_001.mp4").is_file());
    assert!(out("f").join("frame_000001.jpg").is_file());

    run(args!["frames", "--height", "16000", video]).fails_saying("height", &["16384"]);

    let full = Path::new("/dev/full");
    let printing: [&[&std::ffi::OsStr]; 4] = [
        args!["-q", "probe", "--json", video],
        args!["-q", "shots", "--csv", video],
        args!["-q", "score", "--json", image],
        args!["-q", "embed", "--json", "--model-dir", dino, image],
    ];
    for a in printing {
        let what = a[1].to_string_lossy();
        if full.exists() {
            let o = run_with(a, |c| {
                c.stdout(std::fs::OpenOptions::new().write(true).open(full).unwrap());
            });
            o.fails_saying(&format!("{what} > /dev/full"), &["standard output"]);
        }
        // A reader that went away before anything was printed: a quiet, clean end.
        let mut child = reelsmith()
            .args(a)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = Outcome::of(child.wait_with_output().unwrap());
        o.ok(&format!("{what} | (closed)"));
        assert!(o.stderr.is_empty(), "{what}: {}", o.stderr);
    }
}

/// Issue 19.2: `embed -o` never writes through a link, onto a device or an input, and a
/// folder given as the output leaves no temporary file beside it.
#[cfg(unix)]
#[test]
fn issue19_2_embed_output_is_never_a_link_device_input_or_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let [wide, _] = images(tmp.path());
    let target = tmp.path().join("target.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = tmp.path().join("link.safetensors");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let folder = tmp.path().join("out");
    std::fs::create_dir(&folder).unwrap();
    let before = snapshot(tmp.path());
    let clip = tiny_clip();
    for (out, words) in [
        (&link, &["link.safetensors", "symbolic link"][..]),
        (&wide, &["wide.png", "also an input"][..]),
        (&folder, &["out", "folder"][..]),
    ] {
        run(args!["embed", "--model-dir", clip, wide, "-o", out]).fails_saying("embed -o", words);
    }
    let o = run(args!["embed", "--model-dir", clip, wide, "-o", "/dev/null"]);
    o.fails_saying("embed -o /dev/null", &["/dev/null", "not a regular file"]);
    assert_eq!(snapshot(tmp.path()), before, "nothing written or changed");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}

/// Issue 19.3: clips are cut from streams with unusual timestamps (a time base of one
/// second), and a run that fails halfway through its clips leaves the folder as it was:
/// no finished sibling clip, the earlier run's report and clips untouched.
#[cfg(unix)]
#[test]
fn issue19_3_unusual_timestamps_cut_and_a_half_done_run_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let tb1 = tmp.path().join("tb1.mp4");
    test_video(&tb1, "64x48", 3, &["-video_track_timescale", "1"]);
    let out = tmp.path().join("tb1-out");
    run(args![
        "-q",
        "segments",
        tb1,
        "-o",
        out,
        "--min-seconds",
        "1"
    ])
    .ok("time base 1");
    let clip = probe_json(&out.join("segment_001.mp4"));
    assert!(clip["frames"].as_u64().unwrap() > 1, "{clip}");

    let video = tmp.path().join("halves.mp4");
    flat_then_noise(&video);
    let out = tmp.path().join("halves-out");
    let a = args!["-q", "segments", video, "-o", out, "--min-seconds", "1"];
    run(a).ok("segments");
    let sizes: Vec<u64> = ["segment_001.mp4", "segment_002.mp4"]
        .iter()
        .map(|c| std::fs::metadata(out.join(c)).unwrap().len())
        .collect();
    assert!(sizes[0] * 3 < sizes[1], "{sizes:?}");
    let before = snapshot(&out);
    // Room for the small clip, not the large one.
    let o = run_with_file_limit(a, (sizes[0] + sizes[1]) / 2);
    o.fails_saying(
        "half done",
        &[
            "segment_002.mp4",
            "File too large",
            "hint: nothing was written",
        ],
    );
    assert_eq!(snapshot(&out), before);
}

/// A copy of the Matroska file `good` with its audio SamplingFrequency (element 0xB5, an
/// 8-byte float) set to 1 GHz: FFmpeg decodes the file, the AAC encoder refuses the rate.
fn damage_audio_rate(good: &Path, bad: &Path) {
    let mut b = std::fs::read(good).unwrap();
    let i = b
        .windows(2)
        .position(|w| w == [0xB5, 0x88])
        .expect("a SamplingFrequency element");
    b[i + 2..i + 10].copy_from_slice(&1e9f64.to_be_bytes());
    std::fs::write(bad, b).unwrap();
}

/// Issue 19.4: a damaged audio stream leaves the audio out of the clips with one warning
/// naming the file, and `segments --no-audio` drops the audio.
#[test]
fn issue19_4_damaged_audio_is_left_out_and_segments_can_drop_audio() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("pcm.mkv");
    test_video(&good, "64x48", 4, &["-c:a", "pcm_s16le", "-ar", "8000"]);
    let bad = tmp.path().join("bad-audio.mkv");
    damage_audio_rate(&good, &bad);
    for sub in ["highlights", "segments"] {
        let out = tmp.path().join(sub);
        let mut a = vec![
            sub.as_ref(),
            bad.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ];
        if sub == "highlights" {
            a.extend(args!["--no-model", "--top-k", "1"]);
        }
        let o = run(&a);
        o.ok(sub);
        assert_eq!(
            o.stderr.matches("the audio could not be cut").count(),
            1,
            "{sub}: {}",
            o.stderr
        );
        assert!(o.stderr.contains("bad-audio.mkv"), "{}", o.stderr);
        let clip = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "mp4"))
            .unwrap();
        assert_eq!(probe_json(&clip)["has_audio"], false, "{sub}");
    }
    let out = tmp.path().join("no-audio");
    run(args!["-q", "segments", "--no-audio", good, "-o", out]).ok("--no-audio");
    assert_eq!(probe_json(&out.join("segment_001.mp4"))["has_audio"], false);
    let with = tmp.path().join("with-audio");
    run(args!["-q", "segments", good, "-o", with]).ok("with audio");
    assert_eq!(probe_json(&with.join("segment_001.mp4"))["has_audio"], true);
}

/// Issue 19.5: 1x1 and odd-sized videos are cut into clips (sizes made even, with a note).
#[test]
fn issue19_5_tiny_and_odd_sizes_are_cut() {
    let tmp = tempfile::tempdir().unwrap();
    for (size, even) in [("1x1", (2, 2)), ("3x5", (2, 4))] {
        let video = tmp.path().join(format!("{size}.mp4"));
        test_video(&video, size, 3, &["-pix_fmt", "yuv444p"]);
        let out = tmp.path().join(format!("{size}-out"));
        let o = run(args![
            "highlights",
            "--no-model",
            "--top-k",
            "1",
            video,
            "-o",
            out
        ]);
        o.ok(size);
        assert!(o.stderr.contains("even"), "{size}: {}", o.stderr);
        let clip = probe_json(&out.join("clip_001.mp4"));
        assert_eq!(
            (clip["width"].as_u64(), clip["height"].as_u64()),
            (Some(even.0), Some(even.1))
        );
    }
}

/// Issue 19.6: a disk that fills up while keyframe images are written leaves no image
/// without its `keyframes.json`: the folder stays as the earlier run left it. (Signals:
/// `an_interrupted_run_leaves_the_output_as_it_was`.)
#[cfg(unix)]
#[test]
fn issue19_6_a_full_disk_leaves_the_keyframes_folder_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let video = tmp.path().join("halves.mp4");
    flat_then_noise(&video);
    let out = tmp.path().join("k");
    let a = args!["-q", "keyframes", "--method", "seams", video, "-o", out];
    run(a).ok("keyframes");
    let before = snapshot(&out);
    let mut sizes: Vec<u64> = before
        .iter()
        .filter(|(n, _)| n.ends_with(".jpg"))
        .map(|(_, b)| b.len() as u64)
        .collect();
    sizes.sort();
    let (small, large) = (sizes[0], sizes[sizes.len() - 1]);
    assert!(small * 3 < large, "{sizes:?}");
    let o = run_with_file_limit(a, (small + large) / 2);
    o.fails_saying("keyframes on a full disk", &["keyframe_", "File too large"]);
    assert_eq!(snapshot(&out), before);
    // A new folder is not left behind either.
    let fresh = tmp.path().join("fresh");
    run_with_file_limit(args!["keyframes", video, "-o", fresh], (small + large) / 2)
        .fails_saying("fresh folder", &["File too large"]);
    assert!(!fresh.exists());
}

/// Issue 19.7: true messages for special files, impossible headers, samplings that keep
/// nothing, negative and huge numbers, and each OS error said once.
#[cfg(unix)]
#[test]
fn issue19_7_messages_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    for dev in ["/dev/zero", "/dev/urandom"] {
        run(args!["probe", dev]).fails_saying(dev, &[dev, "character device"]);
    }
    let fifo = tmp.path().join("pipe.mp4");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    run(args!["frames", fifo]).fails_saying("fifo", &["pipe.mp4", "FIFO"]);
    let y4m = tmp.path().join("huge.y4m");
    let mut b = b"YUV4MPEG2 W30000 H30000 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    b.resize(b.len() + 4096, 0);
    std::fs::write(&y4m, b).unwrap();
    let o = run(args!["probe", y4m]);
    o.fails_saying(
        "y4m",
        &["huge.y4m", "30000x30000", "larger than FFmpeg accepts"],
    );

    let video = tmp.path().join("v.mp4");
    test_video(&video, "64x48", 2, &[]);
    run(args!["frames", "--fps", "0.01", video])
        .fails_saying("0.01 fps", &["v.mp4", "keeps no frame"]);
    run(args!["frames", "--fps", "-1", video])
        .fails_saying("-1", &["fps", "-1", "hint: set it with --fps"]);
    let o = run(args![
        "highlights",
        "--pre-roll",
        "1e308",
        video,
        "-o",
        tmp.path().join("h")
    ]);
    o.fails_saying("1e308", &["pre_roll", "1e308 s", "--pre-roll"]);
    assert!(!o.stderr.contains("NaN") && !tmp.path().join("h").exists());
    let o = run(args!["frames", video, "-o", "/dev/null/x"]);
    o.fails_saying("not a directory", &["/dev/null/x"]);
    assert_eq!(o.stderr.matches("os error 20").count(), 1, "{}", o.stderr);
}

/// Issue 19.8: a checkpoint whose preprocessor divides by an `image_std` of 0 gives NaN
/// embeddings: an error naming the input and what to check, not null embeddings with exit 0
/// and a saliency of 0.
#[test]
fn issue19_8_non_finite_embeddings_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("clip-zero-std");
    std::fs::create_dir(&model).unwrap();
    for e in std::fs::read_dir(tiny_clip()).unwrap().flatten() {
        std::fs::copy(e.path(), model.join(e.file_name())).unwrap();
    }
    let pre = model.join("preprocessor_config.json");
    let mut j: serde_json::Value = serde_json::from_slice(&std::fs::read(&pre).unwrap()).unwrap();
    j["image_std"] = serde_json::json!([0.0, 0.0, 0.0]);
    std::fs::write(&pre, j.to_string()).unwrap();
    let [wide, _] = images(tmp.path());
    let video = tmp.path().join("v.mp4");
    test_video(&video, "64x48", 2, &[]);
    for (what, o) in [
        (
            "embed image",
            run(args!["embed", "--json", "--model-dir", model, wide]),
        ),
        (
            "embed video",
            run(args!["embed", "--json", "--model-dir", model, video]),
        ),
        (
            "score",
            run(args![
                "score",
                "--prompt",
                "a cat",
                "--model-dir",
                model,
                wide
            ]),
        ),
        (
            "highlights",
            run(args![
                "highlights",
                "--min-duration",
                "1",
                "--model-dir",
                model,
                video,
                "-o",
                tmp.path().join("h")
            ]),
        ),
    ] {
        o.fails_saying(what, &["not finite", "image_std", "clip"]);
        assert!(o.stdout.is_empty(), "{what}");
    }
    assert!(!tmp.path().join("h").exists());
    // The checkpoint as it was embeds fine.
    run(args!["embed", "--json", "--model-dir", tiny_clip(), wide]).ok("good checkpoint");
}

/// Issue 19.9: values are validated (the setting and its flag named), the help's own
/// `--robust 5,95` works, and a partial configuration merges with the defaults.
#[test]
fn issue19_9_values_are_validated_and_partial_configs_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let video = tmp.path().join("v.mp4");
    test_video(&video, "64x48", 4, &[]);
    run(args!["score", "--robust", "95,5", video])
        .fails_saying("95,5", &["score", "percentiles 95 and 5", "--robust"]);
    run(args!["score", "--fps", "NaN", video]).fails_saying("NaN", &["fps", "NaN"]);
    let seg = tmp.path().join("s");
    run(args![
        "segments",
        "--min-seconds",
        "0",
        "--max-seconds",
        "0",
        video,
        "-o",
        seg
    ])
    .fails_saying("0 s", &["min_seconds", "--min-seconds"]);
    assert!(!seg.exists());
    let o = run(args!["-q", "score", "--robust", "5,95", video]);
    o.ok("--robust 5,95 VIDEO");
    assert!(String::from_utf8_lossy(&o.stdout).contains("v.mp4"));
    let config = tmp.path().join("weights.toml");
    std::fs::write(&config, "[score.weights]\nsharpness = 1.0\n").unwrap();
    let out = tmp.path().join("h");
    run(args![
        "-q",
        "highlights",
        "--config",
        config,
        "--no-model",
        "--no-clips",
        video,
        "-o",
        out
    ])
    .ok("partial config");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("highlights.json")).unwrap()).unwrap();
    assert_eq!(j["parameters"]["score"]["weights"]["sharpness"], 1.0);
    assert_eq!(j["parameters"]["score"]["weights"]["aesthetics"], 0.4);
    std::fs::write(&config, "[score.weights]\nsharpness = nan\n").unwrap();
    run(args![
        "highlights",
        "--config",
        config,
        "--no-model",
        video,
        "-o",
        out
    ])
    .fails_saying("NaN weight", &["score", "sharpness weight"]);
}

/// Issue 19.10: a rerun removes its own earlier outputs, refuses a foreign folder unless
/// told to overwrite, and never replaces or removes its own input.
#[test]
fn issue19_10_a_rerun_leaves_no_stale_file_and_a_foreign_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let video = tmp.path().join("v.mp4");
    test_video(&video, "64x48", 2, &[]);
    let out = tmp.path().join("f");
    run(args!["-q", "frames", "--every", "5", video, "-o", out]).ok("first");
    assert!(out.join("frame_000010.jpg").is_file());
    run(args!["-q", "frames", "--every", "25", video, "-o", out]).ok("second");
    let names: Vec<String> = snapshot(&out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            ".reelsmith-run.json",
            "frame_000001.jpg",
            "frame_000002.jpg",
            "frames.json"
        ]
    );
    // The input is one of the earlier run's outputs: refused, the input kept.
    let input = out.join("frame_000001.jpg");
    let before = snapshot(&out);
    run(args!["frames", input, "-o", out])
        .fails_saying("own input", &["frame_000001.jpg", "input"]);
    assert_eq!(snapshot(&out), before);
    // A foreign folder: refused, then allowed with --overwrite (its own file kept).
    let foreign = tmp.path().join("mine");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    run(args!["frames", video, "-o", foreign])
        .fails_saying("foreign", &["notes.txt", "--overwrite"]);
    run(args!["-q", "frames", "--overwrite", video, "-o", foreign]).ok("--overwrite");
    assert_eq!(std::fs::read(foreign.join("notes.txt")).unwrap(), b"mine");
}

/// A small seeded generator (xorshift64*) for the corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `bytes` with the 4-byte box type `from` (its first occurrence) renamed `to`.
fn rename_box(bytes: &[u8], from: &[u8; 4], to: &[u8; 4]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if let Some(i) = b.windows(4).position(|w| w == from) {
        b[i..i + 4].copy_from_slice(to);
    }
    b
}

/// `bytes` with the 4 bytes at `offset` after the first `tag` set to `value`.
fn patch_after(bytes: &[u8], tag: &[u8; 4], offset: usize, value: u32) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if let Some(i) = b.windows(4).position(|w| w == tag) {
        let at = i + offset;
        if at + 4 <= b.len() {
            b[at..at + 4].copy_from_slice(&value.to_be_bytes());
        }
    }
    b
}

/// The seeded bad-input corpus: about 30 inputs that are not good videos — truncated,
/// bit-flipped and header-patched copies of a small MP4, noise, text, images, audio only,
/// odd sizes and timings, impossible headers, special files, a name that is not UTF-8 —
/// each at a path whose display names it.
#[cfg(unix)]
fn bad_inputs(dir: &Path, seed: u64) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let base = dir.join("base.mp4");
    test_video(&base, "64x48", 2, &["-movflags", "+faststart"]);
    let good = std::fs::read(&base).unwrap();
    let mut rng = Rng(seed | 1);
    let mut v = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        v.push(p);
    };
    put("empty.mp4", &[]);
    for pct in [3, 40, 90] {
        put(
            &format!("truncated-{pct}.mp4"),
            &good[..good.len() * pct / 100],
        );
    }
    for k in 0..4 {
        let mut b = good.clone();
        for _ in 0..(1 + 20 * k) {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        put(&format!("flipped-{k}.mp4"), &b);
    }
    put("no-ftyp.mp4", &rename_box(&good, b"ftyp", b"xxxx"));
    put("no-moov.mp4", &rename_box(&good, b"moov", b"free"));
    put("no-mdat.mp4", &rename_box(&good, b"mdat", b"free"));
    // mdhd: version/flags (4), two dates (8), then the time scale.
    put("timescale-0.mp4", &patch_after(&good, b"mdhd", 16, 0));
    put("timescale-1.mp4", &patch_after(&good, b"mdhd", 16, 1));
    put("stts-huge.mp4", &patch_after(&good, b"stts", 16, u32::MAX));
    put("stsz-huge.mp4", &patch_after(&good, b"stsz", 16, u32::MAX));
    put(
        "avcc-garbled.mp4",
        &patch_after(&good, b"avcC", 8, rng.next() as u32),
    );
    let noise: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
    put("noise.mp4", &noise);
    put("notes.mp4", b"this is not a video\n");
    let mut y4m = b"YUV4MPEG2 W30000 H30000 F25:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    y4m.resize(y4m.len() + 4096, 0);
    put("huge.y4m", &y4m);
    put(
        "y4m-zero-rate.y4m",
        b"YUV4MPEG2 W8 H8 F0:0 Ip C420jpeg\nFRAME\n",
    );
    let png = dir.join("still.png");
    write_png(&png, 33, 17, 3);
    let png_bytes = std::fs::read(&png).unwrap();
    put("broken.png", &png_bytes[..png_bytes.len() / 2]);
    v.push(png);
    let wav = dir.join("tone.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        wav.to_str().unwrap(),
    ]);
    v.push(wav);
    let odd = dir.join("odd-3x5.mp4");
    test_video(&odd, "3x5", 1, &["-pix_fmt", "yuv444p"]);
    v.push(odd);
    let folder = dir.join("folder.mp4");
    std::fs::create_dir(&folder).unwrap();
    v.push(folder);
    v.push(dir.join("missing.mp4"));
    let dangling = dir.join("dangling.mp4");
    std::os::unix::fs::symlink(dir.join("nowhere.mp4"), &dangling).unwrap();
    v.push(dangling);
    let fifo = dir.join("fifo.mp4");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    v.push(fifo);
    let odd_name = dir.join(std::ffi::OsStr::from_bytes(b"trunc\xe9.mp4"));
    std::fs::write(&odd_name, &good[..good.len() / 2]).unwrap();
    v.push(odd_name);
    v.push("/dev/zero".into());
    v
}

/// Every command with `input` (and `out` as its output folder where it writes one); the
/// name of the report it writes last, if any.
fn every_command(input: &Path, out: &Path) -> Vec<(Vec<std::ffi::OsString>, Option<&'static str>)> {
    let i = input.as_os_str().to_owned();
    let o = out.as_os_str().to_owned();
    let dino = tiny_dinov2().into_os_string();
    let list: Vec<(Vec<&std::ffi::OsStr>, Option<&'static str>)> = vec![
        (vec!["probe".as_ref(), &i], None),
        (vec!["shots".as_ref(), "--json".as_ref(), &i], None),
        (
            vec![
                "frames".as_ref(),
                "--every".as_ref(),
                "7".as_ref(),
                &i,
                "-o".as_ref(),
                &o,
            ],
            Some("frames.json"),
        ),
        (
            vec!["keyframes".as_ref(), &i, "-o".as_ref(), &o],
            Some("keyframes.json"),
        ),
        (
            vec!["score".as_ref(), "--fps".as_ref(), "5".as_ref(), &i],
            None,
        ),
        (
            vec![
                "highlights".as_ref(),
                "--no-model".as_ref(),
                "--min-duration".as_ref(),
                "0.2".as_ref(),
                &i,
                "-o".as_ref(),
                &o,
            ],
            Some("highlights.json"),
        ),
        (
            vec![
                "segments".as_ref(),
                "--min-seconds".as_ref(),
                "0.5".as_ref(),
                &i,
                "-o".as_ref(),
                &o,
            ],
            Some("segments.json"),
        ),
        (
            vec![
                "embed".as_ref(),
                "--json".as_ref(),
                "--model-dir".as_ref(),
                &dino,
                &i,
            ],
            None,
        ),
    ];
    list.into_iter()
        .map(|(a, r)| (a.into_iter().map(|s| s.to_owned()).collect(), r))
        .collect()
}

/// Whether `dir` holds a staging folder or a temporary file.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".reelsmith-staging-") || n.ends_with(".part"))
                .collect()
        })
        .unwrap_or_default()
}

/// The seeded corpus through every command: no panic, no signal, a failure is a typed
/// error naming the input with nothing left behind, a success is complete.
#[cfg(unix)]
#[test]
fn bad_input_corpus_through_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = bad_inputs(tmp.path(), 19);
    let (mut failed, mut passed) = (0, 0);
    for (k, input) in inputs.iter().enumerate() {
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        for (args, report) in every_command(input, &tmp.path().join(format!("out-{k}"))) {
            let out = tmp.path().join(format!("out-{k}"));
            let what = format!("{} {name}", args[0].to_string_lossy());
            let mut cmd = reelsmith();
            cmd.arg("-q").args(&args);
            let o = Outcome::of(cmd.output().unwrap());
            o.no_panic(&what);
            if o.code == Some(0) {
                passed += 1;
                if let Some(report) = report {
                    assert!(out.join(report).is_file(), "{what}: no {report}");
                }
                assert!(leftovers(&out).is_empty(), "{what}: {:?}", leftovers(&out));
                let _ = std::fs::remove_dir_all(&out);
            } else {
                failed += 1;
                o.fails_saying(&what, &["error: "]);
                let shown = if input.starts_with("/dev") {
                    input.display().to_string()
                } else {
                    name.clone()
                };
                assert!(
                    o.stderr.contains(&shown),
                    "{what}: the message does not name the input:\n{}",
                    o.stderr
                );
                assert!(!out.exists(), "{what}: left {}", out.display());
            }
        }
    }
    eprintln!(
        "{} inputs: {failed} clean failures, {passed} successes",
        inputs.len()
    );
    assert!(failed > passed, "the corpus is mostly bad input");
}

/// Bad options, configuration files and model folders: no panic, a message naming the
/// flag, setting or file at fault, and no output folder left.
#[cfg(unix)]
#[test]
fn bad_options_configs_and_model_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let video = tmp.path().join("v.mp4");
    test_video(&video, "64x48", 2, &[]);
    let out = tmp.path().join("out");
    let v = video.as_os_str();
    let o = out.as_os_str();
    let dino = tiny_dinov2();
    let options: Vec<(Vec<&std::ffi::OsStr>, &str)> = vec![
        (args!["frames", "--fps", "-1", v].to_vec(), "fps"),
        (args!["frames", "--fps", "inf", v].to_vec(), "fps"),
        (args!["frames", "--every", "0", v].to_vec(), "every"),
        (
            args!["frames", "--height", "0", v, "-o", o].to_vec(),
            "height",
        ),
        (
            args!["frames", "--quality", "0", v, "-o", o].to_vec(),
            "quality",
        ),
        (
            args!["keyframes", "--quantile", "2", v, "-o", o].to_vec(),
            "quantile",
        ),
        (args!["score", "--robust", "5", v].to_vec(), "robust"),
        (args!["score", "--every", "-3", v].to_vec(), "every"),
        (
            args!["highlights", "--top-k", "0", v, "-o", o].to_vec(),
            "top_k",
        ),
        (
            args!["highlights", "--crf", "99", v, "-o", o].to_vec(),
            "crf",
        ),
        (
            args![
                "highlights",
                "--min-duration",
                "5",
                "--max-duration",
                "1",
                v,
                "-o",
                o
            ]
            .to_vec(),
            "max_duration",
        ),
        (
            args!["highlights", "--diversity-threshold", "NaN", v, "-o", o].to_vec(),
            "diversity_threshold",
        ),
        (
            args!["segments", "--threshold", "dynamic:-1", v, "-o", o].to_vec(),
            "threshold",
        ),
        (
            args!["segments", "--window", "0", v, "-o", o].to_vec(),
            "window",
        ),
        (
            args!["embed", "--json", "--batch", "0", "--model-dir", dino, v].to_vec(),
            "batch",
        ),
        (
            args!["embed", "--json", "--device", "tpu", "--model-dir", dino, v].to_vec(),
            "device",
        ),
        (
            args!["shots", "--embedder", "magic", v].to_vec(),
            "embedder",
        ),
    ];
    for (a, word) in &options {
        let what = format!("{a:?}");
        let r = run(a);
        r.no_panic(&what);
        assert!(
            matches!(r.code, Some(1 | 2)),
            "{what}: {:?} {}",
            r.code,
            r.stderr
        );
        assert!(r.stderr.contains(word), "{what}: {}", r.stderr);
        assert!(!out.exists(), "{what}");
    }
    // Configuration files that are not configurations.
    let configs: [(&str, &[u8]); 7] = [
        ("syntax.toml", b"[[[ fps ="),
        ("unknown.toml", b"fsp = 2\n"),
        ("type.toml", b"fps = \"fast\"\n"),
        ("nan.toml", b"fps = nan\n"),
        ("binary.toml", b"\x00\xff\xfe\x01binary"),
        ("bad.json", b"{\"fps\": }"),
        ("array.json", b"[1, 2, 3]"),
    ];
    for (name, bytes) in configs {
        let config = tmp.path().join(name);
        std::fs::write(&config, bytes).unwrap();
        for sub in ["highlights", "segments", "keyframes", "score", "shots"] {
            let mut a = vec![sub.as_ref(), "--config".as_ref(), config.as_os_str(), v];
            if !matches!(sub, "score" | "shots") {
                a.extend(args!["-o", o]);
            }
            let what = format!("{sub} --config {name}");
            let r = run(&a);
            r.no_panic(&what);
            // nan is only wrong where fps is a setting the command checks
            if r.code == Some(0) {
                assert!(name == "nan.toml" && sub == "shots", "{what}: accepted");
                continue;
            }
            let word = if name == "nan.toml" { "fps" } else { name };
            r.fails_saying(&what, &[word]);
            assert!(!out.exists(), "{what}");
        }
    }
    for missing in [tmp.path().join("missing.toml"), tmp.path().to_path_buf()] {
        run(args!["shots", "--config", missing, v])
            .fails_saying("config path", &[missing.to_str().unwrap()]);
    }
    // Broken model folders: each error names the folder or the file at fault.
    let clip = tiny_clip();
    let image = tmp.path().join("i.png");
    write_png(&image, 16, 16, 1);
    let broken: [(&str, &str, &[u8]); 7] = [
        ("no-config", "config.json", b""),
        ("config-not-json", "config.json", b"{bad"),
        ("config-empty-object", "config.json", b"{}"),
        (
            "weights-truncated",
            "model.safetensors",
            b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":",
        ),
        ("weights-noise", "model.safetensors", &[0xAB; 64]),
        (
            "preprocessor-not-json",
            "preprocessor_config.json",
            b"not json",
        ),
        ("no-tokenizer", "tokenizer.json", b""),
    ];
    for (name, file, bytes) in broken {
        let dir = tmp.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        for e in std::fs::read_dir(&clip).unwrap().flatten() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        if bytes.is_empty() {
            std::fs::remove_file(dir.join(file)).unwrap();
        } else {
            std::fs::write(dir.join(file), bytes).unwrap();
        }
        let cases: [&[&std::ffi::OsStr]; 2] = [
            args![
                "embed",
                "--json",
                "--text",
                "a cat",
                "--model-dir",
                dir,
                image
            ],
            args!["score", "--prompt", "a cat", "--model-dir", dir, image],
        ];
        for a in cases {
            let what = format!("{} {name}", a[0].to_string_lossy());
            let r = run(a);
            r.fails_saying(&what, &[name]);
            if file != "tokenizer.json" {
                assert!(
                    r.stderr.contains(file.split('.').next().unwrap()),
                    "{what}: {}",
                    r.stderr
                );
            }
        }
    }
}

/// `stderr` of a command that must fail.
fn failed(out: std::process::Output) -> String {
    assert!(!out.status.success(), "succeeded unexpectedly");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A FIFO given as an image is refused at once (it used to block `generate`), by every
/// first-frame command, naming the file.
#[cfg(unix)]
#[test]
fn first_frame_commands_refuse_a_fifo_for_an_image() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo.png");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let runs: [Vec<std::ffi::OsString>; 3] = [
        vec![
            "compose".into(),
            "--background".into(),
            fifo.clone().into(),
            "--entity".into(),
            fifo.clone().into(),
            "-o".into(),
            tmp.path().join("c.png").into(),
        ],
        vec![
            "entities".into(),
            fifo.clone().into(),
            "--weights".into(),
            tiny_isnet().into(),
            "-o".into(),
            tmp.path().join("e").into(),
        ],
        vec![
            "generate".into(),
            "--model-dir".into(),
            tiny_wan_i2v().into(),
            "--image".into(),
            fifo.clone().into(),
            "--prompt".into(),
            "a cat".into(),
            "--frames".into(),
            "5".into(),
            "--size".into(),
            "32x32".into(),
            "-o".into(),
            tmp.path().join("g.mp4").into(),
        ],
    ];
    for args in runs {
        let err = failed(reelsmith().args(&args).output().unwrap());
        assert!(
            err.contains("fifo.png") && err.contains("not a regular file"),
            "{args:?}: {err}"
        );
    }
    assert!(!tmp.path().join("c.png").exists() && !tmp.path().join("g.mp4").exists());
}

#[test]
fn entities_of_chaplin_frame_120_then_a_composed_first_frame() {
    let Some(videos) = shared_videos() else {
        return;
    };
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
        for key in [
            "bbox",
            "centroid",
            "area_fraction",
            "score",
            "mask_file",
            "cutout_file",
        ] {
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
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("first_frame.layout.json")).unwrap())
            .unwrap();
    assert_eq!(layout["entities"].as_array().unwrap().len(), 2);
}

/// A threshold that keeps the brightest fifth of the tiny (random-weight) ISNet's
/// probability map of the first frame of `video`: the map has no meaning, so a fixed cut may
/// keep nothing.
fn tiny_threshold(video: &Path) -> f32 {
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
    let v = reelsmith::decode::open(video).unwrap();
    let frame = v
        .frames(&reelsmith::decode::DecodeOptions::new())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mut p = seg.probability(&frame.image).unwrap().data;
    p.sort_by(f32::total_cmp);
    p[p.len() * 4 / 5]
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
            .args([
                "--time",
                "0.5",
                "--threshold",
                &tiny_threshold(&video).to_string(),
            ])
            .arg("--weights")
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
    assert!(
        err.contains("hint: set it with --embed-model ID or --embed-model-dir DIR"),
        "{err}"
    );
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
    assert!(
        err.contains("hint: set it with --weights FILE or --model-dir DIR"),
        "{err}"
    );
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
            .arg("-o")
            .arg(out);
        c
    };
    // The test's settings, each replaceable (clap refuses a flag given twice).
    let defaults = [
        ("--frames", "5"),
        ("--size", "32x32"),
        ("--steps", "2"),
        ("--seed", "7"),
    ];
    let with = |out: &Path, changed: &[&str]| {
        let mut c = base(out);
        for (flag, value) in defaults {
            if !changed.contains(&flag) {
                c.args([flag, value]);
            }
        }
        c.args(changed);
        c
    };
    let mp4 = tmp.path().join("out.mp4");
    let out = succeeded(with(&mp4, &[]).output().unwrap());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("5 frames of 32x32"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = reelsmith::decode::open(&mp4).unwrap();
    assert_eq!((v.info().width, v.info().height), (32, 32));
    assert_eq!(v.count_frames().unwrap(), 5);

    let frames = tmp.path().join("frames/");
    succeeded(with(&frames, &["-q"]).output().unwrap());
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
        let err = failed(with(&bad, &args).output().unwrap());
        assert!(
            err.contains(&format!("hint: set it with {hint}")),
            "{args:?}: {err}"
        );
    }
    let err = failed(
        reelsmith()
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HUB_CACHE", tmp.path().join("empty-cache"))
            .args([
                "generate",
                "--model",
                "Wan-AI/Wan2.2-I2V-A14B-Diffusers",
                "--prompt",
                "x",
                "-o",
            ])
            .arg(&bad)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("model_index.json") && err.contains("not in the Hugging Face cache"),
        "{err}"
    );
    assert!(!bad.exists());
}

/// `finetune prepare` → `finetune train` (and `--resume`) → `generate --lora`, with a bad
/// example reported and skipped.
#[test]
fn finetune_prepare_train_resume_and_generate_with_the_lora() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let wan = tiny_wan_i2v();
    let frames = (0..9).map(|i| {
        ndarray::Array3::from_shape_fn((32, 32, 3), |(y, x, c)| {
            ((x * 5 + y * 3 + i * 9 + c * 40) % 256) as u8
        })
    });
    encode_h264(
        &d.join("a.mp4"),
        (32, 32, 16),
        16,
        "ultrafast",
        "qp=0",
        frames,
    );
    std::fs::copy(wan.join("first_frame.png"), d.join("a.png")).unwrap();
    std::fs::write(
        d.join("train.json"),
        r#"[{"file_path": "a.mp4", "text": "A cat.", "image_path": "a.png", "type": "video"},
            {"file_path": "gone.mp4", "text": "A cat.", "image_path": "a.png", "type": "video"}]"#,
    )
    .unwrap();
    let out = succeeded(
        reelsmith()
            .args(["finetune", "prepare"])
            .arg(d.join("train.json"))
            .arg("--base")
            .arg(&wan)
            .args(["--frames", "9", "--size", "32x32", "-o"])
            .arg(d.join("cache"))
            .output()
            .unwrap(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skipped #1") && err.contains("gone.mp4"),
        "{err}"
    );
    assert!(err.contains("1 example(s) cached"), "{err}");
    let train = |steps: &str, resume: bool| {
        let mut c = reelsmith();
        c.args(["finetune", "train"])
            .arg(d.join("cache"))
            .args([
                "--rank",
                "4",
                "--alpha",
                "4",
                "--lr",
                "1e-2",
                "--save-every",
                "2",
                "--steps",
                steps,
                "-o",
            ])
            .arg(d.join("lora"));
        if resume {
            c.arg("--resume");
        }
        c.output().unwrap()
    };
    let out = succeeded(train("2", false));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 steps on 1 example"));
    let lines = std::fs::read_to_string(d.join("lora/loss.csv"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 3);
    // Again without --resume: refused, pointing at --resume.
    let err = failed(train("4", false));
    assert!(err.contains("--resume"), "{err}");
    let out = succeeded(train("4", true));
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed at step 2"));
    let err = failed(
        reelsmith()
            .args(["finetune", "train"])
            .arg(d.join("cache"))
            .args(["--expert", "high", "-o"])
            .arg(d.join("other"))
            .output()
            .unwrap(),
    );
    assert!(err.contains("hint: set it with --expert"), "{err}");

    let mp4 = d.join("out.mp4");
    succeeded(
        reelsmith()
            .arg("generate")
            .arg("--model-dir")
            .arg(&wan)
            .arg("--image")
            .arg(wan.join("first_frame.png"))
            .args([
                "--prompt",
                "ad23r2 the camera view suddenly changes. A cat.",
            ])
            .args(["--frames", "9", "--size", "32x32", "--steps", "2", "--lora"])
            .arg(d.join("lora/adapter.safetensors"))
            .args(["--lora-scale", "1.0", "-o"])
            .arg(&mp4)
            .output()
            .unwrap(),
    );
    assert_eq!(
        reelsmith::decode::open(&mp4)
            .unwrap()
            .count_frames()
            .unwrap(),
        5
    );
}
