"""docker/start.sh, run for real with bash against temporary folders and stand-ins for the image's tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO

START = REPO / "docker" / "start.sh"


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Path]:
    """A fake ldconfig and a fake worker python that records how it was started."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    lib = tmp_path / "lib" / "libtcmalloc_minimal.so.4"
    lib.parent.mkdir()
    lib.write_bytes(b"")
    (bin_dir / "ldconfig").write_text(
        "#!/bin/sh\n"
        'echo "32 libs found in cache"\n'
        f'[ -n "$FAKE_TCMALLOC" ] && echo "\tlibtcmalloc_minimal.so.4 (libc6,x86-64) => {lib}"\n'
        'echo "\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6"\n'
        "exit 0\n"
    )
    record = tmp_path / "record.json"
    python = bin_dir / "worker-python"
    python.write_text(
        "#!/bin/sh\n"
        "# provisioning helpers run for real; the worker itself only records its start\n"
        'if [ "$1" = "-m" ] && [ "$2" = "comfy_serverless.provisioning" ]; then\n'
        f'  exec "{sys.executable}" "$@"\n'
        "fi\n"
        f'exec "{sys.executable}" -c \'import json, os, sys; '
        f'json.dump({{"argv": sys.argv[1:], "pid": os.getpid(), "env": dict(os.environ)}}, '
        f'open("{record}", "w"))\' "$@"\n'
    )
    for tool in (bin_dir / "ldconfig", python):
        tool.chmod(0o755)
    config = tmp_path / "etc"
    config.mkdir()
    (config / "extra_model_paths.yaml").write_text("shipped: {}\n")
    return {"bin": bin_dir, "python": python, "record": record, "config": config, "lib": lib, "tmp": tmp_path}


def run_start(sandbox: dict[str, Path], *args: str, **env: str) -> tuple[int, dict[str, Any]]:
    base = {
        "PATH": f"{sandbox['bin']}:/usr/bin:/bin",
        "WORKER_PYTHON": str(sandbox["python"]),
        "COMFY_SERVERLESS_CONFIG_DIR": str(sandbox["config"]),
        "TMPDIR": str(sandbox["tmp"]),
        "PYTHONPATH": str(REPO / "src"),
    }
    proc = subprocess.Popen(["bash", str(START), *args], env={**base, **env})
    assert proc.wait(timeout=60) == 0
    return proc.pid, json.loads(sandbox["record"].read_text())


def test_execs_the_worker_with_its_arguments(sandbox: dict[str, Path]) -> None:
    pid, record = run_start(sandbox, "--rp_serve_api", "--rp_api_host", "0.0.0.0")
    assert record["argv"] == ["-m", "comfy_serverless", "--rp_serve_api", "--rp_api_host", "0.0.0.0"]
    assert record["pid"] == pid  # exec: the worker replaced the shell, so it receives the signals
    env = record["env"]
    assert env["RUNPOD_VOLUME_PATH"] == "/runpod-volume" and env["COMFYUI_DIR"] == "/comfyui"
    assert env["COMFYUI_EXTRA_MODEL_PATHS"] == str(sandbox["config"] / "extra_model_paths.yaml")


def test_tcmalloc_is_preloaded_only_when_present_and_not_chosen_otherwise(sandbox: dict[str, Path]) -> None:
    _, record = run_start(sandbox, FAKE_TCMALLOC="1")
    assert record["env"]["LD_PRELOAD"] == str(sandbox["lib"])
    _, record = run_start(sandbox)
    assert "LD_PRELOAD" not in record["env"]
    _, record = run_start(sandbox, FAKE_TCMALLOC="1", COMFY_SERVERLESS_TCMALLOC="0")
    assert "LD_PRELOAD" not in record["env"]
    _, record = run_start(sandbox, FAKE_TCMALLOC="1", LD_PRELOAD="/opt/other.so")
    assert record["env"]["LD_PRELOAD"] == "/opt/other.so"


def test_other_volume_path_gets_a_generated_model_paths_file(sandbox: dict[str, Path]) -> None:
    _, record = run_start(sandbox, RUNPOD_VOLUME_PATH="/mnt/models-volume")
    generated = Path(record["env"]["COMFYUI_EXTRA_MODEL_PATHS"])
    assert generated.parent == sandbox["tmp"]
    config = yaml.safe_load(generated.read_text())
    assert config["runpod_volume"]["base_path"] == "/mnt/models-volume/models"
    assert config["runpod_volume_bare"]["base_path"] == "/mnt/models-volume"
    assert "diffusion_models" in config["runpod_volume"]


def test_explicit_model_paths_file_is_respected(sandbox: dict[str, Path]) -> None:
    _, record = run_start(sandbox, COMFYUI_EXTRA_MODEL_PATHS="/data/mine.yaml", RUNPOD_VOLUME_PATH="/x")
    assert record["env"]["COMFYUI_EXTRA_MODEL_PATHS"] == "/data/mine.yaml"


def test_script_never_imports_torch_or_checks_the_gpu_itself() -> None:
    code = "\n".join(line for line in START.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert "torch" not in code
    assert "nvidia-smi" not in code
    assert os.access(START, os.X_OK)


def test_http_mode_serves_on_all_interfaces_with_comfyui_left_on_loopback(sandbox: dict[str, Path]) -> None:
    pid, record = run_start(sandbox, WORKER_MODE="http")
    assert record["argv"] == ["-m", "comfy_serverless.cli", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert record["pid"] == pid  # exec: SIGTERM reaches the service, which drains its jobs
    assert record["env"]["COMFYUI_EXTRA_MODEL_PATHS"] == str(sandbox["config"] / "extra_model_paths.yaml")
    assert "COMFYUI_URL" not in record["env"]  # the service starts ComfyUI itself, on 127.0.0.1
    _, record = run_start(sandbox, WORKER_MODE="http", HTTP_HOST="127.0.0.1", HTTP_PORT="9100")
    assert record["argv"][-4:] == ["--host", "127.0.0.1", "--port", "9100"]
    _, record = run_start(sandbox, WORKER_MODE="runpod")
    assert record["argv"] == ["-m", "comfy_serverless"]


def test_an_unknown_mode_stops_before_starting_anything(sandbox: dict[str, Path]) -> None:
    env = {
        "PATH": f"{sandbox['bin']}:/usr/bin:/bin",
        "WORKER_PYTHON": str(sandbox["python"]),
        "COMFY_SERVERLESS_CONFIG_DIR": str(sandbox["config"]),
        "TMPDIR": str(sandbox["tmp"]),
        "WORKER_MODE": "pod",
    }
    result = subprocess.run(["bash", str(START)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "WORKER_MODE=pod is not a mode: use runpod (the default) or http\n"
    assert not sandbox["record"].exists()
