#!/usr/bin/env bash
# The FFGo proof at CPU scale (issue #16), driven through the reelsmith CLI:
#
#   1. a synthetic dataset of moving entities (scripts/ffgo_cpu_proof.py data): OLD entities
#      (plain circles and squares) for pre-training, NEW ones (striped or checked triangles,
#      crosses and diamonds) for the LoRA and the held-out examples; composed first frames
#      by `reelsmith compose` (FFGo's layout);
#   2. a tiny Wan2.2-I2V base (ffgo_cpu_proof.py base): the test fixture's text encoder and
#      VAE (random weights), a random 2-block transformer;
#   3. pre-training of that transformer on the OLD entities with reelsmith's own trainer: a
#      full-rank adapter on every dense layer, merged into the weights (ffgo_cpu_proof.py
#      merge) -> OUT/base;
#   4. the FFGo LoRA on 32 examples of NEW entities (`finetune prepare` + `finetune train`);
#   5. `finetune eval` on 6 held-out NEW examples: retention without and with the LoRA.
#
# Usage: scripts/ffgo_cpu_proof.sh [OUT]   (default OUT=target/ffgo_cpu_proof)
# Needs the reelsmith binary (REELSMITH_BIN, else CARGO_TARGET_DIR/{release,debug}/reelsmith),
# python3 with torch, diffusers, safetensors, pillow, numpy; ffmpeg; and the ISNet checkpoint
# (ISNET, default $REELSMITH_SHARED/models/isnet/isnet-general-use.safetensors).
# Steps can be scaled with PRE_STEPS, LORA_STEPS, SAMPLE_STEPS. ENTITY_ATTN=1 caches the
# composed frames' entities (the ISNet checkpoint + the tiny DINOv2 fixture) and trains the
# entity cross-attention with the LoRA (`--entity-attn`); REUSE_BASE=1 keeps an OUT/base
# from an earlier run (skips the dataset, base and pre-training steps).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/ffgo_cpu_proof}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${REELSMITH_BIN:-}
if [ -z "$BIN" ]; then
  for b in "$TARGET/release/reelsmith" "$TARGET/debug/reelsmith"; do
    if [ -x "$b" ]; then BIN=$b; break; fi
  done
fi
[ -n "$BIN" ] || { echo "build the CLI first (cargo build -p reelsmith-cli) or set REELSMITH_BIN" >&2; exit 1; }
ISNET=${ISNET:-${REELSMITH_SHARED:-/work/shared}/models/isnet/isnet-general-use.safetensors}
DINO=tests/support/fixtures/dinov2-tiny
PRE_STEPS=${PRE_STEPS:-400}
LORA_STEPS=${LORA_STEPS:-300}
SAMPLE_STEPS=${SAMPLE_STEPS:-20}
SIZE=96x64
FRAMES=17
ENTITY_ATTN=${ENTITY_ATTN:-0}
REUSE_BASE=${REUSE_BASE:-0}
mkdir -p "$OUT"
log() { echo "[$(date +%T)] $*"; }
if [ "$REUSE_BASE" = 1 ] && [ -d "$OUT/base" ]; then
  log "reusing $OUT/base and $OUT/data"
  rm -rf "$OUT/lora"
else
rm -rf "$OUT/pretrain" "$OUT/lora"

log "dataset"
python3 scripts/ffgo_cpu_proof.py data --out "$OUT" --bin "$BIN"
log "tiny base"
python3 scripts/ffgo_cpu_proof.py base --out "$OUT"

log "pre-training on the OLD entities ($PRE_STEPS steps)"
"$BIN" --quiet finetune prepare "$OUT/data/pretrain.json" --base "$OUT/base0" \
  --frames $FRAMES --size $SIZE -o "$OUT/cache_pretrain" --overwrite
cat > "$OUT/pretrain.toml" <<TOML
targets = ["*"]
rank = 64
alpha = 64.0
lr = 2e-3
max_grad_norm = 1.0
batch_size = 4
save_every = 0
steps = $PRE_STEPS
seed = 1
TOML
"$BIN" --quiet finetune train "$OUT/cache_pretrain" --config "$OUT/pretrain.toml" -o "$OUT/pretrain"
python3 scripts/ffgo_cpu_proof.py merge --out "$OUT"
fi

ENTITY_PREP=()
ENTITY_TRAIN=()
if [ "$ENTITY_ATTN" = 1 ]; then
  ENTITY_PREP=(--entities --weights "$ISNET" --embed-model-dir "$DINO")
  ENTITY_TRAIN=(--entity-attn)
fi

log "LoRA on the NEW entities ($LORA_STEPS steps)"
"$BIN" --quiet finetune prepare "$OUT/data/lora.json" --base "$OUT/base" \
  --frames $FRAMES --size $SIZE "${ENTITY_PREP[@]}" -o "$OUT/cache_lora" --overwrite
"$BIN" --quiet finetune train "$OUT/cache_lora" --rank 16 --alpha 16 --lr 1e-3 \
  --batch-size 4 --steps "$LORA_STEPS" --save-every 0 --seed 2 "${ENTITY_TRAIN[@]}" -o "$OUT/lora"

log "evaluation on the held-out NEW entities"
"$BIN" finetune eval "$OUT/data/heldout.json" --adapter "$OUT/lora" --base "$OUT/base" \
  --frames $FRAMES --size $SIZE --steps "$SAMPLE_STEPS" --guidance 1 --fps 4 \
  --weights "$ISNET" --embed-model-dir "$DINO" -o "$OUT/eval" --overwrite
log "done: $OUT/pretrain/loss.csv, $OUT/lora/loss.csv, $OUT/eval/eval.csv"
