//! Progress bars shared by the subcommands.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `len` steps (or a spinner when `len` is 0), hidden when `quiet`.
pub fn bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    let pb = if len > 0 {
        ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        )
    } else {
        ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg:>10} {spinner} {pos} {per_sec}")
                .expect("valid template"),
        )
    };
    if quiet {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_message(what.to_string());
    pb
}

/// Progress bars for the facade's pipeline stages.
pub struct StageBars {
    quiet: bool,
    bar: std::sync::Mutex<Option<ProgressBar>>,
}

impl StageBars {
    /// Bars drawn on stderr unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            bar: std::sync::Mutex::new(None),
        }
    }
}

impl reelsmith::progress::Progress for StageBars {
    fn start(&self, stage: reelsmith::progress::Stage, total: u64) {
        let pb = bar(total, stage.label(), self.quiet);
        if let Ok(mut b) = self.bar.lock() {
            *b = Some(pb);
        }
    }
    fn advance(&self, _stage: reelsmith::progress::Stage, n: u64) {
        if let Ok(b) = self.bar.lock() {
            if let Some(pb) = b.as_ref() {
                pb.inc(n);
            }
        }
    }
    fn finish(&self, _stage: reelsmith::progress::Stage) {
        if let Ok(mut b) = self.bar.lock() {
            if let Some(pb) = b.take() {
                pb.finish_and_clear();
            }
        }
    }
}
