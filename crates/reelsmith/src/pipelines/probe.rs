//! A video's facts: size as displayed, frame rate, exact frame count, duration, rotation,
//! codec and audio.
//!
//! ```no_run
//! use reelsmith::pipelines::probe::{self, ProbeConfig};
//! use reelsmith::progress::NoProgress;
//!
//! let info = probe::run("talk.mp4".as_ref(), &ProbeConfig::default(), &NoProgress)?;
//! println!("{}x{} at {:.3} fps, {:?} frames", info.width, info.height, info.fps, info.frames);
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// Settings of the probe pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// Report the container's declared frame count instead of counting the frames (which
    /// demuxes the whole file).
    pub fast: bool,
}

/// What `probe` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    /// The file.
    #[serde(serialize_with = "reelsmith_core::paths::lossy")]
    pub path: PathBuf,
    /// Width as displayed (rotation applied).
    pub width: u32,
    /// Height as displayed.
    pub height: u32,
    /// Coded width (before rotation).
    #[serde(skip)]
    pub coded_width: u32,
    /// Coded height (before rotation).
    #[serde(skip)]
    pub coded_height: u32,
    /// Average frame rate.
    pub fps: f64,
    /// Number of frames: counted, or the declared one with `fast` (`None` when unknown).
    pub frames: Option<u64>,
    /// Duration in seconds.
    pub duration: f64,
    /// Clockwise rotation applied for display, in degrees.
    pub rotation: u32,
    /// Video codec name.
    pub codec: String,
    /// Whether the file has an audio stream.
    pub has_audio: bool,
}

/// Probes `video`.
pub fn run(
    video: &Path,
    config: &ProbeConfig,
    progress: &dyn Progress,
) -> Result<ProbeReport, Error> {
    let v = reelsmith_decode::open(video)?;
    let frames = if config.fast {
        v.info().declared_frames
    } else {
        let _stage = StageGuard::start(progress, Stage::Analyse, None);
        Some(v.count_frames()?)
    };
    let i = v.info();
    Ok(ProbeReport {
        path: i.path.clone(),
        width: i.width,
        height: i.height,
        coded_width: i.coded_width,
        coded_height: i.coded_height,
        fps: i.fps,
        frames,
        duration: i.duration,
        rotation: i.rotation,
        codec: i.codec.clone(),
        has_audio: i.has_audio,
    })
}
