//! What a cut is asked for and what it reports: [`ClipOptions`], [`ClipJob`],
//! [`ClipReport`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::export::output::write_error;
use crate::frames::Frame;

/// How [`export_clip`](crate::export_clip) cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipMode {
    /// Decode and re-encode the video with x264: the clip starts and ends on exactly the
    /// frames asked for. Audio is copied when MP4 can hold its codec, else re-encoded to AAC.
    #[default]
    Reencode,
    /// Copy the compressed streams: fast and lossless, but the clip starts at the keyframe
    /// at or before the requested start (the [`ClipReport`] says where).
    StreamCopy,
}

/// x264 speed/size trade-off presets, fastest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum X264Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    #[default]
    Medium,
    Slow,
    Slower,
    Veryslow,
}

impl X264Preset {
    /// The name x264 uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            X264Preset::Ultrafast => "ultrafast",
            X264Preset::Superfast => "superfast",
            X264Preset::Veryfast => "veryfast",
            X264Preset::Faster => "faster",
            X264Preset::Fast => "fast",
            X264Preset::Medium => "medium",
            X264Preset::Slow => "slow",
            X264Preset::Slower => "slower",
            X264Preset::Veryslow => "veryslow",
        }
    }
}

impl std::str::FromStr for X264Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        use X264Preset::*;
        [
            Ultrafast, Superfast, Veryfast, Faster, Fast, Medium, Slow, Slower, Veryslow,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| format!("unknown x264 preset '{s}' (ultrafast ... veryslow)"))
    }
}

/// Options for [`export_clip`](crate::export_clip).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipOptions {
    /// Re-encode (frame-accurate, default) or stream copy (fast, keyframe-aligned).
    pub mode: ClipMode,
    /// x264 constant rate factor, 0 (lossless) to 51; 18 (default) is visually lossless.
    pub crf: u8,
    /// x264 preset (default medium).
    pub preset: X264Preset,
    /// Keep the audio (default true). Files without audio give clips without audio.
    pub audio: bool,
    /// Threads of the clip's video decoder and of x264; 0 (default) lets FFmpeg and x264
    /// choose (about 1.5 per core). [`export_clips`](crate::export_clips) sets it when it cuts several clips at
    /// once.
    pub threads: usize,
}

impl Default for ClipOptions {
    fn default() -> Self {
        Self {
            mode: ClipMode::Reencode,
            crf: 18,
            preset: X264Preset::Medium,
            audio: true,
            threads: 0,
        }
    }
}

/// What [`export_clip`](crate::export_clip) wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipReport {
    /// The file written.
    #[serde(serialize_with = "reelsmith_core::paths::lossy")]
    pub path: PathBuf,
    /// Time in the source of the clip's first video frame.
    pub start: f64,
    /// End of the clip in the source (exclusive).
    pub end: f64,
    /// Number of video frames written.
    pub frames: u64,
    /// Whether audio was written.
    pub audio: bool,
    /// The mode used.
    pub mode: ClipMode,
    /// Stream copy only: whether the start moved back to a keyframe.
    pub snapped_to_keyframe: bool,
    /// The frames asked for by [`ClipJob::stills`], in that order, at the source's size
    /// with its rotation applied (as [`crate::Video::frames_from`] gives them). `None`
    /// where a time lies outside the clip, and every entry `None` for stream copy, which
    /// decodes nothing. Empty for [`export_clip`](crate::export_clip).
    #[serde(skip)]
    pub stills: Vec<Option<Frame>>,
    /// What the cut had to change or leave out, in words (each names the source file): the
    /// audio left out because it could not be cut or copied, a size made even for H.264,
    /// timestamps made increasing. Empty when the clip is what was asked for. They are
    /// logged at debug level only: showing them is the caller's part.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One clip for [`export_clips`](crate::export_clips): `[start, end)` seconds of the video, written to `out`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipJob {
    /// Start in seconds.
    pub start: f64,
    /// End in seconds (exclusive).
    pub end: f64,
    /// The MP4 to write.
    pub out: PathBuf,
    /// Times (seconds) of frames to hand back in [`ClipReport::stills`] as RGB images: the
    /// first frame at or after each time. Re-encoding decodes these frames anyway, so a
    /// caller that needs pictures from inside its clips (a peak frame, keyframes) gets
    /// them without seeking and decoding again.
    pub stills: Vec<f64>,
}

impl ClipJob {
    /// A job for `[start, end)` written to `out`, with no stills.
    pub fn new(start: f64, end: f64, out: impl Into<PathBuf>) -> Self {
        Self {
            start,
            end,
            out: out.into(),
            stills: Vec::new(),
        }
    }

    /// Also hand back the frames at these times (see [`ClipJob::stills`]).
    pub fn with_stills(mut self, times: impl IntoIterator<Item = f64>) -> Self {
        self.stills = times.into_iter().collect();
        self
    }
}

/// Why an attempt at a cut failed.
#[derive(Debug)]
pub(super) enum CutFailure {
    /// The audio could not be set up, decoded, encoded or muxed (what failed, in words):
    /// the cut is made again without it.
    Audio(String),
    /// Anything else: the cut fails with this error.
    Clip(DecodeError),
}

impl CutFailure {
    /// The MP4 muxer refused the header of `out` with `e`. With an audio stream in it, the
    /// audio's parameters (damaged, say) are the likely cause: the cut is tried again
    /// without audio, and if the video was the cause that attempt fails on its own.
    pub(super) fn header(out: &Path, e: impl std::fmt::Display, with_audio: bool) -> Self {
        if with_audio {
            CutFailure::Audio(format!("the MP4 muxer refused its parameters: {e}"))
        } else {
            CutFailure::Clip(write_error(out, "writing the MP4 header", e))
        }
    }
}

impl From<DecodeError> for CutFailure {
    fn from(e: DecodeError) -> Self {
        CutFailure::Clip(e)
    }
}
