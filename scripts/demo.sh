#!/usr/bin/env bash
# The main job on a fresh machine: installs what is needed, makes a sample video (or takes
# the one given as $1), builds reelsmith, and cuts the video's highlights into
# ./out/demo/highlights (clips, JSON report, CSV timeline, score plot, contact sheet).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-system.sh
mkdir -p out/demo
video="${1:-}"
if [ -z "$video" ]; then
  video=out/demo/sample.mp4
  if [ ! -s "$video" ]; then
    echo "generating a 24 s sample video with three shots at $video" >&2
    ffmpeg -v error -y \
      -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=8" \
      -f lavfi -i "mandelbrot=size=1280x720:rate=30,trim=duration=8" \
      -f lavfi -i "smptehdbars=size=1280x720:rate=30:duration=8" \
      -f lavfi -i "sine=frequency=440:duration=24" \
      -filter_complex "[0:v][1:v][2:v]concat=n=3:v=1:a=0,format=yuv420p[v]" \
      -map "[v]" -map 3:a -c:v libx264 -preset veryfast -crf 23 -c:a aac "$video"
  fi
fi
cargo build --release -p reelsmith-cli
bin="${CARGO_TARGET_DIR:-target}/release/reelsmith"
"$bin" probe "$video"
"$bin" shots "$video"
"$bin" highlights "$video" -o out/demo/highlights
echo "highlight clips, highlights.json, timeline.csv, similarity.csv, scores.png and contact_sheet.jpg are in out/demo/highlights" >&2
