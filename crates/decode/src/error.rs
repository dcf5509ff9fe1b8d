use std::path::PathBuf;

/// Everything that can go wrong while probing, decoding or exporting. Each variant names the
/// file it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The file does not exist.
    #[error("{}: no such file; check the path", path.display())]
    NotFound {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("{}: cannot read the file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{}: the file is empty (0 bytes); was it fully copied or downloaded?", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The path names something other than a regular file (a device such as `/dev/zero`, a
    /// FIFO, a socket). It is refused before it is opened, so a FIFO without a writer
    /// cannot block.
    #[error("{}: not a regular file but {kind}; reelsmith reads video files: save the stream to a file first and pass that file", path.display())]
    NotARegularFile {
        /// The path.
        path: PathBuf,
        /// What it is ("a character device", "a FIFO (named pipe)", ...).
        kind: &'static str,
    },
    /// FFmpeg does not recognise the file as a media container.
    #[error("{}: not a video file FFmpeg can read ({detail}); is it a video, and complete?", path.display())]
    NotAVideo {
        /// The file.
        path: PathBuf,
        /// What FFmpeg said.
        detail: String,
    },
    /// FFmpeg recognises the container but cannot open its streams: the header is damaged
    /// or declares what FFmpeg refuses (a picture larger than it accepts, say).
    #[error("{}: FFmpeg recognises the file but cannot read its streams ({detail}); re-encode or re-mux it into a common format (H.264 in MP4) with a supported picture size", path.display())]
    UnreadableStream {
        /// The file.
        path: PathBuf,
        /// What FFmpeg said, and what the header declares where that tells more.
        detail: String,
    },
    /// The container holds no video stream (an audio-only file, say).
    #[error("{}: the file has no video stream (streams: {streams})", path.display())]
    NoVideoStream {
        /// The file.
        path: PathBuf,
        /// A description of the streams that are there.
        streams: String,
    },
    /// The video codec has no decoder in the linked FFmpeg.
    #[error("{}: video codec '{codec}' is not supported by the linked FFmpeg build; convert the file to H.264 first", path.display())]
    UnsupportedCodec {
        /// The file.
        path: PathBuf,
        /// Codec name as FFmpeg reports it.
        codec: String,
    },
    /// The video stream has no frames at all.
    #[error("{}: the video stream holds no frames (zero length)", path.display())]
    ZeroLength {
        /// The file.
        path: PathBuf,
    },
    /// Frames were decoded, but the sampling kept none of them (a rate too low for a video
    /// this short).
    #[error("{}: {detail}", path.display())]
    NothingSampled {
        /// The file.
        path: PathBuf,
        /// Which sampling kept nothing, of how long a video, and a sampling that keeps frames.
        detail: String,
    },
    /// The data is damaged: demuxing or decoding failed in a way that cannot be skipped.
    #[error("{}: corrupt or truncated video data{}: {detail}", path.display(), at.map(|t| format!(" near {t:.3}s")).unwrap_or_default())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where it happened, in seconds, when known.
        at: Option<f64>,
        /// What FFmpeg said.
        detail: String,
    },
    /// An argument is out of range (a negative time, a zero size, an empty clip, ...).
    #[error("{}: {detail}", path.display())]
    InvalidArgument {
        /// The file the request was about.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// An output path that must not be written: a symbolic link (outputs are never written
    /// through links), something other than a regular file (a folder, a device, a FIFO),
    /// or the input video itself.
    #[error("{}: will not write the output here: {reason}", path.display())]
    OutputRefused {
        /// The output path.
        path: PathBuf,
        /// Why, and what to do instead.
        reason: String,
    },
    /// Writing an output (clip or image) failed.
    #[error("{}: cannot write output: {detail}", path.display())]
    Write {
        /// The output file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// Any other FFmpeg failure.
    #[error("{}: FFmpeg error while {context}: {source}", path.display())]
    Ffmpeg {
        /// The file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// FFmpeg's error.
        #[source]
        source: ffmpeg_next::Error,
    },
}

impl DecodeError {
    pub(crate) fn ffmpeg(
        path: &std::path::Path,
        context: &'static str,
        source: ffmpeg_next::Error,
    ) -> Self {
        DecodeError::Ffmpeg {
            path: path.to_path_buf(),
            context,
            source,
        }
    }

    /// The file this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            DecodeError::NotFound { path }
            | DecodeError::Io { path, .. }
            | DecodeError::EmptyFile { path }
            | DecodeError::NotARegularFile { path, .. }
            | DecodeError::NotAVideo { path, .. }
            | DecodeError::UnreadableStream { path, .. }
            | DecodeError::NoVideoStream { path, .. }
            | DecodeError::UnsupportedCodec { path, .. }
            | DecodeError::ZeroLength { path }
            | DecodeError::NothingSampled { path, .. }
            | DecodeError::Corrupt { path, .. }
            | DecodeError::InvalidArgument { path, .. }
            | DecodeError::OutputRefused { path, .. }
            | DecodeError::Write { path, .. }
            | DecodeError::Ffmpeg { path, .. } => path,
        }
    }
}
