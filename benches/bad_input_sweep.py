#!/usr/bin/env python3
"""Bad-input sweep (issue 19): thousands of hostile runs of the `reelsmith` binary.

Not in CI (minutes). Builds a seeded corpus in a temporary folder and runs every command on
it: truncated, bit-flipped and header-patched videos, noise, text, images, audio only, odd
sizes and timings, impossible headers, special files and odd names; bad option values, bad
configuration files and broken model folders; a full or closed stdout; SIGINT/SIGTERM in the
middle of a run; a full disk (RLIMIT_FSIZE, and a small tmpfs where this user may mount one).

Each run is classified:
  ok          exit 0 with complete outputs (the report written, nothing temporary left)
  clean       exit 1 (or 2 for a usage error, 130 after a signal) with an `error:` line that
              names the file, flag or setting at fault, and the output as it was before
  panic       exit 101 or "panicked" on stderr
  crash       killed by a signal it was not sent
  hang        still running after the timeout
  partial     outputs changed by a run that failed, or incomplete after one that succeeded
  unnamed     a failure whose message names none of the things at fault
The target is 0 of the last five.

Usage: benches/bad_input_sweep.py [--bin target/debug/reelsmith] [--runs 2000] [--seed 19]
                                  [--jobs 2] [--json results.json] [--keep]
Needs: ffmpeg on PATH, the tiny checkpoints in tests/support/fixtures.
"""

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "support" / "fixtures"
TIMEOUT = 120
REPORTS = {
    "frames": "frames.json",
    "keyframes": "keyframes.json",
    "highlights": "highlights.json",
    "segments": "segments.json",
}


# ---- inputs --------------------------------------------------------------------------------


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def base_videos(d: Path):
    """The good inputs the corpus is made from."""
    out = {}
    out["mp4"] = d / "base.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=3", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
           "-c:a", "aac", "-shortest", str(out["mp4"]))
    out["mkv"] = d / "base.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=3", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=3:sample_rate=8000", "-c:v", "libx264", "-preset",
           "ultrafast", "-c:a", "pcm_s16le", "-shortest", str(out["mkv"]))
    out["webm"] = d / "base.webm"
    try:
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=2", "-c:v", "libvpx-vp9",
               "-deadline", "realtime", str(out["webm"]))
    except subprocess.CalledProcessError:
        del out["webm"]
    out["tiny"] = d / "tiny-1x1.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=1x1:rate=25:duration=1", "-c:v", "libx264",
           "-pix_fmt", "yuv444p", str(out["tiny"]))
    out["odd"] = d / "odd-3x5.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=3x5:rate=25:duration=1", "-c:v", "ffv1",
           str(out["odd"]))
    out["tb1"] = d / "tb1.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=2", "-c:v", "libx264",
           "-preset", "ultrafast", "-video_track_timescale", "1", str(out["tb1"]))
    out["y4m"] = d / "small.y4m"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x16:rate=5:duration=1", "-pix_fmt", "yuv420p",
           str(out["y4m"]))
    out["wav"] = d / "tone.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", str(out["wav"]))
    out["png"] = d / "still.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=40x30", "-frames:v", "1", str(out["png"]))
    out["jpg"] = d / "still.jpg"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=40x30", "-frames:v", "1", str(out["jpg"]))
    out["long"] = d / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=12", "-c:v", "libx264",
           "-preset", "ultrafast", str(out["long"]))
    return out


MP4_BOXES = [b"ftyp", b"moov", b"mvhd", b"trak", b"tkhd", b"mdia", b"mdhd", b"hdlr", b"minf",
             b"stbl", b"stsd", b"avc1", b"avcC", b"stts", b"ctts", b"stss", b"stsc", b"stsz",
             b"stco", b"mdat", b"mp4a", b"esds", b"edts", b"elst"]
MKV_IDS = [b"\xb5", b"\xb0", b"\xba", b"\x2a\xd7\xb1", b"\x83", b"\x86", b"\xa3", b"\xe7",
           b"\x9f", b"\x63\xa2", b"\x1f\x43\xb6\x75"]
U32S = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 25, 90000]


def mutate(data: bytes, rng: random.Random, tags):
    """A damaged copy of `data` and what was done."""
    b = bytearray(data)
    kind = rng.choice(["truncate", "flip", "flip", "box", "u32", "u32", "splice", "zero", "dup",
                       "tail"])
    if kind == "truncate":
        b = b[: rng.randrange(0, len(b))]
    elif kind == "flip":
        for _ in range(rng.choice([1, 2, 8, 64, 512])):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind in ("box", "u32"):
        tag = rng.choice(tags)
        hits = [i for i in range(len(b) - len(tag)) if b[i:i + len(tag)] == tag][:8]
        if not hits:
            return mutate(data, rng, tags)
        i = rng.choice(hits)
        if kind == "box" and len(tag) == 4:
            b[i:i + 4] = bytes(rng.randrange(256) for _ in range(4))
        else:
            at = i + len(tag) + rng.choice([0, 1, 4, 8, 12, 16, 20])
            v = rng.choice(U32S + [rng.getrandbits(32)])
            b[at:at + 4] = struct.pack(">I", v)
    elif kind == "splice":
        i = rng.randrange(len(b))
        n = rng.choice([1, 16, 256, 4096])
        b[i:i] = bytes(rng.getrandbits(8) for _ in range(n))
    elif kind == "zero":
        i = rng.randrange(len(b))
        n = len(b[i:i + rng.choice([4, 64, 1024, 16384])])
        b[i:i + n] = b"\0" * n
    elif kind == "dup":
        i = rng.randrange(len(b))
        b[i:i] = b[i:i + rng.choice([8, 512, 8192])]
    elif kind == "tail":
        b += bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 100, 5000])))
    return bytes(b), kind


def special_inputs(d: Path, bases):
    """Special files and odd names."""
    out = []
    fifo = d / "fifo.mp4"
    os.mkfifo(fifo)
    out.append(fifo)
    folder = d / "folder.mp4"
    folder.mkdir()
    out.append(folder)
    out.append(d / "missing.mp4")
    dangling = d / "dangling.mp4"
    dangling.symlink_to(d / "nowhere.mp4")
    out.append(dangling)
    sock = d / "socket.mp4"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    out.append(sock)
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    out.append(empty)
    for name in [b"caf\xe9.mp4", "vid\u00e9o \u65e5\u672c.mp4".encode(), b"new\nline.mp4",
                 b"x" * 250 + b".mp4", b"-dash.mp4", b" space .mp4"]:
        p = Path(os.fsdecode(bytes(d) + b"/" + name))
        shutil.copy(bases["mp4"], p)
        out.append(p)
    link = d / "link.mp4"
    link.symlink_to(bases["mp4"])
    out.append(link)
    y = d / "huge.y4m"
    y.write_bytes(b"YUV4MPEG2 W30000 H30000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + b"\0" * 4096)
    out.append(y)
    y = d / "zero-rate.y4m"
    y.write_bytes(b"YUV4MPEG2 W8 H8 F0:0 Ip C420jpeg\nFRAME\n" + b"\0" * 96)
    out.append(y)
    t = d / "text.mp4"
    t.write_text("not a video\n")
    out.append(t)
    return out + [Path("/dev/zero"), Path("/dev/urandom"), Path("/dev/null")]


# ---- runs ----------------------------------------------------------------------------------


def snapshot(path: Path):
    """What is at `path` (None when nothing): file names with their hashes."""
    if not os.path.lexists(path):
        return None
    if not path.is_dir() or path.is_symlink():
        st = os.lstat(path)
        return ("file", st.st_mode, st.st_size)
    snap = {}
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            try:
                snap[str(p.relative_to(path))] = hashlib.sha1(p.read_bytes()).hexdigest()
            except OSError:
                snap[str(p.relative_to(path))] = "?"
    return snap


def leftovers(path: Path):
    if not path.is_dir():
        return []
    return [n for n in os.listdir(path) if n.startswith(".reelsmith-staging-") or
            n.endswith(".part")]


class Run:
    """One run: its command line, what the error must name, its output folder."""

    def __init__(self, kind, args, names, out=None, report=None, stdout=None, fsize=None,
                 sig=None, json_out=False, earlier=None):
        self.kind, self.args, self.names = kind, [str(a) if isinstance(a, Path) else a
                                                  for a in args], names
        self.out, self.report, self.stdout, self.fsize = out, report, stdout, fsize
        self.sig, self.json_out, self.earlier = sig, json_out, earlier


def name_of(p) -> str:
    """How the binary's messages show a path."""
    if isinstance(p, Path):
        s = os.fsencode(p).decode("utf-8", "replace")
        return s if str(p).startswith("/dev/") else os.path.basename(s) or s
    return p


def execute(binary: str, r: Run):
    if r.earlier:
        subprocess.run([binary, "-q", *r.earlier], capture_output=True, timeout=TIMEOUT)
    before = snapshot(r.out) if r.out else None

    def limits():
        if r.fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (r.fsize, r.fsize))

    stdout = subprocess.PIPE
    if r.stdout == "full":
        stdout = open("/dev/full", "wb")
    elif r.stdout == "closed":
        # A pipe whose reader is gone before anything is written.
        rfd, stdout = os.pipe()
        os.close(rfd)
    args = [binary, *r.args]
    t = time.time()
    p = subprocess.Popen(args, stdout=stdout, stderr=subprocess.PIPE, preexec_fn=limits)
    if r.stdout == "closed":
        os.close(stdout)
    if r.sig:
        sig, delay = r.sig
        time.sleep(delay)
        p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return "hang", r, "", time.time() - t
    if r.stdout == "full":
        stdout.close()
    err = err.decode("utf-8", "replace")
    rc = p.returncode
    verdict = classify(r, rc, out or b"", err, before)
    return verdict, r, f"exit {rc}: {err.strip()[-600:]}", time.time() - t


def classify(r: Run, rc, out, err, before):
    if rc == 101 or "panicked" in err:
        return "panic"
    after = snapshot(r.out) if r.out else None
    if r.sig and rc in (130, -r.sig[0]):
        # Handled (130), or arrived before the handlers were installed: nothing written.
        return "clean" if after == before else "partial"
    if rc < 0:
        return "crash"
    if r.stdout == "closed":
        return "ok" if rc == 0 and not err.strip() else "unnamed"
    if rc == 0:
        if r.out and r.report and not (r.out / r.report).is_file():
            return "partial"
        if r.out and leftovers(r.out):
            return "partial"
        if r.json_out and r.stdout is None:
            try:
                json.loads(out)
            except ValueError:
                return "partial"
        return "ok"
    if r.out and after != before:
        return "partial"
    if rc == 2:
        return "clean"  # usage error: clap names the argument
    if rc != 1:
        return "crash"
    line = " ".join(l for l in err.splitlines() if l.startswith(("error:", "hint:")))
    if not line.startswith("error:"):
        return "unnamed"
    if r.names and not any(n in line for n in r.names):
        return "unnamed"
    return "clean"


# ---- the corpus of runs --------------------------------------------------------------------


def command_runs(inp: Path, outdir: Path, rng: random.Random, kind: str, extra_names=()):
    """Every command on `inp`."""
    dino = FIXTURES / "dinov2-tiny"
    names = [name_of(inp), *extra_names]
    o = outdir
    runs = [
        Run(kind, ["probe", "--json", inp], names, json_out=True),
        Run(kind, ["shots", rng.choice(["--json", "--csv", "-q"]), inp], names),
        Run(kind, ["-q", "frames", "--every", str(rng.choice([1, 3, 10])), inp, "-o",
                   o / "frames"], names, out=o / "frames", report="frames.json"),
        Run(kind, ["-q", "keyframes", "--method", rng.choice(["quantile", "seams"]), inp, "-o",
                   o / "keyframes"], names, out=o / "keyframes", report="keyframes.json"),
        Run(kind, ["-q", "score", "--json", "--fps", "4", inp], names, json_out=True),
        Run(kind, ["-q", "highlights", "--no-model", "--min-duration", "0.3", "--top-k", "2",
                   *(["--stream-copy"] if rng.random() < 0.3 else []), inp, "-o",
                   o / "highlights"], names, out=o / "highlights", report="highlights.json"),
        Run(kind, ["-q", "segments", "--min-seconds", "0.5", inp, "-o", o / "segments"], names,
            out=o / "segments", report="segments.json"),
        Run(kind, ["-q", "embed", "--json", "--model-dir", dino, "--fps", "2", inp], names,
            json_out=True),
        # The first-frame commands (tiny random-weight models from the test fixtures).
        Run(kind, ["-q", "entities", inp, "--weights", FIXTURES / "isnet-tiny" /
                   "isnet_tiny.safetensors", "--embed-model-dir", dino, "-o", o / "entities"],
            names, out=o / "entities", report="entities.json"),
        Run(kind, ["-q", "generate", "--model-dir", FIXTURES / "wan-i2v-tiny", "--image", inp,
                   "--prompt", "a cat", "--frames", "5", "--size", "32x32", "--steps", "1",
                   "-o", str(o / "generate") + "/"],
            names, out=o / "generate", report="generate.json"),
    ]
    return runs


BAD_NUMBERS = ["-1", "0", "NaN", "inf", "-inf", "1e308", "-1e308", "1e-320", "4294967296",
               "18446744073709551616", "", "abc", "0x10", "1,2", "  3", "3.5", "-0"]
NUMERIC_FLAGS = {
    "frames": ["--fps", "--every", "--height", "--quality"],
    "keyframes": ["--quantile", "--quality"],
    "score": ["--fps", "--every", "--robust"],
    "highlights": ["--top-k", "--fps", "--height", "--smooth", "--min-separation", "--min-score",
                   "--pre-roll", "--post-roll", "--min-duration", "--max-duration",
                   "--diversity-threshold", "--crf"],
    "segments": ["--fps", "--window", "--k", "--min-seconds", "--max-seconds"],
    "embed": ["--fps", "--batch"],
}
CONFIG_FIELDS = {
    "highlights": ["top_k", "fps", "height", "smooth_seconds", "min_separation_seconds",
                   "min_score", "pre_roll", "post_roll", "min_duration", "max_duration",
                   "diversity_threshold", "crf", "preset", "clip_mode", "audio", "export_clips",
                   "model", "prompts", "aesthetic_head", "score"],
    "segments": ["fps", "height", "window_seconds", "k", "min_seconds", "max_seconds",
                 "export_clips", "audio", "clip_mode", "crf", "preset", "model"],
    "keyframes": ["method", "quantile", "quality", "png", "height", "analysis"],
    "score": ["fps", "every", "model", "prompts", "aesthetic_head", "score"],
    "shots": ["analysis", "detection"],
}
SHOT_FIELDS = ["metric", "min_shot_len", "cut_window", "cut_ratio", "cut_min", "ratio_floor",
               "flash_window", "gradual", "gradual_min_stride", "gradual_max_stride",
               "gradual_min", "gradual_spread", "gradual_contrast", "gradual_linearity",
               "gradual_min_score"]
ANALYSIS_FIELDS = ["width", "height", "threads", "skip_loop_filter"]
TOML_VALUES = ["-1", "0", "nan", "inf", "-inf", "1e308", "\"text\"", "true", "[]", "[1, 2]",
               "{}", "{ dir = \"/nonexistent\" }", "{ hub = \"\" }", "\"\"", "18446744073709551616",
               "{ weights = { sharpness = nan } }", "{ sharpness_norm = { percentile = { low = 95, high = 5 } } }"]


def option_runs(bases, d: Path, rng: random.Random, n: int):
    runs = []
    v = bases["mp4"]
    for _ in range(n):
        cmd = rng.choice(list(NUMERIC_FLAGS))
        flag = rng.choice(NUMERIC_FLAGS[cmd])
        val = rng.choice(BAD_NUMBERS)
        o = d / f"opt-out-{len(runs)}"
        if rng.random() < 0.5:
            args = [cmd, f"{flag}={val}", v]
        else:
            args = [cmd, flag, val, v]
        if cmd in REPORTS:
            args += ["-o", o]
        if cmd == "embed":
            args += ["--json", "--model-dir", FIXTURES / "dinov2-tiny"]
        setting = flag.lstrip("-").replace("-", "_")
        runs.append(Run("option", ["-q", *args], [flag, setting, "top_k", "max_duration",
                                                   "min_duration", "min_seconds", "max_seconds",
                                                   "window_seconds", "smooth_seconds",
                                                   "min_separation_seconds"],
                        out=o if cmd in REPORTS else None, report=REPORTS.get(cmd),
                        json_out=cmd == "embed"))
    return runs


def config_runs(bases, d: Path, rng: random.Random, n: int):
    runs = []
    v = bases["mp4"]
    for k in range(n):
        cmd = rng.choice(list(CONFIG_FIELDS))
        lines = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            field = rng.choice(CONFIG_FIELDS[cmd] + ["unknown_field", "fsp"])
            if field in ("detection", "analysis"):
                # A table of the nested settings, each value hostile or plausible.
                fields = SHOT_FIELDS if field == "detection" else ANALYSIS_FIELDS
                inner = ", ".join(
                    f"{rng.choice(fields)} = {rng.choice(TOML_VALUES[:10] + ['3', '0.5', '1000000'])}"
                    for _ in range(rng.choice([1, 2, 4])))
                lines.append(f"{field} = {{ {inner} }}")
            else:
                lines.append(f"{field} = {rng.choice(TOML_VALUES)}")
        text = "\n".join(lines) + "\n"
        ext = ".toml"
        form = rng.random()
        if form < 0.1:
            text = text[: rng.randrange(len(text))]
        elif form < 0.2:
            text = bytes(rng.getrandbits(8) for _ in range(64)).decode("latin-1")
        elif form < 0.35:
            ext = ".json"
            text = rng.choice(["[1, 2, 3]", "{\"fps\": }", "null", "{\"fps\": \"x\"}", "{}",
                               "{\"top_k\": -1}", "\"str\"", "{\"model\": {\"dir\": 5}}"])
        cfg = d / f"cfg-{k}{ext}"
        cfg.write_text(text, encoding="latin-1")
        o = d / f"cfg-out-{k}"
        args = [cmd, "--config", cfg, v]
        if cmd in REPORTS:
            args += ["-o", o]
        names = [cfg.name] + [f.split(" =")[0] for f in lines] + ["fps", "score", "model"]
        runs.append(Run("config", ["-q", *args], names, out=o if cmd in REPORTS else None,
                        report=REPORTS.get(cmd)))
    return runs


def model_runs(bases, d: Path, rng: random.Random, n: int):
    runs = []
    for k in range(n):
        src = FIXTURES / rng.choice(["clip-tiny", "dinov2-tiny"])
        m = d / f"model-{k}"
        shutil.copytree(src, m)
        f = m / rng.choice(sorted(os.listdir(m)))
        how = rng.choice(["delete", "truncate", "flip", "garbage", "json"])
        if how == "delete":
            f.unlink()
        elif how == "truncate":
            b = f.read_bytes()
            f.write_bytes(b[: rng.randrange(max(1, len(b)))])
        elif how == "flip":
            b = bytearray(f.read_bytes())
            for _ in range(rng.choice([1, 16])):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
            f.write_bytes(bytes(b))
        elif how == "garbage":
            f.write_bytes(bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 8, 100]))))
        else:
            cfg = m / rng.choice(["config.json", "preprocessor_config.json"])
            try:
                j = json.loads(cfg.read_text())
            except ValueError:
                j = {}
            keys = list(j) or ["x"]
            key = rng.choice(keys)
            j[key] = rng.choice([0, -1, 1e308, None, "x", [], {}, [0, 0, 0], 10 ** 12])
            cfg.write_text(json.dumps(j))
            f = cfg
        img = bases["png"]
        cmd = rng.choice(["embed", "embed", "score", "highlights", "segments"])
        o = d / f"model-out-{k}"
        if cmd == "embed":
            args = ["embed", "--json", "--model-dir", m, img]
            if "clip" in src.name and rng.random() < 0.5:
                args += ["--text", "a cat"]
        elif cmd == "score":
            args = ["score", "--json", "--model-dir", m, img]
        else:
            args = [cmd, "--model-dir", m, bases["mp4"], "-o", o]
        runs.append(Run("model", ["-q", *args], [m.name, f.name], out=o if cmd in REPORTS else None,
                        report=REPORTS.get(cmd), json_out=cmd in ("embed", "score")))
    return runs


def destination_runs(bases, d: Path, rng: random.Random):
    """Outputs that must be refused or handled: files, links, devices, inputs, foreign folders."""
    runs = []
    v = bases["mp4"]
    f = d / "dest-file"
    f.write_text("keep")
    link = d / "dest-link"
    link.symlink_to(d / "dest-file")
    foreign = d / "dest-foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("mine")
    under_file = d / "dest-file" / "sub"
    for cmd in REPORTS:
        for o in [f, link, foreign, under_file, Path("/dev/null"), v]:
            runs.append(Run("destination", ["-q", cmd, v, "-o", o],
                            [name_of(o), str(o)], out=o, report=REPORTS[cmd]))
    for o in [f, link, Path("/dev/null"), v, foreign]:
        runs.append(Run("destination", ["-q", "embed", "--model-dir", FIXTURES / "dinov2-tiny",
                                        bases["png"], v, "-o", o], [name_of(o), str(o)], out=o))
    return runs


def stdout_runs(bases, rng: random.Random, n: int):
    runs = []
    for _ in range(n):
        inp = rng.choice([bases["mp4"], bases["png"]])
        args = rng.choice([["probe", "--json"], ["probe"], ["shots", "--csv"], ["shots", "--json"],
                           ["score", "--json"], ["score"],
                           ["embed", "--json", "--model-dir", FIXTURES / "dinov2-tiny"]])
        how = rng.choice(["full", "closed"])
        runs.append(Run("stdout", ["-q", *args, inp], ["standard output"], stdout=how))
    return runs


def signal_runs(bases, d: Path, rng: random.Random, n: int):
    runs = []
    for k in range(n):
        o = d / f"sig-out-{k}"
        cmd = rng.choice(["frames", "keyframes", "highlights", "segments"])
        args = {"frames": ["frames", "--every", "1"], "keyframes": ["keyframes"],
                "highlights": ["highlights", "--no-model"], "segments": ["segments"]}[cmd]
        earlier = None
        if rng.random() < 0.5:
            earlier = [*args, bases["mp4"], "-o", o]
        sig = (rng.choice([signal.SIGINT, signal.SIGTERM]), rng.uniform(0.2, 2.0))
        runs.append(Run("signal", ["-q", *args, bases["long"], "-o", o], [], out=o,
                        report=REPORTS[cmd], sig=sig, earlier=earlier))
    return runs


def full_disk_runs(bases, d: Path, rng: random.Random, n: int):
    runs = []
    for k in range(n):
        o = d / f"fsize-out-{k}"
        cmd = rng.choice(list(REPORTS) + ["embed"])
        inp = rng.choice([bases["mp4"], bases["mkv"], bases["long"]])
        limit = rng.choice([0, 1, 100, 1000, 4000, 20000, 100000, 400000])
        if cmd == "embed":
            o = d / f"fsize-{k}.safetensors"
            args = ["embed", "--model-dir", FIXTURES / "dinov2-tiny", inp, "-o", o]
            report = None
        else:
            args = [cmd, *(["--no-model"] if cmd == "highlights" else []), inp, "-o", o]
            report = REPORTS[cmd]
        earlier = None
        if cmd != "embed" and rng.random() < 0.5:
            earlier = [cmd, *(["--no-model"] if cmd == "highlights" else []), bases["mp4"],
                       "-o", o]
        runs.append(Run("full-disk", ["-q", *args], [name_of(o), "File too large"], out=o,
                        report=report, fsize=limit, earlier=earlier))
    return runs


# ---- a real full disk: a small tmpfs in a mount namespace (root, Linux) ----------------------


def tmpfs_supported() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                       capture_output=True)
    return r.returncode == 0


def tmpfs_run(spec):
    """Inside `unshare -m`: mounts a tmpfs of spec['size'] bytes, runs the earlier run (if
    any) without a limit, snapshots, runs the command, snapshots again; prints the verdict."""
    mnt = Path(spec["mnt"])
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={spec['size']}", "tmpfs", str(mnt)],
                   check=True)
    o = mnt / "out"
    if spec.get("earlier"):
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        subprocess.run([spec["bin"], "-q", *spec["earlier"], "-o", str(o)], capture_output=True)
        subprocess.run(["mount", "-o", f"remount,size={spec['size'] + du(mnt)}", str(mnt)],
                       check=True)
    r = Run("tmpfs", [*spec["args"], "-o", o], [name_of(o), "No space left"], out=o,
            report=spec["report"])
    verdict, _, detail, secs = execute(spec["bin"], r)
    print(json.dumps({"verdict": verdict, "detail": detail, "secs": secs}))


def du(path: Path) -> int:
    total = 0
    for dp, _, files in os.walk(path):
        for f in files:
            total += os.lstat(Path(dp) / f).st_size
    return total + 65536


def tmpfs_runs(binary, bases, d: Path, rng: random.Random, n: int):
    """(verdict, description) of `n` runs on a small tmpfs."""
    results = []
    for k in range(n):
        cmd = rng.choice(list(REPORTS))
        inp = rng.choice([bases["mp4"], bases["long"]])
        args = [cmd, *(["--no-model"] if cmd == "highlights" else []), str(inp)]
        mnt = d / f"tmpfs-{k}"
        mnt.mkdir()
        spec = {"mnt": str(mnt), "size": rng.choice([4096, 20000, 100000, 400000]),
                "bin": binary, "args": args, "report": REPORTS[cmd],
                "earlier": [cmd, *(["--no-model"] if cmd == "highlights" else []),
                            str(bases["mp4"])] if rng.random() < 0.5 else None}
        p = subprocess.run(["unshare", "-m", sys.executable, __file__, "--tmpfs-run",
                            json.dumps(spec)], capture_output=True, text=True, timeout=TIMEOUT * 2)
        try:
            res = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            res = {"verdict": "crash", "detail": p.stderr[-400:], "secs": 0}
        results.append((res["verdict"], f"tmpfs {spec['size']} B: {' '.join(args)}",
                        res["detail"], res["secs"]))
    return results


# ---- main ----------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(ROOT / "target" / "debug" / "reelsmith"))
    ap.add_argument("--runs", type=int, default=2000, help="at least this many runs")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", help="write the counts and problem runs here")
    ap.add_argument("--keep", action="store_true", help="keep the corpus folder")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="scale the counts of the fixed kinds (0.05 for a quick smoke run)")
    ap.add_argument("--tmpfs-run", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.tmpfs_run:
        tmpfs_run(json.loads(a.tmpfs_run))
        return
    binary = os.path.abspath(a.bin)
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary}: not built; run `cargo build -p reelsmith-cli` (or pass --bin)")
    rng = random.Random(a.seed)
    d = Path(tempfile.mkdtemp(prefix="reelsmith-sweep-"))
    print(f"corpus in {d}", file=sys.stderr)
    bases = base_videos(d)
    runs = []
    k = 0
    # Fixed kinds first, then mutated videos until the count is reached.
    def n(count):
        return max(1, round(count * a.scale))

    specials = special_inputs(d, bases) + [bases[x] for x in ("tiny", "odd", "tb1", "y4m",
                                                                 "wav", "png", "jpg")]
    for inp in specials[: n(len(specials))]:
        runs += command_runs(inp, d / f"out-{k}", rng, "special")
        k += 1
    runs += option_runs(bases, d, rng, n(250))
    runs += config_runs(bases, d, rng, n(200))
    runs += model_runs(bases, d, rng, n(120))
    runs += destination_runs(bases, d, rng)
    runs += stdout_runs(bases, rng, n(80))
    runs += signal_runs(bases, d, rng, n(40))
    runs += full_disk_runs(bases, d, rng, n(120))
    use_tmpfs = tmpfs_supported()
    n_tmpfs = n(30) if use_tmpfs else 0
    sources = [(bases[x], MKV_IDS if x == "mkv" else MP4_BOXES) for x in ("mp4", "mkv", "tb1")]
    if "webm" in bases:
        sources.append((bases["webm"], MKV_IDS))
    while len(runs) + n_tmpfs < a.runs:
        src, tags = rng.choice(sources)
        data, how = mutate(src.read_bytes(), rng, tags)
        inp = d / f"m{k:04d}-{how}{src.suffix}"
        inp.write_bytes(data)
        cmds = command_runs(inp, d / f"out-{k}", rng, f"mutated:{how}")
        runs += rng.sample(cmds, 4)
        k += 1
    print(f"{len(runs) + n_tmpfs} runs ({n_tmpfs} on a tmpfs)", file=sys.stderr)
    t0 = time.time()
    results = []
    with cf.ThreadPoolExecutor(a.jobs) as pool:
        # Signals need their timing: run them one at a time after the rest.
        timed = [r for r in runs if r.sig]
        rest = [r for r in runs if not r.sig]
        for i, res in enumerate(pool.map(lambda r: execute(binary, r), rest)):
            results.append((res[0], f"{res[1].kind}: {' '.join(map(str, res[1].args))}", res[2],
                            res[3]))
            if res[0] not in ("ok", "clean"):
                print(f"  [{res[0]}] {results[-1][1]}\n      {res[2][-300:]}", file=sys.stderr)
            if (i + 1) % 200 == 0:
                print(f"  {i + 1} runs, {time.time() - t0:.0f} s", file=sys.stderr)
    for r in timed:
        res = execute(binary, r)
        results.append((res[0], f"{r.kind}: {' '.join(map(str, r.args))}", res[2], res[3]))
    if use_tmpfs:
        results += tmpfs_runs(binary, bases, d, rng, n_tmpfs)
    counts = {}
    by_kind = {}
    for verdict, desc, _, _ in results:
        counts[verdict] = counts.get(verdict, 0) + 1
        kind = desc.split(":")[0]
        by_kind.setdefault(kind, {}).setdefault(verdict, 0)
        by_kind[kind][verdict] += 1
    problems = [r for r in results if r[0] in ("panic", "crash", "hang", "partial", "unnamed")]
    print(f"\n{len(results)} runs in {time.time() - t0:.0f} s (seed {a.seed}, "
          f"full disk: RLIMIT_FSIZE{' and a tmpfs' if use_tmpfs else ''})")
    for v in ["ok", "clean", "panic", "crash", "hang", "partial", "unnamed"]:
        print(f"  {v:8} {counts.get(v, 0)}")
    print("by kind:")
    for kind, c in sorted(by_kind.items()):
        print(f"  {kind:22} " + ", ".join(f"{v} {n}" for v, n in sorted(c.items())))
    for verdict, desc, detail, _ in problems[:40]:
        print(f"\n[{verdict}] {desc}\n    {detail[-500:]}")
    if a.json:
        Path(a.json).write_text(json.dumps({"counts": counts, "by_kind": by_kind,
                                            "problems": problems, "runs": results}, indent=1))
    if not a.keep:
        shutil.rmtree(d, ignore_errors=True)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
