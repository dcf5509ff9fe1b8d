#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ for a bounded time each (not in CI): probing,
# decoding, seeking and cutting arbitrary bytes (probe_decode), and reading arbitrary text
# as every pipeline's configuration (config). Findings land in fuzz/artifacts/TARGET/.
#
# Usage: benches/fuzz.sh [SECONDS_PER_TARGET (default 300)] [TARGET...]
#   FUZZ_SANITIZER=address  build with AddressSanitizer (default: none, faster; a panic
#                           is found either way)
#   FUZZ_JOBS=N             parallel fuzzing processes per target (default 1)
#
# Needs `cargo install cargo-fuzz` and FFmpeg's development libraries (as the workspace).
# cargo-fuzz wants nightly compiler flags: the stable compiler takes them with
# RUSTC_BOOTSTRAP=1, set here, so no nightly toolchain is needed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(probe_decode config)
export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-none}
jobs=${FUZZ_JOBS:-1}
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 1; }

# Seeds: tiny valid files in several containers and codecs (first byte: the target's mode
# byte), and configurations of every pipeline.
mkdir -p seeds/probe_decode seeds/config
if [ -z "$(ls -A seeds/probe_decode)" ]; then
  tmp=$(mktemp -d)
  src="testsrc=size=32x16:rate=10:duration=0.5"
  ffmpeg -v error -f lavfi -i "$src" -f lavfi -i sine=duration=0.5 -c:v libx264 -preset ultrafast -c:a aac -shortest "$tmp/a.mp4"
  ffmpeg -v error -f lavfi -i "$src" -c:v libx264 -preset ultrafast -video_track_timescale 1 "$tmp/tb1.mp4"
  ffmpeg -v error -f lavfi -i "$src" -f lavfi -i sine=duration=0.5:sample_rate=8000 -c:v mpeg4 -c:a pcm_s16le -shortest "$tmp/b.mkv"
  ffmpeg -v error -f lavfi -i "$src" -c:v mjpeg "$tmp/c.avi"
  ffmpeg -v error -f lavfi -i "$src" -pix_fmt yuv420p "$tmp/d.y4m"
  ffmpeg -v error -f lavfi -i "$src" -frames:v 1 "$tmp/e.png"
  ffmpeg -v error -f lavfi -i "$src" "$tmp/f.gif"
  ffmpeg -v error -f lavfi -i "$src" -c:v libvpx-vp9 -deadline realtime "$tmp/g.webm" 2>/dev/null || true
  for f in "$tmp"/*; do
    for mode in 00 45 86 c1 d3; do
      { printf "\\x$mode"; cat "$f"; } > "seeds/probe_decode/$(basename "$f")-$mode"
    done
  done
  rm -rf "$tmp"
fi
if [ -z "$(ls -A seeds/config)" ]; then
  printf '\x00top_k = 3\nfps = 2.5\n[score.weights]\nsharpness = 0.5\n' > seeds/config/highlights.toml
  printf '\x00fps = 2.0\nmin_seconds = 1\nmax_seconds = 9\naudio = false\nmodel = { dir = "m" }\n' > seeds/config/segments.toml
  printf '\x00method = "seams"\nquantile = 0.5\n[analysis]\nwidth = 32\nheight = 18\n' > seeds/config/keyframes.toml
  printf '\x00[detection]\ncut_ratio = 2.5\nmin_shot_len = 4\ngradual = true\n' > seeds/config/shots.toml
  printf '\x00fps = 1\nprompts = ["a"]\n[score.sharpness_norm.percentile]\nlow = 5\nhigh = 95\nlog = true\n' > seeds/config/score.toml
  printf '\x01{"top_k": 2, "score": {"weights": {"aesthetics": 0.1}}, "model": {"hub": "x"}}' > seeds/config/highlights.json
  printf '\x01{"fps": 2, "batch": 4, "cache": "c"}' > seeds/config/embed.json
fi
printf '"fps"\n"top_k"\n"score"\n"weights"\n"model"\n"dir"\n"hub"\n"nan"\n"inf"\n"true"\n"="\n"["\n"]"\n"{"\n"}"\n"\\""\n"1e308"\n"-1"\n"detection"\n"analysis"\n"percentile"\n' > config.dict

cargo fuzz build -O -s "$sanitizer" 2>&1 | tail -3
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  extra=()
  [ "$t" = config ] && extra=(-dict=config.dict)
  echo "== $t: $secs s" >&2
  cargo fuzz run -O -s "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -max_len=262144 \
    -jobs="$jobs" -workers="$jobs" -print_final_stats=1 "${extra[@]}" 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|stat::|==[0-9]+== ERROR|SUMMARY|thread '|Done )|panicked|artifact_prefix|Test unit written" || true
  found=$(ls "artifacts/$t" | wc -l)
  echo "$t: $(ls "corpus/$t" | wc -l) corpus entries, $found findings in fuzz/artifacts/$t" >&2
  [ "$found" -eq 0 ] || status=1
done
exit $status
