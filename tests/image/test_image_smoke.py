"""Smoke test of a built image: the container as RunPod starts it, on the CPU.

Runs when ``COMFY_SERVERLESS_IMAGE`` names a built image (CircleCI sets it after each build, before the
push) and a Docker engine answers; skipped otherwise. It checks what a user of the image would notice:
the worker is the container's main process and stops cleanly on ``docker stop``; the start-up summary
names ComfyUI's version, the custom nodes and the volume layout (a wrong one with its fix); ComfyUI
runs with tcmalloc while the worker's own environment has no torch; images, video and audio come back
through ``/runsync``; a bad job gets an error naming the node, and the next job succeeds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.worker_process import REPO, free_port

log = logging.getLogger(__name__)
IMAGE = os.environ.get("COMFY_SERVERLESS_IMAGE", "")


def _docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def _engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return _docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


pytestmark = [
    pytest.mark.skipif(not IMAGE, reason="no image to test: set COMFY_SERVERLESS_IMAGE to a built image"),
    pytest.mark.skipif(
        bool(IMAGE) and not _engine_answers(), reason="no Docker engine answers `docker info`"
    ),
]


def _expected_comfyui_version() -> str:
    text = (REPO / "Dockerfile.serverless-slim").read_text(encoding="utf-8")
    match = re.search(r"^ARG COMFYUI_VERSION=(\S+)$", text, re.MULTILINE)
    assert match, "Dockerfile.serverless-slim pins COMFYUI_VERSION"
    return os.environ.get("EXPECT_COMFYUI_VERSION", match.group(1))


class Container:
    """The image running the worker behind RunPod's local API, on the host network."""

    def __init__(self, volume: Path) -> None:
        self.name = f"comfy-serverless-smoke-{uuid.uuid4().hex[:8]}"
        self.api_port = free_port()
        self.started = time.monotonic()
        _docker(
            "run",
            "--detach",
            "--name",
            self.name,
            "--network",
            "host",
            "--env",
            "COMFYUI_ARGS=--cpu",
            "--env",
            f"COMFYUI_PORT={free_port()}",
            "--volume",
            f"{volume}:/runpod-volume:ro",
            IMAGE,
            "--rp_serve_api",
            "--rp_api_host",
            "127.0.0.1",
            "--rp_api_port",
            str(self.api_port),
        )

    def logs(self) -> str:
        done = _docker("logs", self.name, check=False)
        return done.stdout + done.stderr

    def wait_for_log(self, text: str, timeout: float) -> float:
        """Seconds from `docker run` until ``text`` is in the log (streamed, no polling loop)."""
        with subprocess.Popen(
            ["docker", "logs", "--follow", self.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as follow:
            assert follow.stdout is not None
            deadline = time.monotonic() + timeout
            try:
                for line in follow.stdout:
                    if text in line:
                        return time.monotonic() - self.started
                    if time.monotonic() > deadline:
                        break
            finally:
                follow.kill()
        pytest.fail(f"{text!r} not in the container log within {timeout:.0f} s:\n{self.logs()[-4000:]}")

    def runsync(self, job_input: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(
            f"http://127.0.0.1:{self.api_port}/runsync", json={"input": job_input}, timeout=600
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def exec(self, script: str) -> str:
        return _docker("exec", self.name, "bash", "-c", script).stdout

    def remove(self) -> None:
        _docker("rm", "--force", self.name, check=False)


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    volume = tmp_path_factory.mktemp("volume")
    # The mistake users make most: model folders at the volume root instead of under models/.
    (volume / "checkpoints").mkdir()
    (volume / "checkpoints" / "mine.safetensors").write_bytes(b"\0" * 1024)
    os.chmod(volume, 0o755)
    running = Container(volume)
    try:
        seconds = running.wait_for_log("===== comfy-serverless start-up =====", timeout=600)
        log.info("%s: start-up summary %.1f s after `docker run` (CPU)", IMAGE, seconds)
        running.wait_for_log("=====================================", timeout=60)
        yield running
    finally:
        running.remove()


def test_start_up_summary_names_comfyui_nodes_and_the_wrong_volume_layout(container: Container) -> None:
    log = container.logs()
    assert f"ComfyUI {_expected_comfyui_version()}, ready after" in log
    assert re.search(r"Custom nodes loaded \(\d+\): .*websocket_image_save\.py", log)
    assert "(IMPORT FAILED)" not in log
    assert "Network volume: /runpod-volume: bare <folder> at the volume root - works, but" in log
    assert "fix: mkdir -p '/runpod-volume/models' && mv '/runpod-volume/checkpoints'" in log
    assert re.search(r"checkpoints +1 +/runpod-volume/checkpoints", log)


def test_worker_is_the_main_process_and_comfyui_runs_with_tcmalloc(container: Container) -> None:
    assert "comfy_serverless" in container.exec("tr '\\0' ' ' < /proc/1/cmdline")
    maps = container.exec(
        "for p in /proc/[0-9]*; do"
        " if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q 'comfyui/main.py'; then cat $p/maps; fi;"
        " done"
    )
    assert "libtcmalloc" in maps


def test_the_worker_environment_has_no_torch() -> None:
    """Only ComfyUI imports torch and initialises CUDA; the worker never pays for it a second time."""
    done = _docker(
        "run", "--rm", "--entrypoint", "/opt/worker/bin/python", IMAGE, "-c", "import torch", check=False
    )
    assert done.returncode != 0 and "No module named 'torch'" in done.stderr


NODE_SCRIPT = r"""
set -euo pipefail
git_commit() { git -c user.email=t@t -c user.name=t commit -q -m "$1"; }
mkdir -p /tmp/src/smoke-node && cd /tmp/src/smoke-node && git init -q -b main
printf 'import tomli\nNODE_CLASS_MAPPINGS = {}\n' > __init__.py
echo 'tomli==2.5.0' > requirements.txt
git add -A && git_commit pinned && pinned=$(git rev-parse HEAD)
echo 'raise ImportError("the branch tip was installed, not the pinned commit")' > __init__.py
git add -A && git_commit tip
mkdir -p /tmp/src/broken-node && cd /tmp/src/broken-node && git init -q -b main
echo 'import module_that_is_not_installed' > __init__.py
git add -A && git_commit broken && broken=$(git rev-parse HEAD)
printf 'nodes:\n  - repo: file:///tmp/src/smoke-node\n    commit: %s\n' "$pinned" > /tmp/good.yaml
cp /tmp/good.yaml /tmp/broken.yaml
printf '  - repo: file:///tmp/src/broken-node\n    commit: %s\n' "$broken" >> /tmp/broken.yaml
cd /
install() {
    PYTHONPATH=/opt/provisioning /opt/comfy/bin/python -m comfy_serverless.provisioning install-nodes \
        --manifest "$1" --workspace /comfyui --comfy /opt/comfy-cli/bin/comfy --python /opt/comfy/bin/python
}
echo "PINNED=$pinned"
install /tmp/good.yaml
echo "HEAD=$(git -C /comfyui/custom_nodes/smoke-node rev-parse HEAD)"
/opt/comfy/bin/python -c 'import tomli; print("TOMLI", tomli.__name__)'
rm -rf /comfyui/custom_nodes/smoke-node
if install /tmp/broken.yaml > /tmp/broken.log 2>&1; then echo "BROKEN-INSTALLED"; else echo "BROKEN-REFUSED"; fi
tail -n 5 /tmp/broken.log
"""


def test_custom_nodes_install_at_their_commit_inside_the_image() -> None:
    """The image's own comfy-cli and ComfyUI-Manager install a git node at its pinned commit, with its
    requirements, and the import test refuses a node that cannot import (as a build with a custom-node
    manifest would)."""
    done = _docker(
        "run",
        "--rm",
        "--network",
        "host",
        "--entrypoint",
        "bash",
        IMAGE,
        "-c",
        NODE_SCRIPT,
        timeout=600,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    pinned = re.search(r"PINNED=([0-9a-f]{40})", out)
    assert pinned, out[-4000:]
    assert f"HEAD={pinned.group(1)}" in out
    assert f"installed  file:///tmp/src/smoke-node@{pinned.group(1)[:12]}" in out
    assert "imported   smoke-node" in out and "TOMLI tomli" in out
    assert "BROKEN-REFUSED" in out
    assert "broken-node: No module named 'module_that_is_not_installed'" in out


IMAGE_JOB = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 255}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "smoke"}},
}
MEDIA_JOB = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 8, "color": 0}},
    "2": {"class_type": "ImageAddNoise", "inputs": {"image": ["1", 0], "seed": 2, "strength": 0.5}},
    "3": {"class_type": "EmptyAudio", "inputs": {"duration": 1.0, "sample_rate": 44100, "channels": 2}},
    "4": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 8.0, "audio": ["3", 0]}},
    "5": {
        "class_type": "SaveVideo",
        "inputs": {"video": ["4", 0], "filename_prefix": "smoke_video", "format": "auto", "codec": "auto"},
    },
    "6": {"class_type": "SaveAudio", "inputs": {"audio": ["3", 0], "filename_prefix": "smoke_audio"}},
}


def test_image_video_and_audio_come_back(container: Container) -> None:
    body = container.runsync({"workflow": IMAGE_JOB})
    assert body["status"] == "COMPLETED", body
    (image,) = body["output"]["outputs"]
    assert image["type"] == "image" and image["mime"] == "image/png" and image["data"]

    body = container.runsync({"workflow": MEDIA_JOB})
    assert body["status"] == "COMPLETED", json.dumps(body)[:2000]
    kinds = {o["type"]: o for o in body["output"]["outputs"]}
    assert kinds["video"]["mime"] == "video/mp4" and kinds["video"]["size_bytes"] > 0
    assert kinds["audio"]["mime"] == "audio/flac" and kinds["audio"]["size_bytes"] > 0


def test_a_bad_job_names_the_node_and_the_next_job_succeeds(container: Container) -> None:
    bad = {**IMAGE_JOB, "9": {"class_type": "NoSuchNode", "inputs": {}}}
    body = container.runsync({"workflow": bad})
    assert body["status"] == "FAILED"
    assert "9" in body["error"] and "NoSuchNode" in body["error"]
    assert container.runsync({"workflow": IMAGE_JOB})["status"] == "COMPLETED"


def test_docker_stop_stops_the_worker_and_comfyui_cleanly(container: Container) -> None:
    started = time.monotonic()
    _docker("stop", "--time", "30", container.name)
    log.info("docker stop took %.2f s", time.monotonic() - started)
    state = _docker("inspect", container.name, "--format", "{{.State.ExitCode}}").stdout.strip()
    assert state == "0", container.logs()[-3000:]
    assert "did not finish cleanly" not in container.logs()
