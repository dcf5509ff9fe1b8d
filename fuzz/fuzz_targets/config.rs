//! The configuration parser: arbitrary text read as every pipeline's configuration, from
//! TOML and from JSON, then validated. Any input is a configuration or a typed error naming
//! the file, never a panic; a configuration that validates can be written back out.

#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use reelsmith::pipelines::{
    embed::EmbedConfig, frames::FramesConfig, highlights::HighlightsConfig,
    keyframes::KeyframesConfig, score::ScoringConfig, segments::SegmentsConfig,
    shots::ShotsConfig,
};

/// Reads `path` as a `T`, validates it and serialises it back.
fn check<T>(path: &std::path::Path, validate: impl Fn(&T) -> Result<(), reelsmith::Error>)
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    match reelsmith::config::load::<T>(path) {
        Ok(c) => {
            if validate(&c).is_ok() {
                // A valid configuration can be reported (JSON cannot hold NaN: validation
                // must have refused it).
                serde_json::to_string(&c).expect("a valid configuration serialises");
            }
        }
        Err(e) => assert!(
            e.path().is_some_and(|p| p == path),
            "the error names the file: {e}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ext, text)) = data.split_first() else {
        return;
    };
    let name = if ext & 1 == 0 { "c.toml" } else { "c.json" };
    let dir = std::env::temp_dir().join(format!("reelsmith-fuzz-config-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    let Ok(mut f) = std::fs::File::create(&path) else {
        return;
    };
    if f.write_all(text).is_err() {
        return;
    }
    drop(f);
    check::<HighlightsConfig>(&path, HighlightsConfig::validate);
    check::<SegmentsConfig>(&path, SegmentsConfig::validate);
    check::<KeyframesConfig>(&path, KeyframesConfig::validate);
    check::<ScoringConfig>(&path, ScoringConfig::validate);
    check::<FramesConfig>(&path, FramesConfig::validate);
    check::<EmbedConfig>(&path, EmbedConfig::validate);
    check::<ShotsConfig>(&path, |c| c.analysis.validate());
});
