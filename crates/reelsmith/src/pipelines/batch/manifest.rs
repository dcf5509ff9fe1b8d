//! Batch manifests: which videos a batch covers, read as a stream.
//!
//! Three formats, chosen by the file's extension:
//!
//! - **text** (any other extension): one path or URL per line; blank lines and lines
//!   starting with `#` are skipped.
//! - **CSV** (`.csv`): a header line with a `path` column, an optional `id` column, and
//!   per-video options as `JOB.SETTING` columns (`highlights.top_k`); an empty cell leaves
//!   the setting as configured. Cells are read as JSON when they parse (`3`, `true`,
//!   `["a dog"]`), as text otherwise.
//! - **JSONL** (`.jsonl`, `.ndjson`): one JSON object per line with `path`, optional `id`,
//!   and options as `"JOB.SETTING": value` or `"JOB": {"SETTING": value}`.
//!
//! Relative paths are read from the manifest's folder; `http://` and `https://` URLs are
//! opened by FFmpeg as they are. A video's id names its output folder: given in the `id`
//! column, or made from the file name (`talks/intro.mp4` → `intro`). Ids are 1–128
//! characters of `A-Z a-z 0-9 . _ -`, starting with a letter or a digit.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::Job;
use crate::Error;

/// Longest id accepted.
const MAX_ID: usize = 128;

/// How a manifest is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// One path per line.
    Text,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl ManifestFormat {
    /// The format of `path`, by its extension.
    pub fn of(path: &Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => ManifestFormat::Csv,
            Some("jsonl" | "ndjson") => ManifestFormat::Jsonl,
            _ => ManifestFormat::Text,
        }
    }
}

/// One video of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The 1-based line it was read from.
    pub line: u64,
    /// Its id (the name of its output folder).
    pub id: String,
    /// The path or URL as written in the manifest.
    pub path: String,
    /// Per-video options, as `{job: {setting: value}}`.
    pub options: Map<String, Value>,
}

/// A manifest file, read one entry at a time (memory does not grow with its length).
#[derive(Debug, Clone)]
pub struct Manifest {
    path: PathBuf,
    format: ManifestFormat,
}

impl Manifest {
    /// The manifest at `path` (its format from the extension). Fails when it cannot be
    /// opened.
    pub fn open(path: &Path) -> Result<Self, Error> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(whole(path, "is a folder; give a manifest file"));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(whole(
                    path,
                    &format!("cannot read the manifest: {e}; check the path"),
                ))
            }
        }
        File::open(path).map_err(|e| whole(path, &format!("cannot read the manifest: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            format: ManifestFormat::of(path),
        })
    }

    /// The manifest file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its format.
    pub fn format(&self) -> ManifestFormat {
        self.format
    }

    /// The entries in order; each item is an entry or the error of its line.
    pub fn entries(&self) -> Result<Entries, Error> {
        let file = File::open(&self.path)
            .map_err(|e| whole(&self.path, &format!("cannot read the manifest: {e}")))?;
        let inner = match self.format {
            ManifestFormat::Text | ManifestFormat::Jsonl => {
                Inner::Lines(BufReader::new(file), String::new())
            }
            ManifestFormat::Csv => {
                let mut r = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(false)
                    .from_reader(file);
                let headers = r.headers().map_err(|e| csv_err(&self.path, e))?.clone();
                let columns = CsvColumns::new(&self.path, &headers)?;
                Inner::Csv(Box::new(r), columns, csv::StringRecord::new())
            }
        };
        Ok(Entries {
            path: self.path.clone(),
            format: self.format,
            inner,
            line: 0,
        })
    }

    /// Where the video of `entry` is read from: a URL as it is, a relative path from the
    /// manifest's folder.
    pub fn resolve(&self, entry: &Entry) -> PathBuf {
        let p = Path::new(&entry.path);
        if reelsmith_decode::network_url(p).is_some() || p.is_absolute() {
            return p.to_path_buf();
        }
        self.path
            .parent()
            .map_or_else(|| p.to_path_buf(), |d| d.join(p))
    }
}

/// The columns of a CSV manifest.
#[derive(Debug)]
struct CsvColumns {
    path: usize,
    id: Option<usize>,
    /// (column index, job, setting path inside the job).
    options: Vec<(usize, String, Vec<String>)>,
}

impl CsvColumns {
    fn new(file: &Path, headers: &csv::StringRecord) -> Result<Self, Error> {
        let names: Vec<&str> = headers.iter().map(str::trim).collect();
        let path = names.iter().position(|&h| h == "path").ok_or_else(|| {
            line_err(
                file,
                1,
                format!(
                    "the header has no `path` column (it has: {}); name the column of video \
                     paths `path`",
                    names.join(", ")
                ),
            )
        })?;
        let id = names.iter().position(|&h| h == "id");
        let mut options = Vec::new();
        for (i, h) in names.iter().enumerate() {
            if i != path && Some(i) != id {
                let (job, setting) = option_name(h).map_err(|d| line_err(file, 1, d))?;
                options.push((i, job, setting));
            }
        }
        Ok(Self { path, id, options })
    }
}

enum Inner {
    Lines(BufReader<File>, String),
    Csv(Box<csv::Reader<File>>, CsvColumns, csv::StringRecord),
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Inner::Lines(..) => "Lines",
            Inner::Csv(..) => "Csv",
        })
    }
}

/// The entries of a [`Manifest`], read as they are asked for.
#[derive(Debug)]
pub struct Entries {
    path: PathBuf,
    format: ManifestFormat,
    inner: Inner,
    line: u64,
}

impl Iterator for Entries {
    type Item = Result<Entry, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match &mut self.inner {
                Inner::Lines(reader, buf) => {
                    buf.clear();
                    match reader.read_line(buf) {
                        Ok(0) => return None,
                        Ok(_) => {}
                        Err(e) => {
                            return Some(Err(line_err(
                                &self.path,
                                self.line + 1,
                                format!("cannot read this line: {e}"),
                            )))
                        }
                    }
                    self.line += 1;
                    let text = buf.trim();
                    if text.is_empty()
                        || (self.format == ManifestFormat::Text && text.starts_with('#'))
                    {
                        continue;
                    }
                    let line = self.line;
                    let entry = match self.format {
                        ManifestFormat::Jsonl => jsonl_entry(&self.path, line, text),
                        _ => entry(&self.path, line, text.to_string(), None, Map::new()),
                    };
                    return Some(entry);
                }
                Inner::Csv(reader, columns, record) => {
                    match reader.read_record(record) {
                        Ok(false) => return None,
                        Ok(true) => {}
                        Err(e) => return Some(Err(csv_err(&self.path, e))),
                    }
                    let line = record.position().map_or(self.line + 1, |p| p.line());
                    self.line = line;
                    if record.iter().all(|c| c.trim().is_empty()) {
                        continue;
                    }
                    return Some(csv_entry(&self.path, line, record, columns));
                }
            }
        }
    }
}

fn csv_entry(
    file: &Path,
    line: u64,
    record: &csv::StringRecord,
    columns: &CsvColumns,
) -> Result<Entry, Error> {
    let path = record.get(columns.path).unwrap_or("").trim().to_string();
    let id = columns
        .id
        .and_then(|i| record.get(i))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let mut options = Map::new();
    for (i, job, setting) in &columns.options {
        let cell = record.get(*i).unwrap_or("").trim();
        if cell.is_empty() {
            continue;
        }
        let value = serde_json::from_str(cell).unwrap_or_else(|_| Value::String(cell.into()));
        insert_option(&mut options, job, setting, value);
    }
    entry(file, line, path, id, options)
}

fn jsonl_entry(file: &Path, line: u64, text: &str) -> Result<Entry, Error> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        line_err(
            file,
            line,
            format!("not a JSON object: {e}; write one object per line, such as {{\"path\": \"a.mp4\"}}"),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(line_err(
            file,
            line,
            "not a JSON object; write one object per line, such as {\"path\": \"a.mp4\"}".into(),
        ));
    };
    let mut path = None;
    let mut id = None;
    let mut options = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "path" => match value {
                Value::String(s) => path = Some(s),
                other => {
                    return Err(line_err(
                        file,
                        line,
                        format!("`path` is {other}, not a string"),
                    ))
                }
            },
            "id" => match value {
                Value::String(s) => id = Some(s),
                Value::Number(n) => id = Some(n.to_string()),
                Value::Null => {}
                other => {
                    return Err(line_err(
                        file,
                        line,
                        format!("`id` is {other}, not a string"),
                    ))
                }
            },
            _ if Job::parse(&key).is_some() => {
                let Value::Object(settings) = value else {
                    return Err(line_err(
                        file,
                        line,
                        format!("`{key}` must be an object of {key} settings"),
                    ));
                };
                for (k, v) in settings {
                    insert_option(&mut options, &key, &[k], v);
                }
            }
            _ => {
                let (job, setting) = option_name(&key).map_err(|d| line_err(file, line, d))?;
                insert_option(&mut options, &job, &setting, value);
            }
        }
    }
    let path = path.ok_or_else(|| {
        line_err(
            file,
            line,
            "no `path`: every line needs the video's path or URL, such as {\"path\": \"a.mp4\"}"
                .into(),
        )
    })?;
    entry(file, line, path, id, options)
}

/// Checks the path and the id (made from the path when not given).
fn entry(
    file: &Path,
    line: u64,
    path: String,
    id: Option<String>,
    options: Map<String, Value>,
) -> Result<Entry, Error> {
    if path.trim().is_empty() {
        return Err(line_err(
            file,
            line,
            "the path is empty; give the video's path or URL".into(),
        ));
    }
    let id = match id {
        Some(id) => {
            check_id(&id).map_err(|d| line_err(file, line, d))?;
            id
        }
        None => id_from_path(&path).ok_or_else(|| {
            line_err(
                file,
                line,
                format!("cannot make an id from the path {path:?}; give an `id` column"),
            )
        })?,
    };
    Ok(Entry {
        line,
        id,
        path,
        options,
    })
}

/// Whether `id` may name an output folder; the reason when not.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > MAX_ID {
        return Err(format!(
            "the id {id:?} must be 1 to {MAX_ID} characters long"
        ));
    }
    if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) || !id.chars().all(ok_char) {
        return Err(format!(
            "the id {id:?} may hold only letters, digits, '.', '_' and '-', and must start \
             with a letter or a digit (it names the video's output folder)"
        ));
    }
    Ok(())
}

/// The id made from a path's file name: its stem, with characters ids cannot hold
/// replaced by `_`.
pub(crate) fn id_from_path(path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let name = path.trim_end_matches('/').rsplit('/').next()?;
    let stem = match name.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => name,
    };
    let mut id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .collect();
    id.truncate(MAX_ID);
    (!id.is_empty()).then_some(id)
}

/// Splits an option's name `JOB.SETTING[.SUB...]`.
fn option_name(name: &str) -> Result<(String, Vec<String>), String> {
    let jobs = Job::ALL.map(Job::name).join(", ");
    let Some((job, rest)) = name.split_once('.') else {
        return Err(format!(
            "unknown column `{name}`: besides `path` and `id`, columns are per-video options \
             named JOB.SETTING (such as highlights.top_k), JOB one of {jobs}"
        ));
    };
    if Job::parse(job).is_none() {
        return Err(format!(
            "unknown column `{name}`: `{job}` is not a job (jobs: {jobs})"
        ));
    }
    let setting: Vec<String> = rest.split('.').map(str::to_string).collect();
    if setting.iter().any(String::is_empty) {
        return Err(format!("the option `{name}` has an empty setting name"));
    }
    Ok((job.to_string(), setting))
}

fn insert_option(options: &mut Map<String, Value>, job: &str, setting: &[String], value: Value) {
    let mut at = options
        .entry(job.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    for (i, key) in setting.iter().enumerate() {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let map = at.as_object_mut().expect("made an object above");
        if i + 1 == setting.len() {
            map.insert(key.clone(), value);
            return;
        }
        at = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

pub(crate) fn line_err(path: &Path, line: u64, detail: String) -> Error {
    Error::Manifest {
        path: path.to_path_buf(),
        line,
        detail,
    }
}

pub(crate) fn whole(path: &Path, detail: &str) -> Error {
    line_err(path, 0, detail.to_string())
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map_or(0, |p| p.line());
    let detail = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!(
            "{len} fields where the header has {expected_len}; quote fields that hold commas"
        ),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
        _ => format!("not valid CSV: {e}"),
    };
    line_err(path, line, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn read(p: &Path) -> Result<Vec<Entry>, Error> {
        Manifest::open(p)?.entries()?.collect()
    }

    #[test]
    fn the_three_formats_read_paths_ids_and_options() {
        let d = tempfile::tempdir().unwrap();
        let text = write(
            d.path(),
            "list.txt",
            "# my videos\na/intro.mp4\n\n  /abs/b c.mkv  \nhttps://h.example/v/talk.mp4?sig=1\n",
        );
        let e = read(&text).unwrap();
        let got: Vec<(u64, &str, &str)> = e
            .iter()
            .map(|e| (e.line, e.id.as_str(), e.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "intro", "a/intro.mp4"),
                (4, "b_c", "/abs/b c.mkv"),
                (5, "talk", "https://h.example/v/talk.mp4?sig=1")
            ]
        );
        let m = Manifest::open(&text).unwrap();
        assert_eq!(m.resolve(&e[0]), d.path().join("a/intro.mp4"));
        assert_eq!(m.resolve(&e[1]), PathBuf::from("/abs/b c.mkv"));
        assert_eq!(m.resolve(&e[2]).to_str(), Some(e[2].path.as_str()));

        let csv = write(
            d.path(),
            "m.csv",
            "path,id,highlights.top_k,score.score.weights.sharpness\nx.mp4,v1,3,\ny.mp4,,,0.5\n",
        );
        let e = read(&csv).unwrap();
        assert_eq!((e[0].id.as_str(), e[1].id.as_str()), ("v1", "y"));
        assert_eq!(e[0].options["highlights"]["top_k"], 3);
        assert!(!e[0].options.contains_key("score"));
        assert_eq!(e[1].options["score"]["score"]["weights"]["sharpness"], 0.5);
        assert_eq!(e[1].line, 3);

        let jsonl = write(
            d.path(),
            "m.jsonl",
            "{\"path\": \"x.mp4\", \"id\": \"a\", \"segments\": {\"min_seconds\": 1.5}}\n\n{\"path\": \"y.mp4\", \"highlights.top_k\": 2}\n",
        );
        let e = read(&jsonl).unwrap();
        assert_eq!(e[0].options["segments"]["min_seconds"], 1.5);
        assert_eq!(e[1].options["highlights"]["top_k"], 2);
        assert_eq!((e[1].line, e[1].id.as_str()), (3, "y"));
    }

    #[test]
    fn bad_manifests_name_the_line() {
        let d = tempfile::tempdir().unwrap();
        let err = |name: &str, text: &str| {
            let p = write(d.path(), name, text);
            read(&p).unwrap_err().to_string()
        };
        let e = err("a.csv", "file,id\nx.mp4,a\n");
        assert!(
            e.contains("a.csv:1:") && e.contains("no `path` column"),
            "{e}"
        );
        let e = err("b.csv", "path,title\nx.mp4,hi\n");
        assert!(
            e.contains("b.csv:1:") && e.contains("unknown column `title`"),
            "{e}"
        );
        let e = err("c.csv", "path,id\nx.mp4,a\ny.mp4,b,extra\n");
        assert!(e.contains("c.csv:3:"), "{e}");
        let e = err("d.jsonl", "{\"path\": \"x.mp4\"}\n{\"id\": \"b\"}\n");
        assert!(e.contains("d.jsonl:2:") && e.contains("no `path`"), "{e}");
        let e = err("e.jsonl", "{\"path\": \"x.mp4\"}\nnot json\n");
        assert!(
            e.contains("e.jsonl:2:") && e.contains("not a JSON object"),
            "{e}"
        );
        let e = err("f.jsonl", "{\"path\": \"x.mp4\", \"id\": \"../up\"}\n");
        assert!(
            e.contains("f.jsonl:1:") && e.contains("may hold only"),
            "{e}"
        );
        let e = err("g.jsonl", "{\"path\": \"x.mp4\", \"shot.fps\": 2}\n");
        assert!(e.contains("`shot` is not a job"), "{e}");
        let e = err("h.txt", "ok.mp4\n???\n");
        assert!(
            e.contains("h.txt:2:") && e.contains("cannot make an id"),
            "{e}"
        );
        let missing = d.path().join("nope.txt");
        let e = Manifest::open(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.txt") && e.contains("cannot read"), "{e}");
        let e = Manifest::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
    }

    #[test]
    fn ids_from_paths() {
        assert_eq!(id_from_path("a/b/clip 1.mp4").as_deref(), Some("clip_1"));
        assert_eq!(id_from_path("https://h/x/v.webm?a=b").as_deref(), Some("v"));
        assert_eq!(id_from_path("_x.mp4").as_deref(), Some("x"));
        assert_eq!(id_from_path(".hidden").as_deref(), Some("hidden"));
        assert_eq!(id_from_path("a.b.mp4").as_deref(), Some("a.b"));
        assert_eq!(id_from_path("é.mp4"), None);
        assert!(check_id("ok-1.a_b").is_ok());
        assert!(check_id("-x").is_err() && check_id("a/b").is_err() && check_id("").is_err());
    }
}
