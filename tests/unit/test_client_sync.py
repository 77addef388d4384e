"""The synchronous client against a real HTTP stand-in for RunPod's endpoint API: progress, results,
retries and what is never retried, every way a job ends, and outputs inline or downloaded."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comfy_serverless.client import (
    AuthenticationError,
    EndpointClient,
    EndpointNotFound,
    ExecutionFailed,
    JobCancelled,
    JobInput,
    JobNotFound,
    JobStatus,
    JobTimedOut,
    OutputDownloadFailed,
    OutputIntegrityError,
    RetryPolicy,
    ServiceUnavailable,
    SubmitUncertain,
    WaitTimeout,
    WorkflowValidationFailed,
)
from tests.support.fake_endpoint import (
    API_KEY,
    FAST_POLL,
    FAST_RETRY,
    Drop,
    FakeEndpoint,
    JobPlan,
    Reply,
    Stall,
    image_item,
    success,
)
from tests.support.worker_process import free_port

WORKFLOW = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64}}}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
RUNNING = {
    "stage": "running",
    "node_id": "3",
    "class_type": "KSampler",
    "step": 12,
    "steps": 30,
    "nodes_done": 4,
    "nodes_total": 9,
    "percent": 48.9,
}


@pytest.fixture
def fake() -> Iterator[FakeEndpoint]:
    with FakeEndpoint() as server:
        yield server


def make_client(fake: FakeEndpoint, **options: Any) -> EndpointClient:
    settings: dict[str, Any] = {"api_key": API_KEY, "retry": FAST_RETRY, "poll": FAST_POLL, **options}
    return EndpointClient(base_url=fake.url, **settings)


@pytest.fixture
def client(fake: FakeEndpoint) -> Iterator[EndpointClient]:
    with make_client(fake) as instance:
        yield instance


class Ceiling(random.Random):
    """Backoff that always draws its maximum, so a test can tell it from a honoured Retry-After."""

    def uniform(self, a: float, b: float) -> float:
        return b


# --- progress and results --------------------------------------------------------------------------


def test_run_reports_queue_then_progress_then_the_result(fake: FakeEndpoint, client: EndpointClient) -> None:
    output = success(
        image_item("9", "ComfyUI_00001_.png", PNG),
        {
            "node_id": "3",
            "type": "text",
            "filename": None,
            "mime": "text/plain",
            "text": "48",
            "data": "NDg=",
        },
        seeds={"3": 918273645},
        timings={"queue_wait_ms": 3.1, "execution_ms": 2150.4, "total_ms": 2160.3},
        warnings=["node 7 was skipped"],
    )
    fake.plan(JobPlan(queue_polls=2, progress=[{"stage": "queued"}, RUNNING], output=output))
    seen: list[JobStatus] = []

    result = client.run({"workflow": WORKFLOW}, on_progress=seen.append)

    assert [status.status for status in seen] == ["IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS", "COMPLETED"]
    assert seen[1].progress is not None and seen[1].progress.stage == "queued"
    progress = seen[2].progress
    assert progress is not None
    assert (progress.node_id, progress.class_type, progress.step, progress.steps) == ("3", "KSampler", 12, 30)
    assert progress.percent == 48.9 and str(progress) == "node 3 (KSampler), step 12/30, 48.9%"
    assert fake.jobs[result.job_id].input == {"workflow": WORKFLOW}
    assert result.outputs[0].bytes() == PNG and result.texts == ["48"]
    assert result.prompt_id == "prompt-1" and result.seeds == {"3": 918273645}
    assert result.warnings == ["node 7 was skipped"] and result.timings["execution_ms"] == 2150.4
    # RunPod's queue (cold start included) and run times, and the client's own measure of the queue.
    assert (result.delay_ms, result.execution_ms) == (1500.0, 800.0)
    assert result.observed_queue_s is not None and result.observed_s is not None
    assert 0 <= result.observed_queue_s <= result.observed_s


def test_the_default_wait_is_the_jobs_timeout_plus_a_cold_start(client: EndpointClient) -> None:
    assert client.submit({"workflow": WORKFLOW, "timeout": 300}).wait_s == 450
    assert client.submit({"workflow": WORKFLOW}).wait_s == 750  # the worker's 600 s default


def test_webhook_policy_and_s3config_travel_beside_the_input(
    fake: FakeEndpoint, client: EndpointClient
) -> None:
    s3 = {
        "accessId": "AKIA",
        "accessSecret": "secret",
        "bucketName": "out",
        "endpointUrl": "https://s3.example",
    }
    client.submit(
        {"workflow": WORKFLOW},
        webhook="https://example.com/hook",
        policy={"executionTimeout": 900_000},
        s3_config=s3,
    )
    assert fake.jobs["job-1"].body == {
        "input": {"workflow": WORKFLOW},
        "webhook": "https://example.com/hook",
        "policy": {"executionTimeout": 900_000},
        "s3Config": s3,
    }


def test_a_wait_that_runs_out_leaves_the_job_to_be_waited_for_again(
    fake: FakeEndpoint, client: EndpointClient
) -> None:
    fake.plan(JobPlan(hold=True))
    job = client.submit({"workflow": WORKFLOW})
    with pytest.raises(WaitTimeout) as caught:
        client.wait(job, timeout=0.05)
    assert caught.value.job_id == job.id and caught.value.last_status == "IN_QUEUE"
    fake.release(job.id)
    assert client.wait(job).outputs[0].bytes() == b"\x89PNG fake"


# --- errors ----------------------------------------------------------------------------------------


def test_a_refused_key_is_reported_at_once(fake: FakeEndpoint) -> None:
    with make_client(fake, api_key="wrong") as client, pytest.raises(AuthenticationError) as caught:
        client.submit({"workflow": WORKFLOW})
    assert caught.value.status_code == 401 and "API key" in caught.value.message
    assert fake.counts["run"] == 1


def test_an_unknown_endpoint_and_an_unknown_job_are_told_apart(
    fake: FakeEndpoint, client: EndpointClient
) -> None:
    with (
        EndpointClient(
            base_url=f"{fake.root}/v2/no-such-endpoint", api_key=API_KEY, retry=FAST_RETRY
        ) as other,
        pytest.raises(EndpointNotFound),
    ):
        other.health()
    with pytest.raises(JobNotFound) as caught:
        client.status("job-404")
    assert caught.value.job_id == "job-404"


def test_a_failed_job_raises_its_type_with_the_workers_sentence_and_details(
    fake: FakeEndpoint, client: EndpointClient
) -> None:
    sentence = "ComfyUI rejected the workflow: node 4 (LoraLoader) input 'lora_name': not available"
    fake.plan(
        JobPlan(
            outcome="FAILED",
            error=sentence,
            output={
                "error_type": "workflow_validation_failed",
                "details": {"node_errors": [{"node_id": "4"}]},
            },
        )
    )
    with pytest.raises(WorkflowValidationFailed) as caught:
        client.run({"workflow": WORKFLOW})
    failure = caught.value
    assert failure.error == sentence and failure.job_id == "job-1"
    assert failure.details == {"node_errors": [{"node_id": "4"}]}


# --- retries ---------------------------------------------------------------------------------------


def test_a_rate_limited_submission_waits_as_retry_after_says(fake: FakeEndpoint) -> None:
    # Its own backoff would wait 1000 s (and so give up within a 30 s budget); Retry-After says 0.
    policy = RetryPolicy(max_attempts=3, base_delay=1000.0, max_delay=1000.0, max_elapsed=30.0, rng=Ceiling())
    fake.fault("run", Reply(429, {"Retry-After": "0"}))
    with make_client(fake, retry=policy) as client:
        job = client.submit({"workflow": WORKFLOW})
    assert job.id == "job-1"
    assert fake.counts["run"] == 2 and fake.submissions == 1


def test_a_retry_after_past_the_time_budget_ends_the_call_at_once(fake: FakeEndpoint) -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.01, max_elapsed=5.0)
    fake.fault("run", Reply(429, {"Retry-After": "120"}))
    with make_client(fake, retry=policy) as client, pytest.raises(ServiceUnavailable) as caught:
        client.submit({"workflow": WORKFLOW})
    assert caught.value.status_code == 429 and fake.counts["run"] == 1


def test_a_submission_turned_away_with_503_is_sent_again(fake: FakeEndpoint, client: EndpointClient) -> None:
    fake.fault("run", Reply(503), Reply(503))
    assert client.submit({"workflow": WORKFLOW}).id == "job-1"
    assert fake.counts["run"] == 3 and fake.submissions == 1


def test_a_submission_whose_answer_was_lost_is_never_sent_twice(
    fake: FakeEndpoint, client: EndpointClient
) -> None:
    job_input = {"workflow": WORKFLOW, "timeout": 60}
    fake.fault("run", Drop(after=True))  # RunPod queued the job; its id never came back
    with pytest.raises(SubmitUncertain) as caught:
        client.submit(job_input)
    assert fake.counts["run"] == 1 and fake.submissions == 1
    assert caught.value.input_digest == JobInput(job_input).digest()
    assert "force=True" in caught.value.message


@pytest.mark.parametrize("fault", [Reply(500), Reply(502), Reply(504), Drop()])
def test_a_submission_that_may_have_reached_runpod_is_not_repeated(
    fake: FakeEndpoint, client: EndpointClient, fault: Reply | Drop
) -> None:
    fake.fault("run", fault)
    with pytest.raises(SubmitUncertain):
        client.submit({"workflow": WORKFLOW})
    assert fake.counts["run"] == 1


def test_an_unreachable_endpoint_is_retried_then_reported() -> None:
    url = f"http://127.0.0.1:{free_port()}/v2/ep"
    with (
        EndpointClient(base_url=url, retry=FAST_RETRY) as client,
        pytest.raises(ServiceUnavailable) as caught,
    ):
        client.submit({"workflow": WORKFLOW})  # never connected: safe to retry, and retried
    assert "4 attempts" in caught.value.message and caught.value.status_code is None


def test_polling_rides_out_server_errors_dropped_connections_and_stalls(fake: FakeEndpoint) -> None:
    fake.fault("status", Reply(502), Drop(), Stall(2.0), Reply(429, {"Retry-After": "0"}))
    policy = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05)
    with make_client(fake, read_timeout=0.3, retry=policy) as client:
        result = client.run({"workflow": WORKFLOW})
    assert result.outputs[0].bytes() == b"\x89PNG fake"
    assert fake.counts["status"] == 5


# --- every way a job ends --------------------------------------------------------------------------


def test_stream_ends_when_the_job_is_cancelled(fake: FakeEndpoint, client: EndpointClient) -> None:
    fake.plan(JobPlan(hold=True))
    job = client.submit({"workflow": WORKFLOW})
    states = []
    for status in client.stream(job):
        states.append(status.status)
        if status.status == "IN_QUEUE":
            assert client.cancel(job).status == "CANCELLED"
    assert states == ["IN_QUEUE", "CANCELLED"]
    with pytest.raises(JobCancelled):
        client.wait(job)


def test_stream_ends_when_runpod_times_the_job_out(fake: FakeEndpoint, client: EndpointClient) -> None:
    fake.plan(JobPlan(queue_polls=1, progress=[RUNNING], outcome="TIMED_OUT"))
    job = client.submit({"workflow": WORKFLOW})
    assert [status.status for status in client.stream(job)] == ["IN_QUEUE", "IN_PROGRESS", "TIMED_OUT"]
    with pytest.raises(JobTimedOut) as caught:
        client.wait(job)
    assert caught.value.status == "TIMED_OUT"


def test_a_failed_job_can_be_retried_under_the_same_id(fake: FakeEndpoint, client: EndpointClient) -> None:
    fake.plan(
        JobPlan(outcome="FAILED", error="Node 7 (KSampler) failed: RuntimeError: boom", output={}), JobPlan()
    )
    job = client.submit({"workflow": WORKFLOW})
    with pytest.raises(ExecutionFailed):
        client.wait(job)
    assert client.retry(job).status == "IN_QUEUE"
    assert client.wait(job).job_id == job.id


def test_health_counts_and_purging_the_queue(fake: FakeEndpoint, client: EndpointClient) -> None:
    fake.plan(JobPlan(hold=True), JobPlan(hold=True))
    first, second = client.submit({"n": 1}), client.submit({"n": 2})
    health = client.health()
    assert health.jobs["inQueue"] == 2 and health.workers["initializing"] == 1
    assert health.cold_start_likely
    assert client.purge_queue()["removed"] == 2
    assert client.status(first).status == client.status(second).status == "CANCELLED"


# --- outputs ---------------------------------------------------------------------------------------


def _url_item(fake: FakeEndpoint, content: bytes, *, served: bytes | None = None) -> dict[str, Any]:
    url = fake.add_file("clip.mp4", served if served is not None else content)
    return {
        "node_id": "12",
        "type": "video",
        "filename": "clip_00001.mp4",
        "subfolder": "video",
        "mime": "video/mp4",
        "size_bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "bucket": "results",
        "key": "outputs/job-1/video/12-clip_00001.mp4",
        "url": url,
    }


def test_an_uploaded_output_is_downloaded_checked_and_saved_under_its_node(
    fake: FakeEndpoint, client: EndpointClient, tmp_path: Path
) -> None:
    video = bytes(range(256)) * 300
    fake.plan(JobPlan(output=success(_url_item(fake, video))))
    result = client.run({"workflow": WORKFLOW})
    (output,) = result.outputs
    assert not output.inline and output.bytes() == video
    saved = output.save(tmp_path)
    assert saved == tmp_path / "12_clip_00001.mp4" and saved.read_bytes() == video
    assert [p.name for p in tmp_path.iterdir()] == ["12_clip_00001.mp4"]
    assert fake.file_auth == [None, None]  # the API key never goes to storage


def test_a_corrupted_download_raises_and_leaves_nothing_behind(
    fake: FakeEndpoint, client: EndpointClient, tmp_path: Path
) -> None:
    video = b"the real video" * 100
    fake.plan(JobPlan(output=success(_url_item(fake, video, served=b"the real vidEo" * 100))))
    (output,) = client.run({"workflow": WORKFLOW}).outputs
    with pytest.raises(OutputIntegrityError, match="sha256"):
        output.save(tmp_path / "out.mp4")
    with pytest.raises(OutputIntegrityError):
        output.bytes()
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_inline_output_is_refused(fake: FakeEndpoint, client: EndpointClient) -> None:
    item = image_item("9", "a.png", PNG)
    item["data"] = base64.b64encode(PNG[:-10]).decode()
    fake.plan(JobPlan(output=success(item)))
    with pytest.raises(OutputIntegrityError, match="is 198 bytes, but the worker reported 208"):
        client.run({"workflow": WORKFLOW}).outputs[0].bytes()


def test_an_expired_output_url_says_so(fake: FakeEndpoint, client: EndpointClient) -> None:
    fake.plan(JobPlan(output=success(_url_item(fake, b"x"))))
    fake.fault("files", Reply(403))
    with pytest.raises(OutputDownloadFailed, match="presigned URLs expire"):
        client.run({"workflow": WORKFLOW}).outputs[0].bytes()


def test_save_all_names_files_by_node_and_keeps_same_named_outputs_apart(
    fake: FakeEndpoint, client: EndpointClient, tmp_path: Path
) -> None:
    other = b"\x89PNG other"
    text = {
        "node_id": "3",
        "type": "text",
        "filename": None,
        "mime": "text/plain",
        "text": "48",
        "data": "NDg=",
    }
    fake.plan(
        JobPlan(
            output=success(
                image_item("9", "ComfyUI_00001_.png", PNG),
                image_item("9", "ComfyUI_00001_.png", other, subfolder="sub"),
                text,
            )
        )
    )
    saved = client.run({"workflow": WORKFLOW}).save_all(tmp_path / "out")
    assert [path.name for path in saved] == ["9_ComfyUI_00001_.png", "9_ComfyUI_00001__2.png", "3_text.txt"]
    assert [path.read_bytes() for path in saved] == [PNG, other, b"48"]


def test_worker_comfyui_results_read_the_same_way(fake: FakeEndpoint, client: EndpointClient) -> None:
    url = fake.add_file("b.mp4", b"video bytes")
    output = {
        "images": [
            {"filename": "a.png", "type": "base64", "data": base64.b64encode(PNG).decode()},
            {"filename": "b.mp4", "type": "s3_url", "data": url},
        ],
        "texts": ["hello"],
    }
    fake.plan(JobPlan(output=output))
    result = client.run({"workflow": WORKFLOW})
    assert [(o.type, o.filename) for o in result.outputs] == [
        ("image", "a.png"),
        ("video", "b.mp4"),
        ("text", None),
    ]
    assert [o.bytes() for o in result.files] == [PNG, b"video bytes"]
    assert result.texts == ["hello"] and result.images[0].save_name == "a.png"
