//! An output folder written as one set: a run stages its files in a hidden folder inside
//! the destination and moves them into place at the end, its report last.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{live, write_err, write_json};
use crate::Error;

/// The hidden file listing what the last run in a folder wrote, so the next run can
/// remove its own earlier outputs and knows the folder is its own.
pub const MANIFEST: &str = ".reelsmith-run.json";

/// Name prefix of the hidden staging folders (left behind only by a killed process; the
/// next run in the folder removes them).
pub const STAGING_PREFIX: &str = ".reelsmith-staging-";

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    pipeline: String,
    files: Vec<String>,
}

/// An output folder being written by one run.
///
/// [`OutputDir::begin`] checks the destination and opens a staging folder inside it;
/// the pipeline writes every file at [`OutputDir::path`]; [`OutputDir::commit`] moves
/// them into the destination, removes the files of the folder's earlier run that this run
/// did not write again, and writes the report last. Dropped without a commit (an error, a
/// panic), the staging folder is removed and the destination is left as it was.
///
/// A run owns its folder: it may write into an empty or new folder, or one holding an
/// earlier run of the same pipeline; a folder holding anything else is refused unless
/// `overwrite` is set. The destination must be a real folder, not a symbolic link.
///
/// ```
/// use reelsmith::output::OutputDir;
///
/// let root = tempfile::tempdir()?;
/// let dest = root.path().join("out");
/// let out = OutputDir::begin(&dest, "example", false)?;
/// std::fs::write(out.path("a.txt")?, "a")?;
/// assert!(!dest.join("a.txt").exists()); // staged, not yet in place
/// out.commit("report.json", &serde_json::json!({"files": ["a.txt"]}))?;
/// assert!(dest.join("a.txt").is_file() && dest.join("report.json").is_file());
///
/// // A run that fails in a folder it created leaves no folder.
/// let fresh = root.path().join("fresh");
/// drop(OutputDir::begin(&fresh, "example", false)?);
/// assert!(!fresh.exists());
///
/// // A second run that fails leaves the first run's files as they were.
/// let out = OutputDir::begin(&dest, "example", false)?;
/// std::fs::write(out.path("b.txt")?, "b")?;
/// drop(out);
/// assert!(!dest.join("b.txt").exists() && dest.join("a.txt").is_file());
///
/// // A folder of something else is refused.
/// std::fs::write(root.path().join("notes.txt"), "mine")?;
/// assert!(OutputDir::begin(root.path(), "example", false).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OutputDir {
    target: PathBuf,
    stage: PathBuf,
    pipeline: String,
    earlier: Vec<String>,
    files: Mutex<Vec<String>>,
    /// Names of the run's inputs that lie in the destination folder: never replaced or
    /// removed.
    inputs: Vec<String>,
    committed: bool,
    /// The folders this run created for the destination, outermost first (removed again,
    /// innermost first, when the run fails).
    created: Vec<PathBuf>,
    /// Held for the run's life: tells other runs this staging folder is alive.
    _lock: Option<std::fs::File>,
}

/// The lock file in a staging folder, held by its run (released when the process ends).
const LOCK: &str = ".lock";

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl OutputDir {
    /// Opens `target` for a run of `pipeline` (created with its parents when missing).
    ///
    /// Fails, naming the folder, when it is a symbolic link or not a folder, or when it
    /// holds files of something else and `overwrite` is false.
    pub fn begin(target: &Path, pipeline: &str, overwrite: bool) -> Result<Self, Error> {
        let refuse = |detail: String| Error::Output {
            path: target.to_path_buf(),
            detail,
        };
        let mut created = Vec::new();
        match std::fs::symlink_metadata(target) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(refuse(
                    "is a symbolic link; give the folder it points to (outputs are never \
                     written through links)"
                        .into(),
                ))
            }
            Ok(m) if !m.is_dir() => {
                return Err(refuse(
                    "exists and is not a folder; give a folder for the outputs".into(),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The missing folders, outermost first.
                let mut missing: Vec<PathBuf> = target
                    .ancestors()
                    .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
                    .map(Path::to_path_buf)
                    .collect();
                missing.reverse();
                for dir in missing {
                    if let Err(e) = std::fs::create_dir(&dir) {
                        remove_created(&created);
                        return Err(Error::write(target, e));
                    }
                    live::register(&dir);
                    created.push(dir);
                }
            }
            Err(e) => return Err(Error::write(target, e)),
        }
        let earlier = owned_files(target, pipeline, overwrite)?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let stage = target.join(format!("{STAGING_PREFIX}{}-{n}", std::process::id()));
        let mut out = Self {
            target: target.to_path_buf(),
            stage,
            pipeline: pipeline.to_string(),
            earlier,
            files: Mutex::new(Vec::new()),
            inputs: Vec::new(),
            committed: false,
            created,
            _lock: None,
        };
        std::fs::create_dir(&out.stage).map_err(|e| Error::write(&out.stage, e))?;
        live::register(&out.stage);
        let lock = std::fs::File::create(out.stage.join(LOCK))
            .map_err(|e| Error::write(out.stage.join(LOCK), e))?;
        // A file system without locks still works; only a concurrent run is not detected.
        let _ = lock.try_lock();
        out._lock = Some(lock);
        Ok(out)
    }

    /// Declares the run's input files, which the run must never replace or remove: fails,
    /// naming the input, when one of them lies in the destination folder as a file of the
    /// folder's earlier run (which this run would remove or write again), and makes
    /// [`OutputDir::commit`] refuse to write over one.
    ///
    /// ```
    /// use reelsmith::output::OutputDir;
    ///
    /// let root = tempfile::tempdir()?;
    /// let out = OutputDir::begin(root.path(), "example", false)?;
    /// std::fs::write(out.path("clip_001.mp4")?, "a clip")?;
    /// out.commit("report.json", &1)?;
    /// // A second run whose input is a clip of the first one, into the same folder.
    /// let input = root.path().join("clip_001.mp4");
    /// let e = OutputDir::begin(root.path(), "example", false)?.inputs(&[&input]).unwrap_err();
    /// assert!(e.to_string().contains("clip_001.mp4"));
    /// assert_eq!(std::fs::read(&input)?, b"a clip");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inputs<P: AsRef<Path>>(mut self, inputs: &[P]) -> Result<Self, Error> {
        let Ok(target) = std::fs::canonicalize(&self.target) else {
            return Ok(self);
        };
        for input in inputs {
            let input = input.as_ref();
            let Ok(full) = std::fs::canonicalize(input) else {
                continue;
            };
            let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
                continue;
            };
            if parent != target {
                continue;
            }
            let name = name.to_string_lossy().into_owned();
            if self.earlier.contains(&name) {
                return Err(Error::Output {
                    path: self.target.clone(),
                    detail: format!(
                        "holds the input {} as an output of its earlier run, which this run \
                         would replace or remove; write into another folder",
                        input.display()
                    ),
                });
            }
            self.inputs.push(name);
        }
        Ok(self)
    }

    /// The destination folder.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Where to write the output file `name` (a plain file name) during the run; it moves
    /// to `target/name` at the commit.
    pub fn path(&self, name: &str) -> Result<PathBuf, Error> {
        let plain = Path::new(name)
            .file_name()
            .is_some_and(|f| f == std::ffi::OsStr::new(name));
        if !plain || name.starts_with('.') {
            return Err(Error::Output {
                path: self.target.join(name),
                detail: "output names are plain, visible file names".into(),
            });
        }
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if !files.iter().any(|f| f == name) {
            files.push(name.to_string());
        }
        Ok(self.stage.join(name))
    }

    /// The staging folder itself, for temporary files of the run (removed with it).
    pub fn staging(&self) -> &Path {
        &self.stage
    }

    /// Moves the staged files into the destination, removes the earlier run's files that
    /// were not written again, then writes `report` as `report_name` (JSON), last.
    /// Staged names whose file was never created are skipped.
    pub fn commit<T: Serialize + ?Sized>(
        mut self,
        report_name: &str,
        report: &T,
    ) -> Result<(), Error> {
        let files: Vec<String> =
            std::mem::take(&mut *self.files.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .filter(|f| f != report_name && self.stage.join(f).exists())
                .collect();
        // Everything that takes disk space is written into the staging folder first (the
        // report, the manifest): a full disk fails here, with the destination untouched.
        let staged_report = self.stage.join(report_name);
        write_json(&staged_report, report)?;
        let mut all = files.clone();
        all.push(report_name.to_string());
        let staged_manifest = self.stage.join(MANIFEST);
        write_json(
            &staged_manifest,
            &Manifest {
                pipeline: self.pipeline.clone(),
                files: all.clone(),
            },
        )?;
        // Then every destination is checked before anything is moved.
        for f in &all {
            self.check_destination(f)?;
        }
        let keep: HashSet<&str> = all.iter().map(String::as_str).collect();
        for old in &self.earlier {
            if !keep.contains(old.as_str()) && !self.inputs.contains(old) {
                remove_regular(&self.target.join(old))?;
            }
        }
        for f in &files {
            let to = self.target.join(f);
            std::fs::rename(self.stage.join(f), &to).map_err(|e| write_err(&to, e))?;
        }
        let to = self.target.join(MANIFEST);
        std::fs::rename(&staged_manifest, &to).map_err(|e| write_err(&to, e))?;
        let to = self.target.join(report_name);
        std::fs::rename(&staged_report, &to).map_err(|e| write_err(&to, e))?;
        self.committed = true;
        let _ = std::fs::remove_dir_all(&self.stage);
        live::unregister(&self.stage);
        for dir in &self.created {
            live::unregister(dir);
        }
        Ok(())
    }
}

impl OutputDir {
    /// Whether the staged file `name` may move to the destination: nothing is there, or a
    /// regular file (or a link, which is replaced, never written through) that is not one
    /// of the run's inputs.
    fn check_destination(&self, name: &str) -> Result<(), Error> {
        let to = self.target.join(name);
        let refuse = |detail: &str| Error::Output {
            path: to.clone(),
            detail: detail.to_string(),
        };
        if self.inputs.iter().any(|i| i == name) {
            return Err(refuse(
                "is an input of this run and would be replaced by an output; write into \
                 another folder",
            ));
        }
        match std::fs::symlink_metadata(&to) {
            Ok(m) if m.is_dir() => Err(refuse(
                "is a folder where this run writes a file; move it away or write into \
                 another folder",
            )),
            Ok(m) if !m.is_file() && !m.file_type().is_symlink() => Err(refuse(
                "is a special file (a device, a pipe?) where this run writes a file; move it \
                 away or write into another folder",
            )),
            _ => Ok(()),
        }
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.stage);
            live::unregister(&self.stage);
            remove_created(&self.created);
        }
    }
}

/// The files of the earlier run of `pipeline` in `dir` (empty for a new or empty folder);
/// an error when the folder holds something else and `overwrite` is false. Staging
/// folders left by a killed run are removed.
fn owned_files(dir: &Path, pipeline: &str, overwrite: bool) -> Result<Vec<String>, Error> {
    let manifest: Option<Manifest> = std::fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut others = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::write(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(STAGING_PREFIX) {
            if staging_is_live(&entry.path()) {
                return Err(Error::Output {
                    path: dir.to_path_buf(),
                    detail: format!(
                        "another run is writing into this folder (its staging folder {name} is \
                         in use); wait for it to finish, or choose another folder"
                    ),
                });
            }
            let _ = std::fs::remove_dir_all(entry.path());
        } else if name != MANIFEST {
            others.push(name);
        }
    }
    match manifest {
        Some(m) if m.pipeline == pipeline => {
            // Files written by hand after the earlier run are not ours to remove.
            let ours: HashSet<&str> = m.files.iter().map(String::as_str).collect();
            let foreign: Vec<&String> = others
                .iter()
                .filter(|o| !ours.contains(o.as_str()))
                .collect();
            if !foreign.is_empty() && !overwrite {
                return Err(not_ours(dir, &foreign));
            }
            Ok(m.files)
        }
        _ if others.is_empty() || overwrite => Ok(Vec::new()),
        _ => Err(not_ours(dir, &others.iter().collect::<Vec<_>>())),
    }
}

/// Whether the run that made the staging folder `stage` is still running: it holds the
/// lock file (a folder without one younger than a minute may be one being set up).
fn staging_is_live(stage: &Path) -> bool {
    match std::fs::File::open(stage.join(LOCK)) {
        Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => std::fs::metadata(stage)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() < 60)),
    }
}

/// Removes the folders a run created (innermost first), where they are empty.
fn remove_created(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        let _ = std::fs::remove_dir(dir);
        live::unregister(dir);
    }
}

fn not_ours(dir: &Path, names: &[&String]) -> Error {
    let shown: Vec<&str> = names.iter().take(3).map(|s| s.as_str()).collect();
    let more = names.len().saturating_sub(shown.len());
    Error::ForeignFolder {
        path: dir.to_path_buf(),
        names: format!(
            "{}{}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
    }
}

/// Removes an earlier output file; a missing one is fine, a folder or link is left alone.
fn remove_regular(path: &Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => std::fs::remove_file(path).map_err(|e| Error::write(path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_replaces_the_earlier_outputs_and_drops_the_stale_ones() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("o");
        let out = OutputDir::begin(&dest, "p", false).unwrap();
        for f in ["clip_001.mp4", "clip_002.mp4"] {
            std::fs::write(out.path(f).unwrap(), f).unwrap();
        }
        out.commit("r.json", &1).unwrap();
        let out = OutputDir::begin(&dest, "p", false).unwrap();
        std::fs::write(out.path("clip_001.mp4").unwrap(), "new").unwrap();
        out.commit("r.json", &2).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [MANIFEST, "clip_001.mp4", "r.json"]);
        assert_eq!(
            std::fs::read_to_string(dest.join("clip_001.mp4")).unwrap(),
            "new"
        );
        // Another pipeline's folder, a file, a link: refused.
        assert!(OutputDir::begin(&dest, "q", false).is_err());
        assert!(OutputDir::begin(&dest, "q", true).is_ok());
        assert!(OutputDir::begin(&dest.join("r.json"), "p", false).is_err());
        #[cfg(unix)]
        {
            let link = root.path().join("link");
            std::os::unix::fs::symlink(&dest, &link).unwrap();
            let e = OutputDir::begin(&link, "p", false).unwrap_err();
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        // A file added by hand makes the folder no longer only ours.
        std::fs::write(dest.join("mine.txt"), "x").unwrap();
        assert!(OutputDir::begin(&dest, "p", false).is_err());
        // A run in progress in the folder: a second one is refused, its staging left alone;
        // a staging folder whose run is gone is removed.
        let conc = root.path().join("conc");
        let first = OutputDir::begin(&conc, "p", false).unwrap();
        let e = OutputDir::begin(&conc, "p", false).unwrap_err();
        assert!(e.to_string().contains("another run"), "{e}");
        assert!(first.staging().is_dir());
        let stale = conc.join(format!("{STAGING_PREFIX}1-1"));
        std::fs::create_dir(&stale).unwrap();
        std::fs::write(stale.join(LOCK), "").unwrap();
        std::fs::write(first.path("a.txt").unwrap(), "a").unwrap();
        first.commit("r.json", &1).unwrap();
        drop(OutputDir::begin(&conc, "p", false).unwrap());
        assert!(!stale.exists());
        // A folder where an output goes: the commit fails before anything moves.
        let busy = root.path().join("busy");
        std::fs::create_dir_all(busy.join("clip_001.mp4")).unwrap();
        std::fs::write(busy.join("keep.txt"), "k").unwrap();
        let out = OutputDir::begin(&busy, "p", true).unwrap();
        std::fs::write(out.path("a.txt").unwrap(), "a").unwrap();
        std::fs::write(out.path("clip_001.mp4").unwrap(), "c").unwrap();
        let e = out.commit("r.json", &3).unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
        let mut names: Vec<String> = std::fs::read_dir(&busy)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["clip_001.mp4", "keep.txt"]);
        // A failed run in a new nested folder leaves none of the folders it made.
        let nested = root.path().join("a/b/c");
        drop(OutputDir::begin(&nested, "p", false).unwrap());
        assert!(!root.path().join("a").exists());
        // Names must be plain.
        let out = OutputDir::begin(&root.path().join("n"), "p", false).unwrap();
        assert!(out.path("../x").is_err() && out.path(".hidden").is_err());
    }
}
