use std::path::{Path, PathBuf};

use ff::codec::Id as CodecId;
use ff::media::Type as MediaType;
use ff::Rational;
use ffmpeg_next as ff;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::probe::{next_packet, Video};

/// How [`export_clip`] cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipMode {
    /// Decode and re-encode the video with x264: the clip starts and ends on exactly the
    /// frames asked for. Audio is copied when MP4 can hold its codec, else re-encoded to AAC.
    #[default]
    Reencode,
    /// Copy the compressed streams: fast and lossless, but the clip starts at the keyframe
    /// at or before the requested start (the [`ClipReport`] says where).
    StreamCopy,
}

/// x264 speed/size trade-off presets, fastest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum X264Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    #[default]
    Medium,
    Slow,
    Slower,
    Veryslow,
}

impl X264Preset {
    /// The name x264 uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            X264Preset::Ultrafast => "ultrafast",
            X264Preset::Superfast => "superfast",
            X264Preset::Veryfast => "veryfast",
            X264Preset::Faster => "faster",
            X264Preset::Fast => "fast",
            X264Preset::Medium => "medium",
            X264Preset::Slow => "slow",
            X264Preset::Slower => "slower",
            X264Preset::Veryslow => "veryslow",
        }
    }
}

impl std::str::FromStr for X264Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        use X264Preset::*;
        [
            Ultrafast, Superfast, Veryfast, Faster, Fast, Medium, Slow, Slower, Veryslow,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| format!("unknown x264 preset '{s}' (ultrafast ... veryslow)"))
    }
}

/// Options for [`export_clip`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipOptions {
    /// Re-encode (frame-accurate, default) or stream copy (fast, keyframe-aligned).
    pub mode: ClipMode,
    /// x264 constant rate factor, 0 (lossless) to 51; 18 (default) is visually lossless.
    pub crf: u8,
    /// x264 preset (default medium).
    pub preset: X264Preset,
    /// Keep the audio (default true). Files without audio give clips without audio.
    pub audio: bool,
    /// Threads of the clip's video decoder and of x264; 0 (default) lets FFmpeg and x264
    /// choose (about 1.5 per core). [`export_clips`] sets it when it cuts several clips at
    /// once.
    pub threads: usize,
}

impl Default for ClipOptions {
    fn default() -> Self {
        Self {
            mode: ClipMode::Reencode,
            crf: 18,
            preset: X264Preset::Medium,
            audio: true,
            threads: 0,
        }
    }
}

/// What [`export_clip`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipReport {
    /// The file written.
    pub path: PathBuf,
    /// Time in the source of the clip's first video frame.
    pub start: f64,
    /// End of the clip in the source (exclusive).
    pub end: f64,
    /// Number of video frames written.
    pub frames: u64,
    /// Whether audio was written.
    pub audio: bool,
    /// The mode used.
    pub mode: ClipMode,
    /// Stream copy only: whether the start moved back to a keyframe.
    pub snapped_to_keyframe: bool,
    /// The frames asked for by [`ClipJob::stills`], in that order, at the source's size
    /// with its rotation applied (as [`crate::Video::frames_from`] gives them). `None`
    /// where a time lies outside the clip, and every entry `None` for stream copy, which
    /// decodes nothing. Empty for [`export_clip`].
    #[serde(skip)]
    pub stills: Vec<Option<crate::Frame>>,
}

/// Cuts `[start, end)` seconds of `video` into an MP4 at `out`.
///
/// Re-encoding keeps exactly the frames whose presentation time lies in the range, applies
/// the rotation to the pixels (the clip plays upright everywhere) and copies or re-encodes
/// the audio of the same range. Stream copy starts at the keyframe at or before `start`.
/// The clip is written to a temporary file beside `out` and renamed into place only when
/// complete.
///
/// ```no_run
/// use reelsmith_decode::{open, export_clip, ClipOptions};
/// let v = open("match.mp4")?;
/// let report = export_clip(&v, 12.0, 17.5, "goal.mp4".as_ref(), &ClipOptions::default())?;
/// println!("{} frames from {:.3}s", report.frames, report.start);
/// # Ok::<(), reelsmith_decode::DecodeError>(())
/// ```
pub fn export_clip(
    video: &Video,
    start: f64,
    end: f64,
    out: &Path,
    opts: &ClipOptions,
) -> Result<ClipReport, DecodeError> {
    cut(video, &ClipJob::new(start, end, out), opts)
}

/// [`export_clip`] of one job, also handing back the frames at the job's still times.
fn cut(video: &Video, job: &ClipJob, opts: &ClipOptions) -> Result<ClipReport, DecodeError> {
    let (start, end, out, stills) = (job.start, job.end, job.out.as_path(), &job.stills[..]);
    let info = video.info();
    let src = &info.path;
    if !(start.is_finite() && end.is_finite() && start >= 0.0 && end > start) {
        return Err(DecodeError::InvalidArgument {
            path: src.clone(),
            detail: format!("clip [{start}, {end}) is empty or invalid: need 0 <= start < end"),
        });
    }
    if info.duration > 0.0 && start >= info.duration {
        return Err(DecodeError::InvalidArgument {
            path: src.clone(),
            detail: format!(
                "clip starts at {start:.3}s but the video is only {:.3}s long",
                info.duration
            ),
        });
    }
    if opts.crf > 51 {
        return Err(DecodeError::InvalidArgument {
            path: src.clone(),
            detail: format!("CRF {} is out of range: use 0..=51", opts.crf),
        });
    }
    let tmp = temp_beside(out)?;
    let report = match opts.mode {
        ClipMode::Reencode => reencode(video, start, end, tmp.path(), out, stills, opts),
        ClipMode::StreamCopy => {
            stream_copy(video, start, end, tmp.path(), out, opts).map(|r| ClipReport {
                stills: vec![None; stills.len()],
                ..r
            })
        }
    }?;
    if report.frames == 0 {
        return Err(DecodeError::InvalidArgument {
            path: src.clone(),
            detail: format!(
                "no video frame lies in [{start:.3}, {end:.3}); pick a range inside the video"
            ),
        });
    }
    tmp.persist(out).map_err(|e| DecodeError::Write {
        path: out.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok(report)
}

/// At most this many clips are cut at once by [`export_clips`]: each x264 encoder holds its
/// own lookahead and reference frames (about 150 MB at 1080p), so memory grows with the
/// number of encoders, not with the cores.
pub const MAX_CLIPS_AT_ONCE: usize = 4;

/// One clip for [`export_clips`]: `[start, end)` seconds of the video, written to `out`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipJob {
    /// Start in seconds.
    pub start: f64,
    /// End in seconds (exclusive).
    pub end: f64,
    /// The MP4 to write.
    pub out: PathBuf,
    /// Times (seconds) of frames to hand back in [`ClipReport::stills`] as RGB images: the
    /// first frame at or after each time. Re-encoding decodes these frames anyway, so a
    /// caller that needs pictures from inside its clips (a peak frame, keyframes) gets
    /// them without seeking and decoding again.
    pub stills: Vec<f64>,
}

impl ClipJob {
    /// A job for `[start, end)` written to `out`, with no stills.
    pub fn new(start: f64, end: f64, out: impl Into<PathBuf>) -> Self {
        Self {
            start,
            end,
            out: out.into(),
            stills: Vec::new(),
        }
    }

    /// Also hand back the frames at these times (see [`ClipJob::stills`]).
    pub fn with_stills(mut self, times: impl IntoIterator<Item = f64>) -> Self {
        self.stills = times.into_iter().collect();
        self
    }
}

/// Cuts several clips of one video as [`export_clip`] does, several at a time, and returns
/// their reports in the order of `jobs`. `done(i, report)` runs on the calling thread as
/// each clip `i` is written (for progress).
///
/// With `opts.threads` 0, as many clips as there are cores (at most
/// [`MAX_CLIPS_AT_ONCE`]) are cut at once and the cores are shared out among them: on 2 cores two single-threaded x264 encoders keep
/// both cores busy, where one frame-threaded encoder keeps about 1.5 busy on a clip of a few
/// seconds (its pipeline fills and drains on every clip). The last clip, cut while the
/// others finish, gets FFmpeg's own thread count. A non-zero `opts.threads` cuts one clip at
/// a time with that many threads each.
///
/// On the first failure no new clip is started and that error is returned; clips already
/// written stay (each one is complete: written to a temporary file and renamed).
///
/// ```no_run
/// use reelsmith_decode::{open, export_clips, ClipJob, ClipOptions};
/// let v = open("match.mp4")?;
/// let jobs: Vec<ClipJob> = [(12.0, 17.5), (40.0, 44.0)]
///     .iter()
///     .enumerate()
///     .map(|(i, &(start, end))| ClipJob::new(start, end, format!("clip_{i}.mp4")))
///     .collect();
/// let reports = export_clips(&v, &jobs, &ClipOptions::default(), |i, r| {
///     println!("clip {i}: {} frames", r.frames)
/// })?;
/// assert_eq!(reports.len(), 2);
/// # Ok::<(), reelsmith_decode::DecodeError>(())
/// ```
pub fn export_clips(
    video: &Video,
    jobs: &[ClipJob],
    opts: &ClipOptions,
    mut done: impl FnMut(usize, &ClipReport),
) -> Result<Vec<ClipReport>, DecodeError> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let cores = crate::parallel::cores();
    let workers = if opts.threads == 0 && jobs.len() > 1 && cores > 1 {
        cores.min(jobs.len()).min(MAX_CLIPS_AT_ONCE)
    } else {
        1
    };
    // Threads for job `i`: the cores shared among the jobs running beside it. The first
    // `workers` jobs start together; a later one starts as another finishes, and near the
    // end fewer remain, so the very last gets FFmpeg's own choice again.
    let job_opts = |i: usize| -> ClipOptions {
        let beside = if i < workers {
            workers
        } else {
            (jobs.len() - i).min(workers)
        };
        let threads = match (workers, beside) {
            (1, _) | (_, 1) => opts.threads,
            _ => (cores / beside).max(1),
        };
        ClipOptions {
            threads,
            ..opts.clone()
        }
    };
    let mut reports: Vec<Option<ClipReport>> = vec![None; jobs.len()];
    if workers == 1 {
        for (i, job) in jobs.iter().enumerate() {
            let r = cut(video, job, &job_opts(i))?;
            done(i, &r);
            reports[i] = Some(r);
        }
    } else {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let mut first_error: Option<(usize, DecodeError)> = None;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel();
            for _ in 0..workers {
                let tx = tx.clone();
                let (next, failed, job_opts) = (&next, &failed, &job_opts);
                scope.spawn(move || loop {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let r = cut(video, job, &job_opts(i));
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            for (i, r) in rx {
                match r {
                    Ok(r) => {
                        done(i, &r);
                        reports[i] = Some(r);
                    }
                    // keep the error of the earliest clip, as a sequential run would
                    Err(e) if first_error.as_ref().is_none_or(|(j, _)| i < *j) => {
                        first_error = Some((i, e));
                    }
                    Err(_) => {}
                }
            }
        });
        if let Some((_, e)) = first_error {
            return Err(e);
        }
    }
    Ok(reports
        .into_iter()
        .map(|r| r.expect("every clip was cut"))
        .collect())
}

fn temp_beside(out: &Path) -> Result<tempfile::NamedTempFile, DecodeError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".reelsmith-").suffix(".part");
    // The finished file gets the mode any new file gets (0666 less the umask), not the
    // owner-only 0600 of a temporary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(&dir).map_err(|e| DecodeError::Write {
        path: out.to_path_buf(),
        detail: format!("cannot create a temporary file in {}: {e}", dir.display()),
    })
}

fn werr(out: &Path, what: &str, e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Write {
        path: out.to_path_buf(),
        detail: format!("{what}: {e}"),
    }
}

/// Audio codecs the MP4 muxer accepts as they are.
fn mp4_audio_ok(id: CodecId) -> bool {
    matches!(
        id,
        CodecId::AAC
            | CodecId::MP3
            | CodecId::AC3
            | CodecId::EAC3
            | CodecId::OPUS
            | CodecId::ALAC
            | CodecId::FLAC
    )
}

fn secs(ts: i64, tb: Rational) -> f64 {
    ts as f64 * f64::from(tb)
}

fn to_ts(t: f64, tb: Rational) -> i64 {
    (t / f64::from(tb)).round() as i64
}

/// Adds an output stream that copies `params` as they are, in time base `tb`; returns its
/// index.
fn add_copy_stream(
    octx: &mut ff::format::context::Output,
    params: ff::codec::Parameters,
    tb: Rational,
) -> Result<usize, ff::Error> {
    let mut ost = octx.add_stream(ff::encoder::find(CodecId::None))?;
    ost.set_parameters(params);
    // The source container's codec tag (from Matroska, say) is meaningless in MP4; zero
    // lets the muxer choose its own.
    // SAFETY: the stream's parameters are owned by the output context and valid here.
    unsafe {
        (*ost.parameters().as_mut_ptr()).codec_tag = 0;
    }
    ost.set_time_base(tb);
    Ok(ost.index())
}

struct AudioTranscoder {
    decoder: ff::decoder::Audio,
    encoder: ff::encoder::Audio,
    graph: ff::filter::Graph,
    out_index: usize,
    out_tb: Rational,
}

fn reencode(
    video: &Video,
    start: f64,
    end: f64,
    tmp: &Path,
    out: &Path,
    still_times: &[f64],
    opts: &ClipOptions,
) -> Result<ClipReport, DecodeError> {
    let info = video.info();
    let src = &info.path;
    let mut ictx = video.input()?;
    let origin = info.start_time;
    let (vin_tb, vparams) = {
        let s = ictx
            .stream(info.stream_index)
            .expect("probed stream exists");
        (s.time_base(), s.parameters())
    };
    let audio_in = if opts.audio {
        ictx.streams()
            .best(MediaType::Audio)
            .map(|s| (s.index(), s.time_base(), s.parameters()))
    } else {
        None
    };

    // Video decoder.
    let mut vctx = ff::codec::context::Context::from_parameters(vparams)
        .map_err(|e| DecodeError::ffmpeg(src, "reading stream parameters", e))?;
    vctx.set_threading(ff::codec::threading::Config {
        kind: ff::codec::threading::Type::Frame,
        count: opts.threads,
        ..Default::default()
    });
    let mut vdec = {
        let mut d = vctx.decoder();
        d.set_packet_time_base(vin_tb);
        d.video()
            .map_err(|e| DecodeError::ffmpeg(src, "opening the video decoder", e))?
    };

    let mut octx =
        ff::format::output_as(&tmp, "mp4").map_err(|e| werr(out, "creating the MP4 muxer", e))?;
    let global_header = octx
        .format()
        .flags()
        .contains(ff::format::Flags::GLOBAL_HEADER);

    // Video encoder: display-oriented size, even sides for 4:2:0.
    let (w, h) = (info.width & !1, info.height & !1);
    let codec = ff::encoder::find_by_name("libx264")
        .or_else(|| ff::encoder::find(CodecId::H264))
        .ok_or_else(|| {
            werr(
                out,
                "H.264 encoder",
                "the linked FFmpeg has no H.264 encoder (libx264)",
            )
        })?;
    let mut ectx = ff::codec::context::Context::new_with_codec(codec);
    // libavcodec's default is one thread; 0 lets x264 pick (about 1.5 per core).
    ectx.set_threading(ff::codec::threading::Config {
        kind: ff::codec::threading::Type::Frame,
        count: opts.threads,
        ..Default::default()
    });
    let mut venc = ectx
        .encoder()
        .video()
        .map_err(|e| werr(out, "creating the H.264 encoder", e))?;
    venc.set_width(w);
    venc.set_height(h);
    venc.set_format(ff::format::Pixel::YUV420P);
    venc.set_time_base(vin_tb);
    if info.fps > 0.0 {
        if let Some(r) = reelsmith_core::FrameRate::from_fps(info.fps) {
            venc.set_frame_rate(Some(Rational::new(r.num as i32, r.den as i32)));
        }
    }
    if global_header {
        venc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let mut dict = ff::Dictionary::new();
    dict.set("crf", &opts.crf.to_string());
    dict.set("preset", opts.preset.as_str());
    let mut venc = venc
        .open_as_with(codec, dict)
        .map_err(|e| werr(out, "opening the H.264 encoder", e))?;
    let vout_index = {
        let mut ost = octx
            .add_stream(codec)
            .map_err(|e| werr(out, "adding the video stream", e))?;
        ost.set_parameters(&venc);
        ost.set_time_base(vin_tb);
        ost.index()
    };

    // Video filter: rotation and conversion to 4:2:0 at the encoder's size.
    let transpose = match info.rotation {
        90 => "transpose=clock,",
        180 => "hflip,vflip,",
        270 => "transpose=cclock,",
        _ => "",
    };
    let mut vgraph = ff::filter::Graph::new();
    let vbuf_args = format!(
        "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect=1/1",
        vdec.width(),
        vdec.height(),
        ff::ffi::AVPixelFormat::from(vdec.format()) as i32,
        vin_tb.numerator(),
        vin_tb.denominator()
    );
    let vspec = format!("{transpose}scale={w}:{h},format=pix_fmts=yuv420p");
    build_graph(&mut vgraph, "buffer", &vbuf_args, "buffersink", &vspec)
        .map_err(|e| werr(out, "building the video filter", e))?;

    // Audio: copy or transcode.
    let mut audio_copy: Option<(usize, Rational, usize)> = None; // (in index, in tb, out index)
    let mut audio_tx: Option<(usize, Rational, AudioTranscoder)> = None;
    if let Some((ai, atb, aparams)) = audio_in {
        if mp4_audio_ok(aparams.id()) {
            let oi = add_copy_stream(&mut octx, aparams, atb)
                .map_err(|e| werr(out, "adding the audio stream", e))?;
            audio_copy = Some((ai, atb, oi));
        } else {
            let tx = audio_transcoder(&mut octx, aparams, global_header, end - start)
                .map_err(|e| werr(out, "setting up AAC audio", e))?;
            audio_tx = Some((ai, atb, tx));
        }
    }

    octx.write_header()
        .map_err(|e| werr(out, "writing the MP4 header", e))?;
    let vout_tb = octx.stream(vout_index).expect("added").time_base();

    // Seek to a keyframe shown at or before the start.
    crate::probe::seek_to_show(&mut ictx, info, start);

    let vorigin = to_ts(origin, vin_tb);
    let frame_dur = if info.fps > 0.0 {
        to_ts(1.0 / info.fps, vin_tb).max(1)
    } else {
        0
    };
    let mut frames = 0u64;
    let mut first_time: Option<f64> = None;
    let mut video_done = false;
    let mut audio_done = audio_copy.is_none() && audio_tx.is_none();
    let mut skipping = false;
    let mut stills: Vec<Option<crate::Frame>> = vec![None; still_times.len()];
    let mut conv: Option<crate::frames::Converter> = None;
    let mut packet = ff::Packet::empty();
    let mut decoded = ff::frame::Video::empty();
    let mut filtered = ff::frame::Video::empty();
    let write_video = |venc: &mut ff::encoder::Video,
                       octx: &mut ff::format::context::Output|
     -> Result<(), DecodeError> {
        let mut p = ff::Packet::empty();
        while venc.receive_packet(&mut p).is_ok() {
            // x264 leaves durations at 0; without them the MP4 edit list ends at the last
            // frame's start and players drop that frame.
            if p.duration() <= 0 && frame_dur > 0 {
                p.set_duration(frame_dur);
            }
            p.set_stream(vout_index);
            p.rescale_ts(vin_tb, vout_tb);
            p.write_interleaved(octx)
                .map_err(|e| werr(out, "writing video", e))?;
        }
        Ok(())
    };
    let mut handle_frames = |vdec: &mut ff::decoder::Video,
                             vgraph: &mut ff::filter::Graph,
                             venc: &mut ff::encoder::Video,
                             octx: &mut ff::format::context::Output,
                             frames: &mut u64,
                             first_time: &mut Option<f64>,
                             video_done: &mut bool|
     -> Result<(), DecodeError> {
        while vdec.receive_frame(&mut decoded).is_ok() {
            let Some(ts) = decoded.timestamp().or(decoded.pts()) else {
                continue;
            };
            let t = secs(ts - vorigin, vin_tb);
            if t < start - 5e-4 {
                continue;
            }
            if t >= end - 5e-4 {
                *video_done = true;
                continue;
            }
            first_time.get_or_insert(t);
            // Stills: this frame is the first at or after each time not yet served.
            for (k, &at) in still_times.iter().enumerate() {
                if stills[k].is_none() && at >= start - 5e-4 && t >= at - 5e-4 {
                    let conv = conv.get_or_insert_with(|| {
                        crate::frames::Converter::new(info, &crate::DecodeOptions::new())
                    });
                    let image = match stills[..k].iter().flatten().find(|f| f.time == t) {
                        Some(same) => same.image.clone(),
                        None => conv.convert(&decoded)?,
                    };
                    let index = if info.fps > 0.0 {
                        (t * info.fps).round().max(0.0) as u64
                    } else {
                        0
                    };
                    stills[k] = Some(crate::Frame {
                        index,
                        time: t,
                        image,
                    });
                }
            }
            decoded.set_pts(Some(to_ts(t - start, vin_tb)));
            vgraph
                .get("in")
                .expect("source")
                .source()
                .add(&decoded)
                .map_err(|e| werr(out, "filtering video", e))?;
            while vgraph
                .get("out")
                .expect("sink")
                .sink()
                .frame(&mut filtered)
                .is_ok()
            {
                filtered.set_kind(ff::picture::Type::None);
                venc.send_frame(&filtered)
                    .map_err(|e| werr(out, "encoding video", e))?;
                *frames += 1;
                write_video(venc, octx)?;
            }
        }
        Ok(())
    };

    while !(video_done && audio_done) {
        if !next_packet(&mut ictx, &mut packet, src, first_time)? {
            break;
        }
        let si = packet.stream();
        if si == info.stream_index {
            if video_done {
                continue;
            }
            let time = packet.pts().map(|p| secs(p - vorigin, vin_tb));
            crate::frames::skip_unreferenced_before(&mut vdec, time, start, &mut skipping);
            let _ = vdec.send_packet(&packet);
            handle_frames(
                &mut vdec,
                &mut vgraph,
                &mut venc,
                &mut octx,
                &mut frames,
                &mut first_time,
                &mut video_done,
            )?;
        } else if let Some((ai, atb, oi)) = audio_copy {
            if si != ai || audio_done {
                continue;
            }
            let Some(pts) = packet.pts() else { continue };
            let t = secs(pts, atb) - origin;
            if t >= end {
                audio_done = true;
                continue;
            }
            if t < start - 1e-3 {
                continue;
            }
            let shift = to_ts(start + origin, atb);
            packet.set_pts(Some(pts - shift));
            packet.set_dts(packet.dts().map(|d| d - shift));
            packet.set_position(-1);
            packet.set_stream(oi);
            let otb = octx.stream(oi).expect("added").time_base();
            packet.rescale_ts(atb, otb);
            packet
                .write_interleaved(&mut octx)
                .map_err(|e| werr(out, "writing audio", e))?;
        } else if let Some((ai, atb, tx)) = audio_tx.as_mut() {
            if si != *ai || audio_done {
                continue;
            }
            if packet
                .pts()
                .is_some_and(|p| secs(p, *atb) - origin >= end + 0.5)
            {
                audio_done = true;
                continue;
            }
            let _ = tx.decoder.send_packet(&packet);
            pump_audio(tx, *atb, origin, start, &mut octx, false)
                .map_err(|e| werr(out, "encoding audio", e))?;
        }
    }
    // Flush video.
    let _ = vdec.send_eof();
    handle_frames(
        &mut vdec,
        &mut vgraph,
        &mut venc,
        &mut octx,
        &mut frames,
        &mut first_time,
        &mut video_done,
    )?;
    let _ = vgraph.get("in").expect("source").source().flush();
    while vgraph
        .get("out")
        .expect("sink")
        .sink()
        .frame(&mut filtered)
        .is_ok()
    {
        venc.send_frame(&filtered)
            .map_err(|e| werr(out, "encoding video", e))?;
        frames += 1;
    }
    venc.send_eof()
        .map_err(|e| werr(out, "finishing the video", e))?;
    write_video(&mut venc, &mut octx)?;
    let has_audio = audio_copy.is_some() || audio_tx.is_some();
    if let Some((_, atb, tx)) = audio_tx.as_mut() {
        let _ = tx.decoder.send_eof();
        pump_audio(tx, *atb, origin, start, &mut octx, true)
            .map_err(|e| werr(out, "encoding audio", e))?;
    }
    octx.write_trailer()
        .map_err(|e| werr(out, "finishing the MP4", e))?;
    Ok(ClipReport {
        path: out.to_path_buf(),
        start: first_time.unwrap_or(start),
        end,
        frames,
        audio: has_audio,
        mode: ClipMode::Reencode,
        snapped_to_keyframe: false,
        stills,
    })
}

fn build_graph(
    graph: &mut ff::filter::Graph,
    src: &str,
    src_args: &str,
    sink: &str,
    spec: &str,
) -> Result<(), ff::Error> {
    graph.add(
        &ff::filter::find(src).ok_or(ff::Error::FilterNotFound)?,
        "in",
        src_args,
    )?;
    graph.add(
        &ff::filter::find(sink).ok_or(ff::Error::FilterNotFound)?,
        "out",
        "",
    )?;
    graph.output("in", 0)?.input("out", 0)?.parse(spec)?;
    graph.validate()
}

fn audio_transcoder(
    octx: &mut ff::format::context::Output,
    params: ff::codec::Parameters,
    global_header: bool,
    clip_duration: f64,
) -> Result<AudioTranscoder, ff::Error> {
    let decoder = ff::codec::context::Context::from_parameters(params)?
        .decoder()
        .audio()?;
    let codec = ff::encoder::find(CodecId::AAC).ok_or(ff::Error::EncoderNotFound)?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()?;
    let rate = decoder.rate() as i32;
    let mut layout = decoder.channel_layout();
    if layout.is_empty() {
        layout = ff::ChannelLayout::default(i32::from(decoder.channels()));
    }
    enc.set_rate(rate);
    enc.set_channel_layout(layout);
    enc.set_channels(layout.channels());
    enc.set_format(ff::format::Sample::F32(ff::format::sample::Type::Planar));
    enc.set_bit_rate(192_000);
    enc.set_time_base(Rational::new(1, rate));
    if global_header {
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    }
    let encoder = enc.open_as(codec)?;
    let out_index = {
        let mut ost = octx.add_stream(codec)?;
        ost.set_parameters(&encoder);
        ost.set_time_base(Rational::new(1, rate));
        ost.index()
    };
    let mut graph = ff::filter::Graph::new();
    let args = format!(
        "time_base=1/{rate}:sample_rate={rate}:sample_fmt={}:channel_layout=0x{:x}",
        decoder.format().name(),
        layout.bits()
    );
    let frame_size = encoder.frame_size().max(1024);
    let spec = format!(
        "atrim=start=0:end={:.6},asetpts=PTS-STARTPTS,aformat=sample_fmts=fltp:channel_layouts=0x{:x},asetnsamples=n={frame_size}:p=0",
        clip_duration,
        layout.bits()
    );
    build_graph(&mut graph, "abuffer", &args, "abuffersink", &spec)?;
    Ok(AudioTranscoder {
        decoder,
        encoder,
        graph,
        out_index,
        out_tb: Rational::new(1, rate),
    })
}

fn pump_audio(
    tx: &mut AudioTranscoder,
    in_tb: Rational,
    origin: f64,
    start: f64,
    octx: &mut ff::format::context::Output,
    flush: bool,
) -> Result<(), ff::Error> {
    let rate = tx.decoder.rate() as f64;
    let mut frame = ff::frame::Audio::empty();
    while tx.decoder.receive_frame(&mut frame).is_ok() {
        let Some(ts) = frame.timestamp().or(frame.pts()) else {
            continue;
        };
        // Samples before the start get negative timestamps and atrim drops them.
        let t = secs(ts, in_tb) - origin - start;
        frame.set_pts(Some((t * rate).round() as i64));
        tx.graph.get("in").expect("source").source().add(&frame)?;
    }
    if flush {
        tx.graph.get("in").expect("source").source().flush()?;
    }
    let mut filtered = ff::frame::Audio::empty();
    while tx
        .graph
        .get("out")
        .expect("sink")
        .sink()
        .frame(&mut filtered)
        .is_ok()
    {
        tx.encoder.send_frame(&filtered)?;
        write_audio(tx, octx)?;
    }
    if flush {
        tx.encoder.send_eof()?;
        write_audio(tx, octx)?;
    }
    Ok(())
}

fn write_audio(
    tx: &mut AudioTranscoder,
    octx: &mut ff::format::context::Output,
) -> Result<(), ff::Error> {
    let otb = octx.stream(tx.out_index).expect("added").time_base();
    let mut p = ff::Packet::empty();
    while tx.encoder.receive_packet(&mut p).is_ok() {
        p.set_stream(tx.out_index);
        p.rescale_ts(tx.out_tb, otb);
        p.write_interleaved(octx)?;
    }
    Ok(())
}

fn stream_copy(
    video: &Video,
    start: f64,
    end: f64,
    tmp: &Path,
    out: &Path,
    opts: &ClipOptions,
) -> Result<ClipReport, DecodeError> {
    let info = video.info();
    let src = &info.path;
    let mut ictx = video.input()?;
    let origin = info.start_time;
    let mut octx =
        ff::format::output_as(&tmp, "mp4").map_err(|e| werr(out, "creating the MP4 muxer", e))?;
    let vi = info.stream_index;
    let vtb = ictx.stream(vi).expect("probed").time_base();
    let mut map: Vec<Option<(usize, Rational)>> = vec![None; ictx.nb_streams() as usize];
    {
        let vs = ictx.stream(vi).expect("probed");
        let oi = add_copy_stream(&mut octx, vs.parameters(), vtb)
            .map_err(|e| werr(out, "adding the video stream", e))?;
        map[vi] = Some((oi, vtb));
    }
    if opts.audio {
        if let Some(a) = ictx.streams().best(MediaType::Audio) {
            if mp4_audio_ok(a.parameters().id()) {
                let oi = add_copy_stream(&mut octx, a.parameters(), a.time_base())
                    .map_err(|e| werr(out, "adding the audio stream", e))?;
                map[a.index()] = Some((oi, a.time_base()));
            } else {
                tracing::warn!(
                    "{}: audio codec {} cannot be stream-copied into MP4; the clip has no audio (use re-encode mode to keep it)",
                    src.display(),
                    a.parameters().id().name()
                );
            }
        }
    }
    // Rotation travels as stream side data with the copied parameters only on newer FFmpeg;
    // set the legacy tag too so players turn the picture.
    if info.rotation != 0 {
        if let Some(mut ost) = octx.stream_mut(0) {
            let mut md = ff::Dictionary::new();
            md.set("rotate", &((360 - info.rotation) % 360).to_string());
            ost.set_metadata(md);
        }
    }
    octx.write_header()
        .map_err(|e| werr(out, "writing the MP4 header", e))?;
    crate::probe::seek_to_show(&mut ictx, info, start);
    let mut packet = ff::Packet::empty();
    let mut clip_start: Option<f64> = None; // source time of the first keyframe copied
    let mut frames = 0u64;
    let mut wrote_audio = false;
    while next_packet(&mut ictx, &mut packet, src, clip_start)? {
        let si = packet.stream();
        let Some((oi, itb)) = map.get(si).copied().flatten() else {
            continue;
        };
        let Some(pts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        let t = secs(pts, itb) - origin;
        if si == vi {
            if clip_start.is_none() {
                // Wait for a keyframe at or before the start (the seek should land on one).
                if !packet.is_key() || t > start + 1e-3 {
                    if t > start + 1e-3 && packet.is_key() {
                        clip_start = Some(t);
                    } else {
                        continue;
                    }
                } else {
                    clip_start = Some(t);
                }
            }
            if t >= end - 5e-4 {
                // B-frames can come later in decode order with earlier pts; keep reading a
                // little, but a keyframe past the end closes the clip.
                if packet.is_key() {
                    break;
                }
                continue;
            }
            frames += 1;
        } else {
            let Some(cs) = clip_start else { continue };
            if t < cs - 1e-3 || t >= end {
                continue;
            }
            wrote_audio = true;
        }
        let cs = clip_start.expect("set above");
        let shift = to_ts(cs + origin, itb);
        packet.set_pts(packet.pts().map(|p| p - shift));
        packet.set_dts(packet.dts().map(|d| d - shift));
        packet.set_position(-1);
        packet.set_stream(oi);
        let otb = octx.stream(oi).expect("added").time_base();
        packet.rescale_ts(itb, otb);
        packet
            .write_interleaved(&mut octx)
            .map_err(|e| werr(out, "writing packets", e))?;
    }
    octx.write_trailer()
        .map_err(|e| werr(out, "finishing the MP4", e))?;
    let cs = clip_start.unwrap_or(start);
    Ok(ClipReport {
        path: out.to_path_buf(),
        start: cs,
        end,
        frames,
        audio: wrote_audio,
        mode: ClipMode::StreamCopy,
        stills: Vec::new(),
        snapped_to_keyframe: (cs - start).abs() > 1e-3,
    })
}

/// Image file formats for [`save_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG with the given quality, 1..=100.
    Jpeg(u8),
    /// Lossless PNG.
    Png,
}

impl ImageFormat {
    /// Picks the format from the file extension (`.jpg`/`.jpeg` → JPEG quality 90, `.png`).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jpg" | "jpeg" => Some(ImageFormat::Jpeg(90)),
            "png" => Some(ImageFormat::Png),
            _ => None,
        }
    }
}

/// Writes `image` to `path` as JPEG or PNG (from `format`, or from the extension when
/// `None`), through a temporary file renamed into place.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let img = image::RgbImage::from_pixel(8, 4, image::Rgb([200, 10, 10]));
/// let path = dir.path().join("red.png");
/// reelsmith_decode::save_image(&img, &path, None).unwrap();
/// assert_eq!(image::open(&path).unwrap().to_rgb8(), img);
/// ```
pub fn save_image(
    image: &RgbImage,
    path: &Path,
    format: Option<ImageFormat>,
) -> Result<(), DecodeError> {
    let fmt = format
        .or_else(|| ImageFormat::from_path(path))
        .ok_or_else(|| DecodeError::InvalidArgument {
            path: path.to_path_buf(),
            detail: "unknown image extension: use .jpg, .jpeg or .png".into(),
        })?;
    let tmp = temp_beside(path)?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file());
        let res = match fmt {
            ImageFormat::Jpeg(q) => {
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, q.clamp(1, 100))
                    .encode_image(image)
            }
            ImageFormat::Png => image.write_to(&mut w, image::ImageFormat::Png),
        };
        res.map_err(|e| werr(path, "encoding the image", e))?;
        use std::io::Write;
        w.flush().map_err(|e| werr(path, "writing the image", e))?;
    }
    tmp.persist(path)
        .map_err(|e| werr(path, "renaming into place", e))?;
    Ok(())
}
