//! The demuxer: opening a file with typed errors, reading packets, seeking so that a time
//! is shown.

use std::path::Path;
use std::sync::Once;

use ffmpeg_next as ff;

use crate::error::DecodeError;
use crate::probe::info::VideoInfo;

/// Initialises FFmpeg once and lowers its console logging to errors only.
fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // `init` only registers formats on old FFmpeg versions; it cannot fail on 5.x+.
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

/// Opens the demuxer, mapping failures to typed errors.
pub(crate) fn open_input(path: &Path) -> Result<ff::format::context::Input, DecodeError> {
    init();
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
    ff::format::input(&path).map_err(|e| DecodeError::NotAVideo {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
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
