//! The pipelines: each composes the stages into one job, with one shape.
//!
//! Every pipeline module has a serialisable configuration with defaults and a `validate`
//! (errors name the setting at fault), an input (the files, the output folder, and a
//! [`Models`](crate::models::Models) registry where a model may be used), and
//! `run(input, &config, &dyn Progress)` returning a report or the facade
//! [`Error`](crate::Error). Pipelines that write files write each atomically, and their
//! JSON report last.
//!
//! | pipeline | writes | composes |
//! |---|---|---|
//! | [`probe`] | — | decode (probe, frame count) |
//! | [`frames`] | `frame_NNNNNN.jpg`, `frames.json` | decode (sampled, scaled, all cores) |
//! | [`shots`] | — (JSON / CSV renderings) | decode (every frame, 64×36) → pixel embedder → shot detector |
//! | [`keyframes`] | `keyframe_NNNNNN.jpg`, `keyframes.json` | analysis decode → quantile or seam keyframes → images |
//! | [`score`] | — | decode / images → sharpness, exposure (+ CLIP aesthetics, saliency) |
//! | [`embed`] | `*.safetensors` | decode → CLIP / DINOv2 in batches, embedding cache |
//! | [`highlights`] | clips, `highlights.json`, CSVs, plot, contact sheet | decode → score → peaks → diversity → clips |
//! | [`segments`] | clips, keyframes, `segments.json` | decode → embed → successor seams → segments → clips |
//! | [`batch`] | `OUT/<id>/<job>/...`, markers; Parquet on merge | a manifest's videos through the jobs above, sharded, resumable |

pub mod batch;
pub mod embed;
pub mod frames;
pub mod highlights;
pub mod keyframes;
pub mod probe;
pub mod score;
pub mod segments;
pub mod shots;
