//! Pure segmentation algorithms over [`Embeddings`] and `&[f32]` series.
//!
//! Nothing here decodes video or runs a model: every function takes per-frame embeddings
//! (rows of [`Embeddings`], one per decoded frame) or a per-frame series and returns frame
//! indices. All of them are linear or `n·log n` in the number of frames.
//!
//! | module | what |
//! |---|---|
//! | [`distance`] | successor distances (L1, Euclidean, cosine) and min-max normalisation |
//! | [`seams`] | seams by fixed or rolling (mean + k·std) threshold, min/max segment length |
//! | [`surveyor`] | the k-NN "embedding surveyor" that adapts the seam threshold per window |
//! | [`boundaries`] | cuts, gradual transitions and seams combined under a minimum and maximum duration |
//! | [`keyframes`] | ComfyUI-style quantile keyframes |
//! | [`motion`] | global motion (translation and zoom) between two small grayscale frames |
//! | [`peaks`] | smoothing, local-maxima peaks with minimum separation, top-K |
//! | [`diversity`] | greedy cosine-diversity filter |
//! | [`summary`] | per-segment mean embedding and representative keyframes |
//! | [`shots`] | shot-boundary detection: hard cuts, flashes rejected, gradual transitions |
//!
//! Non-finite inputs (NaN, ±inf) never panic: a distance that is not finite is treated as
//! 0 ("no change"), and each function documents what it returns for empty or one-frame input.
//!
//! ```
//! use reelsmith_core::Embeddings;
//! use reelsmith_segment::shots::{detect_shots, ShotOptions};
//!
//! // Two "shots": 30 frames of one flat picture, then 30 of another.
//! let mut rows = Vec::new();
//! for i in 0..60 {
//!     let v = if i < 30 { 0.1 } else { 0.6 };
//!     rows.push(vec![v / 4.0; 4]);
//! }
//! let e = Embeddings::from_rows(&rows).unwrap();
//! let det = detect_shots(&e, &ShotOptions::for_fps(25.0));
//! assert_eq!(det.transitions.len(), 1);
//! assert_eq!(det.transitions[0].frame, 30);
//! assert_eq!(det.shots.len(), 2);
//! ```
#![forbid(unsafe_code)]

pub mod boundaries;
pub mod distance;
pub mod diversity;
pub mod keyframes;
pub mod motion;
pub mod peaks;
pub mod seams;
pub mod shots;
pub mod summary;
pub mod surveyor;

pub use distance::{min_max_normalize, successor_distances, Metric};
pub use reelsmith_core::Embeddings;
