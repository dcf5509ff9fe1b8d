//! Integration tests of reelsmith-entity: ISNet parity (real weights from the shared models
//! and a tiny upstream-format checkpoint written by PyTorch), instances, entities, the
//! memory folder, composition, retention and Segment Anything.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use reelsmith_entity::isnet::{load_isnet, IsnetConfig};
use reelsmith_entity::segment::{isnet_resize, IsnetSegmenter, Segmenter};
use reelsmith_entity::EntityError;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The shared models folder, or `None` (with the reason printed) when REELSMITH_SHARED is
/// unset; with REELSMITH_REQUIRE_SHARED=1 a missing medium fails the test.
fn shared_isnet() -> Option<PathBuf> {
    let require = std::env::var("REELSMITH_REQUIRE_SHARED").is_ok_and(|v| v == "1");
    let dir = match std::env::var("REELSMITH_SHARED") {
        Ok(s) => PathBuf::from(s).join("models/isnet"),
        Err(_) => {
            assert!(!require, "REELSMITH_REQUIRE_SHARED=1 but REELSMITH_SHARED is unset");
            eprintln!("skipped: REELSMITH_SHARED is unset (the real ISNet weights live there)");
            return None;
        }
    };
    if !dir.join("isnet-general-use.safetensors").is_file() {
        assert!(!require, "{} has no isnet-general-use.safetensors", dir.display());
        eprintln!("skipped: {} has no ISNet weights", dir.display());
        return None;
    }
    Some(dir)
}

fn read_safetensors(path: &Path) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn isnet_upstream_checkpoint_folds_batchnorm_and_matches_pytorch() {
    let dir = fixtures().join("isnet-tiny");
    let cfg = IsnetConfig {
        unit: 1,
        ..IsnetConfig::default()
    };
    let model = load_isnet(&dir.join("isnet_tiny_upstream.pth"), &cfg, &Device::Cpu).unwrap();
    let r = read_safetensors(&dir.join("reference.safetensors"));
    let (x, want) = (&r["input"], &r["output"]);
    // Our CPU kernels (tiled im2col + gemm) and candle's own ops, both against PyTorch.
    let fast = model.forward(x).unwrap();
    let slow = model.forward_candle(x).unwrap();
    assert_eq!(fast.dims(), want.dims());
    let (df, ds) = (max_abs_diff(&fast, want), max_abs_diff(&slow, want));
    eprintln!("tiny ISNet vs PyTorch eval: max |dp| cpu kernels {df:.2e}, candle ops {ds:.2e}");
    assert!(df < 1e-5 && ds < 1e-5, "{df} {ds}");
    // The outputs are not trivially equal to a constant: the test would catch a broken net.
    let spread = want.max_keepdim(3).unwrap().max_keepdim(2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]
        - want.min_keepdim(3).unwrap().min_keepdim(2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    assert!(spread > 0.05);
}

#[test]
fn isnet_bad_weights_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = IsnetConfig {
        unit: 1,
        ..IsnetConfig::default()
    };
    // A checkpoint without one tensor and with one misshapen: both named in one error.
    let src = fixtures().join("isnet-tiny/isnet_tiny_upstream.pth");
    let all = candle_core::pickle::read_all(&src).unwrap();
    let mut kept: std::collections::HashMap<String, Tensor> = all.into_iter().collect();
    kept.remove("stage3.rebnconv2.conv_s1.weight").unwrap();
    kept.insert(
        "side1.bias".into(),
        Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
    );
    let p = dir.path().join("broken.safetensors");
    candle_core::safetensors::save(&kept, &p).unwrap();
    let err = load_isnet(&p, &cfg, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("stage3.rebnconv2.conv_s1.weight"), "{err}");
    assert!(err.contains("side1.bias"), "{err}");
    assert!(err.contains("broken.safetensors"), "{err}");
    // Truncated: the error names a tensor and says what to do.
    let bytes = std::fs::read(&p).unwrap();
    let t = dir.path().join("truncated.safetensors");
    std::fs::write(&t, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_isnet(&t, &cfg, &Device::Cpu).unwrap_err();
    assert!(matches!(err, EntityError::Weights { .. }));
    let err = err.to_string();
    assert!(err.contains("truncated") && err.contains("tensor "), "{err}");
    // Not a checkpoint at all, and a missing file.
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"not a pickle").unwrap();
    assert!(load_isnet(&junk, &cfg, &Device::Cpu).is_err());
    assert!(load_isnet(&dir.path().join("none.safetensors"), &cfg, &Device::Cpu)
        .unwrap_err()
        .to_string()
        .contains("no such file"));
    // The real architecture given the tiny file: every tensor is misshapen, one error.
    let err = load_isnet(&src, &IsnetConfig::default(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv_in.weight"), "{}", &err[..err.len().min(300)]);
}

const FRAMES: [&str; 4] = [
    "bikes_f0000",
    "bikes_f0125",
    "chaplin_f0120",
    "big_buck_bunny_0_30_f0360",
];

#[test]
fn isnet_real_weights_match_onnxruntime_on_four_frames() {
    let Some(dir) = shared_isnet() else { return };
    let seg = IsnetSegmenter::load(&dir.join("isnet-general-use.safetensors"), &Device::Cpu)
        .unwrap();
    for name in FRAMES {
        let frame = image::open(dir.join(format!("frames/{name}.png"))).unwrap().to_rgb8();
        let input = image::open(dir.join(format!("frames/{name}_1024.png")))
            .unwrap()
            .to_rgb8();
        // The preprocessing reproduces the reference input exactly.
        let resized = isnet_resize(&frame, 1024);
        let differing = resized
            .as_raw()
            .iter()
            .zip(input.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 0, "{name}: resize differs from the reference input");
        let t0 = std::time::Instant::now();
        let p = seg.probability_of_input(&input).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let reference = image::open(dir.join(format!("reference/{name}_f32.png")))
            .unwrap()
            .to_luma8();
        let (mut max_d, mut inter, mut union, mut fg) = (0f32, 0u64, 0u64, 0u64);
        for (i, r) in reference.as_raw().iter().enumerate() {
            let q = *r as f32 / 255.0;
            max_d = max_d.max((p.data[i] - q).abs());
            let (a, b) = (p.data[i] > 0.5, *r >= 128);
            inter += (a && b) as u64;
            union += (a || b) as u64;
            fg += a as u64;
        }
        let iou = if union == 0 { 1.0 } else { inter as f64 / union as f64 };
        eprintln!(
            "{name}: max |dp| {max_d:.2e}, IoU(p>0.5) {iou:.6}, frac p>0.5 {:.6}, {secs:.2} s",
            fg as f64 / (1024.0 * 1024.0)
        );
        assert!(max_d <= 1e-3 + 0.5 / 255.0 + 1e-6, "{name}: max |dp| {max_d}");
        assert!(iou >= 0.999, "{name}: IoU {iou}");
        // Instances: the two frames without a salient subject give none.
        let inst = seg.segment(&frame).unwrap();
        match name {
            "bikes_f0000" | "big_buck_bunny_0_30_f0360" => {
                assert!(inst.is_empty(), "{name}: {} instances", inst.len())
            }
            _ => assert!(!inst.is_empty(), "{name}: no instance"),
        }
    }
}
