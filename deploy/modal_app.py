"""comfy-serverless on Modal: the HTTP service (``comfy_serverless.http.create_app``, the same application
``comfy-serverless serve`` runs) as a Modal ASGI web endpoint, its jobs run by autoscaled GPU containers,
models on a Modal Volume.

Two parts: ``web``, one CPU container holding the service (queue, job states, routes, webhooks: one
place, so ``/status`` and ``/cancel`` of any job reach it), and ``ComfyWorker``, the GPU containers, each
with a ComfyUI and the worker core, which Modal starts and stops with the load (``COMFY_MODAL_MIN_
CONTAINERS`` to ``COMFY_MODAL_MAX_CONTAINERS``, ``COMFY_MODAL_JOBS_PER_CONTAINER`` jobs each). The
service hands each job to one of them (``comfy_serverless.http.remote``): cancelling the job cancels the
Modal call, and progress comes back through a Modal Queue, one partition per job.

    modal deploy deploy/modal_app.py                                    # build and deploy
    modal run deploy/modal_app.py::fetch_models --model-set sdxl        # models into the volume

The image is built from ``Dockerfile.serverless-slim`` itself (the same ComfyUI release, PyTorch build,
comfy-cli, custom-node manifest and worker requirements as the RunPod images; ``--build-arg``-style
overrides below), plus the Python Modal runs functions with, which gets ``docker/requirements-worker.txt``
and this checkout's ``comfy_serverless`` package. Models live on a Volume mounted at /runpod-volume, with
the layout of the RunPod network volume (``models/<folder>/<file>``), so the image's
``extra_model_paths.yaml`` finds them unchanged.

Settings (read when you run ``modal deploy``; the README's "Deploy on Modal" has the table):
COMFY_MODAL_APP, COMFY_MODAL_GPU, COMFY_MODAL_VOLUME, COMFY_MODAL_SECRET, COMFY_MODAL_MIN_CONTAINERS,
COMFY_MODAL_MAX_CONTAINERS, COMFY_MODAL_JOBS_PER_CONTAINER, COMFY_MODAL_SCALEDOWN_WINDOW, COMFY_MODAL_TIMEOUT,
COMFY_MODAL_CONCURRENT_REQUESTS, and COMFY_MODAL_BUILD_ARGS (``NAME=VALUE,...`` for the Dockerfile). The
worker's own settings (HTTP_TOKEN, WEBHOOK_SECRET, CONCURRENCY, ...) come from the Modal Secret named by
COMFY_MODAL_SECRET. The first ``modal deploy`` is this file's real test: it cannot be deployed from CI's
machines, which have no Modal account.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import modal

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile.serverless-slim"
WORKER_REQUIREMENTS = REPO / "docker" / "requirements-worker.txt"
MODEL_MANIFEST = REPO / "docker" / "manifests" / "models.yaml"
#: Where the Volume is mounted: RunPod's network-volume path, which the image's settings expect.
VOLUME_PATH = "/runpod-volume"
#: The Python Modal runs the functions with (the image's own is Ubuntu 24.04's 3.12, in venvs).
PYTHON_VERSION = "3.12"
#: Environment of the functions: what docker/start.sh sets before it starts the worker.
WORKER_ENV = {
    "WORKER_MODE": "http",
    "RUNPOD_VOLUME_PATH": VOLUME_PATH,
    "COMFYUI_EXTRA_MODEL_PATHS": "/etc/comfy-serverless/extra_model_paths.yaml",
    "WORKER_DATA_DIR": "/tmp/comfy-serverless",
}


def _env(name: str, default: str) -> str:
    return os.environ.get(f"COMFY_MODAL_{name}") or default


def _env_int(name: str, default: int) -> int:
    value = _env(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"COMFY_MODAL_{name} must be a whole number, not {value!r}") from None


APP_NAME = _env("APP", "comfy-serverless")
GPU = _env("GPU", "L40S")
VOLUME_NAME = _env("VOLUME", "comfy-serverless-models")
SECRET_NAME = _env("SECRET", "comfy-serverless")
MIN_CONTAINERS = _env_int("MIN_CONTAINERS", 0)
#: GPU containers at most; each runs JOBS_PER_CONTAINER jobs at once (its CONCURRENCY).
MAX_CONTAINERS = _env_int("MAX_CONTAINERS", 4)
JOBS_PER_CONTAINER = _env_int("JOBS_PER_CONTAINER", 1)
SCALEDOWN_WINDOW = _env_int("SCALEDOWN_WINDOW", 300)
#: Seconds one request may take (a /runsync, an event stream).
TIMEOUT = _env_int("TIMEOUT", 3600)
#: HTTP requests the web container serves at once (status polls and event streams included).
CONCURRENT_REQUESTS = _env_int("CONCURRENT_REQUESTS", 100)
#: Seconds one wait for a job's next progress snapshot lasts before it is asked again (a long poll).
PROGRESS_WAIT = 50.0


def parse_build_args(text: str) -> dict[str, str]:
    """``NAME=VALUE,NAME=VALUE`` (COMFY_MODAL_BUILD_ARGS) as Dockerfile build arguments."""
    args: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name.strip()):
            raise ValueError(f"COMFY_MODAL_BUILD_ARGS: {item!r} is not NAME=VALUE")
        args[name.strip()] = value.strip()
    return args


BUILD_ARGS = parse_build_args(_env("BUILD_ARGS", ""))


def dockerfile_args(text: str) -> dict[str, str]:
    """The default of every ``ARG NAME=value`` of a Dockerfile."""
    found: dict[str, str] = {}
    for match in re.finditer(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*$", text, flags=re.MULTILINE):
        found.setdefault(match.group(1), match.group(2))
    return found


def modal_dockerfile(text: str, build_args: dict[str, str]) -> str:
    """The Dockerfile as Modal builds it: unchanged, except that ``${ARG}`` in COPY sources is spelled
    out (Modal picks the build context's files from COPY lines without expanding arguments), and the
    entrypoint is cleared (Modal starts its own process; /start.sh would run the RunPod worker)."""
    values = {**dockerfile_args(text), **build_args}

    def expand(line: re.Match[str]) -> str:
        return re.sub(
            r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: values.get(m.group(1), m.group(0)), line[0]
        )

    text = re.sub(r"^COPY\s.*$", expand, text, flags=re.MULTILINE)
    return text.rstrip("\n") + "\nENTRYPOINT []\n"


def _dockerfile_for_modal() -> Path:
    """Where the Dockerfile Modal builds is written (only where ``modal deploy`` runs)."""
    target = Path(tempfile.gettempdir()) / "comfy-serverless-modal" / DOCKERFILE.name
    if modal.is_local() and DOCKERFILE.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(modal_dockerfile(DOCKERFILE.read_text(), BUILD_ARGS))
    return target


image = (
    modal.Image.from_dockerfile(
        _dockerfile_for_modal(), context_dir=REPO, build_args=BUILD_ARGS, add_python=PYTHON_VERSION
    )
    .pip_install_from_requirements(str(WORKER_REQUIREMENTS))
    .env(WORKER_ENV)
    .add_local_file(MODEL_MANIFEST, "/opt/comfy-serverless/models.yaml")
    .add_local_python_source("comfy_serverless")
)

app = modal.App(APP_NAME)
volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)
secret = modal.Secret.from_name(SECRET_NAME)
progress_queue = modal.Queue.from_name(f"{APP_NAME}-progress", create_if_missing=True)


@app.cls(
    image=image,
    gpu=GPU,
    volumes={VOLUME_PATH: volume},
    secrets=[secret],
    min_containers=MIN_CONTAINERS,
    max_containers=MAX_CONTAINERS,
    scaledown_window=SCALEDOWN_WINDOW,
    timeout=TIMEOUT,
)
@modal.concurrent(max_inputs=JOBS_PER_CONTAINER)
class ComfyWorker:
    """One GPU container: ComfyUI and the worker core, booted when Modal starts the container."""

    @modal.enter()
    def boot(self) -> None:
        from comfy_serverless.logs import configure_logging
        from comfy_serverless.settings import Settings
        from comfy_serverless.worker import Worker

        self.settings = Settings(concurrency=JOBS_PER_CONTAINER)
        configure_logging(self.settings.log_level)
        self.worker = Worker(self.settings)
        self.worker.start()

    @modal.method()
    async def run(self, job_id: str, raw_input: Any, storage: Any) -> dict[str, Any]:
        """Run one job here; its answer for the web container (``http.remote``)."""
        from comfy_serverless.http.remote import run_remote

        async def send(snapshot: dict[str, Any]) -> None:
            await progress_queue.put.aio(snapshot, partition=job_id, partition_ttl=TIMEOUT)

        return await run_remote(
            self.worker, job_id, raw_input, storage, send, self.settings.progress_interval
        )

    @modal.exit()
    def stop(self) -> None:
        self.worker.stop()


class ModalCall:
    """A job running in a ComfyWorker container (``http.remote.RemoteCall``)."""

    def __init__(self, call: modal.FunctionCall[dict[str, Any]]):
        self.call = call

    async def result(self) -> dict[str, Any]:
        return await self.call.get.aio()

    async def cancel(self) -> None:
        await self.call.cancel.aio()


async def start_on_gpu(job_id: str, raw_input: Any, storage: Any) -> ModalCall:
    return ModalCall(await ComfyWorker().run.spawn.aio(job_id, raw_input, storage))


async def job_progress(job_id: str) -> AsyncIterator[dict[str, Any]]:
    """A job's progress snapshots as its container sends them (a long poll, woken by each one)."""
    while True:
        snapshot = await progress_queue.get.aio(partition=job_id, timeout=PROGRESS_WAIT)
        if isinstance(snapshot, dict):
            yield snapshot


def make_app(worker: Any = None) -> Any:
    """The HTTP service, its jobs run by the GPU containers (``worker`` replaces them in tests).
    Refuses to serve without HTTP_TOKEN (a Modal endpoint is public) unless HTTP_ALLOW_PUBLIC is set."""
    from comfy_serverless.http import create_app
    from comfy_serverless.http.auth import check_bind
    from comfy_serverless.http.remote import RemoteWorker
    from comfy_serverless.logs import configure_logging
    from comfy_serverless.settings import Settings

    # Job slots: every GPU container's; jobs beyond them wait in the service's queue (HTTP_QUEUE_SIZE).
    settings = Settings(concurrency=min(64, MAX_CONTAINERS * JOBS_PER_CONTAINER))
    configure_logging(settings.log_level)
    check_bind("0.0.0.0", settings, where="a Modal web endpoint")  # the public internet reaches it
    return create_app(settings, worker=worker or RemoteWorker(start_on_gpu, job_progress))


@app.function(
    image=image,
    secrets=[secret],
    # One container holds every job's state, so any request about a job reaches it. It only queues
    # and answers; the work is the GPU containers'.
    max_containers=1,
    scaledown_window=SCALEDOWN_WINDOW,
    timeout=TIMEOUT,
)
@modal.concurrent(max_inputs=CONCURRENT_REQUESTS)
@modal.asgi_app()
def web() -> Any:
    return make_app()


@app.function(image=image, volumes={VOLUME_PATH: volume}, secrets=[secret], timeout=6 * 3600)
def fetch_models(model_set: str = "sd15") -> None:
    """Download a set of docker/manifests/models.yaml into the volume (``models/<folder>/<name>``),
    each file verified against the manifest's sha256 (gated ones with HF_TOKEN from the secret)."""
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "comfy_serverless.provisioning",
            "fetch-models",
            "--manifest",
            "/opt/comfy-serverless/models.yaml",
            "--set",
            model_set,
            "--dest",
            f"{VOLUME_PATH}/models",
        ],
        check=True,
    )
    volume.commit()
