#!/usr/bin/env bash
# Installs the system packages reelsmith builds against (Debian/Ubuntu): the FFmpeg
# development libraries, clang for bindgen, pkg-config, and the ffmpeg/ffprobe tools used by
# a few tests and the comparison scripts. Does nothing when everything is already there.
set -euo pipefail
pkgs=(pkg-config clang libclang-dev
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
      libavfilter-dev libavdevice-dev ffmpeg)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "reelsmith needs: ${missing[*]} (FFmpeg >= 5 development files, clang, pkg-config)." >&2
  echo "Install them with your system's package manager, then run this again." >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
