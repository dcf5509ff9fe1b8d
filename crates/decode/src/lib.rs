//! Video probing, sampled decoding and clip export for reelsmith.
//!
//! Built on FFmpeg through `ffmpeg-next` (the library `video-rs` wraps), with what video
//! analysis needs on top:
//!
//! - [`open`] probes a file: display size with rotation applied, codec, frame rate,
//!   duration, audio presence; [`Video::count_frames`] gives the exact frame count.
//! - [`Video::frames`] streams [`Frame`]s (RGB, 0-based decoded index, true presentation
//!   time in seconds) with sampling ([`Sampling`]: every frame, every Nth, N per second by
//!   timestamp) and scaling ([`Scale`]). Decoding is multi-threaded; frames that sampling
//!   drops are never converted or scaled; memory stays flat however long the video is.
//! - [`Video::map_frames`] decodes keyframe-aligned chunks on all cores and runs a function
//!   on every kept frame, with the same results as a sequential pass.
//! - [`Video::frames_from`] seeks exactly to a time.
//! - [`export_clip`] cuts `[start, end)` into an MP4, frame-accurately (H.264 re-encode,
//!   audio kept) or fast (stream copy from the keyframe before `start`).
//! - [`save_image`] writes a frame as JPEG or PNG.
//!
//! Every output is written to a temporary file in the destination folder and renamed into
//! place, so a failure never leaves a partial file behind.
//!
//! Times are seconds on the file's own timeline: a frame's time is its presentation
//! timestamp minus the container's start time (as `ffmpeg` and `ffprobe` count), so it is
//! correct on variable-frame-rate input. Indices count decoded frames in presentation
//! order from 0.
//!
//! ```no_run
//! use reelsmith_decode::{open, DecodeOptions, Sampling, Scale};
//!
//! let video = open("movie.mp4")?;
//! println!("{}x{} at {:.3} fps", video.info().width, video.info().height, video.info().fps);
//! let opts = DecodeOptions::new().sampling(Sampling::Fps(3.0)).scale(Scale::Height(720));
//! for frame in video.frames(&opts)? {
//!     let frame = frame?;
//!     println!("frame {} at {:.3}s: {}x{}", frame.index, frame.time,
//!              frame.image.width(), frame.image.height());
//! }
//! # Ok::<(), reelsmith_decode::DecodeError>(())
//! ```

mod error;
mod export;
mod frames;
mod parallel;
mod probe;

pub use error::DecodeError;
pub use export::{
    export_clip, export_clips, save_image, ClipJob, ClipMode, ClipOptions, ClipReport, ImageFormat,
    X264Preset, MAX_CLIPS_AT_ONCE,
};
pub use frames::{DecodeOptions, Frame, Frames, Resampler, Sampling, Scale};
pub use parallel::Mapped;
pub use probe::{open, Video, VideoInfo};
