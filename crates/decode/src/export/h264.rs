//! The H.264 encoder both video writers open: the re-encoding clip cutter ([`super::reencode`])
//! and the writer of generated frames ([`super::writer`]).

use std::path::Path;

use ff::Rational;
use ffmpeg_next as ff;

use super::job::X264Preset;
use super::output::write_error;
use crate::error::DecodeError;

/// What the H.264 encoder is opened with.
pub(crate) struct H264Settings {
    /// Picture size; both sides even (4:2:0).
    pub size: (u32, u32),
    /// Time base of the frames' timestamps.
    pub time_base: Rational,
    /// Nominal frame rate, where known.
    pub frame_rate: Option<Rational>,
    /// x264 constant rate factor.
    pub crf: u8,
    /// x264 preset.
    pub preset: X264Preset,
    /// Encoder threads; 0 lets x264 choose.
    pub threads: usize,
    /// Whether the muxer wants the codec headers out of band (MP4).
    pub global_header: bool,
}

/// Opens libx264 (or the linked FFmpeg's other H.264 encoder) for 4:2:0 pictures with
/// `settings`; errors name `out`, the file being written.
pub(crate) fn open_h264(
    settings: &H264Settings,
    out: &Path,
) -> Result<(ff::encoder::Video, ff::Codec), DecodeError> {
    let codec = ff::encoder::find_by_name("libx264")
        .or_else(|| ff::encoder::find(ff::codec::Id::H264))
        .ok_or_else(|| {
            write_error(
                out,
                "H.264 encoder",
                "the linked FFmpeg has no H.264 encoder (libx264)",
            )
        })?;
    let mut ctx = ff::codec::context::Context::new_with_codec(codec);
    // libavcodec's default is one thread; 0 lets x264 pick (about 1.5 per core).
    ctx.set_threading(ff::codec::threading::Config {
        kind: ff::codec::threading::Type::Frame,
        count: settings.threads,
        ..Default::default()
    });
    let mut enc = ctx
        .encoder()
        .video()
        .map_err(|e| write_error(out, "creating the H.264 encoder", e))?;
    let (w, h) = settings.size;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(ff::format::Pixel::YUV420P);
    enc.set_time_base(settings.time_base);
    if settings.frame_rate.is_some() {
        enc.set_frame_rate(settings.frame_rate);
    }
    if settings.global_header {
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let mut dict = ff::Dictionary::new();
    dict.set("crf", &settings.crf.to_string());
    dict.set("preset", settings.preset.as_str());
    let encoder = enc
        .open_as_with(codec, dict)
        .map_err(|e| write_error(out, "opening the H.264 encoder", e))?;
    Ok((encoder, codec))
}
