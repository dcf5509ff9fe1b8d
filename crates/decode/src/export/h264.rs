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
    if codec.name() == "libx264" {
        if let Some(flags) = x264_cpu_flags() {
            dict.set("x264-params", &format!("asm={flags}"));
        }
    }
    let encoder = enc
        .open_as_with(codec, dict)
        .map_err(|e| write_error(out, "opening the H.264 encoder", e))?;
    Ok((encoder, codec))
}

/// The CPU capabilities x264 is told to use (its `asm` parameter): everything its own
/// detection finds except AVX-512, on CPUs where it would take AVX-512; `None` (its own
/// detection) elsewhere.
///
/// x264's AVX-512 routines make it encode the same pictures into different bitstreams now
/// and then. Measured with x264 core 164 (FFmpeg 5.1) on an AMD EPYC with AVX-512, x264
/// single-threaded (32-pixel-high pictures) and the same YUV pictures going in: five 32×32
/// frames encoded 4,000 times by two processes side by side came out different 10 times
/// (one I, P or B frame's packet; a few alternatives that recur). Which encode differs
/// follows the process's allocation history (the same one in every run of a test that
/// allocates the same way: the 57th in `the_same_frames_make_the_same_file`), not the
/// contents of fresh memory (glibc's malloc perturbation changes nothing). With
/// `asm=AVX2`, 0 of 4,000 differed (and 0 of 24,000 in 12 runs of that test), as with no
/// assembly at all, and the bitstream is the one the AVX-512 routines give in the other
/// 3,990. 720p encoding is as fast within the noise (veryfast, one thread, 160 frames:
/// 1.65–1.79 s of CPU with AVX-512, 1.69–1.86 s without). So a video of the same frames is
/// the same file, as the generate and evaluation pipelines promise (same seed, same video).
fn x264_cpu_flags() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        // x264 takes AVX-512 when F, CD, BW, DQ and VL are all there and the OS keeps the
        // ZMM and mask registers (which std's detection checks as well).
        let avx512 = has!("avx512f")
            && has!("avx512cd")
            && has!("avx512bw")
            && has!("avx512dq")
            && has!("avx512vl");
        // x264's "AVX2" names SSE2 to SSE4.2, AVX, FMA3, LZCNT, BMI1, BMI2 and AVX2 (fast
        // SSE2 follows from SSSE3): all its detection finds on such a CPU short of AVX-512
        // (its cache-line and slow-unit flags are for older CPUs, without AVX-512). Named
        // only when the CPU has every one of them.
        let avx2 = has!("sse4.2")
            && has!("avx")
            && has!("avx2")
            && has!("fma")
            && has!("lzcnt")
            && has!("bmi1")
            && has!("bmi2");
        if avx512 && avx2 {
            return Some("AVX2");
        }
    }
    None
}
