//! FFGo's training list: a JSON array of
//! `{"file_path": clip, "text": caption, "image_path": composed first frame, "type": "video"}`
//! with paths relative to the list's folder. Instead of a composed frame an example may give
//! its materials — `"background_path": scene, "entity_paths": [RGBA cut-outs]` — and the
//! frame is composed from them (FFGo's layout) when the example is encoded.
//!
//! [`read_ffgo_list`] checks every entry and returns the good ones and, per bad one, why it
//! was left out (missing clip or image, empty caption, caption without the transition
//! phrase, a type other than `video`): training goes on without them. The clips' frame
//! counts and the images' contents are checked where they are decoded (the facade's
//! `finetune prepare`), and reported the same way.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DiffusionError, Result};

/// The phrase FFGo's captions start with: it tells the model that the video cuts from the
/// composed first frame to the scene.
pub const TRANSITION_PHRASE: &str = "ad23r2 the camera view suddenly changes.";

/// Pixel frames at the start of each training clip that are replaced by the composed frame
/// (FFGo: frames 0–3, the first latent frame of Wan's 4× temporal VAE).
pub const REPLACED_FRAMES: usize = 4;

/// What to do with a caption that lacks the transition phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhraseMode {
    /// Prepend the phrase (`"<phrase> <caption>"`).
    #[default]
    Prepend,
    /// Report the example as malformed and leave it out.
    Require,
}

/// One usable example of the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetEntry {
    /// Position in the list (0-based).
    pub index: usize,
    /// The clip (resolved against the list's folder).
    pub clip: PathBuf,
    /// The composed first frame (resolved) or, when [`Self::cutouts`] is not empty, the
    /// background scene the cut-outs are composed onto.
    pub image: PathBuf,
    /// RGBA cut-outs to compose onto [`Self::image`] (`entity_paths`; empty when the list
    /// gives a composed frame).
    pub cutouts: Vec<PathBuf>,
    /// The caption, starting with the transition phrase.
    pub caption: String,
}

/// An example left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// Position in the list (0-based).
    pub index: usize,
    /// The clip as written in the list (or `?`).
    pub name: String,
    /// What is wrong and what to do.
    pub reason: String,
}

#[derive(Deserialize)]
struct RawEntry {
    file_path: Option<String>,
    text: Option<String>,
    image_path: Option<String>,
    background_path: Option<String>,
    entity_paths: Option<Vec<String>>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Reads and checks FFGo's list. The list itself must be a JSON array (else an error naming
/// the file); each bad entry becomes a [`Skipped`].
pub fn read_ffgo_list(
    path: &Path,
    phrase: &str,
    mode: PhraseMode,
) -> Result<(Vec<DatasetEntry>, Vec<Skipped>)> {
    let bytes = std::fs::read(path).map_err(|e| DiffusionError::io(path, e))?;
    let raw: Vec<serde_json::Value> = serde_json::from_slice(&bytes).map_err(|e| {
        DiffusionError::config(
            path,
            format!("not a JSON list of {{\"file_path\", \"text\", \"image_path\", \"type\"}} objects: {e}"),
        )
    })?;
    let root = path.parent().unwrap_or(Path::new("."));
    let mut good = Vec::new();
    let mut skipped = Vec::new();
    for (index, v) in raw.into_iter().enumerate() {
        let name = v
            .get("file_path")
            .and_then(|p| p.as_str())
            .unwrap_or("?")
            .to_string();
        let mut skip = |reason: String| {
            skipped.push(Skipped {
                index,
                name: name.clone(),
                reason,
            })
        };
        let e: RawEntry = match serde_json::from_value(v) {
            Ok(e) => e,
            Err(err) => {
                skip(format!("not an object with string fields: {err}"));
                continue;
            }
        };
        if let Some(k) = e.kind.as_deref() {
            if k != "video" {
                skip(format!("type {k:?}: only \"video\" examples train here"));
                continue;
            }
        }
        let Some(fp) = e.file_path else {
            skip("needs \"file_path\" (the clip)".into());
            continue;
        };
        let clip = root.join(&fp);
        let (image, cutouts) = match (e.image_path, e.background_path, e.entity_paths) {
            (Some(ip), None, None) => (root.join(ip), Vec::new()),
            (None, Some(bg), Some(ents)) if !ents.is_empty() => {
                (root.join(bg), ents.iter().map(|p| root.join(p)).collect())
            }
            (Some(_), _, _) => {
                skip(
                    "gives both \"image_path\" and materials (\"background_path\", \"entity_paths\"); keep one"
                        .into(),
                );
                continue;
            }
            _ => {
                skip(
                    "needs \"image_path\" (the composed first frame) or \"background_path\" with a non-empty \"entity_paths\" (the materials to compose it from)"
                        .into(),
                );
                continue;
            }
        };
        if !clip.is_file() {
            skip(format!("the clip {} does not exist", clip.display()));
            continue;
        }
        let what = if cutouts.is_empty() {
            "the first frame"
        } else {
            "the background"
        };
        if let Some(missing) = std::iter::once(&image)
            .chain(&cutouts)
            .find(|p| !p.is_file())
        {
            let what = if missing == &image {
                what
            } else {
                "the cut-out"
            };
            skip(format!("{what} {} does not exist", missing.display()));
            continue;
        }
        let text = e.text.unwrap_or_default();
        let text = text.trim();
        if text.is_empty() {
            skip("the caption (\"text\") is empty".into());
            continue;
        }
        let caption = if phrase.is_empty() || text.starts_with(phrase) {
            text.to_string()
        } else {
            match mode {
                PhraseMode::Prepend => format!("{phrase} {text}"),
                PhraseMode::Require => {
                    skip(format!(
                        "the caption does not start with the transition phrase {phrase:?}; add it or let it be prepended"
                    ));
                    continue;
                }
            }
        };
        good.push(DatasetEntry {
            index,
            clip,
            image,
            cutouts,
            caption,
        });
    }
    Ok((good, skipped))
}

/// The frame count a clip of `available` frames is bucketed to: the largest `4k + 1` not
/// above `min(available, max_frames)`, or `None` below 5 frames.
///
/// ```
/// use reelsmith_diffusion::dataset::bucket_frames;
/// assert_eq!(bucket_frames(100, 81), Some(81));
/// assert_eq!(bucket_frames(60, 81), Some(57));
/// assert_eq!(bucket_frames(4, 81), None);
/// ```
pub fn bucket_frames(available: usize, max_frames: usize) -> Option<usize> {
    let n = available.min(max_frames);
    (n >= 5).then(|| (n - 1) / 4 * 4 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_entries_are_reported_and_skipped() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("clips")).unwrap();
        std::fs::write(d.path().join("clips/a.mp4"), b"x").unwrap();
        std::fs::write(d.path().join("a.png"), b"x").unwrap();
        let list = d.path().join("list.json");
        std::fs::write(
            &list,
            serde_json::json!([
                {"file_path": "clips/a.mp4", "text": "A dog runs.", "image_path": "a.png", "type": "video"},
                {"file_path": "clips/missing.mp4", "text": "x", "image_path": "a.png", "type": "video"},
                {"file_path": "clips/a.mp4", "text": "", "image_path": "a.png"},
                {"file_path": "clips/a.mp4", "text": "x", "image_path": "b.png"},
                {"file_path": "clips/a.mp4", "text": "x", "image_path": "a.png", "type": "image"},
                {"file_path": 3},
                {"file_path": "clips/a.mp4", "text": format!("{TRANSITION_PHRASE} A cat."), "image_path": "a.png"},
                {"file_path": "clips/a.mp4", "text": "Materials.", "background_path": "a.png", "entity_paths": ["a.png", "a.png"]},
                {"file_path": "clips/a.mp4", "text": "x", "background_path": "a.png", "entity_paths": ["c.png"]},
                {"file_path": "clips/a.mp4", "text": "x", "background_path": "a.png", "entity_paths": []},
                {"file_path": "clips/a.mp4", "text": "x", "image_path": "a.png", "background_path": "a.png", "entity_paths": ["a.png"]}
            ])
            .to_string(),
        )
        .unwrap();
        let (good, skipped) =
            read_ffgo_list(&list, TRANSITION_PHRASE, PhraseMode::Prepend).unwrap();
        assert_eq!(good.len(), 3);
        assert_eq!(good[0].caption, format!("{TRANSITION_PHRASE} A dog runs."));
        assert_eq!(good[1].caption, format!("{TRANSITION_PHRASE} A cat."));
        assert_eq!(good[0].clip, d.path().join("clips/a.mp4"));
        assert!(good[0].cutouts.is_empty());
        assert_eq!(good[2].image, d.path().join("a.png"));
        assert_eq!(good[2].cutouts, vec![d.path().join("a.png"); 2]);
        assert_eq!(
            skipped.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 8, 9, 10]
        );
        assert!(skipped[0].reason.contains("missing.mp4"));
        assert!(skipped[5].reason.contains("cut-out") && skipped[5].reason.contains("c.png"));
        assert!(skipped[6].reason.contains("entity_paths"));
        assert!(skipped[7].reason.contains("keep one"));
        let (good, skipped) =
            read_ffgo_list(&list, TRANSITION_PHRASE, PhraseMode::Require).unwrap();
        assert_eq!(good.len(), 1);
        assert!(skipped
            .iter()
            .any(|s| s.index == 0 && s.reason.contains("transition phrase")));
        std::fs::write(&list, "{}").unwrap();
        let e = read_ffgo_list(&list, TRANSITION_PHRASE, PhraseMode::Prepend).unwrap_err();
        assert!(e.to_string().contains("list.json"));
    }
}
