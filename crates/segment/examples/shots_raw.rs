//! Evaluation harness: shot detection on raw `rgb24` frames, without the decode crate.
//!
//! ```text
//! ffmpeg -i VIDEO -fps_mode passthrough -vf scale=64:36 -f rawvideo -pix_fmt rgb24 - \
//!   | cargo run --release -p reelsmith-segment --example shots_raw -- 64 36 FPS
//! ```
//! Prints the detection as JSON (transitions and shots). An optional fourth argument picks
//! the method: `shots` (default, [`detect_shots`]), or for comparison `seams` (successor
//! Euclidean distances, min-max normalised, rolling mean + 2·std) and `surveyor` (the same
//! distances against the surveyor's adapted thresholds); both with a 0.25 s minimum length.

use std::io::Read;

use reelsmith_embed::{Embedder, PixelEmbedder};
use reelsmith_segment::seams::{seams, seams_with_thresholds, SeamOptions};
use reelsmith_segment::shots::{detect_shots, ShotOptions, Transition, TransitionKind};
use reelsmith_segment::surveyor::{survey, survey_thresholds, SurveyorOptions};
use reelsmith_segment::{min_max_normalize, successor_distances, Metric};

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
    let min_len = ((0.25 * fps).round() as usize).max(1);
    let as_transitions = |starts: Vec<usize>| -> Vec<Transition> {
        starts
            .into_iter()
            .map(|frame| Transition {
                frame,
                kind: TransitionKind::Cut,
                span: None,
                score: 0.0,
            })
            .collect()
    };
    let method = args.get(4).map(String::as_str).unwrap_or("shots");
    let json = match method {
        "seams" => {
            let mut d = successor_distances(&emb, Metric::Euclidean);
            min_max_normalize(&mut d);
            let opts = SeamOptions {
                min_len,
                ..Default::default()
            };
            serde_json::json!({ "transitions": as_transitions(seams(&d, &opts)) })
        }
        "surveyor" => {
            let d = successor_distances(&emb, Metric::Euclidean);
            let windows = survey(&emb, &SurveyorOptions::for_fps(fps));
            let thr = survey_thresholds(&windows, emb.len());
            let starts = seams_with_thresholds(&d, &thr, min_len, None);
            serde_json::json!({ "transitions": as_transitions(starts), "windows": windows })
        }
        _ => serde_json::to_value(detect_shots(&emb, &ShotOptions::for_fps(fps)))?,
    };
    println!("{json}");
    Ok(())
}
