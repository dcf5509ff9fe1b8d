//! Finding the LAION aesthetic head that matches a CLIP model.
//!
//! LAION's aesthetic predictor is a linear head on a CLIP model's image embedding, one per
//! image tower: `sa_0_4_vit_b_32_linear.pth` (ViT-B/32), `sa_0_4_vit_b_16_linear.pth`
//! (ViT-B/16) and `sa_0_4_vit_l_14_linear.pth` (ViT-L/14). With a CLIP model and no
//! `aesthetic_head` set, the highlights pipeline looks for the matching file (or
//! `aesthetic_head.safetensors` / `aesthetic_head.pth`), in this order:
//!
//! 1. next to the model: in the folder given as the model (`ModelChoice::Dir`);
//! 2. in `$REELSMITH_AESTHETIC_DIR`;
//! 3. in `$REELSMITH_SHARED/models/aesthetic` (the shared test-data layout);
//! 4. in the documented location `$XDG_CACHE_HOME/reelsmith/aesthetic` (by default
//!    `~/.cache/reelsmith/aesthetic`): put the heads there once.

use std::path::{Path, PathBuf};

use reelsmith_embed::ClipConfig;

/// The LAION head file for a CLIP image tower, by embedding width and patch size.
pub fn head_file(config: &ClipConfig) -> Option<&'static str> {
    let v = &config.vision_config;
    Some(match (config.projection_dim, v.patch_size, v.hidden_size) {
        (512, 32, 768) => "sa_0_4_vit_b_32_linear.pth",
        (512, 16, 768) => "sa_0_4_vit_b_16_linear.pth",
        (768, 14, 1024) => "sa_0_4_vit_l_14_linear.pth",
        _ => return None,
    })
}

/// The folders searched, in order (see the [module docs](self)).
pub fn search_dirs(model_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = model_dir.map(Path::to_path_buf).into_iter().collect();
    if let Some(d) = std::env::var_os("REELSMITH_AESTHETIC_DIR") {
        dirs.push(d.into());
    }
    if let Some(d) = std::env::var_os("REELSMITH_SHARED") {
        dirs.push(PathBuf::from(d).join("models").join("aesthetic"));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(c) = cache {
        dirs.push(c.join("reelsmith").join("aesthetic"));
    }
    dirs
}

/// The first matching head file in `dirs`, or `None`.
pub fn find_head(config: &ClipConfig, dirs: &[PathBuf]) -> Option<PathBuf> {
    let names: Vec<&str> = head_file(config)
        .into_iter()
        .chain(["aesthetic_head.safetensors", "aesthetic_head.pth"])
        .collect();
    for d in dirs {
        for n in &names {
            let p = d.join(n);
            // A generic name only counts next to the model (first folder).
            if n.starts_with("aesthetic_head") && Some(d) != dirs.first() {
                continue;
            }
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(proj: usize, patch: usize, hidden: usize) -> ClipConfig {
        serde_json::from_value(serde_json::json!({
            "projection_dim": proj,
            "text_config": {},
            "vision_config": {"patch_size": patch, "hidden_size": hidden},
        }))
        .unwrap()
    }

    #[test]
    fn heads_match_the_image_tower() {
        assert_eq!(
            head_file(&config(512, 32, 768)),
            Some("sa_0_4_vit_b_32_linear.pth")
        );
        assert_eq!(
            head_file(&config(512, 16, 768)),
            Some("sa_0_4_vit_b_16_linear.pth")
        );
        assert_eq!(
            head_file(&config(768, 14, 1024)),
            Some("sa_0_4_vit_l_14_linear.pth")
        );
        assert_eq!(head_file(&config(64, 8, 32)), None);
    }

    #[test]
    fn the_model_folder_comes_first_then_the_other_folders() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let cfg = config(512, 32, 768);
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find_head(&cfg, &dirs), None);
        std::fs::write(b.path().join("sa_0_4_vit_b_32_linear.pth"), b"x").unwrap();
        std::fs::write(b.path().join("aesthetic_head.pth"), b"x").unwrap();
        assert_eq!(
            find_head(&cfg, &dirs),
            Some(b.path().join("sa_0_4_vit_b_32_linear.pth"))
        );
        std::fs::write(a.path().join("aesthetic_head.pth"), b"x").unwrap();
        assert_eq!(
            find_head(&cfg, &dirs),
            Some(a.path().join("aesthetic_head.pth"))
        );
        // A tower without a LAION head still finds a generic head next to the model.
        assert_eq!(
            find_head(&config(64, 8, 32), &dirs),
            Some(a.path().join("aesthetic_head.pth"))
        );
    }
}
