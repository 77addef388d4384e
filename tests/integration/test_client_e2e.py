"""The client against the real worker behind RunPod's local development server (``--rp_serve_api``):
a tiny workflow comes back as the PNG ComfyUI wrote, and a workflow ComfyUI rejects raises the
workflow-validation exception with the worker's own sentence. That server answers ``/status`` only to
POST and runs the job inside that request; the client finds this out by itself."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from comfy_serverless.client import (
    AsyncEndpointClient,
    EndpointClient,
    EndpointNotFound,
    JobNotFound,
    PollPolicy,
    WorkflowValidationFailed,
)
from tests.support.reference import workflow

from .helpers import tiny

POLL = PollPolicy(initial=0.05, maximum=0.2)


@pytest.fixture
def worker_url(emulator_only: None, request: pytest.FixtureRequest) -> str:
    """The shared worker's URL, on the 0.8.0 emulator only: the client's behaviour does not depend on
    ComfyUI's, and asking for the worker only after that check starts no other backend's worker."""
    url: str = request.getfixturevalue("worker").url
    return url


def test_a_tiny_workflow_comes_back_as_the_png_comfyui_wrote(worker_url: str, tmp_path: Path) -> None:
    with EndpointClient(base_url=worker_url, poll=POLL) as client:
        result = client.run({"workflow": tiny(prefix="client", color=0x00FF00)})
    (output,) = result.outputs
    assert (output.node_id, output.type, output.mime) == ("2", "image", "image/png")
    content = output.bytes()  # checked against the worker's size_bytes and sha256
    assert output.size_bytes == len(content)
    image = Image.open(io.BytesIO(content))
    assert image.size == (64, 64) and image.convert("RGB").getpixel((5, 5)) == (0, 255, 0)
    saved = output.save(tmp_path)
    assert saved.name == f"2_{output.filename}" and saved.read_bytes() == content
    assert result.prompt_id and result.timings["total_ms"] > 0


def test_a_workflow_comfyui_rejects_raises_with_the_workers_sentence(worker_url: str) -> None:
    with (
        EndpointClient(base_url=worker_url, poll=POLL) as client,
        pytest.raises(WorkflowValidationFailed) as caught,
    ):
        client.run({"workflow": workflow("broken_value_not_in_list")})
    assert caught.value.error.startswith(
        "ComfyUI rejected the workflow: node 2 (ImageScale) input 'upscale_method'"
    )
    assert caught.value.error_type == "workflow_validation_failed" and caught.value.job_id


async def test_the_asyncio_client_runs_the_same_job(worker_url: str) -> None:
    async with AsyncEndpointClient(base_url=worker_url, poll=POLL) as client:
        result = await client.run({"workflow": tiny(prefix="client-async", width=32)})
        (output,) = result.images
        image = Image.open(io.BytesIO(await output.bytes()))
    assert image.size == (32, 64)


def test_what_the_local_server_lacks_is_named(worker_url: str) -> None:
    with EndpointClient(base_url=worker_url, poll=POLL) as client:
        with pytest.raises(EndpointNotFound, match="local development server offers only"):
            client.health()
        with pytest.raises(JobNotFound):
            client.status("no-such-job")
