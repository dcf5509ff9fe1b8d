//! Reading a pipeline's configuration from a file.
//!
//! Every pipeline configuration is a serde struct whose fields all have defaults, so a
//! file gives only what it changes; unknown fields are errors (a typo never passes
//! silently).
//!
//! ```
//! use reelsmith::pipelines::highlights::HighlightsConfig;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("highlights.toml");
//! std::fs::write(&path, "top_k = 2\n[score.weights]\nsharpness = 0.5\n")?;
//! let c: HighlightsConfig = reelsmith::config::load(&path)?;
//! assert_eq!(c.top_k, 2);
//! assert_eq!(c.score.weights.sharpness, 0.5);
//! assert_eq!(c.score.weights.aesthetics, 0.4); // the default, kept
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::Error;

/// Reads a configuration from a `.json` file, or TOML otherwise. Errors name the file and
/// the field at fault.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
        path: path.to_path_buf(),
        message: format!("cannot read it: {e}"),
    })?;
    let json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let parsed = if json {
        // A JSON array would fill the settings in their order, silently: only an object
        // names them.
        if !text.trim_start().starts_with('{') {
            return Err(Error::ConfigFile {
                path: path.to_path_buf(),
                message: "not a valid configuration: a JSON configuration is an object of \
                          settings, such as {\"fps\": 2}"
                    .into(),
            });
        }
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|message| Error::ConfigFile {
        path: path.to_path_buf(),
        message: format!("not a valid configuration: {}", message.trim()),
    })
}

/// A picture size, written `WIDTHxHEIGHT` (`1280x720`) in configuration files and on the
/// command line.
///
/// ```
/// use reelsmith::config::Size;
///
/// let s: Size = "1280x720".parse().unwrap();
/// assert_eq!((s.width, s.height), (1280, 720));
/// assert_eq!(s.to_string(), "1280x720");
/// assert!("1280".parse::<Size>().is_err());
/// assert!("0x720".parse::<Size>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Size {
    /// A size of `width`×`height`.
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a size: write WIDTHxHEIGHT, e.g. 1280x720");
        let (w, h) = s.trim().split_once(['x', 'X', '×']).ok_or_else(bad)?;
        let (width, height) = (
            w.trim().parse::<u32>().map_err(|_| bad())?,
            h.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if width == 0 || height == 0 {
            return Err(format!("{s:?}: width and height must be positive"));
        }
        Ok(Self { width, height })
    }
}

impl serde::Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipelines::highlights::HighlightsConfig;

    #[test]
    fn a_json_array_is_not_read_as_settings_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, "[1, 2, 3]").unwrap();
        let e = load::<HighlightsConfig>(&path).unwrap_err();
        assert!(matches!(e, Error::ConfigFile { .. }), "{e}");
        assert!(e.to_string().contains("c.json"), "{e}");
        std::fs::write(&path, " {\"top_k\": 3}").unwrap();
        assert_eq!(load::<HighlightsConfig>(&path).unwrap().top_k, 3);
    }
}
