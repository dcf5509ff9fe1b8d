#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the system packages, points the
# tests at the shared test media (../shared beside the checkout, when present), then runs
# cargo test over the workspace. Tests that need the media skip with a printed reason when
# it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-system.sh
if [ -z "${REELSMITH_SHARED:-}" ] && [ -d ../shared/videos ]; then
  REELSMITH_SHARED="$(cd ../shared && pwd)"
  export REELSMITH_SHARED
fi
echo "REELSMITH_SHARED=${REELSMITH_SHARED:-<unset: media tests will skip>}" >&2
cargo test --workspace
