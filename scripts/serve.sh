#!/usr/bin/env bash
# Run the worker locally behind RunPod's development API server (POST /run, /runsync, /status).
# Uses the ComfyUI recorded by scripts/setup.sh unless COMFYUI_DIR is set; adds --cpu without a GPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -z "${COMFYUI_DIR:-}" && -f .comfyui.env ]]; then
    set -a; source .comfyui.env; set +a
fi
if [[ -z "${COMFYUI_ARGS+x}" ]] && ! nvidia-smi >/dev/null 2>&1; then
    export COMFYUI_ARGS="--cpu"
fi
exec .venv/bin/python -m comfy_serverless --rp_serve_api --rp_api_host "${HOST:-127.0.0.1}" --rp_api_port "${PORT:-8000}" "$@"
