//! [`Video`]: an opened, probed file.

use std::path::Path;
use std::sync::Mutex;

use ffmpeg_next as ff;

use crate::error::DecodeError;
use crate::probe::demux::{next_packet, open_input};
use crate::probe::info::{read_info, VideoInfo};

/// An opened (probed) video file. Cheap to keep around: the first pass over the frames
/// reuses the demuxer opened when probing (so a single pass reads and probes the file only
/// once); every later pass opens its own, so several passes may run one after another or
/// on different threads.
pub struct Video {
    info: VideoInfo,
    /// The demuxer opened by [`open`], handed to the first pass that asks for it.
    probed: Mutex<Option<ff::format::context::Input>>,
}

// The decoding methods of `Video` live with the decoders: `frames` and `frames_from` in
// `crate::frames::stream`, `map_frames` and `count_frames` in `crate::parallel`.

impl Clone for Video {
    /// A clone shares the probed information; its passes open their own demuxers.
    fn clone(&self) -> Self {
        Self {
            info: self.info.clone(),
            probed: Mutex::new(None),
        }
    }
}

impl std::fmt::Debug for Video {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Video").field("info", &self.info).finish()
    }
}

/// Probes `path`: checks that it is a readable video and gathers its [`VideoInfo`].
/// `path` may also be an `http://` or `https://` URL, which FFmpeg streams (see
/// [`network_url`](crate::network_url)); every later pass opens the URL again.
///
/// ```no_run
/// let v = reelsmith_decode::open("clip.mkv")?;
/// assert!(v.info().width > 0);
/// # Ok::<(), reelsmith_decode::DecodeError>(())
/// ```
pub fn open(path: impl AsRef<Path>) -> Result<Video, DecodeError> {
    let path = path.as_ref();
    let input = open_input(path)?;
    let info = read_info(path, &input)?;
    Ok(Video {
        info,
        probed: Mutex::new(Some(input)),
    })
}

impl Video {
    /// What was learnt when probing.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.info.path
    }

    /// The demuxer opened when probing, if no pass has taken it yet; otherwise a new one.
    pub(crate) fn input(&self) -> Result<ff::format::context::Input, DecodeError> {
        // A poisoned lock only means another pass panicked while taking the demuxer.
        let taken = match self.probed.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        match taken {
            Some(input) => Ok(input),
            None => open_input(&self.info.path),
        }
    }

    /// The number of packets in the video stream, counted by demuxing without decoding
    /// (fast). Equals `ffprobe -count_packets`.
    pub fn count_packets(&self) -> Result<u64, DecodeError> {
        let path = &self.info.path;
        let mut input = self.input()?;
        let mut n = 0u64;
        let mut packet = ff::Packet::empty();
        while next_packet(&mut input, &mut packet, path, None)? {
            if packet.stream() == self.info.stream_index {
                n += 1;
            }
        }
        Ok(n)
    }
}
