//! The crate's error type.

use std::path::{Path, PathBuf};

/// Errors from resolving, loading or running a model.
///
/// Every variant that concerns a file names it; messages say what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A configuration file (`config.json` and the like) or a checkpoint container is
    /// malformed, lacks a field, has a wrong value or describes an unsupported model.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The checkpoint lacks tensors the model needs, or has them with other shapes. All of
    /// them are listed, not only the first.
    #[error("{}: {}", path.display(), describe_weight_problems(missing, mismatched))]
    Weights {
        /// The checkpoint (file, or the first shard).
        path: PathBuf,
        /// Names of the tensors that are absent.
        missing: Vec<String>,
        /// `name: expected [..], found [..]` for tensors with another shape.
        mismatched: Vec<String>,
    },
    /// The model could not be found in the local Hugging Face cache nor downloaded.
    #[error("cannot get {model}: {message}")]
    Download {
        /// The hub id and revision asked for.
        model: String,
        /// What failed and how to get the files.
        message: String,
    },
    /// The requested device is not available in this build or on this machine.
    #[error("device: {0}")]
    Device(String),
    /// An input cannot be processed (wrong rank, too small, wrong channel count...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tensor backend (candle) failed.
    #[error("tensor backend: {0}")]
    Backend(#[from] candle_core::Error),
}

impl ModelError {
    /// A [`ModelError::Config`] about `path`.
    pub fn config(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        ModelError::Config {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// A [`ModelError::Io`] about `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A [`ModelError::Io`] saying that `path` does not exist, with advice.
    pub(crate) fn not_found(path: impl AsRef<Path>, advice: &str) -> Self {
        ModelError::Io {
            path: path.as_ref().to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, advice.to_string()),
        }
    }
}

/// The message of a checkpoint's weight problems: the missing tensors (the first 12, then a
/// count) and those with a wrong shape, with the question that usually explains them. Shared
/// by the stages whose errors report [`ModelError::Weights`] in their own types.
///
/// ```
/// let m = reelsmith_models::describe_weight_problems(&["a.weight".into()], &[]);
/// assert!(m.starts_with("1 missing tensor(s): a.weight"));
/// ```
pub fn describe_weight_problems(missing: &[String], mismatched: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(12).map(String::as_str).collect();
        let more = missing.len().saturating_sub(shown.len());
        let mut s = format!("{} missing tensor(s): {}", missing.len(), shown.join(", "));
        if more > 0 {
            s.push_str(&format!(" and {more} more"));
        }
        parts.push(s);
    }
    if !mismatched.is_empty() {
        parts.push(format!(
            "{} tensor(s) with a wrong shape: {}",
            mismatched.len(),
            mismatched.join("; ")
        ));
    }
    parts.push("is this a checkpoint of the model its config.json describes?".into());
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_errors_name_every_tensor_up_to_a_limit() {
        let missing: Vec<String> = (0..15).map(|i| format!("t{i}")).collect();
        let e = ModelError::Weights {
            path: "m.safetensors".into(),
            missing,
            mismatched: vec!["w: expected [2], found [3]".into()],
        };
        let s = e.to_string();
        assert!(
            s.starts_with("m.safetensors: 15 missing tensor(s): t0, t1"),
            "{s}"
        );
        assert!(s.contains("t11 and 3 more"), "{s}");
        assert!(s.contains("1 tensor(s) with a wrong shape: w: expected [2], found [3]"));
    }
}
