//! Pipelines composing the stage crates.

pub mod score;
