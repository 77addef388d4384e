"""Storage configuration from the settings and from a job's RunPod s3Config (field errors that never
quote the secret), safe object keys, and reads of s3:// inputs that stop at the limit or on cancel."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from comfy_serverless.delivery.storage import S3Store, StorageConfig, StoreCache, region_from_endpoint
from comfy_serverless.errors import InvalidInputError
from comfy_serverless.settings import Settings

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
VALID = {
    "accessId": "AKIAIOSFODNN7EXAMPLE",
    "accessSecret": SECRET,
    "bucketName": "my-results",
    "endpointUrl": "https://s3.eu-west-2.amazonaws.com/",
}


def test_a_runpod_s3config_becomes_a_storage_config() -> None:
    settings = Settings(s3_prefix="jobs/", s3_url_expiry=3600)
    config = StorageConfig.from_runpod(VALID, settings)
    assert config.bucket == "my-results"
    assert config.endpoint_url == "https://s3.eu-west-2.amazonaws.com"
    assert config.region == "eu-west-2"
    assert config.access_key_id == "AKIAIOSFODNN7EXAMPLE"
    assert config.secret_access_key is not None and config.secret_access_key.get_secret_value() == SECRET
    assert config.prefix == "jobs/" and config.url_expiry == 3600
    assert config.public_base_url is None
    assert SECRET not in repr(config) and "AKIAIOSFODNN7EXAMPLE" not in repr(config)
    assert SECRET not in repr(config.credentials_key)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"accessSecret": None}, "s3Config.accessSecret is missing"),
        ({"accessId": ""}, "s3Config.accessId must be a non-empty string"),
        ({"bucketName": 7}, "s3Config.bucketName must be a non-empty string"),
        ({"endpointUrl": None}, "s3Config.endpointUrl is missing"),
        ({"bucketName": "a/b"}, "s3Config.bucketName 'a/b' is not a bucket name (no slashes or spaces)"),
        (
            {"endpointUrl": "ftp://files.example.com"},
            "s3Config.endpointUrl must be the storage's http(s) address",
        ),
        (
            {"endpointUrl": "https://user:pw@s3.example.com"},
            "s3Config.endpointUrl must be the storage's http(s)",
        ),
    ],
)
def test_bad_s3config_fields_are_named_and_the_secret_never_shown(
    change: dict[str, Any], message: str
) -> None:
    raw = {**VALID, **change}
    if change.get("accessSecret", "") is None or change.get("endpointUrl", "") is None:
        raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(InvalidInputError) as caught:
        StorageConfig.from_runpod(raw, Settings())
    assert caught.value.message.startswith(message)
    field = message.split()[0]
    assert caught.value.details == {"field": field}
    assert SECRET not in caught.value.message


def test_an_s3config_that_is_not_an_object() -> None:
    with pytest.raises(InvalidInputError, match=r"^s3Config must be an object with accessId"):
        StorageConfig.from_runpod("s3://bucket", Settings())


def test_the_worker_config_comes_from_the_settings() -> None:
    assert StorageConfig.from_settings(Settings()) is None
    settings = Settings(
        s3_bucket="outputs",
        s3_endpoint_url="http://minio:9000",
        s3_access_key_id="key",
        s3_secret_access_key=SECRET,
        s3_prefix="/results",
    )
    config = StorageConfig.from_settings(settings, public_base_url="https://cdn.example.com")
    assert config is not None
    assert (config.bucket, config.endpoint_url, config.access_key_id) == (
        "outputs",
        "http://minio:9000",
        "key",
    )
    assert config.prefix == "results/" and config.public_base_url == "https://cdn.example.com"
    assert SECRET not in repr(config)


@pytest.mark.parametrize(
    ("endpoint", "region"),
    [
        ("https://s3.us-west-2.amazonaws.com", "us-west-2"),
        ("https://my-bucket.s3.ap-southeast-1.amazonaws.com", "ap-southeast-1"),
        ("https://s3-eu-central-1.amazonaws.com", "eu-central-1"),
        ("https://s3.us-west-004.backblazeb2.com", "us-west-004"),
        ("https://nyc3.digitaloceanspaces.com", "nyc3"),
        ("https://0123abcd.r2.cloudflarestorage.com", "auto"),
        ("https://s3api-eu-ro-1.runpod.io", None),
        ("http://127.0.0.1:9000", None),
    ],
)
def test_the_region_is_read_from_endpoints_that_name_it(endpoint: str, region: str | None) -> None:
    assert region_from_endpoint(endpoint) == region


@pytest.mark.parametrize(
    ("job_id", "name", "key"),
    [
        ("sync-1234-abcd", "9-ComfyUI_00001_.png", "outputs/sync-1234-abcd/9-ComfyUI_00001_.png"),
        ("../../etc", "passwd", "outputs/.._.._etc/passwd"),
        ("..", "..", "outputs/_/_"),
        ("/abs", "/sub//x.png", "outputs/abs/sub/x.png"),
        ("job 1?x=y", "a b#c.png", "outputs/job_1_x_y/a_b_c.png"),
        ("ünï", "ök.png", "outputs/n/k.png"),
    ],
)
def test_object_keys_stay_under_the_prefix(job_id: str, name: str, key: str) -> None:
    store = StoreCache().get(StorageConfig(bucket="b", region="us-east-1"))
    assert store.key_for(job_id, name) == key
    assert ".." not in key.split("/") and not key.startswith("/")


class _Body:
    """A streamed object body: ``chunks`` in order; ``gate`` holds the second read until set."""

    def __init__(self, chunks: list[bytes], gate: threading.Event | None = None):
        self.chunks = list(chunks)
        self.gate = gate
        self.reads = 0
        self.reading = threading.Event()
        self.closed = False

    def read(self, _: int) -> bytes:
        self.reads += 1
        if self.reads == 2 and self.gate is not None:
            self.reading.set()
            self.gate.wait(30)
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        self.closed = True


class _Client:
    def __init__(self, answer: dict[str, Any]):
        self.answer = answer

    def get_object(self, **_: Any) -> dict[str, Any]:
        return self.answer


async def test_an_object_without_a_length_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    body = _Body([b"a" * 40, b"b" * 40, b"c" * 40, b"d" * 40])
    store = S3Store(StorageConfig(bucket="b"), _Client({"Body": body}))
    dest = tmp_path / "in.bin"
    dest.touch()
    with pytest.raises(InvalidInputError) as caught:
        await store.download("b", "k", dest, limit=100, field="inputs[0].url")
    assert (
        caught.value.message
        == "inputs[0].url is 120 bytes, more than the 100 bytes allowed (MAX_INPUT_BYTES)"
    )
    assert body.reads == 3 and body.closed  # stopped at the first piece over the limit


async def test_a_cancelled_read_returns_only_once_the_file_is_let_go(tmp_path: Path) -> None:
    gate = threading.Event()
    body = _Body([b"a" * 10, b"b" * 10], gate)
    store = S3Store(StorageConfig(bucket="b"), _Client({"Body": body, "ContentLength": 20}))
    dest = tmp_path / "in.bin"
    dest.touch()
    task = asyncio.ensure_future(store.download("b", "k", dest, limit=100, field="inputs[0].url"))
    await asyncio.to_thread(body.reading.wait, 30)
    task.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()  # the thread still holds the file
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert body.closed and dest.read_bytes() == b"a" * 10  # nothing written after the cancel


def test_secrets_are_masked_in_reprs() -> None:
    config = StorageConfig(bucket="b", access_key_id="AKIA1", secret_access_key=SecretStr(SECRET))
    assert SECRET not in repr(config) and SECRET not in repr(S3Store(config, object()))
    assert config.scrub(f"echo {SECRET} back") == "echo ********** back"


def test_jobs_starting_at_once_share_one_client() -> None:
    cache = StoreCache()
    config = StorageConfig(
        bucket="b",
        endpoint_url="http://127.0.0.1:9",
        region="us-east-1",
        access_key_id="k",
        secret_access_key=SecretStr("s"),
    )
    start = threading.Barrier(8)
    clients: list[object] = []

    def get() -> None:
        start.wait(30)
        clients.append(cache.get(config).client)

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(clients) == 8 and all(client is clients[0] for client in clients)
    assert len(cache) == 1
