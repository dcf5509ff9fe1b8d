use std::collections::VecDeque;
use std::path::PathBuf;

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;
use image::RgbImage;

use crate::error::DecodeError;
use crate::probe::VideoInfo;

/// Which decoded frames to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Every decoded frame.
    All,
    /// Frames whose 0-based index is a multiple of N (0, N, 2N, ...). N = 0 is an error.
    EveryNth(u32),
    /// About N frames per second, chosen by timestamp as FFmpeg's `fps` filter does: the
    /// timeline is cut into slots of `1/N` s centred on `k/N`, and each slot keeps the last
    /// frame that falls in it. Slots that no frame falls in (gaps in variable-rate video)
    /// are skipped rather than filled with duplicates. N must be positive and finite.
    Fps(f64),
}

/// How to scale the kept frames. Sizes refer to the picture as displayed (rotation applied).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Keep the display size.
    Original,
    /// Scale to this height, keeping the aspect ratio with an even width (FFmpeg's
    /// `scale=-2:H`), enlarging small videos too.
    Height(u32),
    /// Like [`Scale::Height`], but never enlarge: videos already this small keep their size.
    MaxHeight(u32),
    /// Scale to exactly this size, ignoring the aspect ratio.
    Exact {
        /// Output width in pixels.
        width: u32,
        /// Output height in pixels.
        height: u32,
    },
}

/// Resampling filter used when scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resampler {
    /// Bicubic, FFmpeg's `scale` default; best for viewing.
    #[default]
    Bicubic,
    /// Bilinear.
    Bilinear,
    /// Area averaging: the right choice for large reductions (thumbnails for analysis).
    /// 8-bit 4:2:0 frames that shrink by whole, even factors (1280×720 to 64×36, say) are
    /// box-averaged without swscale, faster and with exact rounding (within one level of
    /// swscale's accurate mode); everything else goes through swscale's area filter.
    Area,
    /// FFmpeg's fast bilinear: fastest, lowest quality.
    FastBilinear,
}

/// Options for [`crate::Video::frames`]. Build with [`DecodeOptions::new`] and the setters.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Which frames to keep (default: all).
    pub sampling: Sampling,
    /// How to scale kept frames (default: original size).
    pub scale: Scale,
    /// Resampling filter for scaling (default bicubic).
    pub resampler: Resampler,
    /// Decoder threads; 0 picks one per CPU core (default).
    pub threads: usize,
    /// Skip the codec's in-loop deblocking filter (default false). Decoding gets markedly
    /// faster (about 30 % on H.264 and VP8) and pictures pick up blocking artefacts, which
    /// error propagation can carry on until the next keyframe. Meant for analysis at a
    /// small size (shot detection, thumbnails for statistics), where averaging hides them;
    /// leave it off for frames that people look at or models that read fine detail.
    pub skip_loop_filter: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            sampling: Sampling::All,
            scale: Scale::Original,
            resampler: Resampler::Bicubic,
            threads: 0,
            skip_loop_filter: false,
        }
    }
}

impl DecodeOptions {
    /// Every frame, original size, bicubic, automatic threads.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the sampling.
    pub fn sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }
    /// Sets the scaling.
    pub fn scale(mut self, scale: Scale) -> Self {
        self.scale = scale;
        self
    }
    /// Sets the resampling filter.
    pub fn resampler(mut self, resampler: Resampler) -> Self {
        self.resampler = resampler;
        self
    }
    /// Sets the number of decoder threads (0 = one per core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Skips the in-loop deblocking filter for faster, slightly blockier analysis decoding
    /// (see [`DecodeOptions::skip_loop_filter`](DecodeOptions#structfield.skip_loop_filter)).
    pub fn skip_loop_filter(mut self, skip: bool) -> Self {
        self.skip_loop_filter = skip;
        self
    }
}

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

/// Output size before rotation, computed from the display size and the scale request.
pub(crate) fn target_size(info: &VideoInfo, scale: Scale) -> (u32, u32) {
    let (w, h) = (info.width, info.height);
    let by_height = |th: u32| {
        // FFmpeg's scale=-2:H: width = 2 * round(H * w / (2 * h)).
        let half = (f64::from(th) * f64::from(w) / (2.0 * f64::from(h))).round() as u32;
        ((half * 2).max(2), th)
    };
    match scale {
        Scale::Original => (w, h),
        Scale::Height(th) => by_height(th),
        Scale::MaxHeight(th) if th < h => by_height(th),
        Scale::MaxHeight(_) => (w, h),
        Scale::Exact { width, height } => (width, height),
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

/// A streaming iterator over decoded frames. Holds one demuxer, one decoder and at most a
/// couple of frames, so its memory does not grow with the video's length.
pub struct Frames {
    path: PathBuf,
    input: ff::format::context::Input,
    decoder: ff::decoder::Video,
    stream_index: usize,
    time_base: f64,
    origin_ts: i64,
    avg_fps: f64,
    conv: Converter,
    sampling: Sampling,
    seek_to: Option<f64>,
    /// Whether the decoder is dropping non-reference frames before `seek_to`.
    skipping_pre_roll: bool,
    next_index: u64,
    last_time: Option<f64>,
    /// Lookahead frame for fps sampling: (frame, index, time, slot).
    pending: Option<(ff::frame::Video, u64, f64, i64)>,
    last_slot: Option<i64>,
    ready: VecDeque<Frame>,
    eof_sent: bool,
    done: bool,
    decoded_any: bool,
    bad_packets: u32,
    count_only: bool,
    counted: u64,
    /// Chunk mode (parallel decoding): frames at or after this time end the pass.
    until: Option<f64>,
    /// Chunk mode: time of the last frame kept in range (to spot times running backwards).
    last_kept: Option<f64>,
    /// Chunk mode: indices count frames inside the chunk's range, from 0.
    chunk: bool,
    /// Chunk bookkeeping, read by the parallel decoder to check the seams.
    pub(crate) stats: ChunkStats,
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

#[derive(Clone, Copy, PartialEq, Eq)]
struct ScalerKey {
    format: Pixel,
    width: u32,
    height: u32,
}

/// Turns decoded frames into RGB images at the size asked for, with the stream's rotation
/// applied: the conversion behind [`Frames`], also used for the stills of clip export.
pub(crate) struct Converter {
    path: PathBuf,
    rotation: u32,
    /// Output size before rotation.
    out_size: (u32, u32),
    flags: scaling::Flags,
    scaler: Option<(ScalerKey, scaling::Context)>,
    /// The scaler's output frame, reused from frame to frame (allocating 2-3 MB per frame
    /// costs as much kernel time as decoding).
    rgb: ff::frame::Video,
}

impl Converter {
    pub(crate) fn new(info: &VideoInfo, opts: &DecodeOptions) -> Self {
        let (tw, th) = target_size(info, opts.scale);
        let out_size = if info.rotation % 180 == 90 {
            (th, tw)
        } else {
            (tw, th)
        };
        let flags = match opts.resampler {
            Resampler::Bicubic => scaling::Flags::BICUBIC,
            Resampler::Bilinear => scaling::Flags::BILINEAR,
            Resampler::Area => scaling::Flags::AREA,
            Resampler::FastBilinear => scaling::Flags::FAST_BILINEAR,
        };
        Self {
            path: info.path.clone(),
            rotation: info.rotation,
            out_size,
            flags,
            scaler: None,
            rgb: ff::frame::Video::empty(),
        }
    }

    /// Size of the images, as (width, height), rotation applied.
    pub(crate) fn output_size(&self) -> (u32, u32) {
        if self.rotation % 180 == 90 {
            (self.out_size.1, self.out_size.0)
        } else {
            self.out_size
        }
    }

    pub(crate) fn convert(&mut self, frame: &ff::frame::Video) -> Result<RgbImage, DecodeError> {
        if let Some(img) = self.box_convert(frame) {
            return Ok(self.rotate(img));
        }
        let key = ScalerKey {
            format: frame.format(),
            width: frame.width(),
            height: frame.height(),
        };
        if self.scaler.as_ref().map(|(k, _)| *k != key).unwrap_or(true) {
            let ctx = scaling::Context::get(
                key.format,
                key.width,
                key.height,
                Pixel::RGB24,
                self.out_size.0,
                self.out_size.1,
                self.flags,
            )
            .map_err(|e| DecodeError::ffmpeg(&self.path, "setting up the colour converter", e))?;
            self.scaler = Some((key, ctx));
        }
        let (_, scaler) = self.scaler.as_mut().expect("scaler was just set");
        let rgb = &mut self.rgb;
        scaler
            .run(frame, rgb)
            .map_err(|e| DecodeError::ffmpeg(&self.path, "converting a frame to RGB", e))?;
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let stride = rgb.stride(0);
        let data = rgb.data(0);
        let mut buf = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            buf.extend_from_slice(&data[row * stride..row * stride + w * 3]);
        }
        let img = RgbImage::from_raw(w as u32, h as u32, buf).expect("buffer has w*h*3 bytes");
        Ok(self.rotate(img))
    }

    /// The area-average shrink of an 8-bit 4:2:0 frame by whole, even factors, done
    /// without swscale (see [`crate::boxscale`]); `None` where it does not apply.
    fn box_convert(&self, frame: &ff::frame::Video) -> Option<RgbImage> {
        if self.flags != scaling::Flags::AREA {
            return None;
        }
        let full_range = match frame.format() {
            Pixel::YUV420P => false,
            Pixel::YUVJ420P => true,
            _ => return None,
        };
        let (ow, oh) = (self.out_size.0 as usize, self.out_size.1 as usize);
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let src = crate::boxscale::Yuv420 {
            width: w,
            height: h,
            planes: [0, 1, 2].map(|p| (frame.data(p), frame.stride(p))),
            full_range,
        };
        let rgb = crate::boxscale::box_to_rgb(&src, ow, oh)?;
        RgbImage::from_raw(ow as u32, oh as u32, rgb)
    }

    /// Applies the stream's rotation to the pixels.
    fn rotate(&self, img: RgbImage) -> RgbImage {
        match self.rotation {
            90 => image::imageops::rotate90(&img),
            180 => image::imageops::rotate180(&img),
            270 => image::imageops::rotate270(&img),
            _ => img,
        }
    }
}

impl Frames {
    pub(crate) fn new(
        info: &VideoInfo,
        opts: &DecodeOptions,
        seek_to: Option<f64>,
        input: impl FnOnce() -> Result<ff::format::context::Input, DecodeError>,
    ) -> Result<Self, DecodeError> {
        let path = info.path.clone();
        let invalid = |detail: String| DecodeError::InvalidArgument {
            path: path.clone(),
            detail,
        };
        match opts.sampling {
            Sampling::EveryNth(0) => {
                return Err(invalid(
                    "sampling every 0th frame: N must be at least 1".into(),
                ))
            }
            Sampling::Fps(f) if !(f.is_finite() && f > 0.0) => {
                return Err(invalid(format!(
                    "sampling at {f} fps: the rate must be positive and finite"
                )))
            }
            _ => {}
        }
        match opts.scale {
            Scale::Height(0) | Scale::MaxHeight(0) => {
                return Err(invalid(
                    "scale to height 0: the height must be at least 1".into(),
                ))
            }
            Scale::Exact { width, height } if width == 0 || height == 0 => {
                return Err(invalid(format!(
                    "scale to {width}x{height}: both sides must be at least 1"
                )))
            }
            _ => {}
        }
        let mut input = input()?;
        let stream = input
            .stream(info.stream_index)
            .ok_or_else(|| DecodeError::NoVideoStream {
                path: path.clone(),
                streams: "the stream found when probing has gone".into(),
            })?;
        let time_base = f64::from(stream.time_base());
        let tb = stream.time_base();
        let mut ctx = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| DecodeError::ffmpeg(&path, "reading stream parameters", e))?;
        ctx.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Frame,
            count: opts.threads,
            ..Default::default()
        });
        let mut dec = ctx.decoder();
        dec.set_packet_time_base(tb);
        if opts.skip_loop_filter {
            dec.skip_loop_filter(ff::Discard::All);
        }
        let decoder = dec
            .video()
            .map_err(|e| DecodeError::ffmpeg(&path, "opening the video decoder", e))?;
        let origin_ts = (info.start_time / time_base).round() as i64;
        if let Some(t) = seek_to {
            // Lands on a keyframe shown at or before `t`; frames before `t` are decoded
            // (where something references them) and dropped.
            crate::probe::seek_to_show(&mut input, info, t);
        }
        Ok(Self {
            path,
            input,
            decoder,
            stream_index: info.stream_index,
            time_base,
            origin_ts,
            avg_fps: info.fps,
            conv: Converter::new(info, opts),
            sampling: opts.sampling,
            seek_to,
            skipping_pre_roll: false,
            next_index: 0,
            last_time: None,
            pending: None,
            last_slot: None,
            ready: VecDeque::new(),
            eof_sent: false,
            done: false,
            decoded_any: false,
            bad_packets: 0,
            count_only: false,
            counted: 0,
            until: None,
            last_kept: None,
            chunk: false,
            stats: ChunkStats::default(),
        })
    }

    /// Turns this pass into a chunk of a parallel decode: it keeps frames with times in
    /// `[start, until)` (the start was given as the seek time), numbers them from 0 and
    /// stops at the first frame at or after `until`.
    pub(crate) fn into_chunk(mut self, until: Option<f64>) -> Self {
        self.until = until;
        self.chunk = true;
        self
    }

    /// Gives back the demuxer, for the next chunk of the same worker to seek in (opening a
    /// file again reads its header and probes its streams: about 10 ms).
    pub(crate) fn into_input(self) -> ff::format::context::Input {
        self.input
    }

    /// Size of the frames this iterator yields, as (width, height), rotation applied.
    pub fn output_size(&self) -> (u32, u32) {
        self.conv.output_size()
    }

    fn frame_time(&mut self, frame: &ff::frame::Video) -> f64 {
        let t = match frame.timestamp().or(frame.pts()) {
            Some(ts) => (ts - self.origin_ts) as f64 * self.time_base,
            None => match self.last_time {
                // No timestamp: step one average frame from the previous one.
                Some(prev) if self.avg_fps > 0.0 => prev + 1.0 / self.avg_fps,
                Some(prev) => prev,
                None => 0.0,
            },
        };
        self.last_time = Some(t);
        t
    }

    /// Decodes the rest of the stream without converting anything; returns how many
    /// frames came out.
    pub(crate) fn count_only(mut self) -> Result<u64, DecodeError> {
        self.count_only = true;
        while !self.done {
            self.step()?;
        }
        Ok(self.counted)
    }

    /// Decodes this chunk to its end without converting anything; returns what it saw
    /// and leaves the demuxer in `spare` for the worker's next chunk.
    pub(crate) fn count_chunk_keep(
        mut self,
        spare: &mut Option<ff::format::context::Input>,
    ) -> Result<ChunkStats, DecodeError> {
        self.count_only = true;
        while !self.done {
            self.step()?;
        }
        let stats = self.stats;
        *spare = Some(self.into_input());
        Ok(stats)
    }

    /// Decides what to do with a freshly decoded frame.
    fn accept(&mut self, frame: ff::frame::Video) -> Result<(), DecodeError> {
        self.decoded_any = true;
        if self.count_only && !self.chunk {
            self.counted += 1;
            return Ok(());
        }
        if self.chunk && frame.timestamp().or(frame.pts()).is_none() {
            self.stats.irregular = true;
        }
        let time = self.frame_time(&frame);
        let index = if self.chunk {
            self.stats.in_range
        } else if self.seek_to.is_some() && self.avg_fps > 0.0 {
            (time * self.avg_fps).round().max(0.0) as u64
        } else {
            self.next_index
        };
        self.next_index += 1;
        if let Some(start) = self.seek_to {
            // Half a millisecond of tolerance against timestamp rounding.
            if time < start - 5e-4 {
                if self.stats.first_time.is_some() {
                    self.stats.irregular = true;
                }
                return Ok(());
            }
        }
        if self.chunk {
            if let Some(end) = self.until {
                if time >= end - 5e-4 {
                    // The next chunk's first frame: it settles whether the pending fps slot
                    // ends here, and ends this chunk.
                    if let Sampling::Fps(fps) = self.sampling {
                        let slot = (time * fps).round() as i64;
                        if let Some((prev, pi, pt, pslot)) = self.pending.take() {
                            if slot > pslot {
                                self.emit_slot(&prev, pi, pt, pslot)?;
                            }
                        }
                    }
                    self.stats.reached_end = true;
                    self.done = true;
                    return Ok(());
                }
            }
            if self.stats.first_time.is_none() {
                self.stats.first_time = Some(time);
            }
            if self.last_kept.is_some_and(|last| time <= last) {
                self.stats.irregular = true;
            }
            self.last_kept = Some(time);
            self.stats.in_range += 1;
        }
        if self.count_only {
            self.counted += 1;
            return Ok(());
        }
        match self.sampling {
            Sampling::All => self.emit(&frame, index, time)?,
            Sampling::EveryNth(n) => {
                if index % u64::from(n) == 0 {
                    self.emit(&frame, index, time)?;
                }
            }
            Sampling::Fps(fps) => {
                let slot = (time * fps).round() as i64;
                if let Some((prev, pi, pt, pslot)) = self.pending.take() {
                    if slot > pslot {
                        self.emit_slot(&prev, pi, pt, pslot)?;
                    }
                }
                self.pending = Some((frame, index, time, slot));
            }
        }
        Ok(())
    }

    fn emit_slot(
        &mut self,
        frame: &ff::frame::Video,
        index: u64,
        time: f64,
        slot: i64,
    ) -> Result<(), DecodeError> {
        // Timestamps that run backwards (broken files) never emit a slot twice.
        if self.last_slot.is_some_and(|last| slot <= last) {
            return Ok(());
        }
        self.last_slot = Some(slot);
        self.emit(frame, index, time)
    }

    fn emit(&mut self, frame: &ff::frame::Video, index: u64, time: f64) -> Result<(), DecodeError> {
        let image = self.conv.convert(frame)?;
        self.ready.push_back(Frame { index, time, image });
        Ok(())
    }

    /// After a seek, the frames before the asked time are decoded only to rebuild the
    /// references of the frames after it: those that nothing references (most B-frames)
    /// need not be decoded at all. The decoder is told to drop non-reference frames
    /// while the packets' times lie before the asked time. Chunks of a parallel decode
    /// start at their keyframe and keep every frame, for their bookkeeping.
    fn skip_pre_roll(&mut self, packet: &ff::Packet) {
        let Some(start) = self.seek_to.filter(|_| !self.chunk) else {
            return;
        };
        let time = packet
            .pts()
            .map(|p| (p - self.origin_ts) as f64 * self.time_base);
        skip_unreferenced_before(&mut self.decoder, time, start, &mut self.skipping_pre_roll);
    }

    /// Feeds the decoder until it yields a frame or the stream ends.
    fn step(&mut self) -> Result<(), DecodeError> {
        let mut decoded = ff::frame::Video::empty();
        match self.decoder.receive_frame(&mut decoded) {
            Ok(()) => return self.accept(decoded),
            Err(ff::Error::Eof) => {
                if let Some((prev, pi, pt, pslot)) = self.pending.take() {
                    // Like FFmpeg's fps filter, the last slot is kept only when it starts
                    // before the stream ends (last frame's time plus its duration).
                    let dur = if prev.packet().duration > 0 {
                        prev.packet().duration as f64 * self.time_base
                    } else if self.avg_fps > 0.0 {
                        1.0 / self.avg_fps
                    } else {
                        0.0
                    };
                    let fps = match self.sampling {
                        Sampling::Fps(f) => f,
                        _ => 0.0,
                    };
                    let end_slot = ((pt + dur) * fps).round() as i64;
                    if pslot < end_slot || dur == 0.0 {
                        self.emit_slot(&prev, pi, pt, pslot)?;
                    }
                }
                self.done = true;
                if !self.decoded_any {
                    return Err(if self.bad_packets > 0 {
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
                    });
                }
                return Ok(());
            }
            Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => {}
            Err(e) => {
                // A frame the decoder gave up on: skip it as FFmpeg's CLI does.
                self.bad_packets += 1;
                tracing::debug!("{}: decoder error {e}; skipping", self.path.display());
                return Ok(());
            }
        }
        if self.eof_sent {
            // Draining after EOF and the decoder still asks for input: treat as finished.
            self.done = true;
            return Ok(());
        }
        loop {
            // A fresh packet each time: av_read_frame overwrites a packet without releasing
            // what it held (an audio packet skipped below), so reusing one leaks.
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream_index => {
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
                Err(e) => {
                    self.done = true;
                    return Err(DecodeError::Corrupt {
                        path: self.path.clone(),
                        at: self.last_time,
                        detail: e.to_string(),
                    });
                }
            }
        }
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
            .field("path", &self.path)
            .field("next_index", &self.next_index)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
