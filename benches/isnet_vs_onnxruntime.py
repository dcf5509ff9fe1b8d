#!/usr/bin/env python3
"""ISNet at 1024x1024 on the CPU: reelsmith-entity beside onnxruntime running the same
network, in one run, on the same machine and input.

    cargo build --release -p reelsmith-entity --example isnet_speed
    python3 benches/isnet_vs_onnxruntime.py [--runs 3] [--threads 2] [--frame chaplin_f0120]
        [--bin target/release/examples/isnet_speed]

Needs $REELSMITH_SHARED/models/isnet (real weights, frames), torch (CPU), onnx and
onnxruntime (pip). The ONNX is rebuilt from the shared safetensors (weights upcast to f32,
all math f32 - the README's "rebuilt_f32" graph) with the PyTorch ISNet of
crates/entity/tests/fixtures/isnet_torch.py. Each side runs in its own process; reported
per frame: median wall seconds and CPU seconds per forward (onnxruntime: process_time() of
its session.run; reelsmith: user + sys of a process running 2 forwards minus one running 1,
so loading and warm-up cancel; the two sides alternate, one process each per run; a loaded machine inflates wall time, much less CPU
time), peak RSS of each process (GNU time; onnxruntime's includes Python and numpy), and the
ratios
(onnxruntime / reelsmith: > 1 means reelsmith is faster). The Rust side is timed with the
example binary under the same thread count (RAYON_NUM_THREADS).
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "crates/entity/tests/fixtures"))
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "isnet_speed")

# onnxruntime in its own process: process_time() covers all its threads.
ORT_CHILD = r"""
import sys, time, json, numpy as np, onnxruntime as ort
from PIL import Image
path, img, runs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
x = (np.asarray(Image.open(img).convert("RGB"), np.float32) - 128.0) / 256.0
x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
name = s.get_inputs()[0].name
s.run(None, {name: x})  # warm-up
walls, cpus = [], []
for _ in range(runs):
    c0 = time.process_time(); t0 = time.perf_counter()
    y = s.run(None, {name: x})[0]
    walls.append(time.perf_counter() - t0); cpus.append(time.process_time() - c0)
print(json.dumps({"wall": walls, "cpu": cpus, "mean_p": float(y.mean())}))
"""


def build_onnx(weights, out):
    import torch
    from isnet_torch import ISNetDIS, load_folded_safetensors

    m = load_folded_safetensors(ISNetDIS(unit=16), weights).eval()
    x = torch.zeros(1, 3, 1024, 1024)
    torch.onnx.export(m, x, out, input_names=["input"], output_names=["output"],
                      opset_version=17, dynamo=False)


def child_cpu(cmd, env):
    """Runs cmd under GNU time: (stdout, CPU seconds user + sys, peak RSS in MB)."""
    p = subprocess.run(["/usr/bin/time", "-f", "TIME %U %S %M"] + cmd, env=env, check=True,
                       capture_output=True, text=True)
    u, s_, m = p.stderr.strip().splitlines()[-1].split()[1:]
    return p.stdout, float(u) + float(s_), int(m) / 1024


def rust_base(binary, weights, img, threads):
    """CPU seconds of a process that loads the model and runs one (warm-up) forward."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    return child_cpu([binary, weights, img, "1"], env)[1]


def rust_once(binary, weights, img, threads, base):
    """One timed forward after a warm-up one: (wall s, CPU s, peak RSS MB); the CPU of the
    load and warm-up (`base`) is subtracted."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out, total, rss = child_cpu([binary, weights, img, "2"], env)
    walls = [float(l.split()[1]) for l in out.splitlines() if l.startswith("forward")]
    return walls[1], total - base, rss


def ort_once(onnx_path, img, threads):
    """One timed session.run after a warm-up: (wall s, CPU s, peak RSS MB, mean p)."""
    out, _, rss = child_cpu([sys.executable, "-c", ORT_CHILD, onnx_path, img, "1",
                             str(threads)], dict(os.environ))
    r = json.loads(out.strip().splitlines()[-1])
    return r["wall"][0], r["cpu"][0], rss, r["mean_p"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frame", default="chaplin_f0120")
    ap.add_argument("--bin", default=EXAMPLE, help="the isnet_speed example binary")
    a = ap.parse_args()
    shared = os.environ.get("REELSMITH_SHARED", os.path.join(ROOT, "..", "shared"))
    d = os.path.join(shared, "models", "isnet")
    weights = os.path.join(d, "isnet-general-use.safetensors")
    img = os.path.join(d, "frames", a.frame + "_1024.png")
    if not os.path.exists(a.bin):
        sys.exit(f"build first: cargo build --release -p reelsmith-entity --example isnet_speed")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, "isnet_f32.onnx")
        build_onnx(weights, onnx_path)
        base = rust_base(a.bin, weights, img, a.threads)
        ort, rust = [], []
        # Alternate the two so that both see the same (shared, varying) machine load.
        for _ in range(a.runs):
            ort.append(ort_once(onnx_path, img, a.threads))
            rust.append(rust_once(a.bin, weights, img, a.threads, base))
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    res = {
        "frame": a.frame, "threads": a.threads, "runs": a.runs,
        "loadavg": os.getloadavg(),
        "onnxruntime": {"wall_s_median": med(ort, 0), "cpu_s_median": med(ort, 1),
                        "peak_rss_mb": max(x[2] for x in ort), "mean_p": ort[0][3]},
        "reelsmith": {"wall_s_median": med(rust, 0), "cpu_s_per_forward_median": med(rust, 1),
                      "peak_rss_mb": max(x[2] for x in rust)},
    }
    res["ratio_wall"] = res["onnxruntime"]["wall_s_median"] / res["reelsmith"]["wall_s_median"]
    res["ratio_cpu"] = (res["onnxruntime"]["cpu_s_median"]
                        / res["reelsmith"]["cpu_s_per_forward_median"])
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
