//! `reelsmith batch` end to end, and on a real single-node Slurm cluster: the shipped
//! sbatch array over videos made here, one task cancelled mid-run with scancel, the array
//! resubmitted; every video done exactly once and the merged Parquet equal to one process's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reelsmith::pipelines::batch::shard_of;

use super::{reelsmith, succeeded};

/// The workspace root (scripts/ and deploy/ live there).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `secs`-second 160×90 video at 25 fps with three shots; `seed` varies the colours.
fn video(path: &Path, seed: u8, secs: usize) {
    let n = secs * 25;
    let frames = (0..n).map(move |k| {
        let shot = (3 * k / n) as u8;
        ndarray::Array3::from_shape_fn((90, 160, 3), |(y, x, c)| {
            // each shot its own picture, not the same one recoloured (a lighting change)
            let tex = match shot {
                0 => (x * 7 + y * 13 + k * 3) % 41 + x / 4,
                1 => (x * 3 + y * 11 + k * 2) % 27 + (89 - y) / 2,
                _ => (x * 13 + y * 5 + k) % 33 + (x as isize - 80).unsigned_abs() / 2,
            } as u8;
            let base = [
                seed.wrapping_add(shot * 80),
                40 + shot * 60,
                200 - shot * 50,
            ];
            base[c].wrapping_add(tex)
        })
    });
    reelsmith_test_support::encode_h264(
        path,
        (160, 90, 25),
        25,
        "ultrafast",
        "keyint=25:min-keyint=25:scenecut=0",
        frames,
    );
}

#[test]
fn bad_manifests_fail_naming_the_line() {
    let d = tempfile::tempdir().unwrap();
    for (name, text, want) in [
        (
            "a.csv",
            "file\nx.mp4\n",
            "a.csv:1: the header has no `path` column",
        ),
        (
            "b.txt",
            "x/v.mp4\ny/v.mp4\n",
            "b.txt:2: the id `v` is also on line 1",
        ),
        (
            "c.jsonl",
            "{\"path\": \"v.mp4\"}\n{\"paht\": \"w.mp4\"}\n",
            "c.jsonl:2:",
        ),
        ("d.txt", "\n# none\n", "d.txt: has no videos"),
    ] {
        let m = d.path().join(name);
        std::fs::write(&m, text).unwrap();
        let out = reelsmith()
            .args(["batch", "run", "-q"])
            .arg(&m)
            .arg("-o")
            .arg(d.path().join("out"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{name}: {err}");
    }
    let out = reelsmith()
        .args(["batch", "run", "-q", "/nonexistent/list.txt", "-o"])
        .arg(d.path().join("out"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/list.txt: cannot read the manifest"),
        "{err}"
    );
    assert!(!d.path().join("out").exists());
}

/// Stops the cluster when the test ends, whatever happens.
struct Cluster {
    state: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    /// Starts it with the repo's script; `None` (after printing why) where it cannot run
    /// here, unless REELSMITH_REQUIRE_SLURM=1 (then the test fails).
    fn start(state: &Path) -> Option<Self> {
        let out = Command::new(root().join("scripts/slurm-local.sh"))
            .arg("start")
            .arg(state)
            .output()
            .expect("scripts/slurm-local.sh runs");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.code() == Some(77) {
            assert!(
                std::env::var("REELSMITH_REQUIRE_SLURM").as_deref() != Ok("1"),
                "REELSMITH_REQUIRE_SLURM=1 but no Slurm cluster: {err}"
            );
            eprintln!("skipped: {}", err.trim());
            return None;
        }
        assert!(out.status.success(), "slurm-local.sh start failed: {err}");
        Some(Self {
            state: state.to_path_buf(),
            conf: state.join("slurm.conf"),
        })
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Submits the shipped sbatch array (4 tasks, one CPU each); returns the job id.
    fn submit(&self, logs: &Path, manifest: &Path, out: &Path, jobs: &str) -> String {
        let o = self
            .cmd("sbatch")
            .env("REELSMITH", env!("CARGO_BIN_EXE_reelsmith"))
            .args([
                "--parsable",
                "--array=0-3",
                "--cpus-per-task=1",
                "--mem-per-cpu=1G",
            ])
            .arg(format!("--output={}/slurm-%A_%a.log", logs.display()))
            .arg(root().join("deploy/slurm/reelsmith-batch.sbatch"))
            .arg(manifest)
            .arg(out)
            .args(["--jobs", jobs])
            .output()
            .unwrap();
        let o = succeeded(o);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Waits until no task of `job` is queued or running.
    fn wait(&self, job: &str) {
        let t = Instant::now();
        loop {
            let o = self
                .cmd("squeue")
                .args(["-h", "-j", job, "-o", "%i"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&o.stdout).trim().is_empty() {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(900),
                "job {job} still running after 15 min; see {}",
                self.state.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/slurm-local.sh"))
            .arg("stop")
            .arg(&self.state)
            .output();
    }
}

/// Events of every process's log: (shard file, event, id), in file order.
fn events(out: &Path) -> Vec<(String, String, String)> {
    let mut all = Vec::new();
    let Ok(dir) = std::fs::read_dir(out.join("_batch/log")) else {
        return all;
    };
    let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for line in std::fs::read_to_string(&f).unwrap_or_default().lines() {
            // A line being written while read is skipped.
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                all.push((
                    name.clone(),
                    v["event"].as_str().unwrap_or("").to_string(),
                    v["id"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    all
}

/// Every file and folder under `dir`, relative.
fn walk(dir: &Path, base: &Path, into: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        into.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            walk(&p, base, into);
        }
    }
}

#[test]
fn slurm_array_cancelled_and_resubmitted_equals_one_process() {
    let d = tempfile::tempdir().unwrap();
    let Some(cluster) = Cluster::start(&d.path().join("slurm")) else {
        return;
    };
    // 12 videos, three in each of the four shards (ids chosen by their shard), so every
    // task has work before and after the one it is cancelled in.
    let mut ids = Vec::new();
    let mut per_shard = [0; 4];
    for i in 0.. {
        let id = format!("clip{i:03}");
        let s = shard_of(&id, 4) as usize;
        if per_shard[s] < 3 {
            per_shard[s] += 1;
            ids.push(id);
        }
        if ids.len() == 12 {
            break;
        }
    }
    let videos = d.path().join("videos");
    std::fs::create_dir(&videos).unwrap();
    let mut manifest_text = String::from("path,id\n");
    for (i, id) in ids.iter().enumerate() {
        video(&videos.join(format!("{id}.mp4")), 17 * i as u8, 8);
        manifest_text.push_str(&format!("videos/{id}.mp4,{id}\n"));
    }
    let manifest = d.path().join("videos.csv");
    std::fs::write(&manifest, manifest_text).unwrap();
    let jobs = "shots,segments,highlights,score";
    let out = d.path().join("out");
    let logs = d.path().join("logs");
    std::fs::create_dir(&logs).unwrap();

    let job = cluster.submit(&logs, &manifest, &out, jobs);
    // Cancel a task once it has finished one video and is working on the next.
    let t = Instant::now();
    let cancelled = loop {
        let ev = events(&out);
        let mut by_file: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for (f, e, id) in &ev {
            by_file.entry(f).or_default().push((e, id));
        }
        let busy = by_file.iter().find(|(_, evs)| {
            evs.iter().any(|(e, _)| *e == "done") && evs.last().is_some_and(|(e, _)| *e == "start")
        });
        if let Some((file, _)) = busy {
            let shard: u64 = file
                .strip_prefix("shard")
                .and_then(|s| s.split("of").next())
                .and_then(|s| s.parse().ok())
                .unwrap();
            succeeded(
                cluster
                    .cmd("scancel")
                    .arg(format!("{job}_{shard}"))
                    .output()
                    .unwrap(),
            );
            break shard;
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "no task was caught between two videos; events: {ev:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    cluster.wait(&job);
    let first_done: Vec<String> = events(&out)
        .into_iter()
        .filter(|(_, e, _)| e == "done")
        .map(|(_, _, id)| id)
        .collect();
    let left = ids
        .iter()
        .filter(|id| shard_of(id, 4) == cancelled && !first_done.contains(id))
        .count();
    assert!(left > 0, "the cancelled task had finished its shard");
    assert!(first_done.len() < ids.len());

    let job2 = cluster.submit(&logs, &manifest, &out, jobs);
    cluster.wait(&job2);

    // Every video done exactly once across both submissions.
    let ev = events(&out);
    for id in &ids {
        let n = ev.iter().filter(|(_, e, i)| e == "done" && i == id).count();
        assert_eq!(n, 1, "{id} done {n} times; events: {ev:?}");
        assert!(out.join(id).join("done.json").is_file(), "{id}");
        assert!(!out.join(id).join("failed.json").exists(), "{id}");
    }
    assert!(ev.iter().all(|(_, e, _)| e != "failed"), "{ev:?}");
    // Nothing partial left behind.
    let mut files = Vec::new();
    walk(&out, &out, &mut files);
    let partial: Vec<&String> = files
        .iter()
        .filter(|f| f.contains(".reelsmith-staging-") || f.ends_with(".part"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");

    let status = succeeded(
        reelsmith()
            .args(["batch", "status", "--json"])
            .arg(&out)
            .output()
            .unwrap(),
    );
    let s: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(s["total"]["done"], 12, "{s}");
    assert_eq!(s["shards"].as_array().unwrap().len(), 4);

    // The same manifest in one process, merged: the same tables, byte for byte.
    let single = d.path().join("single");
    succeeded(
        reelsmith()
            .args(["batch", "run", "-q", "--jobs", jobs])
            .arg(&manifest)
            .arg("-o")
            .arg(&single)
            .output()
            .unwrap(),
    );
    for o in [&out, &single] {
        succeeded(
            reelsmith()
                .args(["batch", "merge", "-q"])
                .arg(o)
                .output()
                .unwrap(),
        );
    }
    for table in ["videos", "shots", "segments", "highlights", "scores"] {
        let f = format!("_merged/{table}.parquet");
        let (a, b) = (
            std::fs::read(out.join(&f)).unwrap(),
            std::fs::read(single.join(&f)).unwrap(),
        );
        assert!(
            a == b,
            "{table}.parquet differs between the Slurm run and one process"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("_merged/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["done"], 12, "{summary}");
    assert_eq!(
        summary["tables"]["shots.parquet"], 36,
        "three shots per video: {summary}"
    );
}
