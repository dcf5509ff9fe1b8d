//! Video probing, sampled decoding and clip export for reelsmith.
//!
//! Built on FFmpeg through `ffmpeg-next` (the library `video-rs` wraps), with what video
//! analysis needs on top. The modules: `probe` (what a file holds), `frames` (options,
//! the pure sampler, decoding, conversion), `parallel` (keyframe-aligned chunks on all
//! cores) and `export` (clips and images).
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
//! - [`save_image`] writes a frame as JPEG or PNG; [`VideoWriter`] / [`write_video`] encode
//!   generated RGB frames as an H.264 MP4.
//!
//! Every output is written to a temporary file in the destination folder and renamed into
//! place, so a failure never leaves a partial file behind; [`remove_temp_files`] clears
//! those of an interrupted process. Outputs are never written through a symbolic link,
//! onto something that is not a regular file, or onto the input video.
//!
//! Bad input gives a [`DecodeError`] naming the file and what to do, never a panic: paths
//! that are not UTF-8 are opened by their bytes; devices and FIFOs are refused before
//! they are opened; frames larger than [`MAX_FRAME_SIDE`] a side or [`MAX_FRAME_PIXELS`]
//! are refused before anything is allocated. Clip export copes with unusual timestamps
//! (made increasing), odd and tiny sizes (made even for H.264), and audio it cannot cut
//! (left out); [`ClipReport::warnings`] says what it changed.
//!
//! Times are seconds on the file's own timeline: a frame's time is its presentation
//! timestamp minus the container's start time (as `ffmpeg` and `ffprobe` count), so it is
//! correct on variable-frame-rate input. Indices count decoded frames in presentation
//! order from 0.
//!
//! ```
//! use reelsmith_decode::{open, DecodeOptions, Sampling, Scale};
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = reelsmith_test_support::two_shot_video(dir.path());
//! // `path`: 4 s of 160x90 at 25 fps.
//! let video = open(&path)?;
//! assert_eq!((video.info().width, video.info().height), (160, 90));
//! let opts = DecodeOptions::new().sampling(Sampling::Fps(2.0)).scale(Scale::Height(36));
//! let mut kept = 0;
//! for frame in video.frames(&opts)? {
//!     let frame = frame?;
//!     assert_eq!((frame.image.width(), frame.image.height()), (64, 36));
//!     println!("frame {} at {:.3}s", frame.index, frame.time);
//!     kept += 1;
//! }
//! assert_eq!(kept, 8); // 2 per second
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod export;
mod frames;
mod parallel;
mod paths;
mod probe;

pub use error::DecodeError;
pub use export::{
    export_clip, export_clips, remove_temp_files, save_image, ClipJob, ClipMode, ClipOptions,
    ClipReport, ImageFormat, X264Preset, MAX_CLIPS_AT_ONCE,
};
pub use export::{write_video, VideoWriter, WriterOptions};
pub use frames::{
    DecodeOptions, Frame, Frames, Resampler, Sampling, Scale, MAX_FRAME_PIXELS, MAX_FRAME_SIDE,
};
pub use parallel::Mapped;
pub use paths::network_url;
pub use probe::{open, Video, VideoInfo};
