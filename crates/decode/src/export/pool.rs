//! Several cuts of one video at a time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::error::DecodeError;
use crate::export::cut::cut;
use crate::export::job::{ClipJob, ClipOptions, ClipReport};
use crate::parallel::cores;
use crate::probe::video::Video;

/// At most this many clips are cut at once by [`export_clips`]: each x264 encoder holds its
/// own lookahead and reference frames (about 150 MB at 1080p), so memory grows with the
/// number of encoders, not with the cores.
pub const MAX_CLIPS_AT_ONCE: usize = 4;

/// Cuts several clips of one video as [`export_clip`](crate::export_clip) does, several at a time, and
/// returns their reports in the order of `jobs`. `done(i, report)` runs on the calling
/// thread as each clip `i` is written (for progress).
///
/// With `opts.threads` 0, as many clips as there are cores (at most
/// [`MAX_CLIPS_AT_ONCE`]) are cut at once and the cores are shared out among them: on 2
/// cores two single-threaded x264 encoders keep both cores busy, where one frame-threaded
/// encoder keeps about 1.5 busy on a clip of a few seconds (its pipeline fills and drains
/// on every clip). The last clip, cut while the others finish, gets FFmpeg's own thread
/// count. A non-zero `opts.threads` cuts one clip at a time with that many threads each.
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
    let plan = Plan::new(jobs.len(), opts);
    let mut reports: Vec<Option<ClipReport>> = vec![None; jobs.len()];
    if plan.workers == 1 {
        for (i, job) in jobs.iter().enumerate() {
            let r = cut(video, job, &plan.job_options(i, opts))?;
            done(i, &r);
            reports[i] = Some(r);
        }
    } else {
        cut_in_parallel(video, jobs, opts, &plan, |i, r| {
            done(i, &r);
            reports[i] = Some(r);
        })?;
    }
    Ok(reports.into_iter().flatten().collect())
}

/// How many clips are cut at once, and with how many threads each.
struct Plan {
    /// The cores this process may use.
    cores: usize,
    /// Clips cut at once.
    workers: usize,
    /// The number of jobs.
    jobs: usize,
}

impl Plan {
    fn new(jobs: usize, opts: &ClipOptions) -> Self {
        let cores = cores();
        let workers = if opts.threads == 0 && jobs > 1 && cores > 1 {
            cores.min(jobs).min(MAX_CLIPS_AT_ONCE)
        } else {
            1
        };
        Self {
            cores,
            workers,
            jobs,
        }
    }

    /// The options of job `i`: the cores shared among the jobs running beside it. The
    /// first `workers` jobs start together; a later one starts as another finishes, and
    /// near the end fewer remain, so the very last gets FFmpeg's own choice again.
    fn job_options(&self, i: usize, opts: &ClipOptions) -> ClipOptions {
        let beside = if i < self.workers {
            self.workers
        } else {
            (self.jobs - i).min(self.workers)
        };
        let threads = match (self.workers, beside) {
            (1, _) | (_, 1) => opts.threads,
            _ => (self.cores / beside).max(1),
        };
        ClipOptions {
            threads,
            ..opts.clone()
        }
    }
}

/// Cuts the jobs on `plan.workers` threads, handing each report to `done` on the calling
/// thread. On a failure no new job starts, and the error of the earliest failed job (as a
/// sequential run would meet it) is returned once the running ones end.
fn cut_in_parallel(
    video: &Video,
    jobs: &[ClipJob],
    opts: &ClipOptions,
    plan: &Plan,
    mut done: impl FnMut(usize, ClipReport),
) -> Result<(), DecodeError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut first_error: Option<(usize, DecodeError)> = None;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..plan.workers {
            let tx = tx.clone();
            let (next, failed) = (&next, &failed);
            scope.spawn(move || loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let r = cut(video, job, &plan.job_options(i, opts));
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
                Ok(r) => done(i, r),
                Err(e) if first_error.as_ref().is_none_or(|(j, _)| i < *j) => {
                    first_error = Some((i, e));
                }
                Err(_) => {}
            }
        }
    });
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}
