"""A job's own bucket: RunPod passes ``s3Config`` beside ``input``, and the worker uploads that job's
outputs (and reads its s3:// inputs) with those credentials instead of its own. Runs RunPod's real job
loop against a stand-in queue, because RunPod's local API server drops ``s3Config``."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.s3_server import Credentials, MotoServer, moto_server
from tests.support.worker_process import WorkerProcess

from .helpers import png_b64, tiny

pytestmark = pytest.mark.usefixtures("emulator_only")


@pytest.fixture(scope="module")
def open_s3() -> Iterator[MotoServer]:
    """Accepts any credentials: the worker's bucket and the caller's side by side."""
    with moto_server(buckets=["worker-bucket", "caller-bucket"]) as server:
        yield server


@pytest.fixture(scope="module")
def checked_s3() -> Iterator[MotoServer]:
    """Checks signatures and policies like S3 does."""
    with moto_server(auth=True, buckets=["caller-bucket"]) as server:
        yield server


def s3_config(server: MotoServer, bucket: str, credentials: Credentials | None = None) -> dict[str, str]:
    credentials = credentials or server.allowed
    return {
        "accessId": credentials.access_key_id,
        "accessSecret": credentials.secret,
        "bucketName": bucket,
        "endpointUrl": server.url,
    }


@pytest.fixture
def start(backend, fake_runpod, tmp_path) -> Iterator[Any]:
    workers: list[WorkerProcess] = []

    def run(**settings: Any) -> WorkerProcess:
        worker = WorkerProcess(
            backend.env(tmp_path / f"data{len(workers)}", **settings) | fake_runpod.env(), []
        )
        workers.append(worker)
        return worker

    yield run
    for worker in workers:
        worker.stop()


def test_outputs_go_to_the_jobs_bucket_with_its_credentials(start, fake_runpod, open_s3) -> None:
    worker = start(
        delivery="s3",
        s3_endpoint_url=open_s3.url,
        s3_bucket="worker-bucket",
        s3_access_key_id="worker-key",
        s3_secret_access_key="worker-secret-never-shown",
        input_url_allowed_hosts="127.0.0.1",  # the test's S3 server is on loopback
    )
    caller = Credentials("caller-key", "caller-secret-never-shown")
    open_s3.client().put_object(
        Bucket="caller-bucket", Key="mine/in.png", Body=base64.b64decode(png_b64(14, 9, (5, 6, 7)))
    )
    job = {
        "workflow": {
            "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "own"}},
        },
        "inputs": [{"name": "in.png", "url": "s3://caller-bucket/mine/in.png"}],
    }
    fake_runpod.submit("own", job, s3Config=s3_config(open_s3, "caller-bucket", caller))
    (item,) = fake_runpod.result("own", timeout=120)["output"]["outputs"]
    assert item["bucket"] == "caller-bucket" and item["key"].startswith("outputs/own/")
    stored = open_s3.client().get_object(Bucket="caller-bucket", Key=item["key"])["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == item["sha256"]
    # The key the URL is signed with is the caller's, not the worker's.
    assert "caller-key" in item["url"] and "worker-key" not in item["url"]
    assert open_s3.client().list_objects_v2(Bucket="worker-bucket").get("KeyCount") == 0
    # The next job without s3Config uses the worker's own bucket again.
    fake_runpod.submit("theirs", {"workflow": tiny()})
    (item,) = fake_runpod.result("theirs", timeout=60)["output"]["outputs"]
    assert item["bucket"] == "worker-bucket"
    log = worker.log_text()
    assert "caller-secret-never-shown" not in log and "worker-secret-never-shown" not in log


def test_a_wrong_secret_and_a_missing_bucket_are_clear_errors_without_the_secret(
    start, fake_runpod, checked_s3
) -> None:
    worker = start(input_url_allowed_hosts="127.0.0.1")
    wrong = Credentials(checked_s3.allowed.access_key_id, "wrong-secret-never-shown")
    fake_runpod.submit(
        "wrong",
        {"workflow": tiny(), "delivery": "s3"},
        s3Config=s3_config(checked_s3, "caller-bucket", wrong),
    )
    failed = fake_runpod.result("wrong", timeout=120)
    assert "bucket caller-bucket" in failed["error"] and "s3Config.accessSecret" in failed["error"]
    fake_runpod.submit(
        "missing", {"workflow": tiny(), "delivery": "s3"}, s3Config=s3_config(checked_s3, "no-such-bucket")
    )
    failed_too = fake_runpod.result("missing", timeout=60)
    assert "no-such-bucket" in failed_too["error"] and "does not exist" in failed_too["error"]
    for answer in (failed, failed_too):
        assert answer["output"]["error_type"] == "output_error"
        assert "wrong-secret-never-shown" not in str(answer) and checked_s3.allowed.secret not in str(answer)
    assert "wrong-secret-never-shown" not in worker.log_text()
    fake_runpod.submit(
        "fine", {"workflow": tiny(), "delivery": "s3"}, s3Config=s3_config(checked_s3, "caller-bucket")
    )
    assert fake_runpod.result("fine", timeout=60)["output"]["outputs"][0]["bucket"] == "caller-bucket"


def test_a_private_endpoint_is_refused_unless_allowed(start, fake_runpod, open_s3) -> None:
    start()
    fake_runpod.submit("private", {"workflow": tiny()}, s3Config=s3_config(open_s3, "caller-bucket"))
    failed = fake_runpod.result("private", timeout=120)
    assert failed["error"].startswith("s3Config.endpointUrl: refusing to connect to http://127.0.0.1:")
    fake_runpod.submit(
        "bad",
        {"workflow": tiny()},
        s3Config={"accessId": "a", "bucketName": "b", "endpointUrl": "https://s3.example.com"},
    )
    assert fake_runpod.result("bad", timeout=60)["error"].startswith("s3Config.accessSecret is missing")
