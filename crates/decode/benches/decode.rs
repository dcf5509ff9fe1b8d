//! Sampled decoding throughput: every frame, and 3 fps scaled to 720p.
//!
//! Input: $REELSMITH_BENCH_VIDEO, else $REELSMITH_SHARED/videos/bigbuckbunny.mp4 (1280x720
//! H.264), else a synthetic 720p clip written with video-rs. For the comparison with the
//! ffmpeg command line in one run, see benches/decode_compare.py.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use reelsmith_decode::{open, DecodeOptions, Sampling, Scale};

fn input() -> (PathBuf, Option<tempfile::TempDir>) {
    if let Some(p) = std::env::var_os("REELSMITH_BENCH_VIDEO") {
        return (PathBuf::from(p), None);
    }
    if let Some(s) = std::env::var_os("REELSMITH_SHARED") {
        let p = PathBuf::from(s).join("videos/bigbuckbunny.mp4");
        if p.exists() {
            return (p, None);
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("synthetic720.mp4");
    video_rs::init().expect("ffmpeg");
    let settings = video_rs::encode::Settings::preset_h264_yuv420p(1280, 720, false);
    let mut enc = video_rs::Encoder::new(path.as_path(), settings).expect("encoder");
    for k in 0..150usize {
        let frame = ndarray::Array3::<u8>::from_shape_fn((720, 1280, 3), |(y, x, c)| {
            ((x * 3 + y * 2 + k * 5 + c * 40) % 256) as u8
        });
        enc.encode(&frame, video_rs::Time::from_units(k, 30))
            .expect("encode");
    }
    enc.finish().expect("finish");
    (path, Some(dir))
}

fn bench(c: &mut Criterion) {
    let (path, _keep) = input();
    let video = open(&path).expect("bench video opens");
    let frames = video.count_frames().expect("count");
    let mut g = c.benchmark_group("decode");
    g.sample_size(10);
    g.throughput(Throughput::Elements(frames));
    g.bench_function("every_frame_rgb", |b| {
        b.iter(|| {
            let n = video.frames(&DecodeOptions::new()).unwrap().count();
            assert_eq!(n as u64, frames);
        })
    });
    g.bench_function("fps3_720p", |b| {
        let opts = DecodeOptions::new()
            .sampling(Sampling::Fps(3.0))
            .scale(Scale::Height(720));
        b.iter(|| video.frames(&opts).unwrap().count())
    });
    g.bench_function("count_only", |b| b.iter(|| video.count_frames().unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
