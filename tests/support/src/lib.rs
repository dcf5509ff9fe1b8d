//! The shared test media, for the test crates of every package (each includes this file
//! with `#[path]`): `$REELSMITH_SHARED/videos` and its `ground_truth.json`. Tests that need
//! them skip, saying why, when the variable is unset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `$REELSMITH_SHARED/videos`, or `None` (after printing why the test skips).
pub fn shared_videos() -> Option<PathBuf> {
    match std::env::var_os("REELSMITH_SHARED") {
        Some(p) => Some(PathBuf::from(p).join("videos")),
        None => {
            eprintln!(
                "skipped: REELSMITH_SHARED is not set (the folder holding videos/ and models/)"
            );
            None
        }
    }
}

/// `ground_truth.json` of the shared videos folder `dir`.
pub fn ground_truth(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("ground_truth.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}
