//! The audio of a re-encoded clip: the source's audio stream over the clip's range,
//! copied when MP4 can hold its codec, else decoded, trimmed and encoded to AAC.

use ff::codec::Id as CodecId;
use ff::media::Type as MediaType;
use ff::Rational;
use ffmpeg_next as ff;

use crate::export::filter::{FilterError, Graph};
use crate::export::job::CutFailure;
use crate::export::output::{add_copy_stream, mp4_audio_ok, secs, stream_time_base, to_ts};
use crate::export::timestamps::TimestampFixer;

/// The clip's range on the source's timeline.
#[derive(Debug, Clone, Copy)]
pub(super) struct Range {
    /// The container's start time (the timeline's origin) in seconds.
    pub origin: f64,
    /// Start of the clip in seconds.
    pub start: f64,
    /// End of the clip in seconds (exclusive).
    pub end: f64,
}

/// The audio of a clip, written beside its video. Its failures are
/// [`CutFailure::Audio`]: the cut is then made again without audio.
pub(super) struct ClipAudio {
    /// The source's audio stream.
    input_index: usize,
    /// Its time base.
    input_tb: Rational,
    way: Way,
    /// Keeps the output packets' timestamps increasing.
    timestamps: TimestampFixer,
    /// Whether the packets past the clip's end were reached.
    done: bool,
}

/// A [`CutFailure::Audio`]: `what` failed with `e`.
fn audio_failure(what: &str, e: impl std::fmt::Display) -> CutFailure {
    CutFailure::Audio(format!("{what}: {e}"))
}

/// How the audio gets into the clip.
enum Way {
    /// Packets copied as they are, into output stream `out_index`.
    Copy { out_index: usize },
    /// Decoded, trimmed and encoded to AAC.
    Transcode(Box<AacTranscoder>),
}

/// Decoder, trimming filter and AAC encoder of an audio stream MP4 cannot hold as it is.
struct AacTranscoder {
    decoder: ff::decoder::Audio,
    encoder: ff::encoder::Audio,
    graph: Graph,
    out_index: usize,
    out_tb: Rational,
}

impl ClipAudio {
    /// Adds the source's best audio stream to `muxer` (copied or as AAC), before the
    /// header is written; `None` when the source has no audio.
    pub(super) fn add(
        input: &ff::format::context::Input,
        muxer: &mut ff::format::context::Output,
        global_header: bool,
        clip_duration: f64,
    ) -> Result<Option<Self>, CutFailure> {
        let Some(stream) = input.streams().best(MediaType::Audio) else {
            return Ok(None);
        };
        let (input_index, input_tb, params) =
            (stream.index(), stream.time_base(), stream.parameters());
        let way = if mp4_audio_ok(params.id()) {
            let out_index = add_copy_stream(muxer, params, input_tb)
                .map_err(|e| audio_failure("adding the audio stream", e))?;
            Way::Copy { out_index }
        } else {
            let tx = AacTranscoder::new(muxer, params, global_header, clip_duration)
                .map_err(|e| audio_failure("setting up AAC audio", e))?;
            Way::Transcode(Box::new(tx))
        };
        Ok(Some(Self {
            input_index,
            input_tb,
            way,
            timestamps: TimestampFixer::default(),
            done: false,
        }))
    }

    /// Whether the audio past the clip's end was reached.
    pub(super) fn done(&self) -> bool {
        self.done
    }

    /// Takes a packet of the source: writes (or decodes) it when it is this stream's and
    /// lies in `range`.
    pub(super) fn on_packet(
        &mut self,
        packet: &mut ff::Packet,
        muxer: &mut ff::format::context::Output,
        range: Range,
    ) -> Result<(), CutFailure> {
        if packet.stream() != self.input_index || self.done {
            return Ok(());
        }
        let tb = self.input_tb;
        match &mut self.way {
            Way::Copy { out_index } => {
                let Some(pts) = packet.pts() else {
                    return Ok(());
                };
                let t = secs(pts, tb) - range.origin;
                if t >= range.end {
                    self.done = true;
                    return Ok(());
                }
                if t < range.start - 1e-3 {
                    return Ok(());
                }
                let shift = to_ts(range.start + range.origin, tb);
                packet.set_pts(Some(pts - shift));
                packet.set_dts(packet.dts().map(|d| d - shift));
                packet.set_position(-1);
                packet.set_stream(*out_index);
                packet.rescale_ts(tb, stream_time_base(muxer, *out_index));
                self.timestamps.fix_packet(packet);
                packet
                    .write_interleaved(muxer)
                    .map_err(|e| audio_failure("writing audio", e))
            }
            Way::Transcode(tx) => {
                if packet
                    .pts()
                    .is_some_and(|p| secs(p, tb) - range.origin >= range.end + 0.5)
                {
                    self.done = true;
                    return Ok(());
                }
                let _ = tx.decoder.send_packet(packet);
                tx.pump(tb, range, muxer, &mut self.timestamps, false)
                    .map_err(|e| audio_failure("encoding audio", e))
            }
        }
    }

    /// Drains the decoder, filter and encoder at the end of the clip.
    pub(super) fn finish(
        &mut self,
        muxer: &mut ff::format::context::Output,
        range: Range,
    ) -> Result<(), CutFailure> {
        if let Way::Transcode(tx) = &mut self.way {
            let _ = tx.decoder.send_eof();
            tx.pump(self.input_tb, range, muxer, &mut self.timestamps, true)
                .map_err(|e| audio_failure("encoding audio", e))?;
        }
        Ok(())
    }

    /// How many packets had their timestamps made increasing.
    pub(super) fn timestamps_fixed(&self) -> u64 {
        self.timestamps.fixed()
    }
}

impl AacTranscoder {
    /// Opens the decoder of `params`, an AAC encoder at the same rate and layout, its
    /// stream in `muxer`, and a filter that keeps `clip_duration` seconds from the clip's
    /// start in frames of the encoder's size.
    fn new(
        muxer: &mut ff::format::context::Output,
        params: ff::codec::Parameters,
        global_header: bool,
        clip_duration: f64,
    ) -> Result<Self, FilterError> {
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
            let mut ost = muxer.add_stream(codec)?;
            ost.set_parameters(&encoder);
            ost.set_time_base(Rational::new(1, rate));
            ost.index()
        };
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
        let graph = Graph::new("abuffer", &args, "abuffersink", &spec)?;
        Ok(Self {
            decoder,
            encoder,
            graph,
            out_index,
            out_tb: Rational::new(1, rate),
        })
    }

    /// Moves decoded samples through the filter into the encoder and the encoded packets
    /// into the muxer; with `flush`, drains everything.
    fn pump(
        &mut self,
        in_tb: Rational,
        range: Range,
        muxer: &mut ff::format::context::Output,
        timestamps: &mut TimestampFixer,
        flush: bool,
    ) -> Result<(), ff::Error> {
        let rate = self.decoder.rate() as f64;
        let mut frame = ff::frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            let Some(ts) = frame.timestamp().or(frame.pts()) else {
                continue;
            };
            // Samples before the start get negative timestamps and atrim drops them.
            let t = secs(ts, in_tb) - range.origin - range.start;
            frame.set_pts(Some((t * rate).round() as i64));
            self.graph.push(&frame)?;
        }
        if flush {
            self.graph.flush()?;
        }
        let mut filtered = ff::frame::Audio::empty();
        while self.graph.pull(&mut filtered) {
            self.encoder.send_frame(&filtered)?;
            self.write_packets(muxer, timestamps)?;
        }
        if flush {
            self.encoder.send_eof()?;
            self.write_packets(muxer, timestamps)?;
        }
        Ok(())
    }

    /// Writes the packets the encoder has ready.
    fn write_packets(
        &mut self,
        muxer: &mut ff::format::context::Output,
        timestamps: &mut TimestampFixer,
    ) -> Result<(), ff::Error> {
        let otb = stream_time_base(muxer, self.out_index);
        let mut p = ff::Packet::empty();
        while self.encoder.receive_packet(&mut p).is_ok() {
            p.set_stream(self.out_index);
            p.rescale_ts(self.out_tb, otb);
            timestamps.fix_packet(&mut p);
            p.write_interleaved(muxer)?;
        }
        Ok(())
    }
}
