//! The demuxer: opening a file with typed errors, reading packets, seeking so that a time
//! is shown.

use std::ffi::CStr;
use std::path::Path;
use std::ptr;
use std::sync::Once;

use ffmpeg_next as ff;

use crate::error::DecodeError;
use crate::paths::{ffmpeg_url, network_url, special_kind};
use crate::probe::info::VideoInfo;

/// Initialises FFmpeg once and lowers its console logging to errors only.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // `init` only registers formats on old FFmpeg versions; it cannot fail on 5.x+.
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

/// Opens the demuxer, mapping failures to typed errors. The path is checked first: a
/// missing file, a folder, something other than a regular file (a device, a FIFO: never
/// opened, so nothing blocks), an empty or unreadable file each get their own error.
/// An `http://` or `https://` URL is handed to FFmpeg as it is.
pub(crate) fn open_input(path: &Path) -> Result<ff::format::context::Input, DecodeError> {
    open_checked(path, None)
}

/// Opens the demuxer of a file probed before, whose streams were laid out as `layout`
/// says. Where the container's header declares every stream and how to decode it (MP4
/// and QuickTime: see [`Layout::complete_in`]) and the layout is the same, the streams
/// are not probed again: `avformat_find_stream_info` decodes a stream's first frames to
/// learn what the header leaves out (about 2 ms a file for 640 × 360 H.264), and a
/// decoder of this demuxer's packets takes the parameters probed the first time
/// ([`StreamParams`]). Anything else is probed as [`open_input`] does.
pub(crate) fn reopen_input(
    path: &Path,
    layout: &Layout,
) -> Result<ff::format::context::Input, DecodeError> {
    open_checked(path, Some(layout))
}

fn open_checked(
    path: &Path,
    layout: Option<&Layout>,
) -> Result<ff::format::context::Input, DecodeError> {
    init();
    if network_url(path).is_none() {
        check_source_file(path)?;
    }
    let url = ffmpeg_url(path)?;
    open_url(&url, layout).map_err(|failure| match failure {
        OpenFailure::NotRecognised(e) => DecodeError::NotAVideo {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        OpenFailure::Unreadable(e) => DecodeError::UnreadableStream {
            path: path.to_path_buf(),
            detail: unreadable_detail(path, &e),
        },
    })
}

/// How a probed file's streams are laid out: enough to tell that a demuxer opened again
/// sees the same streams without probing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Number of streams.
    streams: usize,
    /// Index of the video stream decoded.
    video: usize,
    /// Its codec.
    codec: ff::ffi::AVCodecID,
}

impl Layout {
    /// The layout of `input`'s streams, `video` being the one decoded.
    pub(crate) fn of(input: &ff::format::context::Input, video: usize) -> Option<Self> {
        let stream = input.stream(video)?;
        Some(Self {
            streams: input.nb_streams() as usize,
            video,
            // SAFETY: reading a plain field of the stream's parameters.
            codec: unsafe { (*stream.parameters().as_ptr()).codec_id },
        })
    }

    /// Whether the demuxer `ctx` (just opened, streams not probed) shows this layout and
    /// its header alone is enough to read the packets: an MP4/QuickTime demuxer (its
    /// header, the `moov` box, lists every track with its codec, time base and sample
    /// table, packets carry their own timestamps), which did not say that more streams may
    /// appear later.
    ///
    /// # Safety
    /// `ctx` must be an open demuxer context.
    unsafe fn complete_in(&self, ctx: *const ff::ffi::AVFormatContext) -> bool {
        // SAFETY: the caller passes an open context; its format, stream array (checked
        // to hold `self.video`) and the streams' parameters are FFmpeg's valid objects.
        unsafe {
            let ctx = &*ctx;
            if ctx.iformat.is_null() || ctx.ctx_flags & ff::ffi::AVFMTCTX_NOHEADER != 0 {
                return false;
            }
            let name = CStr::from_ptr((*ctx.iformat).name).to_bytes();
            if !name.starts_with(b"mov,")
                || ctx.nb_streams as usize != self.streams
                || self.video >= self.streams
            {
                return false;
            }
            let stream = *ctx.streams.add(self.video);
            !stream.is_null()
                && !(*stream).codecpar.is_null()
                && (*(*stream).codecpar).codec_id == self.codec
        }
    }
}

/// An owned copy of a probed stream's codec parameters (what `avformat_find_stream_info`
/// learnt: pixel format, reordering delay, colour description...), for decoders of
/// demuxers that did not probe the streams again (see [`reopen_input`]).
pub(crate) struct StreamParams(ptr::NonNull<ff::ffi::AVCodecParameters>);

// SAFETY: the parameters are owned by this value, written once when copied and only read
// afterwards (FFmpeg copies them into a decoder through a const pointer), so sharing or
// moving them between threads is sound.
unsafe impl Send for StreamParams {}
unsafe impl Sync for StreamParams {}

impl StreamParams {
    /// A copy of the parameters of `stream`; `None` when FFmpeg cannot allocate it.
    pub(crate) fn of(stream: &ff::format::stream::Stream) -> Option<Self> {
        // SAFETY: the source is the stream's valid parameters; the copy is freed on drop.
        unsafe { Self::copy(stream.parameters().as_ptr()) }
    }

    /// # Safety
    /// `src` must point to valid codec parameters.
    unsafe fn copy(src: *const ff::ffi::AVCodecParameters) -> Option<Self> {
        // SAFETY: `dst` is freshly allocated (checked non-null), `src` valid (the
        // caller's promise); a failed copy frees what was allocated.
        unsafe {
            let dst = ff::ffi::avcodec_parameters_alloc();
            let mut owned = Self(ptr::NonNull::new(dst)?);
            if ff::ffi::avcodec_parameters_copy(owned.0.as_mut(), src) < 0 {
                return None; // `owned` is dropped: freed
            }
            Some(owned)
        }
    }

    /// Another copy of the same parameters (`None` when FFmpeg cannot allocate it).
    pub(crate) fn try_clone(&self) -> Option<Self> {
        // SAFETY: `self` holds valid parameters.
        unsafe { Self::copy(self.as_ptr()) }
    }

    /// The parameters, for FFmpeg to read.
    pub(crate) fn as_ptr(&self) -> *const ff::ffi::AVCodecParameters {
        self.0.as_ptr()
    }
}

impl Drop for StreamParams {
    fn drop(&mut self) {
        let mut p = self.0.as_ptr();
        // SAFETY: allocated by `avcodec_parameters_alloc`, freed once.
        unsafe { ff::ffi::avcodec_parameters_free(&mut p) };
    }
}

/// Checks that `path` is a regular, non-empty file this process may read, without opening
/// anything that is not a regular file.
fn check_source_file(path: &Path) -> Result<(), DecodeError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DecodeError::NotFound {
            path: path.to_path_buf(),
        },
        _ => DecodeError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if meta.is_dir() {
        return Err(DecodeError::InvalidArgument {
            path: path.to_path_buf(),
            detail: "this is a folder, not a video file".into(),
        });
    }
    if let Some(kind) = special_kind(meta.file_type()) {
        return Err(DecodeError::NotARegularFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    if meta.len() == 0 {
        return Err(DecodeError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    // Unreadable files (permissions) get the real I/O error rather than FFmpeg's guess.
    std::fs::File::open(path).map_err(|e| DecodeError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    Ok(())
}

/// Why FFmpeg could not open a file.
enum OpenFailure {
    /// No demuxer recognised the data.
    NotRecognised(ff::Error),
    /// A demuxer took the file but could not open or read its streams.
    Unreadable(ff::Error),
}

/// Opens the demuxer of `url` and reads its streams' parameters (what
/// `ffmpeg_next::format::input` does, from a URL built from the path's bytes), except
/// where `layout` is given and the header alone shows it (see [`reopen_input`]).
fn open_url(
    url: &CStr,
    layout: Option<&Layout>,
) -> Result<ff::format::context::Input, OpenFailure> {
    // SAFETY: `url` is a valid C string; on success `ps` is an open context whose
    // ownership passes to `Input`, on failure it is closed here (avformat_open_input
    // frees it itself when it fails).
    unsafe {
        let mut ps = ptr::null_mut();
        let opened =
            ff::ffi::avformat_open_input(&mut ps, url.as_ptr(), ptr::null(), ptr::null_mut());
        if opened != 0 {
            let e = ff::Error::from(opened);
            return Err(match e {
                ff::Error::InvalidData | ff::Error::Eof | ff::Error::DemuxerNotFound => {
                    OpenFailure::NotRecognised(e)
                }
                _ => OpenFailure::Unreadable(e),
            });
        }
        if layout.is_some_and(|l| l.complete_in(ps)) {
            return Ok(ff::format::context::Input::wrap(ps));
        }
        let found = ff::ffi::avformat_find_stream_info(ps, ptr::null_mut());
        if found < 0 {
            ff::ffi::avformat_close_input(&mut ps);
            return Err(OpenFailure::Unreadable(ff::Error::from(found)));
        }
        Ok(ff::format::context::Input::wrap(ps))
    }
}

/// FFmpeg's reason for refusing a file's streams, with what its header declares where
/// FFmpeg's own words mislead (a YUV4MPEG2 picture too large is "Device or resource busy").
fn unreadable_detail(path: &Path, e: &ff::Error) -> String {
    let mut head = [0u8; 128];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    match y4m_size(&head[..n]) {
        Some((w, h)) if !ffmpeg_accepts_size(w, h) => format!(
            "FFmpeg says \"{e}\": the YUV4MPEG2 header declares a {w}x{h} picture, larger than FFmpeg accepts"
        ),
        _ => format!("FFmpeg says \"{e}\""),
    }
}

/// The picture size in a YUV4MPEG2 header (`YUV4MPEG2 W<width> H<height> ...`).
fn y4m_size(head: &[u8]) -> Option<(u64, u64)> {
    let line = head.strip_prefix(b"YUV4MPEG2 ")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let field = |tag: u8| {
        line.split(|&b| b == b' ')
            .find(|t| t.first() == Some(&tag))
            .and_then(|t| std::str::from_utf8(&t[1..]).ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field(b'W')?, field(b'H')?))
}

/// FFmpeg's picture size limit (`av_image_check_size`): (w + 128)(h + 128) < INT_MAX / 8.
fn ffmpeg_accepts_size(w: u64, h: u64) -> bool {
    w > 0 && h > 0 && (w + 128).saturating_mul(h + 128) < (i32::MAX as u64) / 8
}

/// Reads the next packet into `packet`, skipping single packets the demuxer reports as
/// invalid (it resyncs past them). `Ok(false)` at the end of the file; other failures are
/// [`DecodeError::Corrupt`], located at `at` seconds when known.
pub(crate) fn next_packet(
    input: &mut ff::format::context::Input,
    packet: &mut ff::Packet,
    path: &Path,
    at: Option<f64>,
) -> Result<bool, DecodeError> {
    loop {
        // av_read_frame overwrites the packet without releasing what it held: drop the
        // previous packet first, or every packet read into the same value leaks.
        *packet = ff::Packet::empty();
        match packet.read(input) {
            Ok(()) => return Ok(true),
            Err(ff::Error::Eof) => return Ok(false),
            Err(ff::Error::InvalidData) => continue,
            Err(e) => {
                return Err(DecodeError::Corrupt {
                    path: path.to_path_buf(),
                    at,
                    detail: e.to_string(),
                })
            }
        }
    }
}

/// Seeks `input` so that decoding starts at a keyframe shown at or before `t` seconds on
/// the file's timeline (`info.start_time` is its origin). Demuxers seek by decode time,
/// and in an open GOP a keyframe decoded before `t` can be shown after it: the B-frames
/// shown before that keyframe need the previous GOP, so they would be lost. The first
/// video packet after the seek tells; when it is shown after `t` the seek is repeated
/// further back, and in the end from the start. A failed seek leaves the input where it
/// was (decoding then starts there) and is logged.
pub(crate) fn seek_to_show(input: &mut ff::format::context::Input, info: &VideoInfo, t: f64) {
    let tb = match input.stream(info.stream_index) {
        Some(s) => f64::from(s.time_base()),
        None => return,
    };
    for back in [0.0, 0.5, 2.0, 8.0, 32.0, f64::INFINITY] {
        let target = seek_target(info, (t - back).max(0.0));
        if let Err(e) = input.seek(target, ..target) {
            tracing::debug!(
                "{}: seek to {t}s failed ({e}); decoding from where the input is",
                info.path.display()
            );
            return;
        }
        if t - back <= 0.0 {
            return;
        }
        let first_pts = first_video_pts(input, info.stream_index);
        let shown_after = first_pts.is_some_and(|p| p as f64 * tb - info.start_time > t + 5e-4);
        if !shown_after {
            // Back to where that packet was read from.
            let _ = input.seek(target, ..target);
            return;
        }
    }
}

/// `secs` on the file's timeline as a seek target in `AV_TIME_BASE` units.
pub(crate) fn seek_target(info: &VideoInfo, secs: f64) -> i64 {
    ((secs + info.start_time) * f64::from(ff::ffi::AV_TIME_BASE)) as i64
}

/// The presentation timestamp of the next packet of stream `stream` (`None` at the end or
/// on a read error).
fn first_video_pts(input: &mut ff::format::context::Input, stream: usize) -> Option<i64> {
    loop {
        let mut packet = ff::Packet::empty();
        match packet.read(input) {
            Ok(()) if packet.stream() == stream => return packet.pts(),
            Ok(()) | Err(ff::Error::InvalidData) => continue,
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y4m_header_sizes() {
        assert_eq!(
            y4m_size(b"YUV4MPEG2 W30000 H20000 F25:1 Ip A1:1 C420jpeg\nFRAME"),
            Some((30000, 20000))
        );
        assert_eq!(y4m_size(b"YUV4MPEG2 F25:1 H2\n"), None);
        assert_eq!(y4m_size(b"RIFF...."), None);
        assert!(ffmpeg_accepts_size(1920, 1080));
        assert!(ffmpeg_accepts_size(16384, 16000));
        assert!(!ffmpeg_accepts_size(30000, 30000));
        assert!(!ffmpeg_accepts_size(0, 10));
    }
}
