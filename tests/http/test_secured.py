"""A service with HTTP_TOKEN and WEBHOOK_SECRET: bearer auth on every route, signed webhooks checked
with the README's own recipe, the SSRF guard on webhook URLs, and the endpoint client run against the
service with nothing changed but its base URL (and the token as its API key)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from comfy_serverless.client import (
    AsyncEndpointClient,
    AuthenticationError,
    EndpointClient,
    JobCancelled,
    JobInput,
    JobNotFound,
    JobTimedOut,
    PollPolicy,
    WorkflowValidationFailed,
)
from comfy_serverless.client.models import CANCELLED, COMPLETED, IN_PROGRESS
from tests.support.worker_process import REPO

from .conftest import Service, blur_chain, rgb, start_service, tiny

TOKEN = "t0ken-for-the-http-tests"
SECRET = "whsec-for-the-http-tests"
FAST_POLL = PollPolicy(initial=0.05, maximum=0.2)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    instance = start_service(
        "emulator",
        tmp_path_factory.mktemp("secured"),
        token=TOKEN,
        http_token=TOKEN,
        webhook_secret=SECRET,
        webhook_attempts=3,
        input_url_allowed_hosts="127.0.0.1",
        progress_interval=0.05,
    )
    try:
        yield instance
    finally:
        instance.stop()


# --- auth ------------------------------------------------------------------------------------------

PROTECTED = [
    ("POST", "/run"),
    ("POST", "/runsync"),
    ("GET", "/status/x"),
    ("POST", "/status/x"),
    ("GET", "/stream/x"),
    ("POST", "/cancel/x"),
    ("POST", "/purge-queue"),
    ("GET", "/jobs/x/events"),
    ("GET", "/health"),
    ("GET", "/templates"),
    ("GET", "/templates/sdxl_t2i"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_every_job_and_service_route_needs_the_token(service: Service, method: str, path: str) -> None:
    body = {"input": {"workflow": tiny()}} if method == "POST" else None
    missing = requests.request(method, service.url + path, json=body, timeout=10)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.json() == {
        "error": "this service needs a bearer token: send 'Authorization: Bearer <HTTP_TOKEN>'"
    }
    wrong = requests.request(
        method, service.url + path, json=body, headers={"Authorization": f"Bearer {TOKEN}x"}, timeout=10
    )
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert wrong.json() == {"error": "the bearer token is not this service's HTTP_TOKEN"}
    basic = requests.request(
        method, service.url + path, json=body, headers={"Authorization": f"Basic {TOKEN}"}, timeout=10
    )
    assert basic.status_code == 401


def test_the_right_token_opens_them_and_ready_and_docs_need_none(service: Service) -> None:
    assert service.get("/health").status_code == 200
    assert service.runsync({"workflow": tiny()})["status"] == "COMPLETED"
    assert requests.get(service.url + "/ready", timeout=10).json() == {"ready": True}
    assert requests.get(service.url + "/docs", timeout=10).status_code == 200
    schema = requests.get(service.url + "/openapi.json", timeout=10).json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert TOKEN not in service.log_text() and SECRET not in service.log_text()


# --- webhooks --------------------------------------------------------------------------------------


class Receiver:
    """A local HTTP server that records webhook POSTs and answers the statuses it is given, in turn."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "body": body,
                        "at": time.monotonic(),
                    }
                )
                status = owner.statuses.pop(0) if owner.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {count} webhook requests arrived"
            time.sleep(0.02)
        return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def readme_recipe() -> Callable[..., bool]:
    """``verify_webhook`` exactly as the README's Webhooks section writes it."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Webhooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert code is not None and "def verify_webhook" in code.group(1)
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    verify: Callable[..., bool] = namespace["verify_webhook"]
    return verify


def test_webhook_is_signed_retried_and_verifies_with_the_readme_recipe(
    service: Service, receiver: Receiver
) -> None:
    receiver.statuses = [503]  # the first attempt fails: the service tries again
    job_id = service.run({"workflow": tiny()}, webhook=receiver.url + "/hooks/comfy?tag=1")
    first, second = receiver.wait_for(2)
    assert second["at"] - first["at"] >= 0.9  # 1 s backoff
    answer = service.wait_status(job_id, "COMPLETED")
    verify = readme_recipe()
    for delivery in (first, second):
        headers = delivery["headers"]
        assert delivery["path"] == "/hooks/comfy?tag=1"
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Comfy-Serverless-Job-Id"] == job_id
        assert json.loads(delivery["body"]) == answer  # the body is the job's /status answer
        timestamp, signature = (
            headers["X-Comfy-Serverless-Timestamp"],
            headers["X-Comfy-Serverless-Signature"],
        )
        assert abs(int(timestamp) - time.time()) < 60
        assert re.fullmatch(r"sha256=[0-9a-f]{64}", signature)
        assert verify(SECRET, delivery["body"], timestamp, signature) is True
    body, timestamp, signature = (
        second["body"],
        second["headers"]["X-Comfy-Serverless-Timestamp"],
        second["headers"]["X-Comfy-Serverless-Signature"],
    )
    tampered = body.replace(b'"COMPLETED"', b'"FAILED"')
    assert tampered != body
    assert verify(SECRET, tampered, timestamp, signature) is False
    assert verify("another-secret", body, timestamp, signature) is False
    assert verify(SECRET, body, str(int(timestamp) + 1), signature) is False
    assert verify(SECRET, body, str(int(time.time()) - 3600), signature) is False  # too old: a replay
    service.wait_log(f"Webhook of job {job_id} delivered to {receiver.url}/hooks/comfy (HTTP 200)")


def test_a_failed_job_is_posted_too_and_a_refusing_receiver_is_not_retried(
    service: Service, receiver: Receiver
) -> None:
    receiver.statuses = [403]
    job_id = service.run(
        {"workflow": {"1": {"class_type": "NoSuchNode", "inputs": {}}}}, webhook=receiver.url
    )
    [delivery] = receiver.wait_for(1)
    assert json.loads(delivery["body"])["status"] == "FAILED"
    service.wait_log(f"Webhook of job {job_id} refused by {receiver.url}: HTTP 403")
    time.sleep(1.5)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (
            "http://10.1.2.3/hook",
            "webhook: refusing to connect to http://10.1.2.3/hook: 10.1.2.3 is not a public address",
        ),
        (
            "http://169.254.169.254/latest/meta-data",
            "webhook: refusing to connect to http://169.254.169.254/latest/meta-data: 169.254.169.254 is not a "
            "public address",
        ),
        (
            "http://[::ffff:192.168.0.1]/hook",
            "webhook: refusing to connect to http://[::ffff:192.168.0.1]/hook: ::ffff:192.168.0.1 is not a "
            "public address",
        ),
        (
            "http://localhost:9/hook",
            "webhook: refusing to connect to http://localhost:9/hook: localhost is not a public host",
        ),
        (
            "ftp://example.com/hook",
            "webhook: refusing to connect to ftp://example.com/hook: only http and https URLs are fetched, not ftp:",
        ),
    ],
)
def test_webhooks_to_private_addresses_are_refused_by_the_ssrf_guard(
    service: Service, url: str, error: str
) -> None:
    before = service.get("/health").json()["jobs"]
    response = service.post("/run", json={"input": {"workflow": tiny()}, "webhook": url})
    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert service.get("/health").json()["jobs"] == before  # no job was made


# --- the client ------------------------------------------------------------------------------------


@pytest.fixture
def client(service: Service) -> Iterator[EndpointClient]:
    with EndpointClient(base_url=service.url, api_key=TOKEN, poll=FAST_POLL) as instance:
        yield instance


def test_client_run_health_and_outputs(client: EndpointClient, tmp_path: Path) -> None:
    health = client.health()
    assert health.warm_workers == 1 and health.cold_start_likely is False
    color = 0x40C080
    result = client.run(JobInput.from_workflow(tiny(color=color, width=20)))
    assert [output.type for output in result.images] == ["image"]
    [saved] = result.save_all(tmp_path)
    assert saved.name.startswith("2_tiny_") and saved.suffix == ".png"
    with Image.open(saved) as picture:
        assert picture.size == (20, 8)
        assert all(
            abs(a - b) <= 1 for a, b in zip(picture.convert("RGB").getpixel((3, 3)), rgb(color), strict=True)
        )
    assert result.delay_ms is not None and result.execution_ms is not None and result.execution_ms > 0
    assert result.status.status == COMPLETED and result.job_id


def test_client_submit_stream_status_and_cancel(client: EndpointClient) -> None:
    handle = client.submit({"workflow": blur_chain(2)})
    statuses = list(client.stream(handle, timeout=60))
    assert statuses[-1].status == COMPLETED
    running = [s.progress for s in statuses if s.status == IN_PROGRESS and s.progress is not None]
    assert any(p.stage == "running" and p.class_type == "ImageBlur" for p in running)
    assert client.status(handle).status == COMPLETED

    long = client.submit({"workflow": blur_chain(8)})
    deadline = time.monotonic() + 30
    while client.status(long).status != IN_PROGRESS:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.cancel(long).status == CANCELLED
    with pytest.raises(JobCancelled) as cancelled:
        client.wait(long, timeout=30)
    assert cancelled.value.status == CANCELLED and cancelled.value.message == "cancelled by POST /cancel"
    assert client.purge_queue() == {"removed": 0, "status": "completed"}


def test_client_raises_the_workers_errors(client: EndpointClient) -> None:
    with pytest.raises(WorkflowValidationFailed) as rejected:
        client.run({"workflow": {"1": {"class_type": "NoSuchNode", "inputs": {}}}})
    assert rejected.value.error_type == "workflow_validation_failed" and rejected.value.status == "FAILED"
    assert rejected.value.message.startswith(
        "ComfyUI rejected the workflow: node 1 uses class_type 'NoSuchNode'"
    )
    with pytest.raises(JobTimedOut) as late:
        client.run({"workflow": blur_chain(6), "timeout": 1})
    assert late.value.status == "TIMED_OUT" and late.value.error_type == "timeout"
    assert late.value.message.startswith("Job timed out after 1 s")
    with pytest.raises(JobNotFound):
        client.status("no-such-job")


def test_client_with_a_wrong_key_is_refused(service: Service) -> None:
    with (
        EndpointClient(base_url=service.url, api_key="wrong", poll=FAST_POLL) as wrong,
        pytest.raises(AuthenticationError) as refused,
    ):
        wrong.health()
    assert refused.value.status_code == 401


def test_async_client_runs_a_job(service: Service) -> None:
    async def go() -> Any:
        async with AsyncEndpointClient(base_url=service.url, api_key=TOKEN, poll=FAST_POLL) as client:
            return await client.run({"workflow": tiny(color=0x102040)})

    result = asyncio.run(go())
    assert result.status.status == COMPLETED and len(result.images) == 1
