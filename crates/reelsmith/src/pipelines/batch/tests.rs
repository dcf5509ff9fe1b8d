//! Tests of the batch pipeline on small synthetic videos.

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::progress::NoProgress;

/// A `secs`-second 96×64 video at 25 fps with a hard cut in the middle; `seed` varies the
/// colours.
fn video(dir: &Path, name: &str, seed: u8, secs: usize) -> PathBuf {
    let path = dir.join(name);
    let n = secs * 25;
    let frames = (0..n).map(move |k| {
        ndarray::Array3::from_shape_fn((64, 96, 3), |(y, x, c)| {
            // each shot its own picture, not the same one recoloured (a lighting change)
            let tex = if k < n / 2 {
                (x * 5 + y * 11 + k * 3) % 37 + x / 2
            } else {
                (x * 3 + y * 7 + k * 2) % 23 + (63 - y)
            } as u8;
            let base: [u8; 3] = if k < n / 2 {
                [seed, 60, 170]
            } else {
                [210, seed, 30]
            };
            base[c].wrapping_add(tex)
        })
    });
    reelsmith_test_support::encode_h264(
        &path,
        (96, 64, 25),
        25,
        "ultrafast",
        "keyint=25:min-keyint=25:scenecut=0",
        frames,
    );
    path
}

/// Light settings for tests: no clips.
fn light(jobs: &[Job]) -> BatchConfig {
    let mut c = BatchConfig {
        jobs: jobs.to_vec(),
        workers: 2,
        ..BatchConfig::default()
    };
    c.segments.export_clips = false;
    c.highlights.export_clips = false;
    c.highlights.model = ModelChoice::None;
    c
}

fn read_table(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    arrow_select_concat(&batches)
}

/// The batches of a small table as one (tests write under one row group).
fn arrow_select_concat(batches: &[RecordBatch]) -> RecordBatch {
    assert_eq!(batches.len(), 1, "one batch per small table");
    batches[0].clone()
}

fn strings(batch: &RecordBatch, col: &str) -> Vec<String> {
    batch
        .column_by_name(col)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|s| s.unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_collection_runs_resumes_records_failures_and_merges() {
    let d = tempfile::tempdir().unwrap();
    let a = video(d.path(), "a.mp4", 10, 4);
    video(d.path(), "b.mp4", 90, 4);
    std::fs::write(d.path().join("broken.mp4"), b"not a video at all").unwrap();
    let manifest = d.path().join("videos.csv");
    std::fs::write(
        &manifest,
        format!(
            "path,id,segments.min_seconds\n{},first,\nb.mp4,,1.5\nmissing.mp4,,\nbroken.mp4,,\n",
            a.display()
        ),
    )
    .unwrap();
    let out = d.path().join("out");
    let models = Models::new();
    let config = light(&[Job::Shots, Job::Segments, Job::Highlights, Job::Score]);
    let input = BatchInput::new(&manifest, &out, &models);

    let r = run(&input, &config, &NoProgress).unwrap();
    assert_eq!((r.videos, r.done, r.failed), (4, 2, 2), "{r:?}");
    let errors: Vec<&str> = r.failures.iter().map(|f| f.error.as_str()).collect();
    assert!(
        errors.iter().any(|e| e.contains("missing.mp4")),
        "{errors:?}"
    );
    assert!(
        r.failures.iter().any(|f| f.id == "broken" && f.line == 5),
        "{r:?}"
    );
    for f in [
        "first/done.json",
        "first/shots/shots.json",
        "first/shots/shots.csv",
        "first/segments/segments.json",
        "b/score/score.json",
        "missing/failed.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let m: Marker =
        serde_json::from_slice(&std::fs::read(out.join("b/done.json")).unwrap()).unwrap();
    assert_eq!(m.probe.as_ref().unwrap().width, 96);
    let shots_b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("b/shots/shots.json")).unwrap()).unwrap();
    assert_eq!(m.frames, shots_b["frames"].as_u64());
    assert!(m.frames.unwrap() >= 99, "{m:?}");
    // The per-video option changed b's settings, so its fingerprint differs from a's.
    let first: Marker =
        serde_json::from_slice(&std::fs::read(out.join("first/done.json")).unwrap()).unwrap();
    assert_ne!(first.fingerprint, m.fingerprint);
    assert_eq!(first.fingerprint, config.fingerprint());

    // A rerun skips done and failed videos.
    let r = run(&input, &config, &NoProgress).unwrap();
    assert_eq!(
        (r.done, r.failed, r.already_done, r.already_failed),
        (0, 0, 2, 2)
    );

    // A killed run's leftovers (job folders, staging, no marker) are redone from scratch.
    std::fs::remove_file(out.join("first/done.json")).unwrap();
    std::fs::create_dir_all(out.join("first/segments/.reelsmith-staging-1-0")).unwrap();
    std::fs::write(out.join("first/segments/stale.jpg"), b"x").unwrap();
    std::fs::write(out.join("first/done.json.part"), b"{").unwrap();
    let r = run(&input, &config, &NoProgress).unwrap();
    assert_eq!((r.done, r.already_done, r.already_failed), (1, 1, 2));
    assert!(!out.join("first/segments/stale.jpg").exists());
    assert!(!out.join("first/done.json.part").exists());
    assert!(out.join("first/done.json").is_file());

    // --retry-failed takes the failures again (a now-fixed input succeeds).
    video(d.path(), "missing.mp4", 40, 4);
    let r = run(&input.retry_failed(true), &config, &NoProgress).unwrap();
    assert_eq!((r.done, r.failed), (1, 1), "{r:?}");
    assert!(out.join("missing/done.json").is_file() && !out.join("missing/failed.json").exists());

    // Status: everything in one shard (the run's count).
    let s = status(&out).unwrap();
    assert_eq!(
        (
            s.total.videos,
            s.total.done,
            s.total.failed,
            s.total.pending
        ),
        (4, 3, 1, 0)
    );
    assert_eq!(s.failures[0].id, "broken");

    // Merge: tables in manifest order, rows matching the per-video reports.
    let merged = merge(&out, None, &NoProgress).unwrap();
    assert_eq!((merged.done, merged.failed, merged.pending), (3, 1, 0));
    let dir = out.join(merge::MERGED_DIR);
    let videos = read_table(&dir.join("videos.parquet"));
    assert_eq!(strings(&videos, "id"), ["first", "b", "missing", "broken"]);
    assert_eq!(
        strings(&videos, "status"),
        ["done", "done", "done", "failed"]
    );
    assert!(strings(&videos, "error")[3].contains("broken.mp4"));
    let shots = read_table(&dir.join("shots.parquet"));
    let shots_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("first/shots/shots.json")).unwrap())
            .unwrap();
    let n_first = shots_json["shots"].as_array().unwrap().len();
    assert_eq!(n_first, 2, "a hard cut in the middle: {shots_json}");
    assert_eq!(shots.num_rows(), 6);
    assert_eq!(strings(&shots, "transition")[1], "cut");
    let segments = read_table(&dir.join("segments.parquet"));
    let emb = segments.column_by_name("embedding").unwrap();
    match emb.data_type() {
        arrow_schema::DataType::FixedSizeList(_, dim) => {
            assert_eq!(merged.embedding_dims["segments"], *dim as usize);
            assert!(*dim > 0);
        }
        t => panic!("embedding column is {t}"),
    }
    let scores = read_table(&dir.join("scores.parquet"));
    assert_eq!(scores.num_rows() as u64, merged.tables["scores.parquet"]);
    assert!(scores.num_rows() >= 12, "1 fps over three 4 s videos");
    assert!(dir.join("summary.json").is_file() && !dir.join("embeddings.parquet").exists());
}

#[test]
fn shards_split_the_work_and_merge_like_one_process() {
    let d = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for i in 0..5u8 {
        let name = format!("v{i}.mp4");
        video(d.path(), &name, 20 + 40 * i, 3);
        lines.push_str(&name);
        lines.push('\n');
    }
    let manifest = d.path().join("m.txt");
    std::fs::write(&manifest, &lines).unwrap();
    let models = Models::new();
    let config = light(&[Job::Shots, Job::Segments]);
    let sharded = d.path().join("sharded");
    let mut done = 0;
    for i in 0..3 {
        let input = BatchInput::new(&manifest, &sharded, &models).shard(Shard::new(i, 3).unwrap());
        let r = run(&input, &config, &NoProgress).unwrap();
        assert_eq!(r.done, r.videos);
        done += r.done;
    }
    assert_eq!(done, 5);
    let s = status(&sharded).unwrap();
    assert_eq!(s.shards.len(), 3);
    assert_eq!(s.total.done, 5);
    let single = d.path().join("single");
    let one = BatchConfig {
        workers: 1,
        ..config
    };
    run(
        &BatchInput::new(&manifest, &single, &models),
        &one,
        &NoProgress,
    )
    .unwrap();
    merge(&sharded, None, &NoProgress).unwrap();
    merge(&single, None, &NoProgress).unwrap();
    for t in ["videos", "shots", "segments"] {
        let f = format!("{}/{t}.parquet", merge::MERGED_DIR);
        assert_eq!(
            std::fs::read(sharded.join(&f)).unwrap(),
            std::fs::read(single.join(&f)).unwrap(),
            "{t}"
        );
    }
}

#[test]
fn bad_manifests_and_settings_are_refused_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    let models = Models::new();
    let out = d.path().join("out");
    let config = light(&[Job::Shots]);
    let try_run = |name: &str, text: &str| {
        let m = d.path().join(name);
        std::fs::write(&m, text).unwrap();
        run(&BatchInput::new(&m, &out, &models), &config, &NoProgress)
            .unwrap_err()
            .to_string()
    };
    let e = try_run("dup.txt", "x/a.mp4\nb.mp4\ny/a.mkv\n");
    assert!(
        e.contains("dup.txt:3:") && e.contains("also on line 1"),
        "{e}"
    );
    let e = try_run("empty.txt", "# nothing\n\n");
    assert!(
        e.contains("empty.txt:") && e.contains("has no videos"),
        "{e}"
    );
    let e = try_run(
        "opt.jsonl",
        "{\"path\": \"a.mp4\"}\n{\"path\": \"b.mp4\", \"shots.analysis.width\": 0}\n",
    );
    assert!(e.contains("opt.jsonl:2:") && e.contains("width"), "{e}");
    let e = try_run(
        "typo.jsonl",
        "{\"path\": \"a.mp4\", \"shots\": {\"detectoin\": 1}}\n",
    );
    assert!(
        e.contains("typo.jsonl:1:") && e.contains("detectoin"),
        "{e}"
    );
    assert!(!out.exists(), "nothing is written for a bad manifest");
    // Settings: embed needs a model.
    let m = d.path().join("ok.txt");
    std::fs::write(&m, "a.mp4\n").unwrap();
    let e = run(
        &BatchInput::new(&m, &out, &models),
        &light(&[Job::Embed]),
        &NoProgress,
    )
    .unwrap_err();
    assert_eq!(e.setting(), Some("model"), "{e}");
    // An output folder of something else is refused.
    let foreign = d.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let e = run(
        &BatchInput::new(&m, &foreign, &models),
        &config,
        &NoProgress,
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a reelsmith batch"), "{e}");
}

#[test]
fn embeddings_merge_as_fixed_size_lists() {
    let d = tempfile::tempdir().unwrap();
    video(d.path(), "e.mp4", 50, 3);
    let manifest = d.path().join("m.txt");
    std::fs::write(&manifest, "e.mp4\n").unwrap();
    let out = d.path().join("out");
    let models = Models::new();
    let mut config = light(&[Job::Embed]);
    config.embed.model = ModelChoice::Dir(reelsmith_test_support::tiny_clip());
    let r = run(
        &BatchInput::new(&manifest, &out, &models),
        &config,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.done, 1, "{r:?}");
    let merged = merge(&out, None, &NoProgress).unwrap();
    let t = read_table(&out.join("_merged/embeddings.parquet"));
    assert_eq!(t.num_rows(), 3, "1 fps over 3 s");
    let dim = merged.embedding_dims["embeddings"];
    let list = t.column_by_name("embedding").unwrap().as_fixed_size_list();
    assert_eq!(list.value_length() as usize, dim);
    // The rows are the safetensors file's rows.
    let (rows, times) =
        merge::read_embeddings(&out.join("e/embed/embeddings.safetensors")).unwrap();
    let values = list
        .values()
        .as_primitive::<arrow_array::types::Float32Type>();
    assert_eq!(&values.values()[..dim], &rows[0][..]);
    let tcol = t
        .column_by_name("time")
        .unwrap()
        .as_primitive::<arrow_array::types::Float64Type>();
    assert_eq!(tcol.values().to_vec(), times);
}
