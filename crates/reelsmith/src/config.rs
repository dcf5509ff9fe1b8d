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
