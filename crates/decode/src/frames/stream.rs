//! [`Frames`]: one pass over a video's frames — from the start, from a seek, or one chunk
//! of a parallel decode — sampled and converted as asked; and the [`Video`] methods that
//! start one.

use std::collections::VecDeque;
use std::path::Path;

use ffmpeg_next as ff;
use image::RgbImage;

use crate::error::DecodeError;
use crate::frames::convert::Converter;
use crate::frames::decoder::{frame_ts, Step, StreamDecoder};
use crate::frames::options::{check_frame_size, DecodeOptions, Sampling};
use crate::frames::sampler::{Kept, Sampler};
use crate::probe::demux::StreamParams;
use crate::probe::info::VideoInfo;
use crate::probe::video::Video;

/// A decoded, converted frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// 0-based index among all decoded frames, in presentation order (estimated from the
    /// average rate after a seek; see [`crate::Video::frames_from`]).
    pub index: u64,
    /// Presentation time in seconds on the file's timeline, from the stream's timestamps.
    pub time: f64,
    /// The picture, RGB 8-bit, rotation applied, scaled as asked.
    pub image: RgbImage,
}

impl Frame {
    /// This frame's index and time as the shared [`reelsmith_core::FrameRef`].
    pub fn frame_ref(&self) -> reelsmith_core::FrameRef {
        reelsmith_core::FrameRef {
            index: self.index,
            time: self.time,
        }
    }
}

impl Video {
    /// Streams frames from the start, sampled and scaled as `opts` says.
    ///
    /// A pass in which frames are decoded but the sampling keeps none of them (a rate too
    /// low for a very short video) ends with [`DecodeError::NothingSampled`], which says
    /// what to sample instead.
    pub fn frames(&self, opts: &DecodeOptions) -> Result<Frames, DecodeError> {
        Frames::new(
            self.info(),
            self.params(),
            opts,
            Pass::sequential(),
            Want::Images,
            || self.decoding_input(),
        )
    }

    /// Streams frames whose presentation time is at or after `start` seconds, seeking to
    /// the keyframe before `start` and decoding forward so the first frame is exact.
    ///
    /// Frame indices after a seek are estimated from the average frame rate (exact for
    /// constant-rate video); times are always the true timestamps.
    pub fn frames_from(&self, start: f64, opts: &DecodeOptions) -> Result<Frames, DecodeError> {
        if !start.is_finite() || start < 0.0 {
            return Err(DecodeError::InvalidArgument {
                path: self.path().to_path_buf(),
                detail: format!(
                    "cannot seek to {start}s: the time must be finite and not negative"
                ),
            });
        }
        let pass = Pass::from_seek(start, self.info().fps);
        Frames::new(self.info(), self.params(), opts, pass, Want::Images, || {
            self.decoding_input()
        })
    }
}

/// What a chunk pass saw, so that the parallel decoder can check that its chunks tile the
/// video exactly as one sequential pass would.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ChunkStats {
    /// Decoded frames inside the range.
    pub in_range: u64,
    /// Time of the first decoded frame inside the range.
    pub first_time: Option<f64>,
    /// Whether a frame at or after the range's end came out (the pass stopped there).
    pub reached_end: bool,
    /// Whether a frame had no timestamp or times ran backwards (a sequential pass is then
    /// the only safe reading).
    pub irregular: bool,
}

/// Which stretch of the video a pass covers, and how it numbers its frames.
#[derive(Debug, Clone)]
pub(crate) enum Pass {
    /// From the start; indices count the decoded frames.
    Sequential {
        /// Index of the next decoded frame.
        next: u64,
    },
    /// From a seek to `start`: earlier frames are dropped; indices are estimated from the
    /// average rate (counted from the seek when the rate is unknown).
    FromSeek {
        /// The time sought.
        start: f64,
        /// Average frame rate (0 when unknown).
        avg_fps: f64,
        /// Frames decoded since the seek.
        next: u64,
    },
    /// One chunk of a parallel decode: frames in `[start, until)`, numbered from 0, with
    /// the bookkeeping that checks the seams.
    Chunk {
        /// Where the chunk starts (`None`: the start of the video).
        start: Option<f64>,
        /// Where the next chunk starts (`None`: the end of the video).
        until: Option<f64>,
        /// Time of the last frame kept, to spot times running backwards.
        last_kept: Option<f64>,
        /// What the chunk saw.
        stats: ChunkStats,
    },
}

/// Where a decoded frame lies relative to a pass.
enum Place {
    /// Before the pass's start: decoded only as a reference, dropped.
    Before,
    /// In the pass, with this index.
    In(u64),
    /// At or past the end of a chunk: the pass is over.
    Beyond,
}

impl Pass {
    /// A pass from the start.
    pub(crate) fn sequential() -> Self {
        Pass::Sequential { next: 0 }
    }

    /// A pass from a seek to `start` in a video of average rate `avg_fps`.
    pub(crate) fn from_seek(start: f64, avg_fps: f64) -> Self {
        Pass::FromSeek {
            start,
            avg_fps,
            next: 0,
        }
    }

    /// A chunk of a parallel decode, `[start, until)`.
    pub(crate) fn chunk(start: Option<f64>, until: Option<f64>) -> Self {
        Pass::Chunk {
            start,
            until,
            last_kept: None,
            stats: ChunkStats::default(),
        }
    }

    /// Records that a chunk's stream ended at the next chunk's keyframe, as a frame
    /// placed [`Place::Beyond`] does.
    fn reached_end(&mut self) {
        if let Pass::Chunk { stats, .. } = self {
            stats.reached_end = true;
        }
    }

    /// The time to seek to before decoding.
    fn seek(&self) -> Option<f64> {
        match self {
            Pass::Sequential { .. } => None,
            Pass::FromSeek { start, .. } => Some(*start),
            Pass::Chunk { start, .. } => *start,
        }
    }

    /// Places a decoded frame at `time` (`timestamped`: whether it had a timestamp).
    fn place(&mut self, time: f64, timestamped: bool) -> Place {
        match self {
            Pass::Sequential { next } => {
                *next += 1;
                Place::In(*next - 1)
            }
            Pass::FromSeek {
                start,
                avg_fps,
                next,
            } => {
                let index = if *avg_fps > 0.0 {
                    (time * *avg_fps).round().max(0.0) as u64
                } else {
                    *next
                };
                *next += 1;
                // Half a millisecond of tolerance against timestamp rounding.
                if time < *start - 5e-4 {
                    Place::Before
                } else {
                    Place::In(index)
                }
            }
            Pass::Chunk {
                start,
                until,
                last_kept,
                stats,
            } => {
                if !timestamped {
                    stats.irregular = true;
                }
                if start.is_some_and(|s| time < s - 5e-4) {
                    // A frame before the keyframe after the first one kept: not a clean
                    // entry point.
                    if stats.first_time.is_some() {
                        stats.irregular = true;
                    }
                    return Place::Before;
                }
                if until.is_some_and(|end| time >= end - 5e-4) {
                    stats.reached_end = true;
                    return Place::Beyond;
                }
                stats.first_time.get_or_insert(time);
                if last_kept.is_some_and(|last| time <= last) {
                    stats.irregular = true;
                }
                *last_kept = Some(time);
                stats.in_range += 1;
                Place::In(stats.in_range - 1)
            }
        }
    }
}

/// What a pass produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Converted frames.
    Images,
    /// Only the number of frames (nothing is converted).
    Count,
}

/// A streaming iterator over decoded frames. Holds one demuxer, one decoder and at most a
/// couple of frames, so its memory does not grow with the video's length.
pub struct Frames {
    decoder: StreamDecoder,
    pass: Pass,
    want: Want,
    sampler: Sampler<ff::frame::Video>,
    conv: Converter,
    ready: VecDeque<Frame>,
    /// Frames counted by a [`Want::Count`] pass.
    counted: u64,
    /// Whether the sampling kept a frame.
    kept_any: bool,
    done: bool,
}

impl Frames {
    /// A pass over `info`'s video with `opts`, reading the demuxer `input` gives (called
    /// only once the options are checked).
    pub(crate) fn new(
        info: &VideoInfo,
        params: Option<&StreamParams>,
        opts: &DecodeOptions,
        pass: Pass,
        want: Want,
        input: impl FnOnce() -> Result<ff::format::context::Input, DecodeError>,
    ) -> Result<Self, DecodeError> {
        opts.check(&info.path)?;
        if want == Want::Images {
            check_frame_size(info, opts.scale)?;
        }
        // Chunks of a parallel decode keep every frame from their keyframe on, for their
        // bookkeeping; a seek drops what nothing references before its time.
        let skip_pre_roll = matches!(pass, Pass::FromSeek { .. });
        let mut decoder = StreamDecoder::new(
            info,
            params,
            opts.threads,
            opts.skip_loop_filter,
            pass.seek(),
            skip_pre_roll,
            input()?,
        )?;
        // A chunk ends before the next chunk's keyframe where no frame shown before that
        // keyframe is decoded after it (see `StreamDecoder::end_before_keyframe`).
        if let Pass::Chunk {
            until: Some(end), ..
        } = pass
        {
            decoder.end_before_keyframe(end);
        }
        Ok(Self {
            decoder,
            pass,
            want,
            sampler: Sampler::new(opts.sampling),
            conv: Converter::new(info, opts),
            ready: VecDeque::new(),
            counted: 0,
            kept_any: false,
            done: false,
        })
    }

    /// Size of the frames this iterator yields, as (width, height), rotation applied.
    pub fn output_size(&self) -> (u32, u32) {
        self.conv.output_size()
    }

    /// What a chunk pass saw (`None` for other passes).
    pub(crate) fn chunk_stats(&self) -> Option<ChunkStats> {
        match &self.pass {
            Pass::Chunk { stats, .. } => Some(*stats),
            _ => None,
        }
    }

    /// Gives back the demuxer, for the next chunk of the same worker to seek in.
    pub(crate) fn into_input(self) -> ff::format::context::Input {
        self.decoder.into_input()
    }

    /// Decodes the rest of the stream; returns how many frames a [`Want::Count`] pass
    /// counted.
    pub(crate) fn count_rest(&mut self) -> Result<u64, DecodeError> {
        while !self.done {
            self.step()?;
        }
        Ok(self.counted)
    }

    /// Decodes until a frame is ready or the pass is over.
    fn step(&mut self) -> Result<(), DecodeError> {
        match self.decoder.step()? {
            Step::Frame(frame) => self.accept(frame),
            Step::End => {
                self.done = true;
                if let Some(end) = self.decoder.ended_at_key() {
                    // Drained before the next chunk's keyframe: that keyframe is the
                    // frame that settles the open fps slot and ends this chunk.
                    self.pass.reached_end();
                    if let Some(kept) = self.sampler.boundary(end) {
                        self.emit(kept)?;
                    }
                    return Ok(());
                }
                let clock = &self.decoder.clock;
                if let Some(kept) = self.sampler.finish(|f| clock.frame_duration(f)) {
                    self.emit(kept)?;
                }
                self.check_kept_any()
            }
            Step::Stalled => {
                self.done = true;
                Ok(())
            }
        }
    }

    /// At the end of a pass from the start that converts frames: an error when frames were
    /// decoded but the sampling kept none of them (only a rate can; see
    /// [`nothing_sampled`]).
    fn check_kept_any(&self) -> Result<(), DecodeError> {
        let (Pass::Sequential { next: decoded }, Want::Images, false) =
            (&self.pass, self.want, self.kept_any)
        else {
            return Ok(());
        };
        let clock = &self.decoder.clock;
        let span = clock.last_time().unwrap_or(0.0) + clock.average_frame();
        Err(nothing_sampled(
            self.decoder.path(),
            self.sampler.sampling(),
            *decoded,
            span,
            clock.avg_fps(),
        ))
    }

    /// Decides what to do with a freshly decoded frame.
    fn accept(&mut self, frame: ff::frame::Video) -> Result<(), DecodeError> {
        let counting = self.want == Want::Count;
        if counting && !matches!(self.pass, Pass::Chunk { .. }) {
            self.counted += 1;
            return Ok(());
        }
        let ts = frame_ts(&frame);
        let time = self.decoder.clock.frame_time(ts);
        match self.pass.place(time, ts.is_some()) {
            Place::Before => Ok(()),
            Place::Beyond => {
                // The next chunk's first frame: it settles whether the open fps slot ends
                // here, and ends this chunk.
                if let Some(kept) = self.sampler.boundary(time) {
                    self.emit(kept)?;
                }
                self.done = true;
                Ok(())
            }
            Place::In(_) if counting => {
                self.counted += 1;
                Ok(())
            }
            Place::In(index) => match self.sampler.offer(frame, index, time) {
                Some(kept) => self.emit(kept),
                None => Ok(()),
            },
        }
    }

    /// Converts a kept frame and queues it.
    fn emit(&mut self, kept: Kept<ff::frame::Video>) -> Result<(), DecodeError> {
        self.kept_any = true;
        let image = self.conv.convert(&kept.item)?;
        self.ready.push_back(Frame {
            index: kept.index,
            time: kept.time,
            image,
        });
        Ok(())
    }
}

/// The error for a pass from the start in which `sampling` kept none of the `decoded`
/// frames of a video lasting `span` seconds at `fps` frames per second (0: unknown). Only
/// a rate can keep nothing: an fps slot is kept only when the video lasts past it, which
/// a short video at a low rate never does. The video's own rate always keeps frames.
pub(crate) fn nothing_sampled(
    path: &Path,
    sampling: Sampling,
    decoded: u64,
    span: f64,
    fps: f64,
) -> DecodeError {
    let what = match sampling {
        Sampling::Fps(rate) => format!("sampling at {rate} fps"),
        other => format!("sampling {other:?}"),
    };
    let instead = if fps > 0.0 {
        format!("sample every frame, or at the video's own rate ({fps:.3} fps)")
    } else {
        "sample every frame".to_string()
    };
    DecodeError::NothingSampled {
        path: path.to_path_buf(),
        detail: format!(
            "{what} keeps no frame of this {span:.3} s video ({decoded} frames decoded): a slot is kept only when the video lasts past it; {instead}"
        ),
    }
}

impl Iterator for Frames {
    type Item = Result<Frame, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(f) = self.ready.pop_front() {
                return Some(Ok(f));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.step() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames")
            .field("path", &self.decoder.path())
            .field("pass", &self.pass)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
