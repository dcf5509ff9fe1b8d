//! reelsmith-entity: first-frame entities.

pub mod isnet;
mod weights;
pub mod mask;
pub mod instances;
pub mod segment;
pub mod entity;
pub mod memory;
pub mod compose;
pub mod retention;
pub mod output;
pub mod sam;

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
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An image that cannot be read, written or used.
    #[error("image {path}: {message}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A JSON file that cannot be read or does not describe what it should.
    #[error("JSON {path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model error.
    #[error("model: {0}")]
    Candle(#[from] candle_core::Error),
}
