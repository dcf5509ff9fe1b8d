#!/usr/bin/env python3
"""Night versions of shot-detection corpora: every clip darkened, its ground truth kept.

Each clip of each CORPUS (a folder with videos and a ground_truth.json in the layout of
the shared one: the shared clips, or a half made by scripts/make_shot_corpus.py) is
re-encoded with its picture scaled towards black by GAIN, as an underexposed camera or a
night scene gives it: luma 16 + (Y - 16) * GAIN, chroma 128 + (C - 128) * GAIN (limited
range), every frame kept with its timestamp (-fps_mode passthrough), H.264 at CRF 18. The
cuts and gradual spans do not move, so the ground truth is copied unchanged.

Output: OUT/<name of CORPUS>-<GAIN * 100>/ with the clips (.mkv) and ground_truth.json,
one folder per corpus, readable by benches/shots_compare.py and benches/shots_eval.py.

Usage: scripts/make_dark_corpus.py OUT --gain 0.25 CORPUS [CORPUS ...]
Needs: ffmpeg on PATH.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path


def darken(src: Path, dst: Path, gain: float) -> None:
    lut = (f"lutyuv=y=16+(val-16)*{gain}:u=128+(val-128)*{gain}"
           f":v=128+(val-128)*{gain}")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", lut, "-an",
                    "-fps_mode", "passthrough", "-c:v", "libx264", "-crf", "18",
                    "-preset", "fast", str(dst)], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("corpora", nargs="+")
    ap.add_argument("--gain", type=float, default=0.25,
                    help="share of the picture's range kept (0 < GAIN < 1, default 0.25)")
    a = ap.parse_args()
    if not 0.0 < a.gain < 1.0:
        print(f"--gain {a.gain}: use a share between 0 and 1", file=sys.stderr)
        return 2
    for corpus in map(Path, a.corpora):
        gt_path = corpus / "ground_truth.json"
        if not gt_path.is_file():
            print(f"{corpus}: no ground_truth.json; give a corpus folder", file=sys.stderr)
            return 2
        gt = json.load(open(gt_path))
        dst = Path(a.out) / f"{corpus.name}-{round(a.gain * 100)}"
        dst.mkdir(parents=True, exist_ok=True)
        videos = {}
        for name, v in gt["videos"].items():
            out_name = Path(name).stem + ".mkv"
            darken(corpus / name, dst / out_name, a.gain)
            videos[out_name] = v
            print(f"  {dst.name}/{out_name}", flush=True)
        json.dump({"convention": gt.get("convention", ""),
                   "made_by": f"scripts/make_dark_corpus.py --gain {a.gain} from {corpus}",
                   "videos": videos}, open(dst / "ground_truth.json", "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
