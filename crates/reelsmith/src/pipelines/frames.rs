//! Sampled frames of a video as JPEG files: `frame_000001.jpg`... plus `frames.json`, like
//! `ffmpeg -vf fps=F,scale=-2:H` (the same frames, see the decode crate's sampling rules).
//!
//! ```no_run
//! use reelsmith::pipelines::frames::{self, FramesConfig, FramesInput};
//! use reelsmith::progress::NoProgress;
//!
//! let config = FramesConfig { fps: Some(2.0), height: Some(360), ..Default::default() };
//! let report = frames::run(&FramesInput::new("talk.mp4", Some("frames/")), &config, &NoProgress)?;
//! println!("{} frames of {}x{}", report.frames.len(), report.width, report.height);
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use reelsmith_decode::{self as decode, DecodeOptions, ImageFormat, Sampling, Scale};
use serde::{Deserialize, Serialize};

use crate::error::num;
use crate::output::OutputDir;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// Settings of the frames pipeline. Without `fps` or `every`, every frame is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FramesConfig {
    /// Keep about this many frames per second, chosen by timestamp (`ffmpeg -vf fps=F`).
    pub fps: Option<f64>,
    /// Keep every Nth decoded frame (0, N, 2N...); ignored when `fps` is set.
    pub every: Option<u32>,
    /// Scale to this height keeping the aspect ratio, even width (`scale=-2:H`).
    pub height: Option<u32>,
    /// JPEG quality, 1..=100 (default 90).
    pub quality: u8,
}

impl Default for FramesConfig {
    fn default() -> Self {
        Self {
            fps: None,
            every: None,
            height: None,
            quality: 90,
        }
    }
}

impl FramesConfig {
    /// The frames kept.
    pub fn sampling(&self) -> Sampling {
        match (self.fps, self.every) {
            (Some(f), _) => Sampling::Fps(f),
            (None, Some(n)) => Sampling::EveryNth(n),
            (None, None) => Sampling::All,
        }
    }

    /// Checks every range; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(f) = self.fps {
            if !(f.is_finite() && f > 0.0 && f <= 1000.0) {
                return Err(Error::config(
                    "fps",
                    format!("{} is not in (0, 1000]", num(f)),
                ));
            }
        }
        if self.every == Some(0) {
            return Err(Error::config("every", "0: keep every 1st frame or more"));
        }
        if let Some(h) = self.height {
            if !(2..=16384).contains(&h) {
                return Err(Error::config("height", format!("{h} is not in 2..=16384")));
            }
        }
        if !(1..=100).contains(&self.quality) {
            return Err(Error::config(
                "quality",
                format!("{} is not in 1..=100", self.quality),
            ));
        }
        Ok(())
    }
}

/// The video and, optionally, the output folder (without one, frames are decoded and
/// dropped, for timing).
#[derive(Debug, Clone, Copy)]
pub struct FramesInput<'a> {
    /// The video file.
    pub video: &'a Path,
    /// The output folder (created when missing).
    pub output: Option<&'a Path>,
    /// Replace a folder that holds files this pipeline did not write (default false: such a
    /// folder is refused). A folder of an earlier run of the same pipeline is always
    /// reused, its stale files removed.
    pub overwrite: bool,
}

impl<'a> FramesInput<'a> {
    /// The input for `video`, writing into `output` when given.
    pub fn new(
        video: &'a (impl AsRef<Path> + ?Sized),
        output: Option<&'a (impl AsRef<Path> + ?Sized)>,
    ) -> Self {
        Self {
            video: video.as_ref(),
            output: output.map(AsRef::as_ref),
            overwrite: false,
        }
    }

    /// Sets [`FramesInput::overwrite`].
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// One kept frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameEntry {
    /// 0-based decoded frame index.
    pub index: u64,
    /// Presentation time in seconds.
    pub time: f64,
    /// Its image's file name (empty without an output folder).
    pub path: String,
}

/// What a frames run kept (also `frames.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FramesReport {
    /// The video.
    #[serde(serialize_with = "reelsmith_core::paths::lossy")]
    pub video: PathBuf,
    /// Its average frame rate.
    pub fps: f64,
    /// The sampling, as text.
    pub sampling: String,
    /// Width of the written frames.
    pub width: u32,
    /// Height of the written frames.
    pub height: u32,
    /// The kept frames in order.
    pub frames: Vec<FrameEntry>,
}

/// Decodes the sampled frames on all cores and writes them (when an output folder is
/// given) as `frame_000001.jpg`... with `frames.json`.
///
/// Frames are written where they decode under temporary names and renamed in order once
/// every chunk is done, so a failure leaves no numbered file behind.
pub fn run(
    input: &FramesInput<'_>,
    config: &FramesConfig,
    progress: &dyn Progress,
) -> Result<FramesReport, Error> {
    config.validate()?;
    let video = decode::open(input.video)?;
    let info = video.info().clone();
    let sampling = config.sampling();
    let scale = config.height.map_or(Scale::Original, Scale::Height);
    let opts = DecodeOptions::new().sampling(sampling).scale(scale);
    let out = input
        .output
        .map(|dir| OutputDir::begin(dir, "frames", input.overwrite)?.inputs(&[input.video]))
        .transpose()?;
    let expected = match sampling {
        Sampling::All => info.declared_frames,
        Sampling::EveryNth(n) => info
            .declared_frames
            .map(|f| f.div_ceil(u64::from(n.max(1)))),
        Sampling::Fps(f) => Some((info.duration * f).ceil() as u64),
    };
    let stage = StageGuard::start(progress, Stage::Decode, expected);
    let (width, height) = info.output_size(scale);
    // Frames are written where they decode, in the staging folder under numbers of their
    // own; once every chunk is done they are renamed in order (ffmpeg's frame_000001.jpg
    // numbering). The staging folder goes if anything fails.
    let next_tmp = AtomicU64::new(0);
    let mapped = video.map_frames(
        &opts,
        0,
        |frame| -> Result<Option<PathBuf>, Error> {
            let Some(out) = &out else {
                return Ok(None);
            };
            let n = next_tmp.fetch_add(1, Ordering::Relaxed);
            let tmp = out.staging().join(format!(".frame-{n:08}.jpg"));
            // A failure names the output folder and the frame, not the temporary name.
            decode::save_image(&frame.image, &tmp, Some(ImageFormat::Jpeg(config.quality)))
                .map_err(|e| match e {
                    decode::DecodeError::Write { detail, .. } => Error::write(
                        out.target(),
                        std::io::Error::other(format!(
                            "frame {} ({:.3} s): {detail}",
                            frame.index, frame.time
                        )),
                    ),
                    e => e.into(),
                })?;
            Ok(Some(tmp))
        },
        |_| stage.advance(1),
    )?;
    let mut frames = Vec::with_capacity(mapped.len());
    for (n, m) in mapped.into_iter().enumerate() {
        let path = match (&out, m.value) {
            (Some(out), Some(tmp)) => {
                let name = format!("frame_{:06}.jpg", n + 1);
                let to = out.path(&name)?;
                std::fs::rename(&tmp, &to).map_err(|e| Error::write(&to, e))?;
                name
            }
            _ => String::new(),
        };
        frames.push(FrameEntry {
            index: m.index,
            time: m.time,
            path,
        });
    }
    let report = FramesReport {
        video: input.video.to_path_buf(),
        fps: info.fps,
        sampling: format!("{sampling:?}"),
        width,
        height,
        frames,
    };
    if let Some(out) = out {
        out.commit("frames.json", &report)?;
    }
    Ok(report)
}
