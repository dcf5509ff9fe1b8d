//! Paths in serialised reports.
//!
//! serde serialises a [`Path`] only when it is valid UTF-8 and fails otherwise, which
//! would turn a report about a file named in another encoding (`caf\xe9.mp4`) into an
//! error after all the work is done. Report fields that hold paths use these functions
//! (`#[serde(serialize_with = "reelsmith_core::paths::lossy")]`): the path as text, bytes
//! that are not UTF-8 replaced by U+FFFD, as `Path::display` shows it.

use std::path::Path;

use serde::Serializer;

/// Serialises a path as a string, lossily where it is not UTF-8.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Report {
///     #[serde(serialize_with = "reelsmith_core::paths::lossy")]
///     video: std::path::PathBuf,
/// }
/// let r = Report { video: "clips/a.mp4".into() };
/// assert_eq!(serde_json::to_string(&r)?, r#"{"video":"clips/a.mp4"}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn lossy<S: Serializer, P: AsRef<Path>>(path: &P, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.as_ref().to_string_lossy())
}

/// [`lossy`] for an optional path (`None` stays `null`).
pub fn lossy_option<S: Serializer, P: AsRef<Path>>(
    path: &Option<P>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match path {
        Some(p) => lossy(p, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn paths_that_are_not_utf8_serialise_lossily() {
        use std::os::unix::ffi::OsStrExt;
        #[derive(serde::Serialize)]
        struct R {
            #[serde(serialize_with = "super::lossy")]
            a: std::path::PathBuf,
            #[serde(serialize_with = "super::lossy_option")]
            b: Option<std::path::PathBuf>,
            #[serde(serialize_with = "super::lossy_option")]
            c: Option<std::path::PathBuf>,
        }
        let odd = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b"caf\xe9.mp4"));
        let r = R {
            a: odd.clone(),
            b: Some(odd.clone()),
            c: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"a":"caf\ufffd.mp4","b":"caf\ufffd.mp4","c":null}"#.replace("\\ufffd", "\u{fffd}")
        );
        // serde's own serialisation fails on it.
        assert!(serde_json::to_string(&odd).is_err());
    }
}
