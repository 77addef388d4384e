#!/usr/bin/env bash
# Container entrypoint: prepare the environment, then replace this shell with the worker.
#
# `exec` makes the worker PID 1's direct process, so RunPod's SIGTERM reaches it and it can stop
# ComfyUI cleanly. Nothing here imports torch: ComfyUI initialises CUDA once, in its own start.
set -euo pipefail

export RUNPOD_VOLUME_PATH="${RUNPOD_VOLUME_PATH:-/runpod-volume}"
export COMFYUI_DIR="${COMFYUI_DIR:-/comfyui}"
config_dir="${COMFY_SERVERLESS_CONFIG_DIR:-/etc/comfy-serverless}"
worker_python="${WORKER_PYTHON:-/opt/worker/bin/python}"

# tcmalloc returns freed memory to the system and fragments less than glibc malloc under
# ComfyUI's large, short-lived allocations. Use it when the image has it and nobody chose otherwise.
if [[ -z "${LD_PRELOAD:-}" && "${COMFY_SERVERLESS_TCMALLOC:-1}" != "0" ]]; then
    tcmalloc="$(ldconfig -p 2>/dev/null | awk '$1 ~ /^libtcmalloc_minimal\.so\.[0-9]+$/ { print $NF; exit }')"
    if [[ -n "${tcmalloc}" && -r "${tcmalloc}" ]]; then
        export LD_PRELOAD="${tcmalloc}"
    fi
fi

# Model folders on the network volume. The image ships a file for /runpod-volume; another volume
# path gets its own file, written by the same code that wrote the shipped one.
if [[ -z "${COMFYUI_EXTRA_MODEL_PATHS:-}" ]]; then
    if [[ "${RUNPOD_VOLUME_PATH%/}" == "/runpod-volume" && -r "${config_dir}/extra_model_paths.yaml" ]]; then
        COMFYUI_EXTRA_MODEL_PATHS="${config_dir}/extra_model_paths.yaml"
    else
        COMFYUI_EXTRA_MODEL_PATHS="${TMPDIR:-/tmp}/comfy-serverless-extra_model_paths.yaml"
        "${worker_python}" -m comfy_serverless.provisioning model-paths \
            --volume "${RUNPOD_VOLUME_PATH}" --output "${COMFYUI_EXTRA_MODEL_PATHS}"
    fi
    export COMFYUI_EXTRA_MODEL_PATHS
fi

# WORKER_MODE: `runpod` (the default) takes jobs from RunPod's queue; `http` serves them itself (a pod,
# any Docker host) on 0.0.0.0:HTTP_PORT, which then needs HTTP_TOKEN or HTTP_ALLOW_PUBLIC=true.
# ComfyUI listens on 127.0.0.1 in both.
case "${WORKER_MODE:-runpod}" in
    runpod)
        exec "${worker_python}" -m comfy_serverless "$@"
        ;;
    http)
        exec "${worker_python}" -m comfy_serverless.cli serve \
            --host "${HTTP_HOST:-0.0.0.0}" --port "${HTTP_PORT:-8000}" "$@"
        ;;
    *)
        echo "WORKER_MODE=${WORKER_MODE} is not a mode: use runpod (the default) or http" >&2
        exit 2
        ;;
esac
