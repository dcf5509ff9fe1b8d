//! reelsmith-entity: first-frame entities.

pub mod isnet;
mod weights;
pub mod mask;
pub mod instances;
pub mod segment;

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum EntityError {
    /// A weights file that cannot be used.
    #[error("weights {path}: {message}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Input that cannot be used (sizes, values, formats), with what to do instead.
    #[error("{0}")]
    Invalid(String),
    /// A model error.
    #[error("model: {0}")]
    Candle(#[from] candle_core::Error),
}
