"""Building job inputs: workflow files and templates, input digests, and local files sent inline while
the request fits RunPod's limit, uploaded to the caller's bucket (moto's S3 server) when it does not."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from comfy_serverless.client import EndpointClient, InputStorage, InputTooLarge, JobInput
from comfy_serverless.client.inputs import input_digest, prepare_input
from tests.support.fake_endpoint import API_KEY, FAST_POLL, FAST_RETRY, FakeEndpoint
from tests.support.s3_server import REGION, MotoServer, moto_server

BUCKET = "caller-inputs"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server(buckets=[BUCKET]) as server:
        yield server


@pytest.fixture
def fake() -> Iterator[FakeEndpoint]:
    with FakeEndpoint() as server:
        yield server


def storage(moto: MotoServer, **options: str) -> InputStorage:
    return InputStorage.s3(
        BUCKET,
        endpoint_url=moto.url,
        access_key_id=moto.allowed.access_key_id,
        secret_access_key=moto.allowed.secret,
        region=REGION,
        **options,  # type: ignore[arg-type]
    )


def client_for(fake: FakeEndpoint, *, limit: int, uploads: InputStorage | None = None) -> EndpointClient:
    client = EndpointClient(
        base_url=fake.url, api_key=API_KEY, retry=FAST_RETRY, poll=FAST_POLL, uploads=uploads
    )
    client.endpoint.body_limit = limit  # RunPod's is 10 MB; small files keep the test fast
    return client


def write(path: Path, size: int, seed: int = 0) -> Path:
    path.write_bytes(bytes((i * 7 + seed) % 256 for i in range(size)))
    return path


def sent_body(fake: FakeEndpoint) -> dict[str, object]:
    (job,) = fake.jobs.values()
    return job.body


# --- building --------------------------------------------------------------------------------------


def test_a_workflow_file_is_sent_as_saved_with_params_and_job_fields(tmp_path: Path) -> None:
    editor = {"nodes": [{"id": 3, "type": "KSampler", "widgets_values": [1, "fixed", 20]}], "links": []}
    path = tmp_path / "my_workflow.json"
    path.write_text(json.dumps(editor))
    job = JobInput.from_workflow(path, params={"KSampler": {"seed": 5}}, timeout=300, delivery="s3")
    assert job.fields == {
        "workflow": editor,
        "params": {"KSampler": {"seed": 5}},
        "timeout": 300,
        "delivery": "s3",
    }
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match=r"broken\.json is not JSON"):
        JobInput.from_workflow(broken)


def test_the_digest_names_the_logical_input(tmp_path: Path) -> None:
    image = write(tmp_path / "a.png", 300)
    plain = {"workflow": {"1": {"class_type": "X", "inputs": {"b": 1, "a": 2}}}, "timeout": 60}
    reordered = {"timeout": 60, "workflow": {"1": {"inputs": {"a": 2, "b": 1}, "class_type": "X"}}}
    assert JobInput(plain).digest() == input_digest(reordered)
    with_file = JobInput(plain, files={"a.png": image}).digest()
    assert with_file != JobInput(plain).digest()
    write(image, 300, seed=1)
    assert JobInput(plain, files={"a.png": image}).digest() != with_file


# --- inline or upload ------------------------------------------------------------------------------


def test_small_files_travel_inline_named_for_their_loaders(fake: FakeEndpoint, tmp_path: Path) -> None:
    image, mask = write(tmp_path / "photo.png", 2000), write(tmp_path / "m.png", 500, seed=3)
    job = JobInput.from_workflow({"1": {}}, files={"photo.png": image, "masks/m.png": mask})
    with client_for(fake, limit=100_000) as client:
        client.submit(job)
    body = sent_body(fake)
    entries = body["input"]["inputs"]  # type: ignore[index]
    assert [(e["name"], e.get("subfolder")) for e in entries] == [("photo.png", None), ("m.png", "masks")]
    assert [base64.b64decode(e["data"]) for e in entries] == [image.read_bytes(), mask.read_bytes()]
    assert "s3Config" not in body


def test_an_input_too_large_without_a_bucket_is_refused_before_sending(
    fake: FakeEndpoint, tmp_path: Path
) -> None:
    job = JobInput.from_workflow({"1": {}}, files={"clip.mp4": write(tmp_path / "clip.mp4", 40_000)})
    with client_for(fake, limit=50_000) as client, pytest.raises(InputTooLarge) as caught:
        client.submit(job)
    assert "clip.mp4 (40.0 kB)" in caught.value.message and "InputStorage" in caught.value.message
    assert fake.counts["run"] == 0


def test_a_plain_input_too_large_is_refused_before_sending(fake: FakeEndpoint) -> None:
    with client_for(fake, limit=10_000) as client, pytest.raises(InputTooLarge):
        client.submit({"workflow": {"1": {"note": "x" * 20_000}}})
    assert fake.counts["run"] == 0


def test_the_largest_files_are_uploaded_until_the_request_fits(
    fake: FakeEndpoint, moto: MotoServer, tmp_path: Path
) -> None:
    big, middle, small = (
        write(tmp_path / n, s, seed=s) for n, s in [("big.mp4", 40_000), ("mid.wav", 20_000), ("s.png", 900)]
    )
    job = JobInput.from_workflow({"1": {}}, files={"big.mp4": big, "mid.wav": middle, "s.png": small})
    # Inline, the three need about 82 kB of base64; uploading big.mp4 alone brings it under 50 kB.
    with client_for(fake, limit=50_000, uploads=storage(moto)) as client:
        handle = client.submit(job)
    entries = {e["name"]: e for e in sent_body(fake)["input"]["inputs"]}  # type: ignore[index]
    assert set(entries["big.mp4"]) == {"name", "url"}
    assert entries["big.mp4"]["url"].startswith(moto.url + f"/{BUCKET}/inputs/")
    assert requests.get(entries["big.mp4"]["url"], timeout=10).content == big.read_bytes()
    assert base64.b64decode(entries["mid.wav"]["data"]) == middle.read_bytes()
    assert base64.b64decode(entries["s.png"]["data"]) == small.read_bytes()
    assert len(json.dumps(sent_body(fake)).encode()) < 50_000
    # How a file travels does not change which input it is.
    assert handle.input_digest == job.digest()


def test_s3_urls_hand_the_bucket_to_the_worker_as_s3config(
    fake: FakeEndpoint, moto: MotoServer, tmp_path: Path
) -> None:
    clip = write(tmp_path / "clip.mp4", 30_000)
    sha = hashlib.sha256(clip.read_bytes()).hexdigest()
    job = JobInput.from_workflow({"1": {}}, files={"clip.mp4": clip})
    with client_for(fake, limit=20_000, uploads=storage(moto, send_as="s3_url")) as client:
        client.submit(job)
    body = sent_body(fake)
    (entry,) = body["input"]["inputs"]  # type: ignore[index]
    assert entry == {"name": "clip.mp4", "url": f"s3://{BUCKET}/inputs/{sha}/clip.mp4"}
    assert body["s3Config"] == {
        "accessId": moto.allowed.access_key_id,
        "accessSecret": moto.allowed.secret,
        "bucketName": BUCKET,
        "endpointUrl": moto.url,
    }
    stored = moto.client().get_object(Bucket=BUCKET, Key=f"inputs/{sha}/clip.mp4")["Body"].read()
    assert stored == clip.read_bytes()


def test_a_template_media_parameter_may_be_a_local_file(moto: MotoServer, tmp_path: Path) -> None:
    portrait = write(tmp_path / "portrait.png", 3000)
    job = JobInput.from_template("ltx2_i2v", image=portrait, prompt="She smiles", duration=4)
    inline = prepare_input(job, None, 100_000)
    assert inline.input["template"] == "ltx2_i2v" and inline.input["prompt"] == "She smiles"
    assert base64.b64decode(inline.input["image"]) == portrait.read_bytes()
    uploaded = prepare_input(job, storage(moto), 2_000)
    assert uploaded.uploaded == ("portrait.png",) and uploaded.input["image"].startswith("http")
    assert requests.get(uploaded.input["image"], timeout=10).content == portrait.read_bytes()
    assert uploaded.digest == inline.digest == job.digest()
