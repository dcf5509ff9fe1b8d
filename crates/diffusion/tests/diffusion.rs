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
