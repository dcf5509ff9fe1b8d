//! Parity of the CLIP and DINOv2 embedders with PyTorch/transformers, on small random-weight
//! checkpoints made by `tests/fixtures/gen.py`, loaded through the real loading code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reelsmith_embed::candle_core::{DType, Device, Tensor};
use reelsmith_embed::{
    load_dir, load_pretrained, AnyModel, ClipModel, DeviceChoice, Dinov2Model, EmbedError,
    Embedder, HubOptions, ModelError, Preprocessor, TextEmbedder,
};

const COS_MIN: f64 = 0.99999;
const DIFF_MAX: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference(dir: &Path) -> HashMap<String, Tensor> {
    reelsmith_embed::candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu)
        .expect("reference.safetensors")
}

fn images() -> Vec<(String, image::RgbImage)> {
    ["wide", "tall", "square", "tiny"]
        .iter()
        .map(|n| {
            let p = fixtures().join("images").join(format!("{n}.png"));
            (
                n.to_string(),
                image::open(&p).expect("fixture image").to_rgb8(),
            )
        })
        .collect()
}

fn texts() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("texts.json")).unwrap()).unwrap()
}

/// Minimum row cosine (over the last axis) and maximum absolute difference.
fn compare(a: &Tensor, b: &Tensor) -> (f64, f64) {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let d = *a.dims().last().unwrap();
    let a: Vec<f32> = a
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = b
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut cos_min = f64::INFINITY;
    let mut diff = 0f64;
    for (ra, rb) in a.chunks(d).zip(b.chunks(d)) {
        let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
        for (&x, &y) in ra.iter().zip(rb) {
            dot += x as f64 * y as f64;
            na += x as f64 * x as f64;
            nb += y as f64 * y as f64;
            diff = diff.max((x as f64 - y as f64).abs());
        }
        let cos = if na == 0.0 && nb == 0.0 {
            1.0
        } else {
            dot / (na.sqrt() * nb.sqrt())
        };
        cos_min = cos_min.min(cos);
    }
    (cos_min, diff)
}

fn assert_close(what: &str, ours: &Tensor, theirs: &Tensor) -> (f64, f64) {
    let (cos, diff) = compare(ours, theirs);
    eprintln!("{what}: min cosine {cos:.9}, max |diff| {diff:.3e}");
    assert!(cos >= COS_MIN, "{what}: cosine {cos} < {COS_MIN}");
    assert!(diff <= DIFF_MAX, "{what}: max abs diff {diff} > {DIFF_MAX}");
    (cos, diff)
}

fn emb_tensor(e: &reelsmith_embed::Embeddings) -> Tensor {
    Tensor::from_vec(e.as_slice().to_vec(), (e.len(), e.dim()), &Device::Cpu).unwrap()
}

// ------------------------------------------------------------------ preprocessing

#[test]
fn preprocessing_matches_pil_pixel_for_pixel() {
    let clip = Preprocessor::from_json(
        r#"{"crop_size":{"height":224,"width":224},"do_center_crop":true,"do_normalize":true,
        "do_resize":true,"image_mean":[0.48145466,0.4578275,0.40821073],
        "image_std":[0.26862954,0.26130258,0.27577711],"resample":3,"size":{"shortest_edge":224}}"#,
    )
    .unwrap();
    let dino = Preprocessor::from_json(
        r#"{"crop_size":{"height":224,"width":224},"do_center_crop":true,"do_normalize":true,
        "do_resize":true,"image_mean":[0.485,0.456,0.406],"image_std":[0.229,0.224,0.225],
        "resample":3,"size":{"shortest_edge":256}}"#,
    )
    .unwrap();
    for (name, img) in images() {
        for (key, p) in [("clip224", &clip), ("dino256_224", &dino)] {
            let want = image::open(fixtures().join(format!("preprocess/{name}.{key}.png")))
                .unwrap()
                .to_rgb8();
            let got = p.resize_and_crop(&img);
            assert_eq!(got.dimensions(), want.dimensions(), "{name} {key}");
            let max = got
                .as_raw()
                .iter()
                .zip(want.as_raw())
                .map(|(a, b)| (*a as i32 - *b as i32).abs())
                .max()
                .unwrap();
            assert_eq!(
                max, 0,
                "{name} {key}: resampled bytes differ from PIL by up to {max}"
            );
        }
    }
}

// ------------------------------------------------------------------ CLIP

fn check_clip(dir: &Path, model: &ClipModel) {
    let r = reference(dir);
    let imgs: Vec<image::RgbImage> = images().into_iter().map(|(_, i)| i).collect();

    // preprocessing from config, against the processor's pixels
    let px = model.pixels(&imgs).unwrap();
    assert_close("clip pixels", &px, &r["pixel_values"]);

    // image tower on the reference pixels
    let out = model.forward_pixels(&r["pixel_values"]).unwrap();
    assert_close("clip image_embeds", &out.image_embeds, &r["image_embeds"]);
    assert_close("clip vision pooled", &out.pooled, &r["vision_pooled"]);
    assert_close(
        "clip vision last_hidden",
        &out.last_hidden,
        &r["vision_last_hidden"],
    );

    // end to end through the Embedder trait
    let e = model.embed_images(&imgs).unwrap();
    assert_eq!((e.len(), e.dim()), (imgs.len(), model.dim()));
    assert_close("clip embed_images", &emb_tensor(&e), &r["image_embeds"]);

    // batch rows equal single-image runs
    for (i, img) in imgs.iter().enumerate() {
        let one = model.embed_images(std::slice::from_ref(img)).unwrap();
        let (cos, diff) = compare(&emb_tensor(&one), &emb_tensor(&e).narrow(0, i, 1).unwrap());
        assert!(
            cos > 0.999999 && diff < 1e-5,
            "image {i} alone differs: {cos} {diff}"
        );
    }

    // tokenisation equals the transformers tokenizer (reference rows are padded with eos)
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ids = model.tokenize(&refs).unwrap();
    let ref_ids: Vec<Vec<i64>> = r["input_ids"].to_vec2().unwrap();
    for (ours, theirs) in ids.iter().zip(&ref_ids) {
        let n = ours.len();
        assert!(n <= 77);
        let ours64: Vec<i64> = ours.iter().map(|&v| v as i64).collect();
        assert_eq!(&ours64[..], &theirs[..n], "token ids differ");
        let eos = *ours.last().unwrap() as i64;
        assert!(
            theirs[n..].iter().all(|&v| v == eos),
            "reference has more tokens"
        );
    }
    assert_eq!(
        ids.last().unwrap().len(),
        77,
        "long text is truncated to 77 tokens"
    );

    let (te, tp) = model.forward_ids(&ids).unwrap();
    assert_close("clip text_embeds", &te, &r["text_embeds"]);
    assert_close("clip text pooled", &tp, &r["text_pooled"]);
    let t = model.embed_texts(&refs).unwrap();
    assert_close("clip embed_texts", &emb_tensor(&t), &r["text_embeds"]);
}

#[test]
fn clip_quick_gelu_safetensors_matches_transformers() {
    let dir = fixtures().join("clip-quickgelu");
    let m = ClipModel::from_dir(&dir, DeviceChoice::Cpu).unwrap();
    assert_eq!(m.config().vision_config.hidden_act, "quick_gelu");
    check_clip(&dir, &m);
}

#[test]
fn clip_gelu_pytorch_bin_matches_transformers() {
    let dir = fixtures().join("clip-gelu");
    assert!(dir.join("pytorch_model.bin").exists() && !dir.join("model.safetensors").exists());
    let m = ClipModel::from_dir(&dir, DeviceChoice::Cpu).unwrap();
    assert_eq!(m.config().vision_config.hidden_act, "gelu");
    check_clip(&dir, &m);
}

#[test]
fn clip_activation_matters() {
    // the gelu checkpoint run as quick_gelu must not pass: the activation comes from config
    let src = fixtures().join("clip-gelu");
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&src, tmp.path());
    let cfg = std::fs::read_to_string(tmp.path().join("config.json")).unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        cfg.replace("\"gelu\"", "\"quick_gelu\""),
    )
    .unwrap();
    let m = ClipModel::from_dir(tmp.path(), DeviceChoice::Cpu).unwrap();
    let r = reference(&src);
    let out = m.forward_pixels(&r["pixel_values"]).unwrap();
    let (_, diff) = compare(&out.image_embeds, &r["image_embeds"]);
    assert!(diff > 1e-3, "a wrong activation went unnoticed ({diff})");
}

// ------------------------------------------------------------------ DINOv2

fn check_dinov2(dir: &Path, m: &Dinov2Model) {
    let r = reference(dir);
    let imgs: Vec<image::RgbImage> = images().into_iter().map(|(_, i)| i).collect();
    let px = m.pixels(&imgs).unwrap();
    assert_close("dinov2 pixels", &px, &r["pixel_values"]);

    let out = m.forward_pixels(&r["pixel_values"]).unwrap();
    assert_close("dinov2 pooled", &out.pooled, &r["pooled"]);
    assert_close(
        "dinov2 last_hidden (patch tokens)",
        &out.last_hidden,
        &r["last_hidden"],
    );
    assert_close("dinov2 mean patch", &out.mean_patch, &r["mean_patch"]);

    let grid = out.patch_grid().unwrap();
    let side = r["pixel_values"].dims()[2] / m.config().patch_size;
    assert_eq!(
        (grid.n, grid.grid_h, grid.grid_w, grid.dim),
        (imgs.len(), side, side, m.dim())
    );
    let lh: Vec<Vec<Vec<f32>>> = r["last_hidden"].to_vec3().unwrap();
    let (c, _) = compare(
        &Tensor::new(grid.token(1, 1, 2), &Device::Cpu).unwrap(),
        &Tensor::new(&lh[1][1 + side + 2][..], &Device::Cpu).unwrap(),
    );
    assert!(c >= COS_MIN, "patch grid is laid out row by row");

    // non-square input: interpolated position embeddings with h != w
    let rect = m.forward_pixels(&r["rect_pixel_values"]).unwrap();
    assert_close(
        "dinov2 non-square last_hidden",
        &rect.last_hidden,
        &r["rect_last_hidden"],
    );
    assert_close("dinov2 non-square pooled", &rect.pooled, &r["rect_pooled"]);

    let e = m.embed_images(&imgs).unwrap();
    assert_close("dinov2 embed_images", &emb_tensor(&e), &r["pooled"]);
    for (i, img) in imgs.iter().enumerate() {
        let one = m.embed_images(std::slice::from_ref(img)).unwrap();
        let (cos, diff) = compare(&emb_tensor(&one), &emb_tensor(&e).narrow(0, i, 1).unwrap());
        assert!(
            cos > 0.999999 && diff < 1e-5,
            "image {i} alone differs: {cos} {diff}"
        );
    }
}

#[test]
fn dinov2_matches_transformers() {
    let dir = fixtures().join("dinov2");
    let m = Dinov2Model::from_dir(&dir, DeviceChoice::Cpu).unwrap();
    assert!(!m.config().use_swiglu_ffn);
    check_dinov2(&dir, &m);
}

#[test]
fn dinov2_swiglu_matches_transformers() {
    let dir = fixtures().join("dinov2-swiglu");
    let m = Dinov2Model::from_dir(&dir, DeviceChoice::Cpu).unwrap();
    assert!(m.config().use_swiglu_ffn);
    check_dinov2(&dir, &m);
}

// ------------------------------------------------------------------ loading

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// Lays a fixture out as the hub cache does: blobs, snapshots/<commit>/ links, refs/main.
fn fake_hub_cache(cache: &Path, repo: &str, src: &Path, commit: &str) {
    let base = cache.join(format!("models--{}", repo.replace('/', "--")));
    let snap = base.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(base.join("blobs")).unwrap();
    std::fs::create_dir_all(base.join("refs")).unwrap();
    std::fs::write(base.join("refs/main"), commit).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "reference.safetensors" || !e.file_type().unwrap().is_file() {
            continue;
        }
        let blob = base.join("blobs").join(format!("blob-{name}"));
        std::fs::copy(e.path(), &blob).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(format!("blob-{name}")),
            snap.join(&name),
        )
        .unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&blob, snap.join(&name)).unwrap();
    }
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn from_pretrained_reads_the_hub_cache_offline() {
    let cache = tempfile::tempdir().unwrap();
    fake_hub_cache(
        cache.path(),
        "reelsmith-test/tiny-clip",
        &fixtures().join("clip-quickgelu"),
        COMMIT,
    );
    fake_hub_cache(
        cache.path(),
        "reelsmith-test/tiny-dinov2",
        &fixtures().join("dinov2"),
        COMMIT,
    );
    let opts = HubOptions::default()
        .cache_dir(cache.path())
        .offline(true)
        .progress(false);

    let clip =
        ClipModel::from_pretrained("reelsmith-test/tiny-clip", &opts, DeviceChoice::Cpu).unwrap();
    assert_eq!(
        clip.model_id(),
        format!("reelsmith-test/tiny-clip@{COMMIT}")
    );
    let pinned = ClipModel::from_pretrained(
        "reelsmith-test/tiny-clip",
        &opts.clone().revision(COMMIT),
        DeviceChoice::Cpu,
    )
    .unwrap();
    check_clip(&fixtures().join("clip-quickgelu"), &pinned);

    let any = load_pretrained("reelsmith-test/tiny-dinov2", &opts, DeviceChoice::Cpu).unwrap();
    let AnyModel::Dinov2(d) = &any else {
        panic!("expected DINOv2")
    };
    assert!(any.as_text_embedder().is_none());
    check_dinov2(&fixtures().join("dinov2"), d);

    let from_dir = load_dir(fixtures().join("clip-gelu"), DeviceChoice::Cpu).unwrap();
    assert!(from_dir.as_text_embedder().is_some());
    assert_eq!(from_dir.dim(), 24);
}

#[test]
fn missing_model_fails_fast_with_advice() {
    let cache = tempfile::tempdir().unwrap();
    // offline: nothing in the cache
    let opts = HubOptions::default()
        .cache_dir(cache.path())
        .offline(true)
        .progress(false);
    let t = Instant::now();
    let err =
        load_pretrained("openai/clip-vit-base-patch32", &opts, DeviceChoice::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(err.is_download(), "{msg}");
    assert!(
        msg.contains("c237dc49a33fc61debc9276459120b7eac67e7ef"),
        "pinned revision used: {msg}"
    );
    assert!(
        msg.contains("--model-dir") && msg.contains("huggingface-cli download"),
        "{msg}"
    );
    assert!(t.elapsed() < Duration::from_secs(2));

    // online but the hub cannot be reached (a closed local port): still quick and clear
    let mut opts = HubOptions::default()
        .cache_dir(cache.path())
        .offline(false)
        .progress(false);
    opts.endpoint = Some("http://127.0.0.1:9".into());
    let t = Instant::now();
    let err = load_pretrained("facebook/dinov2-small", &opts, DeviceChoice::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("unreachable") && msg.contains("--model-dir"),
        "{msg}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );

    // not a hub id
    let err = load_pretrained("no-such-model", &opts, DeviceChoice::Cpu).unwrap_err();
    assert!(err.to_string().contains("org/name"), "{err}");
}

#[test]
fn wrong_or_missing_tensors_are_named() {
    let src = fixtures().join("dinov2");
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&src, tmp.path());
    let mut t = reelsmith_embed::candle_core::safetensors::load(
        src.join("model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    t.remove("encoder.layer.1.mlp.fc2.bias").unwrap();
    t.remove("layernorm.weight").unwrap();
    t.insert(
        "encoder.layer.0.attention.attention.key.weight".into(),
        Tensor::zeros((8, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    reelsmith_embed::candle_core::safetensors::save(&t, tmp.path().join("model.safetensors"))
        .unwrap();
    let err = Dinov2Model::from_dir(tmp.path(), DeviceChoice::Cpu).unwrap_err();
    let msg = err.to_string();
    let model_error = match &err {
        EmbedError::Model(e) => Some(&**e),
        _ => None,
    };
    match model_error {
        Some(ModelError::Weights {
            missing,
            mismatched,
            ..
        }) => {
            assert!(
                missing.contains(&"encoder.layer.1.mlp.fc2.bias".to_string()),
                "{msg}"
            );
            assert!(missing.contains(&"layernorm.weight".to_string()), "{msg}");
            assert_eq!(mismatched.len(), 1, "{msg}");
            assert!(
                mismatched[0].contains("encoder.layer.0.attention.attention.key.weight"),
                "{msg}"
            );
        }
        other => panic!("expected a weights error, got {other:?}: {msg}"),
    }
    assert!(msg.contains("layernorm.weight"));

    // a CLIP folder without a tokenizer, a folder without weights
    let tmp2 = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("clip-quickgelu"), tmp2.path());
    std::fs::remove_file(tmp2.path().join("tokenizer.json")).unwrap();
    let err = ClipModel::from_dir(tmp2.path(), DeviceChoice::Cpu).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
    std::fs::remove_file(tmp2.path().join("model.safetensors")).unwrap();
    let err = load_dir(tmp2.path(), DeviceChoice::Cpu).unwrap_err();
    assert!(err.to_string().contains("no weights"), "{err}");

    // the wrong model class for a folder
    let err = ClipModel::from_dir(fixtures().join("dinov2"), DeviceChoice::Cpu).unwrap_err();
    assert!(err.to_string().contains("not a CLIP checkpoint"), "{err}");
}

#[test]
fn real_clip_tokenizer_matches_transformers() {
    let Ok(shared) = std::env::var("REELSMITH_SHARED") else {
        eprintln!("SKIP real_clip_tokenizer_matches_transformers: REELSMITH_SHARED is not set");
        return;
    };
    let tok = Path::new(&shared).join("models/clip-tokenizer/tokenizer.json");
    if !tok.exists() {
        eprintln!("SKIP: {} is missing", tok.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("clip-quickgelu"), tmp.path());
    std::fs::copy(&tok, tmp.path().join("tokenizer.json")).unwrap();
    let m = ClipModel::from_dir(tmp.path(), DeviceChoice::Cpu).unwrap();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("real_tokenizer_ids.json")).unwrap(),
    )
    .unwrap();
    let texts: Vec<String> = serde_json::from_value(want["texts"].clone()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(want["ids"].clone()).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_eq!(m.tokenize(&refs).unwrap(), ids);
    assert_eq!(
        m.tokenize(&["a photo of a cat"]).unwrap()[0],
        vec![49406, 320, 1125, 539, 320, 2368, 49407]
    );
}

/// Full-size random-weight parity, run by hand after
/// `gen.py --full --out DIR`: `REELSMITH_FULLSIZE=DIR cargo test --release fullsize`.
#[test]
fn fullsize_parity() {
    let Ok(dir) = std::env::var("REELSMITH_FULLSIZE") else {
        eprintln!("SKIP fullsize_parity: REELSMITH_FULLSIZE is not set");
        return;
    };
    let dir = PathBuf::from(dir);
    let clip_dir = dir.join("clip-vit-b32");
    let clip = ClipModel::from_dir(&clip_dir, DeviceChoice::Cpu).unwrap();
    check_clip(&clip_dir, &clip);
    let dino_dir = dir.join("dinov2-s");
    let dino = Dinov2Model::from_dir(&dino_dir, DeviceChoice::Cpu).unwrap();
    check_dinov2(&dino_dir, &dino);
}
