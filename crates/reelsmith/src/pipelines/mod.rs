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

//! | [`entities`] | `entities.json`, `mask_NN.png`, `entity_NN.png`, `overlay.png`, `embeddings.safetensors` | decode / image → ISNet or SAM → entities → DINOv2 / CLIP embeddings → entity memory |
//! | [`compose`] | a first frame + `<name>.layout.json` | background + RGBA cut-outs → FFGo or free layout |
//! | [`retention`] | `retention.csv`, `retention.png`, `retention.json` | decode (sampled) → segment → embed candidates with the memory's model → match |
//! | [`finetune`] | a cache (`index.json`, `example_*.safetensors`); an adapter folder (`adapter.safetensors`, `loss.csv`, `loss.png`, checkpoints, `train.json`) | FFGo list → decode → VAE/UMT5 pre-encoding; cache → LoRA trainer |
//! | [`generate`] | `out.mp4` or PNG frames + `generate.json` | Wan image-to-video sampling → H.264 encoder or PNGs |

pub mod batch;
pub mod compose;
pub mod embed;
pub mod entities;
pub mod finetune;
pub mod frames;
pub mod generate;
pub mod highlights;
pub mod keyframes;
pub mod probe;
pub mod retention;
pub mod score;
pub mod segments;
pub mod shots;
