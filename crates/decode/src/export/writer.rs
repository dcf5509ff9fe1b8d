//! Writing RGB frames as an H.264 MP4: generated video (diffusion samples, rendered
//! previews) rather than cuts of a source.

use std::path::{Path, PathBuf};

use ff::Rational;
use ffmpeg_next as ff;
use image::RgbImage;
use reelsmith_core::FrameRate;

use super::filter::Graph;
use super::h264::{open_h264, H264Settings};
use super::job::X264Preset;
use super::output::{open_mp4, persist, temp_beside, wants_global_header, write_error};
use crate::error::DecodeError;
use crate::frames::{MAX_FRAME_PIXELS, MAX_FRAME_SIDE};

/// Settings of a [`VideoWriter`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriterOptions {
    /// Frames per second (default 16, the rate of Wan's videos).
    pub fps: FrameRate,
    /// x264 constant rate factor, 0..=51 (default 18; 0 is lossless in 4:2:0).
    pub crf: u8,
    /// x264 preset (default veryfast).
    pub preset: X264Preset,
    /// Encoder threads; 0 lets x264 choose (default).
    pub threads: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            fps: FrameRate { num: 16, den: 1 },
            crf: 18,
            preset: X264Preset::Veryfast,
            threads: 0,
        }
    }
}

/// Encodes RGB frames of one size into an H.264 MP4 (4:2:0, BT.601), written to a
/// temporary file beside the destination and renamed into place by
/// [`VideoWriter::finish`]; dropped before that, nothing appears at the destination.
///
/// Odd sizes are scaled to even ones (x264's 4:2:0 needs them): 3×5 frames become 2×4.
///
/// ```
/// use reelsmith_decode::{open, DecodeOptions, VideoWriter, WriterOptions};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("ramp.mp4");
/// let mut w = VideoWriter::create(&path, 64, 48, &WriterOptions::default())?;
/// for k in 0..16u8 {
///     w.push(&image::RgbImage::from_pixel(64, 48, image::Rgb([k * 15, 100, 200 - k * 10])))?;
/// }
/// w.finish()?;
/// let video = open(&path)?;
/// assert_eq!((video.info().width, video.info().height), (64, 48));
/// assert_eq!(video.count_frames()?, 16);
/// assert!((video.info().fps - 16.0).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct VideoWriter {
    out: PathBuf,
    tmp: tempfile::NamedTempFile,
    muxer: ff::format::context::Output,
    encoder: ff::encoder::Video,
    filter: Graph,
    index: usize,
    tb: Rational,
    width: u32,
    height: u32,
    filtered: ff::frame::Video,
    frames: i64,
}

impl std::fmt::Debug for VideoWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoWriter")
            .field("out", &self.out)
            .field("size", &(self.width, self.height))
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl VideoWriter {
    /// Opens `path` for `width`×`height` frames (each side 1..=16384).
    pub fn create(
        path: impl AsRef<Path>,
        width: u32,
        height: u32,
        opts: &WriterOptions,
    ) -> Result<Self, DecodeError> {
        let out = path.as_ref().to_path_buf();
        let pixels = u64::from(width) * u64::from(height);
        if !(1..=MAX_FRAME_SIDE).contains(&width)
            || !(1..=MAX_FRAME_SIDE).contains(&height)
            || pixels > MAX_FRAME_PIXELS
        {
            return Err(write_error(
                &out,
                "the video size",
                format!("{width}x{height} frames: each side must be 1..={MAX_FRAME_SIDE} and the frame at most {} megapixels", MAX_FRAME_PIXELS >> 20),
            ));
        }
        if opts.crf > 51 {
            return Err(write_error(
                &out,
                "the encoder settings",
                format!("crf {} is not in 0..=51", opts.crf),
            ));
        }
        if opts.fps.num == 0 || opts.fps.den == 0 {
            return Err(write_error(
                &out,
                "the encoder settings",
                "the frame rate must be positive",
            ));
        }
        crate::probe::demux::init();
        let tmp = temp_beside(&out, None)?;
        let mut muxer = open_mp4(tmp.path(), &out)?;
        let tb = Rational::new(opts.fps.den as i32, opts.fps.num as i32);
        let even = |side: u32| if side >= 2 { side & !1 } else { 2 };
        let (ew, eh) = (even(width), even(height));
        let (encoder, codec) = open_encoder((ew, eh), tb, opts, wants_global_header(&muxer), &out)?;
        let index = {
            let mut ost = muxer
                .add_stream(codec)
                .map_err(|e| write_error(&out, "adding the video stream", e))?;
            ost.set_parameters(&encoder);
            ost.set_time_base(tb);
            ost.index()
        };
        let args = format!(
            "video_size={width}x{height}:pix_fmt={}:time_base={}/{}:pixel_aspect=1/1",
            ff::ffi::AVPixelFormat::AV_PIX_FMT_RGB24 as i32,
            tb.numerator(),
            tb.denominator()
        );
        let spec =
            format!("scale={ew}:{eh}:out_color_matrix=bt601:out_range=tv,format=pix_fmts=yuv420p");
        let filter = Graph::new("buffer", &args, "buffersink", &spec)
            .map_err(|e| write_error(&out, "building the colour conversion", e))?;
        muxer
            .write_header()
            .map_err(|e| write_error(&out, "writing the MP4 header", e))?;
        Ok(Self {
            out,
            tmp,
            muxer,
            encoder,
            filter,
            index,
            tb,
            width,
            height,
            filtered: ff::frame::Video::empty(),
            frames: 0,
        })
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames as u64
    }

    /// Encodes the next frame, which must have the size given to [`VideoWriter::create`].
    pub fn push(&mut self, frame: &RgbImage) -> Result<(), DecodeError> {
        if frame.dimensions() != (self.width, self.height) {
            return Err(write_error(
                &self.out,
                "adding a frame",
                format!(
                    "it is {}x{} but the video is {}x{}; give frames of one size",
                    frame.width(),
                    frame.height(),
                    self.width,
                    self.height
                ),
            ));
        }
        // The filter's source takes the frame's buffers over, so each frame gets its own.
        let mut rgb = ff::frame::Video::new(ff::format::Pixel::RGB24, self.width, self.height);
        let stride = rgb.stride(0);
        let row = self.width as usize * 3;
        let data = rgb.data_mut(0);
        for (y, src) in frame.as_raw().chunks_exact(row).enumerate() {
            data[y * stride..y * stride + row].copy_from_slice(src);
        }
        rgb.set_pts(Some(self.frames));
        self.frames += 1;
        self.filter
            .push(&rgb)
            .map_err(|e| write_error(&self.out, "converting a frame", e))?;
        self.drain_filter()
    }

    fn drain_filter(&mut self) -> Result<(), DecodeError> {
        while self.filter.pull(&mut self.filtered) {
            self.filtered.set_kind(ff::picture::Type::None);
            self.encoder
                .send_frame(&self.filtered)
                .map_err(|e| write_error(&self.out, "encoding video", e))?;
            self.write_packets()?;
        }
        Ok(())
    }

    fn write_packets(&mut self) -> Result<(), DecodeError> {
        let out_tb = self
            .muxer
            .stream(self.index)
            .map_or(self.tb, |s| s.time_base());
        let mut p = ff::Packet::empty();
        while self.encoder.receive_packet(&mut p).is_ok() {
            if p.duration() <= 0 {
                p.set_duration(1);
            }
            p.set_stream(self.index);
            p.rescale_ts(self.tb, out_tb);
            p.write_interleaved(&mut self.muxer)
                .map_err(|e| write_error(&self.out, "writing video", e))?;
        }
        Ok(())
    }

    /// Flushes the encoder, writes the MP4 trailer and renames the file into place.
    pub fn finish(mut self) -> Result<(), DecodeError> {
        if self.frames == 0 {
            return Err(write_error(
                &self.out,
                "finishing the video",
                "no frame was written",
            ));
        }
        let _ = self.filter.flush();
        self.drain_filter()?;
        self.encoder
            .send_eof()
            .map_err(|e| write_error(&self.out, "finishing the video", e))?;
        self.write_packets()?;
        self.muxer
            .write_trailer()
            .map_err(|e| write_error(&self.out, "writing the MP4 trailer", e))?;
        let Self {
            out, tmp, muxer, ..
        } = self;
        drop(muxer);
        persist(tmp, &out)
    }
}

/// Writes `frames` (all of one size) as an H.264 MP4 at `path`; see [`VideoWriter`].
pub fn write_video<'a>(
    path: impl AsRef<Path>,
    frames: impl IntoIterator<Item = &'a RgbImage>,
    opts: &WriterOptions,
) -> Result<(), DecodeError> {
    let path = path.as_ref();
    let mut frames = frames.into_iter().peekable();
    let Some(first) = frames.peek() else {
        return Err(write_error(
            path,
            "writing the video",
            "no frames were given",
        ));
    };
    let mut w = VideoWriter::create(path, first.width(), first.height(), opts)?;
    for f in frames {
        w.push(f)?;
    }
    w.finish()
}

/// Opens the H.264 encoder for `size` pictures in time base `tb`.
fn open_encoder(
    size: (u32, u32),
    tb: Rational,
    opts: &WriterOptions,
    global_header: bool,
    out: &Path,
) -> Result<(ff::encoder::Video, ff::Codec), DecodeError> {
    let settings = H264Settings {
        size,
        time_base: tb,
        frame_rate: Some(Rational::new(tb.denominator(), tb.numerator())),
        crf: opts.crf,
        preset: opts.preset,
        threads: opts.threads,
        global_header,
    };
    open_h264(&settings, out)
}
