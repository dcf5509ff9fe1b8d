//! Shared vocabulary of reelsmith.
//!
//! Every stage crate (decode, embed, score, segment, entity, diffusion) speaks in these
//! types and nothing else crosses crate borders:
//!
//! - [`Embeddings`]: `n × d` row-major `f32` matrix, one row per frame or image.
//! - [`TimeSpan`]: a half-open interval `[start, end)` in seconds.
//! - [`FrameRef`]: a decoded frame's 0-based index (presentation order) and its
//!   presentation time in seconds.
//! - [`FrameRate`]: conversions between frame indices and seconds for constant-rate
//!   material. Variable-frame-rate video carries true timestamps in [`FrameRef`]; never
//!   derive a time from an index there.
//!
//! ```
//! use reelsmith_core::{Embeddings, FrameRate, TimeSpan};
//!
//! let e = Embeddings::from_rows(&[vec![1.0, 0.0], vec![0.0, 2.0]]).unwrap();
//! assert_eq!((e.len(), e.dim()), (2, 2));
//! assert_eq!(e.cosine_distance(0, 1), 1.0);
//!
//! let fps = FrameRate::new(25, 1).unwrap();
//! assert_eq!(fps.frame_to_seconds(50), 2.0);
//! assert_eq!(fps.seconds_to_frame(2.0), 50);
//!
//! let span = TimeSpan::new(1.0, 4.0).unwrap();
//! assert_eq!(span.duration(), 3.0);
//! ```
#![forbid(unsafe_code)]

mod embeddings;
pub mod paths;
mod time;

pub use embeddings::{cosine_similarity, dot, l2_norm, Embeddings};
pub use time::{FrameRate, FrameRef, TimeSpan};

/// Errors raised when constructing the shared types from inconsistent data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// The flat data length is not a multiple of the row width.
    #[error("embedding data has {len} values, which is not a multiple of the dimension {dim}")]
    ShapeMismatch {
        /// Number of values provided.
        len: usize,
        /// Requested row width.
        dim: usize,
    },
    /// Rows of different widths were given.
    #[error("embedding row {row} has {got} values but the first row has {expected}")]
    RaggedRows {
        /// Index of the offending row.
        row: usize,
        /// Width of the first row.
        expected: usize,
        /// Width of the offending row.
        got: usize,
    },
    /// A dimension of zero was requested for non-empty data.
    #[error("embedding dimension must be at least 1")]
    ZeroDimension,
    /// A time span whose end lies before its start, or with non-finite bounds.
    #[error("invalid time span [{start}, {end}): the end must be finite and not before the start")]
    InvalidSpan {
        /// Start in seconds.
        start: f64,
        /// End in seconds.
        end: f64,
    },
    /// A frame rate with a zero numerator or denominator.
    #[error("invalid frame rate {num}/{den}: both parts must be positive")]
    InvalidFrameRate {
        /// Numerator.
        num: u32,
        /// Denominator.
        den: u32,
    },
}
