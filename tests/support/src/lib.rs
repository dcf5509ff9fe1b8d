//! Test helpers shared by the reelsmith crates (not published).
//!
//! - The shared test media: `$REELSMITH_SHARED/videos` with its `ground_truth.json`, and
//!   `$REELSMITH_SHARED/models`. A test that needs them calls [`shared_videos`] or
//!   [`shared_models`]: when the variable is unset the test skips with a printed reason,
//!   unless `REELSMITH_REQUIRE_SHARED=1` (as CI sets it), where a missing medium fails the
//!   test.
//! - Synthetic videos encoded with x264 ([`encode_h264`], [`two_shot_video`]), so tests and
//!   doctests run on generated media.
//! - A tiny random-weight CLIP checkpoint in the Hugging Face layout ([`tiny_clip`]) for
//!   tests of the model paths (parity with transformers is proven by the embed crate).
//! - For the first-frame pipelines: a tiny ISNet checkpoint ([`tiny_isnet`]) and the
//!   smallest Wan image-to-video pipeline folder that runs ([`tiny_wan_i2v`]); parity with
//!   PyTorch and diffusers is proven by the entity and diffusion crates.

use std::path::{Path, PathBuf};

/// Whether a missing shared medium must fail the test (`REELSMITH_REQUIRE_SHARED=1`).
pub fn shared_required() -> bool {
    std::env::var("REELSMITH_REQUIRE_SHARED").is_ok_and(|v| v.trim() == "1")
}

/// `$REELSMITH_SHARED/<sub>`, or `None` (after printing why the test skips).
///
/// # Panics
/// With `REELSMITH_REQUIRE_SHARED=1`, when the variable is unset or the folder is missing.
pub fn shared(sub: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("REELSMITH_SHARED").map(|p| PathBuf::from(p).join(sub));
    match dir {
        Some(d) if d.is_dir() => Some(d),
        other => {
            let why = match other {
                Some(d) => format!("{} does not exist", d.display()),
                None => "REELSMITH_SHARED is not set (the folder holding videos/ and models/)"
                    .to_string(),
            };
            if shared_required() {
                panic!("REELSMITH_REQUIRE_SHARED=1 but {why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// `$REELSMITH_SHARED/videos` (see [`shared`]).
pub fn shared_videos() -> Option<PathBuf> {
    shared("videos")
}

/// `$REELSMITH_SHARED/models` (see [`shared`]).
pub fn shared_models() -> Option<PathBuf> {
    shared("models")
}

/// `ground_truth.json` of the shared videos folder `dir`.
///
/// # Panics
/// When the file is missing or not JSON (a broken test setup).
pub fn ground_truth(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("ground_truth.json"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("ground_truth.json").display()));
    serde_json::from_str(&text).expect("ground_truth.json is JSON")
}

/// The tiny random-weight CLIP checkpoint folder (`config.json`, `model.safetensors`,
/// `preprocessor_config.json`, `tokenizer.json`; built by `tests/support/fixtures/gen.py`).
pub fn tiny_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/clip-tiny")
}

/// The tiny random-weight DINOv2 checkpoint folder (no text side; built by
/// `tests/support/fixtures/gen.py`).
pub fn tiny_dinov2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dinov2-tiny")
}

/// A tiny random-weight ISNet checkpoint file (ISNetDIS at channel unit 1, upstream
/// `conv_s1` + `bn_s1` keys with BatchNorm not folded, float16 safetensors; built by
/// `tests/support/fixtures/gen_first_frame.py` from the entity crate's fixture).
pub fn tiny_isnet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/isnet-tiny/isnet_tiny.safetensors")
}

/// The smallest Wan image-to-video pipeline folder in the diffusers layout that runs (one
/// transformer block, one expert, a 4-wide VAE, a one-layer UMT5 with its tokenizer; random
/// weights; sizes in multiples of 16). It also holds `first_frame.png` (32×32) and
/// `reference.safetensors`: diffusers' 2-step run from the given noise `latents`
/// (`[1, 16, 2, 4, 4]`), prompt "A cat walks on the grass, realistic style.", Wan's
/// negative prompt, guidance 5, UniPC with shift 5, 5 frames of 32×32 (`video`
/// `[5, 32, 32, 3]` in `[0, 1]`). Built by `tests/support/fixtures/gen_first_frame.py`.
pub fn tiny_wan_i2v() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/wan-i2v-tiny")
}

/// Writes a `width`×`height` RGB PNG at `path` with a deterministic pattern seeded by
/// `seed` (for tests that need image inputs).
///
/// # Panics
/// When the file cannot be written (tests only).
pub fn write_png(path: &Path, width: u32, height: u32, seed: u8) {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let v = (x * 7 + y * 13) as u8;
        image::Rgb([v.wrapping_add(seed), seed.wrapping_mul(3), v ^ seed])
    });
    img.save(path).expect("png written");
}

/// Encodes `frames` (RGB, `width`×`height`, row-major `[h, w, 3]`) at `fps` into an
/// H.264 file at `path` with x264 `preset` and `x264_params`, a keyframe every `keyint`
/// frames.
///
/// # Panics
/// When encoding fails (tests only).
pub fn encode_h264(
    path: &Path,
    (width, height, fps): (usize, usize, usize),
    keyint: u64,
    preset: &str,
    x264_params: &str,
    frames: impl Iterator<Item = ndarray::Array3<u8>>,
) {
    video_rs::init().expect("ffmpeg initialises");
    let opts: std::collections::HashMap<String, String> = [
        ("preset".to_string(), preset.to_string()),
        ("x264-params".to_string(), x264_params.to_string()),
    ]
    .into_iter()
    .collect();
    let settings = video_rs::encode::Settings::preset_h264_custom(
        width,
        height,
        video_rs::ffmpeg::format::Pixel::YUV420P,
        opts.into(),
    )
    .with_keyframe_interval(keyint);
    let mut enc = video_rs::Encoder::new(path, settings).expect("encoder opens");
    for (k, frame) in frames.enumerate() {
        enc.encode(&frame, video_rs::Time::from_units(k, fps))
            .expect("frame encodes");
    }
    enc.finish().expect("encoder finishes");
}

/// Writes `<dir>/two_shots.mp4`: 4 s of 160×90 at 25 fps, a textured blue shot then, from
/// frame 50, a textured orange one (a hard cut at 2.0 s), keyframe every 25 frames.
pub fn two_shot_video(dir: &Path) -> PathBuf {
    let path = dir.join("two_shots.mp4");
    let frames = (0..100usize).map(|k| {
        ndarray::Array3::from_shape_fn((90, 160, 3), |(y, x, c)| {
            // each shot its own picture (a texture of another direction and period), not
            // the same picture recoloured, which shot detection takes for a lighting change
            let tex = if k < 50 {
                (x * 7 + y * 13 + k * 3) % 40 + x / 4
            } else {
                (x * 3 + y * 11 + k * 2) % 27 + (89 - y) / 2
            } as u8;
            let base: [u8; 3] = if k < 50 {
                [30, 60, 170]
            } else {
                [210, 120, 30]
            };
            base[c].saturating_add(tex)
        })
    });
    encode_h264(
        &path,
        (160, 90, 25),
        25,
        "ultrafast",
        "keyint=25:min-keyint=25:scenecut=0",
        frames,
    );
    path
}
