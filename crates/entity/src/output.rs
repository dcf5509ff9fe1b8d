//! Writing output files whole: a temporary sibling renamed into place, never through a
//! symlink; and the plot font.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::EntityError;

/// Writes `bytes` to `path` through a temporary sibling renamed into place. A symlink at
/// `path` is refused.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EntityError> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(EntityError::Invalid(format!(
            "{} is a symlink; refusing to write through it",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .ok_or_else(|| EntityError::Invalid(format!("{}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.part-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| EntityError::Io { path: p, source }
    };
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path)(e)
    })
}

/// PNG bytes of an RGB image.
pub(crate) fn png_bytes(img: &image::RgbImage) -> Result<Vec<u8>, EntityError> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| EntityError::Image {
            path: PathBuf::from("<memory>"),
            message: e.to_string(),
        })?;
    Ok(buf.into_inner())
}

/// Registers a system sans-serif font with plotters once; false when none is found (plots
/// are then drawn without text). `REELSMITH_FONT` names a TTF/OTF file to use.
pub(crate) fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(p) = std::env::var_os("REELSMITH_FONT") {
            candidates.push(p.into());
        }
        for p in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
            "C:\\Windows\\Fonts\\arial.ttf",
        ] {
            candidates.push(p.into());
        }
        for c in candidates {
            if let Ok(bytes) = std::fs::read(&c) {
                let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(
                    "sans-serif",
                    plotters::style::FontStyle::Normal,
                    leaked,
                )
                .is_ok()
                {
                    return true;
                }
            }
        }
        tracing::warn!("no TrueType font found (set REELSMITH_FONT); plots are drawn without text");
        false
    })
}
