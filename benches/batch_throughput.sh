#!/usr/bin/env bash
# Throughput of `reelsmith batch run` (one process, several videos at once) against the
# single-video commands run once per video in a shell loop, in the same run, on the same
# videos and jobs (shots, segments, highlights, score: the batch's default).
#
#   benches/batch_throughput.sh [BIN] [VIDEOS_DIR] [ROUNDS]
#
# BIN defaults to target/release/reelsmith, VIDEOS_DIR to $REELSMITH_SHARED/videos (every
# video file in it), ROUNDS to 2 (the loop and the batch alternate, so the machine's load
# weighs on both alike). Prints seconds, videos/min and frames/s per round and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/reelsmith}
videos=${2:-${REELSMITH_SHARED:-../shared}/videos}
rounds=${3:-2}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release -p reelsmith-cli" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
manifest=$work/videos.txt
find "$videos" -maxdepth 1 -type f \( -name '*.mp4' -o -name '*.mkv' -o -name '*.webm' -o -name '*.mov' \) | sort >"$manifest"
n=$(wc -l <"$manifest")
echo "$n videos from $videos; binary $bin; $(nproc) cores" >&2

now() { date +%s.%N; }

loop() {
  local out=$1
  mkdir -p "$out"
  while read -r v; do
    id=$(basename "${v%.*}")
    mkdir -p "$out/$id"
    "$bin" shots -q --json "$v" >"$out/$id/shots.json" || true
    "$bin" segments -q "$v" -o "$out/$id/segments" || true
    "$bin" highlights -q "$v" -o "$out/$id/highlights" || true
    "$bin" score -q --json "$v" >"$out/$id/score.json" || true
  done <"$manifest"
}

frames=""
for r in $(seq "$rounds"); do
  t0=$(now); loop "$work/loop$r"; t1=$(now)
  "$bin" batch run -q "$manifest" -o "$work/batch$r"; t2=$(now)
  "$bin" batch run -q --workers 1 "$manifest" -o "$work/batch1w$r"; t3=$(now)
  if [ -z "$frames" ]; then
    frames=$(python3 -c "import json,glob; print(sum(json.load(open(f))['frames'] for f in glob.glob('$work/batch$r/*/shots/shots.json')))")
  fi
  python3 - "$n" "$frames" "$t0" "$t1" "$t2" "$t3" "$r" <<'EOF'
import sys
n, frames = int(sys.argv[1]), int(sys.argv[2])
t0, t1, t2, t3 = map(float, sys.argv[3:7])
r = sys.argv[7]
rows = [("shell loop", t1 - t0), ("batch (auto workers)", t2 - t1), ("batch --workers 1", t3 - t2)]
for name, s in rows:
    print(f"round {r}: {name:22s} {s:7.1f} s  {n / s * 60:6.2f} videos/min  {frames / s:7.0f} frames/s")
print(f"round {r}: batch/loop speed-up {rows[0][1] / rows[1][1]:.2f}x (workers 1: {rows[0][1] / rows[2][1]:.2f}x)")
EOF
done
