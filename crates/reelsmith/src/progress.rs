//! Progress reporting for long pipelines, independent of any terminal library.
//!
//! Every pipeline takes one `&dyn Progress` and reports its work as named [`Stage`]s: a
//! stage starts (with the number of steps when it is known), advances, and finishes. The
//! CLI draws a progress bar per stage; [`NoProgress`] ignores everything.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use reelsmith::progress::{Progress, Stage};
//!
//! /// Counts the steps of every stage.
//! #[derive(Default)]
//! struct Counter(AtomicU64);
//!
//! impl Progress for Counter {
//!     fn start(&self, _stage: Stage, _total: Option<u64>) {}
//!     fn advance(&self, _stage: Stage, n: u64) {
//!         self.0.fetch_add(n, Ordering::Relaxed);
//!     }
//!     fn finish(&self, _stage: Stage) {}
//! }
//!
//! let c = Counter::default();
//! c.advance(Stage::Decode, 3);
//! assert_eq!(c.0.load(Ordering::Relaxed), 3);
//! assert_eq!(Stage::Export.label(), "export");
//! ```

use std::fmt;

/// A named part of a pipeline's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Decoding every frame small for analysis (shots, keyframes, model-free highlights).
    Analyse,
    /// Decoding sampled frames (and writing them, for `frames`).
    Decode,
    /// Decoding sampled frames and embedding them with a model.
    Embed,
    /// Measuring and scoring frames.
    Score,
    /// Cutting clips.
    Export,
    /// Writing images and reports.
    Write,
    /// Loading a model.
    Load,
    /// Videos of a batch (one step per video).
    Videos,
    /// Segmenting frames into entities.
    Segment,
    /// Denoising steps of a diffusion model.
    Denoise,
    /// Optimiser steps of a training run.
    Train,
}

impl Stage {
    /// A short lower-case label for progress bars and logs.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Analyse => "analyse",
            Stage::Decode => "decode",
            Stage::Embed => "embed",
            Stage::Score => "score",
            Stage::Export => "export",
            Stage::Write => "write",
            Stage::Load => "load",
            Stage::Videos => "videos",
            Stage::Segment => "segment",
            Stage::Denoise => "denoise",
            Stage::Train => "train",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Receives progress from a pipeline. Implementations must be cheap: pipelines may report
/// from several threads and once per frame.
pub trait Progress: Sync {
    /// `stage` starts with about `total` steps (`None` when unknown).
    fn start(&self, stage: Stage, total: Option<u64>);
    /// `n` more steps of `stage` are done.
    fn advance(&self, stage: Stage, n: u64);
    /// `stage` is over.
    fn finish(&self, stage: Stage);
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _stage: Stage, _total: Option<u64>) {}
    fn advance(&self, _stage: Stage, _n: u64) {}
    fn finish(&self, _stage: Stage) {}
}

/// Starts `stage` on `progress` and finishes it when dropped (also on early returns), so
/// a pipeline never leaves a stage open.
pub(crate) struct StageGuard<'a> {
    progress: &'a dyn Progress,
    stage: Stage,
}

impl<'a> StageGuard<'a> {
    pub(crate) fn start(progress: &'a dyn Progress, stage: Stage, total: Option<u64>) -> Self {
        progress.start(stage, total);
        Self { progress, stage }
    }

    pub(crate) fn advance(&self, n: u64) {
        self.progress.advance(self.stage, n);
    }
}

impl Drop for StageGuard<'_> {
    fn drop(&mut self) {
        self.progress.finish(self.stage);
    }
}
