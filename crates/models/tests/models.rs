//! reelsmith-models: checkpoint loading against PyTorch-written fixtures
//! (`tests/fixtures/gen.py`), the hub cache, and finite-difference gradient checks of every
//! layer — which fail if a layer is switched to one of candle's ops that drop gradients.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use reelsmith_models::candle_core::{DType, Device, Module, Tensor};
use reelsmith_models::candle_nn::{self, VarBuilder, VarMap};
use reelsmith_models::ops::{self, AttentionMask};
use reelsmith_models::{
    grad_check, randn, seeded_var_builder, Activation, Attention, AttentionConfig, AttentionNames,
    Checkpoint, FoldBatchNorm, GradCheck, GradCheckError, HubOptions, LayerNorm, LayerNormConfig,
    Linear, LinearConfig, Mlp, MlpConfig, ModelError, ModelRepo, PatchEmbed, PatchEmbedConfig,
    RmsNorm, RmsNormConfig,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference(name: &str) -> HashMap<String, Tensor> {
    reelsmith_models::candle_core::safetensors::load(fixtures().join(name), &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn mlp_forward(ckpt: &Checkpoint) -> Tensor {
    let vb = ckpt.var_builder(DType::F32, &Device::Cpu);
    let fc1 = Linear::new(vb.pp("fc1"), &LinearConfig::new(6, 8)).unwrap();
    let fc2 = Linear::new(vb.pp("fc2"), &LinearConfig::new(8, 3)).unwrap();
    ckpt.finish().unwrap();
    let x = &reference("mlp_reference.safetensors")["input"];
    let h = Activation::Gelu.forward(&fc1.forward(x).unwrap()).unwrap();
    fc2.forward(&h).unwrap()
}

// ------------------------------------------------------------------ loading

#[test]
fn every_container_gives_pytorchs_numbers() {
    let want = &reference("mlp_reference.safetensors")["output"];
    for (what, file, tol) in [
        ("pytorch_model.bin", "mlp.bin", 1e-6),
        (
            "sharded safetensors",
            "sharded/model.safetensors.index.json",
            1e-6,
        ),
        ("state_dict pickle", "state_dict.pth", 1e-6),
        // f16 weights, read as f32: only the rounding of the weights differs
        ("f16 safetensors", "mlp_f16.safetensors", 5e-3),
    ] {
        let ckpt = Checkpoint::open(fixtures().join(file)).unwrap();
        assert_eq!(
            ckpt.names(),
            ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"],
            "{what}"
        );
        assert_eq!(ckpt.shape("fc1.weight"), Some(vec![8, 6]), "{what}");
        let d = max_diff(&mlp_forward(&ckpt), want);
        assert!(d <= tol, "{what}: max |diff| {d}");
    }
}

#[test]
fn batch_norm_folds_on_load_as_pytorch_computes_it() {
    let r = reference("conv_bn_reference.safetensors");
    // a model written for folded checkpoints (`conv_s1.weight`/`.bias` only)
    let ckpt = Checkpoint::open(fixtures().join("conv_bn.pth"))
        .unwrap()
        .with_transform(FoldBatchNorm::with_suffixes("conv_s1", "bn_s1", 1e-5));
    let vb = ckpt.var_builder(DType::F32, &Device::Cpu);
    let conv = candle_nn::conv2d(
        3,
        4,
        3,
        candle_nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        },
        vb.pp("conv_s1"),
    )
    .unwrap();
    ckpt.finish().unwrap();
    let d = max_diff(&conv.forward(&r["input"]).unwrap(), &r["output"]);
    assert!(d < 1e-5, "folded conv differs from conv -> bn by {d}");
    // without the transform the same model reads the raw convolution: another result
    let raw = Checkpoint::open(fixtures().join("conv_bn.pth")).unwrap();
    let conv = candle_nn::conv2d(
        3,
        4,
        3,
        candle_nn::Conv2dConfig {
            padding: 1,
            ..Default::default()
        },
        raw.var_builder(DType::F32, &Device::Cpu).pp("conv_s1"),
    )
    .unwrap();
    assert!(max_diff(&conv.forward(&r["input"]).unwrap(), &r["output"]) > 0.1);
}

#[test]
fn all_missing_and_misshapen_tensors_are_named_with_the_file() {
    let path = fixtures().join("sharded/model.safetensors.index.json");
    let ckpt = Checkpoint::open(&path).unwrap();
    let vb = ckpt.var_builder(DType::F32, &Device::Cpu);
    // the model expects other widths and an extra layer
    let _ = Linear::new(vb.pp("fc1"), &LinearConfig::new(6, 9)).unwrap();
    let _ = Linear::new(vb.pp("fc2"), &LinearConfig::new(8, 3)).unwrap();
    let _ = LayerNorm::new(vb.pp("norm"), &LayerNormConfig::new(3, 1e-5)).unwrap();
    let err = ckpt.finish().unwrap_err();
    let msg = err.to_string();
    match &err {
        ModelError::Weights {
            path: p,
            missing,
            mismatched,
        } => {
            assert_eq!(p, &path);
            assert_eq!(missing, &["norm.bias", "norm.weight"], "{msg}");
            assert_eq!(mismatched.len(), 2, "{msg}");
            assert!(mismatched[0].starts_with("fc1.weight: expected [9, 6], found [8, 6]"));
        }
        other => panic!("expected a weights error, got {other}"),
    }
    assert!(msg.contains("model.safetensors.index.json"), "{msg}");
    // the record is cleared by finish
    ckpt.finish().unwrap();
}

#[test]
fn renamed_layouts_and_size_one_axes_load() {
    let ckpt = Checkpoint::open(fixtures().join("mlp.bin"))
        .unwrap()
        .with_rename(|n| n.replace("mlp.up", "fc1").replace("mlp.down", "fc2"));
    let vb = ckpt.var_builder(DType::F32, &Device::Cpu);
    assert!(vb.contains_tensor("mlp.up.weight"));
    assert!(!vb.contains_tensor("mlp.gate.weight"));
    let up = Linear::new(vb.pp("mlp.up"), &LinearConfig::new(6, 8)).unwrap();
    // the bias [3] asked for as [1, 3]
    let b = vb.get((1, 3), "mlp.down.bias").unwrap();
    ckpt.finish().unwrap();
    assert_eq!(up.weight().dims(), &[8, 6]);
    assert_eq!(b.dims(), &[1, 3]);
    // a missing renamed tensor is reported under both names
    let _ = vb.get(3, "mlp.gate.bias").unwrap();
    let msg = ckpt.finish().unwrap_err().to_string();
    assert!(msg.contains("mlp.gate.bias"), "{msg}");
}

#[test]
fn bad_files_fail_with_their_name() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Checkpoint::open(tmp.path().join("nope.safetensors")).unwrap_err();
    assert!(err.to_string().contains("nope.safetensors"), "{err}");
    // truncated safetensors
    let src = std::fs::read(fixtures().join("mlp_f16.safetensors")).unwrap();
    let cut = tmp.path().join("cut.safetensors");
    std::fs::write(&cut, &src[..src.len() / 2]).unwrap();
    let err = Checkpoint::open(&cut).unwrap_err();
    assert!(
        matches!(err, ModelError::Config { .. }) && err.to_string().contains("cut.safetensors"),
        "{err}"
    );
    // text is neither format
    let txt = tmp.path().join("weights.dat");
    std::fs::write(&txt, "hello world").unwrap();
    let err = Checkpoint::open(&txt).unwrap_err();
    assert!(err.to_string().contains("weights.dat"), "{err}");
    // an index whose shard is missing
    let idx = tmp.path().join("model.safetensors.index.json");
    std::fs::write(&idx, r#"{"weight_map": {"a": "model-1.safetensors"}}"#).unwrap();
    let err = Checkpoint::open(&idx).unwrap_err();
    assert!(err.to_string().contains("model-1.safetensors"), "{err}");
    std::fs::write(&idx, r#"{"weight_map": {"a": "../escape.safetensors"}}"#).unwrap();
    assert!(Checkpoint::open(&idx).is_err());
}

#[test]
fn folder_and_hub_cache_resolution() {
    // a folder
    let repo = ModelRepo::dir(fixtures().join("sharded")).unwrap();
    let w = repo.weights(ModelRepo::DEFAULT_WEIGHTS).unwrap();
    assert!(w.ends_with("model.safetensors.index.json"));
    let err = ModelRepo::dir(fixtures().join("nope")).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");

    // a hub cache as huggingface_hub lays it out: blobs, snapshots/<commit>, refs/main
    let cache = tempfile::tempdir().unwrap();
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    let base = cache.path().join("models--org--tiny");
    let snap = base.join("snapshots").join(commit);
    std::fs::create_dir_all(snap.join("sub")).unwrap();
    std::fs::create_dir_all(base.join("refs")).unwrap();
    std::fs::write(base.join("refs/main"), commit).unwrap();
    for f in [
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        std::fs::copy(fixtures().join("sharded").join(f), snap.join("sub").join(f)).unwrap();
    }
    let opts = HubOptions::default()
        .cache_dir(cache.path())
        .offline(true)
        .progress(false);
    let repo = ModelRepo::hub("org/tiny", &opts).unwrap();
    assert_eq!(repo.id(), format!("org/tiny@{commit}"));
    let idx = repo.weights(&["sub/model.safetensors.index.json"]).unwrap();
    let ckpt = Checkpoint::open(&idx).unwrap();
    assert_eq!(ckpt.names().len(), 4);
    // a commit-hash revision without refs/<hash> (huggingface_hub does not write one)
    let pinned = ModelRepo::hub("org/tiny", &opts.clone().revision(commit)).unwrap();
    assert!(pinned.get("sub/model.safetensors.index.json").is_ok());
    // offline and not cached: a download error with advice, at once
    let err = repo.get("config.json").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Download { .. }), "{msg}");
    assert!(msg.contains("huggingface-cli download org/tiny"), "{msg}");
    assert!(ModelRepo::hub("no-slash", &opts).is_err());
}

// ------------------------------------------------------------------ gradients

fn f64s(seed: u64, shape: &[usize]) -> Tensor {
    randn(seed, shape, DType::F64, &Device::Cpu).unwrap()
}

/// Builds a layer from `tensors` as its weights (so the weights are the checked inputs).
fn vb_of(names: &[&str], t: &[Tensor]) -> VarBuilder<'static> {
    let map: HashMap<String, Tensor> = names
        .iter()
        .zip(t)
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    VarBuilder::from_tensors(map, DType::F64, &Device::Cpu)
}

#[test]
fn linear_and_mlp_gradients() {
    let r = grad_check(
        &[f64s(0, &[2, 3, 5]), f64s(1, &[4, 5]), f64s(2, &[4])],
        |t| {
            Linear::new(
                vb_of(&["weight", "bias"], &t[1..]),
                &LinearConfig::new(5, 4),
            )?
            .forward(&t[0])
        },
    )
    .unwrap();
    assert_eq!(r.checked, [30, 20, 4]);
    for act in ["quick_gelu", "gelu", "gelu_pytorch_tanh", "silu", "relu"] {
        let act: Activation = act.parse().unwrap();
        grad_check(
            &[
                f64s(3, &[2, 5]),
                f64s(4, &[7, 5]),
                f64s(5, &[7]),
                f64s(6, &[5, 7]),
                f64s(7, &[5]),
            ],
            |t| {
                let vb = vb_of(
                    &["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"],
                    &t[1..],
                );
                Mlp::new(vb, &MlpConfig::new(5, 7, act))?.forward(&t[0])
            },
        )
        .unwrap_or_else(|e| panic!("{act:?}: {e}"));
    }
}

#[test]
fn norm_and_softmax_gradients_reach_contiguous_inputs() {
    // offsets and scales as on a residual stream; contiguous input (where candle-nn's
    // LayerNorm takes its gradient-dropping fast path)
    let x = f64s(10, &[3, 4, 8]).affine(2.0, 5.0).unwrap();
    assert!(x.is_contiguous());
    grad_check(&[x.clone(), f64s(11, &[8]), f64s(12, &[8])], |t| {
        LayerNorm::new(
            vb_of(&["weight", "bias"], &t[1..]),
            &LayerNormConfig::new(8, 1e-5),
        )?
        .forward(&t[0])
    })
    .unwrap();
    let no_affine = LayerNormConfig {
        affine: false,
        ..LayerNormConfig::new(8, 1e-6)
    };
    grad_check(std::slice::from_ref(&x), |t| {
        LayerNorm::new(vb_of(&[], &[]), &no_affine)?.forward(&t[0])
    })
    .unwrap();
    grad_check(&[x.clone(), f64s(13, &[8])], |t| {
        RmsNorm::new(vb_of(&["weight"], &t[1..]), &RmsNormConfig::new(8, 1e-6))?.forward(&t[0])
    })
    .unwrap();
    grad_check(std::slice::from_ref(&x), |t| ops::softmax_last_dim(&t[0])).unwrap();
    grad_check(&[x.clone(), f64s(14, &[3, 4, 8]), f64s(15, &[8])], |t| {
        ops::scaled_residual(&t[0], &t[1], &t[2])
    })
    .unwrap();

    // the same checks fail with candle's versions, which have no backward
    for (name, f) in [
        (
            "softmax_last_dim",
            Box::new(|t: &[Tensor]| candle_nn::ops::softmax_last_dim(&t[0]))
                as Box<dyn Fn(&[Tensor]) -> _>,
        ),
        (
            "LayerNorm",
            Box::new(|t: &[Tensor]| {
                candle_nn::LayerNorm::new(
                    Tensor::ones(8, DType::F64, &Device::Cpu)?,
                    Tensor::zeros(8, DType::F64, &Device::Cpu)?,
                    1e-5,
                )
                .forward(&t[0])
            }),
        ),
        (
            "rms_norm",
            Box::new(|t: &[Tensor]| {
                candle_nn::ops::rms_norm(&t[0], &Tensor::ones(8, DType::F64, &Device::Cpu)?, 1e-6)
            }),
        ),
    ] {
        match grad_check(std::slice::from_ref(&x), f) {
            Err(GradCheckError::NoGradient { input: 0 }) => {}
            // an op that cannot run in f64 fails the check too
            Err(GradCheckError::Backend(_)) => {}
            other => panic!("{name}: expected a failed check, got {other:?}"),
        }
    }
}

#[test]
fn attention_gradients_self_cross_and_masked() {
    let names = [
        "q_proj.weight",
        "q_proj.bias",
        "k_proj.weight",
        "k_proj.bias",
        "v_proj.weight",
        "v_proj.bias",
        "out_proj.weight",
        "out_proj.bias",
    ];
    let weights = |dim: usize, kv: usize, seed: u64| -> Vec<Tensor> {
        vec![
            f64s(seed, &[dim, dim]),
            f64s(seed + 1, &[dim]),
            f64s(seed + 2, &[dim, kv]),
            f64s(seed + 3, &[dim]),
            f64s(seed + 4, &[dim, kv]),
            f64s(seed + 5, &[dim]),
            f64s(seed + 6, &[dim, dim]),
            f64s(seed + 7, &[dim]),
        ]
    };
    let cfg = AttentionConfig::new(8, 2);
    let check = GradCheck::new().max_elements(24);
    let mut inputs = vec![f64s(20, &[2, 5, 8]).affine(0.5, 0.0).unwrap()];
    inputs.extend(weights(8, 8, 21));
    for mask in ["none", "causal", "additive"] {
        check
            .check(&inputs, |t| {
                let a = Attention::new(vb_of(&names, &t[1..]), &cfg)?;
                let m = ops::causal_mask(5, 5, DType::F64, &Device::Cpu)?;
                let mask = match mask {
                    "none" => AttentionMask::None,
                    "causal" => AttentionMask::Causal,
                    _ => AttentionMask::Additive(&m),
                };
                a.forward_masked(&t[0], mask)
            })
            .unwrap_or_else(|e| panic!("{mask}: {e}"));
    }
    // cross-attention to a context of another width and length
    let cross = AttentionConfig {
        kv_dim: Some(6),
        ..AttentionConfig::new(8, 2)
    };
    let mut inputs = vec![f64s(40, &[2, 3, 8]), f64s(41, &[2, 4, 6])];
    inputs.extend(weights(8, 6, 42));
    check
        .check(&inputs, |t| {
            Attention::new(vb_of(&names, &t[2..]), &cross)?.forward_cross(
                &t[0],
                &t[1],
                AttentionMask::None,
            )
        })
        .unwrap();
}

#[test]
fn patch_embedding_gradients() {
    let cfg = PatchEmbedConfig {
        channels: 3,
        dim: 4,
        patch: 2,
        bias: true,
    };
    grad_check(
        &[
            f64s(50, &[1, 3, 5, 4]),
            f64s(51, &[4, 3, 2, 2]),
            f64s(52, &[4]),
        ],
        |t| PatchEmbed::new(vb_of(&["weight", "bias"], &t[1..]), &cfg)?.forward(&t[0]),
    )
    .unwrap();
}

#[test]
fn frozen_layers_pass_the_gradient_to_a_trained_input() {
    // LoRA's situation: plain (frozen) weights, a tracked input → composed paths
    let vars = VarMap::new();
    let vb = seeded_var_builder(&vars, 1, DType::F32, &Device::Cpu);
    let adapter = Linear::new(vb.pp("lora"), &LinearConfig::no_bias(8, 8)).unwrap();
    let frozen = Checkpoint::from_tensors(
        HashMap::from([
            (
                "weight".to_string(),
                randn(2, 8, DType::F32, &Device::Cpu).unwrap(),
            ),
            (
                "bias".to_string(),
                randn(3, 8, DType::F32, &Device::Cpu).unwrap(),
            ),
        ]),
        "frozen",
    );
    let norm = LayerNorm::new(
        frozen.var_builder(DType::F32, &Device::Cpu),
        &LayerNormConfig::new(8, 1e-5),
    )
    .unwrap();
    let x = randn(4, (3, 8), DType::F32, &Device::Cpu).unwrap();
    let y = norm.forward(&adapter.forward(&x).unwrap()).unwrap();
    let loss = ops::softmax_last_dim(&y)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let g = grads
        .get(adapter.weight())
        .expect("gradient reaches the adapter");
    assert!(
        g.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0
    );
    // an untracked forward through the same layers takes the fused kernels and agrees
    let w = adapter.weight().detach();
    let fused = norm
        .forward(&Linear::from_weights(w, None).forward(&x).unwrap())
        .unwrap();
    assert!(!fused.track_op());
    assert!(max_diff(&fused, &y) < 1e-5);
}

#[test]
fn fused_layers_match_the_composed_ones() {
    // a whole pre-norm block at f32: fused (plain weights) vs composed (the same as Vars)
    let dev = Device::Cpu;
    let cfg = AttentionConfig::new(32, 4);
    let vars = VarMap::new();
    let vb = seeded_var_builder(&vars, 5, DType::F32, &dev);
    let trained = Attention::new(vb.pp("attn"), &cfg).unwrap();
    let plain: HashMap<String, Tensor> = vars
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect();
    let frozen = Attention::new(
        VarBuilder::from_tensors(plain, DType::F32, &dev).pp("attn"),
        &cfg,
    )
    .unwrap();
    let x = randn(6, (3, 7, 32), DType::F32, &dev).unwrap();
    for mask in [AttentionMask::None, AttentionMask::Causal] {
        let a = frozen.forward_masked(&x, mask).unwrap();
        let b = trained.forward_masked(&x, mask).unwrap();
        assert!(!a.track_op() && b.track_op());
        let d = max_diff(&a, &b);
        assert!(d < 1e-5, "{mask:?}: {d}");
    }
    // diffusers' names read the same weights stored under to_q / to_out.0
    let renamed: HashMap<String, Tensor> = vars
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let k = k
                .replace("q_proj", "to_q")
                .replace("k_proj", "to_k")
                .replace("v_proj", "to_v")
                .replace("out_proj", "to_out.0");
            (k, v.as_tensor().detach())
        })
        .collect();
    let diffusers = Attention::new(
        VarBuilder::from_tensors(renamed, DType::F32, &dev).pp("attn"),
        &AttentionConfig {
            names: AttentionNames::DIFFUSERS,
            ..cfg
        },
    )
    .unwrap();
    let d = max_diff(
        &diffusers.forward(&x).unwrap(),
        &frozen.forward(&x).unwrap(),
    );
    assert_eq!(d, 0.0);
}
