#!/usr/bin/env bash
# Everything CI checks: set-up, lint, format, types, then every test against the emulator and a real
# ComfyUI (the one scripts/setup.sh installs, or COMFYUI_DIR/COMFYUI_PYTHON if set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
set -a; source .comfyui.env; set +a
.venv/bin/ruff check src tests benchmarks deploy
.venv/bin/ruff format --check src tests benchmarks deploy
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
