//! The output side of a cut: the temporary file beside the destination, the MP4 muxer and
//! its streams, timestamps in stream time bases, and the errors that name the output.

use std::path::{Path, PathBuf};

use ff::codec::Id as CodecId;
use ff::Rational;
use ffmpeg_next as ff;

use crate::error::DecodeError;
use crate::paths::{ffmpeg_url, same_file, special_kind};

/// What every temporary output file's name starts with; the process id and a random part
/// follow, then [`TEMP_SUFFIX`].
const TEMP_PREFIX: &str = ".reelsmith-";

/// What every temporary output file's name ends with.
const TEMP_SUFFIX: &str = ".part";

/// The name prefix of this process's temporary files: `.reelsmith-<pid>-`.
fn own_temp_prefix() -> String {
    format!("{TEMP_PREFIX}{}-", std::process::id())
}

/// Refuses an output path that must not be written: a symbolic link (never written
/// through), anything but a regular file (a folder, a device, a FIFO), or the file at
/// `input` (the video being read). A missing path or a regular file is fine: the output
/// replaces it.
pub(crate) fn check_destination(out: &Path, input: Option<&Path>) -> Result<(), DecodeError> {
    let refuse = |reason: String| DecodeError::OutputRefused {
        path: out.to_path_buf(),
        reason,
    };
    let meta = match std::fs::symlink_metadata(out) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(write_error(out, "checking the destination", e)),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "it is a symbolic link, and outputs are never written through links; remove the link or choose another path".into(),
        ));
    }
    if let Some(kind) = special_kind(meta.file_type()) {
        return Err(refuse(format!(
            "it is {kind}, not a regular file; choose a file path"
        )));
    }
    if input.is_some_and(|input| same_file(input, out)) {
        return Err(refuse("it is the input video; choose another path".into()));
    }
    Ok(())
}

/// A temporary file in `out`'s folder, to be renamed to `out` once complete (dropped, it
/// is removed), after [`check_destination`].
pub(crate) fn temp_beside(
    out: &Path,
    input: Option<&Path>,
) -> Result<tempfile::NamedTempFile, DecodeError> {
    check_destination(out, input)?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = own_temp_prefix();
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TEMP_SUFFIX);
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

/// Renames the complete temporary file `tmp` to `out`. The rename replaces a file that
/// appeared at `out` meanwhile (a link included) rather than writing through it.
pub(crate) fn persist(tmp: tempfile::NamedTempFile, out: &Path) -> Result<(), DecodeError> {
    tmp.persist(out)
        .map(drop)
        .map_err(|e| write_error(out, "renaming the finished file into place", e.error))
}

/// Removes the temporary files this process is writing in `dir` (clips and images not
/// finished yet, named `.reelsmith-<pid>-<random>.part`), and returns the paths removed.
///
/// Every output is written to such a file beside its destination and renamed into place
/// once complete; a failed write removes its own. A process that is interrupted (Ctrl-C,
/// SIGTERM) before it can unwind calls this for each output folder, so that nothing
/// half-written stays behind. Files of other processes (other pids) are left alone, as
/// a run of another process may be writing them. It is not async-signal-safe: call it
/// from a thread that waits for the signal (as `signal-hook`'s `Signals` iterator or the
/// `ctrlc` crate run their handlers), not from a raw signal handler. A writer still
/// running gets an error when it renames its file; nothing half-written appears.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("clip.mp4"), b"done").unwrap();
/// let removed = reelsmith_decode::remove_temp_files(dir.path()).unwrap();
/// assert!(removed.is_empty());
/// assert!(dir.path().join("clip.mp4").exists());
/// ```
pub fn remove_temp_files(dir: &Path) -> Result<Vec<PathBuf>, DecodeError> {
    let prefix = own_temp_prefix();
    let entries = std::fs::read_dir(dir).map_err(|e| DecodeError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(&prefix) && name.ends_with(TEMP_SUFFIX)) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            // Renamed into place or removed by its writer meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DecodeError::Io { path, source: e }),
        }
    }
    Ok(removed)
}

/// A [`DecodeError::Write`] about the output `out`: `what` failed with `e`.
pub(crate) fn write_error(out: &Path, what: &str, e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Write {
        path: out.to_path_buf(),
        detail: format!("{what}: {e}"),
    }
}

/// An MP4 muxer writing to `tmp` (errors name `out`, the destination). The URL is built
/// from the path's bytes, so a path that is not UTF-8 works.
pub(super) fn open_mp4(tmp: &Path, out: &Path) -> Result<ff::format::context::Output, DecodeError> {
    let url = ffmpeg_url(tmp)?;
    let format = c"mp4";
    // SAFETY: `url` and `format` are valid C strings; on success the context (with its
    // opened I/O) is owned by `Output`, whose drop closes both; on failure what was
    // allocated is freed here.
    unsafe {
        let mut ps = std::ptr::null_mut();
        let r = ff::ffi::avformat_alloc_output_context2(
            &mut ps,
            std::ptr::null(),
            format.as_ptr(),
            url.as_ptr(),
        );
        if r < 0 || ps.is_null() {
            return Err(write_error(
                out,
                "creating the MP4 muxer",
                ff::Error::from(r),
            ));
        }
        let r = ff::ffi::avio_open(&mut (*ps).pb, url.as_ptr(), ff::ffi::AVIO_FLAG_WRITE);
        if r < 0 {
            ff::ffi::avformat_free_context(ps);
            return Err(write_error(
                out,
                "creating the MP4 muxer",
                ff::Error::from(r),
            ));
        }
        Ok(ff::format::context::Output::wrap(ps))
    }
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
