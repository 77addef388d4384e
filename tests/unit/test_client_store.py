"""Resumable jobs: a job store (SQLite, and Redis on a real redis-server) records every submission, so
identical input is never submitted twice by accident, results outlive RunPod's retention, and a caller
killed mid-wait resumes and gets its result without resubmitting."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from comfy_serverless.client import (
    AsyncEndpointClient,
    EndpointClient,
    JobInput,
    JobNotFound,
    RedisJobStore,
    RequestRejected,
    SQLiteJobStore,
    SubmitUncertain,
    WorkflowValidationFailed,
)
from comfy_serverless.client.store import JobStore
from tests.support.fake_endpoint import API_KEY, FAST_POLL, FAST_RETRY, Drop, FakeEndpoint, JobPlan, Reply
from tests.support.worker_process import free_port

JOB = {"workflow": {"1": {"class_type": "EmptyImage", "inputs": {"width": 64}}}, "timeout": 60}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "redis-server is not installed (apt-get install redis-server); the Redis job store needs it"
        )
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    probe = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    while True:
        try:
            probe.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.02)
    try:
        yield url
    finally:
        probe.close()
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def fake() -> Iterator[FakeEndpoint]:
    with FakeEndpoint() as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: a SQLite file, or a namespace of its own on the test redis-server."""
    if request.param == "sqlite":
        return str(tmp_path / "jobs.db")
    url: str = request.getfixturevalue("redis_url")
    redis.Redis.from_url(url).flushdb()
    return url


def open_spec(spec: str) -> JobStore:
    return RedisJobStore.from_url(spec) if spec.startswith("redis://") else SQLiteJobStore(spec)


def client_for(fake: FakeEndpoint, store: Any) -> EndpointClient:
    return EndpointClient(base_url=fake.url, api_key=API_KEY, retry=FAST_RETRY, poll=FAST_POLL, store=store)


# --- never twice by accident -----------------------------------------------------------------------


def test_identical_input_returns_the_pending_job_unless_forced(fake: FakeEndpoint, store_spec: str) -> None:
    fake.plan(JobPlan(hold=True))
    with client_for(fake, store_spec) as client:
        first = client.submit(JOB)
        again = client.submit(dict(reversed(JOB.items())))  # the same input, keys in another order
        assert (again.id, again.reused, first.reused) == (first.id, True, False)
        assert fake.submissions == 1
        forced = client.submit(JOB, force=True)
        assert forced.id != first.id and fake.submissions == 2


def test_a_completed_result_outlives_runpods_retention(fake: FakeEndpoint, store_spec: str) -> None:
    with client_for(fake, store_spec) as client:
        result = client.run(JOB)
        del fake.jobs[result.job_id]  # RunPod forgot it (30 minutes after the end)
        polls = fake.counts["status"]
        again = client.run(JOB)
        assert again.job_id == result.job_id and again.outputs[0].bytes() == b"\x89PNG fake"
        assert fake.counts["status"] == polls and fake.counts["run"] == 1


def test_a_failed_job_does_not_block_sending_the_input_again(fake: FakeEndpoint, store_spec: str) -> None:
    fake.plan(JobPlan(outcome="FAILED", error="ComfyUI rejected the workflow: node 1", output={}))
    with client_for(fake, store_spec) as client:
        with pytest.raises(WorkflowValidationFailed):
            client.run(JOB)
        assert client.run(JOB).job_id == "job-2"


def test_an_uncertain_submission_blocks_identical_input_until_forced(
    fake: FakeEndpoint, store_spec: str
) -> None:
    fake.fault("run", Drop(after=True))
    with client_for(fake, store_spec) as client:
        with pytest.raises(SubmitUncertain) as first:
            client.submit(JOB)
        with pytest.raises(SubmitUncertain) as second:
            client.submit(JOB)
        assert fake.counts["run"] == 1  # the second was refused by the store, not sent
        assert second.value.record_id == first.value.record_id
        (record,) = client.pending()
        assert (
            record.state == "UNCERTAIN"
            and record.job_id is None
            and "answer was lost" in (record.error or "")
        )
        assert client.submit(JOB, force=True).id == "job-2"


def test_a_submission_left_in_flight_by_a_stopped_process_blocks_identical_input(
    fake: FakeEndpoint, store_spec: str
) -> None:
    # A process claimed the input, then died before RunPod's answer could be recorded.
    store = open_spec(store_spec)
    store.claim(fake.url, JobInput(JOB).digest(), False, 210.0)
    store.close()
    with client_for(fake, store_spec) as client:
        with pytest.raises(SubmitUncertain, match="still in flight, or its process stopped mid-submission"):
            client.submit(JOB)
        assert [record.state for record in client.pending()] == ["SUBMITTING"]
    assert fake.counts["run"] == 0


def test_a_refused_submission_leaves_nothing_blocking(fake: FakeEndpoint, store_spec: str) -> None:
    fake.fault("run", Reply(400, body={"error": "input is required"}))
    with client_for(fake, store_spec) as client:
        with pytest.raises(RequestRejected):
            client.submit(JOB)
        assert client.pending() == []
        assert client.submit(JOB).id == "job-1"


def test_an_expired_job_is_marked_and_may_be_sent_again(fake: FakeEndpoint, store_spec: str) -> None:
    fake.plan(JobPlan(hold=True))
    with client_for(fake, store_spec) as client:
        job = client.submit(JOB)
        del fake.jobs[job.id]
        with pytest.raises(JobNotFound):
            client.wait(job)
        assert client.pending() == []
        assert client.submit(JOB).id == "job-2"


def test_concurrent_claims_of_one_input_leave_one_submitter(store_spec: str) -> None:
    stores = [open_spec(store_spec) for _ in range(8)]
    claims: list[bool] = []
    start = threading.Barrier(len(stores))

    def claim(store: JobStore) -> None:
        start.wait()
        claims.append(store.claim("http://endpoint", "digest-1", False, 60.0).existing)

    threads = [threading.Thread(target=claim, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(claims) == [False] + [True] * 7


# --- restarts --------------------------------------------------------------------------------------


def test_a_new_client_resumes_the_pending_jobs_of_the_last(fake: FakeEndpoint, store_spec: str) -> None:
    fake.plan(JobPlan(hold=True))
    with client_for(fake, store_spec) as client:
        job = client.submit(JOB)
    with client_for(fake, store_spec) as restarted:
        (handle,) = restarted.resume()
        assert (handle.id, handle.input_digest, handle.wait_s) == (job.id, job.input_digest, 210.0)
        fake.release(job.id)
        assert restarted.wait(handle).job_id == job.id
        assert restarted.pending() == []


async def test_the_asyncio_client_shares_the_stores_rules(fake: FakeEndpoint, store_spec: str) -> None:
    fake.plan(JobPlan(hold=True))
    async with AsyncEndpointClient(
        base_url=fake.url, api_key=API_KEY, retry=FAST_RETRY, poll=FAST_POLL, store=store_spec
    ) as client:
        job = await client.submit(JOB)
        assert (await client.submit(JOB)).reused
        (handle,) = await client.resume()
        fake.release(job.id)
        result = await client.wait(handle)
        assert result.job_id == job.id and await client.pending() == []
        assert fake.submissions == 1


CALLER = """
import sys
from comfy_serverless.client import EndpointClient, PollPolicy

url, key, store = sys.argv[1:4]
job_input = {"workflow": {"1": {"class_type": "EmptyImage", "inputs": {"width": 64}}}, "timeout": 60}
with EndpointClient(base_url=url, api_key=key, store=store, poll=PollPolicy(0.01, 0.05)) as client:
    job = client.submit(job_input)
    print("submitted", job.id, job.reused, flush=True)
    result = client.wait(job)
    print("result", result.outputs[0].bytes().hex(), flush=True)
"""


def _caller(fake: FakeEndpoint, store_spec: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CALLER, fake.url, API_KEY, store_spec],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_a_caller_killed_mid_wait_resumes_without_resubmitting(fake: FakeEndpoint, store_spec: str) -> None:
    fake.plan(JobPlan(hold=True))
    first = _caller(fake, store_spec)
    assert first.stdout is not None
    assert first.stdout.readline().split() == ["submitted", "job-1", "False"]
    deadline = time.monotonic() + 30
    while fake.counts["status"] < 2 and time.monotonic() < deadline:  # it is waiting on the job
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    first.stdout.close()

    fake.release("job-1")
    second = _caller(fake, store_spec)
    out, _ = second.communicate(timeout=60)
    assert out.split() == ["submitted", "job-1", "True", "result", b"\x89PNG fake".hex()]
    assert second.returncode == 0
    assert fake.counts["run"] == 1 and fake.submissions == 1
