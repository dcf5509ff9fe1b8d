#!/usr/bin/env python3
"""Shot detection on every corpus, reelsmith and PySceneDetect side by side, in one run.

Corpora are folders holding videos and a ground_truth.json in the layout of the shared one:
by default $REELSMITH_SHARED/videos (the shared clips) and the two halves of the robustness
corpus made by scripts/make_shot_corpus.py (out/shot_corpus/A: tuning, B: reporting).

For every corpus it prints, per kind of clip (no-cut kinds: occlusion, flash, strobe, whip,
zoom, blur, compress, anamorphic; spliced sets; the shared clips), each tool's false
transitions and its precision/recall/F1 for hard cuts and for all transitions (scored as in
benches/shots_compare.py: +-2 frames, one-to-one matching; a prediction inside a gradual
span counts for that span whatever the tool calls it), then the corpus totals and both
tools' frames/s. Both tools run on each file in turn, so they see the same machine load;
reelsmith is timed as the time its command reports (opening the file to the result),
PySceneDetect (detect-adaptive defaults, its Python API) around detect().

--sweep NAME=V1,V2,... runs reelsmith alone once per value with `[detection] NAME = V` in a
settings file and prints the F1s per corpus for each value (the F1-versus-threshold curves
of docs/shots.md); --svg DIR also draws them.

Usage: benches/shots_eval.py [CORPUS ...] [--reelsmith PATH] [--no-pyscenedetect]
                             [--config FILE] [--sweep NAME=V1,V2,... [--svg DIR]]
Build first: cargo build --release -p reelsmith-cli. PySceneDetect: pip install scenedetect
opencv-python-headless.
"""
import argparse, json, os, re, resource, subprocess, sys, tempfile, time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shots_compare import ROOT, default_binary, match, prf  # noqa: E402


def corpora_default():
    shared = Path(os.environ.get("REELSMITH_SHARED", str(ROOT.parent / "shared"))) / "videos"
    out = [shared] if (shared / "ground_truth.json").exists() else []
    for half in ("A", "B"):
        d = ROOT / "out" / "shot_corpus" / half
        if (d / "ground_truth.json").exists():
            out.append(d)
    return out


def timed_shots(binary, video, extra=()):
    """Runs `reelsmith shots VIDEO --json`: the parsed report, the time the command
    reports (else the process wall time), the process's CPU seconds and its wall seconds."""
    cmd = [binary, "shots", str(video), "--json", *extra]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"{binary} failed on {video}: {p.stderr.strip()}")
    m = re.search(r"(\d+) frames in ([\d.]+)s", p.stderr)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return json.loads(p.stdout), (float(m.group(2)) if m else wall), cpu, wall


def run_reelsmith(video, binary, config=None):
    d, reported, cpu, wall = timed_shots(binary, video, ["--config", str(config)] if config else [])
    preds = [(c["frame"], tuple(c["span"]) if c.get("span") else None) for c in d["cuts"]]
    return preds, Timing(reported, cpu, wall), d["frames"]


def run_pyscenedetect(video):
    from scenedetect import detect, AdaptiveDetector
    c0, t0 = time.process_time(), time.perf_counter()
    scenes = detect(str(video), AdaptiveDetector())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return [(s[0].frame_num, None) for s in scenes[1:]], Timing(wall, cpu, wall)


class Timing:
    """One tool's time on one file: `secs` as its speed figure has always been measured
    (reelsmith: the time its command reports, opening the file to the result;
    PySceneDetect: around detect()), `cpu` the CPU seconds (user + sys, all threads;
    reelsmith's whole process, start-up included, from the children's rusage;
    PySceneDetect's process time around detect()) and `wall` the wall-clock seconds of
    that same span (reelsmith's whole process)."""

    def __init__(self, secs, cpu, wall):
        self.secs, self.cpu, self.wall = secs, cpu, wall


def misses(preds, v):
    """False predictions and missed truths, by the matching of shots_compare.match."""
    from shots_compare import TOL
    gts = [("c", c, c) for c in v["cuts"]] + [("g", g["start"], g["end"]) for g in v.get("gradual", [])]
    used, false = set(), []
    for f, span in sorted(preds, key=lambda p: p[0]):
        for gi, (k, s, e) in enumerate(gts):
            if gi not in used and (s - TOL <= f <= e + TOL or
                                   (span and span[0] <= e + TOL and span[1] >= s - TOL)):
                used.add(gi)
                break
        else:
            false.append(f)
    return false, [(s if k == "c" else (s, e)) for gi, (k, s, e) in enumerate(gts) if gi not in used]


def kind_of(name, v):
    return v.get("kind", "shared clips")


class Tally:
    def __init__(self):
        self.cut = [0, 0, 0]
        self.all = [0, 0, 0]
        self.false_on_nocut = 0
        self.nocut_clips = 0
        self.frames = 0
        self.secs = 0.0
        self.cpu = 0.0
        self.wall = 0.0

    def add(self, preds, v, frames=0, timing=None):
        grads = [(g["start"], g["end"]) for g in v.get("gradual", [])]
        c, al = match(preds, v["cuts"], grads)
        for k in range(3):
            self.cut[k] += c[k]; self.all[k] += al[k]
        if not v["cuts"] and not grads:
            self.nocut_clips += 1
            self.false_on_nocut += len(preds)
        self.frames += frames
        if timing:
            self.secs += timing.secs; self.cpu += timing.cpu; self.wall += timing.wall

    def line(self):
        cp, cr, cf = prf(self.cut)
        ap, ar, af = prf(self.all)
        s = (f"hard P/R/F {cp:.3f}/{cr:.3f}/{cf:.3f} (tp/fp/fn {self.cut[0]}/{self.cut[1]}/{self.cut[2]})"
             f"  all P/R/F {ap:.3f}/{ar:.3f}/{af:.3f} (tp/fp/fn {self.all[0]}/{self.all[1]}/{self.all[2]})")
        if self.nocut_clips:
            s += f"  false on {self.nocut_clips} no-cut clips: {self.false_on_nocut}"
        return s


def load(corpus):
    gt = json.load(open(Path(corpus) / "ground_truth.json"))["videos"]
    return [(Path(corpus) / name, name, v) for name, v in gt.items()]


def evaluate(corpora, binary, use_psd, config):
    grand = {"reelsmith": Tally(), "pyscenedetect": Tally()}
    for corpus in corpora:
        print(f"\n== {corpus}")
        per_kind = defaultdict(lambda: {"reelsmith": Tally(), "pyscenedetect": Tally()})
        total = {"reelsmith": Tally(), "pyscenedetect": Tally()}
        for path, name, v in load(corpus):
            preds, timing, frames = run_reelsmith(path, binary, config)
            runs = {"reelsmith": (preds, timing)}
            if use_psd:
                runs["pyscenedetect"] = run_pyscenedetect(path)
            for tool, (p, s) in runs.items():
                for t in (per_kind[kind_of(name, v)][tool], total[tool], grand[tool]):
                    t.add(p, v, frames, s)
            print(f"  {name:34s} {v['frames']:5d} fr  truth cuts={v['cuts']} "
                  f"gradual={[(g['start'], g['end']) for g in v.get('gradual', [])]}")
            for tool, (p, _) in runs.items():
                fp, fn = misses(p, v)
                print(f"  {'':34s} {tool}={[f for f, _ in p]}"
                      + (f"  false={fp}" if fp else "") + (f"  missed={fn}" if fn else ""))
        print(f"-- per kind ({corpus.name})")
        for kind, tools in sorted(per_kind.items()):
            for tool, t in tools.items():
                if t.frames:
                    print(f"  {kind:20s} {tool:14s} {t.line()}")
        for tool, t in total.items():
            if t.frames:
                print(f"TOTAL {corpus.name:14s} {tool:14s} {t.line()}  {t.frames / t.secs:.0f} frames/s")
        if use_psd:
            print(speed_line(f"SPEED {corpus.name}", total["reelsmith"], total["pyscenedetect"]))
    if use_psd:
        r = grand["reelsmith"]
        print("\n" + speed_line(f"SPEED all corpora ({r.frames} frames)", r, grand["pyscenedetect"]))


def speed_line(title, r, p):
    """Both tools' speeds and reelsmith's ratio: as reported (reelsmith's own timer), per
    CPU-second (reelsmith's whole process, start-up included), and per wall-clock second
    of reelsmith's whole process."""
    def rate(t, secs):
        return t.frames / max(secs, 1e-9)
    parts = []
    for label, rs, ps in (("", r.secs, p.secs), ("CPU ", r.cpu, p.cpu),
                          ("process wall ", r.wall, p.wall)):
        a, b = rate(r, rs), rate(p, ps)
        parts.append(f"{label}reelsmith {a:.0f} frames/s, PySceneDetect {b:.0f}: {a / b:.2f}x")
    return f"{title}: " + "; ".join(parts)


def sweep(corpora, binary, spec, svg_dir):
    name, values = spec.split("=", 1)
    values = [v.strip() for v in values.split(",") if v.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for val in values:
            cfg = Path(td) / "s.toml"
            cfg.write_text(f"[detection]\n{name} = {val}\n")
            res = {}
            for corpus in corpora:
                t = Tally()
                for path, _, v in load(corpus):
                    preds, timing, frames = run_reelsmith(path, binary, cfg)
                    t.add(preds, v, frames, timing)
                res[corpus.name] = (prf(t.cut)[2], prf(t.all)[2], t.false_on_nocut)
            rows.append((val, res))
            print(f"{name}={val:8s} " + "  ".join(
                f"{c}: hard {h:.3f} all {a:.3f} nocut-false {f}" for c, (h, a, f) in res.items()),
                flush=True)
    print(f"\n| {name} | " + " | ".join(f"{c} hard F1 | {c} all F1" for c in rows[0][1]) + " |")
    print("|---|" + "---|---|" * len(rows[0][1]))
    for val, res in rows:
        print(f"| {val} | " + " | ".join(f"{h:.3f} | {a:.3f}" for h, a, _ in res.values()) + " |")
    if svg_dir:
        Path(svg_dir).mkdir(parents=True, exist_ok=True)
        write_svg(Path(svg_dir) / f"shots_sweep_{name}.svg", name, rows)


def write_svg(path, name, rows):
    """A small line chart: F1 (hard and all) per corpus against the swept value."""
    W, H, L, R, T, B = 560, 300, 50, 170, 20, 40
    xs = [float(v) for v, _ in rows]
    x0, x1 = min(xs), max(xs)
    lo = min(min(min(h, a) for h, a, _ in r.values()) for _, r in rows)
    y0 = max(0.0, min(0.9, lo - 0.02))
    X = lambda x: L + (x - x0) / ((x1 - x0) or 1) * (W - L - R)
    Y = lambda y: T + (1 - (y - y0) / (1 - y0)) * (H - T - B)
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
           f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">{name}</text>']
    for k in range(5):
        y = y0 + (1 - y0) * k / 4
        out.append(f'<text x="{L - 4}" y="{Y(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
        out.append(f'<line x1="{L}" y1="{Y(y):.1f}" x2="{W - R}" y2="{Y(y):.1f}" stroke="#ddd"/>')
    for x in xs:
        out.append(f'<text x="{X(x):.1f}" y="{H - B + 14}" text-anchor="middle">{x:g}</text>')
    legend = 0
    for ci, corpus in enumerate(rows[0][1]):
        for which, dash in ((0, ""), (1, ' stroke-dasharray="5,3"')):
            pts = " ".join(f"{X(x):.1f},{Y(r[corpus][which]):.1f}" for x, (_, r) in zip(xs, rows))
            col = colours[ci % len(colours)]
            out.append(f'<polyline points="{pts}" fill="none" stroke="{col}" stroke-width="1.5"{dash}/>')
            ly = T + 14 * legend
            out.append(f'<line x1="{W - R + 10}" y1="{ly}" x2="{W - R + 30}" y2="{ly}" stroke="{col}"{dash}/>')
            out.append(f'<text x="{W - R + 34}" y="{ly + 4}">{corpus} {"hard" if which == 0 else "all"} F1</text>')
            legend += 1
    out.append("</svg>")
    Path(path).write_text("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpora", nargs="*")
    ap.add_argument("--reelsmith")
    ap.add_argument("--no-pyscenedetect", action="store_true")
    ap.add_argument("--config")
    ap.add_argument("--sweep")
    ap.add_argument("--svg")
    a = ap.parse_args()
    corpora = [Path(c) for c in a.corpora] or corpora_default()
    if not corpora:
        sys.exit("no corpus: set REELSMITH_SHARED or build one with scripts/make_shot_corpus.py")
    binary = a.reelsmith or default_binary()
    if a.sweep:
        return sweep(corpora, binary, a.sweep, a.svg)
    use_psd = not a.no_pyscenedetect
    if use_psd:
        try:
            import scenedetect  # noqa: F401
        except ImportError:
            sys.exit("PySceneDetect is not installed: pip install scenedetect opencv-python-headless, "
                     "or pass --no-pyscenedetect")
    evaluate(corpora, binary, use_psd, a.config)


if __name__ == "__main__":
    sys.exit(main())
