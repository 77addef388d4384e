"""Start the real worker (``python -m comfy_serverless``) as a subprocess and talk to it.

Local API mode goes through RunPod's own development server (``--rp_serve_api``), exactly as users run
it; production mode points the worker at a fake RunPod job queue (see fake_runpod.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
EMULATOR_DIR = REPO / "tests" / "emulator"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcess:
    """One worker process with its log captured."""

    def __init__(
        self,
        env: Mapping[str, str],
        args: list[str],
        cwd: Path | None = None,
        *,
        module: str = "comfy_serverless",
        base_env: Mapping[str, str] | None = None,
    ):
        full_env = dict(os.environ if base_env is None else base_env)
        full_env.update(env)
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.env = full_env
        self.args = args
        self.log: deque[str] = deque(maxlen=20000)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=full_env,
            cwd=cwd or REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.log.append(raw.decode("utf-8", "replace").rstrip())

    def log_text(self) -> str:
        return "\n".join(self.log)

    def wait_exit(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(5)


class LocalApiWorker(WorkerProcess):
    """The worker behind RunPod's local API server (``--rp_serve_api``)."""

    def __init__(self, env: Mapping[str, str], port: int | None = None):
        self.port = port or free_port()
        super().__init__(
            env, ["--rp_serve_api", "--rp_api_host", "127.0.0.1", "--rp_api_port", str(self.port)]
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()

    def wait_api(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if self.http.get(self.url + "/openapi.json", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"worker API did not come up:\n{self.log_text()}")

    def runsync(self, job_input: Any, timeout: float = 120) -> dict[str, Any]:
        """POST /runsync and return RunPod's answer ({id, status, output|error})."""
        response = self.http.post(self.url + "/runsync", json={"input": job_input}, timeout=timeout)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def run_async(self, job_input: Any) -> str:
        response = self.http.post(self.url + "/run", json={"input": job_input}, timeout=10)
        response.raise_for_status()
        return str(response.json()["id"])

    def status(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        response = self.http.post(self.url + f"/status/{job_id}", timeout=timeout)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer


def load_workflow(name: str) -> dict[str, Any]:
    """A workflow from ../shared/comfyui-reference/workflows."""
    path = REPO.parent / "shared" / "comfyui-reference" / "workflows" / f"{name}.json"
    workflow: dict[str, Any] = json.loads(path.read_text())
    return workflow
