//! The output side of a cut: the temporary file beside the destination, the MP4 muxer and
//! its streams, timestamps in stream time bases, and the errors that name the output.

use std::path::{Path, PathBuf};

use ff::codec::Id as CodecId;
use ff::Rational;
use ffmpeg_next as ff;

use crate::error::DecodeError;

/// A temporary file in `out`'s folder, to be renamed to `out` once complete (dropped, it
/// is removed).
pub(crate) fn temp_beside(out: &Path) -> Result<tempfile::NamedTempFile, DecodeError> {
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

/// A [`DecodeError::Write`] about the output `out`: `what` failed with `e`.
pub(crate) fn write_error(out: &Path, what: &str, e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Write {
        path: out.to_path_buf(),
        detail: format!("{what}: {e}"),
    }
}

/// An MP4 muxer writing to `tmp` (errors name `out`, the destination).
pub(super) fn open_mp4(tmp: &Path, out: &Path) -> Result<ff::format::context::Output, DecodeError> {
    ff::format::output_as(&tmp, "mp4").map_err(|e| write_error(out, "creating the MP4 muxer", e))
}

/// Whether the MP4 muxer wants codec headers in the streams' parameters rather than in
/// the packets.
pub(super) fn wants_global_header(muxer: &ff::format::context::Output) -> bool {
    muxer
        .format()
        .flags()
        .contains(ff::format::Flags::GLOBAL_HEADER)
}

/// Audio codecs the MP4 muxer accepts as they are.
pub(super) fn mp4_audio_ok(id: CodecId) -> bool {
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

/// Seconds of `ts` units of `tb`.
pub(super) fn secs(ts: i64, tb: Rational) -> f64 {
    ts as f64 * f64::from(tb)
}

/// `t` seconds in units of `tb`, rounded.
pub(super) fn to_ts(t: f64, tb: Rational) -> i64 {
    (t / f64::from(tb)).round() as i64
}

/// Adds an output stream that copies `params` as they are, in time base `tb`; returns its
/// index.
pub(super) fn add_copy_stream(
    muxer: &mut ff::format::context::Output,
    params: ff::codec::Parameters,
    tb: Rational,
) -> Result<usize, ff::Error> {
    let mut ost = muxer.add_stream(ff::encoder::find(CodecId::None))?;
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

/// The time base the muxer chose for stream `index` (it may differ from the one asked for
/// once the header is written).
pub(super) fn stream_time_base(muxer: &ff::format::context::Output, index: usize) -> Rational {
    muxer
        .stream(index)
        .map_or(Rational::new(1, 1), |s| s.time_base())
}

/// Builds `graph` as `src` (named "in", with `src_args`) → `spec` → `sink` (named "out").
pub(super) fn build_graph(
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

/// Sends `frame` into the source ("in") of a graph built by [`build_graph`].
pub(super) fn graph_push(
    graph: &mut ff::filter::Graph,
    frame: &ff::Frame,
) -> Result<(), ff::Error> {
    match graph.get("in") {
        Some(mut src) => src.source().add(frame),
        None => Err(ff::Error::FilterNotFound),
    }
}

/// Tells the source ("in") of a graph built by [`build_graph`] that no frame follows.
pub(super) fn graph_flush(graph: &mut ff::filter::Graph) -> Result<(), ff::Error> {
    match graph.get("in") {
        Some(mut src) => src.source().flush(),
        None => Err(ff::Error::FilterNotFound),
    }
}

/// Takes the next filtered frame from the sink ("out") of a graph built by
/// [`build_graph`]; `false` when none is ready.
pub(super) fn graph_pull(graph: &mut ff::filter::Graph, frame: &mut ff::Frame) -> bool {
    graph
        .get("out")
        .is_some_and(|mut sink| sink.sink().frame(frame).is_ok())
}
