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
    /// The file this error is about: the input video or the output being written.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Error::Decode(e) => e.path(),
            Error::Embed { path, .. }
            | Error::InvalidArgument { path, .. }
            | Error::Write { path, .. } => path,
        }
    }
}
