//! The crate's error type.

use std::path::PathBuf;

/// Errors from loading or running the diffusion models.
///
/// Every variant that concerns a file names it, and the messages say how to fix the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffusionError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A configuration file (`config.json`, `model_index.json`, `scheduler_config.json`) or a
    /// model folder is missing, unreadable or describes something this crate does not run.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The checkpoint lacks tensors the configuration asks for, or has them with other shapes.
    /// All of them are listed, not only the first.
    #[error("{}: the weights do not match the model's config.json ({} missing, {} with another shape){}{}; use the config.json that came with these weights (a Wan checkpoint of the same variant and size)",
        path.display(), missing.len(), mismatched.len(),
        list("missing", missing), list("wrong shape", mismatched))]
    Weights {
        /// The weights file or folder.
        path: PathBuf,
        /// Tensors the model needs that the checkpoint does not have.
        missing: Vec<String>,
        /// `name: expected [..], found [..]` for tensors present with another shape.
        mismatched: Vec<String>,
    },
    /// The tokenizer could not be loaded or failed on a text.
    #[error("tokenizer {}: {message}", path.display())]
    Tokenizer {
        /// The `tokenizer.json`.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An input (sizes, frame count, channels, prompt embeddings...) the model cannot take; the
    /// message says which values would work.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The requested device is not available (not compiled in, or not present).
    #[error("device: {0}")]
    Device(String),
    /// A tensor operation failed (usually a bug or out of memory).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn list(what: &str, names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    format!("; {what}: {}", names.join(", "))
}

/// Result with [`DiffusionError`].
pub type Result<T> = std::result::Result<T, DiffusionError>;

/// Errors of the shared model layer (checkpoint and configuration reading), each as the
/// variant of the same meaning; the file stays named.
impl From<reelsmith_models::ModelError> for DiffusionError {
    fn from(e: reelsmith_models::ModelError) -> Self {
        use reelsmith_models::ModelError as M;
        match e {
            M::Io { path, source } => DiffusionError::Io { path, source },
            M::Config { path, message } => DiffusionError::Config { path, message },
            M::Weights {
                path,
                missing,
                mismatched,
            } => DiffusionError::Weights {
                path,
                missing,
                mismatched,
            },
            M::Device(m) => DiffusionError::Device(m),
            M::InvalidInput(m) => DiffusionError::InvalidInput(m),
            M::Backend(e) => DiffusionError::Candle(e),
            other => DiffusionError::InvalidInput(other.to_string()),
        }
    }
}

impl DiffusionError {
    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DiffusionError::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DiffusionError::Io {
            path: path.into(),
            source,
        }
    }
}
