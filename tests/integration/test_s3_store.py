"""The S3 store against a real S3-compatible server (moto's, on loopback): uploads that come back byte
for byte, multipart for large files, URLs callers can use, s3:// inputs read within their limit, one
client per credential set, and failures that say what to fix without ever showing the secret."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from boto3.s3.transfer import TransferConfig
from pydantic import SecretStr

from comfy_serverless.delivery.results import LocalOutput, deliver
from comfy_serverless.delivery.storage import StorageConfig, StoreCache
from comfy_serverless.errors import InvalidInputError, JobError, OutputError
from comfy_serverless.media.outputs import OutputFile
from comfy_serverless.settings import Settings
from tests.support.s3_server import REGION, Credentials, MotoServer, moto_server
from tests.support.worker_process import free_port

WRONG_SECRET = "not-the-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    with moto_server(buckets=["outputs", "inputs"]) as running:
        yield running


@pytest.fixture(scope="module")
def secured() -> Iterator[MotoServer]:
    with moto_server(auth=True, buckets=["secured"]) as running:
        yield running


def _config(
    server: MotoServer, bucket: str, credentials: Credentials | None = None, **extra: Any
) -> StorageConfig:
    credentials = credentials or server.allowed
    return StorageConfig(
        bucket=bucket,
        endpoint_url=server.url,
        region=REGION,
        access_key_id=credentials.access_key_id,
        secret_access_key=SecretStr(credentials.secret),
        **extra,
    )


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _empty(tmp_path: Path, name: str = "dest.bin") -> Path:
    dest = tmp_path / name
    dest.touch()
    return dest


async def _get(url: str) -> requests.Response:
    return await asyncio.to_thread(requests.get, url, timeout=10)


def _assert_secret_hidden(secret: str, error: JobError, caplog: pytest.LogCaptureFixture) -> None:
    assert secret not in error.message
    assert secret not in repr(error.details)
    assert secret not in caplog.text


async def test_uploads_come_back_byte_for_byte_with_their_sha256(server: MotoServer, tmp_path: Path) -> None:
    # A low threshold makes the 6 MiB file go up in parts (S3 parts are at least 5 MiB).
    cache = StoreCache(
        transfer=TransferConfig(
            multipart_threshold=1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_concurrency=2
        )
    )
    store = cache.get(_config(server, "outputs"))
    small = _file(tmp_path, "small.png", 1234)
    large = _file(tmp_path, "large.mp4", 6 * 1024 * 1024 + 17)
    for path, mime, parts in ((small, "image/png", None), (large, "video/mp4", 2)):
        stored = await store.upload(
            path, store.key_for("job-1", path.name), mime, label=f"output {path.name}"
        )
        data = path.read_bytes()
        assert stored.key == f"outputs/job-1/{path.name}"
        assert stored.size_bytes == len(data)
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        head = server.client().head_object(Bucket="outputs", Key=stored.key)
        assert head["ContentType"] == mime and head["ContentLength"] == len(data)
        etag = head["ETag"].strip('"')
        assert etag.endswith(f"-{parts}") if parts else "-" not in etag
        dest = _empty(tmp_path, f"back-{path.name}")
        size = await store.download("outputs", stored.key, dest, limit=len(data), field="inputs[0].url")
        assert size == len(data) and dest.read_bytes() == data
        served = await _get(stored.url)
        assert served.status_code == 200 and served.content == data


async def test_a_public_base_url_replaces_presigned_urls(server: MotoServer, tmp_path: Path) -> None:
    store = StoreCache().get(_config(server, "outputs", public_base_url="https://cdn.example.com/files/"))
    path = _file(tmp_path, "pic.png", 100)
    # Odd job ids and names cannot climb out of the prefix.
    stored = await store.upload(
        path, store.key_for("/job 7", "../sub/9-pic.png"), "image/png", label="output pic.png"
    )
    assert stored.key == "outputs/job_7/_/sub/9-pic.png"
    assert stored.url == "https://cdn.example.com/files/outputs/job_7/_/sub/9-pic.png"
    assert server.client().get_object(Bucket="outputs", Key=stored.key)["Body"].read() == path.read_bytes()


async def test_a_jobs_s3config_gets_presigned_urls_even_when_the_worker_has_a_public_url(
    server: MotoServer, tmp_path: Path
) -> None:
    settings = Settings(s3_bucket="outputs", s3_prefix="results")
    worker = StorageConfig.from_settings(settings, public_base_url="https://cdn.example.com")
    assert worker is not None and worker.public_base_url == "https://cdn.example.com"
    job = StorageConfig.from_runpod(
        {
            "accessId": server.allowed.access_key_id,
            "accessSecret": server.allowed.secret,
            "bucketName": "inputs",
            "endpointUrl": server.url + "/",
        },
        settings,
    )
    store = StoreCache().get(job)
    path = _file(tmp_path, "pic.png", 300)
    stored = await store.upload(path, store.key_for("j", "pic.png"), "image/png", label="output pic.png")
    assert stored.key == "results/j/pic.png"
    assert (
        stored.url.startswith(f"{server.url}/inputs/results/j/pic.png?") and "X-Amz-Signature=" in stored.url
    )
    assert (await _get(stored.url)).content == path.read_bytes()


def test_one_client_per_credential_set(server: MotoServer) -> None:
    cache = StoreCache(size=2)
    first = cache.get(_config(server, "outputs"))
    assert cache.get(_config(server, "outputs")).client is first.client
    other_bucket = cache.get(_config(server, "inputs"))
    assert other_bucket.client is first.client and other_bucket.bucket == "inputs"
    other_secret = cache.get(_config(server, "outputs", Credentials(server.allowed.access_key_id, "x")))
    assert other_secret.client is not first.client
    assert len(cache) == 2
    # A third credential set pushes out the least recently used one (the first).
    cache.get(_config(server, "outputs", Credentials("AKIAOTHER", "y")))
    assert len(cache) == 2
    assert cache.get(_config(server, "outputs")).client is not first.client
    assert server.allowed.secret not in repr(first) + repr(first.config)


async def test_deliver_uploads_every_file_and_says_so_per_item(server: MotoServer, tmp_path: Path) -> None:
    store = StoreCache().get(_config(server, "outputs"))
    paths = [_file(tmp_path, "a.png", 3000), _file(tmp_path, "b.png", 10)]
    outputs = [
        LocalOutput(OutputFile("9", "image", p.name, "", "output", "image/png"), p, p.stat().st_size, "")
        for p in paths
    ]
    items = await deliver(outputs, [], mode="auto", store=store, job_id="job-2", limit=2000)
    assert [item["filename"] for item in items] == ["a.png", "b.png"]
    for item, path in zip(items, paths, strict=True):
        assert (
            "data" not in item
            and item["bucket"] == "outputs"
            and item["key"] == f"outputs/job-2/9-{path.name}"
        )
        assert item["size_bytes"] == path.stat().st_size
        assert item["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert (await _get(item["url"])).content == path.read_bytes()


async def test_a_wrong_secret_is_a_clear_upload_error_without_the_secret(
    secured: MotoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = _file(tmp_path, "x.png", 500)
    good = StoreCache().get(_config(secured, "secured"))
    stored = await good.upload(path, "ok/x.png", "image/png", label="output x.png of node 9")
    assert stored.size_bytes == 500  # the right secret works: the failure below is the secret's

    bad = StoreCache().get(
        _config(secured, "secured", Credentials(secured.allowed.access_key_id, WRONG_SECRET))
    )
    with pytest.raises(OutputError) as caught:
        await bad.upload(path, "bad/x.png", "image/png", label="output x.png of node 9")
    message = caught.value.message
    assert message.startswith("uploading output x.png of node 9 to bucket secured failed:")
    assert "check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY" in message
    assert caught.value.details["reason"] == "SignatureDoesNotMatch"
    _assert_secret_hidden(WRONG_SECRET, caught.value, caplog)


async def test_an_unknown_access_key_and_a_denied_user_are_told_apart(
    secured: MotoServer, tmp_path: Path
) -> None:
    path = _file(tmp_path, "x.png", 10)
    unknown = StoreCache().get(_config(secured, "secured", Credentials("AKIANOBODY00000000", WRONG_SECRET)))
    with pytest.raises(OutputError, match="does not know the access key id; check S3_ACCESS_KEY_ID"):
        await unknown.upload(path, "k/x.png", "image/png", label="output x.png")
    assert secured.denied is not None
    denied = StoreCache().get(_config(secured, "secured", secured.denied))
    with pytest.raises(OutputError, match="to bucket secured failed: access denied"):
        await denied.upload(path, "k/x.png", "image/png", label="output x.png")


async def test_a_missing_bucket_is_named(server: MotoServer, tmp_path: Path) -> None:
    store = StoreCache().get(_config(server, "no-such-bucket"))
    with pytest.raises(OutputError) as caught:
        await store.upload(
            _file(tmp_path, "x.png", 10), "k/x.png", "image/png", label="output x.png of node 2"
        )
    assert caught.value.message == (
        f"uploading output x.png of node 2 to bucket no-such-bucket failed: the bucket does not exist at {server.url}"
    )
    assert server.allowed.secret not in repr(caught.value.to_dict())


async def test_an_unreachable_endpoint_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = f"http://127.0.0.1:{free_port()}"
    config = StorageConfig.from_runpod(
        {"accessId": "AKIAX", "accessSecret": WRONG_SECRET, "bucketName": "gone", "endpointUrl": endpoint},
        Settings(),
    )
    with pytest.raises(OutputError) as caught:
        await (
            StoreCache()
            .get(config)
            .upload(_file(tmp_path, "x.png", 10), "k", "image/png", label="output x.png")
        )
    assert caught.value.message == (
        f"uploading output x.png to bucket gone failed: could not connect to the storage at {endpoint}"
    )
    _assert_secret_hidden(WRONG_SECRET, caught.value, caplog)


async def test_reading_an_input_overwrites_the_file_in_place(server: MotoServer, tmp_path: Path) -> None:
    server.client().put_object(Bucket="inputs", Key="in/photo.png", Body=b"new content")
    store = StoreCache().get(_config(server, "outputs"))
    dest = tmp_path / "photo.png"
    dest.write_bytes(b"older and longer content")
    inode = dest.stat().st_ino
    size = await store.download("inputs", "in/photo.png", dest, limit=100, field="inputs[0].url")
    assert size == 11 and dest.read_bytes() == b"new content"
    assert dest.stat().st_ino == inode


async def test_an_input_over_the_limit_is_refused(server: MotoServer, tmp_path: Path) -> None:
    server.client().put_object(Bucket="inputs", Key="big.bin", Body=os.urandom(60_000))
    store = StoreCache().get(_config(server, "outputs"))
    with pytest.raises(InvalidInputError) as caught:
        await store.download("inputs", "big.bin", _empty(tmp_path), limit=50_000, field="inputs[2].url")
    assert caught.value.message == "inputs[2].url is 60.0 kB, more than the 50.0 kB allowed (MAX_INPUT_BYTES)"


async def test_a_missing_input_names_the_field_and_the_object(server: MotoServer, tmp_path: Path) -> None:
    store = StoreCache().get(_config(server, "outputs"))
    with pytest.raises(InvalidInputError) as caught:
        await store.download(
            "inputs", "nope/missing.png", _empty(tmp_path), limit=100, field="images[1].image"
        )
    assert caught.value.message == "images[1].image: s3://inputs/nope/missing.png does not exist"
    with pytest.raises(InvalidInputError) as caught:
        await store.download("no-bucket", "a.png", _empty(tmp_path), limit=100, field="images[0].image")
    assert caught.value.message == "images[0].image: bucket no-bucket of s3://no-bucket/a.png does not exist"


async def test_an_input_read_with_a_wrong_secret_says_to_check_the_credentials(
    secured: MotoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secured.client().put_object(Bucket="secured", Key="in.png", Body=b"x")
    job = StorageConfig.from_runpod(
        {
            "accessId": secured.allowed.access_key_id,
            "accessSecret": WRONG_SECRET,
            "bucketName": "secured",
            "endpointUrl": secured.url,
        },
        Settings(),
    )
    with pytest.raises(InvalidInputError) as caught:
        await (
            StoreCache()
            .get(job)
            .download("secured", "in.png", _empty(tmp_path), limit=10, field="inputs[0].url")
        )
    assert caught.value.message.startswith("inputs[0].url: reading s3://secured/in.png failed:")
    assert "check s3Config.accessId and s3Config.accessSecret" in caught.value.message
    _assert_secret_hidden(WRONG_SECRET, caught.value, caplog)
