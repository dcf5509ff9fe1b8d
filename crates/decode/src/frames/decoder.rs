//! The decoding loop under [`crate::Frames`]: a demuxer and a decoder of one video stream,
//! fed packet by packet, yielding decoded pictures and their times.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use ffmpeg_next as ff;

use crate::error::DecodeError;
use crate::parallel::cores;
use crate::probe::demux::{seek_to_show, StreamParams};
use crate::probe::info::VideoInfo;

/// Converts a stream's timestamps to seconds on the file's timeline.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    /// Seconds per timestamp unit.
    time_base: f64,
    /// The container's start time in timestamp units: time 0.
    origin_ts: i64,
    /// Average frame rate, for frames without a timestamp (0 when unknown).
    avg_fps: f64,
    /// Time of the last frame timed.
    last_time: Option<f64>,
}

impl Clock {
    /// The clock of a stream with time base `time_base` (seconds per unit) in `info`'s file.
    pub(crate) fn new(info: &VideoInfo, time_base: f64) -> Self {
        Self {
            time_base,
            origin_ts: (info.start_time / time_base).round() as i64,
            avg_fps: info.fps,
            last_time: None,
        }
    }

    /// Seconds on the file's timeline of timestamp `ts`.
    pub(crate) fn seconds(&self, ts: i64) -> f64 {
        (ts - self.origin_ts) as f64 * self.time_base
    }

    /// The time of the next frame, whose timestamp is `ts`: a frame without one comes one
    /// average frame after the previous (at the previous one's time when the rate is
    /// unknown, at 0 when it is the first).
    pub(crate) fn frame_time(&mut self, ts: Option<i64>) -> f64 {
        let t = match ts {
            Some(ts) => self.seconds(ts),
            None => match self.last_time {
                Some(prev) if self.avg_fps > 0.0 => prev + 1.0 / self.avg_fps,
                Some(prev) => prev,
                None => 0.0,
            },
        };
        self.last_time = Some(t);
        t
    }

    /// The average frame rate (0 when unknown).
    pub(crate) fn avg_fps(&self) -> f64 {
        self.avg_fps
    }

    /// One average frame in seconds (0 when the rate is unknown).
    pub(crate) fn average_frame(&self) -> f64 {
        if self.avg_fps > 0.0 {
            1.0 / self.avg_fps
        } else {
            0.0
        }
    }

    /// The time of the last frame timed, if any.
    pub(crate) fn last_time(&self) -> Option<f64> {
        self.last_time
    }

    /// How long `frame` is shown, in seconds: its packet's duration, else one average
    /// frame, else 0.
    pub(crate) fn frame_duration(&self, frame: &ff::frame::Video) -> f64 {
        if frame.packet().duration > 0 {
            frame.packet().duration as f64 * self.time_base
        } else if self.avg_fps > 0.0 {
            1.0 / self.avg_fps
        } else {
            0.0
        }
    }
}

/// The timestamp of a decoded frame: FFmpeg's best effort, else its own.
pub(crate) fn frame_ts(frame: &ff::frame::Video) -> Option<i64> {
    frame.timestamp().or(frame.pts())
}

/// Opens a decoder for the video stream `stream` of `path` with `threads` frame threads
/// (0 = one per core, see [`frame_threads`]), optionally skipping the in-loop filter. It starts from `params`
/// (the stream's parameters as probed when the file was first opened) where given, else
/// from the stream's own.
pub(crate) fn open_decoder(
    path: &Path,
    stream: &ff::format::stream::Stream,
    params: Option<&StreamParams>,
    threads: usize,
    skip_loop_filter: bool,
) -> Result<ff::decoder::Video, DecodeError> {
    let mut ctx = match params {
        Some(p) => {
            let mut ctx = ff::codec::context::Context::new();
            // SAFETY: both pointers are valid; FFmpeg copies the parameters into the
            // freshly allocated context.
            let copied =
                unsafe { ff::ffi::avcodec_parameters_to_context(ctx.as_mut_ptr(), p.as_ptr()) };
            if copied < 0 {
                return Err(DecodeError::ffmpeg(
                    path,
                    "reading stream parameters",
                    ff::Error::from(copied),
                ));
            }
            ctx
        }
        None => ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| DecodeError::ffmpeg(path, "reading stream parameters", e))?,
    };
    ctx.set_threading(ff::codec::threading::Config {
        kind: ff::codec::threading::Type::Frame,
        count: frame_threads(threads),
        ..Default::default()
    });
    let mut dec = ctx.decoder();
    dec.set_packet_time_base(stream.time_base());
    if skip_loop_filter {
        dec.skip_loop_filter(ff::Discard::All);
    }
    dec.video()
        .map_err(|e| DecodeError::ffmpeg(path, "opening the video decoder", e))
}

/// Most frame threads that "one per core" asks for: FFmpeg's own limit for its automatic
/// choice (each frame thread holds a decoder context and frames in flight).
const MAX_FRAME_THREADS: usize = 16;

/// The frame threads of a decoder asked for `threads` (0: one per core, at most
/// [`MAX_FRAME_THREADS`]), as [`DecodeOptions::threads`](crate::DecodeOptions::threads)
/// promises. FFmpeg's automatic choice is one more than the cores; on a 2-core machine
/// that third thread cost shot analysis 1–5 % of its reported time on the clips it
/// decodes in one pass (`benches/shots_ab.py`, four runs on two disjoint sets of 78 and 90
/// such clips from the shot corpora, same transitions).
fn frame_threads(threads: usize) -> usize {
    if threads == 0 {
        cores().min(MAX_FRAME_THREADS)
    } else {
        threads
    }
}

/// Tells `decoder` to drop the frames nothing references while packets lie before
/// `start` (seconds; `packet_time` is the next packet's time, `None` when unknown), and to
/// decode everything again from there. `skipping` remembers the setting, so the decoder
/// is only touched when it changes. Frames before a seek target are decoded only as
/// references of later ones, so the unreferenced ones (most B-frames) are wasted work.
pub(crate) fn skip_unreferenced_before(
    decoder: &mut ff::decoder::Video,
    packet_time: Option<f64>,
    start: f64,
    skipping: &mut bool,
) {
    let before = packet_time.is_some_and(|t| t < start - 5e-4);
    if before != *skipping {
        decoder.skip_frame(if before {
            ff::Discard::NonReference
        } else {
            ff::Discard::Default
        });
        *skipping = before;
    }
}

/// What one step of decoding gave.
pub(crate) enum Step {
    /// A decoded picture.
    Frame(ff::frame::Video),
    /// The decoder is drained: the stream is over.
    End,
    /// The decoder asks for input after the end of the file was sent: nothing more comes.
    Stalled,
}

/// A demuxer and a decoder of one video stream.
pub(crate) struct StreamDecoder {
    path: PathBuf,
    input: ff::format::context::Input,
    decoder: ff::decoder::Video,
    stream_index: usize,
    /// Times of the decoded frames.
    pub(crate) clock: Clock,
    /// The seek target before which unreferenced frames are not decoded (see
    /// [`skip_unreferenced_before`]).
    pre_roll: Option<f64>,
    /// Whether the decoder is dropping non-reference frames now.
    skipping: bool,
    eof_sent: bool,
    decoded_any: bool,
    bad_packets: u32,
    /// Time of the keyframe that begins the next chunk of a parallel decode (see
    /// [`StreamDecoder::end_before_keyframe`]); `None` once it was met, or for other passes.
    end_key: Option<f64>,
    /// The time of that keyframe, once the stream was ended before it.
    ended_at_key: Option<f64>,
    /// Packets read ahead of the decoder, sent before any other.
    pending: VecDeque<ff::Packet>,
    /// A read failure met while reading ahead, reported once `pending` is sent.
    deferred: Option<ff::Error>,
}

/// Packets read past a chunk's closing keyframe to check that no frame shown before it
/// follows it (a decoder reorders frames by at most its delay, `has_b_frames`, so a frame
/// shown before the keyframe but decoded after it lies within that many packets; the
/// margin is for streams that understate their delay).
const READ_AHEAD_MARGIN: usize = 4;

/// Most packets read past a chunk's closing keyframe.
const READ_AHEAD_MAX: usize = 32;

impl StreamDecoder {
    /// A decoder of `info`'s video stream reading `input`. With `seek`, the input is first
    /// moved to a keyframe shown at or before that time; with `skip_pre_roll` too, frames
    /// nothing references are not decoded before it.
    pub(crate) fn new(
        info: &VideoInfo,
        params: Option<&StreamParams>,
        threads: usize,
        skip_loop_filter: bool,
        seek: Option<f64>,
        skip_pre_roll: bool,
        mut input: ff::format::context::Input,
    ) -> Result<Self, DecodeError> {
        let path = info.path.clone();
        let stream = input
            .stream(info.stream_index)
            .ok_or_else(|| DecodeError::NoVideoStream {
                path: path.clone(),
                streams: "the stream found when probing has gone".into(),
            })?;
        let time_base = f64::from(stream.time_base());
        let decoder = open_decoder(&path, &stream, params, threads, skip_loop_filter)?;
        if let Some(t) = seek {
            // Lands on a keyframe shown at or before `t`; frames before `t` are decoded
            // (where something references them) and dropped.
            seek_to_show(&mut input, info, t);
        }
        Ok(Self {
            path,
            input,
            decoder,
            stream_index: info.stream_index,
            clock: Clock::new(info, time_base),
            pre_roll: seek.filter(|_| skip_pre_roll),
            skipping: false,
            eof_sent: false,
            decoded_any: false,
            bad_packets: 0,
            end_key: None,
            ended_at_key: None,
            pending: VecDeque::new(),
            deferred: None,
        })
    }

    /// Ends the stream before the keyframe shown at `time` (the first frame of the next
    /// chunk of a parallel decode) when every frame shown before it is decoded before it:
    /// the decoder is then drained there instead of decoding that keyframe and the frames
    /// after it until one of them comes out (an I-frame and its delay's worth of frames
    /// per seam, decoded again by the next chunk). Where a frame shown before the keyframe
    /// follows it (an open group of pictures), or a timestamp is missing, decoding goes on
    /// as without this. [`StreamDecoder::ended_at_key`] tells which happened.
    pub(crate) fn end_before_keyframe(&mut self, time: f64) {
        self.end_key = Some(time);
    }

    /// The time of the keyframe the stream was ended before (see
    /// [`StreamDecoder::end_before_keyframe`]), once the decoder is drained there.
    pub(crate) fn ended_at_key(&self) -> Option<f64> {
        self.ended_at_key
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Gives back the demuxer, for another pass to seek in (opening a file again reads its
    /// header, and probes its streams where the header does not describe them).
    pub(crate) fn into_input(self) -> ff::format::context::Input {
        self.input
    }

    /// Decodes until a picture comes out or the stream ends. Pictures the decoder gives up
    /// on are skipped, as FFmpeg's command line does. A stream that ends without any
    /// picture is an error: [`DecodeError::Corrupt`] when packets failed to decode,
    /// [`DecodeError::ZeroLength`] otherwise.
    pub(crate) fn step(&mut self) -> Result<Step, DecodeError> {
        loop {
            let mut decoded = ff::frame::Video::empty();
            match self.decoder.receive_frame(&mut decoded) {
                Ok(()) => {
                    self.decoded_any = true;
                    return Ok(Step::Frame(decoded));
                }
                Err(ff::Error::Eof) => {
                    self.check_decoded_any()?;
                    return Ok(Step::End);
                }
                Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => {}
                Err(e) => {
                    self.bad_packets += 1;
                    tracing::debug!("{}: decoder error {e}; skipping", self.path.display());
                    continue;
                }
            }
            if self.eof_sent {
                return Ok(Step::Stalled);
            }
            self.feed()?;
        }
    }

    /// The error for a stream that ended without a single picture.
    fn check_decoded_any(&self) -> Result<(), DecodeError> {
        if self.decoded_any {
            return Ok(());
        }
        Err(if self.bad_packets > 0 {
            DecodeError::Corrupt {
                path: self.path.clone(),
                at: None,
                detail: format!(
                    "{} packets could not be decoded and no frame came out",
                    self.bad_packets
                ),
            }
        } else {
            DecodeError::ZeroLength {
                path: self.path.clone(),
            }
        })
    }

    /// Sends the decoder the next packet of the stream, or the end of the stream.
    fn feed(&mut self) -> Result<(), DecodeError> {
        loop {
            let packet = match self.pending.pop_front() {
                Some(p) => p,
                None => {
                    if let Some(e) = self.deferred.take() {
                        return Err(self.corrupt(e));
                    }
                    // A fresh packet each time: av_read_frame overwrites a packet without
                    // releasing what it held (a skipped audio packet), so reusing one leaks.
                    let mut packet = ff::Packet::empty();
                    match packet.read(&mut self.input) {
                        Ok(()) if packet.stream() == self.stream_index => {
                            if self.ends_before(packet) {
                                self.eof_sent = true;
                                let _ = self.decoder.send_eof();
                                return Ok(());
                            }
                            continue; // the packet went to `pending`
                        }
                        Ok(()) => continue,
                        Err(ff::Error::Eof) => {
                            self.eof_sent = true;
                            let _ = self.decoder.send_eof();
                            return Ok(());
                        }
                        Err(ff::Error::InvalidData) => {
                            self.bad_packets += 1;
                            continue;
                        }
                        Err(e) => return Err(self.corrupt(e)),
                    }
                }
            };
            self.skip_pre_roll(&packet);
            match self.decoder.send_packet(&packet) {
                Ok(()) => {}
                Err(ff::Error::InvalidData) | Err(ff::Error::Other { .. }) => {
                    self.bad_packets += 1;
                }
                Err(e) => {
                    self.bad_packets += 1;
                    tracing::debug!("{}: packet rejected: {e}", self.path.display());
                }
            }
            return Ok(());
        }
    }

    /// The error for a packet that could not be read.
    fn corrupt(&self, e: ff::Error) -> DecodeError {
        DecodeError::Corrupt {
            path: self.path.clone(),
            at: self.clock.last_time(),
            detail: e.to_string(),
        }
    }

    /// Whether the stream ends before `packet`, a video packet just read: the chunk's
    /// closing keyframe (see [`StreamDecoder::end_before_keyframe`]) with no frame shown
    /// before it among the packets that follow it within the decoder's delay. Otherwise
    /// `packet`, and whatever was read ahead after it, wait in `pending` to be sent.
    fn ends_before(&mut self, packet: ff::Packet) -> bool {
        let key = match (self.end_key, packet.pts()) {
            (Some(end), Some(pts))
                if packet.is_key() && (self.clock.seconds(pts) - end).abs() <= 5e-4 =>
            {
                pts
            }
            _ => {
                self.pending.push_back(packet);
                return false;
            }
        };
        self.end_key = None;
        // SAFETY: reading a plain field of the open decoder's context.
        let delay = unsafe { (*self.decoder.as_ptr()).has_b_frames }.max(0) as usize;
        let ahead = (delay + READ_AHEAD_MARGIN).min(READ_AHEAD_MAX);
        let mut closed = true;
        self.pending.push_back(packet);
        while closed && self.pending.len() <= ahead {
            let mut next = ff::Packet::empty();
            match next.read(&mut self.input) {
                Ok(()) if next.stream() == self.stream_index => {
                    closed = next.pts().is_some_and(|p| p > key);
                    self.pending.push_back(next);
                }
                Ok(()) => {}
                Err(ff::Error::Eof) => break,
                Err(ff::Error::InvalidData) => self.bad_packets += 1,
                Err(e) => {
                    self.deferred = Some(e);
                    closed = false;
                }
            }
        }
        if closed {
            self.pending.clear();
            self.ended_at_key = Some(self.clock.seconds(key));
        } else {
            tracing::trace!(
                "{}: a frame shown before the keyframe at {:.3}s follows it; decoding on",
                self.path.display(),
                self.clock.seconds(key)
            );
        }
        closed
    }

    /// After a seek, drops the frames nothing references while the packets lie before the
    /// asked time: they are decoded only to rebuild the references of the frames after
    /// it. Chunks of a parallel decode start at their keyframe and keep every frame.
    fn skip_pre_roll(&mut self, packet: &ff::Packet) {
        let Some(start) = self.pre_roll else {
            return;
        };
        let time = packet.pts().map(|p| self.clock.seconds(p));
        skip_unreferenced_before(&mut self.decoder, time, start, &mut self.skipping);
    }
}
