"""The integration suite runs every test against each ComfyUI backend:

- ``emulator``: the ComfyUI test double in tests/emulator (ComfyUI 0.8.0's protocol), always;
- ``emulator-0.38``: its profile of the newer protocol (tests/emulator/versions/0.38), always;
- ``real``: a real ComfyUI checkout when ``COMFYUI_DIR`` is set (CI sets it; ``COMFYUI_PYTHON`` names
  its interpreter), otherwise skipped with the reason.

Tests that need a fault a real server cannot be made to produce on demand ask for ``faults``, which
skips on the real backend.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests

from tests.support.fake_runpod import FakeRunPod
from tests.support.faults import Faults
from tests.support.reference import REFERENCE
from tests.support.worker_process import EMULATOR_DIR, LocalApiWorker, free_port


@dataclass
class Backend:
    name: str
    comfyui_dir: Path
    comfyui_python: str | None
    models_dir: Path
    extra_args: str = ""
    classes: set[str] = field(default_factory=set)

    @property
    def is_real(self) -> bool:
        return self.name == "real"

    @property
    def is_emulator(self) -> bool:
        return self.name.startswith("emulator")

    def env(self, data_dir: Path, **overrides: Any) -> dict[str, str]:
        env = {
            "COMFYUI_DIR": str(self.comfyui_dir),
            "COMFYUI_PORT": str(free_port()),
            "COMFYUI_ARGS": self.extra_args,
            "COMFYUI_EXTRA_MODEL_PATHS": str(self.models_dir / "extra_model_paths.yaml"),
            "WORKER_DATA_DIR": str(data_dir),
            "RUNPOD_VOLUME_PATH": str(data_dir / "no-volume"),
            "COMFYUI_BOOT_TIMEOUT": "180",
            "LOG_LEVEL": "DEBUG",
        }
        if self.comfyui_python:
            env["COMFYUI_PYTHON"] = self.comfyui_python
        env.update({key.upper(): str(value) for key, value in overrides.items()})
        return env

    def require(self, *class_types: str) -> None:
        """Skip when this ComfyUI lacks a node class the test's workflow uses."""
        missing = [c for c in class_types if self.classes and c not in self.classes]
        if missing:
            pytest.skip(f"this ComfyUI ({self.name}) has no {', '.join(missing)} node")


def _make_models(root: Path, python: str | None, real: bool) -> None:
    """Random-weight models from ../shared/comfyui-reference/tools, so loaders have files to load."""
    (root / "upscale_models").mkdir(parents=True, exist_ok=True)
    (root / "checkpoints").mkdir(parents=True, exist_ok=True)
    upscaler = root / "upscale_models" / "tiny_2x.safetensors"
    if real:
        assert python is not None
        subprocess.run(
            [python, str(REFERENCE / "tools" / "make_tiny_upscaler.py"), str(upscaler)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    else:
        upscaler.write_bytes(b"random weights")
    (root / "extra_model_paths.yaml").write_text(
        f"tests:\n  base_path: {root}\n  upscale_models: upscale_models\n  checkpoints: checkpoints\n"
    )


@pytest.fixture(scope="session", params=["emulator", "emulator-0.38", "real"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    models = tmp_path_factory.mktemp(f"models-{request.param}")
    if request.param == "emulator":
        _make_models(models, None, real=False)
        return Backend("emulator", EMULATOR_DIR, None, models)
    if request.param == "emulator-0.38":
        # The newer protocol (ComfyUI ~0.38 on, as read from its source): tests/emulator/README.md.
        _make_models(models, None, real=False)
        return Backend("emulator-0.38", EMULATOR_DIR / "versions" / "0.38", None, models)
    comfyui_dir = os.environ.get("COMFYUI_DIR")
    if not comfyui_dir:
        pytest.skip(
            "real ComfyUI not configured: set COMFYUI_DIR (and COMFYUI_PYTHON) to run this suite against it"
        )
    python = os.environ.get("COMFYUI_PYTHON") or "python3"
    _make_models(models, python, real=True)
    return Backend(
        "real", Path(comfyui_dir), python, models, extra_args=os.environ.get("COMFYUI_ARGS", "--cpu")
    )


@pytest.fixture(scope="session")
def worker(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApiWorker]:
    """One worker per backend behind RunPod's local API server, shared by the tests that need no
    special settings."""
    data_dir = tmp_path_factory.mktemp(f"worker-{backend.name}")
    instance = LocalApiWorker(backend.env(data_dir))
    instance.data_dir = data_dir  # type: ignore[attr-defined]
    try:
        instance.wait_api()
        answer = instance.runsync(
            {
                "workflow": {
                    "1": {
                        "class_type": "EmptyImage",
                        "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
                    },
                    "2": {
                        "class_type": "SaveImage",
                        "inputs": {"images": ["1", 0], "filename_prefix": "warmup"},
                    },
                }
            },
            timeout=300,
        )
        assert answer["status"] == "COMPLETED", answer
        backend.classes = set(_object_info_classes(instance))
        yield instance
    finally:
        instance.stop()


def _object_info_classes(instance: LocalApiWorker) -> list[str]:
    import requests

    port = instance.env["COMFYUI_PORT"]
    return list(requests.get(f"http://127.0.0.1:{port}/object_info", timeout=30).json())


@pytest.fixture
def faults(backend: Backend, tmp_path: Path) -> Faults:
    if backend.is_real:
        pytest.skip(
            "fault injection needs the emulator: a real ComfyUI cannot crash, hang or drop its socket on demand"
        )
    return Faults(tmp_path / "faults.json")


@pytest.fixture
def make_worker(backend: Backend, tmp_path: Path) -> Iterator[Any]:
    """Start a worker with special settings; stopped at the end of the test."""
    started: list[LocalApiWorker] = []

    def start(wait_ready: bool = True, **settings: Any) -> LocalApiWorker:
        data_dir = tmp_path / f"data{len(started)}"
        instance = LocalApiWorker(backend.env(data_dir, **settings))
        instance.data_dir = data_dir  # type: ignore[attr-defined]
        started.append(instance)
        instance.wait_api()
        return instance

    yield start
    for instance in started:
        instance.stop()


@pytest.fixture
def emulator_only(backend: Backend) -> None:
    """For tests of the worker's own plumbing (delivery, result shape, CLI modes): they do not depend
    on ComfyUI's behaviour, so one backend is enough."""
    if backend.name != "emulator":
        pytest.skip(
            "worker-side behaviour, independent of the ComfyUI backend; covered with the 0.8.0 emulator"
        )


@pytest.fixture
def fake_runpod() -> Iterator[FakeRunPod]:
    """A stand-in for RunPod's job queue, for the worker's production loop."""
    server = FakeRunPod().start()
    yield server
    server.close()


class AttachedComfyUI(NamedTuple):
    url: str
    folders: Path
    #: The emulator's fault switches (None on a real ComfyUI).
    faults: Faults | None


@pytest.fixture
def running_comfyui(backend: Backend, tmp_path: Path) -> Iterator[AttachedComfyUI]:
    """A ComfyUI started by the test, not by the worker."""
    port = free_port()
    folders = tmp_path / "comfy"
    argv = [
        (backend.comfyui_python or "python3") if backend.is_real else sys.executable,
        str(backend.comfyui_dir / "main.py"),
        "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
        "--input-directory", str(folders / "input"),
        "--output-directory", str(folders / "output"),
        "--temp-directory", str(folders / "temp"),
        "--extra-model-paths-config", str(backend.models_dir / "extra_model_paths.yaml"),
        *backend.extra_args.split(),
    ]  # fmt: skip
    for kind in ("input", "output", "temp"):
        (folders / kind).mkdir(parents=True)
    faults = None if backend.is_real else Faults(tmp_path / "attached-faults.json")
    env = dict(os.environ)
    if faults is not None:
        env["COMFY_EMULATOR_FAULTS_FILE"] = str(faults.path)
    proc = subprocess.Popen(
        argv, cwd=backend.comfyui_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if requests.get(url + "/system_stats", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "ComfyUI did not start"
        time.sleep(0.2)
    try:
        yield AttachedComfyUI(url, folders, faults)
    finally:
        proc.terminate()
        proc.wait(20)
