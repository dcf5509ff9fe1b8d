use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ff::codec::packet::side_data::Type as SideDataType;
use ff::media::Type as MediaType;
use ffmpeg_next as ff;
use serde::Serialize;

use crate::error::DecodeError;
use crate::frames::{DecodeOptions, Frames};

/// What [`open`] learns about a video without decoding it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoInfo {
    /// The file.
    pub path: PathBuf,
    /// Width as displayed: rotation metadata applied (a portrait phone clip stored as
    /// 1920×1080 with a 90° rotation reports 1080 here).
    pub width: u32,
    /// Height as displayed, rotation applied.
    pub height: u32,
    /// Width of the coded pictures, before rotation.
    pub coded_width: u32,
    /// Height of the coded pictures, before rotation.
    pub coded_height: u32,
    /// Video codec name as FFmpeg spells it (`h264`, `vp8`, `vp9`, `hevc`, ...).
    pub codec: String,
    /// Average frame rate (frames per second). For variable-frame-rate video this is an
    /// average; frame times always come from timestamps, never from this value.
    pub fps: f64,
    /// The number of frames the container declares, if it declares one. For the exact
    /// number, see [`Video::count_frames`].
    pub declared_frames: Option<u64>,
    /// Duration in seconds (container duration, or the stream's where the container has none).
    pub duration: f64,
    /// Clockwise rotation in degrees the player applies when displaying: 0, 90, 180 or 270.
    /// (FFprobe prints the display matrix angle, which is the negative: `-90` here is 90.)
    pub rotation: u32,
    /// Whether the file has at least one audio stream.
    pub has_audio: bool,
    /// Start of the container timeline in seconds; frame times are measured from it.
    pub start_time: f64,
    /// Index of the video stream that is decoded (FFmpeg's best video stream).
    pub stream_index: usize,
}

impl VideoInfo {
    /// Size (width, height) of the frames that decoding with `scale` yields, as displayed
    /// (rotation applied).
    ///
    /// ```
    /// # use reelsmith_decode::{Scale, VideoInfo};
    /// # fn show(info: &VideoInfo) {
    /// let (w, h) = info.output_size(Scale::Height(360));
    /// assert_eq!(h, 360);
    /// # }
    /// ```
    pub fn output_size(&self, scale: crate::Scale) -> (u32, u32) {
        crate::frames::target_size(self, scale)
    }
}

/// An opened (probed) video file. Cheap to keep around: the first pass over the frames
/// reuses the demuxer opened when probing (so a single pass reads and probes the file only
/// once); every later pass opens its own, so several passes may run one after another or
/// on different threads.
pub struct Video {
    info: VideoInfo,
    /// The demuxer opened by [`open`], handed to the first pass that asks for it.
    probed: Mutex<Option<ff::format::context::Input>>,
}

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

    /// Streams frames from the start, sampled and scaled as `opts` says.
    pub fn frames(&self, opts: &DecodeOptions) -> Result<Frames, DecodeError> {
        Frames::new(&self.info, opts, None, || self.input())
    }

    /// Streams frames whose presentation time is at or after `start` seconds, seeking to
    /// the keyframe before `start` and decoding forward so the first frame is exact.
    ///
    /// Frame indices after a seek are estimated from the average frame rate (exact for
    /// constant-rate video); times are always the true timestamps.
    pub fn frames_from(&self, start: f64, opts: &DecodeOptions) -> Result<Frames, DecodeError> {
        if !start.is_finite() || start < 0.0 {
            return Err(DecodeError::InvalidArgument {
                path: self.info.path.clone(),
                detail: format!(
                    "cannot seek to {start}s: the time must be finite and not negative"
                ),
            });
        }
        Frames::new(&self.info, opts, Some(start), || self.input())
    }

    /// The exact number of frames a decoder outputs, counted by decoding the whole stream
    /// without converting any frame (keyframe-aligned chunks on all cores, or one
    /// frame-threaded pass). Equals `ffprobe -count_frames`.
    /// [`Video::count_packets`] is much faster and agrees on ordinary files, but not where
    /// an edit list hides frames.
    pub fn count_frames(&self) -> Result<u64, DecodeError> {
        // Keyframe-aligned chunks on all cores where the video splits cleanly (see
        // `Video::map_frames`); one sequential pass otherwise.
        if let Some(n) = self.count_frames_parallel() {
            return Ok(n);
        }
        Frames::new(&self.info, &DecodeOptions::new(), None, || self.input())?.count_only()
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
    let to = |secs: f64| ((secs + info.start_time) * f64::from(ff::ffi::AV_TIME_BASE)) as i64;
    for back in [0.0, 0.5, 2.0, 8.0, 32.0, f64::INFINITY] {
        let target = to((t - back).max(0.0));
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
        let first_pts = loop {
            let mut packet = ff::Packet::empty();
            match packet.read(input) {
                Ok(()) if packet.stream() == info.stream_index => break packet.pts(),
                Ok(()) | Err(ff::Error::InvalidData) => continue,
                Err(_) => break None,
            }
        };
        let shown_after = first_pts.is_some_and(|p| p as f64 * tb - info.start_time > t + 5e-4);
        if !shown_after {
            // Back to where that packet was read from.
            let _ = input.seek(target, ..target);
            return;
        }
    }
}

/// Opens the demuxer, mapping failures to typed errors.
pub(crate) fn open_input(path: &Path) -> Result<ff::format::context::Input, DecodeError> {
    crate::init();
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

fn read_info(path: &Path, input: &ff::format::context::Input) -> Result<VideoInfo, DecodeError> {
    let Some(stream) = input.streams().best(MediaType::Video) else {
        let streams: Vec<String> = input
            .streams()
            .map(|s| {
                format!(
                    "{:?} {}",
                    s.parameters().medium(),
                    s.parameters().id().name()
                )
            })
            .collect();
        return Err(DecodeError::NoVideoStream {
            path: path.to_path_buf(),
            streams: if streams.is_empty() {
                "none".into()
            } else {
                streams.join(", ")
            },
        });
    };
    let params = stream.parameters();
    let codec_id = params.id();
    let codec = codec_id.name().to_string();
    if ff::decoder::find(codec_id).is_none() {
        return Err(DecodeError::UnsupportedCodec {
            path: path.to_path_buf(),
            codec,
        });
    }
    let ctx = ff::codec::context::Context::from_parameters(params)
        .map_err(|e| DecodeError::ffmpeg(path, "reading stream parameters", e))?;
    let dec = ctx
        .decoder()
        .video()
        .map_err(|e| DecodeError::ffmpeg(path, "reading video parameters", e))?;
    let (coded_width, coded_height) = (dec.width(), dec.height());
    if coded_width == 0 || coded_height == 0 {
        return Err(DecodeError::Corrupt {
            path: path.to_path_buf(),
            at: None,
            detail: "the video stream declares a zero picture size".into(),
        });
    }
    let rotation = stream_rotation(&stream);
    let (width, height) = if rotation % 180 == 90 {
        (coded_height, coded_width)
    } else {
        (coded_width, coded_height)
    };
    let rate = |r: ff::Rational| (r.numerator() > 0 && r.denominator() > 0).then(|| f64::from(r));
    // The average rate is frames / duration, which short files without a last-frame
    // duration skew (60 frames at 25 fps read as 25.42). When the nominal rate (FFmpeg's
    // r_frame_rate) lies within 3% of the average, the video is constant-rate: use it.
    let fps = match (rate(stream.avg_frame_rate()), rate(stream.rate())) {
        (Some(avg), Some(nominal)) if (avg - nominal).abs() <= 0.03 * nominal => nominal,
        (Some(avg), _) => avg,
        (None, Some(nominal)) => nominal,
        (None, None) => 0.0,
    };
    let tb = f64::from(stream.time_base());
    let declared_frames = (stream.frames() > 0).then_some(stream.frames() as u64);
    // SAFETY: reading a plain integer field of the open format context.
    let raw_start = unsafe { (*input.as_ptr()).start_time };
    let start_time = if raw_start != ff::ffi::AV_NOPTS_VALUE {
        raw_start as f64 / f64::from(ff::ffi::AV_TIME_BASE)
    } else {
        0.0
    };
    let duration = if input.duration() > 0 {
        input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
    } else if stream.duration() > 0 {
        stream.duration() as f64 * tb
    } else if let (Some(n), true) = (declared_frames, fps > 0.0) {
        n as f64 / fps
    } else {
        0.0
    };
    let has_audio = input
        .streams()
        .any(|s| s.parameters().medium() == MediaType::Audio);
    Ok(VideoInfo {
        path: path.to_path_buf(),
        width,
        height,
        coded_width,
        coded_height,
        codec,
        fps,
        declared_frames,
        duration,
        rotation,
        has_audio,
        start_time,
        stream_index: stream.index(),
    })
}

/// Clockwise display rotation in degrees (0, 90, 180, 270) from the stream's display matrix.
fn stream_rotation(stream: &ff::format::stream::Stream) -> u32 {
    for sd in stream.side_data() {
        if sd.kind() == SideDataType::DisplayMatrix {
            if let Some(r) = rotation_from_display_matrix(sd.data()) {
                return r;
            }
        }
    }
    // Some muxers only leave a "rotate" metadata tag.
    if let Some(tag) = stream.metadata().get("rotate") {
        if let Ok(deg) = tag.trim().parse::<f64>() {
            return normalise_rotation(deg);
        }
    }
    0
}

/// Reads the 3×3 display matrix (nine native-endian i32, 16.16 fixed point) and returns
/// the clockwise display rotation, snapped to a multiple of 90°.
pub(crate) fn rotation_from_display_matrix(data: &[u8]) -> Option<u32> {
    if data.len() < 36 {
        return None;
    }
    let m: Vec<f64> = data[..36]
        .chunks_exact(4)
        .map(|c| f64::from(i32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let scale0 = m[0].hypot(m[3]);
    let scale1 = m[1].hypot(m[4]);
    if scale0 == 0.0 || scale1 == 0.0 {
        return None;
    }
    // This is minus FFmpeg's av_display_rotation_get(): the angle by which players (and
    // ffmpeg's autorotate) turn the picture clockwise.
    let cw = (m[1] / scale1).atan2(m[0] / scale0).to_degrees();
    Some(normalise_rotation(cw))
}

fn normalise_rotation(deg: f64) -> u32 {
    let snapped = ((deg / 90.0).round() as i64).rem_euclid(4) as u32;
    snapped * 90
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(deg_ccw: f64) -> Vec<u8> {
        // Mirrors FFmpeg's av_display_rotation_set: [cos, -sin, 0; sin, cos, 0; 0, 0, 1].
        let r = deg_ccw.to_radians();
        let f = |v: f64| (v * 65536.0).round() as i32;
        let m = [
            f(r.cos()),
            f(-r.sin()),
            0,
            f(r.sin()),
            f(r.cos()),
            0,
            0,
            0,
            1 << 30,
        ];
        m.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn display_matrix_rotation() {
        // av_display_rotation_set(m, -90) is what a 90° clockwise (portrait) clip carries;
        // ffprobe shows it as "rotation: -90".
        assert_eq!(rotation_from_display_matrix(&matrix(0.0)), Some(0));
        assert_eq!(rotation_from_display_matrix(&matrix(90.0)), Some(270));
        assert_eq!(rotation_from_display_matrix(&matrix(-90.0)), Some(90));
        assert_eq!(rotation_from_display_matrix(&matrix(180.0)), Some(180));
        assert_eq!(rotation_from_display_matrix(&[0u8; 10]), None);
        assert_eq!(normalise_rotation(-270.0), 90);
        assert_eq!(normalise_rotation(359.0), 0);
    }
}
