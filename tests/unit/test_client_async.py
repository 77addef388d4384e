"""The asyncio client against the same stand-in for RunPod's endpoint API: the same methods and the
same behaviour as the synchronous one, awaited."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.client import (
    AsyncEndpointClient,
    ComfyUICrashed,
    JobCancelled,
    JobStatus,
    JobTimedOut,
    OutputIntegrityError,
    SubmitUncertain,
    WaitTimeout,
)
from tests.support.fake_endpoint import (
    API_KEY,
    FAST_POLL,
    FAST_RETRY,
    Drop,
    FakeEndpoint,
    JobPlan,
    Reply,
    image_item,
    success,
)

WORKFLOW = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64}}}
RUNNING = {
    "stage": "running",
    "node_id": "3",
    "class_type": "KSampler",
    "step": 2,
    "steps": 4,
    "percent": 50.0,
}


@pytest.fixture
def fake() -> Iterator[FakeEndpoint]:
    with FakeEndpoint() as server:
        yield server


@pytest.fixture
async def client(fake: FakeEndpoint) -> AsyncIterator[AsyncEndpointClient]:
    async with AsyncEndpointClient(
        base_url=fake.url, api_key=API_KEY, retry=FAST_RETRY, poll=FAST_POLL
    ) as instance:
        yield instance


async def test_run_reports_progress_to_a_coroutine_and_returns_the_result(
    fake: FakeEndpoint, client: AsyncEndpointClient
) -> None:
    fake.plan(JobPlan(queue_polls=1, progress=[RUNNING], output=success(image_item("9", "a.png", b"png!"))))
    seen: list[JobStatus] = []

    async def on_progress(status: JobStatus) -> None:
        seen.append(status)

    result = await client.run({"workflow": WORKFLOW}, on_progress=on_progress)
    assert [status.status for status in seen] == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert seen[1].progress is not None and seen[1].progress.percent == 50.0
    assert await result.outputs[0].bytes() == b"png!"
    assert result.delay_ms == 1500.0 and result.observed_queue_s is not None


async def test_a_rate_limited_poll_is_retried(fake: FakeEndpoint, client: AsyncEndpointClient) -> None:
    fake.fault("status", Reply(429, {"Retry-After": "0"}), Reply(503), Drop())
    result = await client.run({"workflow": WORKFLOW})
    assert result.job_id == "job-1" and fake.counts["status"] == 4


async def test_a_submission_whose_answer_was_lost_is_never_sent_twice(
    fake: FakeEndpoint, client: AsyncEndpointClient
) -> None:
    fake.fault("run", Drop(after=True))
    with pytest.raises(SubmitUncertain) as caught:
        await client.submit({"workflow": WORKFLOW})
    assert fake.submissions == 1 and fake.counts["run"] == 1
    assert len(caught.value.input_digest) == 64


async def test_stream_ends_when_the_job_is_cancelled(fake: FakeEndpoint, client: AsyncEndpointClient) -> None:
    fake.plan(JobPlan(hold=True))
    job = await client.submit({"workflow": WORKFLOW})
    states = []
    async for status in client.stream(job):
        states.append(status.status)
        if status.status == "IN_QUEUE":
            await client.cancel(job)
    assert states == ["IN_QUEUE", "CANCELLED"]
    with pytest.raises(JobCancelled):
        await client.wait(job)


async def test_stream_ends_when_runpod_times_the_job_out(
    fake: FakeEndpoint, client: AsyncEndpointClient
) -> None:
    fake.plan(JobPlan(progress=[RUNNING], outcome="TIMED_OUT"))
    job = await client.submit({"workflow": WORKFLOW})
    assert [status.status async for status in client.stream(job)] == ["IN_PROGRESS", "TIMED_OUT"]
    with pytest.raises(JobTimedOut):
        await client.wait(job)


async def test_a_crashed_comfyui_is_a_worker_failure(fake: FakeEndpoint, client: AsyncEndpointClient) -> None:
    fake.plan(
        JobPlan(
            outcome="FAILED",
            error="ComfyUI was killed by SIGKILL while running node 7",
            output={"error_type": "comfyui_crashed", "details": {"exit_code": -9}},
        )
    )
    with pytest.raises(ComfyUICrashed) as caught:
        await client.run({"workflow": WORKFLOW})
    assert caught.value.details == {"exit_code": -9}


async def test_a_wait_that_runs_out_raises_wait_timeout(
    fake: FakeEndpoint, client: AsyncEndpointClient
) -> None:
    fake.plan(JobPlan(hold=True))
    job = await client.submit({"workflow": WORKFLOW})
    with pytest.raises(WaitTimeout) as caught:
        await client.wait(job, timeout=0.05)
    assert caught.value.last_status == "IN_QUEUE"


def _url_item(url: str, content: bytes) -> dict[str, Any]:
    return {
        "node_id": "12",
        "type": "video",
        "filename": "clip.mp4",
        "mime": "video/mp4",
        "size_bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "url": url,
    }


async def test_outputs_are_downloaded_checked_and_saved(
    fake: FakeEndpoint, client: AsyncEndpointClient, tmp_path: Path
) -> None:
    good, bad = b"video" * 5000, b"video" * 4999 + b"vidEo"
    fake.plan(
        JobPlan(
            output=success(
                _url_item(fake.add_file("good.mp4", good), good),
                _url_item(fake.add_file("bad.mp4", bad), good),
                image_item("9", "a.png", b"png!"),
            )
        )
    )
    result = await client.run({"workflow": WORKFLOW})
    first, second, image = result.outputs
    assert (await first.save(tmp_path)).read_bytes() == good
    assert (await image.save(tmp_path)).name == "9_a.png"
    with pytest.raises(OutputIntegrityError):
        await second.save(tmp_path / "bad.mp4")
    names = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
    assert names == ["12_clip.mp4", "9_a.png"]
    assert fake.file_auth == [None, None]
