//! Reading configuration files (`config.json`, `preprocessor_config.json`, scheduler
//! configs) into typed structs, with errors that name the file.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::ModelError;

/// Reads a JSON file into `T`: [`ModelError::Io`] when it cannot be read,
/// [`ModelError::Config`] naming the file and the field or line when it does not fit `T`.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// struct Cfg { hidden_size: usize }
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("config.json");
/// std::fs::write(&path, r#"{"hidden_size": 64}"#)?;
/// let cfg: Cfg = reelsmith_models::read_config(&path)?;
/// assert_eq!(cfg.hidden_size, 64);
/// std::fs::write(&path, r#"{"hidden_size": "wide"}"#)?;
/// let err = reelsmith_models::read_config::<Cfg>(&path).unwrap_err().to_string();
/// assert!(err.contains("config.json") && err.contains("hidden_size"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_config<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T, ModelError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    parse_config(path, &text)
}

/// Parses JSON text read from `path` into `T` (see [`read_config`]).
pub fn parse_config<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ModelError> {
    serde_json::from_str(text).map_err(|e| {
        // serde_json names missing and unknown fields itself; for a value of the wrong
        // type it gives only the position: name the key the value belongs to.
        let field = match e.classify() {
            serde_json::error::Category::Data if !e.to_string().contains("field `") => {
                key_before(text, e.line(), e.column())
                    .map(|k| format!(" (field `{k}`)"))
                    .unwrap_or_default()
            }
            _ => String::new(),
        };
        ModelError::config(
            path,
            format!(
                "does not fit the expected configuration{field}: {e}; is this the right file for this model?"
            ),
        )
    })
}

/// The last `"key":` before line `line`, column `column` (1-based) of a JSON text.
fn key_before(text: &str, line: usize, column: usize) -> Option<String> {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            offset += column.min(l.len());
            break;
        }
        offset += l.len();
    }
    let before = text.get(..offset.min(text.len()))?;
    let colon = before.rfind(':')?;
    let key = before[..colon].trim_end().strip_suffix('"')?;
    let start = key.rfind('"')?;
    Some(key[start + 1..].to_string())
}

/// The `model_type` of a `config.json` (`"clip"`, `"dinov2"`, ...), `None` when absent.
pub fn model_type(path: impl AsRef<Path>) -> Result<Option<String>, ModelError> {
    let path = path.as_ref();
    let v: serde_json::Value = read_config(path)?;
    Ok(v.get("model_type")
        .and_then(|t| t.as_str())
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Cfg {
        hidden_size: usize,
        #[serde(default)]
        eps: f64,
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let p = Path::new("/models/x/config.json");
        let e = parse_config::<Cfg>(p, "{}").unwrap_err().to_string();
        assert!(e.starts_with("/models/x/config.json:"), "{e}");
        assert!(e.contains("hidden_size"), "{e}");
        let e = parse_config::<Cfg>(p, "{\n  \"eps\": 0.1,\n  \"hidden_size\" : -1\n}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3") && e.contains("field `hidden_size`"),
            "{e}"
        );
        let e = parse_config::<Cfg>(p, "not json").unwrap_err().to_string();
        assert!(e.contains("config.json"), "{e}");
        let e = read_config::<Cfg>("/no/such/config.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/no/such/config.json"), "{e}");
    }
}
