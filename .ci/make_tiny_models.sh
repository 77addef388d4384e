#!/usr/bin/env bash
# Make the random-weight models that some real-ComfyUI tests need (no downloads): a 2.3k-parameter 2x
# upscaler (ImageUpscaleWithModel -> `progress` messages) and, only when asked for, an SD1.5-architecture
# checkpoint (KSampler -> `progress` + binary preview frames; ~2 GB, ~40 s).
#
# Uses the generators in shared/comfyui-reference/tools (shared/ lies beside the repository checkout) and
# ComfyUI's own Python, so run .ci/install_comfyui.sh first (or point COMFYUI_DIR/COMFYUI_PYTHON at any
# ComfyUI install, 0.3.75 or 0.8.0: both produce the same files).
#
# Env:
#   COMFYUI_DIR, COMFYUI_PYTHON   required (as printed by install_comfyui.sh)
#   TINY_MODELS_DIR               output root (default ${COMFY_CACHE_DIR:-$HOME/.cache/comfy-serverless}/tiny-models)
#   COMFY_REFERENCE_DIR           default: <repo>/../shared/comfyui-reference
#   TINY_SD15=1                   also build checkpoints/random_sd15_arch.safetensors
# Idempotent: existing files are kept. Prints TINY_MODELS_DIR=... and TINY_MODELS_YAML=... (an
# extra_model_paths.yaml for --extra-model-paths-config) at the end.
set -euo pipefail

: "${COMFYUI_DIR:?set COMFYUI_DIR (see .ci/install_comfyui.sh)}"
: "${COMFYUI_PYTHON:?set COMFYUI_PYTHON (see .ci/install_comfyui.sh)}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REF="${COMFY_REFERENCE_DIR:-$repo/../shared/comfyui-reference}"
OUT="${TINY_MODELS_DIR:-${COMFY_CACHE_DIR:-$HOME/.cache/comfy-serverless}/tiny-models}"
log() { printf '[make_tiny_models %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

mkdir -p "$OUT/upscale_models" "$OUT/checkpoints"
up="$OUT/upscale_models/tiny_random_compact_x2.safetensors"
if [[ ! -s "$up" ]]; then
    log "building $up"
    "$COMFYUI_PYTHON" "$REF/tools/make_tiny_upscaler.py" "$OUT/upscale_models/.partial-upscaler.safetensors" >&2
    mv "$OUT/upscale_models/.partial-upscaler.safetensors" "$up"
fi
ck="$OUT/checkpoints/random_sd15_arch.safetensors"
if [[ "${TINY_SD15:-0}" == "1" && ! -s "$ck" ]]; then
    log "building $ck (~2 GB)"
    # The generator imports ComfyUI's modules, so it needs COMFYUI_DIR (it chdirs there itself).
    COMFYUI_DIR="$COMFYUI_DIR" "$COMFYUI_PYTHON" "$REF/tools/make_tiny_sd15_checkpoint.py" "$OUT/checkpoints/.partial-sd15.safetensors" >&2
    mv "$OUT/checkpoints/.partial-sd15.safetensors" "$ck"
fi
yaml="$OUT/extra_model_paths.yaml"
cat > "$yaml" <<EOF
tiny:
  base_path: $OUT
  checkpoints: checkpoints
  upscale_models: upscale_models
EOF
echo "TINY_MODELS_DIR=$OUT"
echo "TINY_MODELS_YAML=$yaml"
