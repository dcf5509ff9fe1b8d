//! [`VideoInfo`]: what [`crate::open`] learns about a video without decoding it.

use std::path::{Path, PathBuf};

use ff::codec::packet::side_data::Type as SideDataType;
use ff::media::Type as MediaType;
use ffmpeg_next as ff;
use serde::Serialize;

use crate::error::DecodeError;

/// What [`crate::open`] learns about a video without decoding it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoInfo {
    /// The file.
    #[serde(serialize_with = "reelsmith_core::paths::lossy")]
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
    /// number, see [`crate::Video::count_frames`].
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
    /// Sample (pixel) aspect ratio `[num, den]` of the coded pictures: `[1, 1]` for square
    /// pixels and when the file does not say; `[16, 11]` for 4:3 PAL TV stored as 528×576.
    /// Decoded frames keep the coded pixels; [`VideoInfo::display_aspect`] gives the shape
    /// a player shows.
    pub sample_aspect: [u32; 2],
}

impl VideoInfo {
    /// Width over height of the picture as a player shows it: the sample aspect ratio and
    /// the rotation applied (`4/3` for 528×576 with SAR 16:11; `1280/720` for square
    /// pixels).
    pub fn display_aspect(&self) -> f64 {
        let [num, den] = self.sample_aspect;
        let sar = if num > 0 && den > 0 {
            f64::from(num) / f64::from(den)
        } else {
            1.0
        };
        let coded = f64::from(self.coded_width) * sar / f64::from(self.coded_height.max(1));
        if self.rotation % 180 == 90 {
            1.0 / coded
        } else {
            coded
        }
    }
}

/// Reads the [`VideoInfo`] of the opened demuxer `input` of `path`.
pub(crate) fn read_info(
    path: &Path,
    input: &ff::format::context::Input,
) -> Result<VideoInfo, DecodeError> {
    let Some(stream) = input.streams().best(MediaType::Video) else {
        return Err(DecodeError::NoVideoStream {
            path: path.to_path_buf(),
            streams: describe_streams(input),
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
    let sample_aspect = sample_aspect(&stream, dec.aspect_ratio());
    let rotation = stream_rotation(&stream);
    let (width, height) = if rotation % 180 == 90 {
        (coded_height, coded_width)
    } else {
        (coded_width, coded_height)
    };
    let fps = frame_rate(&stream);
    let declared_frames = (stream.frames() > 0).then_some(stream.frames() as u64);
    let start_time = container_start(input);
    let duration = duration(input, &stream, declared_frames, fps);
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
        sample_aspect,
    })
}

/// The sample aspect ratio as FFmpeg guesses it: the container's (an MP4 `pasp` box, a
/// Matroska display size) where it sets one, else the codec's; `[1, 1]` when neither is
/// valid.
fn sample_aspect(stream: &ff::format::stream::Stream, codec: ff::Rational) -> [u32; 2] {
    // SAFETY: reading a plain rational field of a stream of the open format context.
    let container = unsafe { (*stream.as_ptr()).sample_aspect_ratio };
    let valid = |num: i32, den: i32| {
        // Ratios FFmpeg itself treats as invalid (0, negative or absurd) mean square.
        (num > 0 && den > 0 && num / den <= 100 && den / num <= 100)
            .then_some([num as u32, den as u32])
    };
    valid(container.num, container.den)
        .or_else(|| valid(codec.numerator(), codec.denominator()))
        .unwrap_or([1, 1])
}

/// The streams of a file without video, for the error message ("none" when there are none).
fn describe_streams(input: &ff::format::context::Input) -> String {
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
    if streams.is_empty() {
        "none".into()
    } else {
        streams.join(", ")
    }
}

/// The frame rate of a video stream: its nominal rate where the video is constant-rate,
/// else its average rate; 0 when neither is known.
fn frame_rate(stream: &ff::format::stream::Stream) -> f64 {
    let rate = |r: ff::Rational| (r.numerator() > 0 && r.denominator() > 0).then(|| f64::from(r));
    // The average rate is frames / duration, which short files without a last-frame
    // duration skew (60 frames at 25 fps read as 25.42). When the nominal rate (FFmpeg's
    // r_frame_rate) lies within 3% of the average, the video is constant-rate: use it.
    match (rate(stream.avg_frame_rate()), rate(stream.rate())) {
        (Some(avg), Some(nominal)) if (avg - nominal).abs() <= 0.03 * nominal => nominal,
        (Some(avg), _) => avg,
        (None, Some(nominal)) => nominal,
        (None, None) => 0.0,
    }
}

/// Start of the container timeline in seconds (0 when the container has none).
fn container_start(input: &ff::format::context::Input) -> f64 {
    // SAFETY: reading a plain integer field of the open format context.
    let raw_start = unsafe { (*input.as_ptr()).start_time };
    if raw_start != ff::ffi::AV_NOPTS_VALUE {
        raw_start as f64 / f64::from(ff::ffi::AV_TIME_BASE)
    } else {
        0.0
    }
}

/// Duration in seconds: the container's, else the stream's, else declared frames over the
/// rate; 0 when nothing tells.
fn duration(
    input: &ff::format::context::Input,
    stream: &ff::format::stream::Stream,
    declared_frames: Option<u64>,
    fps: f64,
) -> f64 {
    if input.duration() > 0 {
        input.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
    } else if stream.duration() > 0 {
        stream.duration() as f64 * f64::from(stream.time_base())
    } else if let (Some(n), true) = (declared_frames, fps > 0.0) {
        n as f64 / fps
    } else {
        0.0
    }
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
fn rotation_from_display_matrix(data: &[u8]) -> Option<u32> {
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
