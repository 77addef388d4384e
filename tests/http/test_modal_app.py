"""deploy/modal_app.py with the real ``modal`` package: it imports, its image is Dockerfile.serverless-slim
with that file's own pins, its settings come from the environment, and the ASGI application it serves
is the HTTP service's (run here in-process against the emulator). Deploying it needs a Modal account:
the first ``modal deploy`` is its real test (README, "Deploy on Modal")."""

from __future__ import annotations

import importlib.util
import re
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import modal
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from modal._utils.docker_utils import extract_copy_command_patterns
from modal.file_pattern_matcher import FilePatternMatcher

from comfy_serverless.http import create_app
from comfy_serverless.http.app import ServiceRuntime
from comfy_serverless.http.auth import BindRefused
from tests.support.worker_process import EMULATOR_DIR, REPO, free_port

from .conftest import SETTING_NAMES, tiny

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


def test_the_app_imports_with_real_modal_and_serves_one_web_endpoint(modal_app: ModuleType) -> None:
    assert isinstance(modal_app.app, modal.App) and modal_app.app.name == "comfy-serverless"
    assert isinstance(modal_app.web, modal.Function) and isinstance(modal_app.fetch_models, modal.Function)
    assert modal_app.web._is_web_endpoint() and not modal_app.fetch_models._is_web_endpoint()
    spec = modal_app.web._spec_
    assert spec.gpus == "L40S"
    assert list(spec.volumes) == ["/runpod-volume"]  # the RunPod network volume's path and layout
    assert modal_app.WORKER_ENV["RUNPOD_VOLUME_PATH"] == "/runpod-volume"
    assert modal_app.WORKER_ENV["COMFYUI_EXTRA_MODEL_PATHS"] == "/etc/comfy-serverless/extra_model_paths.yaml"
    assert modal_app.MAX_CONTAINERS == 1


def test_gpu_scaling_and_build_arguments_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFY_MODAL_GPU", "H100")
    monkeypatch.setenv("COMFY_MODAL_MIN_CONTAINERS", "1")
    monkeypatch.setenv("COMFY_MODAL_MAX_CONTAINERS", "3")
    monkeypatch.setenv("COMFY_MODAL_BUILD_ARGS", "COMFYUI_VERSION=0.8.0, CUDA_VERSION=12.6.3")
    try:
        module = load_modal_app("modal_app_env")
        assert module.web._spec_.gpus == "H100"
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


def test_the_served_app_is_the_http_service_and_runs_jobs(
    modal_app: ModuleType, emulator_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "executing locally without the Volume": expected here
        with pytest.raises(BindRefused, match="refusing to serve a Modal web endpoint without a token"):
            modal_app.web.local()
        monkeypatch.setenv("HTTP_TOKEN", "modal-token")
        served = modal_app.web.local()
    assert isinstance(served, FastAPI) and isinstance(served.state.runtime, ServiceRuntime)
    assert served.openapi() == create_app().openapi()  # the same routes, models and docs
    with TestClient(served) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.post("/runsync", json={"input": {"workflow": tiny()}}).status_code == 401
        answer = client.post(
            "/runsync", json={"input": {"workflow": tiny()}}, headers={"Authorization": "Bearer modal-token"}
        ).json()
        assert answer["status"] == "COMPLETED" and answer["output"]["outputs"][0]["type"] == "image"
        runtime = served.state.runtime
    assert runtime.worker is not None and not runtime.worker._thread.is_alive()  # ComfyUI stopped with it
