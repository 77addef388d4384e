"""Outputs leave the worker inline or as URLs from a real S3-compatible server (moto's server), in our
shape or worker-comfyui's, converted to another image format on request; results too big for RunPod
never vanish."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from PIL import Image

from tests.support.s3_server import MotoServer, moto_server
from tests.support.worker_process import free_port

from .helpers import assert_completed, assert_failed, decode_image, png_b64, tiny

pytestmark = pytest.mark.usefixtures("emulator_only")


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoServer]:
    with moto_server(buckets=["outputs", "inputs"]) as server:
        yield server


def _s3_settings(server: MotoServer, bucket: str = "outputs") -> dict[str, str]:
    return {
        "s3_endpoint_url": server.url,
        "s3_bucket": bucket,
        "s3_region": "us-east-1",
        "s3_access_key_id": server.allowed.access_key_id,
        "s3_secret_access_key": server.allowed.secret,
    }


def _noisy(width: int = 64, batch: int = 1) -> dict[str, Any]:
    """Noise hardly compresses: a 64x64 image is about 10 kB, a 256x256 one about 160 kB."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": width, "batch_size": batch, "color": 1234567},
        },
        "2": {"class_type": "ImageAddNoise", "inputs": {"image": ["1", 0], "seed": 1, "strength": 0.5}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "noisy"}},
    }


def _with_text(text: str) -> dict[str, Any]:
    return {**_noisy(), "4": {"class_type": "PreviewAny", "inputs": {"source": text}}}


def _stored(server: MotoServer, bucket: str, key: str) -> bytes:
    body: bytes = server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def test_s3_delivery_returns_urls_keys_and_hashes_of_the_stored_bytes(make_worker, s3) -> None:
    worker = make_worker(delivery="s3", **_s3_settings(s3))
    answer = worker.runsync({"workflow": tiny(color=0x00FF00)})
    (item,) = assert_completed(answer)["outputs"]
    assert "data" not in item and item["bucket"] == "outputs"
    assert item["key"] == f"outputs/{answer['id']}/2-{item['filename']}"
    stored = _stored(s3, "outputs", item["key"])
    assert len(stored) == item["size_bytes"] and hashlib.sha256(stored).hexdigest() == item["sha256"]
    served = requests.get(item["url"], timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
    assert served.content == stored and Image.open(io.BytesIO(stored)).getpixel((0, 0))[:3] == (0, 255, 0)
    assert s3.allowed.secret not in worker.log_text() and s3.allowed.secret not in item["url"]


def test_a_public_base_url_replaces_presigned_urls(make_worker, s3) -> None:
    worker = make_worker(delivery="s3", s3_public_base_url="https://cdn.example.com/", **_s3_settings(s3))
    (item,) = assert_completed(worker.runsync({"workflow": tiny()}))["outputs"]
    assert item["url"] == f"https://cdn.example.com/{item['key']}"


def test_auto_delivery_switches_to_s3_only_when_the_result_is_too_big(make_worker, s3) -> None:
    worker = make_worker(delivery="auto", max_inline_bytes=20_000, **_s3_settings(s3))
    small = assert_completed(worker.runsync({"workflow": tiny()}))
    assert "data" in small["outputs"][0] and "url" not in small["outputs"][0]
    big = assert_completed(worker.runsync({"workflow": _noisy(batch=2)}))
    assert len(big["outputs"]) == 2 and all("url" in o and "data" not in o for o in big["outputs"])


def test_auto_delivery_counts_texts(make_worker, s3) -> None:
    """The image alone fits; with a long text beside it the result would not, so the file is uploaded
    and the text stays inline."""
    worker = make_worker(delivery="auto", max_inline_bytes=20_000, **_s3_settings(s3))
    alone = assert_completed(worker.runsync({"workflow": _noisy()}))["outputs"][0]
    assert "data" in alone and 8_000 < alone["size_bytes"] < 14_000
    # 4000 characters count 9.3 kB (the text and its base64): 10.7-18.7 kB of image + 9.3 kB > 20 kB.
    outputs = assert_completed(worker.runsync({"workflow": _with_text("x" * 4_000)}))["outputs"]
    by_type = {o["type"]: o for o in outputs}
    assert "url" in by_type["image"] and "data" not in by_type["image"]
    assert by_type["text"]["text"] == "x" * 4_000


def test_auto_delivery_in_attach_mode_sees_the_real_sizes(make_worker, running_comfyui, s3) -> None:
    """Attached without ComfyUI's folders, outputs come through /view: their sizes still decide."""
    url, _, _ = running_comfyui
    worker = make_worker(comfyui_url=url, delivery="auto", max_inline_bytes=20_000, **_s3_settings(s3))
    small = assert_completed(worker.runsync({"workflow": tiny()}))["outputs"][0]
    assert decode_image(small).size == (64, 64)
    big = assert_completed(worker.runsync({"workflow": _noisy(width=256, batch=2)}))["outputs"]
    assert len(big) == 2
    for item in big:
        stored = _stored(s3, "outputs", item["key"])
        assert Image.open(io.BytesIO(stored)).size == (256, 256)
        assert hashlib.sha256(stored).hexdigest() == item["sha256"]


def test_too_big_without_storage_is_a_clear_error_not_a_lost_result(make_worker) -> None:
    worker = make_worker(max_inline_bytes=2000)
    error = assert_failed(
        worker.runsync({"workflow": _noisy(batch=2)}),
        "more than the 2.0 kB a RunPod result can carry (MAX_INLINE_BYTES; largest: noisy_0000",
        "set S3_BUCKET",
        "send s3Config",
    )
    assert "0.0 MB" not in error
    assert_completed(worker.runsync({"workflow": tiny()}))


def test_a_jobs_delivery_overrides_the_setting(make_worker, s3) -> None:
    worker = make_worker(delivery="s3", **_s3_settings(s3))
    inline = assert_completed(worker.runsync({"workflow": tiny(), "delivery": "inline"}))["outputs"][0]
    assert decode_image(inline).size == (64, 64) and "url" not in inline
    uploaded = assert_completed(worker.runsync({"workflow": tiny(), "delivery": "s3"}))["outputs"][0]
    assert "url" in uploaded and "data" not in uploaded
    plain = make_worker(delivery="inline")
    assert_failed(
        plain.runsync({"workflow": tiny(), "delivery": "s3"}),
        'delivery "s3" needs storage and none is configured',
        "send s3Config",
    )


@pytest.mark.parametrize(
    ("fmt", "pil_format", "mime", "extension"),
    [
        ("webp", "WEBP", "image/webp", ".webp"),
        ("jpeg", "JPEG", "image/jpeg", ".jpg"),
        ("png", "PNG", "image/png", ".png"),
    ],
)
def test_output_format_converts_still_images(worker, fmt, pil_format, mime, extension) -> None:
    job = {"workflow": tiny(width=80, color=0x3366CC), "output_format": {"format": fmt, "quality": 85}}
    (item,) = assert_completed(worker.runsync(job))["outputs"]
    data = base64.b64decode(item["data"])
    image = Image.open(io.BytesIO(data))
    assert image.format == pil_format and image.size == (80, 64)
    assert item["mime"] == mime and item["filename"].endswith(extension)
    assert item["size_bytes"] == len(data) and item["sha256"] == hashlib.sha256(data).hexdigest()
    red, green, blue = image.convert("RGB").getpixel((40, 32))
    assert abs(red - 0x33) <= 4 and abs(green - 0x66) <= 4 and abs(blue - 0xCC) <= 4
    # ComfyUI's embedded workflow is stripped from converted images by default.
    assert "prompt" not in image.info and not image.getexif()


def test_converted_images_keep_the_workflow_when_asked(make_worker) -> None:
    worker = make_worker(output_keep_metadata=True)
    png = assert_completed(worker.runsync({"workflow": tiny(), "output_format": {"format": "png"}}))
    assert "EmptyImage" in decode_image(png["outputs"][0]).info["prompt"]
    webp = assert_completed(worker.runsync({"workflow": tiny(), "output_format": {"format": "webp"}}))
    exif = decode_image(webp["outputs"][0]).getexif()
    assert exif[0x0110].startswith("prompt:") and "EmptyImage" in exif[0x0110]


def test_worker_comfyui_output_shape(make_worker) -> None:
    worker = make_worker(output_format="worker-comfyui")
    output = assert_completed(worker.runsync({"workflow": tiny()}))
    assert set(output) == {"images", "timings"}
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


def test_unreachable_storage_is_an_output_error_and_the_next_job_succeeds(make_worker, s3) -> None:
    settings = {**_s3_settings(s3), "s3_endpoint_url": f"http://127.0.0.1:{free_port()}", "s3_bucket": "gone"}
    worker = make_worker(delivery="s3", **settings)
    assert_failed(
        worker.runsync({"workflow": tiny()}),
        "uploading output tiny_00001_.png of node 2 to bucket gone failed",
    )
    assert s3.allowed.secret not in worker.log_text()
    assert [p for p in (worker.data_dir / "output").rglob("*") if p.is_file()] == []
    assert_completed(worker.runsync({"workflow": tiny(), "delivery": "inline"}))


def test_s3_inputs_are_read_with_the_workers_credentials(make_worker, s3) -> None:
    s3.client().put_object(
        Bucket="inputs", Key="in/photo.png", Body=base64.b64decode(png_b64(30, 20, (9, 8, 7)))
    )
    worker = make_worker(**_s3_settings(s3))
    job = {
        "workflow": {
            "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "s3in"}},
        },
        "inputs": [{"name": "photo.png", "url": "s3://inputs/in/photo.png"}],
    }
    (item,) = assert_completed(worker.runsync(job))["outputs"]
    assert decode_image(item).size == (30, 20)
    job["inputs"] = [{"name": "photo.png", "url": "s3://inputs/in/nope.png"}]
    assert_failed(worker.runsync(job), "inputs[0].url", "s3://inputs/in/nope.png")
    assert [p for p in (worker.data_dir / "input").rglob("*") if p.is_file()] == []
