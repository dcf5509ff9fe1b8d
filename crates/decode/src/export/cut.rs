//! One cut: the job checked, written by re-encoding or stream copy into a temporary
//! file, renamed into place when complete.

use std::path::Path;

use crate::error::DecodeError;
use crate::export::job::{ClipJob, ClipMode, ClipOptions, ClipReport, CutFailure};
use crate::export::output::write_error;
use crate::export::{copy, output, reencode};
use crate::probe::video::Video;

/// Cuts `[start, end)` seconds of `video` into an MP4 at `out`.
///
/// Re-encoding keeps exactly the frames whose presentation time lies in the range, applies
/// the rotation to the pixels (the clip plays upright everywhere) and copies or re-encodes
/// the audio of the same range. Stream copy starts at the keyframe at or before `start`.
/// The clip is written to a temporary file beside `out` and renamed into place only when
/// complete; `out` may not be a symbolic link, something other than a regular file, or
/// the video itself ([`DecodeError::OutputRefused`]).
///
/// Unusual input is cut rather than refused, and [`ClipReport::warnings`] says how: audio
/// that cannot be cut (damaged, or refused by the encoder or the muxer) is left out,
/// timestamps that repeat or run backwards are made increasing, and a re-encoded picture
/// gets even sides for H.264 (1×1 becomes 2×2, 3×5 becomes 2×4).
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
/// When the audio cannot be cut (damaged, or refused by the encoder or the muxer), the clip
/// is cut again without it and the report says so in its warnings.
pub(crate) fn cut(
    video: &Video,
    job: &ClipJob,
    opts: &ClipOptions,
) -> Result<ClipReport, DecodeError> {
    check_job(video, job, opts)?;
    let out = job.out.as_path();
    let tmp = output::temp_beside(out, Some(video.path()))?;
    let report = match attempt(video, job, tmp.path(), opts) {
        Ok(report) => report,
        Err(CutFailure::Clip(e)) => return Err(e),
        Err(CutFailure::Audio(what)) => {
            let without = ClipOptions {
                audio: false,
                ..opts.clone()
            };
            let mut report = match attempt(video, job, tmp.path(), &without) {
                Ok(report) => report,
                Err(CutFailure::Clip(e)) => return Err(e),
                // Without audio nothing can fail on audio.
                Err(CutFailure::Audio(what)) => return Err(write_error(out, "cutting", what)),
            };
            report.warnings.insert(
                0,
                format!(
                    "{}: the audio could not be cut ({what}), so the clip has no audio",
                    video.path().display()
                ),
            );
            report
        }
    };
    if report.frames == 0 {
        return Err(DecodeError::InvalidArgument {
            path: video.path().to_path_buf(),
            detail: format!(
                "no video frame lies in [{:.3}, {:.3}); pick a range inside the video",
                job.start, job.end
            ),
        });
    }
    // The caller shows them (they are in the report); logged for debugging only, so a
    // front end that prints the report's warnings does not show each one twice.
    for warning in &report.warnings {
        tracing::debug!("{warning}");
    }
    output::persist(tmp, out)?;
    Ok(report)
}

/// One attempt at cutting `job` into `tmp` (the muxer truncates it first).
fn attempt(
    video: &Video,
    job: &ClipJob,
    tmp: &Path,
    opts: &ClipOptions,
) -> Result<ClipReport, CutFailure> {
    match opts.mode {
        ClipMode::Reencode => reencode::Reencoder::new(video, job, tmp, opts)?.run(),
        ClipMode::StreamCopy => copy::stream_copy(video, job, tmp, opts),
    }
}

/// Checks a job's range against the video and the options' CRF.
fn check_job(video: &Video, job: &ClipJob, opts: &ClipOptions) -> Result<(), DecodeError> {
    let (start, end) = (job.start, job.end);
    let info = video.info();
    let invalid = |detail: String| DecodeError::InvalidArgument {
        path: info.path.clone(),
        detail,
    };
    if !(start.is_finite() && end.is_finite() && start >= 0.0 && end > start) {
        return Err(invalid(format!(
            "clip [{start}, {end}) is empty or invalid: need 0 <= start < end"
        )));
    }
    if info.duration > 0.0 && start >= info.duration {
        return Err(invalid(format!(
            "clip starts at {start:.3}s but the video is only {:.3}s long",
            info.duration
        )));
    }
    if opts.crf > 51 {
        return Err(invalid(format!(
            "CRF {} is out of range: use 0..=51",
            opts.crf
        )));
    }
    Ok(())
}
