//! The facade's error type: one enum wrapping the errors of every stage a pipeline runs.
//!
//! Messages say what is wrong and what to do in the library's own terms (the name of a
//! configuration setting, never a command-line flag); the CLI adds its flags.

use std::path::PathBuf;

/// Everything a pipeline of this crate can fail with. Each variant that concerns a file
/// names it (the input, or the output being written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening, probing or decoding a video, or writing a clip or an image, failed.
    #[error(transparent)]
    Decode(#[from] reelsmith_decode::DecodeError),
    /// The embedder rejected the frames of a file.
    #[error("{}: embedding the frames failed: {source}", path.display())]
    Embed {
        /// The input file.
        path: PathBuf,
        /// The embedder's error.
        #[source]
        source: reelsmith_embed::EmbedError,
    },
    /// A model could not be loaded (missing files, wrong weights, no network).
    #[error("cannot load the model {model}: {source}")]
    Model {
        /// The hub id or folder asked for.
        model: String,
        /// The loader's error (names the file at fault).
        #[source]
        source: reelsmith_embed::EmbedError,
    },
    /// Scoring failed (aesthetic head, weights).
    #[error("{}: scoring the frames failed: {source}", path.display())]
    Score {
        /// The input file.
        path: PathBuf,
        /// The scorer's error.
        #[source]
        source: reelsmith_score::ScoreError,
    },
    /// An aesthetic head could not be loaded.
    #[error("cannot load the aesthetic head {}: {source}", path.display())]
    AestheticHead {
        /// The head's file.
        path: PathBuf,
        /// The loader's error.
        #[source]
        source: reelsmith_score::ScoreError,
    },
    /// A setting of a pipeline's configuration is out of range.
    #[error("invalid setting {setting}: {message}")]
    Config {
        /// The configuration field (as named in the config file), e.g. `min_duration`.
        setting: &'static str,
        /// What is wrong and what values work.
        message: String,
    },
    /// A configuration file cannot be read or does not describe the pipeline's settings.
    #[error("{}: {message}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (the field and the value at fault).
        message: String,
    },
    /// A request needs a model that was not given.
    #[error("{what} needs a CLIP model: choose one in the configuration's `model` setting")]
    NeedsModel {
        /// What needs it, e.g. `prompts`, `aesthetic_head`, `texts`.
        what: &'static str,
    },
    /// No input files were given.
    #[error("no input files: give at least one image or video")]
    NoInputs,
    /// An input image could not be read.
    #[error("{}: cannot read the image: {error}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// The decoder's error (in the message, so not also a `source`).
        error: image::ImageError,
    },
    /// The sampling kept no frame of a video.
    #[error("{}: sampling {sampling} keeps no frame of this video; sample more densely (a higher fps)", path.display())]
    NoFrames {
        /// The video.
        path: PathBuf,
        /// The sampling used.
        sampling: String,
    },
    /// The video is too short for one clip.
    #[error("{}: the video is {duration:.2} s long, shorter than one clip ({min:.2} s); lower the shortest clip duration (min_duration)", path.display())]
    TooShort {
        /// The video.
        path: PathBuf,
        /// Its duration in seconds.
        duration: f64,
        /// The minimum clip duration asked for.
        min: f64,
    },
    /// No frame reached the score threshold, or no peak was found.
    #[error("{}: no highlight found: {hint}", path.display())]
    NoPeak {
        /// The video.
        path: PathBuf,
        /// What to change.
        hint: String,
    },
    /// An input cannot be processed as asked (the message says why and what to do).
    #[error("{}: {detail}", path.display())]
    InvalidInput {
        /// The input the request was about.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// An output destination cannot be used as it is (a link, a foreign folder, one of the
    /// inputs...); the message says why and what to do.
    #[error("{}: {detail}", path.display())]
    Output {
        /// The destination.
        path: PathBuf,
        /// What is wrong and what to do.
        detail: String,
    },
    /// The output folder holds files the pipeline did not write (not the outputs of an
    /// earlier run of it); refused unless the run may overwrite.
    #[error("{}: holds files this pipeline did not write ({names}); choose an empty or new folder, or allow overwriting", path.display())]
    ForeignFolder {
        /// The folder.
        path: PathBuf,
        /// Some of the files, for the message.
        names: String,
    },
    /// A model gave NaN or infinite embeddings: its checkpoint is broken (a zero in the
    /// preprocessor's `image_std`, weights that are not finite). Refused rather than passed
    /// on as null embeddings and zero scores.
    #[error("{}: the model {model} gave embeddings that are not finite numbers (NaN or infinity); its checkpoint is broken: check that `image_std` in its preprocessor_config.json holds no 0 and that its weights are finite", path.display())]
    NonFiniteEmbeddings {
        /// The input being embedded.
        path: PathBuf,
        /// The model's id.
        model: String,
    },
    /// A line of a batch manifest is wrong (a missing column, a duplicate id, an unknown
    /// option...), or the manifest as a whole cannot be used (`line` 0: unreadable, empty).
    #[error("{}", manifest_message(path, *line, detail))]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The 1-based line at fault (0 for the whole file).
        line: u64,
        /// What is wrong and what to do.
        detail: String,
    },
    /// Segmenting, embedding bookkeeping, composing or measuring entities failed (the
    /// entity stage's error; the message names the file when the stage's does not).
    #[error("{}", with_path(path, error))]
    Entity {
        /// The input (or output) concerned.
        path: PathBuf,
        /// The entity stage's error (in the message, so not also a `source`).
        error: reelsmith_entity::EntityError,
    },
    /// Loading or running a video diffusion model failed (the diffusion stage's error).
    #[error("{}", with_path(path, error))]
    Diffusion {
        /// The model folder (or input file) concerned.
        path: PathBuf,
        /// The diffusion stage's error (in the message, so not also a `source`).
        error: reelsmith_diffusion::DiffusionError,
    },
    /// Creating an output folder or writing a file failed.
    #[error("{}: cannot write output: {source}", path.display())]
    Write {
        /// The output path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The file this error is about: the input or the output being written (`None` for
    /// errors that concern no single file).
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Decode(e) => Some(e.path()),
            Error::Embed { path, .. }
            | Error::Score { path, .. }
            | Error::AestheticHead { path, .. }
            | Error::Image { path, .. }
            | Error::NoFrames { path, .. }
            | Error::TooShort { path, .. }
            | Error::NoPeak { path, .. }
            | Error::InvalidInput { path, .. }
            | Error::ConfigFile { path, .. }
            | Error::Output { path, .. }
            | Error::ForeignFolder { path, .. }
            | Error::NonFiniteEmbeddings { path, .. }
            | Error::Manifest { path, .. }
            | Error::Entity { path, .. }
            | Error::Diffusion { path, .. }
            | Error::Write { path, .. } => Some(path),
            Error::Model { .. }
            | Error::Config { .. }
            | Error::NeedsModel { .. }
            | Error::NoInputs => None,
        }
    }

    /// The configuration setting at fault, for [`Error::Config`], [`Error::TooShort`]
    /// (`min_duration`) and [`Error::NeedsModel`] (`model`): front ends map it to their own
    /// flag or field name when they explain the error.
    pub fn setting(&self) -> Option<&'static str> {
        match self {
            Error::Config { setting, .. } => Some(setting),
            Error::TooShort { .. } => Some("min_duration"),
            Error::NeedsModel { .. } => Some("model"),
            _ => None,
        }
    }

    pub(crate) fn config(setting: &'static str, message: impl Into<String>) -> Self {
        Error::Config {
            setting,
            message: message.into(),
        }
    }

    pub(crate) fn entity(path: impl Into<PathBuf>, error: reelsmith_entity::EntityError) -> Self {
        Error::Entity {
            path: path.into(),
            error,
        }
    }

    pub(crate) fn diffusion(
        path: impl Into<PathBuf>,
        error: reelsmith_diffusion::DiffusionError,
    ) -> Self {
        Error::Diffusion {
            path: path.into(),
            error,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Write {
            path: path.into(),
            source,
        }
    }
}

/// `error`'s message, prefixed with `path` unless the message already names it.
fn with_path(path: &std::path::Path, error: &dyn std::fmt::Display) -> String {
    let message = error.to_string();
    let shown = path.display().to_string();
    if shown.is_empty() || message.contains(&shown) {
        message
    } else {
        format!("{shown}: {message}")
    }
}

/// `path:line: detail`, or `path: detail` for the whole file.
fn manifest_message(path: &std::path::Path, line: u64, detail: &str) -> String {
    if line == 0 {
        format!("{}: {detail}", path.display())
    } else {
        format!("{}:{line}: {detail}", path.display())
    }
}

/// A number as messages show it: plainly, or in scientific notation where the plain form
/// would be long (`1e308`, not 309 digits).
pub(crate) fn num<T>(v: T) -> String
where
    T: Copy + Into<f64> + std::fmt::Display + std::fmt::LowerExp,
{
    let a = v.into().abs();
    if a != 0.0 && a.is_finite() && !(1e-6..1e9).contains(&a) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numbers_in_messages_stay_short() {
        assert_eq!(num(1e308), "1e308");
        assert_eq!(num(-2.5e-300), "-2.5e-300");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(f64::NEG_INFINITY), "-inf");
        assert_eq!(num(0.12f32), "0.12");
        assert_eq!(num(1e30f32), "1e30");
    }
}
