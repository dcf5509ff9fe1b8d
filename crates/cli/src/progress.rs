//! Progress bars for the facade's pipeline stages.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reelsmith::progress::{Progress, Stage};

/// A bar over `len` steps (or a spinner when the length is unknown), hidden when `quiet`.
fn bar(len: Option<u64>, what: &str, quiet: bool) -> ProgressBar {
    let pb = match len {
        Some(len) if len > 0 => ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        ),
        _ => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{msg:>10} {spinner} {pos} {per_sec}")
                .expect("valid template"),
        ),
    };
    if quiet {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_message(what.to_string());
    pb
}

/// One progress bar per running stage, drawn on stderr unless quiet.
pub struct StageBars {
    quiet: bool,
    bars: Mutex<Vec<(Stage, ProgressBar)>>,
}

impl StageBars {
    /// Bars drawn on stderr unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            bars: Mutex::new(Vec::new()),
        }
    }

    fn with_bar(&self, stage: Stage, f: impl FnOnce(&ProgressBar)) {
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, pb)) = bars.iter().rev().find(|(s, _)| *s == stage) {
            f(pb);
        }
    }
}

impl Progress for StageBars {
    fn start(&self, stage: Stage, total: Option<u64>) {
        let pb = bar(total, stage.label(), self.quiet);
        self.bars
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((stage, pb));
    }

    fn advance(&self, stage: Stage, n: u64) {
        self.with_bar(stage, |pb| pb.inc(n));
    }

    fn finish(&self, stage: Stage) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = bars.iter().rposition(|(s, _)| *s == stage) {
            bars.remove(i).1.finish_and_clear();
        }
    }
}
