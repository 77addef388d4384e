"""Outputs leave the worker inline or as URLs from a real S3-compatible server (moto's server), in our
shape or worker-comfyui's; results too big for RunPod never vanish."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import pytest
import requests

from tests.support.worker_process import free_port

from .helpers import assert_completed, assert_failed, decode_image, tiny

pytestmark = pytest.mark.usefixtures("emulator_only")

SECRET = "moto-secret-must-not-be-logged"


@pytest.fixture
def s3_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "S3 server did not start"
                time.sleep(0.1)
        boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="k",
            aws_secret_access_key=SECRET,
        ).create_bucket(Bucket="outputs")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _s3_settings(url: str) -> dict[str, str]:
    return {
        "s3_endpoint_url": url,
        "s3_bucket": "outputs",
        "s3_region": "us-east-1",
        "s3_access_key_id": "k",
        "s3_secret_access_key": SECRET,
    }


def test_s3_delivery_returns_urls_that_serve_the_file(make_worker, s3_server) -> None:
    worker = make_worker(delivery="s3", **_s3_settings(s3_server))
    output = assert_completed(worker.runsync({"workflow": tiny(color=0x00FF00)}))
    (item,) = output["outputs"]
    assert "data" not in item and item["url"].startswith(s3_server + "/outputs/outputs/")
    served = requests.get(item["url"], timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
    assert served.content[:8] == b"\x89PNG\r\n\x1a\n" and len(served.content) == item["size_bytes"]
    assert SECRET not in worker.log_text()
    assert SECRET not in served.url


def test_auto_delivery_switches_to_s3_only_when_the_result_is_too_big(make_worker, s3_server) -> None:
    worker = make_worker(delivery="auto", max_inline_bytes=2000, **_s3_settings(s3_server))
    small = assert_completed(worker.runsync({"workflow": tiny()}))
    assert "data" in small["outputs"][0]
    big = assert_completed(
        worker.runsync(
            {
                "workflow": {
                    **tiny(),
                    "1": {
                        "class_type": "EmptyImage",
                        "inputs": {"width": 512, "height": 512, "batch_size": 4, "color": 1234567},
                    },
                }
            }
        )
    )
    assert len(big["outputs"]) == 4 and all("url" in o and "data" not in o for o in big["outputs"])


def test_too_big_without_storage_is_a_clear_error_not_a_lost_result(make_worker) -> None:
    worker = make_worker(max_inline_bytes=2000)
    big = {
        **tiny(),
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 512, "height": 512, "batch_size": 2, "color": 7},
        },
    }
    assert_failed(
        worker.runsync({"workflow": big}), "more than the 0.0 MB a RunPod result can carry", "S3_BUCKET"
    )
    assert_completed(worker.runsync({"workflow": tiny()}))


def test_worker_comfyui_output_shape(make_worker) -> None:
    worker = make_worker(output_format="worker-comfyui")
    output = assert_completed(worker.runsync({"workflow": tiny()}))
    assert set(output) == {"images", "timings"} or set(output) == {"images"}
    (image,) = output["images"]
    assert set(image) == {"filename", "type", "data"} and image["type"] == "base64"
    assert decode_image(image).size == (64, 64)


def test_worker_comfyui_shape_accepts_its_key_name_and_input_shape(make_worker) -> None:
    worker = make_worker(output_format="worker-comfyui")
    answer = worker.runsync({"workflow": tiny(), "api_key_comfy_org": "key-from-old-client", "images": []})
    assert answer["status"] == "COMPLETED"
    assert "key-from-old-client" not in worker.log_text()


def test_output_archive_keeps_a_copy_per_job_while_the_worker_folder_is_emptied(
    make_worker, tmp_path
) -> None:
    archive = tmp_path / "archive"
    worker = make_worker(output_archive_dir=archive)
    answer = worker.runsync({"workflow": tiny(prefix="kept/pic")})
    output = assert_completed(answer)
    (item,) = output["outputs"]
    copy = archive / answer["id"] / "kept" / item["filename"]
    assert copy.read_bytes() == base64.b64decode(item["data"])
    assert [p for p in (worker.data_dir / "output").rglob("*") if p.is_file()] == []


def test_unreachable_storage_is_an_output_error_and_the_next_job_succeeds(make_worker) -> None:
    worker = make_worker(
        delivery="s3", **{**_s3_settings(f"http://127.0.0.1:{free_port()}"), "s3_bucket": "gone"}
    )
    assert_failed(
        worker.runsync({"workflow": tiny()}),
        "uploading output tiny_00001_.png of node 2 to bucket gone failed",
    )
    assert SECRET not in worker.log_text()
    assert [p for p in (worker.data_dir / "output").rglob("*") if p.is_file()] == []
