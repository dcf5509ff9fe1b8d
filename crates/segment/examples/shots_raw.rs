//! Evaluation harness: shot detection on raw `rgb24` frames, without the decode crate.
//!
//! ```text
//! ffmpeg -i VIDEO -fps_mode passthrough -vf scale=64:36 -f rawvideo -pix_fmt rgb24 - \
//!   | cargo run --release -p reelsmith-segment --example shots_raw -- 64 36 FPS
//! ```
//! Prints the detection as JSON (transitions and shots).

use std::io::Read;

use reelsmith_embed::{Embedder, PixelEmbedder};
use reelsmith_segment::shots::{detect_shots, ShotOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: shots_raw WIDTH HEIGHT FPS < frames.rgb".into());
    }
    let (w, h): (u32, u32) = (args[1].parse()?, args[2].parse()?);
    let fps: f64 = args[3].parse()?;
    let mut raw = Vec::new();
    std::io::stdin().read_to_end(&mut raw)?;
    let size = (w * h * 3) as usize;
    let embedder = PixelEmbedder::default();
    let frames: Vec<image::RgbImage> = raw
        .chunks_exact(size)
        .map(|c| image::RgbImage::from_raw(w, h, c.to_vec()).expect("exact chunk"))
        .collect();
    let emb = embedder.embed_images(&frames)?;
    let det = detect_shots(&emb, &ShotOptions::for_fps(fps));
    println!("{}", serde_json::to_string(&det)?);
    Ok(())
}
