//! A fast cut: the compressed packets copied from the keyframe at or before the start.

use std::path::Path;

use ff::media::Type as MediaType;
use ff::Rational;
use ffmpeg_next as ff;

use crate::error::DecodeError;
use crate::export::job::{ClipJob, ClipMode, ClipOptions, ClipReport};
use crate::export::output::{
    add_copy_stream, mp4_audio_ok, open_mp4, secs, stream_time_base, to_ts, write_error,
};
use crate::probe::demux::{next_packet, seek_to_show};
use crate::probe::info::VideoInfo;
use crate::probe::video::Video;

/// For each input stream, the output stream it is copied to and its input time base.
type StreamMap = Vec<Option<(usize, Rational)>>;

/// Cuts `job` by stream copy into `tmp` (errors name `job.out`).
pub(super) fn stream_copy(
    video: &Video,
    job: &ClipJob,
    tmp: &Path,
    opts: &ClipOptions,
) -> Result<ClipReport, DecodeError> {
    let info = video.info();
    let out = job.out.as_path();
    let mut input = video.input()?;
    let mut muxer = open_mp4(tmp, out)?;
    let map = add_streams(info, &input, &mut muxer, opts, out)?;
    muxer
        .write_header()
        .map_err(|e| write_error(out, "writing the MP4 header", e))?;
    seek_to_show(&mut input, info, job.start);
    let copied = copy_packets(info, &mut input, &mut muxer, &map, job, out)?;
    muxer
        .write_trailer()
        .map_err(|e| write_error(out, "finishing the MP4", e))?;
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
    })
}

/// Adds the video stream and, when asked and MP4 can hold its codec, the best audio
/// stream to `muxer`; returns the map from input to output streams.
fn add_streams(
    info: &VideoInfo,
    input: &ff::format::context::Input,
    muxer: &mut ff::format::context::Output,
    opts: &ClipOptions,
    out: &Path,
) -> Result<StreamMap, DecodeError> {
    let mut map: StreamMap = vec![None; input.nb_streams() as usize];
    let vs = input
        .stream(info.stream_index)
        .ok_or_else(|| DecodeError::NoVideoStream {
            path: info.path.clone(),
            streams: "the stream found when probing has gone".into(),
        })?;
    let vtb = vs.time_base();
    let oi = add_copy_stream(muxer, vs.parameters(), vtb)
        .map_err(|e| write_error(out, "adding the video stream", e))?;
    map[info.stream_index] = Some((oi, vtb));
    if let Some(a) = input
        .streams()
        .best(MediaType::Audio)
        .filter(|_| opts.audio)
    {
        if mp4_audio_ok(a.parameters().id()) {
            let oi = add_copy_stream(muxer, a.parameters(), a.time_base())
                .map_err(|e| write_error(out, "adding the audio stream", e))?;
            map[a.index()] = Some((oi, a.time_base()));
        } else {
            tracing::warn!(
                "{}: audio codec {} cannot be stream-copied into MP4; the clip has no audio (use re-encode mode to keep it)",
                info.path.display(),
                a.parameters().id().name()
            );
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
struct Copied {
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
    map: &StreamMap,
    job: &ClipJob,
    out: &Path,
) -> Result<Copied, DecodeError> {
    let (end, origin, vi) = (job.end, info.start_time, info.stream_index);
    let mut packet = ff::Packet::empty();
    let mut copied = Copied {
        clip_start: None,
        frames: 0,
        audio: false,
    };
    while next_packet(input, &mut packet, &info.path, copied.clip_start)? {
        let si = packet.stream();
        let Some((oi, itb)) = map.get(si).copied().flatten() else {
            continue;
        };
        let Some(pts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        let t = secs(pts, itb) - origin;
        if si == vi {
            if copied.clip_start.is_none() {
                // Wait for a keyframe (the seek lands on one at or before the start).
                if !packet.is_key() {
                    continue;
                }
                copied.clip_start = Some(t);
            }
            if t >= end - 5e-4 {
                // B-frames can come later in decode order with earlier pts; keep reading a
                // little, but a keyframe past the end closes the clip.
                if packet.is_key() {
                    break;
                }
                continue;
            }
            copied.frames += 1;
        } else {
            let Some(cs) = copied.clip_start else {
                continue;
            };
            if t < cs - 1e-3 || t >= end {
                continue;
            }
            copied.audio = true;
        }
        let Some(cs) = copied.clip_start else {
            continue;
        };
        let shift = to_ts(cs + origin, itb);
        packet.set_pts(packet.pts().map(|p| p - shift));
        packet.set_dts(packet.dts().map(|d| d - shift));
        packet.set_position(-1);
        packet.set_stream(oi);
        packet.rescale_ts(itb, stream_time_base(muxer, oi));
        packet
            .write_interleaved(muxer)
            .map_err(|e| write_error(out, "writing packets", e))?;
    }
    Ok(copied)
}
