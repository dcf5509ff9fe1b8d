//! Probing, decoding, seeking and cutting arbitrary bytes: any input gives a typed error or
//! frames, never a panic, a hang or an abort.
//!
//! The first byte chooses the sampling, the scale and whether to seek and cut a clip; the
//! rest is the file. Seeds: `fuzz/seeds/probe_decode` (`benches/fuzz.sh` makes them).

#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use reelsmith_decode::{ClipMode, ClipOptions, DecodeOptions, Sampling, Scale};

/// Frames decoded at most per input (a long valid video would otherwise time out).
const MAX_FRAMES: usize = 48;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    // A file per process (the decoder reads paths); written whole for every input.
    let path = std::env::temp_dir().join(format!("reelsmith-fuzz-{}.bin", std::process::id()));
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(bytes).is_err() {
        return;
    }
    drop(f);
    let Ok(video) = reelsmith_decode::open(&path) else {
        return;
    };
    let info = video.info().clone();
    assert!(info.width > 0 && info.height > 0, "{info:?}");
    let sampling = match mode & 3 {
        0 => Sampling::All,
        1 => Sampling::EveryNth(u32::from(mode >> 4) + 1),
        2 => Sampling::Fps(f64::from(mode >> 4) / 4.0 + 0.25),
        _ => Sampling::Fps(1.0),
    };
    let scale = match (mode >> 2) & 3 {
        0 => Scale::Original,
        1 => Scale::Height(u32::from(mode >> 4) * 4 + 2),
        2 => Scale::MaxHeight(24),
        _ => Scale::Exact {
            width: 16,
            height: 9,
        },
    };
    let opts = DecodeOptions::new().sampling(sampling).scale(scale);
    let frames = if mode & 0x40 != 0 {
        video.frames_from(info.duration / 2.0, &opts)
    } else {
        video.frames(&opts)
    };
    if let Ok(frames) = frames {
        for frame in frames.take(MAX_FRAMES) {
            match frame {
                Ok(f) => assert!(f.time.is_finite(), "frame time {}", f.time),
                Err(_) => break,
            }
        }
    }
    if mode & 0x80 != 0 {
        let _ = video.count_packets();
        let out = path.with_extension("mp4");
        let opts = ClipOptions {
            mode: if mode & 0x10 != 0 {
                ClipMode::StreamCopy
            } else {
                ClipMode::Reencode
            },
            ..ClipOptions::default()
        };
        let end = info.duration.clamp(0.04, 2.0);
        let _ = reelsmith_decode::export_clip(&video, 0.0, end, &out, &opts);
        let _ = std::fs::remove_file(&out);
    }
});
