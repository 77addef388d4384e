"""deploy/modal_app.py with the real ``modal`` package: it imports, its image is Dockerfile.serverless-slim
with that file's own pins, its settings come from the environment, and the ASGI application it serves
is the HTTP service's, its jobs handed to GPU containers (run here in process: the GPU side's half on a
worker core of its own, against the emulator). Deploying it needs a Modal account:
the first ``modal deploy`` is its real test (README, "Deploy on Modal")."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import modal
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from modal._utils.docker_utils import extract_copy_command_patterns
from modal.file_pattern_matcher import FilePatternMatcher

from comfy_serverless.http import create_app
from comfy_serverless.http.app import ServiceRuntime
from comfy_serverless.http.auth import BindRefused
from comfy_serverless.http.remote import RemoteWorker, run_remote
from comfy_serverless.settings import Settings
from comfy_serverless.worker import Worker
from tests.support.faults import Faults
from tests.support.worker_process import EMULATOR_DIR, REPO, free_port

from .conftest import SETTING_NAMES, blur_chain, decode_png, rgb, tiny, unique_color

SLIM = REPO / "Dockerfile.serverless-slim"


def load_modal_app(name: str = "modal_app_under_test") -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "deploy" / "modal_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def modal_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    for name in ("APP", "GPU", "VOLUME", "SECRET", "MAX_CONTAINERS", "BUILD_ARGS"):
        monkeypatch.delenv(f"COMFY_MODAL_{name}", raising=False)
    yield load_modal_app()
    sys.modules.pop("modal_app_under_test", None)


def arg_defaults(text: str) -> dict[str, str]:
    """Every ``ARG NAME=default`` of a Dockerfile, read independently of modal_app's own parser."""
    joined = re.sub(r"\\\n", " ", text)
    found: dict[str, str] = {}
    for line in joined.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "ARG" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            found.setdefault(name, value)
    return found


def gpu_spec(module: ModuleType) -> Any:
    """The GPU containers' Modal spec (the ComfyWorker class's service function)."""
    return module.ComfyWorker._get_class_service_function()._spec_


def test_one_web_container_holds_the_jobs_and_gpu_containers_run_them(modal_app: ModuleType) -> None:
    assert isinstance(modal_app.app, modal.App) and modal_app.app.name == "comfy-serverless"
    assert isinstance(modal_app.web, modal.Function) and isinstance(modal_app.fetch_models, modal.Function)
    assert modal_app.web._is_web_endpoint() and not modal_app.fetch_models._is_web_endpoint()
    assert isinstance(modal_app.ComfyWorker, modal.Cls)
    # The web container only queues and answers: no GPU, no models.
    assert modal_app.web._spec_.gpus is None and list(modal_app.web._spec_.volumes) == []
    spec = gpu_spec(modal_app)
    assert spec.gpus == "L40S"
    assert list(spec.volumes) == ["/runpod-volume"]  # the RunPod network volume's path and layout
    assert modal_app.WORKER_ENV["RUNPOD_VOLUME_PATH"] == "/runpod-volume"
    assert modal_app.WORKER_ENV["COMFYUI_EXTRA_MODEL_PATHS"] == "/etc/comfy-serverless/extra_model_paths.yaml"
    assert (modal_app.MAX_CONTAINERS, modal_app.JOBS_PER_CONTAINER) == (4, 1)


def test_gpu_scaling_and_build_arguments_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_MODAL_GPU", "H100")
    monkeypatch.setenv("COMFY_MODAL_MIN_CONTAINERS", "1")
    monkeypatch.setenv("COMFY_MODAL_MAX_CONTAINERS", "3")
    monkeypatch.setenv("COMFY_MODAL_BUILD_ARGS", "COMFYUI_VERSION=0.8.0, CUDA_VERSION=12.6.3")
    try:
        module = load_modal_app("modal_app_env")
        assert gpu_spec(module).gpus == "H100"
        assert (module.MIN_CONTAINERS, module.MAX_CONTAINERS) == (1, 3)
        assert module.BUILD_ARGS == {"COMFYUI_VERSION": "0.8.0", "CUDA_VERSION": "12.6.3"}
        monkeypatch.setenv("COMFY_MODAL_MAX_CONTAINERS", "many")
        with pytest.raises(ValueError, match="COMFY_MODAL_MAX_CONTAINERS must be a whole number, not 'many'"):
            load_modal_app("modal_app_bad")
        with pytest.raises(ValueError, match="'COMFYUI_VERSION' is not NAME=VALUE"):
            module.parse_build_args("COMFYUI_VERSION")
    finally:
        monkeypatch.undo()
        for name in ("modal_app_env", "modal_app_bad"):
            sys.modules.pop(name, None)
        load_modal_app("modal_app_reset")  # the default Dockerfile back in place for the next test
        sys.modules.pop("modal_app_reset", None)


def test_the_image_is_the_slim_dockerfile_with_its_own_pins(modal_app: ModuleType) -> None:
    original = SLIM.read_text()
    built = Path(modal_app._dockerfile_for_modal()).read_text()
    assert built == modal_app.modal_dockerfile(original, {})
    # Every pin is the Dockerfile's: ComfyUI, comfy-cli, Manager, PyTorch, CUDA base, node manifest.
    pins = arg_defaults(original)
    assert arg_defaults(built) == pins
    for name in (
        "COMFYUI_VERSION",
        "COMFY_CLI_VERSION",
        "COMFYUI_MANAGER_VERSION",
        "TORCH_VERSION",
        "CUDA_VERSION",
    ):
        assert name in pins and modal_app.BUILD_ARGS.get(name) is None
    # Nothing else differs: the one COPY whose source is a build argument is spelled out for Modal's
    # context, and the RunPod entrypoint is cleared.
    manifest = pins["CUSTOM_NODES_MANIFEST"]
    assert (
        built
        == original.replace("COPY ${CUSTOM_NODES_MANIFEST} ", f"COPY {manifest} ").rstrip("\n")
        + "\nENTRYPOINT []\n"
    )
    # Every file Modal will put in the build context exists and is not excluded by .dockerignore.
    ignored = FilePatternMatcher(*(REPO / ".dockerignore").read_text().splitlines())
    for source in extract_copy_command_patterns(built.splitlines()):
        assert (REPO / source).exists(), source
        assert not ignored(Path(source.rstrip("/"))), source
    assert modal_app.WORKER_REQUIREMENTS == REPO / "docker" / "requirements-worker.txt"
    assert modal_app.MODEL_MANIFEST == REPO / "docker" / "manifests" / "models.yaml"


@pytest.fixture
def emulator_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.upper() in SETTING_NAMES:
            monkeypatch.delenv(name)
    for name, value in {
        "COMFYUI_DIR": str(EMULATOR_DIR),
        "COMFYUI_PYTHON": sys.executable,
        "COMFYUI_PORT": str(free_port()),
        "WORKER_DATA_DIR": str(tmp_path / "data"),
        "RUNPOD_VOLUME_PATH": str(tmp_path / "no-volume"),
    }.items():
        monkeypatch.setenv(name, value)


def test_the_served_app_is_the_http_service_with_jobs_run_remotely(
    modal_app: ModuleType, emulator_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "executing locally without the Volume": expected here
        with pytest.raises(BindRefused, match="refusing to serve a Modal web endpoint without a token"):
            modal_app.web.local()
        monkeypatch.setenv("HTTP_TOKEN", "modal-token")
        monkeypatch.setenv("COMFY_MODAL_MAX_CONTAINERS", "3")
        served = load_modal_app("modal_app_served").web.local()
    sys.modules.pop("modal_app_served", None)
    assert isinstance(served, FastAPI) and isinstance(served.state.runtime, ServiceRuntime)
    assert served.openapi() == create_app().openapi()  # the same routes, models and docs
    runtime = served.state.runtime
    assert isinstance(runtime.worker, RemoteWorker)
    assert runtime.settings.concurrency == 3  # a job slot per GPU container
    with TestClient(served) as client:
        auth = {"Authorization": "Bearer modal-token"}
        # Ready at once: the GPU containers start on demand, none is running here.
        assert client.get("/ready").json() == {"ready": True}
        names = [t["name"] for t in client.get("/templates", headers=auth).json()["templates"]]
        assert names == sorted(p.stem for p in (REPO / "workflows").glob("*.yaml"))


class LocalGpu:
    """What a ComfyWorker container does, in this process: the GPU side's half (``run_remote``) on a
    worker core of its own, progress through a queue per job."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self.cancelled: list[str] = []

    async def start(self, job_id: str, raw_input: Any, storage: Any) -> Any:
        gpu = self

        async def send(snapshot: dict[str, Any]) -> None:
            await self.queues[job_id].put(snapshot)

        task = asyncio.ensure_future(run_remote(self.worker, job_id, raw_input, storage, send, 0.0))

        class Call:
            async def result(self) -> dict[str, Any]:
                return await task

            async def cancel(self) -> None:
                gpu.cancelled.append(job_id)
                task.cancel()

        return Call()

    async def progress(self, job_id: str) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.queues[job_id].get()


@pytest.fixture
def remote_service(
    modal_app: ModuleType, emulator_settings: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[TestClient, LocalGpu, Faults]]:
    faults = Faults(tmp_path / "faults.json")
    monkeypatch.setenv("COMFY_EMULATOR_FAULTS_FILE", str(faults.path))
    core = Worker(Settings())
    core.start()
    gpu = LocalGpu(core)
    monkeypatch.setenv("HTTP_TOKEN", "modal-token")
    monkeypatch.setenv("PROGRESS_INTERVAL", "0")  # every snapshot, so a short job still shows some
    monkeypatch.setenv("WORKER_DATA_DIR", str(tmp_path / "web"))  # the web container's own disk
    try:
        with TestClient(modal_app.make_app(RemoteWorker(gpu.start, gpu.progress))) as client:
            client.headers["Authorization"] = "Bearer modal-token"
            yield client, gpu, faults
    finally:
        core.stop()


def test_remote_jobs_return_the_workers_results_progress_and_errors(remote_service: Any) -> None:
    client, gpu, _ = remote_service
    color = unique_color()
    answer = client.post("/runsync", json={"input": {"workflow": tiny(color, width=24)}}).json()
    assert answer["status"] == "COMPLETED", answer
    [image] = answer["output"]["outputs"]
    assert image["node_id"] == "2" and decode_png(image).size == (24, 8)
    assert decode_png(image).getpixel((0, 0))[:3] == rgb(color)
    # Progress of a multi-node job comes back from the GPU side, in order, then the result.
    job_id = client.post("/run", json={"input": {"workflow": blur_chain(2)}}).json()["id"]
    with client.stream("GET", f"/jobs/{job_id}/events") as stream:
        lines = [line for line in stream.iter_lines() if line.startswith(("event: ", "data: "))]
    kinds = [line.removeprefix("event: ") for line in lines[::2]]
    data = [json.loads(line.removeprefix("data: ")) for line in lines[1::2]]
    assert kinds[-1] == "result" and data[-1]["status"] == "COMPLETED"
    running = [
        d for kind, d in zip(kinds, data, strict=True) if kind == "progress" and d["stage"] == "running"
    ]
    assert {d["class_type"] for d in running} >= {"ImageBlur"}, data
    assert [d["nodes_done"] for d in running] == sorted(d["nodes_done"] for d in running)
    # The worker's own error, its type and details intact.
    bad = {"1": {"class_type": "ImageScale", "inputs": {"image": ["9", 0]}}}
    failed = client.post("/runsync", json={"input": {"workflow": bad}}).json()
    assert failed["status"] == "FAILED"
    assert failed["output"]["error_type"] == "workflow_validation_failed", failed
    assert gpu.cancelled == []


def test_remote_jobs_time_out_and_cancel_on_the_gpu_side(remote_service: Any) -> None:
    client, gpu, faults = remote_service
    faults.set(node_delay_s={"ImageBlur": 5})
    answer = client.post(
        "/runsync", json={"input": {"workflow": blur_chain(1, size=64), "timeout": 1}}
    ).json()
    assert answer["status"] == "TIMED_OUT" and answer["output"]["error_type"] == "timeout", answer
    job_id = client.post("/run", json={"input": {"workflow": blur_chain(1, size=64)}}).json()["id"]
    deadline = time.monotonic() + 30
    while client.get(f"/status/{job_id}").json()["status"] != "IN_PROGRESS":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.post(f"/cancel/{job_id}").json()["status"] == "CANCELLED"
    deadline = time.monotonic() + 30
    while gpu.cancelled != [job_id]:
        assert time.monotonic() < deadline, gpu.cancelled
        time.sleep(0.05)
    faults.set()
    assert client.post("/runsync", json={"input": {"workflow": tiny()}}).json()["status"] == "COMPLETED"
