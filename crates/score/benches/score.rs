//! Frame scoring throughput at 720p, against the cost of decoding a 720p frame.
//!
//! `cargo bench -p reelsmith-score` (criterion reports frames per second with
//! `Throughput::Elements(1)`). The frame is a committed 256×144 Big Buck Bunny fixture
//! upscaled to 1280×720; decoding references are the same frame encoded as JPEG (q90) and
//! PNG and decoded with the `image` crate (video decoding by ffmpeg is compared in
//! `crates/score/README.md`).

use std::hint::black_box;
use std::io::Cursor;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use reelsmith_core::Embeddings;
use reelsmith_score::*;

fn frame_720p() -> image::RgbImage {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/frames/bbb_normal_f300.png"
    );
    let small = image::open(path).expect("fixture frame").to_rgb8();
    image::imageops::resize(&small, 1280, 720, image::imageops::FilterType::CatmullRom)
}

fn bench(c: &mut Criterion) {
    let rgb = frame_720p();
    let gray = rgb_to_gray(&rgb);
    let params = ExposureParams::default();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&rgb)
        .unwrap();
    let mut png = Vec::new();
    rgb.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();

    let mut g = c.benchmark_group("720p frame");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rgb_to_gray", |b| b.iter(|| rgb_to_gray(black_box(&rgb))));
    g.bench_function("laplacian_variance (gray)", |b| {
        b.iter(|| laplacian_variance(black_box(&gray)).unwrap())
    });
    g.bench_function("exposure (direct ramp sums)", |b| {
        b.iter(|| params.measure_luma(black_box(gray.as_raw())))
    });
    g.bench_function("exposure (via 256-bin histogram)", |b| {
        b.iter(|| params.penalty(&LumaHistogram::from_gray(black_box(&gray))))
    });
    g.bench_function("measures (rgb: gray + sharpness + exposure)", |b| {
        b.iter(|| FrameMeasures::from_rgb(black_box(&rgb), &params).unwrap())
    });
    g.bench_function("decode jpeg q90 (image crate)", |b| {
        b.iter(|| {
            image::load_from_memory_with_format(black_box(&jpeg), image::ImageFormat::Jpeg).unwrap()
        })
    });
    g.bench_function("decode png (image crate)", |b| {
        b.iter(|| {
            image::load_from_memory_with_format(black_box(&png), image::ImageFormat::Png).unwrap()
        })
    });
    g.finish();

    // Model side on given embeddings: heads and the composite over a 100-frame video.
    let n = 100;
    let emb: Vec<f32> = (0..n * 768)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let emb = Embeddings::new(emb, 768).unwrap();
    let mlp = AestheticHead::from_layers(vec![
        (vec![0.001; 1024 * 768], vec![0.0; 1024]),
        (vec![0.001; 128 * 1024], vec![0.0; 128]),
        (vec![0.001; 64 * 128], vec![0.0; 64]),
        (vec![0.001; 16 * 64], vec![0.0; 16]),
        (vec![0.001; 16], vec![5.0]),
    ])
    .unwrap();
    let prompts =
        Embeddings::new(emb.row(0).iter().chain(emb.row(1)).copied().collect(), 768).unwrap();
    let measures: Vec<FrameMeasures> = (0..n)
        .map(|i| FrameMeasures {
            sharpness_var: (i * 37 % 500) as f64,
            exposure: Exposure {
                dark_fraction: 0.0,
                bright_fraction: 0.0,
                penalty: 0.0,
            },
        })
        .collect();
    let mut g = c.benchmark_group("per frame, model side");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("improved MLP head (768-d)", |b| {
        b.iter(|| mlp.predict_all(black_box(&emb)).unwrap())
    });
    g.bench_function("composite with head + 2 prompts", |b| {
        let inputs = ModelInputs {
            image_embeddings: &emb,
            model_id: None,
            head: Some(&mlp),
            prompts: Some(&prompts),
        };
        b.iter(|| {
            score_frames(black_box(&measures), Some(&inputs), &ScoreConfig::default()).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
