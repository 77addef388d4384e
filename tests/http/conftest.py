"""The HTTP service as users run it: ``python -m comfy_serverless.cli serve`` in a subprocess, in front of
the ComfyUI emulator (tests/emulator) or, when ``COMFYUI_DIR`` is set, a real ComfyUI."""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from comfy_serverless.settings import Settings
from tests.support.worker_process import EMULATOR_DIR, WorkerProcess, free_port

#: Environment variables that are settings: taken from the test, never from the caller's shell.
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
_colors = itertools.count(0x102030, 7919)


def unique_color() -> int:
    """A colour no other job of this session used: ComfyUI caches node results across prompts."""
    return next(_colors) % 0xFFFFFF


def tiny(color: int | None = None, width: int = 16, prefix: str = "tiny") -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {
                "width": width,
                "height": 8,
                "batch_size": 1,
                "color": unique_color() if color is None else color,
            },
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


def blur_chain(blurs: int, size: int = 768, prefix: str = "blur") -> dict[str, Any]:
    """EmptyImage, ``blurs`` ImageBlur nodes of about 0.65 s each (the emulator's timing follows real
    ComfyUI's on a CPU), SaveImage: a job that runs long enough to watch, cancel or time out."""
    workflow: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": unique_color()},
        }
    }
    for index in range(blurs):
        workflow[str(index + 2)] = {
            "class_type": "ImageBlur",
            "inputs": {"image": [str(index + 1), 0], "blur_radius": 31, "sigma": 10.0},
        }
    workflow[str(blurs + 2)] = {
        "class_type": "SaveImage",
        "inputs": {"images": [str(blurs + 1), 0], "filename_prefix": prefix},
    }
    return workflow


def decode_png(item: dict[str, Any]) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(item["data"])))
    image.load()
    return image


def rgb(color: int) -> tuple[int, int, int]:
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF


def parse_events(response: requests.Response) -> list[dict[str, Any]]:
    """Every server-sent event of a streamed response, in order: ``{"id", "event", "data"}``."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if current:
                events.append(current)
            current = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        current[key] = json.loads(value) if key == "data" else (int(value) if key == "id" else value)
    if current:
        events.append(current)
    return events


class Service(WorkerProcess):
    """One ``comfy-serverless serve`` process, its log captured."""

    def __init__(self, env: dict[str, str], *, token: str | None = None, args: tuple[str, ...] = ()):
        self.port = free_port()
        # Settings come from the test alone, never from the caller's shell.
        outside = {key: value for key, value in os.environ.items() if key.upper() not in SETTING_NAMES}
        super().__init__(
            env, ["serve", "--port", str(self.port), *args], module="comfy_serverless.cli", base_env=outside
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        self.data_dir = Path(env["WORKER_DATA_DIR"])

    @property
    def comfyui_url(self) -> str:
        return f"http://127.0.0.1:{self.env['COMFYUI_PORT']}"

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if requests.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the service did not become ready:\n{self.log_text()}")

    def wait_log(self, fragment: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.log):
                if fragment in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"{fragment!r} not logged within {timeout} s:\n{self.log_text()[-4000:]}")

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.http.get(self.url + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 120)
        return self.http.post(self.url + path, **kwargs)

    def run(self, job_input: Any, **extra: Any) -> str:
        response = self.post("/run", json={"input": job_input, **extra})
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def runsync(self, job_input: Any, **extra: Any) -> dict[str, Any]:
        response = self.post("/runsync", json={"input": job_input, **extra})
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def status(self, job_id: str) -> dict[str, Any]:
        response = self.get(f"/status/{job_id}")
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def wait_status(self, job_id: str, *states: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.status(job_id)
            if answer["status"] in states:
                return answer
            assert time.monotonic() < deadline, f"job {job_id} still {answer['status']}: {answer}"
            time.sleep(0.05)

    def wait_running(self, job_id: str, class_type: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until the job's progress says a node of ``class_type`` runs."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.status(job_id)
            output = answer.get("output") or {}
            if answer["status"] == "IN_PROGRESS" and output.get("class_type") == class_type:
                return answer
            assert answer["status"] in ("IN_QUEUE", "IN_PROGRESS"), answer
            assert time.monotonic() < deadline, f"job {job_id} never ran {class_type}: {answer}"
            time.sleep(0.05)

    def terminate(self) -> None:
        """SIGTERM to the service alone (ComfyUI is its child: the service must stop it)."""
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM to the service alone, as a container stop sends it; the rest of its group only if it
        has not stopped within a minute."""
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(5)


def backend_env(backend: str, data_dir: Path, **settings: Any) -> dict[str, str]:
    """Settings for a service in front of ``backend`` (``emulator`` or ``real``)."""
    env = {
        "COMFYUI_PORT": str(free_port()),
        "WORKER_DATA_DIR": str(data_dir),
        "RUNPOD_VOLUME_PATH": str(data_dir / "no-volume"),
        "COMFYUI_BOOT_TIMEOUT": "180",
        "LOG_LEVEL": "INFO",
    }
    if backend == "emulator":
        env |= {"COMFYUI_DIR": str(EMULATOR_DIR), "COMFYUI_PYTHON": sys.executable, "COMFYUI_ARGS": ""}
    else:
        env |= {
            "COMFYUI_DIR": os.environ["COMFYUI_DIR"],
            "COMFYUI_PYTHON": os.environ.get("COMFYUI_PYTHON") or "python3",
            "COMFYUI_ARGS": os.environ.get("COMFYUI_ARGS", "--cpu"),
        }
    env.update({key.upper(): str(value) for key, value in settings.items()})
    return env


def start_service(
    backend: str, data_dir: Path, *, token: str | None = None, wait: bool = True, **settings: Any
) -> Service:
    service = Service(backend_env(backend, data_dir, **settings), token=token)
    if wait:
        try:
            service.wait_ready()
        except BaseException:
            service.stop()
            raise
    return service


def backend_params() -> list[Any]:
    """The emulator always; a real ComfyUI when COMFYUI_DIR names one."""
    return [
        "emulator",
        pytest.param(
            "real",
            marks=pytest.mark.skipif(
                not os.environ.get("COMFYUI_DIR"),
                reason="real ComfyUI not configured: set COMFYUI_DIR (and COMFYUI_PYTHON)",
            ),
        ),
    ]


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Any]:
    """Start services with special settings (emulator); all stopped at the end of the test."""
    started: list[Service] = []

    def start(wait: bool = True, **settings: Any) -> Service:
        service = start_service("emulator", tmp_path / f"data{len(started)}", wait=wait, **settings)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
