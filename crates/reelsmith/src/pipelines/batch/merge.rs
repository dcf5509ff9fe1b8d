//! One columnar dataset for a whole batch: Parquet tables and `summary.json`.
//!
//! | table | one row per | columns |
//! |---|---|---|
//! | `videos.parquet` | manifest line | `id`, `path`, `status` (done / failed / pending), `error`, probe facts (`duration`, `width`, `height`, `fps`, `codec`, `has_audio`, `rotation`, `frames`), counts (`shots`, `segments`, `highlights`), `notes` |
//! | `shots.parquet` | shot | `video_id`, `shot` (1-based), `start_frame`, `end_frame` (inclusive), `start`, `end` (s), `transition` (cut / gradual into it), `transition_score` |
//! | `segments.parquet` | segment | `video_id`, `segment`, `start`, `end`, `start_frame`, `clip`, `keyframe_times`, `keyframe_images`, `embedding` (fixed-size list of f32: the segment's mean embedding) |
//! | `highlights.parquet` | highlight clip | `video_id`, `rank`, `clip`, `start`, `duration`, `peak_frame`, `peak_time`, `score`, `aesthetics`, `sharpness`, `exposure`, `saliency` |
//! | `embeddings.parquet` | sampled frame (embed job) | `video_id`, `row`, `time`, `embedding` (fixed-size list of f32) |
//! | `scores.parquet` | scored frame (score job) | `video_id`, `frame`, `time`, `sharpness`, `exposure`, `aesthetics`, `saliency`, `score` |
//!
//! Rows follow the manifest's order; file paths (`clip`, `keyframe_images`) are relative to
//! the batch's output folder. Nothing in the tables depends on how the batch was run
//! (shards, machines, timings), so the same manifest merged after any mix of runs gives the
//! same tables. The tables of jobs that did not run are not written. Videos are read one at
//! a time and rows go out in row groups of 16 384, so memory does not grow with the
//! collection.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, ListBuilder, StringBuilder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use super::manifest::Manifest;
use super::state::{self, read_marker, read_settings, VideoStatus, DONE, FAILED};
use super::Job;
use crate::output::OutputDir;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// Rows per Parquet row group (and per write).
const ROW_GROUP: usize = 16_384;

/// The default folder of the merged dataset inside the batch's output folder.
pub const MERGED_DIR: &str = "_merged";

/// What [`merge`] wrote (also `summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    /// The folder of the dataset.
    pub folder: PathBuf,
    /// The manifest.
    pub manifest: PathBuf,
    /// The jobs of the batch.
    pub jobs: Vec<Job>,
    /// Videos of the manifest.
    pub videos: u64,
    /// Done.
    pub done: u64,
    /// Failed.
    pub failed: u64,
    /// Not done yet.
    pub pending: u64,
    /// Hours of video done.
    pub hours: f64,
    /// Frames of the videos done.
    pub frames: u64,
    /// Rows per table file.
    pub tables: BTreeMap<String, u64>,
    /// Width of the `embedding` column per table that has one.
    pub embedding_dims: BTreeMap<String, usize>,
}

/// Merges the batch in `out` into Parquet tables and `summary.json`, written into `dest`
/// (default `OUT/_merged`) as one set. Videos not done appear in the videos table with
/// their status.
pub fn merge(
    out: &Path,
    dest: Option<&Path>,
    progress: &dyn Progress,
) -> Result<MergeReport, Error> {
    let settings = read_settings(out)?;
    let manifest = Manifest::open(&settings.manifest)?;
    let folder = dest.map_or_else(|| out.join(MERGED_DIR), Path::to_path_buf);
    let dir = OutputDir::begin(&folder, "batch-merge", false)?;
    let jobs = settings.config.jobs.clone();
    let mut tables = Tables::new(&dir, &jobs)?;
    let mut report = MergeReport {
        folder: folder.clone(),
        manifest: settings.manifest.clone(),
        jobs: jobs.clone(),
        videos: 0,
        done: 0,
        failed: 0,
        pending: 0,
        hours: 0.0,
        frames: 0,
        tables: BTreeMap::new(),
        embedding_dims: BTreeMap::new(),
    };
    let base_print = settings.config.fingerprint();
    let stage = StageGuard::start(progress, Stage::Write, None);
    for entry in manifest.entries()? {
        let entry = entry?;
        report.videos += 1;
        let print = if entry.options.is_empty() {
            base_print.clone()
        } else {
            settings
                .config
                .with_options(&entry.options)
                .map(|c| c.fingerprint())
                .unwrap_or_default()
        };
        let status = state::video_status(out, &entry.id, &print);
        let marker = match status {
            VideoStatus::Done => read_marker(out, &entry.id, DONE),
            VideoStatus::Failed => read_marker(out, &entry.id, FAILED),
            VideoStatus::Pending => None,
        };
        let mut counts = [None; 3];
        if status == VideoStatus::Done {
            report.done += 1;
            if let Some(p) = marker.as_ref().and_then(|m| m.probe.as_ref()) {
                report.hours += p.duration / 3600.0;
            }
            report.frames += marker.as_ref().and_then(|m| m.frames).unwrap_or(0);
            counts = tables.add_outputs(out, &entry.id, &jobs)?;
        } else if status == VideoStatus::Failed {
            report.failed += 1;
        } else {
            report.pending += 1;
        }
        tables.add_video(&entry.id, &entry.path, status, marker.as_ref(), counts)?;
        stage.advance(1);
    }
    drop(stage);
    let (rows, dims) = tables.finish()?;
    report.tables = rows;
    report.embedding_dims = dims;
    dir.commit("summary.json", &report)?;
    Ok(report)
}

/// One value of a row.
enum V<'a> {
    S(Option<&'a str>),
    U32(Option<u32>),
    U64(Option<u64>),
    F64(Option<f64>),
    F32(Option<f32>),
    B(Option<bool>),
    StrList(&'a [String]),
    F64List(&'a [f64]),
    Emb(&'a [f32]),
}

/// The kind of a column.
#[derive(Clone, Copy)]
enum K {
    S,
    U32,
    U64,
    F64,
    F32,
    B,
    StrList,
    F64List,
    Emb,
}

enum Col {
    S(StringBuilder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F64(Float64Builder),
    F32(Float32Builder),
    B(BooleanBuilder),
    StrList(ListBuilder<StringBuilder>),
    F64List(ListBuilder<Float64Builder>),
    Emb(Vec<f32>),
}

impl Col {
    fn new(k: K) -> Self {
        match k {
            K::S => Col::S(StringBuilder::new()),
            K::U32 => Col::U32(UInt32Builder::new()),
            K::U64 => Col::U64(UInt64Builder::new()),
            K::F64 => Col::F64(Float64Builder::new()),
            K::F32 => Col::F32(Float32Builder::new()),
            K::B => Col::B(BooleanBuilder::new()),
            K::StrList => Col::StrList(ListBuilder::new(StringBuilder::new())),
            K::F64List => Col::F64List(ListBuilder::new(Float64Builder::new())),
            K::Emb => Col::Emb(Vec::new()),
        }
    }
}

/// A Parquet table written in row groups as rows come.
struct Table {
    name: &'static str,
    path: PathBuf,
    columns: Vec<(&'static str, K, bool)>,
    cols: Vec<Col>,
    rows: usize,
    total: u64,
    dim: Option<usize>,
    writer: Option<ArrowWriter<File>>,
}

impl Table {
    fn new(
        dir: &OutputDir,
        name: &'static str,
        columns: &[(&'static str, K, bool)],
    ) -> Result<Self, Error> {
        Ok(Self {
            name,
            path: dir.path(&format!("{name}.parquet"))?,
            columns: columns.to_vec(),
            cols: columns.iter().map(|c| Col::new(c.1)).collect(),
            rows: 0,
            total: 0,
            dim: None,
            writer: None,
        })
    }

    fn err(&self, detail: String) -> Error {
        Error::Write {
            path: self.path.clone(),
            source: std::io::Error::other(detail),
        }
    }

    fn push(&mut self, row: &[V<'_>]) -> Result<(), Error> {
        debug_assert_eq!(row.len(), self.cols.len());
        for (col, v) in self.cols.iter_mut().zip(row) {
            match (col, v) {
                (Col::S(b), V::S(x)) => b.append_option(*x),
                (Col::U32(b), V::U32(x)) => b.append_option(*x),
                (Col::U64(b), V::U64(x)) => b.append_option(*x),
                (Col::F64(b), V::F64(x)) => b.append_option(*x),
                (Col::F32(b), V::F32(x)) => b.append_option(*x),
                (Col::B(b), V::B(x)) => b.append_option(*x),
                (Col::StrList(b), V::StrList(xs)) => {
                    for x in *xs {
                        b.values().append_value(x);
                    }
                    b.append(true);
                }
                (Col::F64List(b), V::F64List(xs)) => {
                    b.values().append_slice(xs);
                    b.append(true);
                }
                (Col::Emb(values), V::Emb(xs)) => {
                    match self.dim {
                        None => self.dim = Some(xs.len()),
                        Some(d) if d != xs.len() => {
                            return Err(Error::Write {
                                path: self.path.clone(),
                                source: std::io::Error::other(format!(
                                    "embeddings of width {} after width {d}: every video of a \
                                     batch must use the same embedding model",
                                    xs.len()
                                )),
                            })
                        }
                        _ => {}
                    }
                    values.extend_from_slice(xs);
                }
                _ => {
                    return Err(self_err(
                        &self.path,
                        "a row does not match the table's columns",
                    ))
                }
            }
        }
        self.rows += 1;
        self.total += 1;
        if self.rows >= ROW_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    fn schema(&self) -> Arc<Schema> {
        let dim = self.dim.unwrap_or(0);
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|&(name, k, nullable)| Field::new(name, data_type(k, dim), nullable))
            .collect();
        Arc::new(Schema::new(fields))
    }

    fn flush(&mut self) -> Result<(), Error> {
        if self.rows == 0 && self.writer.is_some() {
            return Ok(());
        }
        let schema = self.schema();
        let dim = self.dim.unwrap_or(0);
        let arrays: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|c| -> Result<ArrayRef, String> {
                Ok(match c {
                    Col::S(b) => Arc::new(b.finish()),
                    Col::U32(b) => Arc::new(b.finish()),
                    Col::U64(b) => Arc::new(b.finish()),
                    Col::F64(b) => Arc::new(b.finish()),
                    Col::F32(b) => Arc::new(b.finish()),
                    Col::B(b) => Arc::new(b.finish()),
                    Col::StrList(b) => Arc::new(b.finish()),
                    Col::F64List(b) => Arc::new(b.finish()),
                    Col::Emb(values) => {
                        let values = Float32Array::from(std::mem::take(values));
                        let item = Arc::new(Field::new("item", DataType::Float32, false));
                        Arc::new(
                            FixedSizeListArray::try_new(item, dim as i32, Arc::new(values), None)
                                .map_err(|e| e.to_string())?,
                        )
                    }
                })
            })
            .collect::<Result<_, String>>()
            .map_err(|e| self.err(e))?;
        let batch =
            RecordBatch::try_new(schema.clone(), arrays).map_err(|e| self.err(e.to_string()))?;
        if self.writer.is_none() {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(ROW_GROUP))
                .build();
            let file = File::create(&self.path).map_err(|e| Error::write(&self.path, e))?;
            self.writer = Some(
                ArrowWriter::try_new(file, schema, Some(props))
                    .map_err(|e| self.err(e.to_string()))?,
            );
        }
        let path = self.path.clone();
        let w = self.writer.as_mut().expect("created above");
        if batch.num_rows() > 0 {
            w.write(&batch)
                .map_err(|e| self_err(&path, &e.to_string()))?;
        }
        self.rows = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<(u64, Option<usize>), Error> {
        self.flush()?;
        if let Some(w) = self.writer.take() {
            w.close().map_err(|e| self.err(e.to_string()))?;
        }
        Ok((
            self.total,
            self.dim
                .filter(|_| self.columns.iter().any(|c| matches!(c.1, K::Emb))),
        ))
    }
}

fn self_err(path: &Path, detail: &str) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(detail.to_string()),
    }
}

fn data_type(k: K, dim: usize) -> DataType {
    match k {
        K::S => DataType::Utf8,
        K::U32 => DataType::UInt32,
        K::U64 => DataType::UInt64,
        K::F64 => DataType::Float64,
        K::F32 => DataType::Float32,
        K::B => DataType::Boolean,
        K::StrList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        K::F64List => DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
        K::Emb => DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float32, false)),
            dim as i32,
        ),
    }
}

/// The tables of a merge.
struct Tables {
    videos: Table,
    shots: Option<Table>,
    segments: Option<Table>,
    highlights: Option<Table>,
    embeddings: Option<Table>,
    scores: Option<Table>,
}

// What the merge reads of each job's report (their other fields are ignored).

#[derive(Deserialize)]
struct ShotsFile {
    cuts: Vec<CutRow>,
    shots: Vec<ShotRow>,
}
#[derive(Deserialize)]
struct CutRow {
    frame: u64,
    kind: String,
    score: f32,
}
#[derive(Deserialize)]
struct ShotRow {
    start_frame: u64,
    end_frame: u64,
    start: f64,
    end: f64,
}
#[derive(Deserialize)]
struct SegmentsFile {
    segments: Vec<SegmentRow>,
}
#[derive(Deserialize)]
struct SegmentRow {
    number: u32,
    start: f64,
    end: f64,
    start_frame: u64,
    clip: Option<String>,
    keyframes: Vec<KeyframeRow>,
    mean_embedding: Vec<f32>,
}
#[derive(Deserialize)]
struct KeyframeRow {
    time: f64,
    path: String,
}
#[derive(Deserialize)]
struct HighlightsFile {
    clips: Vec<ClipRow>,
}
#[derive(Deserialize)]
struct ClipRow {
    filename: String,
    start_time: f64,
    duration: f64,
    peak_frame: u64,
    peak_time: f64,
    score: f64,
    components: ComponentsRow,
}
#[derive(Deserialize)]
struct ComponentsRow {
    aesthetics: Option<f64>,
    sharpness: f64,
    exposure: f64,
    saliency: Option<f64>,
}
#[derive(Deserialize)]
struct ScoreFile {
    rows: Vec<ScoreRow>,
}
#[derive(Deserialize)]
struct ScoreRow {
    frame: u64,
    time: f64,
    sharpness: f64,
    exposure: f64,
    aesthetics: Option<f64>,
    saliency: Option<f64>,
    score: f64,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::InvalidInput {
        path: path.to_path_buf(),
        detail: format!("cannot read this output of a done video ({e}); run the batch again"),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::InvalidInput {
        path: path.to_path_buf(),
        detail: format!("not the report the batch writes: {e}"),
    })
}

impl Tables {
    fn new(dir: &OutputDir, jobs: &[Job]) -> Result<Self, Error> {
        use K::*;
        let has = |j| jobs.contains(&j);
        let table =
            |on: bool, name, cols: &[(&'static str, K, bool)]| -> Result<Option<Table>, Error> {
                if on {
                    Table::new(dir, name, cols).map(Some)
                } else {
                    Ok(None)
                }
            };
        Ok(Self {
            videos: Table::new(
                dir,
                "videos",
                &[
                    ("id", S, false),
                    ("path", S, false),
                    ("status", S, false),
                    ("error", S, true),
                    ("duration", F64, true),
                    ("width", U32, true),
                    ("height", U32, true),
                    ("fps", F64, true),
                    ("codec", S, true),
                    ("has_audio", B, true),
                    ("rotation", U32, true),
                    ("frames", U64, true),
                    ("shots", U32, true),
                    ("segments", U32, true),
                    ("highlights", U32, true),
                    ("notes", StrList, false),
                ],
            )?,
            shots: table(
                has(Job::Shots),
                "shots",
                &[
                    ("video_id", S, false),
                    ("shot", U32, false),
                    ("start_frame", U64, false),
                    ("end_frame", U64, false),
                    ("start", F64, false),
                    ("end", F64, false),
                    ("transition", S, true),
                    ("transition_score", F32, true),
                ],
            )?,
            segments: table(
                has(Job::Segments),
                "segments",
                &[
                    ("video_id", S, false),
                    ("segment", U32, false),
                    ("start", F64, false),
                    ("end", F64, false),
                    ("start_frame", U64, false),
                    ("clip", S, true),
                    ("keyframe_times", F64List, false),
                    ("keyframe_images", StrList, false),
                    ("embedding", Emb, false),
                ],
            )?,
            highlights: table(
                has(Job::Highlights),
                "highlights",
                &[
                    ("video_id", S, false),
                    ("rank", U32, false),
                    ("clip", S, false),
                    ("start", F64, false),
                    ("duration", F64, false),
                    ("peak_frame", U64, false),
                    ("peak_time", F64, false),
                    ("score", F64, false),
                    ("aesthetics", F64, true),
                    ("sharpness", F64, false),
                    ("exposure", F64, false),
                    ("saliency", F64, true),
                ],
            )?,
            embeddings: table(
                has(Job::Embed),
                "embeddings",
                &[
                    ("video_id", S, false),
                    ("row", U32, false),
                    ("time", F64, false),
                    ("embedding", Emb, false),
                ],
            )?,
            scores: table(
                has(Job::Score),
                "scores",
                &[
                    ("video_id", S, false),
                    ("frame", U64, false),
                    ("time", F64, false),
                    ("sharpness", F64, false),
                    ("exposure", F64, false),
                    ("aesthetics", F64, true),
                    ("saliency", F64, true),
                    ("score", F64, false),
                ],
            )?,
        })
    }

    /// Adds the rows of a done video's job outputs; returns its counts of shots, segments
    /// and highlights.
    fn add_outputs(
        &mut self,
        out: &Path,
        id: &str,
        jobs: &[Job],
    ) -> Result<[Option<u32>; 3], Error> {
        let dir = out.join(id);
        let rel = |job: &str, name: &str| format!("{id}/{job}/{name}");
        let mut counts = [None; 3];
        if let (Some(t), true) = (self.shots.as_mut(), jobs.contains(&Job::Shots)) {
            let f: ShotsFile = read_json(&dir.join("shots/shots.json"))?;
            for (i, s) in f.shots.iter().enumerate() {
                let cut = (i > 0)
                    .then(|| f.cuts.iter().find(|c| c.frame == s.start_frame))
                    .flatten();
                t.push(&[
                    V::S(Some(id)),
                    V::U32(Some(i as u32 + 1)),
                    V::U64(Some(s.start_frame)),
                    V::U64(Some(s.end_frame)),
                    V::F64(Some(s.start)),
                    V::F64(Some(s.end)),
                    V::S(cut.map(|c| c.kind.as_str())),
                    V::F32(cut.map(|c| c.score)),
                ])?;
            }
            counts[0] = Some(f.shots.len() as u32);
        }
        if let (Some(t), true) = (self.segments.as_mut(), jobs.contains(&Job::Segments)) {
            let f: SegmentsFile = read_json(&dir.join("segments/segments.json"))?;
            for s in &f.segments {
                let times: Vec<f64> = s.keyframes.iter().map(|k| k.time).collect();
                let images: Vec<String> = s
                    .keyframes
                    .iter()
                    .map(|k| rel("segments", &k.path))
                    .collect();
                let clip = s.clip.as_ref().map(|c| rel("segments", c));
                t.push(&[
                    V::S(Some(id)),
                    V::U32(Some(s.number)),
                    V::F64(Some(s.start)),
                    V::F64(Some(s.end)),
                    V::U64(Some(s.start_frame)),
                    V::S(clip.as_deref()),
                    V::F64List(&times),
                    V::StrList(&images),
                    V::Emb(&s.mean_embedding),
                ])?;
            }
            counts[1] = Some(f.segments.len() as u32);
        }
        if let (Some(t), true) = (self.highlights.as_mut(), jobs.contains(&Job::Highlights)) {
            let path = dir.join("highlights/highlights.json");
            // No highlights folder: the video had no highlight (noted in its marker).
            let clips = if path.exists() {
                read_json::<HighlightsFile>(&path)?.clips
            } else {
                Vec::new()
            };
            for (i, c) in clips.iter().enumerate() {
                let clip = rel("highlights", &c.filename);
                t.push(&[
                    V::S(Some(id)),
                    V::U32(Some(i as u32 + 1)),
                    V::S(Some(&clip)),
                    V::F64(Some(c.start_time)),
                    V::F64(Some(c.duration)),
                    V::U64(Some(c.peak_frame)),
                    V::F64(Some(c.peak_time)),
                    V::F64(Some(c.score)),
                    V::F64(c.components.aesthetics),
                    V::F64(Some(c.components.sharpness)),
                    V::F64(Some(c.components.exposure)),
                    V::F64(c.components.saliency),
                ])?;
            }
            counts[2] = Some(clips.len() as u32);
        }
        if let (Some(t), true) = (self.embeddings.as_mut(), jobs.contains(&Job::Embed)) {
            let (rows, times) = read_embeddings(&dir.join("embed/embeddings.safetensors"))?;
            for (i, (row, time)) in rows.iter().zip(&times).enumerate() {
                t.push(&[
                    V::S(Some(id)),
                    V::U32(Some(i as u32)),
                    V::F64(Some(*time)),
                    V::Emb(row),
                ])?;
            }
        }
        if let (Some(t), true) = (self.scores.as_mut(), jobs.contains(&Job::Score)) {
            let f: ScoreFile = read_json(&dir.join("score/score.json"))?;
            for r in &f.rows {
                t.push(&[
                    V::S(Some(id)),
                    V::U64(Some(r.frame)),
                    V::F64(Some(r.time)),
                    V::F64(Some(r.sharpness)),
                    V::F64(Some(r.exposure)),
                    V::F64(r.aesthetics),
                    V::F64(r.saliency),
                    V::F64(Some(r.score)),
                ])?;
            }
        }
        Ok(counts)
    }

    fn add_video(
        &mut self,
        id: &str,
        path: &str,
        status: VideoStatus,
        marker: Option<&state::Marker>,
        counts: [Option<u32>; 3],
    ) -> Result<(), Error> {
        let status = match status {
            VideoStatus::Done => "done",
            VideoStatus::Failed => "failed",
            VideoStatus::Pending => "pending",
        };
        let probe = marker.and_then(|m| m.probe.as_ref());
        let notes: &[String] = marker.map_or(&[], |m| &m.notes);
        self.videos.push(&[
            V::S(Some(id)),
            V::S(Some(path)),
            V::S(Some(status)),
            V::S(marker.and_then(|m| m.error.as_deref())),
            V::F64(probe.map(|p| p.duration)),
            V::U32(probe.map(|p| p.width)),
            V::U32(probe.map(|p| p.height)),
            V::F64(probe.map(|p| p.fps)),
            V::S(probe.map(|p| p.codec.as_str())),
            V::B(probe.map(|p| p.has_audio)),
            V::U32(probe.map(|p| p.rotation)),
            V::U64(marker.and_then(|m| m.frames)),
            V::U32(counts[0]),
            V::U32(counts[1]),
            V::U32(counts[2]),
            V::StrList(notes),
        ])
    }

    /// Closes every table: rows per file, and embedding widths.
    #[allow(clippy::type_complexity)]
    fn finish(self) -> Result<(BTreeMap<String, u64>, BTreeMap<String, usize>), Error> {
        let mut rows = BTreeMap::new();
        let mut dims = BTreeMap::new();
        let all = [
            Some(self.videos),
            self.shots,
            self.segments,
            self.highlights,
            self.embeddings,
            self.scores,
        ];
        for t in all.into_iter().flatten() {
            let name = t.name;
            let (n, dim) = t.finish()?;
            rows.insert(format!("{name}.parquet"), n);
            if let Some(d) = dim {
                dims.insert(name.to_string(), d);
            }
        }
        Ok((rows, dims))
    }
}

/// The `images` rows and `times` of an embed job's safetensors file.
pub(super) fn read_embeddings(path: &Path) -> Result<(Vec<Vec<f32>>, Vec<f64>), Error> {
    use reelsmith_embed::candle_core::{safetensors, DType, Device};
    let bad = |e: String| Error::InvalidInput {
        path: path.to_path_buf(),
        detail: format!("not the embeddings the batch writes: {e}"),
    };
    let t = safetensors::load(path, &Device::Cpu).map_err(|e| bad(e.to_string()))?;
    let images = t
        .get("images")
        .ok_or_else(|| bad("no `images` tensor".into()))?;
    let times = t
        .get("times")
        .ok_or_else(|| bad("no `times` tensor".into()))?;
    let rows = images
        .to_dtype(DType::F32)
        .and_then(|t| t.to_vec2::<f32>())
        .map_err(|e| bad(e.to_string()))?;
    let times = times
        .to_dtype(DType::F64)
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(|e| bad(e.to_string()))?;
    if rows.len() != times.len() {
        return Err(bad(format!(
            "{} rows but {} times",
            rows.len(),
            times.len()
        )));
    }
    Ok((rows, times))
}
