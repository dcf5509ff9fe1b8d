//! Parity of the Wan implementation with diffusers/transformers on tiny random-weight
//! checkpoints built by `tests/fixtures/gen.py`, loaded through the real loading code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use reelsmith_diffusion::candle_core::{DType, Device, Tensor};
use reelsmith_diffusion::image;
use reelsmith_diffusion::{
    DiffusionError, Expert, GenerateRequest, PipelineOptions, PromptInput, WanPipeline,
    WanTransformer,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn refs(name: &str) -> HashMap<String, Tensor> {
    let p = fixtures().join("refs").join(format!("{name}.safetensors"));
    reelsmith_diffusion::candle_core::safetensors::load(&p, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Largest absolute difference and largest absolute reference value.
fn max_diff(a: &Tensor, b: &Tensor) -> (f32, f32) {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
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
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| {
            if x.is_finite() && y.is_finite() {
                (x - y).abs()
            } else {
                f32::INFINITY
            }
        })
        .fold(0f32, f32::max);
    let m = b.iter().map(|y| y.abs()).fold(0f32, f32::max);
    (d, m)
}

/// Asserts `max |a - b| <= tol · max(1, max |b|)`.
fn assert_close(what: &str, a: &Tensor, b: &Tensor, tol: f32) {
    let (d, m) = max_diff(a, b);
    eprintln!("{what}: max |diff| = {d:.3e} (max |ref| = {m:.3e})");
    assert!(d <= tol * m.max(1.0), "{what}: max |diff| {d} > {tol}");
}

/// Zero-pads the stored prompt tokens to the 512 positions the pipelines use.
fn context(r: &HashMap<String, Tensor>) -> Tensor {
    let c = &r["context"];
    let (b, n, d) = c.dims3().unwrap();
    let pad = Tensor::zeros((b, 512 - n, d), DType::F32, &Device::Cpu).unwrap();
    Tensor::cat(&[c, &pad], 1).unwrap()
}

fn transformer_case(dir: &str, weights: Option<&str>, name: &str) {
    let weights = weights.map(|w| fixtures().join(w));
    let model = WanTransformer::load(
        &fixtures().join(dir),
        weights.as_deref(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let r = refs(name);
    let out = model
        .forward(&r["hidden_states"], &r["timestep"], &context(&r))
        .unwrap();
    assert_close(name, &out, &r["out"], 1e-4);
}

/// The T2V fixture's weights exist only in the original single-file layout
/// (`model.diffusion_model.blocks.0.self_attn.q.weight`, ...): they load through the key map.
#[test]
fn transformer_t2v_from_original_key_layout_matches_diffusers() {
    transformer_case(
        "wan21_t2v/transformer",
        Some("wan21_t2v/wan21_t2v_original_keys.safetensors"),
        "transformer_t2v",
    );
    let err = WanTransformer::load(
        &fixtures().join("wan21_t2v/transformer"),
        None,
        DType::F32,
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("no weights here"), "{err}");
}

#[test]
fn transformer_bad_weights_name_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("wan22_ti2v/transformer");
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let mut tensors = reelsmith_diffusion::candle_core::safetensors::load(
        src.join("diffusion_pytorch_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    tensors.remove("blocks.1.attn2.to_k.weight");
    tensors.remove("proj_out.bias");
    tensors.insert(
        "blocks.0.ffn.net.2.weight".into(),
        Tensor::zeros((24, 40), DType::F32, &Device::Cpu).unwrap(),
    );
    reelsmith_diffusion::candle_core::safetensors::save(
        &tensors,
        dir.path().join("diffusion_pytorch_model.safetensors"),
    )
    .unwrap();
    let err = WanTransformer::load(dir.path(), None, DType::F32, &Device::Cpu)
        .err()
        .expect("incomplete weights must fail");
    let msg = err.to_string();
    match err {
        DiffusionError::Weights {
            missing,
            mismatched,
            ..
        } => {
            assert_eq!(
                missing,
                vec![
                    "blocks.1.attn2.to_k.weight".to_string(),
                    "proj_out.bias".to_string()
                ]
            );
            assert_eq!(mismatched.len(), 1);
            assert!(mismatched[0].starts_with("blocks.0.ffn.net.2.weight"));
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(
        msg.contains("proj_out.bias") && msg.contains("config.json"),
        "{msg}"
    );
}

#[test]
fn transformer_i2v_expert_matches_diffusers() {
    transformer_case("wan22_i2v/transformer", None, "transformer_i2v");
}

#[test]
fn transformer_ti2v_per_token_timesteps_match_diffusers() {
    transformer_case("wan22_ti2v/transformer", None, "transformer_ti2v");
}

#[test]
fn transformer_rejects_wrong_channels() {
    let model = WanTransformer::load(
        &fixtures().join("wan21_t2v/transformer"),
        Some(&fixtures().join("wan21_t2v/wan21_t2v_original_keys.safetensors")),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let x = Tensor::zeros((1, 36, 2, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let t = Tensor::new(&[500f32], &Device::Cpu).unwrap();
    let c = Tensor::zeros((1, 8, 32), DType::F32, &Device::Cpu).unwrap();
    let err = model.forward(&x, &t, &c).err().unwrap().to_string();
    assert!(
        err.contains("16 input channels") && err.contains("got 36"),
        "{err}"
    );
    let x = Tensor::zeros((1, 16, 2, 3, 4), DType::F32, &Device::Cpu).unwrap();
    let err = model.forward(&x, &t, &c).err().unwrap().to_string();
    assert!(err.contains("multiples of the patch size"), "{err}");
}

fn vae_case(dir: &str, name: &str) {
    let vae =
        reelsmith_diffusion::WanVae::load(&fixtures().join(dir), DType::F32, &Device::Cpu).unwrap();
    let r = refs(name);
    let dist = vae.encode(&r["video"]).unwrap();
    assert_close(&format!("{name} encode mean"), &dist.mean, &r["mean"], 1e-4);
    assert_close(
        &format!("{name} encode logvar"),
        &dist.logvar,
        &r["logvar"],
        1e-4,
    );
    let video = vae.decode(&r["latents"]).unwrap();
    assert_close(&format!("{name} decode"), &video, &r["decoded"], 1e-4);
}

#[test]
fn vae_wan21_encode_decode_match_diffusers() {
    vae_case("wan22_i2v/vae", "vae21");
}

#[test]
fn vae_wan22_encode_decode_match_diffusers() {
    vae_case("wan22_ti2v/vae", "vae22");
}

#[test]
fn vae_rejects_bad_sizes() {
    let vae = reelsmith_diffusion::WanVae::load(
        &fixtures().join("wan22_i2v/vae"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let v = Tensor::zeros((1, 3, 8, 16, 16), DType::F32, &Device::Cpu).unwrap();
    let err = vae.encode(&v).err().unwrap().to_string();
    assert!(err.contains("4k+1") && err.contains("use 5 or 9"), "{err}");
    let v = Tensor::zeros((1, 3, 5, 20, 16), DType::F32, &Device::Cpu).unwrap();
    let err = vae.encode(&v).err().unwrap().to_string();
    assert!(
        err.contains("multiples of 8") && err.contains("16x16"),
        "{err}"
    );
}

#[test]
fn text_encoder_matches_transformers() {
    let te = reelsmith_diffusion::TextEncoder::load(
        &fixtures().join("wan22_i2v"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let r = refs("text");
    let prompts: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("refs/prompts.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(prompts.len(), 5);
    for p in prompts {
        let name = p["name"].as_str().unwrap();
        let prompt = p["prompt"].as_str().unwrap();
        let max_len = p["max_len"].as_u64().unwrap() as usize;
        assert_eq!(
            reelsmith_diffusion::clean_prompt(prompt),
            p["cleaned"].as_str().unwrap(),
            "{name}: cleaning"
        );
        let ids = te.token_ids(prompt, max_len).unwrap();
        let want: Vec<u32> = r[&format!("{name}.ids")]
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(|v| v as u32)
            .collect();
        assert_eq!(ids, want, "{name}: token ids");
        let emb = te.encode(prompt, max_len).unwrap();
        assert_eq!(emb.dims(), &[1, max_len, 32]);
        let n = want.len();
        let head = emb.narrow(1, 0, n).unwrap().squeeze(0).unwrap();
        assert_close(
            &format!("{name} embeddings"),
            &head,
            &r[&format!("{name}.embeds")],
            1e-4,
        );
        if n < max_len {
            let tail = emb.narrow(1, n, max_len - n).unwrap();
            let m: f32 = tail.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert_eq!(m, 0.0, "{name}: padding must be zeros");
        }
    }
}

#[test]
fn schedulers_match_diffusers_step_by_step() {
    use reelsmith_diffusion::{Scheduler, SchedulerConfig};
    let r = refs("schedulers");
    let cases: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("refs/schedulers.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let steps = case["steps"].as_u64().unwrap() as usize;
        let cfg: SchedulerConfig = serde_json::from_value(case["config"].clone()).unwrap();
        let mut s = Scheduler::new(&cfg, steps, None, None).unwrap();
        let want_t: Vec<f32> = r[&format!("{name}.timesteps")].to_vec1().unwrap();
        let want_s: Vec<f32> = r[&format!("{name}.sigmas")].to_vec1().unwrap();
        assert_eq!(s.timesteps(), want_t.as_slice(), "{name}: timesteps");
        assert_eq!(s.sigmas(), want_s.as_slice(), "{name}: sigmas");
        let mut sample = r[&format!("{name}.sample0")].clone();
        for i in 0..steps {
            sample = s.step(&r[&format!("{name}.out{i}")], &sample).unwrap();
            let want = &r[&format!("{name}.sample{}", i + 1)];
            let (d, m) = max_diff(&sample, want);
            assert!(d <= 1e-5 * m.max(1.0), "{name} step {i}: max |diff| {d}");
        }
        eprintln!("{name}: {steps} steps equal");
    }
}

fn run_case(
    folder: &str,
    name: &str,
    configure: &dyn Fn(&mut GenerateRequest, &HashMap<String, Tensor>),
) -> Vec<(f32, Expert)> {
    let r = refs(name);
    let mut pipe = WanPipeline::load(&fixtures().join(folder), PipelineOptions::default()).unwrap();
    let mut req = GenerateRequest::new("");
    req.steps = 4;
    req.latents = Some(r["latents"].clone());
    configure(&mut req, &r);
    let mut seen = Vec::new();
    let mut step_diff = 0f32;
    let out = pipe
        .generate(&req, &mut |s| {
            let (d, _) = max_diff(s.latents, &r[&format!("step{}", s.step - 1)]);
            step_diff = step_diff.max(d);
            seen.push((s.timestep, s.expert));
        })
        .unwrap();
    eprintln!("{name}: per-step latents max |diff| = {step_diff:.3e}");
    assert!(
        step_diff <= 1e-3,
        "{name}: per-step latents differ by {step_diff}"
    );
    let want_t: Vec<f32> = r["timesteps"].to_vec1().unwrap();
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), want_t);
    assert_close(&format!("{name} video"), &out.video_f32, &r["video"], 1e-3);
    let (n, h, w, c) = out.video.dims4().unwrap();
    assert_eq!((n, h, w, c), (req.frames, req.height, req.width, 3));
    assert_eq!(out.frames.len(), n);
    seen
}

#[test]
fn i2v_a14b_sampling_run_matches_diffusers() {
    let experts = run_case("wan22_i2v", "run_i2v", &|req, _| {
        req.prompt = PromptInput::Text("A cat walks on the grass, realistic style.".into());
        // No negative prompt given: Wan's default (the reference passed it explicitly).
        req.image = Some(
            image::open(fixtures().join("refs/i2v_first_frame.png"))
                .unwrap()
                .to_rgb8(),
        );
        req.width = 48;
        req.height = 32;
        req.frames = 5;
        req.guidance = 5.0;
        req.guidance_2 = Some(4.0);
    });
    // Boundary 0.9 · 1000: timesteps 999 and 937 on the high-noise expert, then the low one.
    let kinds: Vec<Expert> = experts.iter().map(|e| e.1).collect();
    assert_eq!(
        kinds,
        vec![Expert::High, Expert::High, Expert::Low, Expert::Low]
    );
}

#[test]
fn ti2v_sampling_run_with_given_embeddings_matches_diffusers() {
    run_case("wan22_ti2v", "run_ti2v", &|req, r| {
        req.prompt = PromptInput::Embeddings(r["prompt_embeds"].clone());
        req.negative_prompt = Some(PromptInput::Embeddings(r["negative_prompt_embeds"].clone()));
        req.image = Some(
            image::open(fixtures().join("refs/ti2v_first_frame.png"))
                .unwrap()
                .to_rgb8(),
        );
        req.width = 64;
        req.height = 32;
        req.frames = 5;
        req.guidance = 3.0;
    });
}

fn i2v_request() -> GenerateRequest {
    let mut req = GenerateRequest::new("A cat walks on the grass, realistic style.");
    req.image = Some(
        image::open(fixtures().join("refs/i2v_first_frame.png"))
            .unwrap()
            .to_rgb8(),
    );
    req.width = 48;
    req.height = 32;
    req.frames = 5;
    req.steps = 2;
    req
}

#[test]
fn sampler_rejects_bad_requests_with_the_fix() {
    let mut pipe =
        WanPipeline::load(&fixtures().join("wan22_i2v"), PipelineOptions::default()).unwrap();
    let mut check = |f: &dyn Fn(&mut GenerateRequest), want: &[&str]| {
        let mut req = i2v_request();
        f(&mut req);
        let err = pipe.generate(&req, &mut |_| {}).err().unwrap().to_string();
        for w in want {
            assert!(err.contains(w), "{err:?} lacks {w:?}");
        }
    };
    check(&|r| r.frames = 8, &["4k+1", "use 5 or 9"]);
    check(&|r| r.width = 40, &["multiples of 16", "48x32"]);
    check(&|r| r.image = None, &["image-to-video", "--image"]);
    check(&|r| r.drop_first = 5, &["drop_first"]);
    check(
        &|r| r.latents = Some(Tensor::zeros((1, 16, 2, 4, 4), DType::F32, &Device::Cpu).unwrap()),
        &["[1, 16, 2, 4, 6]", "got [1, 16, 2, 4, 4]"],
    );
    check(
        &|r| {
            r.prompt =
                PromptInput::Embeddings(Tensor::zeros((3, 7), DType::F32, &Device::Cpu).unwrap())
        },
        &["[tokens, 32]"],
    );
}

#[test]
fn sampler_seed_noise_drop_first_and_no_gradients() {
    let mut pipe =
        WanPipeline::load(&fixtures().join("wan22_i2v"), PipelineOptions::default()).unwrap();
    let mut req = i2v_request();
    req.seed = 7;
    req.drop_first = 1;
    let a = pipe.generate(&req, &mut |_| {}).unwrap();
    assert_eq!(a.frames.len(), 4);
    assert_eq!(a.video.dims(), &[4, 32, 48, 3]);
    assert!(!a.latents.track_op() && !a.video_f32.track_op());
    // The seeded noise is the crate generator's, so passing it explicitly gives the same run.
    let noise = reelsmith_diffusion::NoiseGenerator::new(7)
        .randn((1, 16, 2, 4, 6), DType::F32, &Device::Cpu)
        .unwrap();
    req.latents = Some(noise);
    let b = pipe.generate(&req, &mut |_| {}).unwrap();
    let (d, _) = max_diff(&a.latents, &b.latents);
    assert_eq!(d, 0.0);
    // Another seed gives another video.
    req.latents = None;
    req.seed = 8;
    let c = pipe.generate(&req, &mut |_| {}).unwrap();
    let (d, _) = max_diff(&a.latents, &c.latents);
    assert!(d > 1e-3);
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

#[test]
fn prompt_embeddings_are_cached_on_disk_per_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    let cache = tmp.path().join("cache");
    copy_dir(&fixtures().join("wan22_i2v"), &model);
    let opts = PipelineOptions {
        prompt_cache_dir: Some(cache.clone()),
        ..PipelineOptions::default()
    };
    let prompt = PromptInput::Text("A cat walks on the grass, realistic style.".into());
    let first = {
        let mut pipe = WanPipeline::load(&model, opts.clone()).unwrap();
        pipe.prompt_embeddings(&prompt, 512).unwrap()
    };
    assert_eq!(first.dims(), &[1, 512, 32]);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    // Without the text encoder the cached embeddings are still there; another prompt is not.
    std::fs::rename(model.join("text_encoder"), tmp.path().join("te")).unwrap();
    let mut pipe = WanPipeline::load(&model, opts).unwrap();
    let again = pipe.prompt_embeddings(&prompt, 512).unwrap();
    assert_eq!(max_diff(&first, &again).0, 0.0);
    let err = pipe
        .prompt_embeddings(&PromptInput::Text("a dog".into()), 512)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no text_encoder"), "{err}");
    // Embeddings saved to a file load back as a prompt.
    let file = tmp.path().join("p.safetensors");
    reelsmith_diffusion::save_prompt_embeddings(&first.narrow(1, 0, 10).unwrap(), &file).unwrap();
    let loaded = reelsmith_diffusion::load_prompt_embeddings(&file).unwrap();
    let padded = pipe
        .prompt_embeddings(&PromptInput::Embeddings(loaded), 512)
        .unwrap();
    assert_eq!(
        max_diff(
            &padded.narrow(1, 0, 10).unwrap(),
            &first.narrow(1, 0, 10).unwrap()
        )
        .0,
        0.0
    );
}

// ---------------------------------------------------------------- LoRA and training (#16)

mod lora {
    use super::*;
    use reelsmith_diffusion::{train, LoraConfig, LoraNaming, TrainConfig, TrainExample, WanLora};

    pub(super) fn expert() -> WanTransformer {
        WanTransformer::load(
            &fixtures().join("wan22_i2v/transformer"),
            None,
            DType::F32,
            &Device::Cpu,
        )
        .unwrap()
    }

    pub(super) fn randn(seed: u64, shape: &[usize]) -> Tensor {
        reelsmith_diffusion::NoiseGenerator::new(seed)
            .randn(shape, DType::F32, &Device::Cpu)
            .unwrap()
    }

    /// Adapters with random `up` (a fresh one adds nothing, which would prove nothing).
    fn trained_lora(m: &WanTransformer, cfg: &LoraConfig) -> WanLora {
        let lora = WanLora::new(m, cfg, 3).unwrap();
        for (i, v) in lora.vars().iter().enumerate() {
            let t = (randn(100 + i as u64, v.dims()) * 0.3).unwrap();
            v.set(&t).unwrap();
        }
        lora
    }

    fn inputs() -> (Tensor, Tensor, Tensor) {
        (
            randn(1, &[1, 36, 2, 4, 4]),
            Tensor::new(&[700f32], &Device::Cpu).unwrap(),
            randn(2, &[1, 6, 32]),
        )
    }

    pub(super) fn diff(a: &Tensor, b: &Tensor) -> f32 {
        max_diff(a, b).0
    }

    /// A copy of every dense layer's base weight, by name.
    pub(super) fn base_weights(m: &WanTransformer) -> Vec<(String, Tensor)> {
        m.linear_modules()
            .into_iter()
            .map(|(n, _, _)| {
                let w = m.base_weight(&n).unwrap().copy().unwrap();
                (n, w)
            })
            .collect()
    }

    #[test]
    fn targets_merge_unmerge_and_base_bit_identical() {
        let mut m = expert();
        let (x, t, c) = inputs();
        let base = m.forward(&x, &t, &c).unwrap();
        let w0 = m.base_weight("blocks.0.attn1.to_q").unwrap().clone();
        let lora = trained_lora(&m, &WanLora::ffgo_config());
        // FFGo's targets: q, k, v, o of both attentions and both FFN layers, in every block,
        // and the timestep projection.
        assert_eq!(lora.layers().len(), 2 * 10 + 1);
        assert!(lora.layers().contains_key("condition_embedder.time_proj"));
        assert!(lora.layers().contains_key("blocks.1.attn2.to_out.0"));
        assert!(lora.layers().contains_key("blocks.0.ffn.net.0.proj"));
        assert!(!lora.layers().contains_key("proj_out"));
        m.add_lora(&lora, 1.0).unwrap();
        let unmerged = m.forward(&x, &t, &c).unwrap();
        assert!(
            diff(&unmerged, &base) > 1e-3,
            "the adapter changes the output"
        );
        m.merge_lora().unwrap();
        assert_eq!(m.lora_state(), (21, 21));
        let merged = m.forward(&x, &t, &c).unwrap();
        let d = diff(&merged, &unmerged);
        eprintln!("merged vs unmerged: {d:.3e}");
        assert!(d < 1e-5, "{d}");
        m.unmerge_lora();
        let again = m.forward(&x, &t, &c).unwrap();
        assert!(diff(&again, &unmerged) < 1e-6);
        m.remove_lora();
        let back = m.forward(&x, &t, &c).unwrap();
        assert_eq!(diff(&back, &base), 0.0);
        assert_eq!(
            diff(m.base_weight("blocks.0.attn1.to_q").unwrap(), &w0),
            0.0
        );
        // scale 0.5 at merge halves the update
        m.add_lora(&lora, 0.5).unwrap();
        let half = m.forward(&x, &t, &c).unwrap();
        assert!(diff(&half, &base) > 1e-4 && diff(&half, &unmerged) > 1e-4);
    }

    #[test]
    fn adapter_files_round_trip_in_peft_and_kohya_naming() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = expert();
        let (x, t, c) = inputs();
        let mut cfg = LoraConfig::new(4, 8.0);
        cfg.targets = vec!["blocks.*".into(), "proj_out".into()];
        let lora = trained_lora(&m, &cfg);
        m.add_lora(&lora, 1.0).unwrap();
        let want = m.forward(&x, &t, &c).unwrap();
        for naming in [LoraNaming::Peft, LoraNaming::Kohya] {
            let p = dir.path().join(format!("{naming:?}.safetensors"));
            lora.save(&p, naming).unwrap();
            let keys: Vec<String> =
                reelsmith_diffusion::candle_core::safetensors::load(&p, &Device::Cpu)
                    .unwrap()
                    .into_keys()
                    .collect();
            let expect = match naming {
                LoraNaming::Peft => "transformer.blocks.0.attn1.to_q.lora_A.weight",
                LoraNaming::Kohya => "lora_unet__blocks_0_self_attn_q.lora_down.weight",
            };
            assert!(keys.iter().any(|k| k == expect), "{keys:?}");
            if naming == LoraNaming::Kohya {
                assert!(keys.iter().any(|k| k == "lora_unet__blocks_1_ffn_2.alpha"));
                assert!(keys
                    .iter()
                    .any(|k| k == "lora_unet__head_head.lora_up.weight"));
            }
            let loaded = WanLora::load(&p, &m).unwrap();
            assert_eq!(loaded.config().rank, 4);
            assert_eq!(loaded.config().alpha, 8.0);
            let mut m2 = expert();
            m2.add_lora(&loaded, 1.0).unwrap();
            assert_eq!(diff(&m2.forward(&x, &t, &c).unwrap(), &want), 0.0);
        }
        // musubi-tuner's single-underscore kohya names load the same.
        let k = reelsmith_diffusion::candle_core::safetensors::load(
            dir.path().join("Kohya.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        let renamed: HashMap<String, Tensor> = k
            .into_iter()
            .map(|(n, v)| (n.replace("lora_unet__", "lora_unet_"), v))
            .collect();
        let p = dir.path().join("musubi.safetensors");
        reelsmith_diffusion::candle_core::safetensors::save(&renamed, &p).unwrap();
        let mut m3 = expert();
        m3.add_lora(&WanLora::load(&p, &m3).unwrap(), 1.0).unwrap();
        assert_eq!(diff(&m3.forward(&x, &t, &c).unwrap(), &want), 0.0);
        // A file for another model is refused with the names that do not fit.
        let mut bad = renamed.clone();
        bad.insert(
            "lora_unet_blocks_7_self_attn_q.lora_down.weight".into(),
            randn(5, &[4, 24]),
        );
        bad.insert(
            "lora_unet_blocks_7_self_attn_q.lora_up.weight".into(),
            randn(6, &[24, 4]),
        );
        reelsmith_diffusion::candle_core::safetensors::save(&bad, &p).unwrap();
        let e = WanLora::load(&p, &m3).err().unwrap().to_string();
        assert!(
            e.contains("blocks_7_self_attn_q") && e.contains("musubi"),
            "{e}"
        );
    }

    pub(super) fn examples(n: usize) -> Vec<TrainExample> {
        (0..n)
            .map(|i| {
                // A learnable pattern: latents depend on the condition.
                let cond = randn(50 + i as u64, &[20, 2, 4, 4]);
                let lat = (cond.narrow(0, 4, 16).unwrap() * 0.8).unwrap();
                TrainExample {
                    name: format!("ex{i}"),
                    latents: lat,
                    condition: Some(cond),
                    context: randn(80 + i as u64, &[6, 32]),
                    entities: None,
                }
            })
            .collect()
    }

    fn small_cfg(steps: usize) -> TrainConfig {
        let mut lora = LoraConfig::new(4, 4.0);
        lora.targets = WanLora::FFGO_TARGETS
            .iter()
            .map(|s| s.to_string())
            .collect();
        lora.dropout = 0.1;
        TrainConfig {
            lora,
            learning_rate: 2e-2,
            steps,
            batch_size: 2,
            grad_accum: 2,
            save_every: 2,
            warmup_steps: 1,
            seed: 7,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn training_learns_only_lora_and_resumes_the_same_curve() {
        let data = examples(3);
        let dir = tempfile::tempdir().unwrap();
        let mut m = expert();
        let before = base_weights(&m);
        let full = train(
            &mut m,
            &data,
            &small_cfg(12),
            &dir.path().join("full"),
            false,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(full.losses.len(), 12);
        let first: f64 = full.losses[..3].iter().sum::<f64>() / 3.0;
        let last: f64 = full.losses[9..].iter().sum::<f64>() / 3.0;
        eprintln!("loss {first:.4} → {last:.4}: {:?}", full.losses);
        assert!(
            last < first * 0.9,
            "loss did not decrease: {:?}",
            full.losses
        );
        // base weights bit-identical; the adapters moved
        for (n, w) in &before {
            assert_eq!(diff(m.base_weight(n).unwrap(), w), 0.0, "{n} changed");
        }
        let adapter = WanLora::load(&full.adapter, &m).unwrap();
        let up = adapter.layers()["blocks.0.attn1.to_q"]
            .up()
            .as_tensor()
            .clone();
        assert!(
            up.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        );
        let csv = std::fs::read_to_string(&full.loss_csv).unwrap();
        assert_eq!(csv.lines().count(), 13);
        assert!(dir.path().join("full/adapter_config.json").is_file());

        // Same seed → same losses; interrupted at 6 then resumed to 12 → the same curve.
        let part = dir.path().join("part");
        let a = train(
            &mut expert(),
            &data,
            &small_cfg(6),
            &part,
            false,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(a.losses[..], full.losses[..6]);
        let again = train(
            &mut expert(),
            &data,
            &small_cfg(12),
            &part,
            false,
            &mut |_| {},
        );
        assert!(again.err().unwrap().to_string().contains("--resume"));
        let mut seen = Vec::new();
        let b = train(
            &mut expert(),
            &data,
            &small_cfg(12),
            &part,
            true,
            &mut |s| seen.push(s.step),
        )
        .unwrap();
        assert_eq!(b.resumed_from, Some(6));
        assert_eq!(seen, (7..=12).collect::<Vec<_>>());
        for (x, y) in b.losses.iter().zip(&full.losses) {
            assert!(
                (x - y).abs() <= 1e-6 * y.abs().max(1.0),
                "{:?} vs {:?}",
                b.losses,
                full.losses
            );
        }
        assert_eq!(
            std::fs::read_to_string(part.join("loss.csv"))
                .unwrap()
                .lines()
                .count(),
            13
        );
        // Changed settings are refused on resume.
        let mut other = small_cfg(14);
        other.learning_rate = 1e-3;
        let e = train(&mut expert(), &data, &other, &part, true, &mut |_| {});
        assert!(e.err().unwrap().to_string().contains("other settings"));
    }

    /// Recomputing each block's activations in the backward pass (the default) trains
    /// exactly as keeping the whole graph: same losses, same gradient norms, same adapter
    /// (dropout on, so the per-stage dropout streams are checked too).
    #[test]
    fn recompute_trains_as_the_whole_graph() {
        let data = examples(3);
        let dir = tempfile::tempdir().unwrap();
        let run = |recompute: bool| {
            let cfg = TrainConfig {
                recompute,
                ..small_cfg(4)
            };
            let mut norms = Vec::new();
            let out = dir.path().join(format!("r{recompute}"));
            let o = train(&mut expert(), &data, &cfg, &out, false, &mut |s| {
                norms.push(s.grad_norm)
            })
            .unwrap();
            (o, norms)
        };
        let (kept, kept_norms) = run(false);
        let (again, again_norms) = run(true);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1e-3);
        for (a, b) in kept.losses.iter().zip(&again.losses) {
            assert!(close(*a, *b), "{:?} vs {:?}", kept.losses, again.losses);
        }
        for (a, b) in kept_norms.iter().zip(&again_norms) {
            assert!(close(*a, *b), "{kept_norms:?} vs {again_norms:?}");
        }
        assert!(kept_norms.iter().all(|n| *n > 0.0));
        let m = expert();
        let (x, y) = (
            WanLora::load(&kept.adapter, &m).unwrap(),
            WanLora::load(&again.adapter, &m).unwrap(),
        );
        for (name, l) in x.layers() {
            let d = diff(l.up().as_tensor(), y.layers()[name].up().as_tensor()).max(diff(
                l.down().as_tensor(),
                y.layers()[name].down().as_tensor(),
            ));
            assert!(d < 1e-5, "{name}: {d}");
        }
    }

    #[test]
    fn expert_timestep_ranges_follow_the_boundary() {
        let mut c = TrainConfig::default();
        let all = c.sigmas();
        assert_eq!(all.len(), 1000);
        assert!((all[0] - 1.0).abs() < 1e-12);
        // shift 5: σ(u = 0.5) = 2.5 / 3
        assert!((all[500] - 2.5 / 3.0).abs() < 1e-12);
        c.timesteps = reelsmith_diffusion::TimestepRange::High;
        let hi = c.sigmas();
        c.timesteps = reelsmith_diffusion::TimestepRange::Low;
        let lo = c.sigmas();
        assert_eq!(hi.len() + lo.len(), 1000);
        assert_eq!(&all[..hi.len()], hi.as_slice());
        // FFGo's split: at the timestep closest to 900 (900.056, index 357 at shift 5),
        // which goes to the low-noise expert.
        assert_eq!(hi.len(), 357);
        assert!(hi.iter().all(|s| *s > 0.9) && (lo[0] - 0.9).abs() < 1e-4);
        assert!(lo[1..].iter().all(|s| *s < 0.9));
    }
}

/// FFGo's entity conditioning: the entity cross-attention trained with the LoRA.
mod entity_attn {
    use super::lora::{base_weights, diff, expert, randn};
    use super::*;
    use reelsmith_diffusion::{
        train, EntityAttnConfig, EntitySet, EntityTokens, LoraConfig, LoraNaming, TrainConfig,
        TrainExample, WanLora,
    };

    const E: usize = 10;

    fn set(seed: u64, n: usize) -> EntitySet {
        EntitySet {
            embeddings: randn(seed, &[n, E]),
            geometry: Some(
                ((randn(seed + 1, &[n, 3]) * 0.2).unwrap() + 0.5)
                    .unwrap()
                    .clamp(0f32, 1f32)
                    .unwrap(),
            ),
        }
    }

    fn ecfg() -> EntityAttnConfig {
        EntityAttnConfig {
            entity_dim: E,
            every: 1,
            heads: 2,
            ..Default::default()
        }
    }

    fn inputs(b: usize) -> (Tensor, Tensor, Tensor) {
        (
            randn(1, &[b, 36, 2, 4, 4]),
            Tensor::from_vec(vec![700f32; b], b, &Device::Cpu).unwrap(),
            randn(2, &[b, 6, 32]),
        )
    }

    fn adapter(m: &WanTransformer, random: bool) -> WanLora {
        let mut cfg = LoraConfig::new(4, 4.0);
        cfg.targets = vec!["blocks.*".into()];
        let mut lora = WanLora::new(m, &cfg, 3).unwrap();
        lora.add_entity_attention(m, &ecfg(), 3).unwrap();
        if random {
            for (i, v) in lora.vars().iter().enumerate() {
                let t = (randn(200 + i as u64, v.dims()) * 0.3).unwrap();
                v.set(&t).unwrap();
            }
        }
        lora
    }

    #[test]
    fn starts_as_the_base_masks_padding_and_round_trips() {
        let mut m = expert();
        let (x, t, c) = inputs(1);
        let base = m.forward(&x, &t, &c).unwrap();
        let two = set(10, 2);
        let tok = EntityTokens::batch(&[&two], E, &Device::Cpu).unwrap();

        // Fresh: zero output projections (and zero LoRA up) ⇒ the base model.
        let fresh = adapter(&m, false);
        let ea = fresh.entity_attention().unwrap();
        assert_eq!(ea.block_indices(), vec![0, 1]);
        // input projection + geometry + 2 blocks × (q, v, out with biases, k without)
        let d = 24;
        assert_eq!(
            ea.parameter_count(),
            E * d + d + 3 * d + 2 * (3 * d * d + 2 * d + d * d + d)
        );
        assert_eq!(
            ea.parameter_count() as u64,
            ecfg().parameter_count(m.config(), E)
        );
        m.add_lora(&fresh, 1.0).unwrap();
        let start = m.forward_with_entities(&x, &t, &c, Some(&tok)).unwrap();
        assert!(diff(&start, &base) <= 1e-6, "{}", diff(&start, &base));

        // Trained (random) values: the entities change the output.
        let lora = adapter(&m, true);
        m.add_lora(&lora, 1.0).unwrap();
        let plain = m.forward(&x, &t, &c).unwrap();
        let with = m.forward_with_entities(&x, &t, &c, Some(&tok)).unwrap();
        assert!(diff(&with, &plain) > 1e-3, "{}", diff(&with, &plain));
        // Other entities, another output.
        let other = EntityTokens::batch(&[&set(30, 2)], E, &Device::Cpu).unwrap();
        let with_other = m.forward_with_entities(&x, &t, &c, Some(&other)).unwrap();
        assert!(diff(&with_other, &with) > 1e-4);

        // A padded slot changes nothing; nor does batching with an example that has more
        // entities; zero entities is the adapter without entity attention.
        let mut padded = tok.clone();
        padded.embeddings = Tensor::cat(&[&tok.embeddings, &randn(40, &[1, 1, E])], 1).unwrap();
        padded.geometry = Some(
            Tensor::cat(&[tok.geometry.as_ref().unwrap(), &randn(41, &[1, 1, 3])], 1).unwrap(),
        );
        padded.mask = Some(Tensor::new(&[[1f32, 1.0, 0.0]], &Device::Cpu).unwrap());
        let p = m.forward_with_entities(&x, &t, &c, Some(&padded)).unwrap();
        assert!(diff(&p, &with) <= 1e-6, "{}", diff(&p, &with));
        let four = set(50, 4);
        let (x2, t2, c2) = (
            Tensor::cat(&[&x, &randn(5, &[1, 36, 2, 4, 4])], 0).unwrap(),
            Tensor::new(&[700f32, 300.0], &Device::Cpu).unwrap(),
            Tensor::cat(&[&c, &randn(6, &[1, 6, 32])], 0).unwrap(),
        );
        let both = EntityTokens::batch(&[&two, &four], E, &Device::Cpu).unwrap();
        let b2 = m.forward_with_entities(&x2, &t2, &c2, Some(&both)).unwrap();
        assert!(diff(&b2.narrow(0, 0, 1).unwrap(), &with) <= 1e-5);
        let none = set(60, 0);
        let z = EntityTokens::batch(&[&none], E, &Device::Cpu).unwrap();
        let zero = m.forward_with_entities(&x, &t, &c, Some(&z)).unwrap();
        assert!(diff(&zero, &plain) <= 1e-6, "{}", diff(&zero, &plain));
        // Scale 0: the base model exactly.
        m.add_lora(&lora, 0.0).unwrap();
        let off = m.forward_with_entities(&x, &t, &c, Some(&tok)).unwrap();
        assert!(diff(&off, &base) <= 1e-6);
        // Merging leaves the entity attention in place.
        m.add_lora(&lora, 1.0).unwrap();
        m.merge_lora().unwrap();
        let merged = m.forward_with_entities(&x, &t, &c, Some(&tok)).unwrap();
        assert!(diff(&merged, &with) < 1e-5);

        // Save → load ≡, in both namings; the entity tensors under their own prefix.
        let dir = tempfile::tempdir().unwrap();
        for naming in [LoraNaming::Peft, LoraNaming::Kohya] {
            let p = dir.path().join(format!("{naming:?}.safetensors"));
            lora.save(&p, naming).unwrap();
            assert_eq!(WanLora::entity_config_of(&p).unwrap(), Some(ecfg()));
            let loaded = WanLora::load(&p, &m).unwrap();
            let mut m2 = expert();
            m2.add_lora(&loaded, 1.0).unwrap();
            let again = m2.forward_with_entities(&x, &t, &c, Some(&tok)).unwrap();
            assert_eq!(diff(&again, &with), 0.0, "{naming:?}");
            // The LoRA part alone (the keys outside entity_attn.) is a plain adapter.
            let all =
                reelsmith_diffusion::candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
            let n_entity = all.keys().filter(|k| k.starts_with("entity_attn.")).count();
            assert_eq!(
                n_entity,
                lora.entity_attention().unwrap().named_vars().len()
            );
            let lora_only: HashMap<String, Tensor> = all
                .into_iter()
                .filter(|(k, _)| !k.starts_with("entity_attn."))
                .collect();
            let q = dir.path().join("plain.safetensors");
            reelsmith_diffusion::candle_core::safetensors::save(&lora_only, &q).unwrap();
            assert_eq!(WanLora::entity_config_of(&q).unwrap(), None);
            let plain_loaded = WanLora::load(&q, &m).unwrap();
            assert!(plain_loaded.entity_attention().is_none());
            let mut m3 = expert();
            m3.add_lora(&plain_loaded, 1.0).unwrap();
            assert_eq!(diff(&m3.forward(&x, &t, &c).unwrap(), &plain), 0.0);
        }
        // Entities of another width are refused with the fix.
        let wide = EntitySet {
            embeddings: randn(70, &[2, E + 1]),
            geometry: None,
        };
        let e = EntityTokens::batch(&[&wide], E, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("embedding model"), "{e}");
        let bad = EntityTokens {
            embeddings: randn(71, &[1, 2, E + 1]),
            geometry: None,
            mask: None,
        };
        let e = m
            .forward_with_entities(&x, &t, &c, Some(&bad))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("entity embeddings"), "{e}");
    }

    fn examples() -> Vec<TrainExample> {
        super::lora::examples(3)
            .into_iter()
            .enumerate()
            .map(|(i, mut e)| {
                // 1, 2 and 3 entities: batches are padded.
                e.entities = Some(set(300 + 10 * i as u64, i + 1));
                e
            })
            .collect()
    }

    fn cfg(steps: usize) -> TrainConfig {
        let mut lora = LoraConfig::new(4, 4.0);
        lora.targets = WanLora::FFGO_TARGETS
            .iter()
            .map(|s| s.to_string())
            .collect();
        TrainConfig {
            lora,
            learning_rate: 2e-2,
            steps,
            batch_size: 2,
            save_every: 2,
            seed: 9,
            entity_attn: Some(EntityAttnConfig {
                every: 1,
                heads: 2,
                ..Default::default()
            }),
            ..TrainConfig::default()
        }
    }

    /// Recompute with entity attention (the entity tokens are shared by the blocks, so
    /// their gradients are summed over the blocks): the same training as the whole graph.
    #[test]
    fn recompute_with_entities_trains_as_the_whole_graph() {
        let data = examples();
        let dir = tempfile::tempdir().unwrap();
        let run = |recompute: bool| {
            let c = TrainConfig {
                recompute,
                ..cfg(3)
            };
            let out = dir.path().join(format!("r{recompute}"));
            train(&mut expert(), &data, &c, &out, false, &mut |_| {}).unwrap()
        };
        let (kept, again) = (run(false), run(true));
        for (a, b) in kept.losses.iter().zip(&again.losses) {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs().max(1e-3),
                "{kept:?} vs {again:?}"
            );
        }
        let m = expert();
        let x = WanLora::load(&kept.adapter, &m).unwrap();
        let y = WanLora::load(&again.adapter, &m).unwrap();
        let ys: HashMap<String, Tensor> = y
            .entity_attention()
            .unwrap()
            .tensors()
            .into_iter()
            .collect();
        for (name, t) in x.entity_attention().unwrap().tensors() {
            let d = diff(&t, &ys[&name]);
            assert!(d < 1e-5, "{name}: {d}");
        }
    }

    #[test]
    fn trains_with_the_lora_and_resumes_the_same_curve() {
        let data = examples();
        let dir = tempfile::tempdir().unwrap();
        let mut m = expert();
        let before = base_weights(&m);
        let full = train(
            &mut m,
            &data,
            &cfg(6),
            &dir.path().join("full"),
            false,
            &mut |_| {},
        )
        .unwrap();
        eprintln!("losses with entity attention: {:?}", full.losses);
        assert!(full.losses.iter().all(|l| l.is_finite()));
        for (n, w) in &before {
            assert_eq!(diff(m.base_weight(n).unwrap(), w), 0.0, "{n} changed");
        }
        // The entity attention trained: its output projections left zero, and its input
        // projection moved from the seeded start.
        let trained = WanLora::load(&full.adapter, &m).unwrap();
        let ea = trained.entity_attention().expect("saved with the adapter");
        assert_eq!(ea.entity_dim(), E);
        let mut fresh = WanLora::new(&m, &cfg(6).lora, 9).unwrap();
        fresh
            .add_entity_attention(
                &m,
                &EntityAttnConfig {
                    entity_dim: E,
                    ..cfg(6).entity_attn.unwrap()
                },
                9,
            )
            .unwrap();
        let start: HashMap<String, Tensor> = fresh
            .entity_attention()
            .unwrap()
            .tensors()
            .into_iter()
            .collect();
        for (name, t) in ea.tensors() {
            let moved = diff(&t, &start[&name]);
            eprintln!("{name}: moved by up to {moved:.3e}");
            // Weight decay alone moves a weight by at most 6 · lr · wd · |w| ≈ 4e-3 here;
            // AdamW steps move it by about lr = 2e-2 per step.
            if name.ends_with("weight") {
                assert!(moved > 1e-2, "{name} did not train ({moved})");
            }
        }
        let out_w = ea
            .tensors()
            .into_iter()
            .find(|(n, _)| n == "entity_attn.blocks.0.to_out.weight")
            .unwrap()
            .1;
        assert!(
            out_w
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        );

        // Interrupted at 2, resumed to 6: the same losses.
        let part = dir.path().join("part");
        train(&mut expert(), &data, &cfg(2), &part, false, &mut |_| {}).unwrap();
        let b = train(&mut expert(), &data, &cfg(6), &part, true, &mut |_| {}).unwrap();
        assert_eq!(b.resumed_from, Some(2));
        for (x, y) in b.losses.iter().zip(&full.losses) {
            assert!(
                (x - y).abs() <= 1e-6 * y.abs().max(1.0),
                "{:?} vs {:?}",
                b.losses,
                full.losses
            );
        }
        // Examples without entities are refused with the fix.
        let mut bare = data.clone();
        bare[1].entities = None;
        let e = train(
            &mut expert(),
            &bare,
            &cfg(1),
            &dir.path().join("bare"),
            false,
            &mut |_| {},
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("finetune prepare"), "{e}");
    }
}

mod prepare {
    use super::*;
    use reelsmith_diffusion::cache::{read_cache, write_example, CacheEntry, CacheIndex};
    use reelsmith_diffusion::{train, LoraConfig, TrainConfig, WanLora};

    /// Encoding a clip with its composed first frame, caching it, training on the cache,
    /// and sampling with the adapter merged (and at scale 0: the base model exactly).
    #[test]
    fn encode_cache_train_and_sample_with_the_lora() {
        let dir = tempfile::tempdir().unwrap();
        let mut pipe =
            WanPipeline::load(&fixtures().join("wan22_i2v"), PipelineOptions::default()).unwrap();
        let frames: Vec<image::RgbImage> = (0..5)
            .map(|i| {
                image::RgbImage::from_fn(16, 16, |x, y| {
                    image::Rgb([(x * 9 + i * 30) as u8, (y * 9) as u8, 90])
                })
            })
            .collect();
        let composed = image::RgbImage::from_pixel(16, 16, image::Rgb([200, 40, 40]));
        let ex = pipe
            .encode_training_example(
                "clip.mp4",
                &frames,
                &composed,
                "ad23r2 the camera view suddenly changes. A red box.",
                (16, 16),
                4,
            )
            .unwrap();
        assert_eq!(ex.latents.dims(), &[16, 2, 2, 2]);
        assert_eq!(ex.condition.as_ref().unwrap().dims(), &[20, 2, 2, 2]);
        assert_eq!(ex.context.dims()[1], 32);
        // Frames 0-3 replaced by the composed frame: the first latent frame encodes it alone.
        let other: Vec<image::RgbImage> = frames.iter().rev().cloned().collect();
        let ex2 = pipe
            .encode_training_example(
                "clip2.mp4",
                &other,
                &composed,
                "ad23r2 the camera view suddenly changes. A red box.",
                (16, 16),
                4,
            )
            .unwrap();
        let l0 = |e: &reelsmith_diffusion::TrainExample| e.latents.narrow(1, 0, 1).unwrap();
        assert_eq!(max_diff(&l0(&ex), &l0(&ex2)).0, 0.0);
        // Wrong frame counts are refused.
        assert!(pipe
            .encode_training_example("x", &frames[..4], &composed, "x", (16, 16), 4)
            .is_err());

        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        write_example(&cache.join("example_000000.safetensors"), &ex).unwrap();
        let index = CacheIndex {
            version: reelsmith_diffusion::cache::CACHE_VERSION,
            base: fixtures().join("wan22_i2v"),
            frames: 5,
            width: 16,
            height: 16,
            transition_phrase: reelsmith_diffusion::dataset::TRANSITION_PHRASE.into(),
            examples: vec![CacheEntry {
                name: "clip.mp4".into(),
                file: "example_000000.safetensors".into(),
                caption: "c".into(),
                frames: 5,
            }],
            skipped: vec![],
            entities: None,
        };
        std::fs::write(
            cache.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        let (idx, data) = read_cache(&cache, &Device::Cpu).unwrap();
        assert_eq!(idx, index);
        assert_eq!(max_diff(&data[0].latents, &ex.latents).0, 0.0);

        let mut m = WanTransformer::load(
            &fixtures().join("wan22_i2v/transformer"),
            None,
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        let mut lora = LoraConfig::new(4, 4.0);
        lora.targets = WanLora::FFGO_TARGETS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cfg = TrainConfig {
            lora,
            steps: 3,
            learning_rate: 5e-2,
            save_every: 0,
            ..TrainConfig::default()
        };
        let out = train(
            &mut m,
            &data,
            &cfg,
            &dir.path().join("adapter"),
            false,
            &mut |_| {},
        )
        .unwrap();

        let mut req = GenerateRequest::new("A red box.");
        req.image = Some(composed.clone());
        req.width = 16;
        req.height = 16;
        req.frames = 5;
        req.steps = 2;
        req.seed = 1;
        let base = pipe.generate(&req, &mut |_| {}).unwrap();
        pipe.set_lora(Expert::High, Some((out.adapter.clone(), 0.0)));
        let zero = pipe.generate(&req, &mut |_| {}).unwrap();
        assert!(max_diff(&zero.latents, &base.latents).0 < 1e-6);
        pipe.set_lora(Expert::High, Some((out.adapter.clone(), 1.0)));
        pipe.set_lora(Expert::Low, Some((out.adapter.clone(), 1.0)));
        let with = pipe.generate(&req, &mut |_| {}).unwrap();
        assert!(max_diff(&with.latents, &base.latents).0 > 1e-5);
    }
}

/// Writes an adapter trained here for `benches/lora_vs_diffusers.py` (run by that script).
#[test]
#[ignore = "run by benches/lora_vs_diffusers.py"]
fn lora_export() {
    use reelsmith_diffusion::{train, LoraConfig, TrainConfig, WanLora};
    let out = PathBuf::from(std::env::var("REELSMITH_LORA_EXPORT").expect("REELSMITH_LORA_EXPORT"));
    let _ = std::fs::remove_dir_all(&out);
    let mut m = WanTransformer::load(
        &fixtures().join("wan22_i2v/transformer"),
        None,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let mut lora = LoraConfig::new(4, 8.0);
    lora.targets = WanLora::FFGO_TARGETS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cfg = TrainConfig {
        lora,
        steps: 20,
        learning_rate: 5e-2,
        save_every: 0,
        ..TrainConfig::default()
    };
    let data = lora::examples(3);
    let r = train(&mut m, &data, &cfg, &out, false, &mut |_| {}).unwrap();
    eprintln!(
        "loss {:?} → adapter {}",
        r.losses.last(),
        r.adapter.display()
    );
}
