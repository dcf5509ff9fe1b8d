//! A frame-accurate cut: the source's video decoded from the keyframe before the start,
//! the frames in range turned upright and converted to 4:2:0, encoded with x264, muxed
//! into MP4 beside the clip's [`audio`](super::audio); [`stills`](super::stills) picked up
//! on the way.

use std::path::Path;

use ff::Rational;
use ffmpeg_next as ff;

use crate::error::DecodeError;
use crate::export::audio::{ClipAudio, Range};
use crate::export::filter::{FilterError, Graph};
use crate::export::h264::{open_h264, H264Settings};
use crate::export::job::{ClipJob, ClipMode, ClipOptions, ClipReport, CutFailure};
use crate::export::output::{open_mp4, stream_time_base, to_ts, wants_global_header, write_error};
use crate::export::stills::Stills;
use crate::export::timestamps::{IncreasingPts, TimestampFixer};
use crate::frames::decoder::{frame_ts, open_decoder, skip_unreferenced_before, Clock};
use crate::probe::demux::{next_packet, seek_to_show};
use crate::probe::info::VideoInfo;
use crate::probe::video::Video;

/// The video side of the output: the filter that turns and converts the pictures, the
/// H.264 encoder and its stream.
struct VideoOut {
    filter: Graph,
    encoder: ff::encoder::Video,
    /// The output stream.
    index: usize,
    /// The encoder's time base (the source stream's).
    tb: Rational,
    /// The output stream's time base (the muxer's choice).
    out_tb: Rational,
    /// One frame in `tb` units, for packets x264 leaves without a duration (0: unknown).
    frame_dur: i64,
    /// Keeps the pictures' timestamps strictly increasing into the encoder.
    pts: IncreasingPts,
    /// Keeps the packets' timestamps valid for the muxer.
    timestamps: TimestampFixer,
    /// The filter's output frame, reused.
    filtered: ff::frame::Video,
}

/// One re-encoding cut, holding everything it reads and writes.
pub(super) struct Reencoder<'a> {
    info: &'a VideoInfo,
    /// The destination, which errors name (the muxer writes to a temporary file).
    out: &'a Path,
    range: Range,
    input: ff::format::context::Input,
    decoder: ff::decoder::Video,
    /// Times of the source's video stream.
    clock: Clock,
    /// Whether the decoder drops unreferenced frames (before the start).
    skipping: bool,
    /// The decoder's output frame, reused.
    decoded: ff::frame::Video,
    video: VideoOut,
    audio: Option<ClipAudio>,
    muxer: ff::format::context::Output,
    stills: Stills<'a>,
    /// Frames sent to the encoder.
    frames: u64,
    /// Source time of the clip's first frame.
    first_time: Option<f64>,
    /// Whether a frame at or past the end came out.
    video_done: bool,
    /// What the cut changed, for the report.
    warnings: Vec<String>,
}

impl<'a> Reencoder<'a> {
    /// Opens the source, the decoder, the encoder and the muxer (writing to `tmp`) for
    /// `job`, writes the MP4 header and seeks to the keyframe shown at or before the start.
    pub(super) fn new(
        video: &'a Video,
        job: &'a ClipJob,
        tmp: &Path,
        opts: &ClipOptions,
    ) -> Result<Self, CutFailure> {
        let info = video.info();
        let out = job.out.as_path();
        let mut input = video.input()?;
        let stream = input
            .stream(info.stream_index)
            .ok_or_else(|| DecodeError::NoVideoStream {
                path: info.path.clone(),
                streams: "the stream found when probing has gone".into(),
            })?;
        let tb = stream.time_base();
        let decoder = open_decoder(&info.path, &stream, None, opts.threads, false)?;
        let mut muxer = open_mp4(tmp, out)?;
        let global_header = wants_global_header(&muxer);
        let mut warnings = Vec::new();
        let size = encoder_size(info, &mut warnings);
        let mut video_out = VideoOut::new(
            info,
            &decoder,
            tb,
            size,
            opts,
            global_header,
            &mut muxer,
            out,
        )?;
        let audio = if opts.audio {
            ClipAudio::add(&input, &mut muxer, global_header, job.end - job.start)?
        } else {
            None
        };
        muxer
            .write_header()
            .map_err(|e| CutFailure::header(out, e, audio.is_some()))?;
        video_out.out_tb = stream_time_base(&muxer, video_out.index);
        seek_to_show(&mut input, info, job.start);
        Ok(Self {
            info,
            out,
            range: Range {
                origin: info.start_time,
                start: job.start,
                end: job.end,
            },
            input,
            decoder,
            clock: Clock::new(info, f64::from(tb)),
            skipping: false,
            decoded: ff::frame::Video::empty(),
            video: video_out,
            audio,
            muxer,
            stills: Stills::new(info, &job.stills, job.start),
            frames: 0,
            first_time: None,
            video_done: false,
            warnings,
        })
    }

    /// Cuts: reads packets until the video and the audio are past the end, drains the
    /// decoder and the encoders, and writes the trailer.
    pub(super) fn run(mut self) -> Result<ClipReport, CutFailure> {
        let src = self.info.path.clone();
        let mut packet = ff::Packet::empty();
        while !(self.video_done && self.audio.as_ref().is_none_or(ClipAudio::done)) {
            if !next_packet(&mut self.input, &mut packet, &src, self.first_time)? {
                break;
            }
            if packet.stream() == self.info.stream_index {
                if !self.video_done {
                    self.on_video_packet(&packet)?;
                }
            } else if let Some(audio) = self.audio.as_mut() {
                audio.on_packet(&mut packet, &mut self.muxer, self.range)?;
            }
        }
        self.finish_video()?;
        if let Some(audio) = self.audio.as_mut() {
            audio.finish(&mut self.muxer, self.range)?;
        }
        self.muxer
            .write_trailer()
            .map_err(|e| write_error(self.out, "finishing the MP4", e))?;
        let fixed = self.video.pts.fixed()
            + self.video.timestamps.fixed()
            + self.audio.as_ref().map_or(0, ClipAudio::timestamps_fixed);
        if fixed > 0 {
            self.warnings.push(format!(
                "{}: {fixed} timestamps repeat or run backwards; the clip has them increasing",
                src.display()
            ));
        }
        Ok(ClipReport {
            path: self.out.to_path_buf(),
            start: self.first_time.unwrap_or(self.range.start),
            end: self.range.end,
            frames: self.frames,
            audio: self.audio.is_some(),
            mode: ClipMode::Reencode,
            snapped_to_keyframe: false,
            stills: self.stills.into_frames(),
            warnings: self.warnings,
        })
    }

    /// Decodes a video packet and encodes the frames in range that come out.
    fn on_video_packet(&mut self, packet: &ff::Packet) -> Result<(), DecodeError> {
        let time = packet.pts().map(|p| self.clock.seconds(p));
        skip_unreferenced_before(
            &mut self.decoder,
            time,
            self.range.start,
            &mut self.skipping,
        );
        let _ = self.decoder.send_packet(packet);
        self.drain_decoder()
    }

    /// Takes every frame the decoder has ready: frames before the start are dropped, a
    /// frame at or past the end ends the video, the others are encoded (and serve the
    /// stills).
    fn drain_decoder(&mut self) -> Result<(), DecodeError> {
        let (start, end) = (self.range.start, self.range.end);
        while self.decoder.receive_frame(&mut self.decoded).is_ok() {
            // A frame without a timestamp comes one average frame after the previous one.
            let t = self.clock.frame_time(frame_ts(&self.decoded));
            if t < start - 5e-4 {
                continue;
            }
            if t >= end - 5e-4 {
                self.video_done = true;
                continue;
            }
            self.first_time.get_or_insert(t);
            self.stills.offer(&self.decoded, t)?;
            let pts = self.video.pts.next(to_ts(t - start, self.video.tb));
            self.decoded.set_pts(Some(pts));
            self.frames += self
                .video
                .encode(&self.decoded, &mut self.muxer, self.out)?;
        }
        Ok(())
    }

    /// Drains the decoder, the filter and the encoder at the end of the clip.
    fn finish_video(&mut self) -> Result<(), DecodeError> {
        let _ = self.decoder.send_eof();
        self.drain_decoder()?;
        self.frames += self.video.finish(&mut self.muxer, self.out)?;
        Ok(())
    }
}

impl VideoOut {
    /// Opens x264 for `(w, h)` pictures in the source's time base, adds its stream to
    /// `muxer`, and builds the filter from the decoder's pictures to the encoder's:
    /// rotation, scaling, 4:2:0.
    #[allow(clippy::too_many_arguments)]
    fn new(
        info: &VideoInfo,
        decoder: &ff::decoder::Video,
        tb: Rational,
        (w, h): (u32, u32),
        opts: &ClipOptions,
        global_header: bool,
        muxer: &mut ff::format::context::Output,
        out: &Path,
    ) -> Result<Self, DecodeError> {
        let (encoder, codec) = open_x264(info, (w, h), tb, opts, global_header, out)?;
        let index = {
            let mut ost = muxer
                .add_stream(codec)
                .map_err(|e| write_error(out, "adding the video stream", e))?;
            ost.set_parameters(&encoder);
            ost.set_time_base(tb);
            ost.index()
        };
        let filter = video_filter(info, decoder, tb, (w, h))
            .map_err(|e| write_error(out, "building the video filter", e))?;
        let frame_dur = if info.fps > 0.0 {
            to_ts(1.0 / info.fps, tb).max(1)
        } else {
            0
        };
        Ok(Self {
            filter,
            encoder,
            index,
            tb,
            out_tb: tb,
            frame_dur,
            pts: IncreasingPts::default(),
            timestamps: TimestampFixer::default(),
            filtered: ff::frame::Video::empty(),
        })
    }

    /// Filters and encodes one decoded frame (its pts set in the encoder's time base);
    /// returns how many frames went into the encoder.
    fn encode(
        &mut self,
        frame: &ff::frame::Video,
        muxer: &mut ff::format::context::Output,
        out: &Path,
    ) -> Result<u64, DecodeError> {
        self.filter
            .push(frame)
            .map_err(|e| write_error(out, "filtering video", e))?;
        let mut sent = 0;
        while self.filter.pull(&mut self.filtered) {
            self.filtered.set_kind(ff::picture::Type::None);
            self.encoder
                .send_frame(&self.filtered)
                .map_err(|e| write_error(out, "encoding video", e))?;
            sent += 1;
            self.write_packets(muxer, out)?;
        }
        Ok(sent)
    }

    /// Drains the filter and the encoder; returns how many frames went into the encoder.
    fn finish(
        &mut self,
        muxer: &mut ff::format::context::Output,
        out: &Path,
    ) -> Result<u64, DecodeError> {
        let _ = self.filter.flush();
        let mut sent = 0;
        while self.filter.pull(&mut self.filtered) {
            self.encoder
                .send_frame(&self.filtered)
                .map_err(|e| write_error(out, "encoding video", e))?;
            sent += 1;
        }
        self.encoder
            .send_eof()
            .map_err(|e| write_error(out, "finishing the video", e))?;
        self.write_packets(muxer, out)?;
        Ok(sent)
    }

    /// Writes the packets the encoder has ready.
    fn write_packets(
        &mut self,
        muxer: &mut ff::format::context::Output,
        out: &Path,
    ) -> Result<(), DecodeError> {
        let mut p = ff::Packet::empty();
        while self.encoder.receive_packet(&mut p).is_ok() {
            // x264 leaves durations at 0; without them the MP4 edit list ends at the last
            // frame's start and players drop that frame.
            if p.duration() <= 0 && self.frame_dur > 0 {
                p.set_duration(self.frame_dur);
            }
            p.set_stream(self.index);
            p.rescale_ts(self.tb, self.out_tb);
            self.timestamps.fix_packet(&mut p);
            p.write_interleaved(muxer)
                .map_err(|e| write_error(out, "writing video", e))?;
        }
        Ok(())
    }
}

/// The size of the clip's pictures: the display size with even sides, as x264's 4:2:0
/// needs. An odd side loses its last pixel by scaling (641×361 becomes 640×360); a side of
/// one pixel is scaled up to two. A change is noted in `warnings`.
fn encoder_size(info: &VideoInfo, warnings: &mut Vec<String>) -> (u32, u32) {
    let even = |side: u32| if side >= 2 { side & !1 } else { 2 };
    let size = (even(info.width), even(info.height));
    if size != (info.width, info.height) {
        warnings.push(format!(
            "{}: the video is {}x{}; H.264 in 4:2:0 needs even sides, so the clip is scaled to {}x{}",
            info.path.display(),
            info.width,
            info.height,
            size.0,
            size.1
        ));
    }
    size
}

/// Opens the H.264 encoder for `size` pictures in time base `tb`, with the options' CRF,
/// preset and threads.
fn open_x264(
    info: &VideoInfo,
    size: (u32, u32),
    tb: Rational,
    opts: &ClipOptions,
    global_header: bool,
    out: &Path,
) -> Result<(ff::encoder::Video, ff::Codec), DecodeError> {
    let frame_rate = (info.fps > 0.0)
        .then(|| reelsmith_core::FrameRate::from_fps(info.fps))
        .flatten()
        .map(|r| Rational::new(r.num as i32, r.den as i32));
    open_h264(
        &H264Settings {
            size,
            time_base: tb,
            frame_rate,
            crf: opts.crf,
            preset: opts.preset,
            threads: opts.threads,
            global_header,
        },
        out,
    )
}

/// The filter from `decoder`'s pictures (time base `tb`) to the encoder's: the stream's
/// rotation applied, scaled to `size`, 4:2:0.
fn video_filter(
    info: &VideoInfo,
    decoder: &ff::decoder::Video,
    tb: Rational,
    (w, h): (u32, u32),
) -> Result<Graph, FilterError> {
    let transpose = match info.rotation {
        90 => "transpose=clock,",
        180 => "hflip,vflip,",
        270 => "transpose=cclock,",
        _ => "",
    };
    let args = format!(
        "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect=1/1",
        decoder.width(),
        decoder.height(),
        ff::ffi::AVPixelFormat::from(decoder.format()) as i32,
        tb.numerator(),
        tb.denominator()
    );
    let spec = format!("{transpose}scale={w}:{h},format=pix_fmts=yuv420p");
    Graph::new("buffer", &args, "buffersink", &spec)
}
