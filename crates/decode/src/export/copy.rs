//! A fast cut: the compressed packets copied from the keyframe at or before the start.

use std::path::Path;

use ff::media::Type as MediaType;
use ff::Rational;
use ffmpeg_next as ff;

use crate::error::DecodeError;
use crate::export::job::{ClipJob, ClipMode, ClipOptions, ClipReport, CutFailure};
use crate::export::output::{
    add_copy_stream, mp4_audio_ok, open_mp4, secs, stream_time_base, to_ts, write_error,
};
use crate::export::timestamps::TimestampFixer;
use crate::probe::demux::{next_packet, seek_to_show};
use crate::probe::info::VideoInfo;
use crate::probe::video::Video;

/// An input stream copied into the clip.
struct Copied {
    /// The output stream.
    out_index: usize,
    /// The input stream's time base.
    in_tb: Rational,
    /// Time (seconds on the source's timeline) of this stream's last packet, for packets
    /// without a timestamp.
    last_time: Option<f64>,
    /// Keeps the output packets' timestamps valid for the muxer.
    timestamps: TimestampFixer,
}

/// For each input stream, where it is copied (`None`: left out).
type StreamMap = Vec<Option<Copied>>;

/// Cuts `job` by stream copy into `tmp` (errors name `job.out`).
pub(super) fn stream_copy(
    video: &Video,
    job: &ClipJob,
    tmp: &Path,
    opts: &ClipOptions,
) -> Result<ClipReport, CutFailure> {
    let info = video.info();
    let out = job.out.as_path();
    let mut input = video.input()?;
    let mut muxer = open_mp4(tmp, out)?;
    let mut warnings = Vec::new();
    let mut map = add_streams(info, &input, &mut muxer, opts, out, &mut warnings)?;
    let with_audio = map.iter().flatten().count() > 1;
    muxer
        .write_header()
        .map_err(|e| CutFailure::header(out, e, with_audio))?;
    seek_to_show(&mut input, info, job.start);
    let copied = copy_packets(info, &mut input, &mut muxer, &mut map, job, out)?;
    muxer
        .write_trailer()
        .map_err(|e| write_error(out, "finishing the MP4", e))?;
    let fixed: u64 = map.iter().flatten().map(|c| c.timestamps.fixed()).sum();
    if fixed > 0 {
        warnings.push(format!(
            "{}: {fixed} packets had timestamps that repeat, run backwards or are missing; the clip has them increasing",
            info.path.display()
        ));
    }
    let start = copied.clip_start.unwrap_or(job.start);
    Ok(ClipReport {
        path: out.to_path_buf(),
        start,
        end: job.end,
        frames: copied.frames,
        audio: copied.audio,
        mode: ClipMode::StreamCopy,
        snapped_to_keyframe: (start - job.start).abs() > 1e-3,
        stills: vec![None; job.stills.len()],
        warnings,
    })
}

/// Whether the muxer can hold the codec `id` as it is (`None` when FFmpeg cannot tell).
fn muxer_takes(muxer: &ff::format::context::Output, id: ff::codec::Id) -> Option<bool> {
    // SAFETY: the output format is a static FFmpeg description, valid while the muxer is.
    let r = unsafe {
        ff::ffi::avformat_query_codec(
            muxer.format().as_ptr(),
            id.into(),
            ff::ffi::FF_COMPLIANCE_NORMAL,
        )
    };
    (r >= 0).then_some(r == 1)
}

/// Adds the video stream and, when asked and MP4 can hold its codec, the best audio
/// stream to `muxer`; returns the map from input to output streams. A video codec MP4
/// cannot hold is an error; audio that cannot be copied is left out, with a warning.
fn add_streams(
    info: &VideoInfo,
    input: &ff::format::context::Input,
    muxer: &mut ff::format::context::Output,
    opts: &ClipOptions,
    out: &Path,
    warnings: &mut Vec<String>,
) -> Result<StreamMap, CutFailure> {
    let mut map: StreamMap = (0..input.nb_streams()).map(|_| None).collect();
    let vs = input
        .stream(info.stream_index)
        .ok_or_else(|| DecodeError::NoVideoStream {
            path: info.path.clone(),
            streams: "the stream found when probing has gone".into(),
        })?;
    if muxer_takes(muxer, vs.parameters().id()) == Some(false) {
        return Err(DecodeError::InvalidArgument {
            path: info.path.clone(),
            detail: format!(
                "its video codec '{}' cannot be stream-copied into MP4; cut it with re-encoding instead",
                info.codec
            ),
        }
        .into());
    }
    let copy = |muxer: &mut ff::format::context::Output, s: &ff::format::stream::Stream| {
        add_copy_stream(muxer, s.parameters(), s.time_base()).map(|out_index| Copied {
            out_index,
            in_tb: s.time_base(),
            last_time: None,
            timestamps: TimestampFixer::default(),
        })
    };
    map[info.stream_index] =
        Some(copy(muxer, &vs).map_err(|e| write_error(out, "adding the video stream", e))?);
    if let Some(a) = input
        .streams()
        .best(MediaType::Audio)
        .filter(|_| opts.audio)
    {
        if mp4_audio_ok(a.parameters().id()) {
            let copied = copy(muxer, &a)
                .map_err(|e| CutFailure::Audio(format!("adding the audio stream: {e}")))?;
            map[a.index()] = Some(copied);
        } else {
            warnings.push(format!(
                "{}: its audio codec '{}' cannot be stream-copied into MP4, so the clip has no audio; cut with re-encoding to keep it",
                info.path.display(),
                a.parameters().id().name()
            ));
        }
    }
    // Rotation travels as stream side data with the copied parameters only on newer FFmpeg;
    // set the legacy tag too so players turn the picture.
    if info.rotation != 0 {
        if let Some(mut ost) = muxer.stream_mut(0) {
            let mut md = ff::Dictionary::new();
            md.set("rotate", &((360 - info.rotation) % 360).to_string());
            ost.set_metadata(md);
        }
    }
    Ok(map)
}

/// What [`copy_packets`] copied.
struct Progress {
    /// Source time of the first keyframe copied.
    clip_start: Option<f64>,
    /// Video packets copied.
    frames: u64,
    /// Whether any audio packet was copied.
    audio: bool,
}

/// Copies the packets of the mapped streams from the keyframe at or before the start up
/// to the end, shifted so the clip starts at 0.
fn copy_packets(
    info: &VideoInfo,
    input: &mut ff::format::context::Input,
    muxer: &mut ff::format::context::Output,
    map: &mut StreamMap,
    job: &ClipJob,
    out: &Path,
) -> Result<Progress, CutFailure> {
    let (end, origin, video) = (job.end, info.start_time, info.stream_index);
    let frame = if info.fps > 0.0 { 1.0 / info.fps } else { 0.0 };
    let mut packet = ff::Packet::empty();
    let mut done = Progress {
        clip_start: None,
        frames: 0,
        audio: false,
    };
    while next_packet(input, &mut packet, &info.path, done.clip_start)? {
        let stream = packet.stream();
        let Some(copied) = map.get_mut(stream).and_then(Option::as_mut) else {
            continue;
        };
        let in_tb = copied.in_tb;
        let t = match packet.pts().or(packet.dts()) {
            Some(ts) => secs(ts, in_tb) - origin,
            // No timestamp: one frame (or one packet) after the stream's last.
            None => match copied.last_time {
                Some(last) if stream == video => last + frame,
                Some(last) => last + secs(packet.duration(), in_tb),
                None => continue,
            },
        };
        copied.last_time = Some(t);
        if stream == video {
            if done.clip_start.is_none() {
                // Wait for a keyframe (the seek lands on one at or before the start).
                if !packet.is_key() {
                    continue;
                }
                done.clip_start = Some(t);
            }
            if t >= end - 5e-4 {
                // B-frames can come later in decode order with earlier pts; keep reading a
                // little, but a keyframe past the end closes the clip.
                if packet.is_key() {
                    break;
                }
                continue;
            }
            done.frames += 1;
        } else {
            let Some(cs) = done.clip_start else { continue };
            if t < cs - 1e-3 || t >= end {
                continue;
            }
            done.audio = true;
        }
        let Some(clip_start) = done.clip_start else {
            continue;
        };
        let shift = to_ts(clip_start + origin, in_tb);
        if packet.pts().is_none() && packet.dts().is_none() {
            packet.set_pts(Some(to_ts(t + origin, in_tb)));
        }
        packet.set_pts(packet.pts().map(|p| p - shift));
        packet.set_dts(packet.dts().map(|d| d - shift));
        packet.set_position(-1);
        packet.set_stream(copied.out_index);
        packet.rescale_ts(in_tb, stream_time_base(muxer, copied.out_index));
        copied.timestamps.fix_packet(&mut packet);
        if let Err(e) = packet.write_interleaved(muxer) {
            return Err(if stream == video {
                write_error(out, "writing packets", e).into()
            } else {
                CutFailure::Audio(format!("writing audio: {e}"))
            });
        }
    }
    Ok(done)
}
