//! [`Video`]: an opened, probed file.

use std::path::Path;
use std::sync::Mutex;

use ffmpeg_next as ff;

use crate::error::DecodeError;
use crate::probe::demux::{next_packet, open_input, reopen_input, Layout, StreamParams};
use crate::probe::info::{read_info, VideoInfo};

/// An opened (probed) video file. Cheap to keep around: the first pass over the frames
/// reuses the demuxer opened when probing (so a single pass reads and probes the file only
/// once); every later pass opens its own, so several passes may run one after another or
/// on different threads.
pub struct Video {
    info: VideoInfo,
    /// The demuxer opened by [`open`], handed to the first pass that asks for it.
    probed: Mutex<Option<ff::format::context::Input>>,
    /// How the probed file's streams are laid out, for demuxers opened again later to
    /// skip probing them where the header shows the same (see
    /// [`reopen_input`]); `None` when it could not be read.
    layout: Option<Layout>,
    /// The video stream's codec parameters as probed, for the decoders of those demuxers.
    params: Option<StreamParams>,
}

// The decoding methods of `Video` live with the decoders: `frames` and `frames_from` in
// `crate::frames::stream`, `map_frames` and `count_frames` in `crate::parallel`.

impl Clone for Video {
    /// A clone shares the probed information; its passes open their own demuxers.
    fn clone(&self) -> Self {
        Self {
            info: self.info.clone(),
            probed: Mutex::new(None),
            layout: self.layout,
            params: self.params.as_ref().and_then(StreamParams::try_clone),
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
    let layout = Layout::of(&input, info.stream_index);
    let params = input
        .stream(info.stream_index)
        .and_then(|s| StreamParams::of(&s));
    Ok(Video {
        info,
        probed: Mutex::new(Some(input)),
        layout,
        params,
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

    /// The demuxer opened when probing, if no pass has taken it yet; otherwise a new one,
    /// its streams probed again (for passes that read the streams' parameters, such as
    /// stream copy).
    pub(crate) fn input(&self) -> Result<ff::format::context::Input, DecodeError> {
        match self.take_probed() {
            Some(input) => Ok(input),
            None => open_input(&self.info.path),
        }
    }

    /// The demuxer opened when probing, if no pass has taken it yet; otherwise
    /// [`Video::reopen`]'s: for passes that decode the video stream with a decoder made
    /// from [`Video::params`], or only read packets.
    pub(crate) fn decoding_input(&self) -> Result<ff::format::context::Input, DecodeError> {
        match self.take_probed() {
            Some(input) => Ok(input),
            None => self.reopen(),
        }
    }

    fn take_probed(&self) -> Option<ff::format::context::Input> {
        // A poisoned lock only means another pass panicked while taking the demuxer.
        match self.probed.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// A new demuxer of the file, its streams probed again only where the header does not
    /// show them (see [`reopen_input`]).
    pub(crate) fn reopen(&self) -> Result<ff::format::context::Input, DecodeError> {
        match (&self.layout, &self.params) {
            (Some(layout), Some(_)) => reopen_input(&self.info.path, layout),
            _ => open_input(&self.info.path),
        }
    }

    /// The video stream's codec parameters as probed (`None` when they could not be
    /// copied): what a decoder of any of this file's demuxers starts from.
    pub(crate) fn params(&self) -> Option<&StreamParams> {
        self.params.as_ref()
    }

    /// The number of packets in the video stream, counted by demuxing without decoding
    /// (fast). Equals `ffprobe -count_packets`.
    pub fn count_packets(&self) -> Result<u64, DecodeError> {
        let path = &self.info.path;
        let mut input = self.decoding_input()?;
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
