//! The facade's error type: one enum wrapping the errors of every stage a pipeline runs.

use std::path::PathBuf;

/// Everything a pipeline of this crate can fail with. Each variant names the file it
/// concerns (the input video, or the output being written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening, probing or decoding the video, or writing an image, failed.
    #[error(transparent)]
    Decode(#[from] reelsmith_decode::DecodeError),
    /// The embedder rejected the decoded frames.
    #[error("{}: embedding the frames failed: {source}", path.display())]
    Embed {
        /// The video.
        path: PathBuf,
        /// The embedder's error.
        #[source]
        source: reelsmith_embed::EmbedError,
    },
    /// Scoring failed (aesthetic head, weights).
    #[error("{}: scoring the frames failed: {source}", path.display())]
    Score {
        /// The video.
        path: PathBuf,
        /// The scorer's error.
        #[source]
        source: reelsmith_score::ScoreError,
    },
    /// A setting of a pipeline's configuration is out of range (the message names it).
    #[error("invalid setting: {0}")]
    Config(String),
    /// The video is too short for one clip.
    #[error("{}: the video is {duration:.2} s long, shorter than one clip ({min:.2} s); lower --min-duration", path.display())]
    TooShort {
        /// The video.
        path: PathBuf,
        /// Its duration in seconds.
        duration: f64,
        /// The minimum clip duration asked for.
        min: f64,
    },
    /// No frame reached the score threshold, or no peak was found.
    #[error("{}: no highlight found: {hint}", path.display())]
    NoPeak {
        /// The video.
        path: PathBuf,
        /// What to change.
        hint: String,
    },
    /// An option is out of range.
    #[error("{}: {detail}", path.display())]
    InvalidArgument {
        /// The video the request was about.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// Creating an output folder or file failed.
    #[error("{}: cannot write output: {source}", path.display())]
    Write {
        /// The output path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The file this error is about: the input video or the output being written (`None`
    /// for a configuration error, which concerns no file).
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Decode(e) => Some(e.path()),
            Error::Embed { path, .. }
            | Error::Score { path, .. }
            | Error::TooShort { path, .. }
            | Error::NoPeak { path, .. }
            | Error::InvalidArgument { path, .. }
            | Error::Write { path, .. } => Some(path),
            Error::Config(_) => None,
        }
    }
}
