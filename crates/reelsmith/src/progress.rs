//! Progress reporting for long pipelines, independent of any terminal library.

/// A pipeline stage that reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Decoding and scoring (and embedding) sampled frames.
    Scoring,
    /// Writing clips.
    Export,
}

impl Stage {
    /// A short label for progress bars.
    pub fn label(&self) -> &'static str {
        match self {
            Stage::Scoring => "scoring",
            Stage::Export => "export",
        }
    }
}

/// Receives progress from a pipeline. The CLI implements it with progress bars.
pub trait Progress {
    /// A stage starts with about `total` steps (0 when unknown).
    fn start(&self, stage: Stage, total: u64);
    /// `n` more steps of `stage` are done.
    fn advance(&self, stage: Stage, n: u64);
    /// The stage is over.
    fn finish(&self, stage: Stage);
}
