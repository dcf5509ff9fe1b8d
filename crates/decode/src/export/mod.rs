//! Clip and image export: what a cut is asked for and reports ([`job`]), one cut
//! ([`cut`]) by re-encoding ([`reencode`], with its [`audio`] and [`stills`]) or by stream
//! copy ([`copy`]), several cuts at a time ([`pool`]), the output file written beside its
//! destination ([`output`]), the H.264 encoder both writers open ([`h264`]), frames saved as images ([`image`]), and generated frames written as a video
//! ([`writer`]).

mod audio;
mod copy;
mod cut;
mod filter;
mod h264;
mod image;
mod job;
mod output;
mod pool;
mod reencode;
mod stills;
mod timestamps;
mod writer;

pub use cut::export_clip;
pub use image::{save_image, ImageFormat};
pub use job::{ClipJob, ClipMode, ClipOptions, ClipReport, X264Preset};
pub use output::remove_temp_files;
pub use pool::{export_clips, MAX_CLIPS_AT_ONCE};
pub use writer::{write_video, VideoWriter, WriterOptions};
