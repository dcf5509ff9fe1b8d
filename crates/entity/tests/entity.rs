//! Integration tests of reelsmith-entity: ISNet parity (real weights from the shared models
//! and a tiny upstream-format checkpoint written by PyTorch), instances, entities, the
//! memory folder, composition, retention and Segment Anything.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use reelsmith_entity::instances::instances_from_probability;
use reelsmith_entity::isnet::{load_isnet, IsnetConfig};
use reelsmith_entity::segment::{isnet_resize, IsnetSegmenter};
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
            assert!(
                !require,
                "REELSMITH_REQUIRE_SHARED=1 but REELSMITH_SHARED is unset"
            );
            eprintln!("skipped: REELSMITH_SHARED is unset (the real ISNet weights live there)");
            return None;
        }
    };
    if !dir.join("isnet-general-use.safetensors").is_file() {
        assert!(
            !require,
            "{} has no isnet-general-use.safetensors",
            dir.display()
        );
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
    // The configuration is read back from the checkpoint's shapes.
    assert_eq!(
        IsnetConfig::detect(&dir.join("isnet_tiny_upstream.pth")).unwrap(),
        cfg
    );
    assert!(IsnetConfig::detect(&dir.join("reference.safetensors"))
        .unwrap_err()
        .to_string()
        .contains("conv_in.weight"));
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
    let spread = want
        .max_keepdim(3)
        .unwrap()
        .max_keepdim(2)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()[0]
        - want
            .min_keepdim(3)
            .unwrap()
            .min_keepdim(2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
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
    assert!(
        err.contains("truncated") && err.contains("tensor "),
        "{err}"
    );
    // Not a checkpoint at all, and a missing file.
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"not a pickle").unwrap();
    assert!(load_isnet(&junk, &cfg, &Device::Cpu).is_err());
    assert!(
        load_isnet(&dir.path().join("none.safetensors"), &cfg, &Device::Cpu)
            .unwrap_err()
            .to_string()
            .contains("no such file")
    );
    // The real architecture given the tiny file: every tensor is misshapen, one error.
    let err = load_isnet(&src, &IsnetConfig::default(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv_in.weight"),
        "{}",
        &err[..err.len().min(300)]
    );
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
    assert_eq!(
        IsnetConfig::detect(&dir.join("isnet-general-use.safetensors")).unwrap(),
        IsnetConfig::default()
    );
    let seg =
        IsnetSegmenter::load(&dir.join("isnet-general-use.safetensors"), &Device::Cpu).unwrap();
    for name in FRAMES {
        let frame = image::open(dir.join(format!("frames/{name}.png")))
            .unwrap()
            .to_rgb8();
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
        assert_eq!(
            differing, 0,
            "{name}: resize differs from the reference input"
        );
        let t0 = std::time::Instant::now();
        let p = seg.probability_of_input(&input).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let reference = image::open(dir.join(format!("reference/{name}_f32.png")))
            .unwrap()
            .to_luma8();
        let (mut max_d, mut inter, mut union, mut fg) = (0f32, 0u64, 0u64, 0u64);
        let (mut max_levels, mut differing) = (0i32, 0u64);
        for (i, r) in reference.as_raw().iter().enumerate() {
            let q = *r as f32 / 255.0;
            max_d = max_d.max((p.data[i] - q).abs());
            // The same 8-bit rounding as the reference PNG: how many levels apart.
            let lv = ((p.data[i] * 255.0 + 0.5).floor() as i32 - *r as i32).abs();
            max_levels = max_levels.max(lv);
            differing += (lv > 0) as u64;
            let (a, b) = (p.data[i] > 0.5, *r >= 128);
            inter += (a && b) as u64;
            union += (a || b) as u64;
            fg += a as u64;
        }
        let iou = if union == 0 {
            1.0
        } else {
            inter as f64 / union as f64
        };
        eprintln!(
            "{name}: max |dp| {max_d:.2e}, 8-bit levels off: max {max_levels}, {differing} px; \
             IoU(p>0.5) {iou:.6}, frac p>0.5 {:.6}, {secs:.2} s",
            fg as f64 / (1024.0 * 1024.0)
        );
        assert!(max_levels <= 1, "{name}: {max_levels} levels off");
        assert!(
            max_d <= 1e-3 + 0.5 / 255.0 + 1e-6,
            "{name}: max |dp| {max_d}"
        );
        assert!(iou >= 0.999, "{name}: IoU {iou}");
        // Instances (as `Segmenter::segment` cuts them, from this forward pass): the two
        // frames without a salient subject give none.
        let at_frame = p.resized(frame.width(), frame.height());
        let inst = instances_from_probability(&at_frame, &seg.options);
        match name {
            "bikes_f0000" | "big_buck_bunny_0_30_f0360" => {
                assert!(inst.is_empty(), "{name}: {} instances", inst.len())
            }
            _ => assert!(!inst.is_empty(), "{name}: no instance"),
        }
    }
}

mod entities_and_memory {
    use image::{Rgb, RgbImage};
    use reelsmith_entity::entity::FrameEntities;
    use reelsmith_entity::instances::{
        instances_from_probability, InstanceOptions, ProbabilityMap,
    };
    use reelsmith_entity::mask::Mask;

    fn scene() -> (RgbImage, Vec<reelsmith_entity::instances::Instance>) {
        let frame = RgbImage::from_fn(160, 90, |x, y| Rgb([x as u8, y as u8, 128]));
        let mut p = vec![0.02f32; 160 * 90];
        for y in 10..60 {
            for x in 20..70 {
                p[y * 160 + x] = 0.9;
            }
        }
        for y in 40..80 {
            for x in 100..140 {
                p[y * 160 + x] = 0.8;
            }
        }
        let map = ProbabilityMap::new(160, 90, p).unwrap();
        let inst = instances_from_probability(&map, &InstanceOptions::default());
        (frame, inst)
    }

    #[test]
    fn memory_folder_round_trips_and_is_written_whole() {
        let (frame, inst) = scene();
        assert_eq!(inst.len(), 2);
        let mut ents = FrameEntities::from_instances(&frame, inst, "isnet").unwrap();
        ents.source = Some("scene.png".into());
        ents.set_embeddings(
            "test",
            vec![vec![1.0, 0.0, 0.5], vec![0.0, 1.0, 0.25]],
            Some(vec![0.5; 3]),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("mem");
        ents.save(&out, Some(&frame)).unwrap();
        for f in [
            "entities.json",
            "mask_00.png",
            "mask_01.png",
            "entity_00.png",
            "entity_01.png",
            "overlay.png",
            "embeddings.safetensors",
        ] {
            assert!(out.join(f).is_file(), "{f}");
        }
        let back = FrameEntities::load(&out).unwrap();
        assert_eq!(back, ents);
        // entities.json carries the COCO RLE and the numbers a user reads.
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("entities.json")).unwrap())
                .unwrap();
        let e0 = &j["entities"][0];
        assert_eq!(e0["bbox"]["width"], 50);
        assert!(e0["mask_rle"]["counts"].is_string());
        assert_eq!(e0["mask_rle"]["size"], serde_json::json!([90, 160]));
        // Saving again replaces the folder whole; no temporary siblings are left behind.
        ents.entities.truncate(1);
        ents.set_embeddings("test", vec![vec![1.0, 0.0, 0.5]], None)
            .unwrap();
        ents.save(&out, None).unwrap();
        assert!(!out.join("mask_01.png").exists() && !out.join("overlay.png").exists());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // A symlink target and a damaged folder are clear errors.
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&out, &link).unwrap();
            assert!(ents
                .save(&link, None)
                .unwrap_err()
                .to_string()
                .contains("symlink"));
        }
        std::fs::write(out.join("entities.json"), "{}").unwrap();
        assert!(FrameEntities::load(&out)
            .unwrap_err()
            .to_string()
            .contains("entities.json"));
        std::fs::remove_file(out.join("entities.json")).unwrap();
        assert!(FrameEntities::load(&out).is_err());
        // Embeddings for some entities only, or of mixed dimensions, are refused.
        let (frame, inst) = scene();
        let mut e = FrameEntities::from_instances(&frame, inst, "isnet").unwrap();
        assert!(e.set_embeddings("x", vec![vec![1.0]], None).is_err());
        assert!(e
            .set_embeddings("x", vec![vec![1.0], vec![1.0, 2.0]], None)
            .is_err());
    }

    #[test]
    fn degenerate_images_give_errors_or_nothing() {
        let frame = RgbImage::new(1, 1);
        let map = ProbabilityMap::new(1, 1, vec![0.9]).unwrap();
        let inst = instances_from_probability(&map, &InstanceOptions::default());
        // A 1x1 foreground survives as one tiny instance or is cleaned away: never a panic.
        let ents = FrameEntities::from_instances(&frame, inst, "isnet").unwrap();
        assert!(ents.entities.len() <= 1);
        assert!(reelsmith_entity::segment::check_image(&RgbImage::new(0, 5)).is_err());
        let huge = RgbImage::new(1, 1);
        assert!(reelsmith_entity::segment::check_image(&huge).is_ok());
        assert!(Mask::from_bytes(2, 2, &[1, 0, 1]).is_err());
    }
}

mod composition {
    use image::{Rgb, RgbImage};
    use reelsmith_entity::compose::{compose, ComposeOptions, Cutout, FreeLayout, Layout};
    use reelsmith_entity::entity::FrameEntities;
    use reelsmith_entity::instances::{
        instances_from_probability, InstanceOptions, ProbabilityMap,
    };

    #[test]
    fn entities_of_one_frame_compose_onto_another_background() {
        let frame = RgbImage::from_pixel(120, 80, Rgb([10, 200, 10]));
        let mut p = vec![0.0f32; 120 * 80];
        for y in 20..60 {
            for x in 30..60 {
                p[y * 120 + x] = 1.0;
            }
        }
        let inst = instances_from_probability(
            &ProbabilityMap::new(120, 80, p).unwrap(),
            &InstanceOptions::default(),
        );
        let ents = FrameEntities::from_instances(&frame, inst, "isnet").unwrap();
        let dir = tempfile::tempdir().unwrap();
        ents.save(&dir.path().join("m"), None).unwrap();
        let cut = Cutout::open(&dir.path().join("m/entity_00.png")).unwrap();
        assert!(cut.has_alpha);
        let bg = RgbImage::from_pixel(320, 180, Rgb([0, 0, 200]));
        let (img, rec) = compose(
            &bg,
            std::slice::from_ref(&cut),
            &Layout::Ffgo,
            &ComposeOptions::default(),
        )
        .unwrap();
        // The 30x40 green cut-out fills its 640x720 cell's height, centred in the left half.
        let r = rec.entities[0].rect;
        assert_eq!((r.width, r.height), (540, 720));
        assert_eq!(*img.get_pixel(320, 360), Rgb([10, 200, 10]));
        assert_eq!(*img.get_pixel(960, 360), Rgb([0, 0, 200]));
        let json = serde_json::to_string(&rec).unwrap();
        assert!(json.contains("\"layout\":\"ffgo\""));
        // A free layout from a file.
        let lf = dir.path().join("layout.json");
        std::fs::write(
            &lf,
            r#"{"entities": [{"center": [0.75, 0.5], "scale": 0.25}]}"#,
        )
        .unwrap();
        let lay = FreeLayout::open(&lf).unwrap();
        let (img, _) = compose(
            &bg,
            &[cut],
            &Layout::Free(lay),
            &ComposeOptions {
                width: 640,
                height: 360,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(*img.get_pixel(480, 180), Rgb([10, 200, 10]));
        assert_eq!(*img.get_pixel(100, 180), Rgb([0, 0, 200]));
        std::fs::write(&lf, "[1, 2]").unwrap();
        assert!(FreeLayout::open(&lf)
            .unwrap_err()
            .to_string()
            .contains("layout.json"));
    }
}

mod retention_from_memory {
    use image::{Rgb, RgbImage};
    use reelsmith_core::FrameRef;
    use reelsmith_entity::entity::FrameEntities;
    use reelsmith_entity::mask::Mask;
    use reelsmith_entity::retention::{Candidate, Retention, RetentionOptions};

    #[test]
    fn retention_follows_a_saved_memory() {
        let frame = RgbImage::from_pixel(40, 40, Rgb([1, 2, 3]));
        let inst = vec![reelsmith_entity::instances::Instance {
            mask: Mask::from_fn(40, 40, |x, y| x < 10 && y < 10),
            score: 0.9,
        }];
        let mut ents = FrameEntities::from_instances(&frame, inst, "sam").unwrap();
        ents.set_embeddings("e", vec![vec![0.0, 1.0]], None)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        ents.save(&dir.path().join("mem"), None).unwrap();
        let mem = FrameEntities::load(&dir.path().join("mem")).unwrap();
        let mut r = Retention::new(&mem, RetentionOptions::default()).unwrap();
        for i in 0..4u64 {
            let c = Candidate {
                embedding: vec![i as f32, 1.0],
                bbox: None,
                score: 1.0,
            };
            r.observe(
                FrameRef {
                    index: i * 10,
                    time: i as f64,
                },
                &[c],
            )
            .unwrap();
        }
        let rep = r.report();
        // cos = 1, 0.707, 0.447, 0.316: present in the first two frames.
        assert!((rep.entities[0].fraction_present - 0.5).abs() < 1e-6);
        assert_eq!(rep.entities[0].first_frame_lost.map(|f| f.index), Some(20));
        for f in ["retention.csv", "retention.json", "retention.png"] {
            let p = dir.path().join(f);
            match f {
                "retention.csv" => r.write_csv(&p).unwrap(),
                "retention.json" => r.write_json(&p).unwrap(),
                _ => r.write_plot(&p).unwrap(),
            }
            assert!(p.is_file());
        }
        // A memory without embeddings cannot measure retention.
        let mut plain = mem.clone();
        plain.entities[0].embedding = None;
        assert!(Retention::new(&plain, RetentionOptions::default()).is_err());
    }
}

#[cfg(feature = "sam")]
mod segment_anything {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{VarBuilder, VarMap};
    use image::{Rgb, RgbImage};
    use reelsmith_entity::sam::{
        load_sam, AutoMaskOptions, Prompt, SamModel, SamVariant, VitConfig, SAM_LOW_RES,
    };

    fn tiny() -> SamVariant {
        SamVariant::Custom(VitConfig {
            embed_dim: 32,
            depth: 1,
            num_heads: 2,
            global_attn_indexes: vec![],
        })
    }

    /// Writes a random-weight SAM (small ViT encoder, SAM's real prompt encoder and decoder)
    /// with this test's own seeded generator, as a checkpoint file.
    fn write_random_checkpoint(path: &std::path::Path) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        SamModel::new(vb, &tiny()).unwrap();
        let mut s = 7u64;
        let data = vm.data().lock().unwrap();
        let mut names: Vec<_> = data.keys().cloned().collect();
        names.sort();
        for n in names {
            let v = &data[&n];
            let count = v.elem_count();
            let vals: Vec<f32> = (0..count)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let u = (s >> 40) as f32 / (1u64 << 24) as f32;
                    if n.ends_with(".weight") && (n.contains("norm") || n.contains(".ln")) {
                        1.0 + (u - 0.5) * 0.1
                    } else {
                        (u * 2.0 - 1.0) * 0.08
                    }
                })
                .collect();
            v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
        drop(data);
        vm.save(path).unwrap();
    }

    #[test]
    fn sam_plumbing_on_a_random_weight_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("sam_tiny.safetensors");
        write_random_checkpoint(&ck);
        let model = load_sam(&ck, &tiny(), &Device::Cpu).unwrap();
        // The variant is read back from the checkpoint's shapes.
        assert_eq!(SamVariant::detect(&ck).unwrap(), tiny());
        assert!(SamVariant::detect(&dir.path().join("none.safetensors")).is_err());
        let img = RgbImage::from_fn(200, 120, |x, y| {
            Rgb([(x * 255 / 200) as u8, (y * 2) as u8, 90])
        });
        let enc = model.embed(&img).unwrap();
        assert_eq!(enc.size, (200, 120));
        assert_eq!(enc.resized, (1024, 614));
        // Three prompt shapes in one call: single points (batched), a box, points + box.
        let prompts = vec![
            Prompt {
                points: vec![(50.0, 60.0, true)],
                bbox: None,
            },
            Prompt {
                points: vec![(150.0, 20.0, true)],
                bbox: None,
            },
            Prompt {
                points: vec![],
                bbox: Some([10.0, 10.0, 90.0, 100.0]),
            },
            Prompt {
                points: vec![(40.0, 40.0, true), (180.0, 100.0, false)],
                bbox: Some([0.0, 0.0, 100.0, 100.0]),
            },
        ];
        let out = model.predict(&enc, &prompts, true).unwrap();
        assert_eq!(out.len(), 4);
        for o in &out {
            assert_eq!(o.logits.len(), 3);
            assert_eq!(o.iou.len(), 3);
            assert!(o
                .logits
                .iter()
                .all(|l| l.len() == SAM_LOW_RES * SAM_LOW_RES && l.iter().all(|v| v.is_finite())));
        }
        // Different prompts give different logits (the prompt reaches the decoder).
        assert_ne!(out[0].logits[0], out[1].logits[0]);
        assert_ne!(out[2].logits[0], out[3].logits[0]);
        // Batched and one-by-one decoding agree.
        let single = model.predict(&enc, &prompts[1..2], true).unwrap();
        let d = single[0].logits[0]
            .iter()
            .zip(&out[1].logits[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-3, "{d}");
        // The automatic generator runs end to end (random weights: any number of masks).
        let opts = AutoMaskOptions {
            points_per_side: 2,
            points_per_batch: 3,
            pred_iou_thresh: -1e9,
            stability_score_thresh: 0.0,
            ..Default::default()
        };
        let masks = model.generate(&img, &opts).unwrap();
        for m in &masks {
            assert_eq!((m.mask.width(), m.mask.height()), (200, 120));
            assert_eq!(m.rle().to_mask().unwrap(), m.mask);
        }
        // Bad prompts and bad weights are errors.
        assert!(model.predict(&enc, &[Prompt::default()], true).is_err());
        assert!(model
            .predict(
                &enc,
                &[Prompt {
                    points: vec![(f32::NAN, 0.0, true)],
                    bbox: None
                }],
                true
            )
            .is_err());
        let err = load_sam(&ck, &SamVariant::VitB, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sam_tiny.safetensors"), "{err}");
        assert!(load_sam(
            &dir.path().join("none.safetensors"),
            &SamVariant::Mobile,
            &Device::Cpu
        )
        .unwrap_err()
        .to_string()
        .contains("lmz/candle-sam"));
    }
}
