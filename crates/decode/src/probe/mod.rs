//! Probing: what a video file holds, read without decoding it.
//!
//! - [`info`]: [`VideoInfo`] and how it is read from the streams (size, rotation, rate,
//!   duration).
//! - [`demux`]: opening the demuxer with typed errors, reading packets, seeking so that a
//!   time is shown.
//! - [`video`]: [`Video`], an opened file; its decoding methods live with the decoders
//!   (`crate::frames`, `crate::parallel`), so probing depends on no decoder.

pub(crate) mod demux;
pub(crate) mod info;
pub(crate) mod video;

pub use info::VideoInfo;
pub use video::{open, Video};
