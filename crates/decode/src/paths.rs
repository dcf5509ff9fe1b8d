//! Paths as FFmpeg takes them, and what a path names on disk.
//!
//! FFmpeg opens files by URL, a C string. `ffmpeg-next`'s own `format::input` and
//! `format::output` unwrap `Path::to_str`, so a path that is not UTF-8 (legal on Unix)
//! panics there; this module builds the URL from the path's bytes instead, behind the
//! `file:` protocol so that a relative name with a colon (`take:2.mp4`) is not read as a
//! protocol.

use std::ffi::CString;
use std::path::Path;

use crate::error::DecodeError;

/// The network URL `path` holds, when it is one FFmpeg opens by URL: `http://` or
/// `https://` (scheme in any case). Such inputs are opened as given, never as files.
pub fn network_url(path: &Path) -> Option<&str> {
    let s = path.to_str()?;
    let scheme = s.split_once("://")?.0;
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")).then_some(s)
}

/// The `file:` URL of `path` for FFmpeg, from its raw bytes on Unix. A path holding a NUL
/// byte, or (elsewhere than Unix) one that is not valid Unicode, is an
/// [`DecodeError::InvalidArgument`].
pub(crate) fn ffmpeg_url(path: &Path) -> Result<CString, DecodeError> {
    if let Some(url) = network_url(path) {
        return CString::new(url).map_err(|_| DecodeError::InvalidArgument {
            path: path.to_path_buf(),
            detail: "the URL holds a NUL byte".into(),
        });
    }
    let mut url = b"file:".to_vec();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        url.extend_from_slice(path.as_os_str().as_bytes());
    }
    #[cfg(not(unix))]
    {
        let text = path.to_str().ok_or_else(|| DecodeError::InvalidArgument {
            path: path.to_path_buf(),
            detail: "the path is not valid Unicode, which FFmpeg needs here; rename the file"
                .into(),
        })?;
        url.extend_from_slice(text.as_bytes());
    }
    CString::new(url).map_err(|_| DecodeError::InvalidArgument {
        path: path.to_path_buf(),
        detail: "the path holds a NUL byte; rename the file".into(),
    })
}

/// What a path that is not a regular file names, for messages: "a folder", "a character
/// device", ...; `None` for a regular file.
pub(crate) fn special_kind(file_type: std::fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        return None;
    }
    if file_type.is_dir() {
        return Some("a folder");
    }
    if file_type.is_symlink() {
        return Some("a symbolic link");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_char_device() {
            return Some("a character device");
        }
        if file_type.is_block_device() {
            return Some("a block device");
        }
        if file_type.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if file_type.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a regular file")
}

/// Whether `a` and `b` name the same file on disk (both exist and share device and inode
/// on Unix; equal canonical paths elsewhere).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(ma), Ok(mb)) => ma.dev() == mb.dev() && ma.ino() == mb.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (a.canonicalize(), b.canonicalize()) {
            (Ok(ca), Ok(cb)) => ca == cb,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_keeps_the_bytes_and_refuses_nul() {
        let url = ffmpeg_url(Path::new("https://example.invalid/a.mp4?x=1")).unwrap();
        assert_eq!(url.as_bytes(), b"https://example.invalid/a.mp4?x=1");
        assert!(network_url(Path::new("HTTP://h/a.mp4")).is_some());
        assert!(network_url(Path::new("ftp://h/a.mp4")).is_none());
        assert!(network_url(Path::new("dir/http:/a.mp4")).is_none());
        let url = ffmpeg_url(Path::new("dir/take:2.mp4")).unwrap();
        assert_eq!(url.as_bytes(), b"file:dir/take:2.mp4");
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let raw = std::ffi::OsStr::from_bytes(b"caf\xe9.mp4");
            let url = ffmpeg_url(Path::new(raw)).unwrap();
            assert_eq!(url.as_bytes(), b"file:caf\xe9.mp4");
            let nul = std::ffi::OsStr::from_bytes(b"a\0b.mp4");
            assert!(matches!(
                ffmpeg_url(Path::new(nul)),
                Err(DecodeError::InvalidArgument { .. })
            ));
        }
    }

    #[test]
    fn kinds_of_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let kind = |p: &Path| special_kind(std::fs::symlink_metadata(p).unwrap().file_type());
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(kind(&file), None);
        assert_eq!(kind(dir.path()), Some("a folder"));
        #[cfg(unix)]
        {
            assert_eq!(kind(Path::new("/dev/null")), Some("a character device"));
            let link = dir.path().join("l");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            assert_eq!(kind(&link), Some("a symbolic link"));
            assert!(same_file(&link, &file));
        }
        assert!(!same_file(&file, dir.path()));
    }
}
