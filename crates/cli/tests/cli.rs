//! End-to-end runs of the `reelsmith` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reelsmith"))
}

fn embed_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../embed/tests/fixtures")
}

#[test]
fn embed_images_and_texts_as_json() {
    let f = embed_fixtures();
    let out = bin()
        .args([
            "embed",
            "--json",
            "--text",
            "a photo of a cat",
            "--text",
            "a dog",
        ])
        .arg(f.join("images/wide.png"))
        .arg(f.join("images/tall.png"))
        .arg("--model-dir")
        .arg(f.join("clip-quickgelu"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dim"], 24);
    assert_eq!(v["images"].as_array().unwrap().len(), 2);
    assert_eq!(v["texts"].as_array().unwrap().len(), 2);
    assert_eq!(v["images"][0].as_array().unwrap().len(), 24);
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
    let f = embed_fixtures();
    // DINOv2 has no text tower
    let out = bin()
        .args(["embed", "--json", "--text", "x", "--model-dir"])
        .arg(f.join("dinov2"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no text tower"));
    // an uncached model offline: quick, names the remedy
    let cache = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["embed", "--json", "--offline", "--model", "clip-b32"])
        .arg(f.join("images/wide.png"))
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
    let Ok(shared) = std::env::var("REELSMITH_SHARED") else {
        eprintln!(
            "SKIP embed_video_writes_safetensors_and_reuses_the_cache: REELSMITH_SHARED is not set"
        );
        return;
    };
    let video = Path::new(&shared).join("videos/bikes.mp4");
    let f = embed_fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &Path| {
        let o = bin()
            .args(["embed", "--fps", "2"])
            .arg(&video)
            .arg(f.join("images/tiny.png"))
            .arg("--model-dir")
            .arg(f.join("dinov2"))
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
